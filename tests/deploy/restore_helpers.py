"""Build engine-backup archives for tests, in the format engine-backup --mode=backup writes.

    path = make_backup(tmp_path)                                  # gzip outer, xz files
    path = make_backup(tmp_path, version='4.6.0', fqdn='engine.example.test',
                       archive_compressor='xz', files_compressor='gzip')

The outer tar holds ./version, ./config, ./md5sum, ./files and ./db/engine_backup.db;
./files is a tar of the engine's configuration files (paths relative to /): the engine's
protocols and version configuration, its setup record and its PKI. The PKI members are
short PEM-shaped stand-ins unless pki_dir names a real one (a lab engine's <state>/pki,
laid out as /etc/pki/ovirt-engine): they are enough for checking an archive, not for
running an engine. The database dump is SQL text (sqlite3's iterdump) of the tables the
deploy's fix-ups touch, with one data center, cluster, host, storage domain, an ordinary VM
and the old hosted-engine VM, unless db_sql is given.

Knobs for the refusals: omit (members left out), corrupt (members whose content is changed
after ./md5sum was written), md5_lines (./md5sum written as given), extra (more outer
members {name: bytes}), links ({name: target}: symlink members), files_extra
({path: bytes or (bytes, mode)} in ./files), files_data (./files content as given),
config (./config as {KEY: value}), protocols_conf (the text of 10-setup-protocols.conf).
"""
import hashlib
import io
import os
import sqlite3
import tarfile
import time

FQDN = 'engine.example.test'
VERSION = '4.5.6'
DC_ID = '5849b030-626e-47cb-ad90-3ce782d831b3'
CLUSTER_ID = '0a1e3e2c-0d5c-4a6a-8d7e-3b1d7a0c1f00'
HOST_ID = '2f5b3c1e-4d6a-4c8e-9f0a-1b2c3d4e5f60'
HOST_NAME = 'host1'
HOST_ADDRESS = 'host1.example.test'
HOST_UNIQUE_ID = '4c4c4544-0038-3010-8030-b4c04f4b3232'
HE_SD_ID = '8a3c5e8a-1f2b-4c3d-9e4f-5a6b7c8d9e0f'
HE_SD_NAME = 'hosted_storage'
DATA_SD_ID = '9b4d6f9b-2a3c-4d4e-8f5a-6b7c8d9e0f1a'
HE_VM_ID = '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f'
VM_ID = '3e4f5a6b-7c8d-4e9f-8a1b-2c3d4e5f6a7b'

PKI_FILES = {
    'etc/pki/ovirt-engine/ca.pem': 0o644,
    'etc/pki/ovirt-engine/private/ca.pem': 0o600,
    'etc/pki/ovirt-engine/certs/apache.cer': 0o644,
    'etc/pki/ovirt-engine/keys/apache.key.nopass': 0o600,
    'etc/pki/ovirt-engine/certs/engine.cer': 0o644,
    'etc/pki/ovirt-engine/keys/engine.key.nopass': 0o600,
}

_COMPRESSED_MODES = {'gzip': 'w:gz', 'bzip2': 'w:bz2', 'xz': 'w:xz', 'None': 'w'}


def db_dump():
    """SQL text of a small engine database (sqlite3's iterdump)."""
    db = sqlite3.connect(':memory:')
    db.executescript("""
        CREATE TABLE storage_pool (id TEXT PRIMARY KEY, name TEXT NOT NULL, extra TEXT);
        CREATE TABLE cluster (cluster_id TEXT PRIMARY KEY, name TEXT NOT NULL,
                              storage_pool_id TEXT, extra TEXT);
        CREATE TABLE vds_static (vds_id TEXT PRIMARY KEY, vds_name TEXT NOT NULL,
                                 host_name TEXT NOT NULL, port INTEGER, cluster_id TEXT,
                                 vds_spm_id INTEGER, vds_unique_id TEXT, extra TEXT);
        CREATE TABLE storage_domain_static (id TEXT PRIMARY KEY, storage_name TEXT NOT NULL,
                                            storage_domain_type INTEGER, storage_type INTEGER,
                                            extra TEXT);
        CREATE TABLE vm_static (vm_guid TEXT PRIMARY KEY, vm_name TEXT NOT NULL,
                                origin INTEGER, cluster_id TEXT, extra TEXT);
    """)
    db.execute("INSERT INTO storage_pool VALUES (?, 'Default', '{}')", (DC_ID,))
    db.execute("INSERT INTO cluster VALUES (?, 'Default', ?, '{}')", (CLUSTER_ID, DC_ID))
    db.execute("INSERT INTO vds_static VALUES (?, ?, ?, 54321, ?, 1, ?, '{}')",
               (HOST_ID, HOST_NAME, HOST_ADDRESS, CLUSTER_ID, HOST_UNIQUE_ID))
    db.execute("INSERT INTO storage_domain_static VALUES (?, ?, 0, 1, '{}')",
               (HE_SD_ID, HE_SD_NAME))
    db.execute("INSERT INTO storage_domain_static VALUES (?, 'data', 0, 1, '{}')",
               (DATA_SD_ID,))
    db.execute("INSERT INTO vm_static VALUES (?, 'HostedEngine', 6, ?, '{}')",
               (HE_VM_ID, CLUSTER_ID))
    db.execute("INSERT INTO vm_static VALUES (?, 'web1', 0, ?, '{}')", (VM_ID, CLUSTER_ID))
    db.commit()
    text = '\n'.join(db.iterdump()) + '\n'
    db.close()
    return text


def _add(tar, name, data, mode=0o644, mtime=None):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = mtime or int(time.time())
    info.uname = info.gname = 'root'
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = int(time.time())
    tar.addfile(info)


def files_tar(fqdn=FQDN, version=VERSION, compressor='xz', pki_dir=None, extra=None,
              protocols_conf=None):
    """The bytes of ./files: a tar of the engine's configuration files."""
    members = {
        'etc/ovirt-engine/engine.conf.d/10-setup-protocols.conf': (
            protocols_conf if protocols_conf is not None else
            'ENGINE_FQDN=%s\nENGINE_PROXY_ENABLED=true\nENGINE_PROXY_HTTP_PORT=80\n'
            'ENGINE_PROXY_HTTPS_PORT=443\n' % fqdn).encode(),
        'etc/ovirt-engine/engine.conf.d/10-setup-version.conf':
            ('ENGINE_VERSION=%s\n' % version).encode(),
        'etc/ovirt-engine-setup.conf.d/20-setup-ovirt-post.conf':
            ('[environment:default]\nOVESETUP_CONFIG/fqdn=str:%s\n'
             'OVESETUP_PKI/organization=str:example.test\n' % fqdn).encode(),
    }
    modes = {}
    for path, mode in PKI_FILES.items():
        if pki_dir:
            rel = os.path.relpath(path, 'etc/pki/ovirt-engine')
            with open(os.path.join(pki_dir, rel), 'rb') as f:
                members[path] = f.read()
        else:
            kind = 'PRIVATE KEY' if mode == 0o600 else 'CERTIFICATE'
            members[path] = ('-----BEGIN %s-----\n%s\n-----END %s-----\n' % (
                kind, hashlib.sha256(path.encode()).hexdigest(), kind)).encode()
        modes[path] = mode
    for path, value in (extra or {}).items():
        data, mode = value if isinstance(value, tuple) else (value, 0o644)
        members[path] = data
        modes[path] = mode
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=_COMPRESSED_MODES[compressor]) as tar:
        dirs = set()
        for path in members:
            parts = [] if '..' in path.split('/') else path.split('/')[:-1]
            for i in range(1, len(parts) + 1):
                d = '/'.join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    _add_dir(tar, d)
            _add(tar, path, members[path], modes.get(path, 0o644))
    return buf.getvalue()


def make_backup(tmp, fqdn=FQDN, version=VERSION, archive_compressor='gzip',
                files_compressor='xz', db_sql=None, db_size=None, name='engine.backup',
                omit=(), corrupt=(), md5_lines=None, extra=None, links=None,
                files_extra=None, files_data=None, config=None, protocols_conf=None,
                pki_dir=None):
    """Write an engine-backup archive under the directory tmp; return its path (str).

    db_size: pad the database dump with SQL comments to this many bytes (written to the
    archive in chunks, never held whole).
    """
    tmp = str(tmp)
    files = files_data if files_data is not None else files_tar(
        fqdn, version, files_compressor, pki_dir, files_extra, protocols_conf)
    db = (db_sql if db_sql is not None else db_dump()).encode()
    cfg = config if config is not None else {
        'SCOPE': 'all', 'ARCHIVE_COMPRESSOR': archive_compressor,
        'FILES_COMPRESSOR': files_compressor, 'DB_DUMP_FORMAT': 'sql',
        'DB_BACKUP_FILE_NAME': 'engine_backup.db', 'ENGINE_FQDN': fqdn}
    members = {
        './version': ('%s\n' % version).encode(),
        './config': ''.join('%s=%s\n' % kv for kv in cfg.items()).encode(),
        './files': files,
    }
    db_name = './db/' + cfg.get('DB_BACKUP_FILE_NAME', 'engine_backup.db')
    db_md5 = hashlib.md5(db)
    db_total = len(db)
    pad_line = b'-- ' + b'x' * 1020 + b'\n'
    if db_size is not None:
        while db_total < db_size:
            n = min(len(pad_line), db_size - db_total)
            db_md5.update(pad_line[:n])
            db_total += n
    md5 = {k: hashlib.md5(v).hexdigest() for k, v in members.items()}
    md5[db_name] = db_md5.hexdigest()
    if md5_lines is None:
        md5_text = ''.join('%s  %s\n' % (md5[k], k) for k in
                           ('./version', './config', './files', db_name))
    else:
        md5_text = ''.join(line + '\n' for line in md5_lines)
    members['./md5sum'] = md5_text.encode()
    for member in corrupt:
        if member == db_name:
            db = db.replace(b'INSERT', b'INSERX', 1)
        else:
            data = members[member]
            members[member] = data[:-1] + bytes([data[-1] ^ 0xff])
    path = os.path.join(tmp, name)
    with tarfile.open(path, _COMPRESSED_MODES[archive_compressor],
                      format=tarfile.GNU_FORMAT) as tar:
        _add_dir(tar, '.')
        for member in ('./version', './config', './md5sum', './files'):
            if member not in omit:
                _add(tar, member, members[member], 0o600)
        if db_name not in omit:
            _add_dir(tar, './db')
            info = tarfile.TarInfo(db_name)
            info.size = db_total
            info.mode = 0o600
            info.mtime = int(time.time())
            tar.addfile(info, _DbStream(db, pad_line, db_total))
        for member, data in (extra or {}).items():
            _add(tar, member, data)
        for member, target in (links or {}).items():
            info = tarfile.TarInfo(member)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    os.chmod(path, 0o600)
    return path


class _DbStream:
    """The dump followed by comment lines up to total bytes, read in pieces."""

    def __init__(self, head, pad_line, total):
        self.head = head
        self.pad_line = pad_line
        self.pad_at = 0
        self.left = total

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.left
        n = min(n, self.left)
        out = bytearray(self.head[:n])
        self.head = self.head[len(out):]
        while len(out) < n:
            piece = self.pad_line[self.pad_at:self.pad_at + n - len(out)]
            out += piece
            self.pad_at = (self.pad_at + len(piece)) % len(self.pad_line)
        self.left -= len(out)
        return bytes(out)
