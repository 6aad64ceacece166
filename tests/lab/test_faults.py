"""Real faults in lab hosts (`hosted-engine-lab fault`, `restart`; lab/faults.py), on one lab
of 3 hosts prepared for the HA services with the lab guest as engine VM (`ha-prepare`, no
deploy), the HA units enabled and started in every host as a deploy leaves them:

- bad input: unknown host, kind, daemon; kill without a daemon; vm-kill where no engine VM
  runs: one line, exit 1;
- partition then heal: ping from another host (and to the gateway) fails, then works; the
  host's own storage stays readable;
- freeze then thaw: every process of the host stopped, then running; the host's sanlock
  renewals (its delta lease's timestamp on the storage) stop, then resume;
- kill DAEMON for each daemon: the process gone, `status` shows it DEAD; the HA units show
  `activating (auto-restart)` in the host's `systemctl status` and the service manager
  starts them again after their RestartSec= (Restart=on-failure), the broker answering
  again, the agent writing its log again;
- crash then restart, and restart of a frozen host: the leftovers of the killed daemons do
  not stop the boot, the base daemons and the enabled HA units run again, --vm-status on
  the host works and its agent rejoins (its host id live, its own data current);
- vm-kill: the engine VM's qemu killed.

And without a lab: the soak's draws (lab/soak.py) and its round and failure lines, the
invariants' reading of --vm-status documents (lab/invariants.py).
"""
import io
import json
import os
import random
import re
import socket
import subprocess
import threading
import time

import pytest

from ovirt_hosted_engine_setup.ha.broker_client import (BrokerClient, BrokerError,
                                                        BrokerUnavailable)
from ovirt_hosted_engine_setup.lab import faults, invariants, soak
from ovirt_hosted_engine_setup.lab.lab import HA_SOCKET, Lab, LabError, alive

from .conftest import module_lab, wait_until

root_only = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

lab = module_lab(3, prefix='he-lab-faults-')
HA_UNITS = ('ovirt-ha-broker', 'ovirt-ha-agent')


@pytest.fixture(scope='module')
def ha(lab):
    lab.cli('ha-prepare', '--io-timeout', '2', timeout=900)
    for h in ('host1', 'host2', 'host3'):
        lab.exec(h, 'systemctl', 'enable', *HA_UNITS, timeout=60)   # as a deploy does
    lab.cli('ha', 'start', timeout=180)
    yield lab
    lab.cli('ha', 'stop', check=False, timeout=180)


def labobj(lab):
    return Lab(lab.dir)


def host_pids(lab, host):
    lo = labobj(lab)
    return faults.host_processes(lo.host(host))


def status_row(lab, host):
    out = lab.cli('status', check=False).stdout.splitlines()
    head = out[1].split()
    row = next(line.split() for line in out if line.startswith(host + ' '))
    return dict(zip(head, row))


def ping(lab, src, dst):
    return lab.exec(src, 'ping', '-c', '1', '-W', '1', dst, check=False, timeout=30).returncode


def heconf(lab):
    conf = {}
    with open(os.path.join(lab.dir, 'hosts', 'host1', 'etc-ovirt-hosted-engine',
                           'hosted-engine.conf')) as f:
        for line in f:
            k, _, v = line.strip().partition('=')
            conf[k] = v
    return conf


def lease_timestamp(lab, host_id):
    """Host id's delta lease timestamp in the hosted-engine lockspace, read on the storage."""
    c = heconf(lab)
    path = os.path.join(c['storage'], c['sdUUID'], 'images', c['lockspace_image_UUID'],
                        c['lockspace_volume_UUID'])
    out = subprocess.run(['sanlock', 'direct', 'dump', path], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 5 and int(f[4]) == host_id:
            return int(f[3])
    raise AssertionError('host id %d not in the lockspace:\n%s' % (host_id, out))


def fail_line(r):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and 'Traceback' not in r.stderr, (
        r.returncode, r.stdout, r.stderr)
    return lines[0]


# ------------------------------------------------------------------ with a lab

@root_only
def test_bad_input(ha):
    for args, words in ((('host9', 'crash'), "no lab host 'host9'"),
                        (('host1', 'explode'), "unknown fault 'explode'"),
                        (('host1', 'kill', 'nginx'), "unknown daemon 'nginx'"),
                        (('host1', 'kill'), 'fault kill needs a daemon'),
                        (('host1', 'freeze', 'sanlock'), 'takes no daemon'),
                        # the storage faults need a gluster lab (up --storage gluster)
                        (('host1', 'storage-loss'), 'storage-loss needs a gluster lab'),
                        (('host1', 'storage-slow', '100'), 'storage-slow needs a gluster lab'),
                        (('host1', 'storage-back'), 'storage-back needs a gluster lab'),
                        (('host1', 'brick-kill'), 'brick-kill needs a gluster lab'),
                        (('host1', 'brick-back'), 'brick-back needs a gluster lab')):
        line = fail_line(ha.cli('fault', *args, check=False))
        assert words in line, line
    assert "no lab host 'host7'" in fail_line(ha.cli('restart', 'host7', check=False))
    assert '--rounds must be 1 or more' in fail_line(ha.cli('soak', '--seed', '1', '--rounds',
                                                          '0', check=False))


@root_only
def test_partition_then_heal(ha):
    assert ping(ha, 'host1', 'host2') == 0
    r = ha.cli('fault', 'host2', 'partition')
    assert r.stdout.strip().startswith('host2: partitioned'), r.stdout
    assert 'storage untouched' in r.stdout, r.stdout
    assert not faults.link_up(labobj(ha), 'host2')
    assert ping(ha, 'host1', 'host2') != 0
    assert ping(ha, 'host2', '192.168.222.1') != 0
    assert ping(ha, 'host3', 'host1') == 0          # the others are not affected
    c = heconf(ha)
    r = ha.exec('host2', 'ls', os.path.join(c['storage'], c['sdUUID'], 'images',
                                            c['lockspace_image_UUID']), timeout=30)
    assert c['lockspace_volume_UUID'] in r.stdout
    r = ha.cli('fault', 'host2', 'heal')
    assert r.stdout.strip().startswith('host2: healed'), r.stdout
    assert faults.link_up(labobj(ha), 'host2')
    wait_until('host2 reachable again', lambda: ping(ha, 'host1', 'host2') == 0, 15)
    assert ping(ha, 'host2', '192.168.222.1') == 0


@root_only
def test_freeze_then_thaw(ha):
    lease = lambda: lease_timestamp(ha, 2)   # noqa: E731
    wait_until('host2 renewing its host id', lambda: lease() > 0, 60)
    t = lease()
    wait_until('a sanlock renewal of host2', lambda: lease() > t, 15)
    r = ha.cli('fault', 'host2', 'freeze')
    assert re.match(r'host2: frozen \(\d+ processes stopped', r.stdout), r.stdout
    pids = host_pids(ha, 'host2')
    lo = labobj(ha)
    sanlock = lo.host('host2')['daemons']['sanlock']['pid']
    assert sanlock in pids and all(faults.stopped(p) for p in pids), \
        [(p, faults.proc_state(p)) for p in pids]
    frozen_at = lease()
    time.sleep(6)      # more than one renewal interval (2 x io_timeout), less than the
    assert lease() == frozen_at   # 8 x io_timeout after which sanlock gives the host id up
    r = ha.cli('fault', 'host2', 'thaw')
    assert re.match(r'host2: thawed \(\d+ stopped processes continued', r.stdout), r.stdout
    assert not any(faults.stopped(p) for p in host_pids(ha, 'host2'))
    wait_until('host2 renewing again', lambda: lease() > frozen_at, 15)
    assert status_row(ha, 'host2')['sanlock'] == 'up'


def systemctl_status(lab, host, unit):
    return lab.exec(host, 'systemctl', 'status', unit, check=False, timeout=60)


def broker_answers(lo, host):
    """The host's broker answers a ping on its socket."""
    path = '/proc/%d/root%s' % (lo.host(host)['holder']['pid'], HA_SOCKET)
    try:
        with BrokerClient(socket_path=path, timeout=5) as c:
            c.call('ping')
        return True
    except (BrokerUnavailable, BrokerError, OSError):
        return False


def restarted(lo, host, unit, old_pid):
    """The unit's record once a new main process of it runs, else None."""
    def new_record():
        rec = lo.service(host, unit)
        return rec if rec and rec['pid'] != old_pid and alive(rec) else None
    return new_record


@root_only
@pytest.mark.parametrize('daemon,unit,restart_sec', [('ha-agent', 'ovirt-ha-agent', 10),
                                                     ('ha-broker', 'ovirt-ha-broker', 5)])
def test_kill_ha_unit(ha, daemon, unit, restart_sec):
    """The units say Restart=on-failure: the host's service manager starts a killed one
    again after its RestartSec=, as systemd does, and restarts what requires it with it
    (the broker's restart restarts the agent)."""
    lo = labobj(ha)
    before = {u: lo.service('host3', u)['pid'] for u in HA_UNITS}
    agent_log = lo._host_path('host3', '/var/log/ovirt-hosted-engine-ha/agent.log')
    r = ha.cli('fault', 'host3', 'kill', daemon)
    assert r.stdout.startswith('host3: %s killed (SIGKILL to %d' % (unit, before[unit])), \
        r.stdout
    died = lo.service('host3', unit)['since']
    st = systemctl_status(ha, 'host3', unit)
    assert st.returncode == 3 and 'Active: activating (auto-restart) (Result: signal)' \
        in st.stdout, st.stdout
    assert 'Main PID: %d (code=killed, signal=KILL)' % before[unit] in st.stdout, st.stdout
    assert status_row(ha, 'host3')[daemon] == 'DEAD'
    assert ha.cli('status', check=False).returncode == 1
    rec = wait_until('%s started again' % unit, restarted(lo, 'host3', unit, before[unit]),
                   restart_sec + 30, 0.2)
    assert rec['since'] - died >= restart_sec - 0.5, (rec['since'], died)
    assert rec['restarts'] == 1 and rec['last']['pid'] == before[unit]
    st = systemctl_status(ha, 'host3', unit)
    assert st.returncode == 0 and 'Restarts: 1 (' in st.stdout, st.stdout
    assert 'Scheduled restart job, restart counter is at 1.' in st.stdout, st.stdout
    if daemon == 'ha-broker':
        wait_until('the broker answering', lambda: broker_answers(lo, 'host3'), 30)
        # the agent requires the broker: restarted with it
        wait_until('the agent restarted with the broker',
                 restarted(lo, 'host3', 'ovirt-ha-agent', before['ovirt-ha-agent']), 30, 0.2)
    size = os.path.getsize(agent_log)
    wait_until('the new agent writing its log', lambda: os.path.getsize(agent_log) > size, 60)
    for u in HA_UNITS:
        assert systemctl_status(ha, 'host3', u).returncode == 0
    assert status_row(ha, 'host3')[daemon] == 'up'


@root_only
@pytest.mark.parametrize('daemon', ['sanlock', 'libvirtd', 'hostd'])
def test_kill_base_daemon_then_restart(ha, daemon):
    lo = labobj(ha)
    rec = lo.host('host3')['daemons'][daemon]
    children = faults._children(rec['pid'], host_pids(ha, 'host3'))
    r = ha.cli('fault', 'host3', 'kill', daemon)
    assert r.stdout.startswith('host3: %s killed (SIGKILL to %d' % (daemon, rec['pid'])), \
        r.stdout
    assert not os.path.exists('/proc/%d' % rec['pid']) or \
        faults.proc_state(rec['pid']) in (None, 'Z')
    if daemon == 'sanlock':
        assert children and all(faults.proc_state(p) in (None, 'Z') for p in children)
    row = status_row(ha, 'host3')
    assert row[daemon] == 'DEAD' and row['sshd'] == 'up', row
    # not a unit of the host's service manager: `systemctl` does not know it
    assert systemctl_status(ha, 'host3', daemon).returncode == 4
    r = ha.cli('restart', 'host3', timeout=300)
    assert re.search(r'host3: restarted in \d+ s \(\d+ processes killed first', r.stdout), r.stdout
    assert len(r.stdout.splitlines()) == 1, r.stdout
    row = status_row(ha, 'host3')
    assert all(v == 'up' for k, v in row.items() if k not in ('HOST', 'ADDRESS')), row
    assert Lab(ha.dir).host('host3')['daemons'][daemon]['pid'] != rec['pid']


@root_only
@pytest.mark.parametrize('daemon', ['libvirtd', 'hostd'])
def test_kill_base_daemon_then_start_it_again(ha, daemon):
    lo = labobj(ha)
    old = lo.host('host2')['daemons'][daemon]['pid']
    ha.cli('fault', 'host2', 'kill', daemon)
    assert status_row(ha, 'host2')[daemon] == 'DEAD'
    line = faults.start_daemon(Lab(ha.dir), 'host2', daemon)
    assert re.match(r'host2: %s started again in [\d.]+ s$' % daemon, line), line
    row = status_row(ha, 'host2')
    assert all(v == 'up' for k, v in row.items() if k not in ('HOST', 'ADDRESS')), row
    assert Lab(ha.dir).host('host2')['daemons'][daemon]['pid'] != old
    with pytest.raises(LabError, match=r'host2: %s is running \(pid \d+\): nothing to start'
                       % daemon):
        faults.start_daemon(Lab(ha.dir), 'host2', daemon)


def agent_rejoined(lab, host, host_id):
    """--vm-status on host works and shows host's own data current (its agent publishes,
    its host id live in the lockspace)."""
    def ok():
        r = lab.exec(host, 'hosted-engine', '--vm-status', '--json', check=False, timeout=60)
        if r.returncode != 0:
            return False
        st = json.loads(r.stdout)
        own = st.get(str(host_id))
        return own is not None and own['live-data'] is True and not own['stopped']
    return ok


@root_only
def test_crash_then_restart(ha):
    lo = labobj(ha)
    old = {d: r['pid'] for d, r in lo.host('host3')['daemons'].items()}
    old_agent = lo.service('host3', 'ovirt-ha-agent')['pid']
    r = ha.cli('fault', 'host3', 'crash')
    assert r.stdout.startswith('host3: crashed'), r.stdout
    assert host_pids(ha, 'host3') == []
    root = '/proc/%d/root' % lo.host('host3')['holder']['pid']
    # the leftovers of the killed daemons a boot must not trip over
    for stale in ('/run/sanlock/sanlock.pid', '/run/ovirt-hosted-engine-ha/broker.socket',
                  '/run/libvirt/virtlogd-sock', '/run/lab/systemd/ovirt-ha-agent.service.json'):
        assert os.path.exists(root + stale), stale
    row = status_row(ha, 'host3')
    assert all(row[d] == 'DEAD' for d in ('sanlock', 'libvirtd', 'hostd', 'ha-broker',
                                          'ha-agent')), row
    r = ha.cli('restart', 'host3', timeout=300)
    assert re.fullmatch(r'host3: restarted in \d+ s \(\d+ leftovers removed from /run; link up; '
                        r'daemons sanlock, virtlogd, libvirtd, hostd, sshd started; units '
                        r'ovirt-ha-agent, ovirt-ha-broker started\)\n', r.stdout), r.stdout
    # restart returns once the broker answers on its own new socket (not on the one the
    # killed broker left behind)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(root + '/run/ovirt-hosted-engine-ha/broker.socket')
    lo = labobj(ha)
    new = {d: r['pid'] for d, r in lo.host('host3')['daemons'].items()}
    assert set(new) == set(old) and not set(new.values()) & set(old.values())
    assert lo.service('host3', 'ovirt-ha-agent')['pid'] != old_agent
    assert all(systemctl_status(ha, 'host3', u).returncode == 0 for u in HA_UNITS)
    assert ha.cli('status').returncode == 0
    wait_until('the agent of host3 rejoining', agent_rejoined(ha, 'host3', 3), 120, 3)


@root_only
def test_restart_frozen_host(ha):
    ha.cli('fault', 'host2', 'freeze')
    r = ha.cli('restart', 'host2', timeout=300)
    assert re.search(r'host2: restarted in \d+ s \(\d+ processes killed first', r.stdout), r.stdout
    assert len(r.stdout.splitlines()) == 1, r.stdout
    assert not any(faults.stopped(p) for p in host_pids(ha, 'host2'))
    assert ha.cli('status').returncode == 0
    wait_until('the agent of host2 rejoining', agent_rejoined(ha, 'host2', 2), 120, 3)


@root_only
def test_vm_kill(ha):
    lo = labobj(ha)
    hosts = ['host1', 'host2', 'host3']
    where = wait_until('the engine VM running', lambda: [
        h for h, n in invariants.engine_vm_hosts(lo, hosts).items() if n], 300, 3)
    assert len(where) == 1, where
    other = next(h for h in hosts if h != where[0])
    line = fail_line(ha.cli('fault', other, 'vm-kill', check=False))
    assert line.startswith('hosted-engine-lab: no engine VM runs on %s' % other), line
    pids = faults.engine_qemu_pids(lo, where[0])
    r = ha.cli('fault', where[0], 'vm-kill')
    assert r.stdout.strip() == '%s: engine VM %s killed (qemu %s, SIGKILL)' % (
        where[0], heconf(ha)['vmid'], ', '.join(map(str, pids))), r.stdout
    assert invariants.engine_vm_hosts(lo, [where[0]]) == {where[0]: 0}
    assert all(faults.proc_state(p) in (None, 'Z') for p in pids)


# ------------------------------------------------------------------ without a lab

def test_soak_draws_follow_the_seed():
    hosts = ['host1', 'host2', 'host3']
    a = [soak.plan(random.Random(7), hosts, 'host2') for _ in range(1)]
    rng1, rng2 = random.Random(7), random.Random(7)
    p1 = [soak.plan(rng1, hosts, 'host2') for _ in range(40)]
    p2 = [soak.plan(rng2, hosts, 'host2') for _ in range(40)]
    assert p1 == p2 and p1[0] == a[0]
    assert p1 != [soak.plan(random.Random(8), hosts, 'host2') for _ in range(40)]
    kinds = {p[0] for p in p1}
    assert kinds == set(soak.ROUND_KINDS)
    for kind, daemon, host, hold in p1:
        assert (daemon in faults.KILL_DAEMONS) == (kind == 'kill')
        if kind == 'vm-kill':
            assert host == 'host2' and hold == 0
        else:
            assert host in hosts and 10 <= hold <= 210   # 1.5 x (8 x 10 + 60)
    assert {p[2] for p in p1} == set(hosts)
    assert max(p[3] for p in p1) > 140    # some holds outlast sanlock's 140 s
    assert soak.hold_range(2) == (10, 114)
    rng = random.Random(7)
    short = [soak.plan(rng, hosts, 'host2', soak.hold_range(2))[3] for _ in range(40)]
    assert all(h == 0 or 10 <= h <= 114 for h in short)


class FakeLab:
    dir = '/nonexistent'

    def __init__(self, _dir=None):
        pass

    def host_names(self):
        return ['host1', 'host2', 'host3']


def fake_soak(monkeypatch, counts_seq, problems_after):
    """A soak whose faults are recorded and whose engine VM counts and invariants are
    scripted."""
    done = []
    monkeypatch.setattr(faults, 'engine_vm_id', lambda lab, h: 'vm-id')
    monkeypatch.setattr(faults, 'inject', lambda lab, h, k, d=None: done.append((h, k, d))
                        or '%s: %s' % (h, k))
    monkeypatch.setattr(faults, 'restart', lambda lab, h: done.append((h, 'restart', None))
                        or '%s: restarted' % h)
    monkeypatch.setattr(faults, 'start_daemon', lambda lab, h, d: done.append((h, 'start', d))
                        or '%s: %s started again' % (h, d))
    seq = iter(counts_seq)
    last = [None]
    sampled = threading.Event()    # every scripted count was taken

    def counts(lab, hosts):
        try:
            last[0] = next(seq)
        except StopIteration:
            sampled.set()
        return dict(last[0])

    def wait_invariants(lab, hosts, limit, progress=None):
        if last[0] is not None:      # in a round: let the sampler see the script first
            sampled.wait(10)
        return 3.0, problems_after.pop(0) if problems_after else []
    monkeypatch.setattr(invariants, 'engine_vm_hosts', counts)
    monkeypatch.setattr(invariants, 'wait_invariants', wait_invariants)
    monkeypatch.setattr(soak.time, 'sleep', lambda s: None)
    FakeLab.host_dir = lambda self, name: '/nonexistent/hosts/' + name
    out = io.StringIO()
    return soak.Soak(FakeLab(), 7, 3, out=out, interval=0.01), out, done


def test_soak_round_lines(monkeypatch):
    one = {'host1': 1, 'host2': 0, 'host3': 0}
    s, out, done = fake_soak(monkeypatch, [one], [[], [], [], []])
    assert s.run() == 0
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith('round')]
    assert len(lines) == 3, out.getvalue()
    for n, ln in enumerate(lines, 1):
        assert re.match(r'round %d/3 seed 7: \S+( \S+)? host\d( hold \d+ s)? -> engine on '
                        r'host1, healthy after 3 s, max engine VMs 1$' % n, ln), ln
    assert done   # the faults were injected (and undone)


def test_soak_two_engine_vms_fail_the_round(monkeypatch):
    one = {'host1': 1, 'host2': 0, 'host3': 0}
    two = {'host1': 1, 'host2': 1, 'host3': 0}
    s, out, _done = fake_soak(monkeypatch, [one, one, two, one], [[], [], []])
    assert s.run() == 1
    text = out.getvalue()
    assert re.search(r'round 1/3 seed 7: .* -> FAILED: 2 engine VMs ran at once '
                     r'\(host1: 1, host2: 1\), max engine VMs 2', text), text
    assert text.strip().splitlines()[-1] == 'replay: hosted-engine-lab soak --seed 7 --rounds 1'


def test_soak_invariant_not_restored_fails_the_round(monkeypatch):
    one = {'host1': 1, 'host2': 0, 'host3': 0}
    s, out, _done = fake_soak(monkeypatch, [one], [[], [], ['no host shows the engine '
                                                            'healthy in --vm-status']])
    assert s.run() == 1
    text = out.getvalue()
    assert re.search(r'round 2/3 seed 7: .* -> FAILED: invariants still broken 3 s after the '
                     r'fault was undone: no host shows the engine healthy', text), text
    assert text.strip().splitlines()[-1] == 'replay: hosted-engine-lab soak --seed 7 --rounds 2'


def test_soak_needs_three_hosted_engine_hosts(monkeypatch):
    class Two(FakeLab):
        def host_names(self):
            return ['host1', 'host2']
    with pytest.raises(LabError, match='at least 3 hosts'):
        soak.Soak(Two(), 1, 1, out=io.StringIO()).run()
    monkeypatch.setattr(faults, 'engine_vm_id', lambda lab, h: None if h == 'host3' else 'v')
    with pytest.raises(LabError, match='host3 not hosted-engine host'):
        soak.Soak(FakeLab(), 1, 1, out=io.StringIO()).run()


def test_vm_status_documents():
    st = {'global_maintenance': False,
          '1': {'hostname': 'host1', 'live-data': True,
                'engine-status': {'vm': 'up', 'health': 'good'}},
          '2': {'hostname': 'host2', 'live-data': True,
                'engine-status': {'vm': 'down', 'health': 'bad'}},
          '3': {'hostname': 'host3', 'live-data': False,
                'engine-status': {'vm': 'up', 'health': 'good'}}}
    assert invariants.engine_up_in(st) == ['host1']
    assert invariants.healthy_in(st) == ['host1']
    st['1']['engine-status']['health'] = 'bad'
    assert invariants.engine_up_in(st) == ['host1'] and invariants.healthy_in(st) == []


def doc(engine_host, health='good'):
    st = {'global_maintenance': False}
    for i, h in enumerate(('host1', 'host2', 'host3'), 1):
        up = h == engine_host
        st[str(i)] = {'hostname': h, 'live-data': True,
                      'engine-status': {'vm': 'up' if up else 'down',
                                        'health': health if up else 'bad'}}
    return st


def test_check_invariants(monkeypatch):
    hosts = ['host1', 'host2', 'host3']
    counts = {'host1': 1, 'host2': 0, 'host3': 0}
    docs = {h: doc('host1') for h in hosts}
    monkeypatch.setattr(invariants, 'engine_vm_hosts', lambda lab, hs: dict(counts))
    monkeypatch.setattr(invariants, 'live_hosts', lambda lab, hs: list(hs))
    monkeypatch.setattr(invariants, '_statuses', lambda lab, hs: {
        h: docs[h] for h in hs if docs.get(h) is not None})
    assert invariants.check(None, hosts) == []
    counts['host2'] = 1
    assert invariants.check(None, hosts) == ['2 engine VMs running (host1: 1, host2: 1)']
    counts.update(host1=0, host2=0)
    assert invariants.check(None, hosts)[0] == '0 engine VMs running (none)'
    counts['host1'] = 1
    docs['host3'] = doc('host2')
    assert invariants.check(None, hosts) == [
        'the hosts disagree on where the engine VM is: host1 sees host1, host2 sees host1, '
        'host3 sees host2']
    docs.update({h: doc(None) for h in hosts})
    assert invariants.check(None, hosts) == [
        'no host shows the engine healthy in --vm-status',
        "no host's --vm-status shows the engine VM up"]
    docs.update({h: doc('host2') for h in hosts})
    assert invariants.check(None, hosts) == [
        '--vm-status shows the engine VM on host2, it runs on host1']
    docs.update({h: doc('host1', health='bad') for h in hosts})
    assert invariants.check(None, hosts) == ['no host shows the engine healthy in --vm-status']
    docs.update({h: doc('host1') for h in hosts})
    docs['host3'] = None
    assert invariants.check(None, hosts) == ['--vm-status fails on host3']


def test_soak_interrupted_while_held_undoes_the_fault(monkeypatch):
    one = {'host1': 1, 'host2': 0, 'host3': 0}
    s, out, done = fake_soak(monkeypatch, [one], [[]])

    def interrupted(seconds):
        raise KeyboardInterrupt
    monkeypatch.setattr(soak.time, 'sleep', interrupted)
    monkeypatch.setattr(soak, 'plan', lambda rng, hosts, engine, holds: ('partition', None, 'host2', 30))
    with pytest.raises(KeyboardInterrupt):
        s.run()
    assert done == [('host2', 'partition', None), ('host2', 'heal', None)]
    assert 'interrupted: undoing the fault' in out.getvalue()


def test_soak_undo_of_a_killed_daemon(monkeypatch):
    """A killed HA unit comes back by Restart= (nothing done); a killed sanlock means a
    watchdog reset (the host restarted); libvirtd and hostd are started again."""
    done = []
    monkeypatch.setattr(faults, 'restart', lambda lab, h: done.append(('restart', h)) or 'r')
    monkeypatch.setattr(faults, 'start_daemon',
                        lambda lab, h, d: done.append(('start', h, d)) or 's')
    assert 'Restart=' in soak.undo(None, 'kill', 'ha-agent', 'host2')
    assert done == []
    soak.undo(None, 'kill', 'sanlock', 'host2')
    soak.undo(None, 'kill', 'hostd', 'host3')
    soak.undo(None, 'kill', 'libvirtd', 'host1')
    assert done == [('restart', 'host2'), ('start', 'host3', 'hostd'),
                    ('start', 'host1', 'libvirtd')]


def test_soak_reads_the_io_timeout_of_hosted_engine_conf(tmp_path):
    class Conf:
        def host_dir(self, name):
            return str(tmp_path / name)
    d = tmp_path / 'host1' / 'etc-ovirt-hosted-engine'
    d.mkdir(parents=True)
    s = soak.Soak(Conf(), 1, 1, out=io.StringIO())
    assert s.io_timeout('host1') == 10          # no hosted-engine.conf: sanlock's default
    (d / 'hosted-engine.conf').write_text('sanlock_io_timeout=2\nhost_id=1\n')
    assert s.io_timeout('host1') == 2
