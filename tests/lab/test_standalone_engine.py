"""hosted-engine-lab standalone-engine: a standalone engine on the lab network, populated
through its REST API, backed up with engine-backup, stopped.

One lab of 3 hosts for the module; the tests run in order: the refusals before an engine
exists, up --populate (checked from host1 with ovirt-engine-sdk-python, as an admin's
client on the network sees the engine), a second up refused, backup (refused to an
unwritable path, then written), up again on the same state (populate keeps what is there),
down, and `hosted-engine-lab down` stopping an engine that runs."""
import hashlib
import io
import json
import os
import re
import signal
import stat
import subprocess
import tarfile

import pytest

from daemon_proc import python, wait_for
from ovirt_hosted_engine_setup.lab import standalone_engine as standalone
from ovirt_hosted_engine_setup.lab.lab import Lab, alive

from .conftest import LabRunner, module_lab, namespace_processes, outlived

lab = module_lab(3, prefix='he-lab-standalone-')

ADMIN_PW = 'Standalone-admin-Pw1'


def record(lab):
    with open(os.path.join(lab.dir, standalone.DIR, 'standalone.json')) as f:
        return json.load(f)


def one_line_error(r, *words):
    """A refusal: exit 1, one line on stderr naming the problem, no traceback."""
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('hosted-engine-lab: '), r.stderr
    assert 'Traceback' not in r.stdout + r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def sdk(lab, body, password=ADMIN_PW, timeout=120):
    """Run body (Python, with conn and types) in host1 against https://engine.lab.test;
    return what it prints last, as JSON. The password goes on stdin."""
    ca = os.path.join(lab.dir, standalone.DIR, 'state', 'pki', 'ca.pem')
    code = ('import json, sys\nimport ovirtsdk4 as sdk\ntypes = sdk.types\n'
            'conn = sdk.Connection(url="https://engine.lab.test/ovirt-engine/api", '
            'username="admin@internal", password=sys.stdin.readline().rstrip("\\n"), '
            'ca_file=%r, timeout=60)\n' % ca + body + '\nconn.close()\n')
    r = lab.exec('host1', python(), '-c', code, input=password + '\n', check=False,
                 timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


INVENTORY = r'''
s = conn.system_service()
dcs = {d.name: d.id for d in s.data_centers_service().list()}
out = {"dcs": sorted(dcs),
       "dc_status": {d.name: d.status.value for d in s.data_centers_service().list()},
       "clusters": {c.name: c.data_center.id == dcs.get("Legacy")
                    for c in s.clusters_service().list()},
       "hosts": {h.name: [h.status.value, h.cluster.id] for h in s.hosts_service().list()},
       "cluster_id": s.clusters_service().list(search="name=LegacyCluster")[0].id,
       "sds": {d.name: [d.id, d.type.value, d.storage.type.value, d.storage.path,
                        d.status.value] for d in s.storage_domains_service().list()},
       "vms": {v.name: [v.status.value, v.cluster.id, v.memory]
               for v in s.vms_service().list()}}
print(json.dumps(out))
'''


def test_a_command_that_hangs_is_one_error_line(tmp_path, monkeypatch):
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(['nsenter', '-t', '1', '-n', '--', '/x/bin/python',
                                         '-m', 'mod', 'populate'], 540)
    monkeypatch.setattr(standalone.StandaloneEngine, '_stop', hang)
    se = standalone.StandaloneEngine(Lab(str(tmp_path)))
    os.makedirs(se.dir)
    se.save({'holder': None, 'engine': None, 'backup': '/x'})
    with pytest.raises(standalone.LabError) as e:
        se.down()
    assert str(e.value) == ('python -m mod populate did not finish within 540 s; the '
                            "standalone engine's log: %s" % se.log_file)


def test_up_without_a_lab(own_lab_dir):
    r = LabRunner(own_lab_dir).cli('standalone-engine', 'up', check=False)
    one_line_error(r, 'no lab is up', 'hosted-engine-lab up')
    assert not os.path.exists(os.path.join(own_lab_dir, standalone.DIR, 'standalone.json'))


def test_bad_password_file_and_populate_on_one_host(own_lab_dir, tmp_path):
    own = LabRunner(own_lab_dir)
    r = own.cli('standalone-engine', 'up', '--admin-password-file', str(tmp_path / 'none'),
                check=False)
    one_line_error(r, 'cannot read the admin password file', str(tmp_path / 'none'))
    (tmp_path / 'empty').write_text('')
    r = own.cli('standalone-engine', 'up', '--populate', '--root-password-file',
                str(tmp_path / 'empty'), check=False)
    one_line_error(r, 'root password file', 'is empty')
    (tmp_path / 'pw').write_text('x\n')
    r = own.cli('standalone-engine', 'up', '--root-password-file', str(tmp_path / 'pw'),
                check=False)
    one_line_error(r, '--root-password-file', 'add --populate')
    own.cli('up', '--hosts', '1', timeout=300)
    r = own.cli('standalone-engine', 'up', '--populate', check=False)
    one_line_error(r, 'only host1', '--hosts 3')
    assert standalone.StandaloneEngine(Lab(own_lab_dir)).status() is None


def test_backup_without_an_engine(lab, tmp_path):
    r = lab.cli('standalone-engine', 'backup', str(tmp_path / 'b.tar.gz'), check=False)
    one_line_error(r, 'no standalone engine', 'standalone-engine up')
    assert not os.path.exists(tmp_path / 'b.tar.gz')


def test_up_refused_while_something_holds_the_engine_address(lab):
    # what an engine VM deployed in the lab looks like on the network: the address answers
    lab.exec('host3', 'ip', 'addr', 'add', '192.168.222.200/24', 'dev', 'eth0')
    try:
        r = lab.cli('standalone-engine', 'up', check=False, timeout=120)
    finally:
        lab.exec('host3', 'ip', 'addr', 'del', '192.168.222.200/24', 'dev', 'eth0')
    one_line_error(r, '192.168.222.200', 'already in use')
    # refused before anything was made
    assert standalone.StandaloneEngine(Lab(lab.dir)).status() is None
    assert 'standalone engine' not in lab.cli('status').stdout


def test_up_populate(lab, tmp_path):
    pw_file = tmp_path / 'admin-pw'
    pw_file.write_text(ADMIN_PW + '\n')
    r = lab.cli('standalone-engine', 'up', '--populate', '--admin-password-file',
                str(pw_file), timeout=400)
    out = r.stdout
    assert 'DB Up' in out
    assert 'FQDN:           engine.lab.test' in out
    assert 'address:        192.168.222.200' in out
    assert 'admin user:     admin@internal' in out
    from ovirt_hosted_engine_setup.deploy.engine_api import fingerprint
    with open(os.path.join(lab.dir, standalone.DIR, 'state', 'pki', 'ca.pem')) as f:
        assert 'CA fingerprint: SHA256 %s' % fingerprint(f.read()) in out
    assert 'hosts host2, host3 are up' in out
    for name in ('standalone.json', 'engine.log', 'engine.out'):
        with open(os.path.join(lab.dir, standalone.DIR, name)) as f:
            text = f.read()
        assert ADMIN_PW not in text and 'lab-host-Pa55' not in text, name
    assert ADMIN_PW not in r.stdout + r.stderr

    inv = sdk(lab, INVENTORY)
    assert inv['dcs'] == ['Default', 'Legacy']
    # no storage domain attached to either: both uninitialized, as oVirt shows them
    assert inv['dc_status'] == {'Default': 'uninitialized', 'Legacy': 'uninitialized'}
    assert inv['clusters'] == {'Default': False, 'LegacyCluster': True}
    assert inv['hosts'] == {'host2': ['up', inv['cluster_id']],
                            'host3': ['up', inv['cluster_id']]}
    storage = os.path.join(lab.dir, 'storage', standalone.POPULATE_SD_DIR)
    sd_id, sd_type, storage_type, path, status = inv['sds']['legacy_data']
    assert (sd_type, storage_type, path, status) == ('data', 'localfs', storage, 'unattached')
    # created on the storage by host2's agent: the domain's metadata names it
    with open(os.path.join(storage, sd_id, 'dom_md', 'metadata')) as f:
        md = f.read()
    assert 'DESCRIPTION=legacy_data' in md and 'CLASS=Data' in md and 'SDUUID=%s' % sd_id in md
    assert inv['vms'] == {n: ['down', inv['cluster_id'], standalone.POPULATE_VM_MEMORY]
                          for n in standalone.POPULATE_VMS}
    # the hosts' agents trust the engine CA (installed over SSH by the engine)
    for h in ('host2', 'host3'):
        assert os.path.isfile(os.path.join(lab.dir, 'hosts', h,
                                           'var-lib-ovirt-hosted-engine-hostd', 'pki',
                                           'trusted-cas', 'engine-engine.lab.test.pem'))
    st = lab.cli('status')
    assert re.search(r'standalone engine: up \(pid \d+\)\s+engine.lab.test 192.168.222.200',
                     st.stdout), st.stdout


ADD_FAULTS = r'''
s = conn.system_service()
out = []
for add in (lambda: s.data_centers_service().add(types.DataCenter(name="Legacy")),
            lambda: s.clusters_service().add(types.Cluster(
                name="c2", data_center=types.DataCenter(name="nowhere"))),
            lambda: s.vms_service().add(types.Vm(
                name="legacy-vm1", cluster=types.Cluster(name="LegacyCluster"),
                template=types.Template(name="Blank"))),
            lambda: s.vms_service().add(types.Vm(
                name="bad name", cluster=types.Cluster(name="LegacyCluster"),
                template=types.Template(name="Blank"))),
            lambda: s.storage_domains_service().add(types.StorageDomain(
                name="sd2", type=types.StorageDomainType.DATA, host=types.Host(name="host2"),
                storage=types.HostStorage(type=types.StorageType.LOCALFS,
                                          path="/nonexistent/dir"))),
            lambda: s.storage_domains_service().add(types.StorageDomain(
                name="sd3", type=types.StorageDomainType.DATA, host=types.Host(name="host2"),
                storage=types.HostStorage(type=types.StorageType.ISCSI, path="x")))):
    try:
        add()
        out.append(None)
    except sdk.Error as e:
        out.append([e.code, str(e)])
out.append(sorted(d.name for d in s.storage_domains_service().list()))
print(json.dumps(out))
'''


def test_api_refuses_bad_adds(lab):
    dc, cl, vm, name, sd_path, sd_type, sds = sdk(lab, ADD_FAULTS)
    assert dc[0] == 409 and 'name is already in use' in dc[1]
    assert cl[0] == 404 and 'nowhere' in cl[1]
    assert vm[0] == 409
    assert name[0] == 400 and 'not valid' in name[1]
    assert sd_path[0] == 409 and '/nonexistent/dir' in sd_path[1]
    assert sd_type[0] == 400 and 'iscsi' in sd_type[1]
    assert sds == ['legacy_data']


def test_second_up_refused(lab):
    r = lab.cli('standalone-engine', 'up', check=False)
    one_line_error(r, 'already runs', 'standalone-engine down')


def test_backup_to_an_unwritable_path(lab, tmp_path):
    for dest in ('/nonexistent-dir/engine.backup', str(tmp_path)):
        r = lab.cli('standalone-engine', 'backup', dest, check=False)
        one_line_error(r, dest)
    # refused before anything changed: the engine still runs
    assert alive(record(lab)['engine'])


def engine_processes(rec):
    """Records of every process in the standalone engine's namespaces (taken before it is
    stopped: afterwards the namespaces' numbers may belong to new namespaces)."""
    return namespace_processes([(kind, rec['ns'][kind], rec['holder'])
                                for kind in ('mnt', 'net')])


def test_backup(lab, tmp_path):
    rec = record(lab)
    eng = rec['engine']
    before = engine_processes(rec)
    assert eng['pid'] in [r['pid'] for r in before]
    dest = tmp_path / 'engine.backup'
    r = lab.cli('standalone-engine', 'backup', str(dest), timeout=300)
    assert 'Packing into file' in r.stdout and 'Done.' in r.stdout
    size = os.path.getsize(dest)
    assert '%s (%d bytes)' % (dest, size) in r.stdout
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    # the engine stays stopped: the old engine and the restored one never both run; its
    # namespace is gone, the engine address free for the engine VM
    assert not alive(eng) and record(lab)['engine'] is None
    assert not alive(rec['holder']) and outlived(before) == []
    net = Lab(lab.dir).load()['net']['pid']
    ping = subprocess.run(['nsenter', '-t', str(net), '-n', '--', 'ping', '-n', '-c', '1',
                           '-W', '1', '192.168.222.200'], capture_output=True, text=True)
    assert ping.returncode != 0, ping.stdout
    st = lab.cli('status')
    assert 'standalone engine: stopped' in st.stdout and 'backed up to %s' % dest in st.stdout
    with tarfile.open(dest) as t:
        members = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    assert set(members) == {'./version', './config', './md5sum', './files',
                            './db/engine_backup.db'}
    assert members['./version'].decode().strip() == '4.5.6'
    assert 'ENGINE_FQDN=engine.lab.test' in members['./config'].decode()
    for line in members['./md5sum'].decode().splitlines():
        digest, path = line.split('  ', 1)
        assert hashlib.md5(members[path]).hexdigest() == digest, path
    dump = members['./db/engine_backup.db'].decode()
    for name in ('Legacy', 'LegacyCluster', 'host2', 'host3', 'legacy_data', 'legacy-vm1',
                 'legacy-vm2'):
        assert "'%s'" % name in dump, name
    with tarfile.open(fileobj=io.BytesIO(members['./files'])) as files:
        names = files.getnames()
    assert 'etc/ovirt-engine/engine.conf.d/10-setup-protocols.conf' in names
    # what the deploy runs in the new engine VM restores it: the same inventory
    restored = str(tmp_path / 'restored')
    r = subprocess.run([python(), '-m', standalone.BACKUP_MODULE, '--state-dir', restored,
                        '--mode=restore', '--file=%s' % dest, '--log=%s' % (tmp_path / 'log'),
                        '--provision-all-databases', '--restore-permissions'],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and 'Done.' in r.stdout, r.stdout + r.stderr
    assert names_in(restored) == {
        'data_centers': ['Default', 'Legacy'], 'clusters': ['Default', 'LegacyCluster'],
        'hosts': ['host2', 'host3'], 'storage_domains': ['legacy_data'],
        'vms': list(standalone.POPULATE_VMS)}
    # the deploy's check of the archive takes it, and its database fix-ups apply: here as
    # when host3 were the deploying host and legacy_data the hosted-engine domain
    from ovirt_hosted_engine_setup.deploy import restore_backup
    info = restore_backup.check_archive(str(dest), '4.5.6')
    assert (info.fqdn, info.version) == ('engine.lab.test', (4, 5, 6))
    sql = restore_backup.fixup_sql('host3', 'host3.lab.test', '', 'legacy_data',
                                   '20260101T000000')
    r = subprocess.run([python(), '-m', 'ovirt_hosted_engine_setup.lab.engine.psql',
                        '--state-dir', restored] + [a for q in sql for a in ('-c', q)],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    names = names_in(restored)
    assert names['hosts'] == ['host2']
    assert names['storage_domains'] == ['legacy_data_old_20260101T000000']
    assert names['vms'] == list(standalone.POPULATE_VMS)


def names_in(state_dir):
    from ovirt_hosted_engine_setup.lab.engine import database
    db = database.Database(os.path.join(state_dir, database.DB_FILE))
    try:
        return {kind: sorted(o['name'] for o in db.items(kind)) for kind in database.KINDS}
    finally:
        db.close()


def test_up_again_keeps_the_engine_and_populate_adds_nothing(lab, tmp_path):
    # the engine of this lab keeps its state; populate logs in with the password given
    pw_file = tmp_path / 'admin-pw'
    pw_file.write_text(ADMIN_PW + '\n')
    r = lab.cli('standalone-engine', 'up', '--populate', '--admin-password-file', str(pw_file),
                timeout=400, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    for what in ('data center Legacy', 'cluster LegacyCluster', 'host host2', 'host host3',
                 'storage domain legacy_data', 'VM legacy-vm1', 'VM legacy-vm2'):
        assert '%s is there' % what in r.stdout, what
    inv = sdk(lab, INVENTORY)
    assert sorted(inv['hosts']) == ['host2', 'host3'] and len(inv['sds']) == 1
    assert sorted(inv['vms']) == list(standalone.POPULATE_VMS)


def test_a_dead_engine_is_shown_and_up_starts_it_again(lab):
    rec = record(lab)
    os.kill(rec['engine']['pid'], signal.SIGKILL)
    wait_for('the engine gone', lambda: not alive(rec['engine']), 10)
    r = lab.cli('status', check=False)
    assert r.returncode == 1 and 'standalone engine: DEAD' in r.stdout, r.stdout
    r = lab.cli('standalone-engine', 'up', timeout=120)
    assert 'admin password kept' in r.stdout
    again = record(lab)
    assert again['holder'] == rec['holder'] and alive(again['engine'])
    assert lab.cli('status').returncode == 0
    # an up without a password file keeps the engine's admin password
    assert sdk(lab, 'print(json.dumps(conn.test()))') is True


def test_down(lab):
    rec = record(lab)
    before = engine_processes(rec)
    netns = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout
    lab.cli('standalone-engine', 'down')
    assert not alive(rec['engine']) and not alive(rec['holder'])
    assert before and outlived(before) == []
    assert 'standalone engine' not in lab.cli('status').stdout
    assert subprocess.run(['ip', 'netns', 'list'], capture_output=True,
                          text=True).stdout == netns
    # the lab bridge has no port of the engine left
    net = Lab(lab.dir).load()['net']['pid']
    r = subprocess.run(['nsenter', '-t', str(net), '-n', '--', 'ip', 'link', 'show',
                        standalone.VETH], capture_output=True, text=True)
    assert r.returncode != 0, r.stdout
    assert lab.cli('status').returncode == 0
    r = lab.cli('standalone-engine', 'down')
    assert 'no standalone engine is up' in r.stdout


def test_lab_down_stops_the_standalone_engine(lab):
    lab.cli('standalone-engine', 'up', timeout=120)
    rec = record(lab)
    assert alive(rec['engine'])
    before = engine_processes(rec)
    lab.cli('down', timeout=300)
    assert not alive(rec['engine']) and not alive(rec['holder'])
    assert before and outlived(before) == []
