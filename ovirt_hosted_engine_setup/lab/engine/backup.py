"""engine-backup of the lab engine: back up an engine's state, restore it into a fresh one.

    python3 -m ovirt_hosted_engine_setup.lab.engine.backup --state-dir D --mode=backup \
        --file=F [--log=L] [--scope=all] [--archive-compressor=gzip|bzip2|xz|None] \
        [--files-compressor=xz|gzip]
    python3 -m ovirt_hosted_engine_setup.lab.engine.backup --state-dir D --mode=restore \
        --file=F [--log=L] [--scope=all] [--provision-all-databases] [--restore-permissions]

The archive has oVirt's engine-backup layout: an outer tar (compressed as
--archive-compressor says) of ./version, ./config, ./md5sum, ./files (a tar of the
engine's configuration files and PKI, paths relative to /) and ./db/engine_backup.db
(the database as SQL text). In the appliance it is /usr/bin/engine-backup, with the
state directory /var/lib/ovirt-engine-lab. See docs/lab-engine.md.
"""
import argparse
import hashlib
import io
import json
import lzma
import os
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import time
import zlib

from . import database
from .pki import EnginePki
from .state import ENGINE_VERSION, SETUP_FILE, read_json, write_json

VERSION_MEMBER = './version'
CONFIG_MEMBER = './config'
MD5_MEMBER = './md5sum'
FILES_MEMBER = './files'
DB_BACKUP_FILE_NAME = 'engine_backup.db'
DB_MEMBER = './db/' + DB_BACKUP_FILE_NAME
MEMBERS = (VERSION_MEMBER, CONFIG_MEMBER, MD5_MEMBER, FILES_MEMBER, DB_MEMBER)
CHECKED_MEMBERS = (VERSION_MEMBER, CONFIG_MEMBER, FILES_MEMBER, DB_MEMBER)

ARCHIVE_COMPRESSORS = {'gzip': 'gz', 'bzip2': 'bz2', 'xz': 'xz', 'None': ''}
FILES_COMPRESSORS = {'xz': 'xz', 'gzip': 'gz'}
SCOPES = ('all',)

PROTOCOLS_CONF = 'etc/ovirt-engine/engine.conf.d/10-setup-protocols.conf'
VERSION_CONF = 'etc/ovirt-engine/engine.conf.d/10-setup-version.conf'
SETUP_RECORD = 'etc/ovirt-engine/lab-engine-setup.json'
PKI_PREFIX = 'etc/pki/ovirt-engine/'
SECRET_DIRS = ('private', 'keys')

DEFAULT_LOG_DIR = '/var/log/ovirt-engine-backup'
CHUNK = 1 << 20
# what a damaged compressed stream raises while it is read
DAMAGED = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError)


class BackupError(Exception):
    """One line for the user: what is wrong and what to do."""


class Output:
    """Progress on stdout (as oVirt's engine-backup prints it), details in the log."""

    def __init__(self, log_path):
        self.log_path = log_path
        d = os.path.dirname(os.path.abspath(log_path))
        try:
            os.makedirs(d, exist_ok=True)
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as e:
            raise BackupError('cannot write the log file %s: %s; give a writable --log=FILE'
                              % (log_path, e.strerror or e))
        self.log = os.fdopen(fd, 'a', encoding='utf-8')

    def say(self, msg):
        sys.stdout.write(msg + '\n')
        sys.stdout.flush()
        self.debug(msg)

    def debug(self, msg):
        self.log.write('%s %s\n' % (time.strftime('%Y-%m-%d %H:%M:%S'), msg))
        self.log.flush()

    def close(self):
        self.log.close()


# ---------------------------------------------------------------- helpers

def version_text(v):
    return '.'.join(map(str, v))


def parse_version(text):
    try:
        v = tuple(int(p) for p in text.strip().split('.'))
    except ValueError:
        return None
    return v if len(v) >= 2 else None


def parse_keyvalues(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith('#') and '=' in line:
            k, v = line.split('=', 1)
            out[k.strip()] = v.strip().strip('"')
    return out


def _md5_file(path):
    h = hashlib.md5()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(CHUNK), b''):
            h.update(chunk)
    return h.hexdigest()


def _add_bytes(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _safe_name(name):
    """The member name without a leading ./, or None if it leaves the tree."""
    n = name
    while n.startswith('./'):
        n = n[2:]
    parts = n.split('/')
    if n.startswith('/') or '..' in parts:
        return None
    return n.rstrip('/')


# ---------------------------------------------------------------- backup

def backup(state_dir, path, out, archive_compressor='gzip', files_compressor='xz'):
    setup = read_json(os.path.join(state_dir, SETUP_FILE))
    pki = EnginePki(state_dir)
    db_path = os.path.join(state_dir, database.DB_FILE)
    if not (setup and setup.get('setup_done') and pki.ready()):
        raise BackupError('there is no set-up engine in %s to back up: run engine-setup first '
                          '(or give the right --state-dir)' % state_dir)
    try:
        # an engine set up before the database existed: its inventory.json is imported
        database.open_state_database(state_dir).close()
    except database.DatabaseError as e:
        raise BackupError(str(e))
    fqdn = setup['fqdn']
    dest_dir = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(dest_dir):
        raise BackupError('cannot write %s: the directory %s does not exist; give a --file in '
                          'an existing directory' % (path, dest_dir))
    try:
        work = tempfile.mkdtemp(prefix='.engine-backup-', dir=dest_dir)
    except OSError as e:
        raise BackupError('cannot write in %s (%s): give a --file in a writable directory'
                          % (dest_dir, e.strerror or e))
    try:
        out.say('Backing up:')
        out.say('- Files')
        files_path = os.path.join(work, 'files')
        _write_files_tar(files_path, state_dir, setup, pki, files_compressor, out)
        out.say("- Engine database 'engine'")
        dump_path = os.path.join(work, DB_BACKUP_FILE_NAME)
        rows = _dump_database(db_path, dump_path, work)
        out.debug('database dumped: %s' % ', '.join('%d %s' % (n, k)
                                                       for k, n in sorted(rows.items())))
        out.say("Packing into file '%s'" % path)
        version = version_text(ENGINE_VERSION) + '\n'
        config = ''.join('%s=%s\n' % kv for kv in (
            ('SCOPE', 'all'), ('ARCHIVE_COMPRESSOR', archive_compressor),
            ('FILES_COMPRESSOR', files_compressor), ('DB_DUMP_FORMAT', 'sql'),
            ('DB_COMPRESSOR', 'None'), ('DB_BACKUP_FILE_NAME', DB_BACKUP_FILE_NAME),
            ('ENGINE_FQDN', fqdn), ('BACKUP_DATE', time.strftime('%Y%m%d%H%M%S',
                                                                time.gmtime()))))
        md5 = [(hashlib.md5(version.encode()).hexdigest(), VERSION_MEMBER),
               (hashlib.md5(config.encode()).hexdigest(), CONFIG_MEMBER),
               (_md5_file(files_path), FILES_MEMBER),
               (_md5_file(dump_path), DB_MEMBER)]
        md5sum = ''.join('%s  %s\n' % m for m in md5)
        tmp = os.path.join(work, 'archive')
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'wb') as raw:
            mode = 'w:' + ARCHIVE_COMPRESSORS[archive_compressor]
            with tarfile.open(fileobj=raw, mode=mode, format=tarfile.GNU_FORMAT) as tar:
                _add_bytes(tar, VERSION_MEMBER, version.encode())
                _add_bytes(tar, CONFIG_MEMBER, config.encode())
                _add_bytes(tar, MD5_MEMBER, md5sum.encode())
                tar.add(files_path, FILES_MEMBER, recursive=False, filter=_owner_root)
                tar.add(dump_path, DB_MEMBER, recursive=False, filter=_owner_root)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
        out.debug('archive %s: %d bytes, archive compressor %s, files compressor %s'
                  % (path, os.path.getsize(path), archive_compressor, files_compressor))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.say('Done.')


def _owner_root(info):
    info.uid = info.gid = 0
    info.uname = info.gname = 'root'
    return info


def _write_files_tar(dest, state_dir, setup, pki, compressor, out):
    fqdn = setup['fqdn']
    version = setup.get('version') or version_text(ENGINE_VERSION)
    with tarfile.open(dest, 'w:' + FILES_COMPRESSORS[compressor],
                      format=tarfile.GNU_FORMAT) as tar:
        _add_bytes(tar, PROTOCOLS_CONF, ('ENGINE_FQDN=%s\nENGINE_PROXY_ENABLED=false\n'
                                         'ENGINE_HTTP_ENABLED=true\nENGINE_HTTPS_ENABLED=true\n'
                                         % fqdn).encode())
        _add_bytes(tar, VERSION_CONF, ('ENGINE_VERSION=%s\n' % version).encode())
        record = {k: setup[k] for k in ('fqdn', 'organization', 'admin', 'version')
                  if k in setup}
        _add_bytes(tar, SETUP_RECORD, (json.dumps(record, indent=1, sort_keys=True)
                                       + '\n').encode(), 0o600)
        for root, dirs, files in os.walk(pki.dir):
            dirs.sort()
            for fn in sorted(files):
                full = os.path.join(root, fn)
                if not os.path.isfile(full) or os.path.islink(full) or '.tmp' in fn:
                    continue
                rel = os.path.relpath(full, pki.dir)
                tar.add(full, PKI_PREFIX + rel, recursive=False, filter=_owner_root)
                out.debug('files: %s%s (mode %o)' % (PKI_PREFIX, rel,
                                                     os.stat(full).st_mode & 0o777))


def _dump_database(db_path, dump_path, work):
    """A consistent copy (SQLite's backup API: the engine may be running), as SQL text."""
    copy_path = os.path.join(work, 'copy.db')
    try:
        src = database.connect(db_path)
        dst = sqlite3.connect(copy_path)
        try:
            src.backup(dst)
        finally:
            src.close()
        try:
            rows = {t.name: dst.execute('SELECT count(*) FROM %s' % t.name).fetchone()[0]
                    for t in database.TABLES.values()}
            with open(dump_path, 'w', encoding='utf-8') as f:
                for line in dst.iterdump():
                    f.write(line + '\n')
        finally:
            dst.close()
    except (sqlite3.Error, database.DatabaseError) as e:
        raise BackupError('cannot read the engine database %s: %s' % (db_path, e))
    return rows


# ---------------------------------------------------------------- restore

def inventory_of(state_dir):
    """{kind: count} of the inventory a state directory holds (empty dict if none)."""
    counts = {}
    db_path = os.path.join(state_dir, database.DB_FILE)
    if os.path.exists(db_path):
        try:
            db = database.Database(db_path)
        except database.DatabaseError as e:
            raise BackupError('%s; move it away to restore into %s' % (e, state_dir))
        try:
            counts = {k: n for k, n in db.counts().items() if n}
        finally:
            db.close()
    legacy = os.path.join(state_dir, database.LEGACY_INVENTORY)
    if os.path.exists(legacy):
        try:
            inv = read_json(legacy) or {}
        except Exception:
            inv = {'inventory.json': {'?': 1}}
        for kind, objs in inv.items():
            if objs:
                counts[kind] = counts.get(kind, 0) + len(objs)
    return counts


def check_target(state_dir, provision):
    counts = inventory_of(state_dir)
    if counts:
        setup = read_json(os.path.join(state_dir, SETUP_FILE)) or {}
        raise BackupError(
            '%s already holds an engine%s with an inventory (%s): a backup is restored only '
            'into a fresh engine; restore into a new state directory, or move %s away first'
            % (state_dir, ' (%s)' % setup['fqdn'] if setup.get('fqdn') else '',
               ', '.join('%d %s' % (n, k.replace('_', ' ')) for k, n in sorted(counts.items())),
               state_dir))
    if not provision and not os.path.exists(os.path.join(state_dir, database.DB_FILE)):
        raise BackupError("the database 'engine' does not exist in %s: give "
                          "--provision-all-databases to create it" % state_dir)


def unpack(path, work, out):
    """Extract the members into work/, checking completeness, md5s and version."""
    try:
        tar = tarfile.open(path, 'r:*')
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise BackupError('cannot read the backup %s: %s; give the file engine-backup '
                          '--mode=backup wrote' % (path, e.strerror or e))
    except (tarfile.ReadError, tarfile.CompressionError, EOFError):
        raise BackupError('%s is not an engine backup (not a tar archive): give the file '
                          'engine-backup --mode=backup wrote' % path)
    got = {}
    try:
        with tar:
            for m in tar:
                name = './' + (_safe_name(m.name) or '')
                if name not in MEMBERS:
                    out.debug('member %s ignored' % m.name)
                    continue
                if not m.isfile():
                    raise BackupError('%s is corrupted: its member %s is not a regular file; '
                                      'make the backup again' % (path, name))
                dest = os.path.join(work, name[2:].replace('/', '_'))
                h = hashlib.md5()
                src = tar.extractfile(m)
                with open(dest, 'wb') as f:
                    for chunk in iter(lambda: src.read(CHUNK), b''):
                        h.update(chunk)
                        f.write(chunk)
                if os.path.getsize(dest) != m.size:
                    raise tarfile.ReadError('the member %s ends early' % name)
                got[name] = (dest, h.hexdigest())
    except BackupError:
        raise
    except DAMAGED as e:
        raise BackupError('%s is truncated or damaged (%s): copy the backup again, or make a '
                          'new one with engine-backup --mode=backup' % (path, e))
    for name in MEMBERS:
        if name not in got:
            raise BackupError('%s is not a complete backup: the member %s is missing; make the '
                              'backup again with engine-backup --mode=backup' % (path, name))
    with open(got[MD5_MEMBER][0], encoding='utf-8', errors='replace') as f:
        listed = {}
        for line in f:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                listed['./' + (_safe_name(parts[1].lstrip('*')) or '')] = parts[0].lower()
    for name in CHECKED_MEMBERS:
        if listed.get(name) != got[name][1]:
            raise BackupError('%s is corrupted: the md5 of %s does not match %s; copy the backup '
                              'again, or make a new one' % (path, name, MD5_MEMBER))
    out.debug('md5 of every member checked')
    return {name: dest for name, (dest, _md5) in got.items()}


def _read_text(p):
    with open(p, encoding='utf-8', errors='replace') as f:
        return f.read()


def check_contents(path, members):
    text = _read_text(members[VERSION_MEMBER]).strip()
    version = parse_version(text)
    if version is None:
        raise BackupError('%s is corrupted: its version %r is not an engine version; make the '
                          'backup again' % (path, text[:40]))
    if version > ENGINE_VERSION:
        raise BackupError('the backup %s is of engine %s, newer than this engine (%s): restore '
                          'it on an engine %s or newer' % (path, text, version_text(ENGINE_VERSION),
                                                          text))
    config = parse_keyvalues(_read_text(members[CONFIG_MEMBER]))
    scope = config.get('SCOPE', 'all')
    if scope not in SCOPES:
        raise BackupError('the backup %s has the scope %s: this engine restores backups made '
                          'with --scope=all only' % (path, scope))
    if config.get('DB_DUMP_FORMAT', 'sql') != 'sql':
        raise BackupError('the database dump of %s is in the %s format: this engine restores '
                          'only the sql format' % (path, config.get('DB_DUMP_FORMAT')))
    return text, config


def restore_files(path, files_tar, stage, restore_permissions, out):
    """The files into stage/ (setup.json, pki/); returns the setup record and the FQDN."""
    record = fqdn = None
    try:
        with tarfile.open(files_tar, 'r:*') as tar:
            for m in tar:
                name = _safe_name(m.name)
                if name is None or m.issym() or m.islnk() or not (m.isfile() or m.isdir()):
                    raise BackupError('%s is corrupted: ./files holds %s, which is not a plain '
                                      'file under /; make the backup again' % (path, m.name))
                if m.isdir():
                    continue
                if name.startswith(PKI_PREFIX):
                    rel = name[len(PKI_PREFIX):]
                    dest = os.path.join(stage, 'pki', rel)
                    secret = rel.split('/')[0] in SECRET_DIRS
                elif name == SETUP_RECORD:
                    dest = os.path.join(stage, 'setup-record.json')
                    secret = True
                elif name == PROTOCOLS_CONF:
                    fqdn = parse_keyvalues(tar.extractfile(m).read().decode(
                        'utf-8', 'replace')).get('ENGINE_FQDN')
                    continue
                else:
                    out.debug('files: %s not used by this engine' % name)
                    continue
                os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
                src = tar.extractfile(m)
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, 'wb') as f:
                    shutil.copyfileobj(src, f, CHUNK)
                mode = (m.mode & 0o777) if restore_permissions else (0o600 if secret else 0o644)
                os.chmod(dest, mode)
                out.debug('files: %s restored (mode %o)' % (name, mode))
                if name == SETUP_RECORD:
                    with open(dest, encoding='utf-8') as f:
                        record = json.load(f)
    except BackupError:
        raise
    except DAMAGED as e:
        raise BackupError('%s is corrupted: its ./files cannot be read (%s); make the backup '
                          'again' % (path, e))
    if not fqdn:
        raise BackupError('%s is not a complete backup: ./files has no ENGINE_FQDN in %s; make '
                          'the backup again' % (path, PROTOCOLS_CONF))
    if not (isinstance(record, dict) and record.get('admin') and record.get('fqdn')):
        raise BackupError('%s is not a complete backup: ./files has no engine setup record '
                          '(%s); make the backup again' % (path, SETUP_RECORD))
    if record['fqdn'] != fqdn:
        raise BackupError('%s is corrupted: its files name two engines (%s and %s); make the '
                          'backup again' % (path, fqdn, record['fqdn']))
    if not EnginePki(stage).ready():
        raise BackupError('%s is not a complete backup: the engine PKI under %s is incomplete; '
                          'make the backup again' % (path, PKI_PREFIX))
    return record, fqdn


def restore_database(path, dump, dest, out):
    with open(dump, encoding='utf-8') as f:
        sql = f.read()
    try:
        conn = sqlite3.connect(dest)
        try:
            conn.executescript(sql)
        finally:
            conn.close()
        db = database.Database(dest)
        try:
            with db.transaction():
                db.set_user_version(database.SCHEMA_VERSION)
            counts = db.counts()
        finally:
            db.close()
    except (sqlite3.Error, database.DatabaseError) as e:
        raise BackupError('the database dump of %s does not restore (%s): make the backup '
                          'again' % (path, e))
    os.chmod(dest, 0o600)
    out.debug('database restored: %s' % ', '.join('%d %s' % (n, k)
                                                  for k, n in sorted(counts.items())))
    return counts


def restore(state_dir, path, out, provision=False, restore_permissions=False):
    check_target(state_dir, provision)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    work = tempfile.mkdtemp(prefix='.engine-restore-', dir=state_dir)
    try:
        out.say('Preparing to restore:')
        out.say("- Unpacking file '%s'" % path)
        members = unpack(path, work, out)
        version, config = check_contents(path, members)
        stage = os.path.join(work, 'stage')
        os.makedirs(stage, mode=0o700)
        out.say('Restoring:')
        out.say('- Files')
        record, fqdn = restore_files(path, members[FILES_MEMBER], stage, restore_permissions,
                                     out)
        if config.get('ENGINE_FQDN', fqdn) != fqdn:
            raise BackupError('%s is corrupted: ./config names the engine %s, its files %s; '
                              'make the backup again' % (path, config['ENGINE_FQDN'], fqdn))
        out.say('Provisioning PostgreSQL users/databases:')
        out.say("- user 'engine', database 'engine'")
        db_stage = os.path.join(stage, database.DB_FILE)
        out.say('Restoring:')
        out.say("- Engine database 'engine'")
        restore_database(path, members[DB_MEMBER], db_stage, out)
        record = dict(record, setup_done=False, restored={
            'version': version, 'fqdn': fqdn, 'date': config.get('BACKUP_DATE')})
        write_json(os.path.join(stage, SETUP_FILE), record)
        os.unlink(os.path.join(stage, 'setup-record.json'))
        _install(state_dir, stage, work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.say('You should now run engine-setup.')
    out.say('Done.')


def _install(state_dir, stage, work, out):
    """Move the staged state in place; on a failure put back what was there."""
    names = ('pki', database.DB_FILE, SETUP_FILE)
    leftovers = names + (database.DB_FILE + '-wal', database.DB_FILE + '-shm')
    old = os.path.join(work, 'old')
    os.makedirs(old)
    moved_away, moved_in = [], []
    try:
        for n in leftovers:
            if os.path.lexists(os.path.join(state_dir, n)):
                os.rename(os.path.join(state_dir, n), os.path.join(old, n))
                moved_away.append(n)
        for n in names:
            os.rename(os.path.join(stage, n), os.path.join(state_dir, n))
            moved_in.append(n)
    except OSError as e:
        for n in moved_in:
            _remove(os.path.join(state_dir, n))
        for n in moved_away:
            os.rename(os.path.join(old, n), os.path.join(state_dir, n))
        raise BackupError('cannot put the restored engine in place in %s: %s'
                          % (state_dir, e.strerror or e))
    for n in moved_away:
        out.debug('replaced %s (held no inventory)' % n)


def _remove(p):
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            os.unlink(p)
        except OSError:
            pass


# ---------------------------------------------------------------- command line

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BackupError('%s: see engine-backup --help' % message)


def parse_args(argv):
    p = _Parser(prog='engine-backup', description="Back up the lab engine's state, or "
                                                 'restore a backup into a fresh engine.')
    p.add_argument('--state-dir', required=True, help="the engine's state directory")
    p.add_argument('--mode', required=True, choices=('backup', 'restore'))
    p.add_argument('--file', required=True, help='the backup archive')
    p.add_argument('--log', help='the log file (default: %s/ovirt-engine-<mode><date>.log)'
                                 % DEFAULT_LOG_DIR)
    p.add_argument('--scope', default='all',
                   help='what to back up or restore: all (the only scope of this engine)')
    p.add_argument('--archive-compressor', choices=sorted(ARCHIVE_COMPRESSORS),
                   help='backup: compressor of the archive (default gzip)')
    p.add_argument('--files-compressor', choices=sorted(FILES_COMPRESSORS),
                   help='backup: compressor of the files inside it (default xz)')
    p.add_argument('--provision-all-databases', action='store_true',
                   help='restore: create the database (else an empty one must exist)')
    p.add_argument('--restore-permissions', action='store_true',
                   help="restore: give the files the modes they had (else 0600 for keys and "
                        "the setup record, 0644 for the rest)")
    a = p.parse_args(argv)
    if a.scope not in SCOPES:
        raise BackupError('--scope=%s is not supported: this engine backs up and restores '
                          'everything, give --scope=all' % a.scope)
    if a.mode == 'backup':
        for opt, given in (('--provision-all-databases', a.provision_all_databases),
                           ('--restore-permissions', a.restore_permissions)):
            if given:
                raise BackupError('%s is an option of --mode=restore' % opt)
    else:
        for opt, given in (('--archive-compressor', a.archive_compressor),
                           ('--files-compressor', a.files_compressor)):
            if given:
                raise BackupError('%s is an option of --mode=backup (a restore reads the '
                                  'compressors from the archive)' % opt)
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = None
    try:
        a = parse_args(argv)
        log = a.log or os.path.join(DEFAULT_LOG_DIR, 'ovirt-engine-%s%s.log'
                                    % (a.mode, time.strftime('%Y%m%d%H%M%S')))
        out = Output(log)
        out.debug('engine-backup %s' % ' '.join(argv))
        if a.mode == 'backup':
            backup(a.state_dir, a.file, out, archive_compressor=a.archive_compressor or 'gzip',
                   files_compressor=a.files_compressor or 'xz')
        else:
            restore(a.state_dir, a.file, out, provision=a.provision_all_databases,
                    restore_permissions=a.restore_permissions)
    except BackupError as e:
        print('FATAL: %s' % e, file=sys.stderr)
        if out is not None:
            out.debug('FATAL: %s' % e)
        return 1
    except Exception as e:   # a defect: one line here, the traceback in the log
        import traceback
        if out is not None:
            out.debug(traceback.format_exc())
        print('FATAL: engine-backup failed: %s%s' % (
            e, ' (details in %s)' % out.log_path if out else ''), file=sys.stderr)
        return 1
    finally:
        if out is not None:
            out.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
