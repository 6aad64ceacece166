"""Faults on a deployed engine with three HA hosts: one three-host lab for the module, the
engine deployed unattended on host1 (examples/lab-answers.conf), host2 and host3 joined
unattended as additional HA hosts, then real faults on the engine's host.

Every test watches the engine VMs on the three hosts every 2 s (lab/invariants.py: from
/proc and the hosts' /run, so a hung host is watched too) and fails if two ever run at
once; after the fault the engine
is back, healthy, its inventory intact (the engine's API lists the three hosts and the
HostedEngine VM), and every live host's `--vm-status` agrees where it runs. The tests run in
order, each waiting first until the lab is settled: one engine VM, healthy, the three hosts
live in every host's `--vm-status`.

Both lockspaces get a sanlock I/O timeout of 2 s: the hosted-engine lockspace through the
deploy (OVEHOSTED_STORAGE/sanlockIoTimeout), the storage domain's, which holds the engine
VM's lease, through the host agents (`hosted-engine-lab up --sanlock-io-timeout 2`, VDSM's
[sanlock] io_timeout). 2 s is the smallest value that stays safe on a loaded two-core
machine (a host is in trouble only when its renewals fail for 8 x io_timeout = 16 s in a
row, and a renewal is a 512-byte direct write to a local file; 1 s would leave 8 s).
sanlock's floor for the engine VM's lease, 8 x 2 + 60 = 76 s (140 s with VDSM's default of
10 s), is read from the storage, from the io_timeout of the lockspace holding that lease
(the storage domain's dom_md/ids), checked once deployed and printed with the failover
times.

Daemons killed on the engine's host: ha-agent, ha-broker, hostd and libvirtd. An HA unit
comes back by its service manager's Restart= when the lab's applies it, else with
`systemctl start` in the host (the test says which); hostd and libvirtd, which a
real host's service manager restarts and the lab runs as base daemons without a unit, are
started again the way `hosted-engine-lab up` starts them. sanlock is not killed here: on a
real host the death of sanlock while it holds leases stops the watchdog's petting and the
host is reset within 60 s (fenced), which is the crash of the last test; a lab host has no
watchdog (`sanlock daemon -w 0`), so its VM would outlive its lease, a lab artefact and not
the behaviour to test.

The engine's service stopped inside the running engine VM (as an admin logged in to it over
SSH would stop it) leaves the VM up with a bad health: the agent waits for the bad-health
timeout (300 s, ha/core.py) before it shuts the VM down and the engine is started again, so
that test alone takes over six minutes.

Times measured in the run are printed (pytest -s shows them); no assertion is on speed,
the deadlines only mean "it did not happen".
"""
import os
import threading
import time

import pytest

from ovirt_hosted_engine_setup.ha import core
from ovirt_hosted_engine_setup.he_storage import layout
from ovirt_hosted_engine_setup.lab import faults
from ovirt_hosted_engine_setup.lab.lab import Lab, alive

from .conftest import module_lab
from .deploy_helpers import deploy_ha_hosts, vm_lease_io_timeout, wait_for
from .ha_cluster import HaCluster, lab_name, view, vm_status

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root'),
              pytest.mark.timeout(1500)]

IO_TIMEOUT = 2
HOSTS = ('host1', 'host2', 'host3')
ROOT_PW = 'lab-root-Pa55'         # the engine VM's root password, examples/lab-answers.conf
AGENT_LOOP = 10                   # seconds between two decisions of an HA agent

lab = module_lab(3, 'he-faults-test-', sanlock_io_timeout=IO_TIMEOUT)


def failover_floor(lab):
    """Seconds until another host may take a dead host's engine VM lease (sanlock's floor),
    from the io_timeout of the lease's lockspace on the storage."""
    return layout.failover_floor(vm_lease_io_timeout(lab)[0])


CLUSTER = HaCluster(HOSTS, 'faults')
note = CLUSTER.note
engine_vms = CLUSTER.engine_vms
where_engine = CLUSTER.where_engine
healthy_elsewhere = CLUSTER.healthy_elsewhere
check_inventory = CLUSTER.check_inventory
settle = CLUSTER.settle
others = CLUSTER.others


def fault(lab, host, kind, *daemon):
    return CLUSTER.fault(lab, host, kind, *daemon)


def Watch(lab, health_via=None):
    return CLUSTER.watch(lab, health_via)

# -- the lab -------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def cluster(lab, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('faults-answers'))
    t0 = time.monotonic()
    deploy_ha_hosts(lab, work, len(HOSTS), IO_TIMEOUT, say=note)
    settle(lab)
    note('deployed and settled in %.0f s' % (time.monotonic() - t0))
    io_timeout, ids = vm_lease_io_timeout(lab)
    assert io_timeout == IO_TIMEOUT, (ids, io_timeout)
    note('the engine VM lease\'s lockspace %s: io_timeout %d s, sanlock floor %d s'
         % (ids, io_timeout, layout.failover_floor(io_timeout)))
    return lab


@pytest.fixture
def engine_host(cluster):
    """The lab settled, the engine's host."""
    return settle(cluster)


# -- the tests, in the order they run ------------------------------------------------------

def test_two_hosts_ha_services_restarted_at_once(cluster, engine_host):
    """systemctl restart of both HA services in the engine's host and another host at the
    same time: the engine VM is neither stopped nor started twice."""
    lab = cluster
    _host, pid = where_engine(lab)
    pair = [engine_host, others(engine_host)[0]]
    results = {}

    def restart(h):
        results[h] = lab.exec(h, 'systemctl', 'restart', 'ovirt-ha-broker', 'ovirt-ha-agent',
                              check=False, timeout=300)
    with Watch(lab, health_via=others(engine_host)[1]) as w:
        threads = [threading.Thread(target=restart, args=(h,)) for h in pair]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for h, r in results.items():
            assert r.returncode == 0, (h, r.stdout + r.stderr)
        assert settle(lab) == engine_host
    w.check()
    assert where_engine(lab) == (engine_host, pid)
    assert not w.outages(), 'the engine\'s health page failed at %s s' % w.outages()
    note('HA services of %s restarted at once: the engine VM (qemu %s) untouched'
         % (' and '.join(pair), pid))


DAEMONS = ('ha-agent', 'ha-broker', 'hostd', 'libvirtd')


@pytest.mark.parametrize('daemon', DAEMONS)
def test_daemon_killed_on_the_engine_host(cluster, engine_host, daemon):
    """A daemon of the engine's host killed (SIGKILL) then started again: the engine VM stays
    up on the same host the whole time, its health page answering throughout."""
    lab = cluster
    _host, pid = where_engine(lab)
    watcher = others(engine_host)[0]
    with Watch(lab, health_via=watcher) as w:
        unit = lab.service(engine_host, 'ovirt-%s' % daemon) if daemon.startswith('ha-') \
            else None
        fault(lab, engine_host, 'kill', daemon)
        how = restart_daemon(lab, engine_host, daemon, unit and unit['pid'])
        t_back = time.monotonic() - w.t0

        def agent_up():
            v = view(vm_status(lab, engine_host))
            return v[3].get(engine_host) == 'EngineUp' and v[1] == [engine_host], v
        wait_for('the agent of %s in EngineUp again' % engine_host, agent_up, 300, 5)
        # an agent loop more: nothing decides to stop or move the engine
        time.sleep(AGENT_LOOP)
        assert settle(lab) == engine_host
    w.check()
    assert where_engine(lab) == (engine_host, pid), engine_vms(lab)
    assert not w.outages(), 'the engine\'s health page failed at %s s' % w.outages()
    note('%s killed on %s: back after %.0f s (%s); the engine VM (qemu %s) stayed up, its '
         'health page answered in all %d samples' % (daemon, engine_host, t_back, how, pid,
                                                      len(w.health)))


# A real host's service manager restarts vdsmd and libvirtd when they die (Restart= in
# their units); the lab runs them as base daemons without a unit, so the test starts the
# killed daemon one agent loop later the way `up` does (Lab.start_base_daemon).


def restart_daemon(lab, host, daemon, killed):
    """Bring a killed daemon back as the host would; say how. An HA unit: restarted by the
    service manager when it applies the unit's Restart= (within 30 s), else started with
    `systemctl start`; `killed`: the unit's main pid that was killed."""
    if daemon in ('ha-agent', 'ha-broker'):
        unit = 'ovirt-%s' % daemon

        def restarted():
            rec = lab.service(host, unit)
            return bool(rec and rec.get('pid') != killed and alive(rec)), rec
        rec = wait_for('%s restarted by the service manager (Restart=on-failure)' % unit,
                       restarted, 60, 1)
        return 'restarted by the service manager (pid %d)' % rec['pid']
    # down for an agent loop, as long as a service manager takes to restart it
    time.sleep(AGENT_LOOP)
    note(faults.start_daemon(Lab(lab.dir), host, daemon))
    return 'started again as hosted-engine-lab up starts it'
def test_engine_host_partitioned(cluster, engine_host):
    """The engine's host cut from the network: its network test fails, its score drops by
    the gateway penalty, the engine moves to a host that scores better; after the heal
    nothing moves back.

    Runs while the engine VM is still the one the deploy started: an agent moves a VM it
    started itself only move_dwell (600 s) after that start (ha/core.py), a VM it found
    running once the better score held for move_hold (60 s)."""
    lab = cluster
    watchers = others(engine_host)
    with Watch(lab) as w:
        t0 = time.monotonic()
        fault(lab, engine_host, 'partition')
        try:
            host, seen = wait_for('the engine healthy on another host than %s' % engine_host,
                                  healthy_elsewhere(lab, engine_host, watchers), 900, 5)
            took = time.monotonic() - t0
            scores = view(vm_status(lab, watchers[0]))[2]
            assert scores[engine_host] <= 3400 - 1600, scores
        finally:
            fault(lab, engine_host, 'heal')
        _h, pid = where_engine(lab)
        # after the heal the old host's score comes back: nothing flaps
        time.sleep(3 * AGENT_LOOP)
        assert where_engine(lab) == (host, pid), engine_vms(lab)
        assert settle(lab) == host
    w.check()
    check_inventory(lab, host)
    note('%s partitioned: the engine healthy on %s after %.0f s (scores then %s); no move '
         'back after the heal' % (engine_host, host, took, scores))


def test_every_host_partitioned(cluster, engine_host):
    """Every host cut from the network: every score drops alike, nobody restarts or moves
    the engine VM, no second one starts; then heal them all."""
    lab = cluster
    _h, pid = where_engine(lab)
    with Watch(lab) as w:
        try:
            for h in HOSTS:
                fault(lab, h, 'partition')

            def dropped():
                scores = view(vm_status(lab, engine_host))[2]
                return all((scores.get(h) or 0) <= 3400 - 1600 for h in HOSTS), scores
            scores = wait_for('every host\'s score dropped by the network penalty', dropped,
                              300, 5)
            time.sleep(3 * AGENT_LOOP)
            assert where_engine(lab) == (engine_host, pid), engine_vms(lab)
        finally:
            for h in HOSTS:
                fault(lab, h, 'heal')
        assert settle(lab) == engine_host
    w.check()
    assert where_engine(lab) == (engine_host, pid)
    note('every host partitioned (scores %s): the engine VM stayed on %s' % (scores,
                                                                              engine_host))


def test_engine_vm_killed(cluster, engine_host):
    """The engine VM's qemu killed: the HA agents start it again (here or elsewhere)."""
    lab = cluster
    with Watch(lab) as w:
        t0 = time.monotonic()
        fault(lab, engine_host, 'vm-kill')
        host = settle(lab)
        took = time.monotonic() - t0
    w.check()
    check_inventory(lab, host)
    note('vm-kill on %s: the engine healthy again on %s after %.0f s'
         % (engine_host, host, took))


def test_global_maintenance_during_a_fault(cluster, engine_host):
    """In global maintenance nothing restarts a killed engine VM; once it ends the engine
    comes back."""
    lab = cluster
    lab.exec(others(engine_host)[0], 'hosted-engine', '--set-maintenance', '--mode=global')
    with Watch(lab) as w:
        fault(lab, engine_host, 'vm-kill')
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4 * AGENT_LOOP:
            assert sum(engine_vms(lab).values()) == 0, engine_vms(lab)
            time.sleep(2)
        st = vm_status(lab, engine_host)
        assert st.get('global_maintenance') is True, st
        lab.exec(others(engine_host)[1], 'hosted-engine', '--set-maintenance', '--mode=none')
        t1 = time.monotonic()
        host = settle(lab)
        took = time.monotonic() - t1
    w.check()
    # nothing ran while in maintenance: the samples of the first 40 s are all empty
    assert all(sum(c.values()) == 0 for t, c in w.samples if 2 < t < 4 * AGENT_LOOP), \
        w.samples
    check_inventory(lab, host)
    note('global maintenance: the killed engine VM stayed down %d s; after --mode=none '
         'healthy on %s in %.0f s' % (4 * AGENT_LOOP, host, took))


STOP_ENGINE = r'''
import sys
import paramiko
ssh = paramiko.SSHClient()
ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())   # a first login: accept the key
ssh.connect("engine.lab.test", username="root", password=sys.stdin.readline().strip(),
            look_for_keys=False, allow_agent=False, timeout=30)
_i, out, err = ssh.exec_command(
    'pid=$(cat /run/ovirt-engine-lab.pid) && kill "$pid" && i=0 && '
    'while kill -0 "$pid" 2>/dev/null; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.2; done'
    ' && echo "the engine service (pid $pid) stopped"', timeout=60)
status = out.channel.recv_exit_status()
print(out.read().decode().strip(), err.read().decode().strip())
ssh.close()
sys.exit(status)
'''


def stop_engine_service(lab, via):
    """Stop the engine's service inside the engine VM as an admin would: log in to the VM
    as root over SSH (from lab host `via`) and stop the engine process (the appliance's
    engine, /usr/libexec/ovirt-engine-lab/start-engine, keeps its pid in
    /run/ovirt-engine-lab.pid; its shutdown script stops it the same way)."""
    r = lab.exec(via, 'python3', '-c', STOP_ENGINE, check=False, timeout=120,
                 input=ROOT_PW + '\n')
    assert r.returncode == 0, r.stdout + r.stderr
    note(r.stdout.strip())


def test_engine_service_down(cluster, engine_host):
    """The engine's service stopped inside the running engine VM: the VM stays up, every
    host's --vm-status shows its host in EngineUpBadHealth; once the bad-health timeout
    (300 s) is over the agent shuts the VM down, and the engine is started again (on that
    host or another) and healthy; never two engine VMs."""
    lab = cluster
    _h, pid = where_engine(lab)
    bad_timeout = core.CoreConfig().bad_health_timeout
    with Watch(lab) as w:
        t0 = time.monotonic()
        stop_engine_service(lab, others(engine_host)[0])

        def bad_health():
            seen = {}
            for h in HOSTS:
                st = vm_status(lab, h)
                rec = [r for k, r in st.items() if k.isdigit() and lab_name(r) == engine_host]
                es = (rec[0].get('engine-status') or {}) if rec else {}
                seen[h] = (es.get('vm'), es.get('health'), view(st)[3].get(engine_host))
            return all(v == ('up', 'bad', core.UP_BAD) for v in seen.values()), seen
        wait_for('%s in EngineUpBadHealth in every --vm-status' % engine_host, bad_health,
                 180, 5)
        t_bad = time.monotonic() - t0

        def stopped():
            return where_engine(lab) != (engine_host, pid), engine_vms(lab)
        # the VM keeps running through the bad-health timeout, then is shut down
        wait_for('the engine VM (qemu %s) on %s shut down' % (pid, engine_host), stopped,
                 bad_timeout + 600, 5)
        t_down = time.monotonic() - t0
        assert t_down >= bad_timeout, 'the engine VM stopped %.0f s after the engine' % t_down
        host = settle(lab)
        took = time.monotonic() - t0
    w.check()
    _h, new_pid = where_engine(lab)
    assert new_pid != pid, (pid, new_pid)
    check_inventory(lab, host)
    note('engine service stopped in the VM on %s: EngineUpBadHealth everywhere after %.0f s, '
         'the VM shut down %.0f s after the stop (bad-health timeout %d s), the engine healthy '
         'on %s after %.0f s' % (engine_host, t_bad, t_down, bad_timeout, host, took))


def test_hung_engine_host(cluster, engine_host):
    """The engine's host hangs (every process frozen) past its hosted-engine lockspace's
    renewal timeout (8 x io_timeout) but under sanlock's floor: no other host may take the
    engine VM's lease meanwhile, so no engine VM starts anywhere else; thawed, the host
    joins again and the engine is healthy (where it was, or restarted), never two VMs.
    With the storage domain's lockspace at the same io_timeout, the thawed host's sanlock
    finds that lockspace's renewals failed too and kills the engine VM, as on a real host;
    the agents then start it again.

    A hang longer than the floor is left to the soak (`hosted-engine-lab soak`): a real
    hung host is reset by its watchdog at the floor, a lab host has no watchdog, and its
    frozen qemu keeps QEMU's lock on the disk image, which every lab host sees (docs/lab.md)."""
    lab = cluster
    _h, pid = where_engine(lab)
    floor = failover_floor(lab)
    hold = layout.renewal_fail(IO_TIMEOUT) + 2 * AGENT_LOOP
    assert hold < layout.failover_floor(IO_TIMEOUT) <= floor
    with Watch(lab) as w:
        t0 = time.monotonic()
        fault(lab, engine_host, 'freeze')
        try:
            while time.monotonic() - t0 < hold:
                running = {h: n for h, n in engine_vms(lab).items() if n and h != engine_host}
                assert not running, 'an engine VM runs while %s is frozen: %s' % (
                    engine_host, running)
                time.sleep(2)
        finally:
            fault(lab, engine_host, 'thaw')
        t_thaw = time.monotonic()
        time.sleep(2 * AGENT_LOOP)   # views written after the thaw, not before the freeze
        host = settle(lab)
        took = time.monotonic() - t_thaw
    w.check()
    check_inventory(lab, host)
    note('%s frozen %.0f s (renewal timeout %d s, sanlock floor %d s): no engine VM started '
         'elsewhere meanwhile; %.0f s after the thaw the engine healthy on %s (%s), the three '
         'hosts live' % (engine_host, t_thaw - t0, layout.renewal_fail(IO_TIMEOUT), floor,
                         took, host, 'the same engine VM' if where_engine(lab) == (
                             engine_host, pid) else 'the engine VM started again'))


def test_engine_host_crashed_and_restarted(cluster, engine_host):
    """The engine's host powered off: the engine back elsewhere after sanlock's floor; the
    host restarted (as after a reboot) joins again, live in --vm-status, and leaves the
    engine where it is."""
    lab = cluster
    watchers = others(engine_host)
    with Watch(lab) as w:
        t0 = time.monotonic()
        fault(lab, engine_host, 'crash')
        host, _seen = wait_for('the engine healthy on another host than %s' % engine_host,
                               healthy_elsewhere(lab, engine_host, watchers), 900, 5)
        took = time.monotonic() - t0
        _h, pid = where_engine(lab)
        r = lab.cli('restart', engine_host, timeout=600)
        note(r.stdout.strip())
        assert settle(lab) == host
        time.sleep(2 * AGENT_LOOP)
        assert where_engine(lab) == (host, pid), engine_vms(lab)
    w.check()
    check_inventory(lab, host)
    floor = failover_floor(lab)
    note('%s crashed: the engine healthy on %s after %.0f s (sanlock floor %d s, ratio '
         '%.2f); restarted, it rejoined without taking the engine'
         % (engine_host, host, took, floor, took / floor))
