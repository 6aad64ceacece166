"""The host agent API end to end in a lab of two hosts, over the real protocol
(JSON-RPC over STOMP/TLS with the hosts' client certificates, from inside the hosts).

The tests of this module run in order on one lab: the otopi-era storage sequence on
host1 with the shared storage directory as a LOCALFS connection, a VM with a lease on
that storage (host1 then host2), the agent restarted while the VM runs, bad input.
"""
import json
import os
import signal
import time
import uuid

import pytest

from ovirt_hosted_engine_setup.api.errors import ServerError
from ovirt_hosted_engine_setup.api.schema import constant
from ovirt_hosted_engine_setup.lab import images
from ovirt_hosted_engine_setup.lab import lab as labmod

from .api_helpers import (BLANK, LOCALFS, RAW, SPARSE, HostClient, wait_acquired, wait_task,
                          wait_vm)
from .conftest import lab  # noqa: F401 (the module's lab fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

VOL_SIZE = 128 << 20


def new_uuid():
    return str(uuid.uuid4())


@pytest.fixture(scope='module')
def world(lab):  # noqa: F811
    w = {'lab': lab, 'sd': new_uuid(), 'sp': new_uuid(), 'img': new_uuid(), 'vol': new_uuid(),
         'vm': new_uuid(), 'storage': os.path.join(lab.dir, 'storage'), 'clients': {}}
    try:
        w['clients']['host1'] = HostClient(lab, 'host1')
        w['clients']['host2'] = HostClient(lab, 'host2')
        yield w
    finally:
        for c in w['clients'].values():
            c.close()


def test_storage_sequence(world):
    a, b = world['clients']['host1'], world['clients']['host2']
    sd, sp, img, vol, storage = (world[k] for k in ('sd', 'sp', 'img', 'vol', 'storage'))
    conn = [{'id': new_uuid(), 'connection': storage}]

    res = a.call('StoragePool.connectStorageServer', storagepoolID=BLANK, domainType=LOCALFS,
                 connectionParams=conn)
    assert res == [{'id': conn[0]['id'], 'status': 0}]
    assert a.call('StorageDomain.create', storagedomainID=sd, domainType=LOCALFS,
                  typeArgs=storage, name='hosted_storage', domainClass=1, version=5) is True
    assert a.call('StoragePool.create', storagepoolID=sp, name='hosted_datacenter',
                  masterSdUUID=sd, masterVersion=1, domainList=[sd],
                  **constant('leaseTimings')) is True
    assert a.call('StoragePool.connect', storagepoolID=sp, hostID=1, scsiKey=sp,
                  masterSdUUID=sd, masterVersion=1, domainDict={sd: 'active'}) is True
    assert a.call('Host.startMonitoringDomain', sdUUID=sd, hostID=1) is True
    # host2 joins the lockspace with host id 2 meanwhile (it needs it for the VM tests).
    assert b.call('StoragePool.connectStorageServer', storagepoolID=BLANK, domainType=LOCALFS,
                  connectionParams=conn)[0]['status'] == 0
    assert b.call('Host.startMonitoringDomain', sdUUID=sd, hostID=2) is True
    stats = wait_acquired(a, sd)
    assert stats['valid'] is True and stats['code'] == 0 and float(stats['delay']) >= 0

    task = a.call('StoragePool.spmStart', storagepoolID=sp, maxHostID=250, domVersion=5,
                  **constant('spmStartNoPrevious'))
    st = wait_task(a, task)
    assert st['taskResult'] == 'success' and st['code'] == 0, st
    assert a.call('Task.clear', taskID=task) is True
    spm = a.call('StoragePool.getSpmStatus', storagepoolID=sp)
    assert spm['spmStatus'] == 'SPM' and spm['spmId'] == 1
    assert a.call('StorageDomain.activate', storagedomainID=sd, storagepoolID=sp) is True

    task = a.call('Volume.create', volumeID=vol, storagepoolID=sp, storagedomainID=sd,
                  imageID=img, size=str(VOL_SIZE), volFormat=RAW, preallocate=SPARSE,
                  diskType='HEVD', desc='hosted-engine', srcImgUUID=BLANK, srcVolUUID=BLANK)
    st = wait_task(a, task)
    assert st['taskResult'] == 'success' and st['code'] == 0, st
    assert a.call('Task.clear', taskID=task) is True

    prep = a.call('Image.prepare', storagepoolID=sp, storagedomainID=sd, imageID=img,
                  volumeID=vol)
    assert prep['path'] == '/rhev/data-center/%s/%s/images/%s/%s' % (sp, sd, img, vol)
    assert a.call('StoragePool.spmStop', storagepoolID=sp) is True
    assert a.call('StoragePool.getSpmStatus', storagepoolID=sp)['spmStatus'] == 'Free'
    assert a.call('StoragePool.disconnect', storagepoolID=sp, hostID=1, scsiKey=sp) is True
    assert a.call('Host.startMonitoringDomain', sdUUID=sd, hostID=1) is True
    wait_acquired(a, sd)
    wait_acquired(b, sd)

    # The domain's files, as host2 sees them on the shared storage.
    vol_path = os.path.join(storage, sd, 'images', img, vol)
    files = [os.path.join(storage, sd, 'dom_md', f)
             for f in ('metadata', 'ids', 'leases', 'inbox', 'outbox')]
    files += [vol_path, vol_path + '.meta', vol_path + '.lease']
    r = world['lab'].exec('host2', 'sh', '-c',
                          'for f; do test -s "$f" || echo "missing: $f"; done', 'sh', *files)
    assert r.stdout == '', r.stdout
    r = world['lab'].exec('host2', 'grep', '-x', 'DOMAIN=%s' % sd, vol_path + '.meta')
    assert r.returncode == 0
    world['vol_path'] = vol_path


def _proc_state(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[-1].split()[0]
    except OSError:
        return None


def _vm_xml(path, world):
    return images.domain_xml('he-lab-test', world['vm'], disk_path=path,
                             lease=dict(lockspace=world['sd'], key=world['vol'],
                                        path=path + '.lease'))


def test_vm_lease_host1_then_host2(world):
    assert 'vol_path' in world, 'the storage sequence did not complete'
    a, b = world['clients']['host1'], world['clients']['host2']
    sd, img, vol, vm_id = world['sd'], world['img'], world['vol'], world['vm']
    images.copy_disk(world['vol_path'], fmt='raw')

    paths = {}
    for name, c in (('host1', a), ('host2', b)):
        paths[name] = c.call('Image.prepare', storagepoolID=BLANK, storagedomainID=sd,
                             imageID=img, volumeID=vol)['path']
    res = a.call('VM.create', vmID=vm_id, vmParams={'vmId': vm_id,
                                                   'xml': _vm_xml(paths['host1'], world)})
    assert res['vmId'] == vm_id
    wait_vm(a, vm_id, 'Up')

    # Refused on host2: host1 holds the lease, and getStats says so.
    b.call('VM.create', vmID=vm_id, vmParams={'vmId': vm_id,
                                             'xml': _vm_xml(paths['host2'], world)})
    st = wait_vm(b, vm_id, 'Down')
    assert st['exitLeaseHeld'] is True and st['exitCode'] == 1, st
    assert 'held by another host' in st['exitMessage'], st
    assert b.call('VM.destroy', vmID=vm_id) is True
    assert wait_vm(a, vm_id, 'Up')      # still running on host1

    # Destroyed on host1, then started on host2.
    assert a.call('VM.destroy', vmID=vm_id) is True
    assert a.call('Host.getVMList', onlyUUID=True) == []
    b.call('VM.create', vmID=vm_id, vmParams={'vmId': vm_id,
                                             'xml': _vm_xml(paths['host2'], world)})
    wait_vm(b, vm_id, 'Up')
    world['vm_on'] = 'host2'


def test_hostd_restart_keeps_vm(world):
    assert world.get('vm_on') == 'host2', 'the lease test did not leave the VM on host2'
    lab = world['lab']
    vm_id, sd = world['vm'], world['sd']
    world['clients'].pop('host2').close()

    # The lab has no restart command: stop host2's agent by its recorded pid and start it
    # again in the host the way `up` does, recording the new pid for `down`.
    L = labmod.Lab(lab.dir)
    L.load()
    h = L.state['hosts']['host2']
    rec = h['daemons']['hostd']
    assert labmod.alive(rec)
    os.kill(rec['pid'], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while labmod.alive(rec) and _proc_state(rec['pid']) != 'Z':
        assert time.monotonic() < deadline, 'hostd of host2 did not stop'
        time.sleep(0.2)
    r = lab.exec('host2', 'virsh', '-c', 'qemu:///system', 'domstate', vm_id)
    assert r.stdout.strip() == 'running', r.stdout

    L._start_daemon('host2', h, 'hostd', [
        os.path.join(labmod.paths.venv_bin(), 'ovirt-hosted-engine-hostd'), '--foreground',
        '--address', '0.0.0.0', '--port', str(labmod.HOSTD_PORT), '--root', labmod.HOSTD_ROOT,
        '--data-center-dir', '/rhev/data-center',
        '--log-file', '/var/log/ovirt-hosted-engine-hostd/hostd.log'])
    L._wait('host2', 'hostd', lambda: L.run_in(
        h['holder']['pid'], ['ovirt-hosted-engine-rpc', '--host', h['address'], '--timeout', '5',
                             'Host', 'ping2'], check=False, timeout=30).returncode == 0, 90)
    b = world['clients']['host2'] = HostClient(lab, 'host2')
    st = b.call('VM.getStats', vmID=vm_id)[0]
    assert st['status'] == 'Up', st
    assert [v['vmId'] for v in b.call('Host.getAllVmStats')] == [vm_id]
    wait_acquired(b, sd)                # monitoring recovered too
    assert lab.cli('status').returncode == 0

    assert b.call('VM.destroy', vmID=vm_id) is True
    assert b.call('Host.getVMList', onlyUUID=True) == []


def test_bad_input_over_the_wire(world):
    a = world['clients']['host1']
    with pytest.raises(ServerError) as e:
        a.call('Host.noSuchVerb')
    assert e.value.code == -32601

    with pytest.raises(ServerError) as e:
        a.call('StorageDomain.getInfo')
    assert e.value.code == -32602 and 'storagedomainID' in e.value.message

    with pytest.raises(ServerError) as e:
        a.call('StorageDomain.getInfo', storagedomainID=new_uuid())
    assert e.value.code == 358

    with pytest.raises(ServerError) as e:
        a.call('StorageDomain.create', storagedomainID=world['sd'], domainType=LOCALFS,
               typeArgs=world['storage'], name='hosted_storage', domainClass=1, version=5)
    assert e.value.code == 365

    missing = os.path.join(world['lab'].dir, 'no-such-storage')
    res = a.call('StoragePool.connectStorageServer', storagepoolID=BLANK, domainType=LOCALFS,
                 connectionParams=[{'id': new_uuid(), 'connection': missing}])
    assert res[0]['status'] == 451 and 'does not exist' in res[0].get('message', ''), res

    # The agent still serves after all of that.
    assert a.call('Host.ping2') is True


def test_rpc_command_in_lab(world):
    lab = world['lab']
    r = lab.exec('host1', 'ovirt-hosted-engine-rpc', 'Host', 'getCapabilities')
    caps = json.loads(r.stdout)
    assert isinstance(caps, dict) and caps, r.stdout
    r = lab.exec('host1', 'ovirt-hosted-engine-rpc', '--host', 'host2', 'Host', 'ping2')
    assert json.loads(r.stdout) is True
    r = lab.exec('host1', 'ovirt-hosted-engine-rpc', 'StorageDomain', 'getInfo',
                 'storagedomainID=%s' % new_uuid(), check=False)
    assert r.returncode == 1 and '358' in r.stdout + r.stderr, (r.stdout, r.stderr)
