"""Engine health and CPU load with a real engine VM: hostd with libvirtd (sanlock lock
driver) and sanlock, a small qemu guest (TCG, no disk: it stays Up in its firmware),
the health page served by the test on 127.0.0.1. The monitor runs with a long
period, so only the host agent's |virt|VM_status|<vmid> events can refresh it in time."""
import os
import shutil
import sys
import tempfile
import time
import uuid

import pytest

from ovirt_hosted_engine_setup.ha.broker import monitors as mon

from .conftest import TOP, needs_root
from .httpd import HealthServer

sys.path.insert(0, os.path.join(TOP, 'tests'))
from api.hostd_proc import Hostd  # noqa: E402
from hostd.daemons import LibvirtHost, SanlockDaemon  # noqa: E402

pytestmark = pytest.mark.skipif(not shutil.which('libvirtd') or not os.path.exists(
    '/usr/bin/qemu-system-x86_64'), reason='libvirtd and qemu-system-x86 are needed')

XML = '''<domain type='qemu'>
  <name>HostedEngine</name><uuid>%s</uuid>
  <memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>'''


@pytest.fixture(scope='module')
def host():
    needs_root()
    base = tempfile.mkdtemp(prefix='broker-vm-', dir='/var/tmp')
    sanlock = SanlockDaemon(os.path.join(base, 'sanlock'), 'broker-vm').start()
    lv = hostd = None
    try:
        lv = LibvirtHost(os.path.join(base, 'libvirt'), sanlock.run_dir).start()
        hostd = Hostd(os.path.join(base, 'hostd'), extra=[
            '--libvirt-uri', lv.uri, '--sanlock-run-dir', sanlock.run_dir])
        os.makedirs(hostd.base, exist_ok=True)
        hostd.start()
        yield hostd
    finally:
        if hostd is not None:
            hostd.stop()
        if lv is not None:
            lv.stop()
        sanlock.stop()
        shutil.rmtree(base, ignore_errors=True)


def wait_value(store, name, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = store.get(name)
        if v is not None and predicate(v):
            return v
        time.sleep(0.1)
    raise AssertionError('%s is %r after %d s' % (name, store.get(name), timeout))


def test_engine_health_follows_vm_events(host):
    vmid = str(uuid.uuid4())
    agent = mon.HostAgent('127.0.0.1', host.port, hostd_root=host.root, timeout=30)
    store = mon.ValueStore()
    with HealthServer() as page:
        health = mon.EngineHealth(agent, vmid, page.fqdn, timeout=5)
        monitor = mon.Monitor('engine-health', health, 300, store)
        agent.add_listener(lambda method, params: method == '|virt|VM_status|%s' % vmid
                           and monitor.wake())
        monitor.start()
        try:
            wait_value(store, 'engine_health', lambda v: True, 10)
            assert store.get('engine_health')['reason'] == 'vm not running on this host'
            agent.call('VM.create', vmID=vmid, vmParams={'vmId': vmid, 'xml': XML % vmid})
            up = wait_value(store, 'engine_health', lambda v: v['vm'] == 'up' and
                            v['detail'] == 'Up', 30)
            assert up == {'vm': 'up', 'health': 'good', 'detail': 'Up', 'reason': None}
            assert page.hits >= 1

            cpu = mon.CpuLoad(agent, vmid)
            assert 0.0 <= cpu()['cpu_load'] <= 1.0
            time.sleep(0.5)
            assert 0.0 <= cpu()['cpu_load'] <= 1.0

            page.body = b'DB Down'
            assert health() == {'engine_health': {'vm': 'up', 'health': 'bad', 'detail': 'Up',
                                                  'reason': 'failed liveliness check'}}
            assert monitor.next_wait() == mon.ENGINE_FOLLOW_INTERVAL
            # an up VM without good health is followed closely: the page saying good again
            # is known within seconds, not after the monitor's 300 s interval
            monitor.wake()
            wait_value(store, 'engine_health', lambda v: v['health'] == 'bad', 10)
            page.body = b'DB Up'
            wait_value(store, 'engine_health', lambda v: v['health'] == 'good',
                       3 * mon.ENGINE_FOLLOW_INTERVAL)
            assert monitor.next_wait() == 300

            agent.call('VM.destroy', vmID=vmid)      # as in VDSM, the VM is gone after it
            down = wait_value(store, 'engine_health', lambda v: v['vm'] != 'up', 30)
            # the event may come while the host agent still shows the Down record
            # (exit 0: destroyed on purpose) or after it dropped the VM
            assert down in ({'vm': 'down', 'health': 'bad', 'detail': 'unknown',
                             'reason': 'vm not running on this host'},
                            {'vm': 'down', 'health': 'bad', 'detail': 'Down',
                             'reason': 'Admin shut down from the engine'})
        finally:
            monitor.stop()
            monitor.join(10)
            try:
                agent.call('VM.destroy', vmID=vmid)
            except Exception:
                pass
            agent.close()
