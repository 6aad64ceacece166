"""The engine on a Gluster replica 3 volume, end to end: one three-host lab with the volume
(`hosted-engine-lab up --storage gluster`: glusterd and a brick on each host, oVirt's
volume options), the engine deployed unattended on host1 onto the volume
(examples/lab-gluster-answers.conf: the replica check, the mount under glusterSD/ with
backup-volfile-servers), host2 joined as a second HA host, then storage faults on the
engine's host:

- one brick down (the engine host's own): nothing moves, the engine stays healthy;
- storage latency (every packet to glusterd or a brick held 100 ms): no restart, no score
  change, the agent stays in EngineUp;
- the engine host's path to the volume cut (storage-loss): its sanlock can no longer renew
  its leases, the engine comes back healthy on host2 once sanlock's floor lets host2 take the
  engine VM's lease, never two engine VMs, the engine's inventory intact; given its storage
  back, host1 rejoins without taking the engine.

Both lockspaces (the hosted-engine one and the storage domain's, which holds the engine VM's
lease) have an io_timeout of 3 s: sanlock's floor is 8 x 3 + 60 = 84 s. host3 serves a brick
and is not an HA host. Times measured are printed (pytest -s); no assertion is on speed.
"""
import os
import time

import pytest

from ovirt_hosted_engine_setup.he_storage import layout
from ovirt_hosted_engine_setup.lab import gluster
from ovirt_hosted_engine_setup.lab.lab import Lab

from .conftest import module_lab
from .deploy_helpers import deploy_ha_hosts, lab_gluster, vm_lease_io_timeout, wait_for
from .ha_cluster import HaCluster, view, vm_status

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root'),
              pytest.mark.timeout(1500)]

IO_TIMEOUT = 3
HA_HOSTS = ('host1', 'host2')
AGENT_LOOP = 10                   # seconds between two decisions of an HA agent

lab = module_lab(3, 'he-gluster-ha-test-', sanlock_io_timeout=IO_TIMEOUT, storage='gluster')
CLUSTER = HaCluster(HA_HOSTS, 'gluster')
note = CLUSTER.note


@pytest.fixture(scope='module')
def cluster(lab, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('gluster-answers'))
    t0 = time.monotonic()
    times = deploy_ha_hosts(lab, work, len(HA_HOSTS), IO_TIMEOUT, say=note)
    CLUSTER.settle(lab)
    note('deployed on gluster and settled in %.0f s (%s)' % (
        time.monotonic() - t0, ', '.join('%s %.0f s' % kv for kv in sorted(times.items()))))
    io_timeout, ids = vm_lease_io_timeout(lab)
    assert io_timeout == IO_TIMEOUT, (ids, io_timeout)
    return lab


@pytest.fixture
def engine_host(cluster):
    return CLUSTER.settle(cluster)


def hosted_engine_conf(lab, host):
    r = lab.exec(host, 'cat', '/etc/ovirt-hosted-engine/hosted-engine.conf')
    return dict(line.split('=', 1) for line in r.stdout.splitlines() if '=' in line)


def test_the_engine_runs_from_the_gluster_volume(cluster, engine_host):
    """Both HA hosts name the volume as their storage and mount it where VDSM does, with the
    other brick servers as backup volfile servers; the engine VM's disk is on it."""
    g = lab_gluster(cluster)
    mnt = layout.mount_point(g['connection'], domain_type='glusterfs')
    assert '/glusterSD/' in mnt
    for host in HA_HOSTS:
        conf = hosted_engine_conf(cluster, host)
        assert conf['domainType'] == 'glusterfs' and conf['storage'] == g['connection'], conf
        mounts = cluster.exec(host, 'cat', '/proc/mounts').stdout
        line = [m for m in mounts.splitlines() if m.split()[1] == mnt.replace(' ', '\\040')]
        assert line and line[0].split()[2] == 'fuse.glusterfs', mounts
        client = cluster.exec(host, 'pgrep', '-af', 'glusterfs.*%s' % mnt).stdout
        for server in g['servers'][1:]:
            assert '--volfile-server=%s' % server in client, client
    disk = cluster.exec(engine_host, 'virsh', '-r', 'dumpxml', 'HostedEngine').stdout
    assert "file='%s/" % mnt in disk, disk


def test_one_brick_down_nothing_moves(cluster, engine_host):
    """The engine host's own brick killed: the volume goes on with two bricks of three
    (gluster's client quorum), the engine VM is neither stopped nor moved."""
    lab = cluster
    _host, pid = CLUSTER.where_engine(lab)
    with CLUSTER.watch(lab, health_via=CLUSTER.others(engine_host)[0]) as w:
        CLUSTER.fault(lab, engine_host, 'brick-kill')
        try:
            time.sleep(4 * AGENT_LOOP)
            assert CLUSTER.where_engine(lab) == (engine_host, pid)
            after = view(vm_status(lab, engine_host))
            assert after[1] == [engine_host] and after[3][engine_host] == 'EngineUp', after
        finally:
            CLUSTER.fault(lab, engine_host, 'brick-back')
    w.check()
    assert not w.outages(), 'the health page failed at %s s' % w.outages()
    assert CLUSTER.settle(lab) == engine_host
    assert CLUSTER.where_engine(lab) == (engine_host, pid)


def test_storage_latency_no_restart_no_flapping(cluster, engine_host):
    """Every packet the engine's host sends to glusterd or a brick held 100 ms, for six agent
    loops: the engine VM keeps running, every --vm-status keeps showing the engine's host in
    EngineUp with the score it had (the latency costs it nothing). The other host's score may
    move with its CPU load (the machine runs other labs), never its state."""
    lab = cluster
    _host, pid = CLUSTER.where_engine(lab)
    scores = view(vm_status(lab, engine_host))[2]
    seen = []
    with CLUSTER.watch(lab) as w:
        CLUSTER.fault(lab, engine_host, 'storage-slow', '100')
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 6 * AGENT_LOOP:
                for h in HA_HOSTS:
                    _live, _engine, s, states = view(vm_status(lab, h))
                    seen.append((round(time.monotonic() - t0), h, s, states.get(engine_host)))
                time.sleep(AGENT_LOOP / 2)
        finally:
            CLUSTER.fault(lab, engine_host, 'storage-back')
    w.check()
    note('under 100 ms storage latency: %s' % seen[-2:])
    assert CLUSTER.where_engine(lab) == (engine_host, pid)
    flaps = [s for s in seen if s[2] and s[2].get(engine_host) != scores[engine_host]]
    assert not flaps, '%s\'s score changed from %d: %s' % (engine_host, scores[engine_host],
                                                          flaps)
    assert all(s[3] == 'EngineUp' for s in seen), seen
    assert CLUSTER.settle(lab) == engine_host


def test_engine_host_loses_its_storage(cluster, engine_host):
    """storage-loss on the engine's host: the engine comes back healthy on the other HA
    host, after sanlock's floor, never two engine VMs, the engine's inventory intact; given
    its storage back, the host rejoins without taking the engine."""
    lab = cluster
    other = CLUSTER.others(engine_host)[0]
    floor = layout.failover_floor(IO_TIMEOUT)
    with CLUSTER.watch(lab) as w:
        t0 = time.monotonic()
        CLUSTER.fault(lab, engine_host, 'storage-loss')
        try:
            host, _ = wait_for('the engine healthy on %s' % other,
                               CLUSTER.healthy_elsewhere(lab, engine_host, [other]),
                               floor + 600, 5)
            took = time.monotonic() - t0
            note('storage lost on %s: the engine healthy on %s after %.0f s (sanlock floor '
                 '%d s)' % (engine_host, host, took, floor))
        finally:
            CLUSTER.fault(lab, engine_host, 'storage-back')
        assert CLUSTER.settle(lab) == other
    w.check()
    CLUSTER.check_inventory(lab, other)


def test_the_lab_volume_is_whole_again(cluster):
    """After the faults every brick is online again."""
    state = Lab(cluster.dir)
    state.load()
    status = gluster.volume_status(state, 'host3')
    assert sorted(status) == ['host1', 'host2', 'host3'], status
    assert all(b['online'] for b in status.values()), status
