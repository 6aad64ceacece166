"""The lab made ready for the HA services (ovirt_hosted_engine_setup.lab.ha_prepare),
in a lab of two hosts: the files on both hosts, the volumes, the hosted-engine
lockspace, and the engine VM started from vm.conf on host1 (health page answering
from host2) and refused on host2 by its lease.

The tests of this module run in order on one lab.
"""
import os
import re
import tarfile

import pytest

from ovirt_hosted_engine_setup.he_storage import config_volume, domain, heconf, layout

from .api_helpers import HostClient, wait_vm
from .conftest import lab  # noqa: F401 (the module's lab fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

IO_TIMEOUT = 2
PREPARE = ['python', '-m', 'ovirt_hosted_engine_setup.lab.ha_prepare']

HEALTH = r'''
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
        break
    except OSError as e:
        if time.monotonic() > deadline:
            print('no answer: %s' % e)
            sys.exit(1)
        time.sleep(1)
'''


@pytest.fixture(scope='module')
def prepared(lab):  # noqa: F811
    r = lab.exec('host1', *PREPARE, '--hosts', 'host1,host2', '--io-timeout', str(IO_TIMEOUT),
                 check=False, timeout=900)
    clients = {}
    try:
        yield {'lab': lab, 'run': r, 'clients': clients}
    finally:
        for c in clients.values():
            c.close()


def read_conf(lab, host, path):  # noqa: F811
    r = lab.exec(host, 'cat', path)
    return heconf.parse(r.stdout, '%s:%s' % (host, path))


def test_prepare_output(prepared):
    r = prepared['run']
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert all(re.match(r'^\[ *\d+\.\d s\] ', line) for line in lines), r.stdout
    text = r.stdout
    for words in ('host1: bridge ovirtmgmt on eth0', 'host2: bridge ovirtmgmt on eth0',
                  'hosted-engine lockspace (io timeout 2 s)', 'lab guest disk copied',
                  'configuration volume', 'host2: shared storage connected', 'done:'):
        assert words in text, text
    assert r.stderr == '', r.stderr


def test_files_on_both_hosts(prepared):
    lab = prepared['lab']
    confs = {h: read_conf(lab, h, '/etc/ovirt-hosted-engine/hosted-engine.conf')
             for h in ('host1', 'host2')}
    for k, (h, conf) in enumerate(sorted(confs.items()), 1):
        assert conf['host_id'] == str(k)
        assert conf['fqdn'] == 'engine.lab.test' and conf['gateway'] == '192.168.222.1'
        assert conf['bridge'] == 'ovirtmgmt' and conf['network_test'] == 'ping'
        assert conf['conf'] == '/run/ovirt-hosted-engine-ha/vm.conf'
        assert conf['domainType'] == 'localfs' and conf['storage'] == os.path.join(lab.dir,
                                                                                  'storage')
        assert conf['sanlock_io_timeout'] == str(IO_TIMEOUT)
        assert re.match(r'^"O=.+, CN=.+"$', conf['ca_subject']), conf['ca_subject']
        assert conf['ca_cert'] == '/var/lib/ovirt-hosted-engine-hostd/pki/cacert.pem'
    a, b = (dict(c) for c in confs.values())
    a.pop('host_id'), b.pop('host_id')
    assert a == b
    vmconfs = [read_conf(lab, h, '/etc/ovirt-hosted-engine/vm.conf') for h in ('host1', 'host2')]
    assert vmconfs[0] == vmconfs[1] and vmconfs[0]['vmId'] == a['vmid']
    assert vmconfs[0]['vmName'] == 'HostedEngine' and vmconfs[0]['memSize'] == '256'
    xml = heconf.vm_xml(vmconfs[0])
    assert "<graphics type=\"vnc\"" in xml and 'ovirtmgmt' in xml
    vols = layout.volume_paths(a)
    assert '<lockspace>%s</lockspace>' % a['sdUUID'] in xml
    assert '<key>%s</key>' % a['vm_disk_vol_id'] in xml
    assert vols['vm_lease'] in xml and "file=\"%s\"" % vols['vm'] in xml.replace("'", '"')
    for h in ('host1', 'host2'):
        r = lab.exec(h, 'cat', '/etc/ovirt-hosted-engine-ha/broker.conf')
        assert '[email]' in r.stdout and 'state_transition' in r.stdout
    prepared['conf'] = a
    prepared['vmconf'] = vmconfs[0]


def test_volumes_and_lockspace(prepared):
    assert 'conf' in prepared, 'the files test did not complete'
    lab, conf = prepared['lab'], prepared['conf']
    vols = layout.volume_paths(conf)
    # The mount link exists on both hosts, so the same paths work everywhere.
    for h in ('host1', 'host2'):
        r = lab.exec(h, 'stat', '-L', '-c', '%s', vols['vm'], vols['metadata'], vols['lockspace'],
                     vols['conf'], vols['vm_lease'])
        sizes = [int(x) for x in r.stdout.split()]
        assert sizes[:4] == [128 << 20, 1 << 20, 1 << 20, 1 << 20], (h, sizes)
    # The configuration volume, read on the machine from the shared directory.
    storage_paths = layout.volume_paths(conf, data_center_dir='/nonexistent')
    conf_vol = storage_paths['conf'].replace(
        layout.mount_point(conf['storage'], '/nonexistent'), conf['storage'])
    files = config_volume.ConfigVolume(conf_vol).read()
    assert sorted(files) == sorted(layout.CONF_FILES)
    assert heconf.parse(files['vm.conf']) == prepared['vmconf']
    assert heconf.parse(files['hosted-engine.conf'])['host_id'] == '1'
    with tarfile.open(conf_vol) as tar:
        assert tar.getnames() == list(layout.CONF_FILES)
    # The hosted-engine lockspace: host1 joins it with host id 1, the dump shows it.
    ls = 'hosted-engine:1:%s:0' % vols['lockspace']
    leader = lab.exec('host1', 'sanlock', 'direct', 'read_leader', '-s', ls).stdout
    assert 'space_name hosted-engine\n' in leader and 'io_timeout %d\n' % IO_TIMEOUT in leader
    lab.exec('host1', 'sanlock', 'client', 'add_lockspace', '-s', ls, timeout=120)
    try:
        dump = lab.exec('host1', 'sanlock', 'direct', 'dump', vols['lockspace']).stdout
        rows = [line.split() for line in dump.splitlines()[1:] if line.strip()]
        assert any(r[1] == 'hosted-engine' for r in rows), dump
    finally:
        lab.exec('host1', 'sanlock', 'client', 'rem_lockspace', '-s', ls, timeout=120)


def test_engine_vm_runs_once(prepared):
    assert 'conf' in prepared, 'the files test did not complete'
    lab, conf, vmconf = prepared['lab'], prepared['conf'], prepared['vmconf']
    a = prepared['clients']['host1'] = HostClient(lab, 'host1')
    b = prepared['clients']['host2'] = HostClient(lab, 'host2')
    # host2 joins the VM lease lockspace with its host id, as its HA agent does.
    paths2 = domain.connect(b, dict(conf, host_id='2'), wait=True)
    assert paths2['vm'].endswith(conf['vm_disk_vol_id'])
    vm_id = vmconf['vmId']
    xml = heconf.vm_xml(vmconf)
    res = a.call('VM.create', vmID=vm_id, vmParams={'vmId': vm_id, 'xml': xml})
    assert res['vmId'] == vm_id
    try:
        st = wait_vm(a, vm_id, 'Up')
        assert any(d.get('type') == 'vnc' for d in st.get('displayInfo', [])), st
        r = lab.exec('host2', 'python', '-c', HEALTH,
                     'http://engine.lab.test/ovirt-engine/services/health', '120',
                     check=False, timeout=180)
        assert 'DB Up!Welcome to Health Status!' in r.stdout, r.stdout + r.stderr

        # The lease keeps a second copy from starting on host2.
        b.call('VM.create', vmID=vm_id, vmParams={'vmId': vm_id, 'xml': xml})
        st = wait_vm(b, vm_id, 'Down')
        assert st['exitLeaseHeld'] is True, st
        assert b.call('VM.destroy', vmID=vm_id) is True
        assert wait_vm(a, vm_id, 'Up')
    finally:
        a.call('VM.destroy', vmID=vm_id)
    assert a.call('Host.getVMList', onlyUUID=True) == []


def test_second_run_refused(prepared):
    assert 'conf' in prepared, 'the files test did not complete'
    lab = prepared['lab']
    r = lab.exec('host1', *PREPARE, check=False, timeout=120)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert 'already holds a hosted-engine storage domain (%s)' % prepared['conf']['sdUUID'] in err
    r = lab.exec('host2', *PREPARE, check=False, timeout=120)
    assert r.returncode == 1 and 'inside lab host1' in r.stderr
