"""engine-backup, engine-psql and engine-setup after a restore, on loopback: a set-up
engine with an inventory is backed up, restored into an empty state directory, fixed up
with SQL and served again by a real engine process (checked with ovirt-engine-sdk-python)."""
import hashlib
import importlib.util
import io
import os
import shutil
import ssl
import stat
import subprocess
import tarfile

import pytest

from daemon_proc import TOP, free_port, python
from ovirt_hosted_engine_setup.lab.engine import backup as engine_backup
from ovirt_hosted_engine_setup.lab.engine import database
from ovirt_hosted_engine_setup.lab.engine.pki import EnginePki, pem_fingerprint
from ovirt_hosted_engine_setup.lab.engine.state import (ENGINE_VERSION, State, StateError,
                                                        run_setup)

from .engine_proc import ADMIN_PASSWORD, FQDN, EngineProc

NEW_PASSWORD = 'restored-Engine-pw2'
GUEST_DIR = os.path.join(TOP, 'ovirt_hosted_engine_setup', 'lab', 'appliance_guest')
INVENTORY = {
    'data_centers': ['Default', 'Legacy'],
    'clusters': ['Default', 'LegacyCluster'],
    'hosts': ['host1', 'host2'],
    'storage_domains': ['data1', 'hosted_storage'],
    'vms': ['HostedEngine', 'vm-a', 'vm-b'],
}


def cli(module, *args):
    return subprocess.run([python(), '-m', 'ovirt_hosted_engine_setup.lab.engine.' + module]
                          + list(args), capture_output=True, text=True, timeout=120, cwd=TOP,
                          stdin=subprocess.DEVNULL)


def run_backup(state_dir, path, log, *extra):
    return cli('backup', '--state-dir', state_dir, '--mode=backup', '--file=%s' % path,
               '--log=%s' % log, *extra)


def run_restore(state_dir, path, log, *extra):
    return cli('backup', '--state-dir', state_dir, '--mode=restore', '--file=%s' % path,
               '--log=%s' % log, *extra)


def psql(state_dir, *commands):
    args = []
    for c in commands:
        args += ['-c', c]
    return cli('psql', '--state-dir', state_dir, *args)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """A set-up engine (not running) whose inventory was written through State."""
    base = tmp_path_factory.mktemp('source')
    d = str(base / 'state')
    run_setup(d, FQDN, ADMIN_PASSWORD)
    st = State(d)
    default_cl = st.find('clusters', 'Default')['id']
    st.put('data_centers', {'id': 'dc-legacy', 'name': 'Legacy', 'description': 'old',
                            'local': False})
    st.put('clusters', {'id': 'cl-legacy', 'name': 'LegacyCluster', 'data_center': 'dc-legacy'})
    # host agents that are not there: 127.0.0.1 on ports nobody listens on
    st.put('hosts', {'id': 'host-1', 'name': 'host1', 'address': '127.0.0.1',
                     'port': free_port(), 'cluster': default_cl, 'spm_id': 1,
                     'status': 'up', 'unique_id': 'hw-uuid-host1'})
    st.put('hosts', {'id': 'host-2', 'name': 'host2', 'address': '127.0.0.1',
                     'port': free_port(), 'cluster': 'cl-legacy', 'spm_id': 1,
                     'status': 'up', 'unique_id': 'hw-uuid-host2'})
    st.put('storage_domains', {'id': 'sd-he', 'name': 'hosted_storage', 'type': 'data',
                               'storage_type': 'nfs', 'address': 'nfs.lab.test',
                               'path': '/exports/he', 'status': 'active'})
    st.put('storage_domains', {'id': 'sd-data', 'name': 'data1', 'type': 'data',
                               'storage_type': 'localfs', 'path': '/data/one',
                               'status': 'active', 'master': True})
    st.put('vms', {'id': 'vm-he', 'name': 'HostedEngine', 'status': 'up', 'host': 'host-1',
                   'memory_mib': 4096})
    st.put('vms', {'id': 'vm-a', 'name': 'vm-a', 'status': 'down', 'cluster': 'cl-legacy'})
    st.put('vms', {'id': 'vm-b', 'name': 'vm-b', 'status': 'down', 'cluster': 'cl-legacy'})
    st.close()
    return d


@pytest.fixture(scope='module')
def archive(source, tmp_path_factory):
    base = tmp_path_factory.mktemp('archive')
    path = str(base / 'engine.backup')
    r = run_backup(source, path, str(base / 'backup.log'))
    assert r.returncode == 0, r.stderr
    return path


def inventory_names(state_dir):
    db = database.Database(os.path.join(state_dir, database.DB_FILE))
    try:
        return {kind: sorted(o['name'] for o in db.items(kind)) for kind in INVENTORY}
    finally:
        db.close()


def restore_fresh(tmp_path, archive_path, name='restored'):
    d = str(tmp_path / name)
    r = run_restore(d, archive_path, str(tmp_path / 'restore.log'), '--provision-all-databases',
                    '--restore-permissions')
    assert r.returncode == 0, r.stderr
    return d, r


class Served:
    """A started engine and an SDK connection to it."""

    def __init__(self, state_dir, password):
        import ovirtsdk4
        self.proc = EngineProc(state_dir, monitor_interval=30).start()
        base = os.path.dirname(state_dir)
        self.ca_file = self.proc.fetch_ca(os.path.join(base, 'ca-%d.pem' % os.getpid()))
        self.conn = ovirtsdk4.Connection(url=self.proc.api_url, username='admin@internal',
                                         password=password, ca_file=self.ca_file, timeout=30)

    def names(self):
        s = self.conn.system_service()
        return {
            'data_centers': sorted(x.name for x in s.data_centers_service().list()),
            'clusters': sorted(x.name for x in s.clusters_service().list()),
            'hosts': sorted(x.name for x in s.hosts_service().list()),
            'storage_domains': sorted(x.name for x in s.storage_domains_service().list()),
            'vms': sorted(x.name for x in s.vms_service().list()),
        }

    def server_cert_pem(self):
        return ssl.get_server_certificate(('127.0.0.1', self.proc.https_port))

    def close(self):
        self.conn.close()
        rc = self.proc.stop()
        assert rc == 0, self.proc.read_log()[-3000:]


@pytest.fixture
def served():
    started = []

    def start(state_dir, password=NEW_PASSWORD):
        s = Served(state_dir, password)
        started.append(s)
        return s
    yield start
    for s in started:
        s.close()


# ------------------------------------------------------------------ backup and restore

@pytest.mark.parametrize('archive_compressor,files_compressor,opener', [
    ('gzip', 'xz', 'r:gz'), ('bzip2', 'xz', 'r:bz2'), ('xz', 'gzip', 'r:xz'),
    ('None', 'xz', 'r:')])
def test_backup_restore_serves_the_same_inventory(source, tmp_path, served, archive_compressor,
                                                  files_compressor, opener):
    path = str(tmp_path / 'engine.backup')
    log = str(tmp_path / 'backup.log')
    r = run_backup(source, path, log, '--archive-compressor=' + archive_compressor,
                   '--files-compressor=' + files_compressor)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ['Backing up:', '- Files', "- Engine database 'engine'",
                                     "Packing into file '%s'" % path, 'Done.']
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with tarfile.open(path, opener) as tar:
        names = tar.getnames()
        assert sorted(names) == sorted(engine_backup.MEMBERS)
        data = {n: tar.extractfile(n).read() for n in names}
    assert data['./version'].decode() == '%d.%d.%d\n' % ENGINE_VERSION
    config = engine_backup.parse_keyvalues(data['./config'].decode())
    assert {k: config[k] for k in ('SCOPE', 'ARCHIVE_COMPRESSOR', 'FILES_COMPRESSOR',
                                   'DB_DUMP_FORMAT', 'DB_BACKUP_FILE_NAME', 'ENGINE_FQDN')} == {
        'SCOPE': 'all', 'ARCHIVE_COMPRESSOR': archive_compressor,
        'FILES_COMPRESSOR': files_compressor, 'DB_DUMP_FORMAT': 'sql',
        'DB_BACKUP_FILE_NAME': 'engine_backup.db', 'ENGINE_FQDN': FQDN}
    assert data['./md5sum'].decode() == ''.join(
        '%s  %s\n' % (hashlib.md5(data[n]).hexdigest(), n)
        for n in ('./version', './config', './files', './db/engine_backup.db'))
    with tarfile.open(fileobj=io.BytesIO(data['./files']),
                      mode='r:' + {'xz': 'xz', 'gzip': 'gz'}[files_compressor]) as files:
        members = {m.name: m for m in files.getmembers()}
        protocols = files.extractfile(engine_backup.PROTOCOLS_CONF).read().decode()
    assert 'ENGINE_FQDN=%s' % FQDN in protocols.splitlines()
    for rel in ('ca.pem', 'private/ca.pem', 'certs/apache.cer', 'keys/apache.key.nopass',
                'certs/engine.cer', 'keys/engine.key.nopass'):
        assert 'etc/pki/ovirt-engine/' + rel in members
    assert members['etc/pki/ovirt-engine/private/ca.pem'].mode & 0o777 == 0o600
    assert members['etc/pki/ovirt-engine/keys/apache.key.nopass'].mode & 0o777 == 0o600
    assert b'INSERT INTO "vds_static"' in data['./db/engine_backup.db']

    d, r = restore_fresh(tmp_path, path)
    assert r.stdout.splitlines() == [
        'Preparing to restore:', "- Unpacking file '%s'" % path, 'Restoring:', '- Files',
        'Provisioning PostgreSQL users/databases:', "- user 'engine', database 'engine'",
        'Restoring:', "- Engine database 'engine'", 'You should now run engine-setup.',
        'Done.']
    assert stat.S_IMODE(os.stat(os.path.join(d, 'pki', 'private', 'ca.pem')).st_mode) == 0o600
    assert inventory_names(d) == INVENTORY
    # the CA is the source's
    with open(os.path.join(source, 'pki', 'ca.pem')) as a, \
            open(os.path.join(d, 'pki', 'ca.pem')) as b:
        assert a.read() == b.read()
    assert run_setup(d, FQDN, NEW_PASSWORD) == 'restored'
    eng = served(d)
    assert eng.names() == INVENTORY
    # the restored state is not the source's: the source is untouched
    assert inventory_names(source) == INVENTORY


def test_restored_engine_is_not_served_before_engine_setup(archive, tmp_path):
    d, _ = restore_fresh(tmp_path, archive)
    proc = EngineProc(d).start()
    try:
        import urllib.error
        import urllib.request
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(proc.http + '/ovirt-engine/services/health', timeout=10)
        assert e.value.code == 503
    finally:
        assert proc.stop() == 0


def test_no_password_in_output_log_or_archive(source, archive, tmp_path):
    log = str(tmp_path / 'r.log')
    d = str(tmp_path / 'r')
    r = run_restore(d, archive, log, '--provision-all-databases')
    assert r.returncode == 0, r.stderr
    with open(archive, 'rb') as f:
        raw = f.read()
    with tarfile.open(archive) as tar:
        files = tar.extractfile('./files').read()
        db = tar.extractfile('./db/engine_backup.db').read()
    for blob in (raw, files, db, r.stdout.encode(), r.stderr.encode(), open(log, 'rb').read(),
                 open(os.path.join(os.path.dirname(archive), 'backup.log'), 'rb').read()):
        assert ADMIN_PASSWORD.encode() not in blob
    # without --restore-permissions: keys 0600, certificates 0644
    assert stat.S_IMODE(os.stat(os.path.join(d, 'pki', 'keys', 'apache.key.nopass')).st_mode) \
        == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(d, 'pki', 'certs', 'apache.cer')).st_mode) == 0o644


def test_backup_of_a_running_engine(source, tmp_path, served):
    """The database is copied with SQLite's backup API while the engine has it open."""
    copy = str(tmp_path / 'running')
    shutil.copytree(source, copy)
    run_setup(copy, FQDN, NEW_PASSWORD)
    eng = served(copy)
    assert eng.names() == INVENTORY
    path = str(tmp_path / 'live.backup')
    r = run_backup(copy, path, str(tmp_path / 'live.log'))
    assert r.returncode == 0, r.stderr
    d, _ = restore_fresh(tmp_path, path)
    assert inventory_names(d) == INVENTORY


# ------------------------------------------------------------------ refusals

def fatal(r):
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('FATAL: '), r.stderr
    assert 'Traceback' not in r.stdout + r.stderr
    return lines[0]


def assert_nothing_restored(d):
    for n in ('setup.json', 'engine.db', 'pki'):
        assert not os.path.exists(os.path.join(d, n)), n
    if os.path.isdir(d):
        assert [n for n in os.listdir(d) if n.startswith('.engine-restore')] == []


def rewrite(archive_path, dest, drop=(), replace=None, compressor='gz'):
    """A copy of the archive without some members, or with one member's bytes replaced
    (the md5sum left as it was)."""
    replace = replace or {}
    with tarfile.open(archive_path) as src, tarfile.open(dest, 'w:' + compressor) as out:
        for m in src.getmembers():
            if m.name in drop:
                continue
            data = replace.get(m.name, src.extractfile(m).read())
            m.size = len(data)
            out.addfile(m, io.BytesIO(data))
    return dest


def restore_refused(tmp_path, archive_path):
    d = str(tmp_path / 'target')
    line = fatal(run_restore(d, archive_path, str(tmp_path / 'r.log'),
                             '--provision-all-databases'))
    assert_nothing_restored(d)
    return line


def test_restore_refuses_a_file_that_is_not_a_tar(tmp_path):
    p = tmp_path / 'notes.txt'
    p.write_text('not a backup\n' * 100)
    line = restore_refused(tmp_path, str(p))
    assert line == ('FATAL: %s is not an engine backup (not a tar archive): give the file '
                    'engine-backup --mode=backup wrote' % p)


def test_restore_refuses_a_missing_file(tmp_path):
    line = restore_refused(tmp_path, str(tmp_path / 'nope.backup'))
    assert 'cannot read the backup %s' % (tmp_path / 'nope.backup') in line


def test_restore_refuses_a_truncated_archive(archive, tmp_path):
    p = str(tmp_path / 'cut.backup')
    with open(archive, 'rb') as f:
        data = f.read()
    with open(p, 'wb') as f:
        f.write(data[:len(data) * 2 // 3])
    line = restore_refused(tmp_path, p)
    assert line.startswith('FATAL: %s is truncated or damaged (' % p)
    assert line.endswith('copy the backup again, or make a new one with engine-backup '
                         '--mode=backup')


@pytest.mark.parametrize('member', engine_backup.MEMBERS)
def test_restore_refuses_a_missing_member(archive, tmp_path, member):
    p = rewrite(archive, str(tmp_path / 'partial.backup'), drop=(member,))
    assert restore_refused(tmp_path, p) == (
        'FATAL: %s is not a complete backup: the member %s is missing; make the backup again '
        'with engine-backup --mode=backup' % (p, member))


@pytest.mark.parametrize('member', ['./files', './db/engine_backup.db', './config'])
def test_restore_refuses_an_md5_mismatch(archive, tmp_path, member):
    with tarfile.open(archive) as tar:
        data = tar.extractfile(member).read()
    p = rewrite(archive, str(tmp_path / 'bad.backup'), replace={member: data + b'\n'})
    assert restore_refused(tmp_path, p) == (
        'FATAL: %s is corrupted: the md5 of %s does not match ./md5sum; copy the backup '
        'again, or make a new one' % (p, member))


def newer_archive(archive, dest):
    newer = '%d.%d.%d\n' % (ENGINE_VERSION[0], ENGINE_VERSION[1] + 1, 0)
    with tarfile.open(archive) as tar:
        md5sum = tar.extractfile('./md5sum').read().decode()
    old_md5 = hashlib.md5(('%d.%d.%d\n' % ENGINE_VERSION).encode()).hexdigest()
    md5sum = md5sum.replace(old_md5, hashlib.md5(newer.encode()).hexdigest())
    return rewrite(archive, dest, replace={'./version': newer.encode(),
                                           './md5sum': md5sum.encode()}), newer.strip()


def test_restore_refuses_a_newer_engine_version(archive, tmp_path):
    p, newer = newer_archive(archive, str(tmp_path / 'newer.backup'))
    assert restore_refused(tmp_path, p) == (
        'FATAL: the backup %s is of engine %s, newer than this engine (%d.%d.%d): restore it '
        'on an engine %s or newer' % ((p, newer) + ENGINE_VERSION + (newer,)))


def test_restore_refuses_a_set_up_engine_with_an_inventory(source, archive, tmp_path):
    d = str(tmp_path / 'busy')
    shutil.copytree(source, d)
    before = inventory_names(d)
    line = fatal(run_restore(d, archive, str(tmp_path / 'r.log'), '--provision-all-databases'))
    assert line.startswith('FATAL: %s already holds an engine (%s) with an inventory (' % (
        d, FQDN))
    assert line.endswith('a backup is restored only into a fresh engine; restore into a new '
                         'state directory, or move %s away first' % d)
    assert inventory_names(d) == before


def test_restore_needs_provisioning_when_there_is_no_database(archive, tmp_path):
    d = str(tmp_path / 'target')
    line = fatal(run_restore(d, archive, str(tmp_path / 'r.log')))
    assert line == ("FATAL: the database 'engine' does not exist in %s: give "
                    "--provision-all-databases to create it" % d)
    assert_nothing_restored(d)


def test_other_scopes_and_misplaced_options_are_refused(source, archive, tmp_path):
    line = fatal(run_backup(source, str(tmp_path / 'x'), str(tmp_path / 'l'), '--scope=db'))
    assert line == ('FATAL: --scope=db is not supported: this engine backs up and restores '
                    'everything, give --scope=all')
    line = fatal(run_restore(str(tmp_path / 't'), archive, str(tmp_path / 'l'),
                             '--archive-compressor=xz'))
    assert '--archive-compressor is an option of --mode=backup' in line
    line = fatal(run_backup(source, str(tmp_path / 'x'), str(tmp_path / 'l'),
                            '--restore-permissions'))
    assert line == 'FATAL: --restore-permissions is an option of --mode=restore'
    line = fatal(run_backup(source, str(tmp_path / 'x'), str(tmp_path / 'l'),
                            '--archive-compressor=lz4'))
    assert 'lz4' in line
    assert not os.path.exists(str(tmp_path / 'x'))


def test_backup_refuses_what_it_cannot_do(source, tmp_path):
    line = fatal(run_backup(str(tmp_path / 'empty'), str(tmp_path / 'x'), str(tmp_path / 'l')))
    assert line.startswith('FATAL: there is no set-up engine in %s to back up' % (
        tmp_path / 'empty'))
    line = fatal(run_backup(source, str(tmp_path / 'no' / 'such' / 'x'), str(tmp_path / 'l')))
    assert 'does not exist; give a --file in an existing directory' in line


# ------------------------------------------------------------------ engine-psql fix-ups

FIXUPS = [
    'DELETE FROM vm_static WHERE origin IN (5, 6)',
    "DELETE FROM vds_static WHERE vds_name = 'host1' OR vds_unique_id = 'hw-uuid-host1' "
    "OR host_name = '192.0.2.1'",
    "UPDATE storage_domain_static SET storage_name = storage_name || '_old_20260101T120000' "
    "WHERE storage_name = 'hosted_storage'",
]


def test_psql_fixups_change_what_the_engine_serves(archive, tmp_path, served):
    d, _ = restore_fresh(tmp_path, archive)
    r = psql(d, 'SELECT vm_name, origin FROM vm_static ORDER BY vm_name')
    assert (r.returncode, r.stdout) == (0, 'HostedEngine|6\nvm-a|3\nvm-b|3\n')
    for stmt in FIXUPS:
        r = psql(d, stmt)
        assert (r.returncode, r.stdout, r.stderr) == (0, '', '')
    r = psql(d, 'SELECT vds_name, host_name, vds_spm_id FROM vds_static; '
                'SELECT storage_name FROM storage_domain_static ORDER BY storage_name')
    assert r.stdout == 'host2|127.0.0.1|1\ndata1\nhosted_storage_old_20260101T120000\n'
    run_setup(d, FQDN, NEW_PASSWORD)
    names = served(d).names()
    assert names['vms'] == ['vm-a', 'vm-b']
    assert names['hosts'] == ['host2']
    assert names['storage_domains'] == ['data1', 'hosted_storage_old_20260101T120000']


def test_psql_change_reaches_a_running_engine(archive, tmp_path, served):
    d, _ = restore_fresh(tmp_path, archive)
    run_setup(d, FQDN, NEW_PASSWORD)
    eng = served(d)
    assert 'data1' in eng.names()['storage_domains']
    r = psql(d, "UPDATE storage_domain_static SET storage_name = 'data9' "
                "WHERE storage_name = 'data1'")
    assert r.returncode == 0, r.stderr
    assert eng.names()['storage_domains'] == ['data9', 'hosted_storage']


def test_psql_error_rolls_back_and_exits_1(archive, tmp_path):
    d, _ = restore_fresh(tmp_path, archive)
    r = psql(d, 'DELETE FROM vm_static', 'SELECT no_such_column FROM vm_static')
    assert r.returncode == 1
    assert r.stderr == 'ERROR:  no such column: no_such_column\n'
    assert r.stdout == ''
    r = psql(d, 'SELECT count(*) FROM vm_static')
    assert r.stdout == '3\n'       # the DELETE was rolled back
    r = psql(str(tmp_path / 'none'), 'SELECT 1')
    assert r.returncode == 1 and r.stderr.startswith('psql: error: the engine database does '
                                                     'not exist in ')


# ------------------------------------------------------------------ engine-setup after a restore

def test_engine_setup_keeps_the_restored_fqdn(archive, tmp_path):
    d, _ = restore_fresh(tmp_path, archive)
    with pytest.raises(StateError) as e:
        run_setup(d, 'other.lab.test', NEW_PASSWORD)
    assert str(e.value) == ('this engine was restored from a backup of %s: a restored engine '
                            'keeps its FQDN; set OVESETUP_CONFIG/fqdn=str:%s instead of '
                            'other.lab.test' % (FQDN, FQDN))
    assert not State(d).ready


def _cert(path):
    with open(path) as f:
        return f.read()


def test_engine_setup_renew_keeps_the_ca_and_issues_a_new_server_certificate(
        source, archive, tmp_path, served):
    d, _ = restore_fresh(tmp_path, archive)
    pki = EnginePki(d)
    ca, server, client = _cert(pki.ca_cert), _cert(pki.server_cert), _cert(pki.client_cert)
    assert run_setup(d, FQDN, NEW_PASSWORD, renew_pki=True) == 'restored'
    assert pem_fingerprint(_cert(pki.ca_cert)) == pem_fingerprint(ca)
    assert _cert(pki.server_cert) != server and _cert(pki.client_cert) != client
    assert stat.S_IMODE(os.stat(pki.server_key).st_mode) == 0o600
    eng = served(d)
    # the engine serves the new certificate, signed by the kept CA (the SDK verified it)
    assert pem_fingerprint(eng.server_cert_pem()) == pem_fingerprint(_cert(pki.server_cert))
    assert eng.names() == INVENTORY


def test_engine_setup_without_renew_keeps_the_certificates(archive, tmp_path):
    d, _ = restore_fresh(tmp_path, archive)
    pki = EnginePki(d)
    server = _cert(pki.server_cert)
    run_setup(d, FQDN, NEW_PASSWORD)
    assert _cert(pki.server_cert) == server
    st = State(d)
    try:
        assert st.check_admin('admin@internal', NEW_PASSWORD)
        assert not st.check_admin('admin@internal', ADMIN_PASSWORD)
    finally:
        st.close()


def load_guest_engine_setup(monkeypatch, state_dir, log_dir):
    spec = importlib.util.spec_from_file_location('guest_engine_setup',
                                                  os.path.join(GUEST_DIR, 'engine_setup.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, 'STATE_DIR', state_dir)
    monkeypatch.setattr(mod, 'LOG_DIR', log_dir)
    # no engine service to start here: the engine counts as running and healthy
    monkeypatch.setattr(mod, 'engine_pid', lambda: 1)
    monkeypatch.setattr(mod, 'wait_health', lambda out: 'DB Up!')
    return mod


def answers(tmp_path, fqdn=None, renew=None):
    p = tmp_path / 'answers.conf'
    lines = ['[environment:default]', 'OVESETUP_CONFIG/adminPassword=str:%s' % NEW_PASSWORD]
    if fqdn:
        lines.append('OVESETUP_CONFIG/fqdn=str:%s' % fqdn)
    if renew is not None:
        lines.append('OVESETUP_PKI/renew=bool:%s' % renew)
    p.write_text('\n'.join(lines) + '\n')
    return str(p)


def test_appliance_engine_setup_finds_the_restored_engine(archive, tmp_path, monkeypatch,
                                                          capsys):
    d, _ = restore_fresh(tmp_path, archive)
    mod = load_guest_engine_setup(monkeypatch, d, str(tmp_path / 'setup-logs'))
    ca = _cert(EnginePki(d).ca_cert)
    server = _cert(EnginePki(d).server_cert)
    # another FQDN: refused, naming both
    rc = mod.main(['--accept-defaults', '--config-append=' + answers(tmp_path, 'x.lab.test')])
    out = capsys.readouterr().out
    assert rc == 1
    assert ('[ ERROR ] this engine was restored from a backup of %s: a restored engine keeps '
            'its FQDN; set OVESETUP_CONFIG/fqdn=str:%s instead of x.lab.test' % (FQDN, FQDN)) \
        in out.splitlines()
    # no FQDN given: the restored one; renew on
    rc = mod.main(['--accept-defaults', '--config-append=' + answers(tmp_path, renew=True)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert ('[ INFO  ] Found a restored engine in %s: %s, backed up from engine %d.%d.%d; '
            'keeping its CA, inventory and FQDN' % ((d, FQDN) + ENGINE_VERSION)) \
        in out.splitlines()
    assert '[ INFO  ] Renewing the engine certificates (the engine CA is kept)' \
        in out.splitlines()
    assert '[ INFO  ] Execution of setup completed successfully' in out.splitlines()
    assert _cert(EnginePki(d).ca_cert) == ca and _cert(EnginePki(d).server_cert) != server
    assert NEW_PASSWORD not in out
    st = State(d)
    try:
        assert st.ready and st.setup['fqdn'] == FQDN
        assert st.check_admin('admin@internal', NEW_PASSWORD)
    finally:
        st.close()
    assert inventory_names(d) == INVENTORY


def test_appliance_engine_setup_first_setup_unchanged(tmp_path, monkeypatch, capsys):
    d = str(tmp_path / 'fresh')
    mod = load_guest_engine_setup(monkeypatch, d, str(tmp_path / 'setup-logs'))
    rc = mod.main(['--accept-defaults', '--config-append=' + answers(tmp_path, FQDN)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert '[ INFO  ] Creating CA: %s/pki/ca.pem' % d in out.splitlines()
    assert 'restored' not in out
    assert inventory_names(d)['data_centers'] == ['Default']


# ------------------------------------------------------------------ the appliance's wrappers

def test_wrappers_run_the_modules_on_the_appliance_state():
    for name, module in (('engine-backup', 'backup'), ('engine-psql.sh', 'psql')):
        path = os.path.join(GUEST_DIR, name)
        assert os.stat(path).st_mode & 0o111
        with open(path) as f:
            text = f.read()
        assert text.startswith('#!/bin/sh\n')
        assert ('exec /usr/bin/python3 -P -m ovirt_hosted_engine_setup.lab.engine.%s \\\n'
                '    --state-dir /var/lib/ovirt-engine-lab "$@"\n' % module) in text


def test_image_layout_installs_the_wrappers(tmp_path, monkeypatch):
    from ovirt_hosted_engine_setup.lab import appliance
    if not os.path.exists('/bin/busybox'):
        pytest.skip('busybox is not installed')
    monkeypatch.setattr(appliance, 'module_order', lambda tree, version, wanted: [])
    root = str(tmp_path / 'root')
    appliance.build_root(root, {}, str(tmp_path / 'kernel'), '0.0.0-test')
    for rel, name in (('usr/bin/engine-backup', 'engine-backup'),
                      ('usr/share/ovirt-engine/dbscripts/engine-psql.sh', 'engine-psql.sh')):
        p = os.path.join(root, rel)
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o755
        assert _cert(p) == _cert(os.path.join(GUEST_DIR, name))
    for mod in ('backup', 'psql', 'database'):
        assert os.path.exists(os.path.join(
            root, 'usr/lib/python3/dist-packages/ovirt_hosted_engine_setup/lab/engine',
            mod + '.py'))


def test_the_deploy_reads_this_backup_and_its_fixups_run(archive, tmp_path):
    """Both sides of the format: the deploy's archive check accepts this engine's backup,
    and the fix-up statements the deploy builds run through engine-psql."""
    from ovirt_hosted_engine_setup.deploy import restore_backup
    info = restore_backup.check_archive(archive, appliance_version=ENGINE_VERSION)
    assert (info.fqdn, info.version) == (FQDN, ENGINE_VERSION)
    d, _ = restore_fresh(tmp_path, archive)
    stmts = restore_backup.fixup_sql('host1', '192.0.2.1', 'hw-uuid-host2', 'hosted_storage',
                                     '20260101T120000')
    r = psql(d, *stmts)
    assert (r.returncode, r.stderr) == (0, '')
    names = inventory_names(d)
    assert names['vms'] == ['vm-a', 'vm-b']
    assert names['hosts'] == []          # host1 by name, host2 by its unique id
    assert names['storage_domains'] == ['data1', 'hosted_storage_old_20260101T120000']


def test_backup_of_an_engine_set_up_before_the_database(tmp_path):
    """A state directory with inventory.json only: the backup holds its inventory."""
    from ovirt_hosted_engine_setup.lab.engine.state import write_json
    d = str(tmp_path / 'old')
    run_setup(d, FQDN, ADMIN_PASSWORD)
    for n in ('engine.db', 'engine.db-wal', 'engine.db-shm'):
        if os.path.exists(os.path.join(d, n)):
            os.unlink(os.path.join(d, n))
    inv = database.initial_inventory()
    inv['vms']['v1'] = {'id': 'v1', 'name': 'old-vm', 'status': 'down'}
    write_json(os.path.join(d, 'inventory.json'), inv)
    path = str(tmp_path / 'old.backup')
    r = run_backup(d, path, str(tmp_path / 'b.log'))
    assert r.returncode == 0, r.stderr
    restored, _ = restore_fresh(tmp_path, path)
    assert inventory_names(restored)['vms'] == ['old-vm']


def test_restore_permissions_gives_the_recorded_modes(archive, tmp_path):
    """--restore-permissions: the modes recorded in ./files; without it 0644 (0600 keys)."""
    with tarfile.open(archive) as tar:
        files = tar.extractfile('./files').read()
        md5sum = tar.extractfile('./md5sum').read().decode()
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(files), mode='r:xz') as src, \
            tarfile.open(fileobj=out, mode='w:xz') as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name == 'etc/pki/ovirt-engine/certs/apache.cer':
                m.mode = 0o640
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    new_files = out.getvalue()
    md5sum = md5sum.replace(hashlib.md5(files).hexdigest(), hashlib.md5(new_files).hexdigest())
    p = rewrite(archive, str(tmp_path / 'modes.backup'),
                replace={'./files': new_files, './md5sum': md5sum.encode()})
    cert = os.path.join('pki', 'certs', 'apache.cer')
    d, _ = restore_fresh(tmp_path, p, name='kept')
    assert stat.S_IMODE(os.stat(os.path.join(d, cert)).st_mode) == 0o640
    d2 = str(tmp_path / 'default')
    r = run_restore(d2, p, str(tmp_path / 'r2.log'), '--provision-all-databases')
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(os.path.join(d2, cert)).st_mode) == 0o644


def test_restore_into_an_existing_empty_database(archive, tmp_path):
    """Without --provision-all-databases an empty database must be there: it is used."""
    d = str(tmp_path / 'provisioned')
    os.makedirs(d)
    database.Database(os.path.join(d, database.DB_FILE)).close()
    r = run_restore(d, archive, str(tmp_path / 'r.log'))
    assert r.returncode == 0, r.stderr
    assert inventory_names(d) == INVENTORY
