"""Every simulator scenario under tests/ha/scenarios matches its golden log and keeps the invariants."""
import os

import pytest

from ovirt_hosted_engine_setup.ha.simulator import cli, scenario

BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'scenarios')
NAMES = sorted(n for n in os.listdir(BASE) if os.path.isfile(os.path.join(BASE, n, 'cmdlist')))


def test_there_are_at_least_150_scenarios():
    assert len(NAMES) >= 150


@pytest.mark.parametrize('name', NAMES)
def test_scenario(name):
    ok, msg, _ = cli.check(os.path.join(BASE, name))
    assert ok, msg


def test_cli_summary_and_exit_code(tmp_path, capsys):
    good = tmp_path / 'good'
    good.mkdir()
    (good / 'cmdlist').write_text('hosts 2\nduration 120\nbound 0\n')
    res = scenario.run(scenario.load(str(good)))
    (good / 'log.expect').write_text('\n'.join(res.log) + '\n')
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'cmdlist').write_text('hosts 2\nduration 120\nbound 0\n')
    (bad / 'log.expect').write_text('    0 host1: something else\n')
    assert cli.main(['--dir', str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == '1 passed, 1 failed'
    assert any(line.startswith('bad ') and 'FAIL' in line for line in out)
    assert cli.main(['--dir', str(tmp_path), 'good']) == 0
    assert capsys.readouterr().out.splitlines()[-1] == '1 passed, 0 failed'
    assert cli.main(['--dir', str(tmp_path), '--show', 'good']) == 0
    assert 'host1: StartState -> ReinitializeFSM' in capsys.readouterr().out


def test_bound_violation_fails(tmp_path):
    d = tmp_path / 'tight'
    d.mkdir()
    (d / 'cmdlist').write_text('hosts 2\nduration 400\nbound 30\n100 crash 1\n')
    ok, msg, _ = cli.check(str(d))
    assert not ok and 'bound 30s' in msg


def test_missing_bound_is_an_error(tmp_path):
    d = tmp_path / 'nobound'
    d.mkdir()
    (d / 'cmdlist').write_text('hosts 2\n')
    ok, msg, _ = cli.check(str(d))
    assert not ok and 'bound' in msg


def test_crash_failover_waits_for_sanlock_not_longer():
    """The restart happens right after the crashed host's id expires (8N + W after its last
    renewal), within one agent loop, and never before."""
    sc = scenario.parse_cmdlist('x', 'hosts 4\nduration 500\nbound 240\n100 crash 1\n')
    res = scenario.run(sc)
    started = [line for line in res.log if line.endswith(': VM started')]
    assert len(started) == 1
    t = int(started[0].split()[0])
    # host1 last renewed at 83 (phase 3, every 20 s); dead for others after 83 + 140
    assert 223 < t <= 233
    assert not res.violations


def test_invariant_checks_catch_violations():
    from ovirt_hosted_engine_setup.ha.simulator import world
    c = world.Cluster(2)
    for h in c.hosts:
        h.vm_running = True
        h.vm_started_at = 0
    c.check_invariants()
    assert c.violations and 'two engine VMs running' in c.violations[0]
    # a ping-pong: host1 -> host2, then host2 -> host1 200 s later, both left at 1800
    c = world.Cluster(2)
    c.score_moves = [world.ScoreMove(100, 'host1', 1800, 'host2'),
                     world.ScoreMove(300, 'host2', 1800, 'host1')]
    c.finish()
    assert c.violations == ['VM moved back and forth for score within 600s: host1 -> host2 at '
                            '100 (score 1800), host2 -> host1 at 300 (score 1800)']


@pytest.mark.parametrize('moves,pingpong', [
    # back to the host it left, within the dwell, through a third host too
    ([(100, 'host1', 1800, 'host2'), (300, 'host2', 1800, 'host1')], True),
    ([(100, 'host1', 1800, 'host2'), (300, 'host2', 1800, 'host3'),
      (500, 'host3', 1800, 'host1')], True),
    # the host it left now scores better than the one it leaves does at its worst: a move
    # worth making, not a flap
    ([(100, 'host1', 2400, 'host2'), (300, 'host2', 1800, 'host1')], False),
    # a chain to steadier hosts, a return after the dwell, a restart where it was
    ([(100, 'host1', 1800, 'host2'), (300, 'host2', 1800, 'host3')], False),
    ([(100, 'host1', 1800, 'host2'), (700, 'host2', 1800, 'host1')], False),
    ([(100, 'host1', 1800, 'host1'), (300, 'host1', 1800, 'host1')], False),
    ([(100, 'host1', 1800, 'host2'), (300, 'host2', 1800, None)], False),
])
def test_back_and_forth(moves, pingpong):
    from ovirt_hosted_engine_setup.ha.simulator import world
    found = world.back_and_forth([world.ScoreMove(*m) for m in moves], 600)
    assert bool(found) == pingpong, found


def test_only_one_vm_ever_starts_in_lease_only_races():
    """A cold start of n equal hosts: the lowest host id starts, the others wait for it
    (equal ranks no longer all try at once); any start attempted besides is refused by the
    VM lease."""
    for n in (2, 8, 64):
        res = scenario.run(scenario.parse_cmdlist(
            'race', 'hosts %d\nduration 200\nbound 150\nvm-on none\nlease-read off\n' % n))
        attempts = sum('EngineDown -> EngineStart ' in line for line in res.log)
        started = [line for line in res.log if line.endswith(': VM started')]
        assert len(started) == 1 and 'host1: VM started' in started[0], started
        assert sum('(-243)' in line for line in res.log) == attempts - 1
        assert not res.violations


# -- hand-written expectations ------------------------------------------------------------
# What must happen in the most important scenarios, written from the HA rules (docs/
# ha-services.md) and the timings of the virtual cluster (N = 10 s, W = 60 s, loops every
# 10 s, boot 60 s, guest shutdown 30 s), not read from log.expect: a regenerated golden log
# that changes who runs the engine, lets two VMs run, or misses a milestone fails here.

STOPS = ('VM crashed', 'VM killed', 'VM powered off', 'VM shut down', 'VM gone with the host',
         'VM killed by sanlock', 'VM powered off by the administrator')


class Run:
    def __init__(self, name):
        self.res = scenario.run(scenario.load(os.path.join(BASE, name)))
        self.events = []
        for line in self.res.log:
            t, rest = line.split(None, 1)
            who, msg = rest.split(': ', 1)
            self.events.append((int(t), who, msg))
        # replay the VM events: never two running, and the last one running is the owner
        running = {scenario.parse_cmdlist(name, open(os.path.join(BASE, name, 'cmdlist'))
                                          .read()).vm_on}
        running.discard(None)
        running = {'host%d' % i for i in running}
        for t, who, msg in self.events:
            if msg == 'VM started':
                running.add(who)
            elif msg in STOPS:
                running.discard(who)
            assert len(running) <= 1, '%d: two engine VMs running: %s' % (t, sorted(running))
        self.running = running

    def at(self, who=None, msg=None, prefix=None):
        return [t for t, w, m in self.events if (who is None or w == who)
                and (msg is None or m == msg) and (prefix is None or m.startswith(prefix))]

    def starts(self):
        return [(t, w) for t, w, m in self.events if m == 'VM started']

    def owner(self):
        assert not self.res.violations, self.res.violations
        assert self.running == ({self.res.vm_owner} if self.res.vm_owner else set())
        return self.res.vm_owner


def test_hand_host_crash_active_fails_over_once_after_sanlock():
    r = Run('host-crash-active-4')
    (t, who), = r.starts()
    assert who != 'host1' and 223 < t <= 233      # host1's id dead at 83 + 140
    assert r.owner() == who and r.res.longest_down <= 240


def test_hand_host_crash_standby_touches_nothing():
    r = Run('host-crash-standby-8')
    assert r.starts() == [] and r.owner() == 'host1' and r.res.longest_down == 0


def test_hand_vm_crash_restarts_on_another_host():
    for name in ('vm-crash-4', 'vm-kill-2'):
        r = Run(name)
        assert r.at('host1', prefix='EngineUp -> EngineUnexpectedlyDown')[0] <= 110
        (t, who), = r.starts()
        assert who != 'host1' and 100 < t <= 170      # 60 s of score, a loop to act
        assert r.owner() == who


def test_hand_agent_kill_leaves_the_vm_alone():
    r = Run('agent-kill-active-4')
    assert r.starts() == [] and r.at(msg='VM shutdown requested') == []
    assert r.owner() == 'host1' and r.res.longest_down == 0


def test_hand_agent_kill_then_vm_crash_waits_for_the_stale_claim():
    r = Run('agent-kill-active-vm-crash-4')
    (t, who), = r.starts()
    assert who != 'host1' and 200 + 60 <= t <= 200 + 300
    assert r.owner() == who


def test_hand_agent_stop_standby_then_crash_of_the_only_other_host():
    r = Run('agent-stop-standby-2')
    assert r.starts() == [] and r.owner() is None


def test_hand_global_maintenance_blocks_restart_until_cleared():
    for name in ('global-maint-vm-crash-4', 'global-maint-host-crash-4'):
        r = Run(name)
        for h in ('host1', 'host2', 'host3', 'host4'):
            entered = [t for t, w, m in r.events
                       if w == h and m.endswith('-> GlobalMaintenance (global maintenance)')]
            assert entered and 50 <= entered[0] <= 60, (h, entered)
        (t, who), = r.starts()
        assert 400 < t <= 400 + 130      # cleared at 400: ReinitializeFSM, EngineDown, start
        assert r.owner() == who


def test_hand_local_maintenance_moves_the_vm_away_and_not_back():
    r = Run('local-maint-in-EngineUp-4')
    assert 100 <= r.at('host1', 'EngineUp -> LocalMaintenance (local maintenance)')[0] <= 110
    assert r.at('host1', 'VM shutdown requested (guest notice 120 s)')
    (t, who), = r.starts()
    assert who != 'host1' and t > r.at('host1', 'VM shut down')[0]
    assert r.owner() == who


def test_hand_local_maintenance_of_all_standbys_restarts_where_it_was():
    r = Run('local-maint-all-standbys-4')
    (t, who), = r.starts()
    assert who == 'host1' and t >= 100 + 560      # after the unexpectedly-down back-off
    assert r.owner() == 'host1'


def test_hand_storage_loss_on_the_active_host():
    r = Run('storage-loss-active-4')
    killed = r.at('host1', 'VM killed by sanlock')
    assert len(killed) == 1 and 100 < killed[0] <= 100 + 80     # 8N after the last renewal
    (t, who), = r.starts()
    assert who != 'host1' and killed[0] < t <= 100 + 300
    assert r.owner() == who


def test_hand_storage_loss_on_a_standby():
    r = Run('storage-loss-standby-4')
    assert r.starts() == [] and r.owner() == 'host1' and r.res.longest_down == 0


def test_hand_network_loss_moves_the_engine_once():
    r = Run('net-total-4')
    shutdowns = r.at('host1', 'VM shutdown requested')
    assert len(shutdowns) == 1 and shutdowns[0] >= 100 + 60     # held 60 s before moving
    (t, who), = r.starts()
    assert who != 'host1' and t > shutdowns[0]
    assert r.owner() == who


def moves_of(r):
    """(time, source, destination) of every VM shutdown and the start that followed it."""
    out = []
    for t, who, msg in r.events:
        if msg.startswith('VM shutdown requested'):
            out.append([t, who, None])
        elif msg == 'VM started' and out and out[-1][2] is None:
            out[-1][2] = who
    return [tuple(m) for m in out]


def test_hand_score_flapping_never_moves_back_within_the_dwell():
    for name in ('flapping-net-2', 'flapping-net-4', 'flapping-net-both-2',
                 'flapping-net-both-4', 'flapping-slow-net-2', 'flapping-slow-net-4',
                 'flapping-back-steady-lower-3'):
        r = Run(name)
        moves = moves_of(r)
        for i, (t2, _, dest) in enumerate(moves):
            assert not [t1 for t1, src, _ in moves[:i] if src == dest and t2 - t1 < 600], \
                (name, moves)
        assert len(r.starts()) == len(moves)
        r.owner()
    # slow flaps: the engine leaves host1 once; with two hosts it stays on host2 (host1's
    # score keeps falling), with four it goes on to a host that never flapped
    assert [(s, d) for _, s, d in moves_of(Run('flapping-slow-net-2'))] == [('host1', 'host2')]
    assert [(s, d) for _, s, d in moves_of(Run('flapping-slow-net-4'))] == [
        ('host1', 'host2'), ('host2', 'host3')]
    # host1 (3400 again, its gateway flapping) waits; host3 (steady, 2700) starts the engine
    assert [(s, d) for _, s, d in moves_of(Run('flapping-back-steady-lower-3'))] == [
        ('host1', 'host2'), ('host2', 'host3')]


def test_hand_the_wait_for_a_host_ranked_first_is_bounded():
    """Agents that disagree on a host's history (host3's restarted agent did not see host2's
    score fall) do not keep the engine down: host2 waits 60 s for host3, then starts it."""
    r = Run('start-defer-agent-restart-3')
    (t, who), = r.starts()
    assert who == 'host2' and 400 + 60 <= t <= 400 + 60 + 10
    assert r.at('host2', 'EngineDown -> EngineStart (no better host; host id 3, which ranks '
                'first, did not start the VM within 60 s)') == [t]
    assert r.owner() == 'host2'


@pytest.mark.parametrize('n,new_host', [(3, 'host2'), (4, 'host2'), (8, 'host2')])
def test_hand_partition_right_after_a_restart_moves_within_3_minutes(n, new_host):
    """The engine VM killed at 100 and restarted on new_host; new_host loses its gateway at
    200 (92 s after that start): the engine is healthy on another host by 200 + 180, and
    does not move back when the gateway returns at 600."""
    r = Run('partition-after-restart-%d' % n)
    starts = r.starts()
    assert starts[0][1] == new_host and starts[0][0] < 200
    (t, who), = [s for s in starts if s[0] > 200]
    assert who not in (new_host, 'host1')         # host1 is in its crash back-off
    healthy = [t for t, w, m in r.events if w == 'cluster' and m.startswith('engine healthy again')
               and t > 200]
    assert healthy and healthy[0] <= 200 + 180, healthy
    assert r.at(new_host, 'EngineUp -> EngineStop (a host scores 800 more)')[0] <= 200 + 70
    assert [m for t, w, m in r.events if t > 600 and m.startswith('VM ')] == []
    assert r.owner() == who


def test_hand_cold_start_races_start_exactly_one_vm():
    r = Run('cold-start-race-8')
    assert len(r.starts()) == 1 and r.at(prefix='VM start failed') == []
    assert r.owner() == r.starts()[0][1]
    r = Run('cold-start-race-lease-only-8')
    attempts = r.at(prefix='EngineDown -> EngineStart ')
    refused = r.at(prefix='VM start failed: lease held')
    assert len(r.starts()) == 1 and len(refused) == len(attempts) - 1
    assert r.owner() == r.starts()[0][1]


def test_hand_host_id_collision_never_starts_the_vm():
    r = Run('hostid-collision-4')
    assert r.at('host4', 'host id 2 is live for host2: not acquired')
    (t, who), = r.starts()
    assert who in ('host2', 'host3')
    assert not [m for t, w, m in r.events if w == 'host4' and 'EngineStart' in m]
    assert r.owner() == who


def test_hand_unhealthy_engine_is_stopped_and_started_elsewhere():
    r = Run('engine-unhealthy-4')
    bad = r.at('host1', 'EngineUp -> EngineUpBadHealth (engine health bad)')[0]
    assert 100 <= bad <= 110
    stop = r.at('host1', prefix='EngineUpBadHealth -> EngineStop')[0]
    assert 300 <= stop - bad <= 310
    (t, who), = r.starts()
    assert who != 'host1' and t > stop
    assert r.owner() == who


def test_hand_paused_vm_is_powered_off_and_restarted():
    r = Run('vm-pause-2')
    off = r.at('host1', 'VM powered off')
    assert len(off) == 1
    (t, who), = r.starts()
    assert t > off[0] and r.owner() == who


def test_hand_low_memory_host_is_not_chosen():
    r = Run('mem-low-standby-4')
    (t, who), = r.starts()
    assert who in ('host3', 'host4') and r.owner() == who


def test_hand_single_host_restarts_after_the_back_off():
    r = Run('single-host-vm-crash-1')
    (t, who), = r.starts()
    assert who == 'host1' and 100 + 560 <= t <= 100 + 560 + 30
    assert r.owner() == 'host1'


def test_hand_single_host_cold_start_does_not_wait_for_history():
    # the end of a deploy: one host, alone in the lockspace, no VM anywhere; the start-up
    # transitions (StartState, ReinitializeFSM) are followed at once, not a loop later
    r = Run('single-host-cold-start-1')
    (t, who), = r.starts()
    assert who == 'host1' and t <= 3 + 2 * 1
    assert r.owner() == 'host1'


def test_hand_slow_broker_holds_the_score():
    r = Run('broker-slow-active-4')
    assert [m for t, w, m in r.events if w == 'host1' and 100 <= t <= 200] == []
    assert r.starts() == [] and r.owner() == 'host1'


def test_hand_restarting_broker_leaves_the_vm_running():
    r = Run('broker-restart-2')
    assert r.at('host1', 'EngineUp -> UnknownLocalVmState (local VM state unknown)')
    assert r.starts() == [] and r.at(msg='VM shutdown requested') == []
    assert r.owner() == 'host1' and r.res.longest_down == 0


def test_hand_corrupted_slot_does_not_stop_failover():
    r = Run('corrupt-garbage-then-crash-4')
    assert r.at('storage', 'slot 4 skipped by readers (garbage)')
    (t, who), = r.starts()
    assert who != 'host1' and t <= 100 + 240
    assert r.owner() == who


def test_hand_the_new_active_host_crashes_too():
    r = Run('crash-new-active-8')
    starts = r.starts()
    assert len(starts) == 2 and starts[0][1] != 'host1' and starts[1][1] not in ('host1', 'host2')
    assert r.owner() == starts[1][1]


def test_hand_checks_catch_a_wrong_outcome(monkeypatch):
    """The replay above fails a log where two VMs run at once."""
    real = scenario.run

    def two_vms(sc, cfg=None):
        res = real(sc, cfg)
        res.log.append('%5d host2: VM started' % sc.duration)
        return res
    monkeypatch.setattr(scenario, 'run', two_vms)
    with pytest.raises(AssertionError, match='two engine VMs running'):
        Run('host-crash-standby-8')


def test_the_simulator_runs_the_daemons_agent_loop(tmp_path):
    """Every virtual host runs ha/agent_loop.py's Agent, the class ovirt-ha-agent builds,
    in a SimulatedHost world; the daemon's agent gets the real HostWorld."""
    from ovirt_hosted_engine_setup.ha import agent as daemon
    from ovirt_hosted_engine_setup.ha.agent_loop import Agent
    from ovirt_hosted_engine_setup.ha.agent_world import HostWorld
    from ovirt_hosted_engine_setup.ha.simulator import world
    c = world.Cluster(3)
    for _ in range(30):
        c.tick()
        c.t += 1
    assert all(type(h.agent) is Agent and isinstance(h.agent.world, world.SimulatedHost)
               for h in c.hosts)
    assert [h.agent.state.name for h in c.hosts] == ['EngineDown'] * 3     # no VM yet
    conf = tmp_path / 'hosted-engine.conf'
    conf.write_text('vmid=6a7e5c1e-2f3b-4c5d-8e9f-0a1b2c3d4e5f\nhost_id=1\n')
    a = daemon.parse_args(['--conf', str(conf), '--agent-conf', str(tmp_path / 'agent.conf')])
    real, _ = daemon.build_agent(a, None)
    assert type(real) is Agent and isinstance(real.world, HostWorld)
    with pytest.raises(TypeError, match='not both'):
        Agent(conf={'vmid': 'x', 'host_id': '1'}, core_config=None,
              world=real.world, vm_conf_path='/x')
