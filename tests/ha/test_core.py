"""Every state and transition of the decision core, driven by hand-made observations."""
from dataclasses import replace

import pytest

from ovirt_hosted_engine_setup.ha import core as c
from ovirt_hosted_engine_setup.ha import liveness as lv
from ovirt_hosted_engine_setup.ha.score import Monitors

CFG = c.CoreConfig()
UP_GOOD = c.vm_status('up', 'good', 'Up')
UP_BAD = c.vm_status('up', 'bad', 'Up')
PAUSED = c.vm_status('up', 'bad', 'Paused')
DOWN = c.vm_status('down')
DOWN_UNEXP = c.vm_status('down_unexpected')
DOWN_LEASE = c.vm_status('down', reason=c.REASON_LEASE)
UNKNOWN = c.vm_status('unknown')
MON = Monitors()


def peer(hid=2, score=3400, status=DOWN, live=lv.LIVE, **kw):
    return c.Peer(hid, score, status, 'host%d' % hid, liveness=live, **kw)


def obs(now=1000, vm=DOWN, peers=None, **kw):
    kw.setdefault('monitors', MON)
    return c.Observations(now=now, local_vm=vm, peers={} if peers is None else peers, **kw)


def st(name, entered=900, started=0, **kw):
    return c.AgentState(name=name, entered=entered, started=started, **kw)


def step(state, o):
    d = c.decide(state, o, CFG)
    return d.next_state.name, d


def kinds(d):
    return [type(a).__name__ for a in d.actions]


def test_start_state_then_reinitialize():
    name, d = step(c.AgentState(), obs(now=5))
    assert name == c.REINIT and d.next_state.started == 5
    assert d.actions[0] == c.Notify(c.START, c.REINIT)
    assert d.published.score == 0


@pytest.mark.parametrize('vm,expected', [(UP_GOOD, c.STARTING), (DOWN, c.DOWN)])
def test_reinitialize(vm, expected):
    assert step(st(c.REINIT), obs(vm=vm))[0] == expected


def test_guards_in_order_from_every_state():
    for name in c.STATES:
        if name in (c.AGENT_STOPPED,):
            continue
        s = st(name)
        assert step(s, obs(vm=UNKNOWN, global_maintenance=True, local_maintenance=True))[0] \
            == c.GLOBAL_MAINT
        if name != c.GLOBAL_MAINT:
            assert step(s, obs(vm=UNKNOWN, local_maintenance=True))[0] == c.UNKNOWN_VM
            assert step(s, obs(vm=DOWN, local_maintenance=True))[0] == c.LOCAL_MAINT


def test_global_maintenance_no_actions_and_clear():
    name, d = step(st(c.GLOBAL_MAINT), obs(vm=DOWN_UNEXP, global_maintenance=True))
    assert name == c.GLOBAL_MAINT
    assert kinds(d) == ['PublishMetadata'] and d.published.score == 3400
    assert step(st(c.GLOBAL_MAINT), obs())[0] == c.REINIT


def test_global_maintenance_entered_from_up_keeps_vm():
    name, d = step(st(c.UP), obs(vm=UP_GOOD, global_maintenance=True))
    assert name == c.GLOBAL_MAINT and kinds(d) == ['Notify', 'PublishMetadata']


def test_local_maintenance():
    name, d = step(st(c.DOWN), obs(local_maintenance=True))
    assert name == c.LOCAL_MAINT and d.published.score == 0 and d.published.local_maintenance
    name, d = step(st(c.UP), obs(vm=UP_GOOD, local_maintenance=True))
    assert name == c.LOCAL_MAINT and 'ShutdownVM' in kinds(d)
    assert step(st(c.LOCAL_MAINT), obs())[0] == c.REINIT


def test_unknown_local_vm_state():
    assert step(st(c.UP), obs(vm=UNKNOWN))[0] == c.UNKNOWN_VM
    assert step(st(c.UNKNOWN_VM), obs(vm=UNKNOWN))[0] == c.UNKNOWN_VM
    assert step(st(c.UNKNOWN_VM), obs(vm=UP_GOOD))[0] == c.REINIT


class TestEngineDown:
    def test_up_here(self):
        assert step(st(c.DOWN), obs(vm=UP_BAD))[0] == c.STARTING

    def test_up_elsewhere_live_or_stale_stays(self):
        for live in (lv.LIVE, lv.STALE):
            assert step(st(c.DOWN), obs(peers={2: peer(status=UP_GOOD, live=live)}))[0] == c.DOWN

    def test_dead_host_claim_ignored(self):
        name, d = step(st(c.DOWN), obs(peers={2: peer(status=UP_GOOD, live=lv.DEAD,
                                                      score=3400)}))
        assert name == c.START_VM and kinds(d)[:2] == ['Notify', 'StartVM']

    def test_history(self):
        assert step(st(c.DOWN, started=950), obs())[0] == c.DOWN
        assert step(st(c.DOWN, started=940), obs())[0] == c.START_VM

    def test_alone_in_the_lockspace_starts_without_waiting_for_history(self):
        name, d = step(st(c.DOWN, started=990), obs(host_id=1, sanlock_live=frozenset({1})))
        assert name == c.START_VM and 'StartVM' in kinds(d)
        assert 'sanlock shows no other live host' in d.reason

    def test_history_wait_says_why(self):
        name, d = step(st(c.DOWN, started=990), obs(host_id=1, sanlock_live=frozenset({1, 3})))
        assert name == c.DOWN and 'StartVM' not in kinds(d)
        assert d.reason == ('waiting for 60 s of metadata history before starting the VM: '
                            'sanlock shows host id 3 live')
        name, d = step(st(c.DOWN, started=990), obs(host_id=1))
        assert name == c.DOWN
        assert d.reason.endswith('sanlock cannot tell yet which hosts are live')
        # alone, but this host does not hold its id in the lockspace: no start
        assert step(st(c.DOWN, started=990), obs(host_id=1, sanlock_live=frozenset({1}),
                                                 lockspace_held=False))[0] == c.DOWN

    def test_better_live_host_waits_equal_tries(self):
        assert step(st(c.DOWN), obs(peers={2: peer(score=3401)}))[0] == c.DOWN
        assert step(st(c.DOWN), obs(peers={2: peer(score=3400)}))[0] == c.START_VM
        # a better host that is stale, stopped or in local maintenance is not waited for
        for p in (peer(score=3401, live=lv.STALE), peer(score=3401, stopped=True),
                  peer(score=3401, local_maintenance=True)):
            assert step(st(c.DOWN), obs(peers={2: p}))[0] == c.START_VM

    def test_no_storage_no_lockspace_too_many_retries(self):
        assert step(st(c.DOWN), c.Observations(now=1000, local_vm=DOWN, monitors=MON))[0] == c.DOWN
        assert step(st(c.DOWN), obs(monitors=Monitors(storage_delay=30)))[0] == c.DOWN
        assert step(st(c.DOWN), obs(lockspace_held=False))[0] == c.DOWN
        assert step(st(c.DOWN, retries=4, last_failure=900), obs())[0] == c.DOWN
        # retries expire after 600 s
        name, d = step(st(c.DOWN, retries=4, last_failure=300), obs())
        assert name == c.START_VM and d.next_state.retries == 0


class TestEngineStart:
    def test_success(self):
        name, d = step(st(c.START_VM, retries=2, last_failure=990),
                       obs(vm=UP_BAD, result=c.ActionResult('start', True)))
        assert name == c.STARTING and d.next_state.retries == 0

    def test_failure_counts(self):
        name, d = step(st(c.START_VM, retries=1),
                       obs(result=c.ActionResult('start', False, -243, c.REASON_LEASE)))
        assert name == c.DOWN and d.next_state.retries == 2 and d.published.score == 3300

    def test_missing_result(self):
        assert step(st(c.START_VM), obs(vm=UP_BAD))[0] == c.STARTING
        assert step(st(c.START_VM), obs())[0] == c.DOWN


class TestEngineStarting:
    def test_healthy(self):
        assert step(st(c.STARTING), obs(vm=UP_GOOD))[0] == c.UP

    def test_booting_stays_then_times_out(self):
        assert step(st(c.STARTING), obs(vm=UP_BAD))[0] == c.STARTING
        name, d = step(st(c.STARTING, entered=400), obs(vm=UP_BAD))
        assert name == c.STOP and 'ShutdownVM' in kinds(d)

    def test_lease_elsewhere_force_stop(self):
        name, d = step(st(c.STARTING), obs(vm=DOWN_LEASE))
        assert name == c.FORCE_STOP and 'PowerOffVM' in kinds(d)

    def test_other_down(self):
        assert step(st(c.STARTING), obs(vm=DOWN))[0] == c.MAYBE_AWAY
        assert step(st(c.STARTING), obs(vm=DOWN_UNEXP))[0] == c.MAYBE_AWAY


class TestEngineUp:
    def test_stays(self):
        name, d = step(st(c.UP), obs(vm=UP_GOOD, peers={2: peer()}))
        assert name == c.UP and d.published.score == 3400
        assert d.published.engine_status == UP_GOOD

    def test_down(self):
        assert step(st(c.UP), obs(vm=DOWN))[0] == c.MAYBE_AWAY
        assert step(st(c.UP), obs(vm=DOWN_UNEXP))[0] == c.UNEXPECTEDLY_DOWN

    def test_better_engine_elsewhere(self):
        name, d = step(st(c.UP), obs(vm=UP_BAD, peers={2: peer(status=UP_GOOD)}))
        assert name == c.STOP

    def test_bad_health(self):
        name, d = step(st(c.UP), obs(vm=UP_BAD))
        assert name == c.UP_BAD and d.next_state.bad_since == 1000

    def test_move_needs_margin_hold_and_dwell(self):
        mon = Monitors(network=0.4)          # 3400 - 960 = 2440
        better = {2: peer(score=3400)}
        name, d = step(st(c.UP), obs(vm=UP_GOOD, monitors=mon, peers=better))
        assert name == c.UP and d.next_state.better_since == 1000
        s = d.next_state
        name, d = step(s, obs(now=1059, vm=UP_GOOD, monitors=mon, peers=better))
        assert name == c.UP
        name, d = step(s, obs(now=1060, vm=UP_GOOD, monitors=mon, peers=better))
        assert name == c.STOP and d.reason.startswith('a host scores')
        # margin not reached: 3400 vs 2600 + 1
        assert step(st(c.UP, better_since=0), obs(vm=UP_GOOD, monitors=Monitors(network=0.5),
                                                  peers={2: peer(score=3399)}))[0] == c.UP
        # a break in the condition restarts the hold
        name, d = step(s, obs(now=1030, vm=UP_GOOD, monitors=MON, peers=better))
        assert d.next_state.better_since is None

    def test_storage_unreadable_no_peer_decisions(self):
        o = c.Observations(now=1000, local_vm=UP_GOOD, monitors=MON, peers=None)
        name, d = step(st(c.UP), o)
        assert name == c.UP and 'PublishMetadata' not in kinds(d)

    def test_slow_broker_keeps_score(self):
        s = st(c.UP, score=2440)
        name, d = step(s, obs(vm=UP_GOOD, monitors=None))
        assert name == c.UP and d.published.score == 2440


class TestEngineUpBadHealth:
    def test_recovers(self):
        assert step(st(c.UP_BAD), obs(vm=UP_GOOD))[0] == c.UP

    def test_times_out(self):
        assert step(st(c.UP_BAD, entered=701), obs(vm=UP_BAD))[0] == c.UP_BAD
        assert step(st(c.UP_BAD, entered=700), obs(vm=UP_BAD))[0] == c.STOP

    def test_down(self):
        assert step(st(c.UP_BAD), obs(vm=DOWN_UNEXP))[0] == c.UNEXPECTEDLY_DOWN
        assert step(st(c.UP_BAD), obs(vm=DOWN))[0] == c.MAYBE_AWAY


class TestEngineStop:
    def test_down(self):
        assert step(st(c.STOP), obs(vm=DOWN))[0] == c.DOWN

    def test_paused_or_failed_or_timeout(self):
        assert step(st(c.STOP), obs(vm=PAUSED))[0] == c.FORCE_STOP
        assert step(st(c.STOP), obs(vm=UP_GOOD, result=c.ActionResult('shutdown', False)))[0] \
            == c.FORCE_STOP
        assert step(st(c.STOP, entered=701), obs(vm=UP_GOOD))[0] == c.STOP
        name, d = step(st(c.STOP, entered=700), obs(vm=UP_GOOD))
        assert name == c.FORCE_STOP and 'PowerOffVM' in kinds(d)


class TestEngineForceStop:
    def test_down(self):
        assert step(st(c.FORCE_STOP), obs(result=c.ActionResult('poweroff', True)))[0] == c.DOWN

    def test_failure(self):
        assert step(st(c.FORCE_STOP), obs(vm=UP_GOOD,
                                           result=c.ActionResult('poweroff', False)))[0] == c.REINIT
        assert step(st(c.FORCE_STOP), obs(vm=UP_GOOD))[0] == c.REINIT


class TestEngineMaybeAway:
    def test_up_here(self):
        assert step(st(c.MAYBE_AWAY), obs(vm=UP_GOOD))[0] == c.UP

    def test_up_elsewhere(self):
        assert step(st(c.MAYBE_AWAY), obs(peers={2: peer(status=UP_BAD)}))[0] == c.DOWN

    def test_timeout(self):
        assert step(st(c.MAYBE_AWAY, entered=961), obs())[0] == c.MAYBE_AWAY
        assert step(st(c.MAYBE_AWAY, entered=960), obs())[0] == c.UNEXPECTEDLY_DOWN


class TestEngineUnexpectedlyDown:
    def test_score_zero_then_down(self):
        name, d = step(st(c.UNEXPECTEDLY_DOWN, entered=441), obs())
        assert name == c.UNEXPECTEDLY_DOWN and d.published.score == 0
        assert step(st(c.UNEXPECTEDLY_DOWN, entered=440), obs())[0] == c.DOWN

    def test_up_here(self):
        assert step(st(c.UNEXPECTEDLY_DOWN), obs(vm=UP_BAD))[0] == c.STARTING


def test_agent_stopped_block():
    p = c.agent_stopped(st(c.UP), UP_GOOD)
    assert (p.score, p.state, p.stopped) == (0, c.AGENT_STOPPED, True)


def test_no_publish_without_host_id():
    d = c.decide(st(c.DOWN), obs(lockspace_held=False), CFG)
    assert 'PublishMetadata' not in kinds(d)


def test_engine_rank():
    assert [c.engine_rank(s) for s in (UNKNOWN, DOWN, PAUSED, UP_BAD, UP_GOOD)] == [0, 1, 2, 3, 4]
    assert c.engine_rank({}) == 0


def test_decide_is_pure():
    s, o = st(c.UP), obs(vm=UP_GOOD, peers={2: peer(score=1000)})
    assert c.decide(s, o, CFG) == c.decide(s, o, CFG)


def test_lease_owned_by_a_live_host_blocks_start():
    assert step(st(c.DOWN), obs(host_id=1, vm_lease_owner=2, sanlock_live=frozenset({1, 2})))[0] \
        == c.DOWN
    # owner's host id dead in sanlock: its lease can be taken
    assert step(st(c.DOWN), obs(host_id=1, vm_lease_owner=2, sanlock_live=frozenset({1})))[0] \
        == c.START_VM
    # our own stale ownership does not block us
    assert step(st(c.DOWN), obs(host_id=1, vm_lease_owner=1, sanlock_live=frozenset({1})))[0] \
        == c.START_VM
    # sanlock's view unknown: the owner is believed
    assert step(st(c.DOWN), obs(host_id=1, vm_lease_owner=2))[0] == c.DOWN


def test_local_maintenance_powers_off_a_guest_that_ignores_shutdown():
    name, d = step(st(c.LOCAL_MAINT, entered=750), obs(vm=UP_GOOD, local_maintenance=True))
    assert name == c.LOCAL_MAINT and 'PowerOffVM' not in kinds(d)
    name, d = step(st(c.LOCAL_MAINT, entered=700), obs(vm=UP_GOOD, local_maintenance=True))
    assert name == c.LOCAL_MAINT and 'PowerOffVM' in kinds(d)


def test_observe_area_judges_and_remembers():
    from ovirt_hosted_engine_setup.ha import metadata as md
    status = c.vm_status('up', 'good', 'Up')

    def area(ts2, corrupt=False, maint=False):
        slots = [md.serialize_global(maint), md.serialize_host(1, 5, 3400, status, 'h1'),
                 md.serialize_host(2, ts2, 3000, status, 'h2')]
        if corrupt:
            slots[2] = b'x' * 4096
        return md.parse_slots(slots, 2)

    mem = c.AgentMemory()
    peers, gm, mem = c.observe_area(mem, area(10), 1, 100, frozenset({1, 2}))
    assert list(peers) == [2] and peers[2].liveness == lv.STALE and peers[2].score == 3000
    peers, gm, mem = c.observe_area(mem, area(20, maint=True), 1, 110, frozenset({1, 2}))
    assert peers[2].liveness == lv.LIVE and gm is True
    # a corrupted slot keeps its last good copy, which stops changing
    peers, gm, mem = c.observe_area(mem, area(30, corrupt=True, maint=True), 1, 120, frozenset({1, 2}))
    assert peers[2].score == 3000 and peers[2].liveness == lv.LIVE
    peers, gm, mem = c.observe_area(mem, area(30, corrupt=True, maint=True), 1, 200, frozenset({1, 2}))
    assert peers[2].liveness == lv.STALE
    # unreadable area: no peers, last global flag kept
    peers, gm, mem2 = c.observe_area(mem, None, 1, 210)
    assert peers is None and gm is True and mem2 is mem


# -- moves for score go to steady hosts only; steady hosts start the engine first ----------
NET_DOWN = Monitors(network=0.0)             # 3400 - 1600 = 1800: the gateway is lost


def hist(**by_host):
    """peer_scores for AgentState: host id -> ((time, score), ...)."""
    return tuple(sorted((int(k[1:]), v) for k, v in by_host.items()))


class TestSteadyMoves:
    def test_a_vm_started_a_minute_ago_leaves_a_host_that_loses_its_gateway(self):
        """No dwell on the agent's own start: start, healthy, gateway lost, 60 s of hold, stop."""
        steady = {2: peer(score=3400), 3: peer(hid=3, score=3400)}
        s = st(c.START_VM, entered=995)
        name, d = step(s, obs(now=1000, vm=UP_BAD, peers=steady,
                              result=c.ActionResult('start', True)))
        assert name == c.STARTING
        name, d = step(d.next_state, obs(now=1060, vm=UP_GOOD, peers=steady))
        assert name == c.UP
        name, d = step(d.next_state, obs(now=1070, vm=UP_GOOD, monitors=NET_DOWN, peers=steady))
        assert name == c.UP and d.next_state.better_since == 1070
        s = d.next_state
        assert step(s, obs(now=1129, vm=UP_GOOD, monitors=NET_DOWN, peers=steady))[0] == c.UP
        name, d = step(s, obs(now=1130, vm=UP_GOOD, monitors=NET_DOWN, peers=steady))
        assert name == c.STOP and d.reason == 'a host scores 800 more'
        shutdown, = [a for a in d.actions if isinstance(a, c.ShutdownVM)]
        assert shutdown.delay == 0        # no guest notice: the engine runs elsewhere sooner

    def test_not_to_a_host_that_scored_as_low_within_the_dwell(self):
        better = {2: peer(score=3400)}
        # host 2 published 1800 at 400, as low as this host's 1800 now, within the last 600 s
        s = st(c.UP, peer_scores=hist(h2=((400, 1800),)))
        name, d = step(s, obs(now=1000, vm=UP_GOOD, monitors=NET_DOWN, peers=better))
        assert name == c.UP and d.next_state.better_since is None
        name, d = step(replace(s, better_since=900),
                       obs(now=1000, vm=UP_GOOD, monitors=NET_DOWN, peers=better))
        assert name == c.UP and d.next_state.better_since is None
        # one second later that sample left the window: host 2 is a target, the hold starts
        name, d = step(s, obs(now=1001, vm=UP_GOOD, monitors=NET_DOWN, peers=better))
        assert name == c.UP and d.next_state.better_since == 1001
        assert step(d.next_state, obs(now=1061, vm=UP_GOOD, monitors=NET_DOWN,
                                      peers=better))[0] == c.STOP
        # 1801 at its worst: never as low as this host now
        s = st(c.UP, better_since=900, peer_scores=hist(h2=((400, 1801),)))
        assert step(s, obs(now=1000, vm=UP_GOOD, monitors=NET_DOWN, peers=better))[0] == c.STOP

    def test_the_target_must_score_the_margin_more_now(self):
        s = st(c.UP, better_since=900)
        assert step(s, obs(now=1000, vm=UP_GOOD, monitors=NET_DOWN,
                           peers={2: peer(score=2599)}))[0] == c.UP
        assert step(s, obs(now=1000, vm=UP_GOOD, monitors=NET_DOWN,
                           peers={2: peer(score=2600)}))[0] == c.STOP

    def test_one_target_among_hosts_that_fell_is_enough(self):
        s = st(c.UP, better_since=900, peer_scores=hist(h2=((500, 1800),)))
        peers = {2: peer(score=3400), 3: peer(hid=3, score=2700)}
        assert step(s, obs(now=1000, vm=UP_GOOD, monitors=NET_DOWN, peers=peers))[0] == c.STOP

    def test_history_is_kept_by_decide_and_forgets_the_window(self):
        s = st(c.UP)
        for now, score in ((100, 3400), (110, 1800), (120, 3400), (130, 3400)):
            s = c.decide(s, obs(now=now, vm=UP_GOOD, peers={2: peer(score=score)}), CFG).next_state
        assert dict(s.peer_scores)[2] == ((110, 1800), (130, 3400))
        assert s.own_scores == ((130, 3400),)
        s = c.decide(s, obs(now=711, vm=UP_GOOD, peers={2: peer(score=3400)}), CFG).next_state
        assert dict(s.peer_scores)[2] == ((711, 3400),)
        # a host that left the area is forgotten
        s = c.decide(s, obs(now=720, vm=UP_GOOD, peers={}), CFG).next_state
        assert s.peer_scores == ()

    def test_the_window_minimum_matches_a_brute_force_one(self):
        import random
        rnd = random.Random(3)
        samples, seen = (), []
        for i in range(2000):
            t, score = i * 10, rnd.choice((0, 1800, 2400, 2600, 3000, 3350, 3400))
            seen.append((t, score))
            samples = c._push(samples, t, score, t - 600)
            assert c._low(samples, t - 600) == min(x for u, x in seen if u >= t - 600)
            assert len(samples) <= 61
            assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(samples, samples[1:]))

    def test_scores_forced_to_zero_are_not_a_fall(self):
        """A peer in the crash back-off, starting its agent or in maintenance publishes 0: not a
        measure of its host, so it does not count; neither do stale hosts."""
        s = st(c.UP)
        for state in (c.UNEXPECTEDLY_DOWN, c.REINIT, c.START, c.LOCAL_MAINT):
            p = peer(score=0, state=state)
            assert c.decide(s, obs(vm=UP_GOOD, peers={2: p}), CFG).next_state.peer_scores == ()
        for p in (peer(score=0, stopped=True), peer(score=0, local_maintenance=True),
                  peer(score=1000, live=lv.STALE)):
            assert c.decide(s, obs(vm=UP_GOOD, peers={2: p}), CFG).next_state.peer_scores == ()
        # nor this host's own 0 in EngineUnexpectedlyDown, nor a loop without monitor values
        d = c.decide(st(c.UP), obs(vm=DOWN_UNEXP), CFG)
        assert d.next_state.name == c.UNEXPECTEDLY_DOWN and d.next_state.own_scores == ()
        d = c.decide(st(c.DOWN, score=0), obs(monitors=None, peers={2: peer(score=3401)}), CFG)
        assert d.next_state.own_scores == ()
        d = c.decide(st(c.DOWN), obs(peers={2: peer(score=3401)}), CFG)
        assert d.next_state.own_scores == ((1000, 3400),)
        # nor a score the others never saw (not published)
        for o in (obs(peers={2: peer(score=3401)}, lockspace_held=False),
                  c.Observations(now=1000, local_vm=DOWN, monitors=MON, peers=None)):
            assert c.decide(st(c.DOWN), o, CFG).next_state.own_scores == ()


class TestStartRanking:
    """EngineDown: hosts rank by (lowest score within move_dwell, score)."""

    def test_a_host_whose_score_fell_waits_for_one_that_stayed_higher(self):
        s = st(c.DOWN, own_scores=((500, 1800),))
        name, d = step(s, obs(peers={2: peer(score=2700)}))
        assert name == c.DOWN and 'StartVM' not in kinds(d)
        assert d.reason == ('host id 2 starts the VM first: its score stayed higher within the '
                            'last 600 s')
        assert d.next_state.deferred_since == 1000
        # the fall left the window: the best score starts again
        assert step(replace(s, own_scores=((399, 1800),)),
                    obs(peers={2: peer(score=2700)}))[0] == c.START_VM
        # any difference in the lowest scores ranks (here 3000 against 3100)
        assert step(st(c.DOWN, own_scores=((500, 3000),)),
                    obs(peers={2: peer(score=3100)}))[0] == c.DOWN

    def test_the_wait_for_a_host_that_scores_no_more_is_bounded(self):
        s = st(c.DOWN, own_scores=((500, 1800),), deferred_since=941)
        name, d = step(s, obs(peers={2: peer(score=2700)}))
        assert name == c.DOWN and d.next_state.deferred_since == 941
        name, d = step(replace(s, deferred_since=940), obs(peers={2: peer(score=2700)}))
        assert name == c.START_VM and 'StartVM' in kinds(d)
        assert d.reason == ('no better host; host id 2, which ranks first, did not start the VM '
                            'within 60 s')
        assert d.next_state.deferred_since is None
        # after the wait, the scores alone rank: a better-scored host is still waited for
        name, d = step(replace(s, deferred_since=940, peer_scores=hist(h3=((500, 1000),))),
                       obs(peers={2: peer(score=2700), 3: peer(hid=3, score=3401)}))
        assert name == c.DOWN and d.next_state.deferred_since == 940
        # leaving EngineDown forgets the wait, and so does a loop where it does not apply
        name, d = step(s, obs(vm=UP_BAD, peers={2: peer(score=2700)}))
        assert name == c.STARTING and d.next_state.deferred_since is None
        name, d = step(s, obs(peers={2: peer(score=2700, status=UP_GOOD)}))
        assert name == c.DOWN and d.next_state.deferred_since is None

    def test_a_host_that_stayed_high_does_not_wait_for_one_that_fell(self):
        s = st(c.DOWN, peer_scores=hist(h2=((500, 1800),)))
        name, d = step(s, obs(peers={2: peer(score=3401)}))
        assert name == c.START_VM and d.reason == ('no host ranks higher: host id 2 scores '
                                                   'more, but its score fell lower within the '
                                                   'last 600 s')
        # without that history, a better score is waited for, without a time limit (oVirt's
        # rule); the other host, whose score fell, waits at most start_defer
        name, d = step(st(c.DOWN), obs(peers={2: peer(score=3401)}))
        assert name == c.DOWN and d.next_state.deferred_since is None

    def test_equal_ranks_lowest_host_id_first(self):
        """Equal ranks: the lowest host id starts; the others wait for it (start_defer at
        most), so that two starts at the same moment cannot refuse each other."""
        assert step(st(c.DOWN), obs(host_id=1, peers={2: peer(score=3400)}))[0] == c.START_VM
        name, d = step(st(c.DOWN), obs(host_id=3, peers={2: peer(score=3400)}))
        assert name == c.DOWN and d.reason == ('host id 2 starts the VM first: it ranks the '
                                               'same and has the lower host id')
        name, d = step(st(c.DOWN, deferred_since=1000 - CFG.start_defer),
                       obs(host_id=3, peers={2: peer(score=3400)}))
        assert name == c.START_VM and 'did not start the VM within' in d.reason
        # a stale or maintained peer is no reason to wait
        assert step(st(c.DOWN), obs(host_id=3, peers={2: peer(score=3400, live=lv.STALE)})
                    )[0] == c.START_VM
        assert step(st(c.DOWN), obs(peers={2: peer(score=3400)}))[0] == c.START_VM
        # the host the engine was last up on goes last among equals; it is not waited for
        name, d = step(st(c.DOWN, engine_seen_on=1),
                       obs(host_id=1, peers={2: peer(score=3400)}))
        assert name == c.DOWN and d.reason == ('host id 2 starts the VM first: it ranks the '
                                               'same, and the engine was last up here')
        assert step(st(c.DOWN, engine_seen_on=1),
                    obs(host_id=2, peers={1: peer(1, score=3400)}))[0] == c.START_VM
        both = st(c.DOWN, own_scores=((500, 1800),), peer_scores=hist(h2=((600, 1800),)))
        assert step(both, obs(peers={2: peer(score=3400)}))[0] == c.START_VM
        name, d = step(both, obs(peers={2: peer(score=3401)}))
        assert name == c.DOWN and d.reason == ''
        # a host whose score fell, with no eligible host ranked first, starts the engine
        assert step(st(c.DOWN, own_scores=((500, 1800),)),
                    obs(peers={2: peer(score=3400, live=lv.STALE)}))[0] == c.START_VM


def test_local_maintenance_keeps_the_guest_notice():
    name, d = step(st(c.UP), obs(vm=UP_GOOD, local_maintenance=True))
    shutdown, = [a for a in d.actions if isinstance(a, c.ShutdownVM)]
    assert name == c.LOCAL_MAINT and shutdown.delay == 120
    for o in (obs(vm=UP_BAD, peers={2: peer(status=UP_GOOD)}),        # better engine elsewhere
              obs(vm=UP_BAD)):
        name, d = step(st(c.UP_BAD, entered=700), o)
        shutdown, = [a for a in d.actions if isinstance(a, c.ShutdownVM)]
        assert name == c.STOP and shutdown.delay == 0


def test_watch_while_the_engine_is_claimed_only_by_a_stale_host():
    """EngineDown while the engine is believed up only on a host that stopped writing its
    metadata: the next loop follows in WATCH_INTERVAL, to start the VM within seconds of
    sanlock declaring that host dead."""
    stale_up = {2: peer(2, status=UP_GOOD, live=lv.STALE)}
    name, d = step(st(c.DOWN), obs(peers=stale_up))
    assert name == c.DOWN and d.watch
    # the engine runs on a live host, or nowhere: nothing to watch
    for peers in ({2: peer(2, status=UP_GOOD)},
                  {2: peer(2, status=UP_GOOD, live=lv.STALE), 3: peer(3, status=UP_GOOD)}):
        name, d = step(st(c.DOWN), obs(peers=peers))
        assert name == c.DOWN and not d.watch, peers
    # (with the engine nowhere, this host starts it: the boot is watched)
    assert step(st(c.DOWN), obs(peers={2: peer(2, live=lv.STALE)}))[0] == c.START_VM
    # in the agent's first minute every host not yet seen writing counts as stale
    assert not step(st(c.DOWN, started=990), obs(peers=stale_up))[1].watch
    # the engine runs here
    assert not step(st(c.UP), obs(vm=UP_GOOD, peers=stale_up))[1].watch


def test_watch_while_the_vm_started_here_boots():
    """EngineStart and EngineStarting follow in WATCH_INTERVAL: the engine turning healthy
    is acted upon and published within seconds; once healthy, the loop interval again."""
    name, d = step(st(c.DOWN), obs())
    assert name == c.START_VM and d.watch
    name, d = step(st(c.START_VM), obs(vm=UP_BAD, result=c.ActionResult('start', True)))
    assert name == c.STARTING and d.watch
    name, d = step(st(c.STARTING), obs(vm=UP_BAD))
    assert name == c.STARTING and d.watch
    name, d = step(st(c.STARTING), obs(vm=UP_GOOD))
    assert name == c.UP and not d.watch


def test_watch_while_the_broker_joins_in_the_first_minute():
    """In the agent's first minute, while its host id is not held yet, the loops follow in
    WATCH_INTERVAL: a host alone in the lockspace starts the VM within seconds of joining."""
    name, d = step(st(c.REINIT, started=990), obs(lockspace_held=False, peers=None))
    assert name == c.DOWN and d.watch
    name, d = step(st(c.DOWN, started=990), obs(lockspace_held=False, peers=None))
    assert name == c.DOWN and d.watch
    # later on, a lost host id is no reason to loop faster
    name, d = step(st(c.DOWN), obs(lockspace_held=False, peers=None))
    assert name == c.DOWN and not d.watch
