"""VMs with a sanlock lease on two hosts: real sanlock daemons (host ids 1 and 2 on
the same lockspace), two libvirtd instances in private mount namespaces, the
backends of each host in a process of its own (tests/hostd/hostproc.py)."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import libvirt
import pytest

from ovirt_hosted_engine_setup.hostd.api_base import VdsmError

from .daemons import LibvirtHost, SanlockDaemon
from .hostproc import HostProcess
from .storage_helpers import BLANK, LOCALFS, POOL_TIMINGS, RAW, SPARSE, SPM_START, new_uuid

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IO_TIMEOUT = 1

pytestmark = pytest.mark.skipif(not shutil.which('libvirtd') or not os.path.exists(
    '/usr/bin/qemu-system-x86_64'), reason='libvirtd and qemu-system-x86 are needed')


def domain_xml(name, vm_id, disk, sd, vol, lease):
    return '''<domain type='qemu'>
  <name>%s</name><uuid>%s</uuid>
  <memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='%s'/><target dev='vda' bus='virtio'/></disk>
    <lease><lockspace>%s</lockspace><key>%s</key><target path='%s' offset='0'/></lease>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
  </devices>
</domain>''' % (name, vm_id, disk, sd, vol, lease)


def wait_status(host, vm_id, want, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        st = host.call('VM.getStats', vmID=vm_id)[0]
        if st['status'] == want:
            return st
        if time.monotonic() > deadline:
            raise AssertionError('VM %s is %r, not %s, after %d s' % (vm_id, st, want, timeout))
        time.sleep(0.2)


def wait_task(host, task, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        st = host.call('Task.getStatus', taskID=task)
        if st['taskState'] == 'finished':
            host.call('Task.clear', taskID=task)
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.2)


def wait_acquired(host, sd, timeout=60):
    deadline = time.monotonic() + timeout
    while not host.call('Host.getStorageRepoStats', domains=[sd]).get(sd, {}).get('acquired'):
        assert time.monotonic() < deadline, host.call('Host.getStorageRepoStats', domains=[sd])
        time.sleep(0.2)


def check_cpu_stats(agent, host, vm_id):
    """VM.getStats carries cpuUser, cpuSys ("%.2f" percent of one CPU over the sampling
    interval) and cpuUsage (the CPU time in ns) from libvirt's CPU times, as VDSM."""
    deadline = time.monotonic() + 30
    while True:
        st = agent.call('VM.getStats', vmID=vm_id)[0]
        if st['cpuUsage'] != '0.00':
            break
        assert st['cpuUser'] == st['cpuSys'] == '0.00', st     # VDSM's initial values
        assert time.monotonic() < deadline, st
        time.sleep(0.3)
    for k in ('cpuUser', 'cpuSys'):
        assert re.fullmatch(r'\d+\.\d\d', st[k]), st
    busy = float(st['cpuUser']) + float(st['cpuSys'])
    assert 0.0 < busy <= 100.0 * os.cpu_count() + 1, st      # a booting guest uses CPU
    c = libvirt.open(host.libvirt.uri)
    try:
        cpu_time = c.lookupByUUIDString(vm_id).getCPUStats(True)[0]['cpu_time']
    finally:
        c.close()
    assert 0 < int(st['cpuUsage']) <= cpu_time, (st, cpu_time)
    assert 'cpuTime' not in st


class Host:
    def __init__(self, base, name):
        self.base = base
        self.sanlock = SanlockDaemon(os.path.join(base, 'sanlock'), name)
        self.libvirt = LibvirtHost(os.path.join(base, 'libvirt'), self.sanlock.run_dir)
        self.agent = None

    def start(self):
        self.sanlock.start()
        self.libvirt.start()
        return self.start_agent()

    def start_agent(self):
        self.agent = HostProcess(os.path.join(self.base, 'agent'), self.sanlock.run_dir,
                                 self.libvirt.uri, IO_TIMEOUT, TOP).start()
        return self.agent

    def stop(self):
        if self.agent:
            try:
                self.agent.close()
            except Exception:
                self.agent.proc.kill()
        try:
            c = libvirt.open(self.libvirt.uri)
            for d in c.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                d.destroy()
            c.close()
        except libvirt.libvirtError:
            pass
        self.libvirt.stop()
        self.sanlock.stop()


@pytest.fixture
def hosts():
    base = tempfile.mkdtemp(prefix='hostd-vm-')
    made = []
    try:
        for name in ('host1', 'host2'):
            h = Host(os.path.join(base, name), name)
            made.append(h)
            h.start()
        yield base, made
    finally:
        for h in made:
            h.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_vm_lease_two_hosts_and_restart(hosts):
    base, (h1, h2) = hosts
    a, b = h1.agent, h2.agent
    storage = os.path.join(base, 'shared-storage')
    os.makedirs(storage)
    sd, sp, img, vol, vm_id = new_uuid(), new_uuid(), new_uuid(), new_uuid(), new_uuid()
    conn = [{'id': new_uuid(), 'connection': storage}]

    # Host 1 makes the storage (the otopi-era sequence), host 2 joins the lockspace.
    assert a.call('StoragePool.connectStorageServer', storagepoolID=BLANK, domainType=LOCALFS,
                  connectionParams=conn)[0]['status'] == 0
    a.call('StorageDomain.create', storagedomainID=sd, domainType=LOCALFS, typeArgs=storage,
           name='hosted_storage', domainClass=1, version=5)
    a.call('StoragePool.create', storagepoolID=sp, name='dc', masterSdUUID=sd, masterVersion=1,
           domainList=[sd], **POOL_TIMINGS)
    a.call('StoragePool.connect', storagepoolID=sp, hostID=1, scsiKey=sp, masterSdUUID=sd,
           masterVersion=1, domainDict={sd: 'active'})
    a.call('Host.startMonitoringDomain', sdUUID=sd, hostID=1)
    wait_acquired(a, sd)
    assert wait_task(a, a.call('StoragePool.spmStart', storagepoolID=sp, **SPM_START))['code'] == 0
    task = a.call('Volume.create', volumeID=vol, storagepoolID=sp, storagedomainID=sd,
                  imageID=img, size=str(16 << 20), volFormat=RAW, preallocate=SPARSE,
                  diskType='HEVD', desc='hosted-engine', srcImgUUID=BLANK, srcVolUUID=BLANK)
    assert wait_task(a, task)['code'] == 0
    a.call('StoragePool.spmStop', storagepoolID=sp)
    a.call('StoragePool.disconnect', storagepoolID=sp, hostID=1, scsiKey=sp)
    a.call('Host.startMonitoringDomain', sdUUID=sd, hostID=1)
    wait_acquired(a, sd)

    assert b.call('StoragePool.connectStorageServer', storagepoolID=BLANK, domainType=LOCALFS,
                  connectionParams=conn)[0]['status'] == 0
    b.call('Host.startMonitoringDomain', sdUUID=sd, hostID=2)
    wait_acquired(b, sd)

    paths = {}
    for name, host in (('a', a), ('b', b)):
        disk_path = host.call('Image.prepare', storagepoolID=BLANK, storagedomainID=sd,
                              imageID=img, volumeID=vol)['path']
        paths[name] = domain_xml('he-test', vm_id, disk_path, sd, vol, disk_path + '.lease')

    # Started on host 1.
    res = a.call('VM.create', vmID=vm_id, vmParams={'vmId': vm_id, 'xml': paths['a']})
    assert res['status'] == 'WaitForLaunch' and res['vmId'] == vm_id
    with pytest.raises(VdsmError) as e:
        a.call('VM.create', vmID=vm_id, vmParams={'xml': paths['a']})
    assert e.value.code == 4
    st = wait_status(a, vm_id, 'Up')
    assert st['displayInfo'] and st['displayInfo'][0]['type'] == 'vnc'
    assert int(st['displayInfo'][0]['port']) >= 5900
    assert st['displayInfo'][0]['ipAddress'] == '127.0.0.1'
    # Host.getVMList as VDSM over JSON-RPC: UUIDs, or the VMs' dicts with onlyUUID false.
    assert [vm_id] == a.call('Host.getVMList') == a.call('Host.getVMList', onlyUUID=True)
    full = a.call('Host.getVMList', onlyUUID=False)
    assert [v['vmId'] for v in full] == [vm_id] and full[0]['status'] == 'Up'
    assert full[0]['vmName'] == 'he-test' and full[0]['displayInfo']
    assert a.call('Host.getVMList', vmList=[new_uuid()]) == []
    check_cpu_stats(a, h1, vm_id)

    # Refused on host 2: the lease is held by host 1, and getStats says so.
    b.call('VM.create', vmID=vm_id, vmParams={'xml': paths['b']})
    st = wait_status(b, vm_id, 'Down')
    assert st['exitCode'] == 1 and st['exitLeaseHeld'] is True, st
    assert 'Failed to acquire lock' in st['exitMessage'], st
    assert 'held by another host' in st['exitMessage'], st
    assert b.call('VM.destroy', vmID=vm_id) is True
    with pytest.raises(VdsmError) as e:
        b.call('VM.getStats', vmID=vm_id)
    assert e.value.code == 1

    # Destroyed on host 1, then started on host 2.
    assert a.call('VM.destroy', vmID=vm_id) is True
    assert a.call('Host.getVMList', onlyUUID=True) == []
    b.call('VM.create', vmID=vm_id, vmParams={'xml': paths['b']})
    wait_status(b, vm_id, 'Up')
    events = [ev for ev in b.events() if ev[0] == '|virt|VM_status|%s' % vm_id]
    statuses = [ev[1][vm_id]['status'] for ev in events]
    assert 'Down' in statuses and statuses[-1] == 'Up', statuses

    # The host agent of host 2 restarts while the VM runs: the VM keeps running
    # and is recovered.
    h2.agent.close()
    c = libvirt.open(h2.libvirt.uri)
    try:
        assert c.lookupByUUIDString(vm_id).isActive()
    finally:
        c.close()
    b = h2.start_agent()
    st = b.call('VM.getStats', vmID=vm_id)[0]
    assert st['status'] == 'Up' and st['displayInfo'], st
    wait_acquired(b, sd)                                # monitoring recovered too
    assert b.call('Host.getAllVmStats')[0]['vmId'] == vm_id

    # Console ticket with an expiry.
    assert b.call('VM.setTicket', vmID=vm_id, password='s3cret-t1cket', ttl=120,
                  existingConnAction='disconnect', params={}) is True
    c = libvirt.open(h2.libvirt.uri)
    try:
        dom = c.lookupByUUIDString(vm_id)
        g = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)).find('./devices/graphics')
        assert g.get('passwd') == 's3cret-t' and g.get('passwdValidTo')   # VNC: 8 characters
        res = b.call('VM.updateDevice', vmID=vm_id,
                     params={'deviceType': 'graphics', 'graphicsType': 'vnc',
                             'password': 'tkt2', 'ttl': 60})
        assert res['vmList']['vmId'] == vm_id
        g = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)).find('./devices/graphics')
        assert g.get('passwd') == 'tkt2'
    finally:
        c.close()
    log_text = ''
    for root, _, files in os.walk(os.path.join(h2.base, 'agent')):
        for f in files:
            with open(os.path.join(root, f), 'rb') as fh:
                log_text += fh.read().decode('utf-8', 'replace')
    assert 's3cret-t1cket' not in log_text 

    # Graceful shutdown: the guest has no OS to answer ACPI, so it is powered off
    # after the timeout.
    assert b.call('VM.shutdown', vmID=vm_id, delay=1, message='going down', timeout=2,
                  force=True) is True
    st = wait_status(b, vm_id, 'Down', timeout=30)
    assert st['exitCode'] == 0, st
    b.call('VM.destroy', vmID=vm_id)
    with pytest.raises(VdsmError) as e:
        b.call('VM.destroy', vmID=vm_id)
    assert e.value.code == 1

    # Another qemu has the disk open while nobody holds the lease (a host starting the VM
    # at the same moment, before it reached the lease): the start is refused as the lease
    # refusal is, so that the agent does not take it for a VM that died here.
    holder = subprocess.Popen(['qemu-io', '-f', 'raw', disk_path], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        assert holder.poll() is None
        a.call('VM.create', vmID=vm_id, vmParams={'xml': paths['a']})
        st = wait_status(a, vm_id, 'Down')
        assert st['exitCode'] == 1 and st['exitLeaseHeld'] is True, st
        assert 'in use by another qemu' in st['exitMessage'], st
        a.call('VM.destroy', vmID=vm_id)
    finally:
        holder.kill()
        holder.wait()
    b.call('Host.stopMonitoringDomain', sdUUID=sd)
    a.call('Host.stopMonitoringDomain', sdUUID=sd)
