"""The deploy's side of `--restore-from-file`: the engine-backup archive, read on the host.

    info = check_archive('/root/engine.backup', appliance_version=app.engine_version)
    info.version_text, info.fqdn, info.archive_compressor, info.files_compressor
    fqdn = check_fqdn(info.fqdn, given_fqdn)
    for sql in fixup_sql(host_name, host_address, host_unique_id, he_sd_name, stamp): ...
    rows = parse_rows(engine_psql_stdout)

The archive is what `engine-backup --mode=backup` writes: an outer tar (gzip, bzip2, xz
or not compressed) holding

    ./version               one line, the engine version (e.g. 4.5.6)
    ./config                KEY=value lines (SCOPE, ARCHIVE_COMPRESSOR, FILES_COMPRESSOR,
                            DB_DUMP_FORMAT, DB_BACKUP_FILE_NAME, ENGINE_FQDN)
    ./md5sum                "<md5>  <path>" for every other regular member
    ./files                 a tar (xz, gzip, ...) of the engine's configuration files,
                            paths relative to / (etc/ovirt-engine/..., etc/pki/ovirt-engine/...)
    ./db/engine_backup.db   the engine database dump

The archive is read once, as a stream: members are hashed in chunks of CHUNK_SIZE bytes
and never held whole in memory (a backup may be gigabytes); only the small text members
(version, config, md5sum, the engine's protocols configuration) are kept, each within a
bound. Nothing on the host is changed. Every refusal is a RestoreError whose str() is one
line naming the problem and what to do.

The database fix-ups (fixup_sql) are run inside the engine VM after the restore and before
the engine starts, through engine-psql.sh: the old engine VM record removed, this host removed
if the backup knew it, the old hosted-engine storage domain renamed out of the way.
"""
import bz2
import datetime
import gzip
import hashlib
import lzma
import os
import re
import tarfile
import zlib

CHUNK_SIZE = 1 << 20

VERSION_MEMBER = './version'
CONFIG_MEMBER = './config'
MD5SUM_MEMBER = './md5sum'
FILES_MEMBER = './files'
DB_DIR = './db/'
DEFAULT_DB_FILE_NAME = 'engine_backup.db'
PROTOCOLS_CONF = 'etc/ovirt-engine/engine.conf.d/10-setup-protocols.conf'

# what the backup's own small text members may weigh at most
_LIMITS = {VERSION_MEMBER: 4096, CONFIG_MEMBER: 65536, MD5SUM_MEMBER: 1 << 20}
_CONF_LIMIT = 65536
_TAIL = 65536

UNKNOWN_VERSION = 'unknown'

# oVirt's vm_static.origin values of the hosted-engine VM
ORIGIN_HOSTED_ENGINE = 5
ORIGIN_MANAGED_HOSTED_ENGINE = 6

_VERSION_RE = re.compile(r'^\s*v?(\d+(?:\.\d+)*)')
_MD5_LINE_RE = re.compile(r'^([0-9a-fA-F]{32}) [ *](.+)$')
_CONF_LINE_RE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$')
_FQDN_RE = re.compile(r'^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
                      r'(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$')
_STAMP_RE = re.compile(r'^\d{8}T\d{6}$')

_MAGIC = ((b'\x1f\x8b', 'gzip'), (b'BZh', 'bzip2'), (b'\xfd7zXZ\x00', 'xz'))
_REMAKE = 'make the backup again with engine-backup --mode=backup'


class RestoreError(Exception):
    """A backup archive that cannot be restored, or a bad value; str() is one line."""


# ---------------------------------------------------------------- versions

def parse_version(text):
    """The leading dotted numbers of an engine version as a tuple of ints, or None.

    '4.5.6' -> (4, 5, 6); '4.5.6.2-1.el9' -> (4, 5, 6, 2); 'unknown' -> None.
    A tuple or list of ints is returned as a tuple.
    """
    if isinstance(text, (tuple, list)):
        if text and all(isinstance(n, int) and n >= 0 for n in text):
            return tuple(text)
        return None
    m = _VERSION_RE.match(text or '')
    return tuple(int(n) for n in m.group(1).split('.')) if m else None


def version_text(version):
    return '.'.join(str(n) for n in version)


def _padded(a, b):
    n = max(len(a), len(b))
    return tuple(a) + (0,) * (n - len(a)), tuple(b) + (0,) * (n - len(b))


def version_newer(a, b):
    """True when version tuple a is newer than b (4.5.6 == 4.5.6.0)."""
    a, b = _padded(a, b)
    return a > b


# ---------------------------------------------------------------- the result

class BackupInfo:
    """What check_archive read from an engine-backup archive.

    path, size (bytes of the file), version (tuple of ints), version_text (as the backup
    says it), fqdn, members (the regular members in archive order, './...'),
    member_sizes ({member: bytes}), archive_compressor and files_compressor ('gzip',
    'bzip2', 'xz' or 'None'), config ({KEY: value} of ./config), scope, db_member,
    appliance_version (the version checked against, text, or 'unknown'),
    version_checked (False when the appliance's engine version was unknown).
    """

    def __init__(self, path):
        self.path = path
        self.size = None
        self.version = None
        self.version_text = None
        self.fqdn = None
        self.members = []
        self.member_sizes = {}
        self.archive_compressor = None
        self.files_compressor = None
        self.config = {}
        self.scope = None
        self.db_member = None
        self.appliance_version = UNKNOWN_VERSION
        self.version_checked = False

    def __repr__(self):
        return ('BackupInfo(%r, engine %s, fqdn=%s, %s/%s, %d bytes)'
                % (self.path, self.version_text, self.fqdn, self.archive_compressor,
                   self.files_compressor, self.size or 0))


# ---------------------------------------------------------------- streams

class _OuterError(Exception):
    """A failure reading the outer archive, met while reading a member's content."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class _Counting:
    """A read-only stream: counts the bytes, keeps the last _TAIL of them, and optionally
    feeds an md5 and marks the errors of the stream below as _OuterError."""

    def __init__(self, raw, md5=None, outer=False):
        self.raw = raw
        self.md5 = md5
        self.outer = outer
        self.pos = 0
        self.tail = bytearray()

    def read(self, n=-1):
        if n is None or n < 0 or n > CHUNK_SIZE:
            n = CHUNK_SIZE
        try:
            data = self.raw.read(n)
        except Exception as e:
            if self.outer and not isinstance(e, _OuterError):
                raise _OuterError(e)
            raise
        if data:
            if self.md5 is not None:
                self.md5.update(data)
            self.pos += len(data)
            self.tail += data
            if len(self.tail) > _TAIL:
                del self.tail[:len(self.tail) - _TAIL]
        return data

    def at(self, offset, n):
        """n bytes at stream offset, when still in the kept tail (else shorter)."""
        start = offset - (self.pos - len(self.tail))
        if start < 0:
            return b''
        return bytes(self.tail[start:start + n])

    def drain(self):
        while self.read(CHUNK_SIZE):
            pass


class _Prefixed:
    """The bytes already peeked at, then the rest of the stream."""

    def __init__(self, prefix, raw):
        self.prefix = prefix
        self.raw = raw

    def read(self, n=-1):
        if self.prefix:
            if n is None or n < 0:
                n = CHUNK_SIZE
            data, self.prefix = self.prefix[:n], self.prefix[n:]
            return data
        return self.raw.read(n)


def _peek_compressor(raw):
    """(compressor name, stream giving all bytes again)."""
    head = b''
    while len(head) < 6:
        more = raw.read(6 - len(head))
        if not more:
            break
        head += more
    name = 'None'
    for magic, what in _MAGIC:
        if head.startswith(magic):
            name = what
    return name, _Prefixed(head, raw), len(head)


def _decompressed(name, stream):
    if name == 'gzip':
        return gzip.GzipFile(fileobj=stream, mode='rb')
    if name == 'bzip2':
        return bz2.BZ2File(stream, mode='rb')
    if name == 'xz':
        return lzma.LZMAFile(stream, mode='rb')
    return stream


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0].rstrip(': ') if text else type(e).__name__


_DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


def _read_bounded(fobj, md5, limit):
    """Hash the whole member in chunks; return (its first limit+1 bytes, its size)."""
    kept = bytearray()
    size = 0
    while True:
        chunk = fobj.read(CHUNK_SIZE)
        if not chunk:
            break
        md5.update(chunk)
        size += len(chunk)
        if len(kept) <= limit:
            kept += chunk[:limit + 1 - len(kept)]
    return bytes(kept), size


def _member_path(name):
    """'./x/y' for a safe member name, '' for the root; None when absolute or with '..'."""
    if name.startswith('/'):
        return None
    parts = [p for p in name.split('/') if p not in ('', '.')]
    if '..' in parts:
        return None
    return '/'.join(parts)


def _tar_ended(tar, counting):
    """After iterating a stream tar: None, or why it did not end with an end-of-archive
    block ('truncated' or 'damaged')."""
    counting.drain()
    block = counting.at(tar.offset, tarfile.BLOCKSIZE)
    if counting.pos < tar.offset + tarfile.BLOCKSIZE or len(block) < tarfile.BLOCKSIZE:
        return 'truncated'
    if block.count(0) != len(block):
        return 'damaged'
    return None


# ---------------------------------------------------------------- the archive

def check_archive(path, appliance_version=None):
    """Check the engine-backup archive at path; return a BackupInfo.

    appliance_version: the engine version of the appliance the backup will be restored
    into (text such as '4.5.6', a tuple of ints, or None/'unknown': no version check).
    """
    info = BackupInfo(path)
    _check_file(path)
    _appliance_version(appliance_version)
    info.size = os.path.getsize(path)
    if info.size == 0:
        raise RestoreError('the backup file %s is empty: give the file written by '
                           'engine-backup --mode=backup' % path)
    state = _Scan(path)
    try:
        with open(path, 'rb') as raw:
            state.scan(raw)
    except PermissionError as e:
        raise RestoreError('cannot read the backup file %s (%s): check its permissions'
                           % (path, e.strerror or e))
    info.archive_compressor = state.compressor
    info.files_compressor = state.files_compressor
    info.members = list(state.order)
    info.member_sizes = dict(state.sizes)
    _check_complete(path, state)
    info.config = state.config
    info.db_member = state.db_member
    _check_md5(path, state)
    if state.files_error:
        raise RestoreError(state.files_error)
    info.scope = _check_scope(path, state.config)
    info.version, info.version_text = _read_version(path, state.small[VERSION_MEMBER])
    check_version(info, appliance_version)
    if not state.fqdn:
        raise RestoreError('the backup %s names no engine FQDN (no ENGINE_FQDN in %s of its '
                           '%s): %s' % (path, PROTOCOLS_CONF, FILES_MEMBER, _REMAKE))
    if not _FQDN_RE.match(state.fqdn):
        raise RestoreError('the backup %s names the engine FQDN %r, not a host name: %s'
                           % (path, state.fqdn, _REMAKE))
    said = state.config.get('ENGINE_FQDN')
    if said and said.rstrip('.').lower() != state.fqdn.rstrip('.').lower():
        raise RestoreError('the backup %s is inconsistent: its %s names the engine %s, its '
                           'files the engine %s; %s' % (path, CONFIG_MEMBER, said, state.fqdn,
                                                        _REMAKE))
    info.fqdn = state.fqdn
    return info


def _appliance_version(value):
    """The appliance's engine version as a tuple, or None when unknown."""
    if value in (None, '', UNKNOWN_VERSION):
        return None
    version = parse_version(value)
    if version is None:
        raise ValueError('appliance_version %r is not an engine version' % (value,))
    return version


def check_version(info, appliance_version):
    """Refuse a backup (a BackupInfo) of an engine newer than the appliance's.

    appliance_version: text such as '4.5.6', a tuple of ints, or None, '' or 'unknown'.
    Returns True when the versions were compared, False when the appliance's version is
    unknown (then the restore inside the engine VM is what checks it); sets
    info.appliance_version and info.version_checked.
    """
    appliance = _appliance_version(appliance_version)
    if appliance is None:
        info.appliance_version = UNKNOWN_VERSION
        info.version_checked = False
        return False
    info.appliance_version = version_text(appliance)
    info.version_checked = True
    if version_newer(info.version, appliance):
        raise RestoreError(
            'the backup %s is of engine %s, newer than the appliance\'s engine %s: '
            'use an appliance with engine %s or newer'
            % (info.path, info.version_text, info.appliance_version, info.version_text))
    return True


def _check_file(path):
    if not path:
        raise RestoreError('no backup file given: give the file written by engine-backup '
                           '--mode=backup as --restore-from-file=FILE')
    if os.path.isdir(path):
        raise RestoreError('the backup file %s is a directory: give the file written by '
                           'engine-backup --mode=backup' % path)
    if not os.path.exists(path):
        raise RestoreError('the backup file %s does not exist: give the path of the file '
                           'written by engine-backup --mode=backup' % path)
    if not os.path.isfile(path):
        raise RestoreError('the backup file %s is not a regular file: give the file written '
                           'by engine-backup --mode=backup' % path)
    try:
        with open(path, 'rb') as f:
            f.read(1)
    except OSError as e:
        raise RestoreError('cannot read the backup file %s (%s): check its permissions'
                           % (path, e.strerror or e))


class _Scan:
    """One streaming pass over the outer archive."""

    def __init__(self, path):
        self.path = path
        self.compressor = None
        self.files_compressor = None
        self.order = []
        self.sizes = {}
        self.md5 = {}
        self.small = {}
        self.fqdn = None
        self.files_error = None
        self.config = {}
        self.db_member = None

    def _not_backup(self, what):
        return RestoreError('the backup file %s %s: it is not an engine backup; give the file '
                            'written by engine-backup --mode=backup' % (self.path, what))

    def scan(self, raw):
        self.compressor, stream, _ = _peek_compressor(raw)
        counting = _Counting(_decompressed(self.compressor, stream))
        seen = 0
        try:
            with tarfile.open(fileobj=counting, mode='r|') as tar:
                for member in tar:
                    seen += 1
                    self._member(tar, member)
                ended = _tar_ended(tar, counting)
        except RestoreError:
            raise
        except _OuterError as e:
            raise self._stream_error(e.error, seen)
        except (tarfile.TarError, *_DECOMPRESS_ERRORS) as e:
            raise self._stream_error(e, seen)
        if ended == 'truncated':
            raise RestoreError('the backup file %s is truncated (it ends inside the archive): '
                               'copy it again or %s' % (self.path, _REMAKE))
        if ended == 'damaged':
            raise RestoreError('the backup file %s is corrupted (damaged data after its last '
                               'member): copy it again or %s' % (self.path, _REMAKE))

    def _stream_error(self, e, seen):
        reason = _first_line(e)
        truncated = isinstance(e, EOFError) or 'unexpected end of data' in reason \
            or 'end-of-stream marker' in reason
        if seen == 0 and not truncated:
            return RestoreError('the backup file %s is not a tar archive (gzip, bzip2, xz or '
                                'plain) (%s): give the file written by engine-backup '
                                '--mode=backup' % (self.path, reason))
        if truncated:
            return RestoreError('the backup file %s is truncated (%s): copy it again or %s'
                                % (self.path, reason, _REMAKE))
        return RestoreError('the backup file %s is corrupted (%s): copy it again or %s'
                            % (self.path, reason, _REMAKE))

    def _member(self, tar, member):
        rel = _member_path(member.name)
        if rel is None:
            raise self._not_backup('holds the member %s outside the archive' % member.name)
        if member.issym() or member.islnk():
            raise self._not_backup('holds a link %s -> %s (a backup holds no links)'
                                   % (member.name, member.linkname))
        if member.isdir():
            return
        if not member.isfile():
            raise self._not_backup('holds %s, neither a file nor a directory' % member.name)
        if not rel:
            raise self._not_backup('holds a file named %r, the archive root' % member.name)
        name = './' + rel
        if name in self.sizes:
            raise self._not_backup('holds the member %s twice' % name)
        self.order.append(name)
        self.sizes[name] = member.size
        md5 = hashlib.md5()
        fobj = tar.extractfile(member)
        if name in _LIMITS:
            self.small[name], _ = _read_bounded(_Counting(fobj, outer=True), md5,
                                                _LIMITS[name])
            if name == CONFIG_MEMBER:
                self.config = _parse_config(self.path, self.small[name])
        elif name == FILES_MEMBER:
            self._files(_Counting(fobj, md5=md5, outer=True))
        else:
            _read_bounded(_Counting(fobj, outer=True), md5, 0)
        self.md5[name] = md5.hexdigest()

    def _files(self, hashing):
        """Read the configuration files' tar (inside ./files) for the engine FQDN."""
        seen = 0
        try:
            self.files_compressor, stream, got = _peek_compressor(hashing)
            if got == 0:
                raise tarfile.ReadError('empty file')
            counting = _Counting(_decompressed(self.files_compressor, stream))
            with tarfile.open(fileobj=counting, mode='r|') as tar:
                for member in tar:
                    seen += 1
                    self._config_file(tar, member)
                ended = _tar_ended(tar, counting)
            if ended:
                self.files_error = self._files_problem('is %s' % ended)
        except _OuterError:
            raise
        except RestoreError as e:
            self.files_error = str(e)
        except (tarfile.TarError, *_DECOMPRESS_ERRORS) as e:
            reason = _first_line(e)
            if seen:
                self.files_error = self._files_problem('is damaged (%s)' % reason)
            else:
                self.files_error = self._files_problem('is not a tar archive (%s)' % reason)
        hashing.drain()

    def _files_problem(self, what):
        return ('the member %s of the backup %s %s: %s'
                % (FILES_MEMBER, self.path, what, _REMAKE))

    def _config_file(self, tar, member):
        rel = _member_path(member.name)
        if rel is None:
            raise RestoreError(self._files_problem('holds %s outside /' % member.name))
        if member.issym():
            target = member.linkname
            joined = _member_path(os.path.join(os.path.dirname(rel), target))
            if target.startswith('/') or joined is None:
                raise RestoreError(self._files_problem(
                    'holds the link %s -> %s pointing outside the backup' % (rel, target)))
        elif member.islnk():
            if _member_path(member.linkname) is None:
                raise RestoreError(self._files_problem(
                    'holds the link %s -> %s pointing outside the backup'
                    % (rel, member.linkname)))
        elif not (member.isfile() or member.isdir()):
            raise RestoreError(self._files_problem(
                'holds %s, neither a file, a directory nor a link' % rel))
        if rel == PROTOCOLS_CONF and member.isfile():
            data, size = _read_bounded(tar.extractfile(member), hashlib.md5(), _CONF_LIMIT)
            if size > _CONF_LIMIT:
                raise RestoreError(self._files_problem(
                    'holds a %s of %d bytes, not a configuration file' % (rel, size)))
            self.fqdn = _conf_value(data.decode('utf-8', 'replace'), 'ENGINE_FQDN')


def _parse_config(path, data):
    config = {}
    for n, line in enumerate(data.decode('utf-8', 'replace').splitlines(), 1):
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        m = _CONF_LINE_RE.match(line)
        if not m:
            # reported after the md5 check: a damaged ./config is reported as corrupted
            return {'_bad_line': n}
        config[m.group(1)] = _unquote(m.group(2))
    return config


def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
        value = value[1:-1]
    return value


def _conf_value(text, key):
    value = None
    for line in text.splitlines():
        m = _CONF_LINE_RE.match(line)
        if m and m.group(1) == key:
            value = _unquote(m.group(2))
    return value or None


def _incomplete(path, member):
    return RestoreError('%s is not a complete engine backup: the member %s is missing; %s'
                        % (path, member, _REMAKE))


def _check_complete(path, state):
    for name in (VERSION_MEMBER, CONFIG_MEMBER, MD5SUM_MEMBER, FILES_MEMBER):
        if name not in state.sizes:
            raise _incomplete(path, name)
    db_name = state.config.get('DB_BACKUP_FILE_NAME') or DEFAULT_DB_FILE_NAME
    if '/' in db_name or db_name in ('.', '..'):
        raise RestoreError('%s is not an engine backup: ./config names the database dump %r; '
                           '%s' % (path, db_name, _REMAKE))
    state.db_member = DB_DIR + db_name
    if state.db_member not in state.sizes:
        raise _incomplete(path, state.db_member)


def _corrupted(path, what):
    return RestoreError('%s is corrupted: %s; copy it again or %s' % (path, what, _REMAKE))


def _check_md5(path, state):
    text = state.small[MD5SUM_MEMBER]
    if len(text) > _LIMITS[MD5SUM_MEMBER]:
        raise _corrupted(path, '%s is larger than %d bytes' % (MD5SUM_MEMBER,
                                                                _LIMITS[MD5SUM_MEMBER]))
    listed = {}
    for n, line in enumerate(text.decode('utf-8', 'replace').splitlines(), 1):
        if not line.strip():
            continue
        m = _MD5_LINE_RE.match(line)
        rel = _member_path(m.group(2)) if m else None
        if not m or not rel:
            raise _corrupted(path, 'line %d of %s is not "<md5>  <path>"' % (n, MD5SUM_MEMBER))
        listed['./' + rel] = m.group(1).lower()
    for name, digest in listed.items():
        if name == MD5SUM_MEMBER:
            continue
        if name not in state.md5:
            raise _incomplete(path, name)
        if state.md5[name] != digest:
            raise _corrupted(path, 'the md5 of %s does not match %s' % (name, MD5SUM_MEMBER))
    for name in (VERSION_MEMBER, CONFIG_MEMBER, FILES_MEMBER, state.db_member):
        if name not in listed:
            raise _corrupted(path, '%s has no line for %s' % (MD5SUM_MEMBER, name))


def _check_scope(path, config):
    if '_bad_line' in config:
        raise RestoreError('%s is not an engine backup: line %d of %s is not KEY=value; %s'
                           % (path, config['_bad_line'], CONFIG_MEMBER, _REMAKE))
    scope = config.get('SCOPE')
    scopes = set(re.split(r'[\s,]+', scope.strip())) if scope else set()
    if not scope or not ('all' in scopes or {'files', 'db'} <= scopes):
        raise RestoreError('%s is a backup of scope %s, not of the whole engine: make a full '
                           'backup with engine-backup --mode=backup --scope=all'
                           % (path, scope or '(none)'))
    return scope


def _read_version(path, data):
    if len(data) > _LIMITS[VERSION_MEMBER]:
        raise RestoreError('%s is not an engine backup: %s is larger than %d bytes; %s'
                           % (path, VERSION_MEMBER, _LIMITS[VERSION_MEMBER], _REMAKE))
    text = data.decode('utf-8', 'replace').strip()
    line = text.splitlines()[0].strip() if text else ''
    version = parse_version(line)
    if version is None:
        raise RestoreError('%s is not an engine backup: %s holds %r, not an engine version; %s'
                           % (path, VERSION_MEMBER, line[:40], _REMAKE))
    return version, line


# ---------------------------------------------------------------- the FQDN

def check_fqdn(backup_fqdn, given_fqdn):
    """The engine FQDN to deploy with: the backup's; a different given one is refused.

    Names are compared without case and without a trailing dot; None or '' as given_fqdn
    takes the backup's.
    """
    if not backup_fqdn:
        raise ValueError('backup_fqdn is required')
    if not given_fqdn:
        return backup_fqdn

    def norm(name):
        return name.strip().rstrip('.').lower()

    if norm(backup_fqdn) != norm(given_fqdn):
        raise RestoreError('the backup is of engine %s: the new engine must have the same '
                           'FQDN; give %s as OVEHOSTED_NETWORK/fqdn' % (backup_fqdn, backup_fqdn))
    return given_fqdn.strip().rstrip('.')


# ---------------------------------------------------------------- database fix-ups

def sql_quote(value, what='value'):
    """value as an SQL string literal: single quotes doubled; NUL refused."""
    if value is None:
        raise RestoreError('no %s given for the database fix-ups' % what)
    value = str(value)
    if '\x00' in value:
        raise RestoreError('the %s %r holds a NUL character: give it without one'
                           % (what, value.replace('\x00', '\\0')))
    return "'%s'" % value.replace("'", "''")


def _stamp_text(stamp):
    if isinstance(stamp, datetime.datetime):
        return stamp.strftime('%Y%m%dT%H%M%S')
    text = str(stamp or '')
    if not _STAMP_RE.match(text):
        raise ValueError('stamp %r is not YYYYmmddTHHMMSS' % (stamp,))
    return text


def _host_where(host_name, host_address, host_unique_id):
    clauses = []
    for column, value, what in (('vds_name', host_name, 'host name'),
                                ('vds_unique_id', host_unique_id, 'host unique id'),
                                ('host_name', host_address, 'host address')):
        if value not in (None, ''):
            clauses.append('%s = %s' % (column, sql_quote(value, what)))
    if not clauses:
        raise RestoreError('no host name, unique id or address given to find this host in the '
                           'restored database: give the host name (OVEHOSTED_NETWORK/host_name)')
    return ' OR '.join(clauses)


def _he_sd_where(he_sd_name):
    if not he_sd_name:
        raise RestoreError('no hosted-engine storage domain name given for the database '
                           'fix-ups: give OVEHOSTED_STORAGE/storageDomainName')
    return 'storage_name = %s' % sql_quote(he_sd_name, 'storage domain name')


_HE_VM_WHERE = 'origin IN (%d, %d)' % (ORIGIN_HOSTED_ENGINE, ORIGIN_MANAGED_HOSTED_ENGINE)


def fixup_sql(host_name, host_address, host_unique_id, he_sd_name, stamp):
    """The SQL statements run in the restored database before the engine starts.

    1. the old engine VM's record removed (vm_static origin hosted_engine/managed_hosted_engine);
    2. this host removed when the backup knew it (by name, unique id or address; an empty
       value is left out of the match);
    3. the old hosted-engine storage domain renamed <name>_old_<stamp>, so that the new one
       can take its name.
    stamp: a datetime or 'YYYYmmddTHHMMSS'.
    """
    stamp = _stamp_text(stamp)
    return [
        'DELETE FROM vm_static WHERE %s;' % _HE_VM_WHERE,
        'DELETE FROM vds_static WHERE %s;' % _host_where(host_name, host_address,
                                                          host_unique_id),
        "UPDATE storage_domain_static SET storage_name = storage_name || '_old_%s' WHERE %s;"
        % (stamp, _he_sd_where(he_sd_name)),
    ]


def fixup_report_sql(host_name, host_address, host_unique_id, he_sd_name):
    """SELECTs of the rows fixup_sql changes, in the same order (run them first to report
    what is removed and renamed): VMs (vm_guid, vm_name, origin), hosts (vds_id,
    vds_name, host_name), storage domains (id, storage_name)."""
    return [
        'SELECT vm_guid, vm_name, origin FROM vm_static WHERE %s;' % _HE_VM_WHERE,
        'SELECT vds_id, vds_name, host_name FROM vds_static WHERE %s;'
        % _host_where(host_name, host_address, host_unique_id),
        'SELECT id, storage_name FROM storage_domain_static WHERE %s;'
        % _he_sd_where(he_sd_name),
    ]


def parse_rows(text, columns=None):
    """engine-psql.sh's rows ('a|b|c', one a line) as lists of strings.

    Empty lines are skipped. columns: when given, every row must have that many fields.
    """
    rows = []
    for line in (text or '').splitlines():
        if not line.strip():
            continue
        row = line.split('|')
        if columns is not None and len(row) != columns:
            raise RestoreError('unexpected output of engine-psql.sh: %r has %d fields, not %d'
                               % (line[:80], len(row), columns))
        rows.append(row)
    return rows
