"""The deploy's check of an engine-backup archive, the FQDN rule and the database fix-ups."""
import bz2
import datetime
import gzip
import hashlib
import io
import lzma
import os
import sqlite3
import tarfile
import tracemalloc

import pytest

from ovirt_hosted_engine_setup.deploy import restore_backup as rb
from ovirt_hosted_engine_setup.deploy.restore_backup import RestoreError

from . import restore_helpers as rh
from .restore_helpers import make_backup

REMAKE = 'make the backup again with engine-backup --mode=backup'
DB = './db/engine_backup.db'


def _refused(path, appliance_version=None):
    with pytest.raises(RestoreError) as e:
        rb.check_archive(path, appliance_version)
    text = str(e.value)
    assert '\n' not in text
    return text


# ---------------------------------------------------------------- what is read

def test_reads_version_fqdn_members_and_compressors(tmp_path):
    path = make_backup(tmp_path)
    info = rb.check_archive(path, '4.5.6')
    assert info.version == (4, 5, 6) and info.version_text == '4.5.6'
    assert info.fqdn == rh.FQDN
    assert info.members == ['./version', './config', './md5sum', './files', DB]
    assert info.member_sizes[DB] == len(rh.db_dump().encode())
    assert info.size == os.path.getsize(path)
    assert (info.archive_compressor, info.files_compressor) == ('gzip', 'xz')
    assert info.config['ENGINE_FQDN'] == rh.FQDN and info.config['DB_DUMP_FORMAT'] == 'sql'
    assert info.scope == 'all' and info.db_member == DB
    assert info.version_checked and info.appliance_version == '4.5.6'


@pytest.mark.parametrize('archive', ['gzip', 'bzip2', 'xz', 'None'])
@pytest.mark.parametrize('files', ['xz', 'gzip'])
def test_each_compressor(tmp_path, archive, files):
    path = make_backup(tmp_path, archive_compressor=archive, files_compressor=files,
                       fqdn='engine.%s.%s.test' % (archive.lower(), files))
    info = rb.check_archive(path)
    assert (info.archive_compressor, info.files_compressor) == (archive, files)
    assert info.fqdn == 'engine.%s.%s.test' % (archive.lower(), files)


def test_version_read_back_with_build_suffix(tmp_path):
    info = rb.check_archive(make_backup(tmp_path, version='4.5.6.2-1.el9'), '4.5.6.2')
    assert info.version == (4, 5, 6, 2) and info.version_text == '4.5.6.2-1.el9'


def test_fqdn_quoted_in_protocols_conf(tmp_path):
    path = make_backup(tmp_path, fqdn='engine.quoted.test',
                       protocols_conf='ENGINE_FQDN="engine.quoted.test"\n')
    assert rb.check_archive(path).fqdn == 'engine.quoted.test'


def _files_with_link(name, target):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:xz') as tar:
        data = b'ENGINE_FQDN=engine.example.test\n'
        info = tarfile.TarInfo('etc/ovirt-engine/engine.conf.d/10-setup-protocols.conf')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        tar.addfile(info)
    return buf.getvalue()


def test_dwh_dump_and_relative_link_in_files_accepted(tmp_path):
    path = make_backup(tmp_path, extra={'./db/dwh_backup.db': b'-- dwh\n'},
                       files_data=_files_with_link('etc/pki/ovirt-engine/apache-ca.pem',
                                                   'ca.pem'))
    info = rb.check_archive(path)
    assert './db/dwh_backup.db' in info.members and info.fqdn == 'engine.example.test'


# ---------------------------------------------------------------- the version check

@pytest.mark.parametrize('backup, appliance', [
    ('4.5.6', '4.5.6'), ('4.5.5', '4.5.6'), ('4.4.10', '4.5.6'), ('4.5.6', (4, 5, 6)),
    ('4.5.6.0', '4.5.6'), ('4.5.6', '4.5.6.1')])
def test_version_not_newer_accepted(tmp_path, backup, appliance):
    info = rb.check_archive(make_backup(tmp_path, version=backup), appliance)
    assert info.version_checked


@pytest.mark.parametrize('backup, appliance', [
    ('4.6.0', '4.5.6'), ('4.5.7', '4.5.6'), ('4.5.6.1', (4, 5, 6)), ('5.0', '4.5.6')])
def test_newer_version_refused_naming_both(tmp_path, backup, appliance):
    path = make_backup(tmp_path, version=backup)
    shown = appliance if isinstance(appliance, str) else '.'.join(map(str, appliance))
    assert _refused(path, appliance) == (
        "the backup %s is of engine %s, newer than the appliance's engine %s: use an "
        "appliance with engine %s or newer" % (path, backup, shown, backup))


@pytest.mark.parametrize('unknown', [None, '', 'unknown'])
def test_unknown_appliance_version_is_not_checked(tmp_path, unknown):
    info = rb.check_archive(make_backup(tmp_path, version='9.9.9'), unknown)
    assert not info.version_checked and info.appliance_version == 'unknown'
    assert rb.check_version(info, unknown) is False
    with pytest.raises(RestoreError, match='use an appliance with engine 9.9.9 or newer'):
        rb.check_version(info, '4.5.6')
    assert info.version_checked and info.appliance_version == '4.5.6'


def test_malformed_appliance_version_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError):
        rb.check_archive(make_backup(tmp_path), 'four')


def test_version_member_not_a_version(tmp_path):
    path = make_backup(tmp_path, version='banana')
    assert _refused(path) == ("%s is not an engine backup: ./version holds 'banana', not an "
                              "engine version; %s" % (path, REMAKE))


# ---------------------------------------------------------------- the file itself

def test_directory(tmp_path):
    assert _refused(str(tmp_path)) == (
        'the backup file %s is a directory: give the file written by engine-backup '
        '--mode=backup' % tmp_path)


def test_missing_file(tmp_path):
    path = str(tmp_path / 'nope.backup')
    assert 'does not exist' in _refused(path)


def test_no_path():
    assert 'no backup file given' in _refused('')


def test_empty_file(tmp_path):
    path = tmp_path / 'empty'
    path.write_bytes(b'')
    assert 'is empty' in _refused(str(path))


def test_not_a_regular_file(tmp_path):
    path = str(tmp_path / 'fifo')
    os.mkfifo(path)
    assert 'is not a regular file' in _refused(path)


def test_unreadable_file(tmp_path, monkeypatch):
    path = make_backup(tmp_path)

    def denied(p, *a, **kw):
        raise PermissionError(13, 'Permission denied', p)
    monkeypatch.setattr(rb, 'open', denied, raising=False)
    assert _refused(path) == ('cannot read the backup file %s (Permission denied): check its '
                              'permissions' % path)


@pytest.mark.parametrize('compress', [
    lambda d: d, gzip.compress, bz2.compress, lzma.compress],
    ids=['plain', 'gzip', 'bzip2', 'xz'])
def test_not_a_tar(tmp_path, compress):
    path = tmp_path / 'notes.txt'
    path.write_bytes(compress(b'this is not an engine backup\n' * 100))
    text = _refused(str(path))
    assert text.startswith('the backup file %s is not a tar archive (gzip, bzip2, xz or plain)'
                           % path)
    assert text.endswith('give the file written by engine-backup --mode=backup')


@pytest.mark.parametrize('archive', ['gzip', 'bzip2', 'xz', 'None'])
def test_truncated(tmp_path, archive):
    path = make_backup(tmp_path, archive_compressor=archive, db_size=256 * 1024)
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) * 2 // 3])
    text = _refused(path)
    assert text.startswith('the backup file %s is truncated' % path)
    assert text.endswith('copy it again or ' + REMAKE)


def test_plain_tar_cut_between_members_is_truncated(tmp_path):
    """Cut on a block boundary: every header read is whole, only the end-of-archive
    marker (and the members after the cut) are missing."""
    path = make_backup(tmp_path, archive_compressor='None')
    with tarfile.open(path) as tar:
        cut = tar.getmember('./md5sum').offset       # the headers before it are complete
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:cut])
    assert _refused(path) == ('the backup file %s is truncated (it ends inside the archive): '
                              'copy it again or %s' % (path, REMAKE))


def test_plain_tar_damaged_after_last_member(tmp_path):
    path = make_backup(tmp_path, archive_compressor='None')
    data = bytearray(open(path, 'rb').read())
    with tarfile.open(path) as tar:
        end = max(m.offset_data + m.size for m in tar.getmembers())
    block = -(-end // 512) * 512
    data[block:block + 512] = b'\x01' * 512
    with open(path, 'wb') as f:
        f.write(data)
    assert 'is corrupted (damaged data after its last member)' in _refused(path)


# ---------------------------------------------------------------- members

@pytest.mark.parametrize('member', ['./version', './config', './md5sum', './files', DB])
def test_member_missing(tmp_path, member):
    path = make_backup(tmp_path, omit=(member,))
    assert _refused(path) == ('%s is not a complete engine backup: the member %s is missing; '
                              'make the backup again with engine-backup --mode=backup'
                              % (path, member))


def test_db_member_named_by_config(tmp_path):
    cfg = {'SCOPE': 'all', 'DB_BACKUP_FILE_NAME': 'other.db'}
    path = make_backup(tmp_path, config=cfg)
    assert rb.check_archive(path).db_member == './db/other.db'


@pytest.mark.parametrize('member', ['./version', './config', './files', DB])
def test_md5_mismatch(tmp_path, member):
    path = make_backup(tmp_path, corrupt=(member,))
    assert _refused(path) == ('%s is corrupted: the md5 of %s does not match ./md5sum; copy it '
                              'again or %s' % (path, member, REMAKE))


def test_md5sum_without_a_line_for_a_member(tmp_path):
    ok = make_backup(tmp_path, name='ok.backup')
    with tarfile.open(ok) as tar:
        lines = tar.extractfile('./md5sum').read().decode().splitlines()
    path = make_backup(tmp_path, md5_lines=[ln for ln in lines if not ln.endswith('./files')])
    assert _refused(path) == ('%s is corrupted: ./md5sum has no line for ./files; copy it '
                              'again or %s' % (path, REMAKE))


def test_md5sum_lists_a_member_that_is_not_there(tmp_path):
    ok = make_backup(tmp_path, name='ok.backup')
    with tarfile.open(ok) as tar:
        lines = tar.extractfile('./md5sum').read().decode().splitlines()
    path = make_backup(tmp_path, md5_lines=lines + ['0' * 32 + '  ./db/dwh_backup.db'])
    assert 'the member ./db/dwh_backup.db is missing' in _refused(path)


def test_md5sum_malformed_line(tmp_path):
    path = make_backup(tmp_path, md5_lines=['not an md5 line'])
    assert 'line 1 of ./md5sum is not "<md5>  <path>"' in _refused(path)


def test_md5sum_binary_mode_lines_accepted(tmp_path):
    ok = make_backup(tmp_path, name='ok.backup')
    with tarfile.open(ok) as tar:
        lines = tar.extractfile('./md5sum').read().decode().splitlines()
    path = make_backup(tmp_path, md5_lines=[ln.replace('  ', ' *', 1) for ln in lines])
    assert rb.check_archive(path).fqdn == rh.FQDN


@pytest.mark.parametrize('name', ['../evil', '/etc/evil', './db/../../evil'])
def test_member_outside_the_archive_refused(tmp_path, name):
    path = make_backup(tmp_path, extra={name: b'x'})
    text = _refused(path)
    assert 'holds the member %s outside the archive' % name in text
    assert 'it is not an engine backup' in text


def test_file_named_as_the_root_refused(tmp_path):
    path = make_backup(tmp_path, extra={'./': b'x'})
    assert "holds a file named './', the archive root" in _refused(path)


@pytest.mark.parametrize('kind', [tarfile.FIFOTYPE, tarfile.CHRTYPE])
def test_special_member_refused(tmp_path, kind):
    path = make_backup(tmp_path)
    plain = str(tmp_path / 'plain.backup')
    with tarfile.open(path) as src, tarfile.open(plain, 'w') as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        info = tarfile.TarInfo('./db/pipe')
        info.type = kind
        dst.addfile(info)
    assert 'holds ./db/pipe, neither a file nor a directory' in _refused(plain)


def test_symlink_member_refused(tmp_path):
    path = make_backup(tmp_path, links={'./db/link.db': '/etc/shadow'})
    assert 'holds a link ./db/link.db -> /etc/shadow' in _refused(path)


def test_hardlink_member_refused(tmp_path):
    path = make_backup(tmp_path)
    # a plain copy of the archive with a hard link appended
    plain = str(tmp_path / 'plain.backup')
    with tarfile.open(path) as src, tarfile.open(plain, 'w') as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        info = tarfile.TarInfo('./db/again.db')
        info.type = tarfile.LNKTYPE
        info.linkname = DB
        dst.addfile(info)
    assert 'holds a link ./db/again.db -> %s' % DB in _refused(plain)


def test_duplicate_member_refused(tmp_path):
    path = make_backup(tmp_path, extra={'./version': b'4.4.0\n'})
    assert 'holds the member ./version twice' in _refused(path)


def test_scope_not_all_refused(tmp_path):
    path = make_backup(tmp_path, config={'SCOPE': 'db',
                                         'DB_BACKUP_FILE_NAME': 'engine_backup.db'})
    assert _refused(path) == ('%s is a backup of scope db, not of the whole engine: make a full '
                              'backup with engine-backup --mode=backup --scope=all' % path)


def test_config_line_not_key_value(tmp_path):
    path = make_backup(tmp_path, config={'SCOPE': 'all', 'this is': 'not'})
    assert 'line 2 of ./config is not KEY=value' in _refused(path)


# ---------------------------------------------------------------- ./files

def test_files_not_a_tar(tmp_path):
    path = make_backup(tmp_path, files_data=lzma.compress(b'no tar here' * 100))
    assert _refused(path) == ('the member ./files of the backup %s is not a tar archive '
                              '(invalid header): %s' % (path, REMAKE))


def test_files_truncated(tmp_path):
    whole = rh.files_tar(compressor='gzip')
    path = make_backup(tmp_path, files_data=whole[:len(whole) // 2])
    assert 'the member ./files of the backup %s' % path in _refused(path)


def test_files_member_outside_root_refused(tmp_path):
    path = make_backup(tmp_path, files_extra={'../../root/.ssh/authorized_keys': b'key'})
    assert 'holds ../../root/.ssh/authorized_keys outside /' in _refused(path)


@pytest.mark.parametrize('target', ['../../../../../root/secret', '/root/secret'])
def test_files_link_pointing_outside_refused(tmp_path, target):
    path = make_backup(tmp_path, files_data=_files_with_link(
        'etc/pki/ovirt-engine/keys/engine.p12', target))
    assert ('holds the link etc/pki/ovirt-engine/keys/engine.p12 -> %s pointing outside the '
            'backup' % target) in _refused(path)


@pytest.mark.parametrize('conf', ['', 'ENGINE_PROXY_ENABLED=true\n', 'ENGINE_FQDN=\n'])
def test_no_fqdn(tmp_path, conf):
    path = make_backup(tmp_path, protocols_conf=conf)
    assert _refused(path) == (
        'the backup %s names no engine FQDN (no ENGINE_FQDN in etc/ovirt-engine/engine.conf.d/'
        '10-setup-protocols.conf of its ./files): %s' % (path, REMAKE))


def test_config_and_files_naming_other_engines_refused(tmp_path):
    path = make_backup(tmp_path, protocols_conf='ENGINE_FQDN=other.example.test\n')
    assert _refused(path) == (
        'the backup %s is inconsistent: its ./config names the engine %s, its files the '
        'engine other.example.test; %s' % (path, rh.FQDN, REMAKE))


def test_fqdn_not_a_host_name(tmp_path):
    path = make_backup(tmp_path, protocols_conf='ENGINE_FQDN=not a name\n')
    assert "names the engine FQDN 'not a name', not a host name" in _refused(path)


# ---------------------------------------------------------------- streaming

def test_large_db_member_read_in_chunks(tmp_path, monkeypatch):
    """A 20 MiB dump: hashed in chunks of at most CHUNK_SIZE, never held whole."""
    size = 20 << 20
    # gzip ./files: an xz decoder alone takes 8 MiB for its dictionary
    path = make_backup(tmp_path, archive_compressor='None', files_compressor='gzip',
                       db_size=size)
    reads = []
    real = tarfile.TarFile.extractfile

    class Recorder:
        def __init__(self, f, name):
            self.f, self.name = f, name

        def read(self, n=-1):
            data = self.f.read(n)
            reads.append((self.name, n, len(data)))
            return data

    def extractfile(self, member):
        return Recorder(real(self, member), member.name)
    monkeypatch.setattr(tarfile.TarFile, 'extractfile', extractfile)
    tracemalloc.start()
    try:
        info = rb.check_archive(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.member_sizes[DB] == size
    db_reads = [(n, got) for name, n, got in reads if name == DB]
    assert sum(got for _, got in db_reads) == size
    assert len(db_reads) >= size // rb.CHUNK_SIZE
    assert all(n is not None and 0 < n <= rb.CHUNK_SIZE for n, _ in db_reads)
    assert peak < 8 << 20, peak


def test_large_db_member_md5_checked(tmp_path):
    path = make_backup(tmp_path, db_size=20 << 20, corrupt=(DB,))
    assert 'the md5 of %s does not match ./md5sum' % DB in _refused(path)


# ---------------------------------------------------------------- the FQDN rule

def test_check_fqdn_same():
    assert rb.check_fqdn('engine.example.test', 'engine.example.test') == 'engine.example.test'
    assert rb.check_fqdn('engine.example.test', 'Engine.Example.Test.') == 'Engine.Example.Test'


def test_check_fqdn_not_given_takes_the_backups():
    assert rb.check_fqdn('engine.example.test', None) == 'engine.example.test'
    assert rb.check_fqdn('engine.example.test', '') == 'engine.example.test'


def test_check_fqdn_different_refused():
    with pytest.raises(RestoreError) as e:
        rb.check_fqdn('engine.example.test', 'other.example.test')
    assert str(e.value) == ('the backup is of engine engine.example.test: the new engine must '
                            'have the same FQDN; give engine.example.test as '
                            'OVEHOSTED_NETWORK/fqdn')


# ---------------------------------------------------------------- the database fix-ups

STAMP = '20261203T161500'


def test_fixup_sql_statements():
    assert rb.fixup_sql('host1', 'host1.example.test', 'uid-1', 'hosted_storage', STAMP) == [
        'DELETE FROM vm_static WHERE origin IN (5, 6);',
        "DELETE FROM vds_static WHERE vds_name = 'host1' OR vds_unique_id = 'uid-1' OR "
        "host_name = 'host1.example.test';",
        "UPDATE storage_domain_static SET storage_name = storage_name || "
        "'_old_20261203T161500' WHERE storage_name = 'hosted_storage';",
    ]


def test_fixup_sql_stamp_from_datetime_and_checked():
    sql = rb.fixup_sql('h', 'a', 'u', 'sd', datetime.datetime(2026, 12, 3, 16, 15, 0))
    assert "'_old_20261203T161500'" in sql[2]
    with pytest.raises(ValueError):
        rb.fixup_sql('h', 'a', 'u', 'sd', "2026'; DROP TABLE vm_static; --")


def test_fixup_sql_quotes_values():
    sql = rb.fixup_sql("o'brien", 'a', '', "it's", STAMP)
    assert sql[1] == "DELETE FROM vds_static WHERE vds_name = 'o''brien' OR host_name = 'a';"
    assert sql[2].endswith("WHERE storage_name = 'it''s';")


def test_fixup_sql_refuses_nul_and_nothing_to_match():
    with pytest.raises(RestoreError, match='NUL'):
        rb.fixup_sql('host\x001', 'a', 'u', 'sd', STAMP)
    with pytest.raises(RestoreError, match='NUL'):
        rb.fixup_sql('host1', 'a', 'u', 'sd\x00', STAMP)
    with pytest.raises(RestoreError, match='no host name, unique id or address'):
        rb.fixup_sql('', None, '', 'sd', STAMP)
    with pytest.raises(RestoreError, match='no hosted-engine storage domain name'):
        rb.fixup_sql('h', 'a', 'u', '', STAMP)


def _restored_db():
    db = sqlite3.connect(':memory:')
    db.executescript(rh.db_dump())
    db.execute("INSERT INTO vds_static VALUES ('other-id', 'host2', 'host2.example.test', "
               "54321, ?, 2, 'uid-2', '{}')", (rh.CLUSTER_ID,))
    return db


@pytest.mark.parametrize('name, address, uid', [
    (rh.HOST_NAME, 'fresh.example.test', ''),
    ('fresh', rh.HOST_ADDRESS, None),
    ('fresh', 'fresh.example.test', rh.HOST_UNIQUE_ID)])
def test_fixups_applied_to_a_restored_dump(name, address, uid):
    """The statements, run on the dump, remove the old engine VM and this host (matched by
    any of name, address, unique id) and rename the old hosted-engine storage domain,
    leaving everything else; the report SELECTs find what they change."""
    db = _restored_db()
    report = [db.execute(q).fetchall()
              for q in rb.fixup_report_sql(name, address, uid, rh.HE_SD_NAME)]
    assert report == [[(rh.HE_VM_ID, 'HostedEngine', 6)],
                      [(rh.HOST_ID, rh.HOST_NAME, rh.HOST_ADDRESS)],
                      [(rh.HE_SD_ID, rh.HE_SD_NAME)]]
    for sql in rb.fixup_sql(name, address, uid, rh.HE_SD_NAME, STAMP):
        db.execute(sql)
    assert db.execute('SELECT vm_name FROM vm_static').fetchall() == [('web1',)]
    assert db.execute('SELECT vds_name FROM vds_static').fetchall() == [('host2',)]
    assert sorted(db.execute('SELECT storage_name FROM storage_domain_static')) == [
        ('data',), ('hosted_storage_old_%s' % STAMP,)]


def test_fixups_hostile_name_matches_nothing_else():
    db = _restored_db()
    for sql in rb.fixup_sql("x' OR '1'='1", "y' OR 1=1 --", '', 'nothing', STAMP):
        db.execute(sql)
    assert db.execute('SELECT count(*) FROM vds_static').fetchone() == (2,)
    assert db.execute('SELECT count(*) FROM storage_domain_static').fetchone() == (2,)


def test_parse_rows():
    assert rb.parse_rows('a|b|c\n\nd||f\n') == [['a', 'b', 'c'], ['d', '', 'f']]
    assert rb.parse_rows('') == [] and rb.parse_rows(None) == []
    assert rb.parse_rows('x|y\n', columns=2) == [['x', 'y']]
    with pytest.raises(RestoreError, match="'x|y|z' has 3 fields, not 2"):
        rb.parse_rows('x|y|z\n', columns=2)


def test_parse_versions():
    assert rb.parse_version('4.5.6') == (4, 5, 6)
    assert rb.parse_version('4.5.6.2-1.el9') == (4, 5, 6, 2)
    assert rb.parse_version((4, 5)) == (4, 5)
    assert rb.parse_version('unknown') is None and rb.parse_version('') is None
    assert rb.version_newer((4, 6), (4, 5, 6)) and not rb.version_newer((4, 5, 6, 0),
                                                                         (4, 5, 6))


def test_helper_md5s_match_what_md5sum_prints(tmp_path):
    """The helper writes ./md5sum as md5sum prints it: '<md5>  ./path'."""
    path = make_backup(tmp_path)
    with tarfile.open(path) as tar:
        text = tar.extractfile('./md5sum').read().decode()
        for line in text.splitlines():
            digest, name = line.split('  ')
            assert hashlib.md5(tar.extractfile(name).read()).hexdigest() == digest
        assert tar.getmember(DB).mode == 0o600
    with tarfile.open(fileobj=io.BytesIO(tarfile.open(path).extractfile('./files').read())) \
            as files:
        assert files.getmember('etc/pki/ovirt-engine/private/ca.pem').mode == 0o600
    assert os.stat(path).st_mode & 0o777 == 0o600


# ---------------------------------------------------------------- the lab engine's engine-backup

@pytest.fixture(scope='module')
def lab_engine_state(tmp_path_factory):
    from ovirt_hosted_engine_setup.lab.engine.state import run_setup
    state_dir = str(tmp_path_factory.mktemp('engine') / 'state')
    run_setup(state_dir, 'engine.lab.test', 'lab-Admin-pw1')
    return state_dir


@pytest.mark.parametrize('archive, files', [('gzip', 'xz'), ('bzip2', 'gzip'), ('xz', 'xz'),
                                            ('None', 'gzip')])
def test_lab_engine_backup_is_accepted(lab_engine_state, tmp_path, archive, files):
    """What the lab's engine-backup --mode=backup writes passes the deploy's check, and the
    fix-ups run on its database dump."""
    from ovirt_hosted_engine_setup.lab.engine import backup as engine_backup
    from ovirt_hosted_engine_setup.lab.engine.state import ENGINE_VERSION
    path = str(tmp_path / 'engine.backup')
    engine_backup.backup(lab_engine_state, path, engine_backup.Output(str(tmp_path / 'log')),
                         archive, files)
    info = rb.check_archive(path, ENGINE_VERSION)
    assert (info.fqdn, info.version) == ('engine.lab.test', ENGINE_VERSION)
    assert (info.archive_compressor, info.files_compressor) == (archive, files)
    assert info.db_member == DB and info.version_checked
    with pytest.raises(RestoreError, match='newer than the appliance'):
        rb.check_version(info, (ENGINE_VERSION[0] - 1, 99))
    with tarfile.open(path) as tar:
        dump = tar.extractfile(DB).read().decode()
    db = sqlite3.connect(':memory:')
    db.executescript(dump)
    for sql in (rb.fixup_report_sql('host1', 'host1.lab.test', 'uid', 'hosted_storage')
                + rb.fixup_sql('host1', 'host1.lab.test', 'uid', 'hosted_storage', STAMP)):
        db.execute(sql)
