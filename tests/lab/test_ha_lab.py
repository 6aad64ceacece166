"""The HA services for real in a 2-host lab: ovirt-ha-broker and ovirt-ha-agent on
each host, the hosted-engine storage domain on the lab's shared storage with the lab
guest as the engine VM (`hosted-engine-lab ha-prepare`), driven with `hosted-engine`
inside the hosts.

The tests of this module run in order on one lab:
- the agents start exactly one engine VM, which becomes healthy;
- `--vm-status` in text and JSON on both hosts;
- the metadata interoperates with oVirt's agents: every live slot parses under oVirt's
  rules, and an oVirt-written slot in a free host slot is shown;
- `--vm-poweroff` leads to an agent starting the VM again;
- global maintenance: banner, and no agent starts the VM it powered off; cleared,
  the VM comes back;
- local maintenance on the host without the VM: score 0, LocalMaintenance;
- `--vm-status` keeps working with the local agent stopped.
"""
import json
import os
import signal
import time

import daemon_proc
import pytest

from .conftest import lab  # noqa: F401 (the module's lab fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

HOSTS = ('host1', 'host2')
ENGINE_UP_TIMEOUT = 300


@pytest.fixture(scope='module')
def ha(lab):  # noqa: F811
    r = lab.cli('ha-prepare', '--io-timeout', '2', timeout=900)
    assert 'hosted-engine' in r.stdout + r.stderr
    lab.cli('ha', 'start', timeout=180)
    yield lab
    lab.cli('ha', 'stop', check=False, timeout=180)


def vm_status(lab, host='host1'):  # noqa: F811
    r = lab.exec(host, 'hosted-engine', '--vm-status', '--json', check=False, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def running_vms(lab):  # noqa: F811
    out = {}
    for h in HOSTS:
        names = lab.exec(h, 'virsh', '-c', 'qemu:///system', 'list', '--name').stdout.split()
        out[h] = names
    return out


def engine_hosts(status):
    return sorted(v['hostname'] for k, v in status.items()
                  if k != 'global_maintenance' and v['engine-status'].get('vm') == 'up')


def wait_for(what, predicate, timeout, interval=3.0):
    return daemon_proc.wait_for(what, predicate, timeout, interval)


def wait_engine_healthy(lab, timeout=ENGINE_UP_TIMEOUT):  # noqa: F811
    def healthy():
        st = vm_status(lab)
        good = [v for k, v in st.items() if k != 'global_maintenance'
                and v['engine-status'].get('health') == 'good' and v['live-data']]
        return good[0]['hostname'] if len(good) == 1 else None
    return wait_for('engine VM up with good health', healthy, timeout)


def running_hosts(lab):
    """Hosts where libvirt has the engine VM running. A domain that is still acquiring its
    sanlock lease is paused, and killed when another host holds the lease, so when two agents
    start the VM at the same time both may list it for a moment: only a running one counts."""
    return [h for h in HOSTS if lab.exec(h, 'virsh', '-c', 'qemu:///system', 'list', '--name',
                                         '--state-running').stdout.split()]


def wait_vm_running_again(lab, timeout=ENGINE_UP_TIMEOUT):  # noqa: F811
    """After the VM went down: wait until an agent started it again (the metadata
    may still show the old status for one loop, so libvirt is asked). Never two at once."""
    def running():
        hosts = running_hosts(lab)
        assert len(hosts) <= 1, 'the engine VM runs on %s at once' % hosts
        return hosts
    hosts = wait_for('an agent starting the engine VM again', running, timeout, 2)
    wait_for('the metadata showing the engine VM up again',
             lambda: hosts[0] in engine_hosts(vm_status(lab)), 60, 2)
    return hosts[0]


def assert_one_vm(lab):  # noqa: F811
    vms = running_vms(lab)
    total = sum(len(v) for v in vms.values())
    assert total == 1, 'engine VMs running: %s' % vms
    return next(h for h, v in vms.items() if v)


def test_agents_start_one_engine_vm(ha):
    host = wait_engine_healthy(ha)
    assert assert_one_vm(ha) == host
    st = vm_status(ha, 'host2')
    assert st['global_maintenance'] is False
    ids = sorted(k for k in st if k != 'global_maintenance')
    assert ids == ['1', '2']
    for k in ids:
        # 3400 less at most the CPU load penalty (the machine may be busy)
        assert 2400 <= st[k]['score'] <= 3400, st[k]
        assert st[k]['live-data'] is True


def test_vm_status_text(ha):
    r = ha.exec('host2', 'hosted-engine', '--vm-status', timeout=60)
    out = r.stdout
    for h, hid in (('host1', 1), ('host2', 2)):
        assert '--== Host %s (id: %d) status ==--' % (h, hid) in out
    for label in ('Host ID', 'Host timestamp', 'Score', 'Engine status', 'Hostname',
                  'Local maintenance', 'stopped', 'crc32', 'conf_on_shared_storage',
                  'local_conf_timestamp', 'Status up-to-date'):
        assert any(line.startswith(label.ljust(35) + ':') for line in out.splitlines()), label
    assert 'Extra metadata (valid at timestamp):' in out
    assert '"health": "good"' in out
    assert 'GLOBAL MAINTENANCE' not in out


def metadata_store(lab):  # noqa: F811
    """The metadata volume of the lab's hosted-engine storage domain (localfs: the same
    path inside the hosts and here)."""
    from ovirt_hosted_engine_setup.he_storage import heconf
    from ovirt_hosted_engine_setup.ha.broker.store import MetadataStore
    conf = heconf.parse(lab.exec('host1', 'cat', '/etc/ovirt-hosted-engine/hosted-engine.conf',
                                 timeout=60).stdout)
    return MetadataStore(os.path.join(conf['storage'], conf['sdUUID'], 'images',
                                      conf['metadata_image_UUID'], conf['metadata_volume_UUID']))


def test_metadata_interoperates_with_ovirt_agents(ha):
    """Every live slot parses under oVirt's own rules (its crc32 over the tokens, host id,
    versions), and a slot laid out as oVirt's agent writes it, put in a free host slot,
    is shown by --vm-status."""
    from ha.test_metadata import ovirt_parses, ovirt_parses_global, ovirt_slot
    from ovirt_hosted_engine_setup.ha import metadata
    store = metadata_store(ha)
    data, _ = store.read_area()
    view = metadata.parse_area(data, store.max_hosts)
    assert sorted(view.hosts) == [1, 2] and not view.skipped, view
    for hid, rec in view.hosts.items():
        got = ovirt_parses(hid, data[hid * 4096:(hid + 1) * 4096])
        assert (got['host-ts'], got['score'], got['hostname']) == \
            (rec.timestamp, rec.score, rec.hostname)
    if data[:4096].strip(b'\0'):
        ovirt_parses_global(data[:4096])
    free = min(7, store.max_hosts)
    assert free not in view.hosts
    store.write_slot(free, ovirt_slot(free, 4242, 1800, hostname='ovirt-host%d.example' % free,
                                      state='EngineDown', local_conf_timestamp=4200,
                                      status={'vm': 'down', 'health': 'bad', 'detail': 'unknown',
                                              'reason': 'vm not running on this host'}))
    try:
        st = vm_status(ha, 'host2')
        h = st[str(free)]
        assert (h['hostname'], h['score'], h['host-ts']) == \
            ('ovirt-host%d.example' % free, 1800, 4242), h
        assert h['live-data'] is False        # its timestamp never moves
        out = ha.exec('host1', 'hosted-engine', '--vm-status', timeout=60).stdout
        assert '--== Host ovirt-host%d.example (id: %d) status ==--' % (free, free) in out
        assert 'metadata slot' not in out
    finally:
        store.write_slot(free, bytes(4096))


def test_vm_poweroff_is_restarted_by_an_agent(ha):
    host = wait_engine_healthy(ha)
    ha.exec(host, 'hosted-engine', '--vm-poweroff', timeout=60)
    wait_for('the VM down after --vm-poweroff',
             lambda: sum(len(v) for v in running_vms(ha).values()) == 0, 60, 1)
    t0 = time.monotonic()
    restarted_on = wait_vm_running_again(ha)
    again = wait_engine_healthy(ha)
    assert assert_one_vm(ha) == again == restarted_on
    print('engine healthy again on %s %.0f s after --vm-poweroff' % (again, time.monotonic() - t0))


def test_global_maintenance_stops_vm_actions(ha):
    host = wait_engine_healthy(ha)
    ha.exec('host1', 'hosted-engine', '--set-maintenance', '--mode=global', timeout=60)
    wait_for('global maintenance in the metadata',
             lambda: vm_status(ha, 'host2')['global_maintenance'], 30, 1)
    out = ha.exec('host2', 'hosted-engine', '--vm-status', timeout=60).stdout
    assert '!! Cluster is in GLOBAL MAINTENANCE mode !!' in out
    wait_for('both agents in GlobalMaintenance', lambda: all(
        'state=GlobalMaintenance' in v['extra'] for k, v in vm_status(ha).items()
        if k != 'global_maintenance'), 60)
    ha.exec(host, 'hosted-engine', '--vm-poweroff', timeout=60)
    # several agent loops: nobody starts the VM while the cluster is in global maintenance
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        assert sum(len(v) for v in running_vms(ha).values()) == 0, running_vms(ha)
        time.sleep(3)
    ha.exec('host2', 'hosted-engine', '--set-maintenance', '--mode=none', timeout=60)
    out = ha.exec('host1', 'hosted-engine', '--vm-status', timeout=60).stdout
    assert 'GLOBAL MAINTENANCE' not in out
    restarted_on = wait_vm_running_again(ha)
    assert wait_engine_healthy(ha) == restarted_on
    assert assert_one_vm(ha) == restarted_on


def test_local_maintenance_on_the_other_host(ha):
    host = wait_engine_healthy(ha)
    other = 'host2' if host == 'host1' else 'host1'
    r = ha.exec(host, 'hosted-engine', '--set-maintenance', '--mode=local', check=False,
                timeout=60)
    assert r.returncode == 1 and 'engine VM' in (r.stdout + r.stderr), r.stdout + r.stderr
    ha.exec(other, 'hosted-engine', '--set-maintenance', '--mode=local', timeout=60)

    def in_local():
        v = next(v for k, v in vm_status(ha).items()
                 if k != 'global_maintenance' and v['hostname'] == other)
        return v['maintenance'] and v['score'] == 0 and 'state=LocalMaintenance' in v['extra']
    wait_for('%s in local maintenance' % other, in_local, 60)
    ha.exec(other, 'hosted-engine', '--set-maintenance', '--mode=none', timeout=60)

    def back():
        v = next(v for k, v in vm_status(ha).items()
                 if k != 'global_maintenance' and v['hostname'] == other)
        return not v['maintenance'] and v['score'] > 0
    wait_for('%s out of local maintenance' % other, back, 60)
    assert assert_one_vm(ha) == host


def test_vm_status_with_the_local_agent_down(ha):
    agent = ha.service('host2', 'ovirt-ha-agent')
    os.kill(agent['pid'], signal.SIGTERM)
    wait_for('host2 published AgentStopped', lambda: next(
        v for k, v in vm_status(ha, 'host2').items()
        if k != 'global_maintenance' and v['hostname'] == 'host2')['stopped'], 60, 1)
    r = ha.exec('host2', 'hosted-engine', '--vm-status', timeout=60)
    assert '--== Host host1 (id: 1) status ==--' in r.stdout
    v = vm_status(ha, 'host2')['2']
    assert v['score'] == 0 and 'state=AgentStopped' in v['extra']
    # the engine keeps running on its host
    assert_one_vm(ha)
