"""The HA decision core: the agent's state machine as a pure function.

    decide(state, observations, config) -> Decision(next_state, actions, published)

No I/O, no clock, no randomness: everything the agent knows comes in through
``Observations`` (local VM status, local monitors, the other hosts' metadata
with their liveness already judged by ha/liveness.py, maintenance flags, the
monotonic time, whether this host holds its host id, the result of the VM
action asked for in the previous loop). Everything it wants done goes out as
action values (StartVM, ShutdownVM, PowerOffVM, Notify, PublishMetadata) that
the agent daemon or the simulator carries out. Per-state data (when the state
was entered, the start retry counter, hysteresis timers, the last score) lives
in the immutable ``AgentState`` value.

States, transitions and timeouts follow oVirt's agent (docs/ha-services.md), with
these additions:
- hosts are LIVE / STALE / DEAD (ha/liveness.py): a host sanlock reports dead
  is dead at once, so its engine is restarted as soon as its VM lease is free;
- a loop where shared storage could not be read (or was slower than the
  storage delay limit) changes nothing that needs the other hosts' view: no
  start, no move; timers keep running; no restart of the agent;
- a loop without monitor values (slow or restarting broker) keeps the
  previous score instead of flipping it;
- score hysteresis judged on each host's lowest score within ``move_dwell``
  (its worst recent moment, from the scores it published while they measured
  its host): the engine is moved for score only to a host that scores at least
  the margin (800) more than this host and never scored as low as this host
  does now within ``move_dwell``, once that has held for ``move_hold`` seconds
  without a break; and when the engine is to be
  started, hosts rank by (lowest score, score), a host waiting at most
  ``start_defer`` for one that ranks first without scoring more. A host the
  engine just left for score keeps its low score in everybody's window, so
  the engine does not come back to it within ``move_dwell`` (flapping monitors
  cannot move it back and forth), while a VM started a minute ago still leaves
  a host that loses its gateway as soon as the hold is over;
- the guest gets no shutdown notice when the agent stops the engine so that it
  runs elsewhere (EngineStop): VDSM honours the delay only through the legacy
  oVirt guest agent (the QEMU guest agent and ACPI, which it tries first and
  next, shut down at once), so oVirt's guests start shutting down at once too,
  while a host agent that honours the delay would keep the engine away for it;
  local maintenance keeps oVirt's 120 s notice;
- a host that does not hold its host id never starts the VM;
- when the caller can read the VM lease's owner from sanlock, a host does not
  try to start the VM while another live host id owns the lease (instead of
  learning it from a failed start and a retry penalty); the lease itself stays
  the final arbiter of races.
"""
from dataclasses import dataclass, field, replace

from . import liveness
from .score import ZERO_SCORE_STATES, Monitors, ScoreConfig, compute_score

START = 'StartState'
REINIT = 'ReinitializeFSM'
GLOBAL_MAINT = 'GlobalMaintenance'
LOCAL_MAINT = 'LocalMaintenance'
UNKNOWN_VM = 'UnknownLocalVmState'
DOWN = 'EngineDown'
START_VM = 'EngineStart'
STARTING = 'EngineStarting'
UP = 'EngineUp'
UP_BAD = 'EngineUpBadHealth'
STOP = 'EngineStop'
FORCE_STOP = 'EngineForceStop'
MAYBE_AWAY = 'EngineMaybeAway'
UNEXPECTEDLY_DOWN = 'EngineUnexpectedlyDown'
AGENT_STOPPED = 'AgentStopped'

STATES = (START, REINIT, GLOBAL_MAINT, LOCAL_MAINT, UNKNOWN_VM, DOWN, START_VM, STARTING, UP,
          UP_BAD, STOP, FORCE_STOP, MAYBE_AWAY, UNEXPECTEDLY_DOWN, AGENT_STOPPED)

# The agent's start-up transitions only classify the local VM: the next loop follows at
# once (FOLLOW_INTERVAL) instead of a whole loop interval later, so that a starting agent
# reaches EngineDown (and may start the VM) in seconds rather than two loop intervals.
FOLLOW_AT_ONCE = frozenset({(START, REINIT), (REINIT, DOWN), (REINIT, STARTING)})
FOLLOW_INTERVAL = 1.0
# While the engine is believed up only on hosts that stopped writing their metadata
# (STALE: crashed, hung or cut off, and sanlock has not yet declared them dead), the next
# loops follow every WATCH_INTERVAL seconds: sanlock's verdict, which frees the engine
# VM's lease, is then acted upon within seconds rather than a whole loop interval later.
# So do the loops of an agent whose VM is starting (EngineStart, EngineStarting): the
# engine turning healthy is seen and published within seconds; and those of an agent in its
# first minute whose broker is still joining the lockspace.
WATCH_INTERVAL = 2.0

# why a VM is down when libvirt/sanlock refused it because another host holds the VM lease
REASON_LEASE = 'lease held elsewhere'


def engine_rank(status):
    """unknown 0 < down* 1 < up+paused 2 < up+bad 3 < up+good 4."""
    if not status:
        return 0
    vm = status.get('vm')
    if vm == 'up':
        if status.get('detail', '').lower() == 'paused':
            return 2
        return 4 if status.get('health') == 'good' else 3
    if vm and vm.startswith('down'):
        return 1
    return 0


def vm_status(vm, health='bad', detail='', reason=None):
    """An engine status value as published in the metadata."""
    return {'vm': vm, 'health': health, 'detail': detail or vm.capitalize(), 'reason': reason}


# ----- actions -----
@dataclass(frozen=True)
class StartVM:
    paused: bool = False


@dataclass(frozen=True)
class ShutdownVM:
    delay: int = 120
    message: str = 'The hosted engine VM is being shut down by the HA agent'


@dataclass(frozen=True)
class PowerOffVM:
    pass


@dataclass(frozen=True)
class Notify:
    old_state: str
    new_state: str

    @property
    def detail(self):
        return '%s-%s' % (self.old_state, self.new_state)


@dataclass(frozen=True)
class PublishMetadata:
    published: 'Published'


@dataclass(frozen=True)
class ActionResult:
    """The outcome of the VM action of the previous loop, given back to decide()."""
    action: str          # 'start' | 'shutdown' | 'poweroff'
    ok: bool
    code: int = 0
    message: str = ''


@dataclass(frozen=True)
class Peer:
    """Another host as this agent sees it (from its metadata slot)."""
    host_id: int
    score: int
    engine_status: dict
    hostname: str = ''
    local_maintenance: bool = False
    stopped: bool = False
    state: str = ''
    liveness: str = liveness.LIVE

    @classmethod
    def from_record(cls, rec, verdict):
        return cls(rec.host_id, rec.score, rec.engine_status, rec.hostname, rec.local_maintenance,
                   rec.stopped, rec.state, verdict)


@dataclass(frozen=True)
class Observations:
    now: float                           # the agent's monotonic clock, seconds
    local_vm: dict                       # engine status of the local VM (vm_status())
    monitors: Monitors = None            # None: the broker gave no values this loop
    peers: dict = None                   # host id -> Peer; None: shared storage not readable
    global_maintenance: bool = False     # last known value when storage is not readable
    local_maintenance: bool = False
    lockspace_held: bool = True          # this host holds its id in the hosted-engine lockspace
    conf_up_to_date: bool = True
    result: ActionResult = None
    host_id: int = None                  # this host's id in the lockspace
    sanlock_live: frozenset = None       # host ids sanlock reports live; None: unknown
    vm_lease_owner: int = None           # host id owning the VM lease on disk; None: free/unknown


@dataclass(frozen=True)
class CoreConfig:
    score: ScoreConfig = field(default_factory=ScoreConfig)
    vm_mem_mb: int = 4096
    history: float = 60
    starting_timeout: float = 600
    bad_health_timeout: float = 300
    stop_timeout: float = 300
    maybe_away_timeout: float = 40
    unexpectedly_down_time: float = 560
    retry_expiration: float = 600
    migration_margin: int = 800
    move_hold: float = 60
    move_dwell: float = 600
    storage_delay_limit: float = 10
    start_defer: float = 60                  # longest wait for a host that ranks first but
                                             # scores no more (see _down)
    shutdown_delay: int = 0                  # EngineStop's guest notice (see above)
    maintenance_shutdown_delay: int = 120    # local maintenance: oVirt's --vm-shutdown notice


@dataclass(frozen=True)
class AgentState:
    name: str = START
    entered: float = None        # monotonic time the state was entered
    started: float = None        # monotonic time the agent started (history)
    retries: int = 0
    last_failure: float = None
    bad_since: float = None
    better_since: float = None   # since when a move target has been seen (EngineUp)
    deferred_since: float = None  # since when EngineDown waits for a host ranked first
    score: int = 0               # last published score
    # the lowest scores seen within move_dwell: sliding-window minima (see _push), this
    # host's own and, by host id, the other hosts'
    own_scores: tuple = ()
    peer_scores: tuple = ()      # ((host id, samples), ...) sorted by host id
    engine_seen_on: int = None   # the host id the engine VM was last seen up on


@dataclass(frozen=True)
class Published:
    score: int
    engine_status: dict
    state: str
    local_maintenance: bool = False
    stopped: bool = False


@dataclass(frozen=True)
class Decision:
    next_state: AgentState
    actions: tuple
    published: Published
    reason: str = ''
    watch: bool = False      # the next loop should follow in WATCH_INTERVAL


@dataclass(frozen=True)
class AgentMemory:
    """What the agent keeps between loops to judge the others (see observe_area)."""
    seen: dict = field(default_factory=dict)        # liveness.observe() map
    last_good: dict = field(default_factory=dict)   # host id -> last valid HostRecord
    global_maintenance: bool = False                # last value read


def observe_area(memory, view, own_id, now, sanlock_live=None):
    """Turn one read of the metadata area into (peers, global maintenance, new memory).

    ``view`` is a metadata.AreaView, or None when the area could not be read
    (then peers is None and the last known global maintenance flag is kept).
    Pure: the agent daemon and the simulator both call it before decide().
    """
    if view is None:
        return None, memory.global_maintenance, memory
    records = liveness.merge_last_good(memory.last_good, view)
    seen = liveness.observe(memory.seen, records, now)
    peers = {hid: Peer.from_record(rec, liveness.judge(seen, hid, now, sanlock_live))
             for hid, rec in records.items() if hid != own_id}
    return peers, view.global_maintenance, AgentMemory(seen, records, view.global_maintenance)


def _storage_ok(obs, cfg):
    if obs.peers is None:
        return False
    m = obs.monitors
    return m is None or (m.storage_valid and m.storage_delay <= cfg.storage_delay_limit)


def _score(state_name, state, obs, cfg, retries):
    m = obs.monitors
    if m is None or not m.complete():
        if state_name in ZERO_SCORE_STATES:
            return 0
        return state.score
    return compute_score(cfg.score, state_name, m, vm_mem_mb=cfg.vm_mem_mb,
                         engine_running_here=obs.local_vm.get('vm') == 'up',
                         global_maintenance=obs.global_maintenance,
                         conf_up_to_date=obs.conf_up_to_date, retry_count=retries)


def _visible(peers):
    """Peers whose claims are believed (live or stale)."""
    return [p for p in (peers or {}).values() if p.liveness != liveness.DEAD]


def _engine_up_elsewhere(peers):
    return any(p.engine_status.get('vm') == 'up' for p in _visible(peers))


def awaiting_dead_host(peers):
    """The engine is believed up only on hosts that stopped writing their metadata (STALE):
    once sanlock declares them dead, their VM lease is free."""
    up = [p for p in _visible(peers) if p.engine_status.get('vm') == 'up']
    return bool(up) and all(p.liveness == liveness.STALE for p in up)


def _eligible(peers):
    """Live peers that may run the engine (not in local maintenance, agent not stopped)."""
    return [p for p in (peers or {}).values()
            if p.liveness == liveness.LIVE and not p.local_maintenance and not p.stopped]


# ----- score history: each host's lowest score over the last move_dwell seconds -----
def _push(samples, t, score, horizon):
    """A sliding-window minimum: ``samples`` are (time, score) pairs with increasing times
    and strictly increasing scores, so the first pair not older than the window holds the
    lowest score seen in it. Adds the sample (t, score) and forgets what left the window."""
    return tuple(x for x in samples if x[0] >= horizon and x[1] < score) + ((t, score),)


def _low(samples, horizon):
    """The lowest score sampled since ``horizon``; None when none was."""
    for t, score in samples:
        if t >= horizon:
            return score
    return None


def _counts(peer):
    """Whether a peer's published score says how fit its host is: not forced to 0 by its
    state (agent starting, back-off after a crash, maintenance, agent stopped)."""
    return (peer.liveness == liveness.LIVE and not peer.local_maintenance and not peer.stopped
            and peer.state not in ZERO_SCORE_STATES)


def _watch_peers(state, obs, cfg):
    """The other hosts' score history with this loop's samples added."""
    if obs.peers is None:
        return state.peer_scores
    horizon = obs.now - cfg.move_dwell
    old = dict(state.peer_scores)
    new = {}
    for hid, p in obs.peers.items():
        samples = old.get(hid, ())
        if _counts(p):
            samples = _push(samples, obs.now, p.score, horizon)
        else:
            samples = tuple(x for x in samples if x[0] >= horizon)
        if samples:
            new[hid] = samples
    return tuple(sorted(new.items()))


def _peer_low(history, peer, horizon):
    """The lowest score a peer published within move_dwell (as far as this agent watched);
    ``history`` is dict(AgentState.peer_scores)."""
    low = _low(history.get(peer.host_id, ()), horizon)
    return peer.score if low is None else min(low, peer.score)


def _own_low(state, own, horizon):
    """The lowest score this host published within move_dwell, its current one included."""
    low = _low(state.own_scores, horizon)
    return own if low is None else min(low, own)


def _move_targets(state, obs, cfg, own):
    """The hosts the engine may move to for score: live and eligible, scoring at least the
    margin more than this host, and never as low as this host's score within the last
    move_dwell seconds."""
    horizon = obs.now - cfg.move_dwell
    history = dict(state.peer_scores)
    return [p for p in _eligible(obs.peers)
            if p.score >= own + cfg.migration_margin and _peer_low(history, p, horizon) > own]


def _tie(state, host_id):
    """The order among equal ranks: the lowest host id first, the host the engine was last
    seen up on last."""
    return float('-inf') if host_id == state.engine_seen_on else -host_id


def _rank_low(state, obs, cfg, peer):
    """The peer's lowest score within move_dwell, as this agent watched it."""
    return _peer_low(dict(state.peer_scores), peer, obs.now - cfg.move_dwell)


def _outranked_by(state, obs, cfg, own):
    """The best-ranked peer that starts the engine before this host, if any. Hosts rank by
    (lowest score within move_dwell, score): a host whose score fell lately ranks after the
    hosts that stayed higher all along. Among equal ranks the lowest host id goes first:
    hosts that start the VM at the same moment can refuse each other (each qemu finds the
    other's lock on the disk before either reaches the VM lease), so none would run it. The
    host the engine was last seen up on goes last among equal ranks (it may just have given
    the engine up, for bad health)."""
    horizon = obs.now - cfg.move_dwell
    history = dict(state.peer_scores)
    mine = (_own_low(state, own, horizon), own, _tie(state, obs.host_id or 0))
    best = None
    for p in _eligible(obs.peers):
        rank = (_peer_low(history, p, horizon), p.score, _tie(state, p.host_id))
        if rank > mine and (best is None or rank > best[0]):
            best = (rank, p)
    return best and best[1]


def _engine_seen_on(state, obs):
    """The host id the engine VM is up on in this loop's view, else the last one seen."""
    if obs.local_vm.get('vm') == 'up':
        return obs.host_id
    for p in _visible(obs.peers):
        if p.engine_status.get('vm') == 'up':
            return p.host_id
    return state.engine_seen_on


def decide(state, obs, cfg=CoreConfig()):
    """One agent loop's decision. Pure: same inputs, same Decision."""
    now = obs.now
    if state.started is None:
        state = replace(state, started=now, entered=now)
    if state.entered is None:
        state = replace(state, entered=now)
    retries, last_failure = state.retries, state.last_failure
    if retries and last_failure is not None and now - last_failure >= cfg.retry_expiration:
        retries, last_failure = 0, None
    state = replace(state, retries=retries, last_failure=last_failure,
                    peer_scores=_watch_peers(state, obs, cfg),
                    engine_seen_on=_engine_seen_on(state, obs))

    nxt, updates, reason = _transition(state, obs, cfg)
    actions = []
    if nxt != state.name:
        updates.setdefault('entered', now)
        actions.append(Notify(state.name, nxt))
        if nxt == START_VM:
            actions.append(StartVM())
        elif nxt == STOP:
            actions.append(ShutdownVM(cfg.shutdown_delay))
        elif nxt == FORCE_STOP:
            actions.append(PowerOffVM())
        elif nxt == LOCAL_MAINT and obs.local_vm.get('vm') == 'up':
            actions.append(ShutdownVM(
                cfg.maintenance_shutdown_delay,
                'The hosted engine VM leaves this host for local maintenance'))
        if nxt not in (UP, UP_BAD):
            updates.setdefault('better_since', None)
        if nxt != DOWN:
            updates.setdefault('deferred_since', None)
        if nxt != UP_BAD:
            updates.setdefault('bad_since', None)
    elif (nxt == LOCAL_MAINT and obs.local_vm.get('vm') == 'up'
          and now - state.entered >= cfg.stop_timeout):
        actions.append(PowerOffVM())     # the guest ignored the shutdown
    new_state = replace(state, name=nxt, **updates)
    score = _score(nxt, new_state, obs, cfg, new_state.retries)
    new_state = replace(new_state, score=score)
    published = Published(score=score, engine_status=dict(obs.local_vm), state=nxt,
                          local_maintenance=(nxt == LOCAL_MAINT))
    # a slow storage still takes writes: publish whenever storage could be read
    if obs.lockspace_held and obs.peers is not None:
        actions.append(PublishMetadata(published))
        # this host's score history holds what the others can see of it: published scores
        # that measure the host (monitor values, no state forcing 0)
        m = obs.monitors
        if m is not None and m.complete() and nxt not in ZERO_SCORE_STATES:
            new_state = replace(new_state, own_scores=_push(
                new_state.own_scores, now, score, now - cfg.move_dwell))
    # (not in the agent's first minute: a host seen for the first time counts as stale
    # until its metadata changes once); while the VM started here boots, so that the
    # engine turning healthy is acted upon and published within seconds; and in the agent's
    # first minute while the broker joins the lockspace, so that a host alone in it starts
    # the VM within seconds of joining
    early = now - new_state.started < cfg.history
    watch = ((nxt == DOWN and not early and awaiting_dead_host(obs.peers))
             or nxt in (START_VM, STARTING)
             or (nxt in (REINIT, DOWN) and early and not obs.lockspace_held))
    return Decision(new_state, tuple(actions), published, reason, watch=watch)


def agent_stopped(state, local_vm):
    """The block an agent publishes when it exits."""
    return Published(score=0, engine_status=dict(local_vm), state=AGENT_STOPPED, stopped=True)


def _transition(state, obs, cfg):
    """Return (next state name, field updates, reason)."""
    name = state.name
    vm = obs.local_vm.get('vm', 'unknown')
    # guards, in oVirt's order
    if obs.global_maintenance:
        return (GLOBAL_MAINT, {}, 'global maintenance') if name != GLOBAL_MAINT else (name, {}, '')
    if name == GLOBAL_MAINT:
        return REINIT, {}, 'global maintenance cleared'
    if vm == 'unknown':
        return (UNKNOWN_VM, {}, 'local VM state unknown') if name != UNKNOWN_VM else (name, {}, '')
    if obs.local_maintenance:
        return (LOCAL_MAINT, {}, 'local maintenance') if name != LOCAL_MAINT else (name, {}, '')
    if name in (LOCAL_MAINT, UNKNOWN_VM, START):
        return REINIT, {}, ''
    handler = _HANDLERS[name]
    return handler(state, obs, cfg, vm, obs.now - state.entered)


def _reinit(state, obs, cfg, vm, elapsed):
    return (STARTING, {}, 'VM up here') if vm == 'up' else (DOWN, {}, '')


def _down(state, obs, cfg, vm, elapsed):
    nxt, updates, reason = _down_decision(state, obs, cfg, vm)
    updates.setdefault('deferred_since', None)     # a wait for a host ranked first ended
    return nxt, updates, reason


def _down_decision(state, obs, cfg, vm):
    if vm == 'up':
        return STARTING, {}, 'engine up here'
    if not _storage_ok(obs, cfg):
        return DOWN, {}, ''
    if _engine_up_elsewhere(obs.peers):
        return DOWN, {}, ''
    early = obs.now - state.started < cfg.history
    if early and not _alone_in_lockspace(obs):
        return DOWN, {}, _history_wait(obs, cfg)
    if not obs.lockspace_held:
        return DOWN, {}, 'this host id is not held in the hosted-engine lockspace'
    owner = obs.vm_lease_owner
    if owner is not None and owner != obs.host_id and (obs.sanlock_live is None
                                                       or owner in obs.sanlock_live):
        return DOWN, {}, 'the engine VM lease is held by host id %d, which is live' % owner
    if state.retries > cfg.score.engine_retry_max_attempts:
        return DOWN, {}, ('the VM failed to start %d times: no start before %d s after the '
                          'last failure' % (state.retries, cfg.retry_expiration))
    own = _score(DOWN, state, obs, cfg, state.retries)
    first = _outranked_by(state, obs, cfg, own)
    if first is not None and first.score <= own:
        # a host scoring no more than this one, but that stayed higher all along, starts
        # first; for start_defer at most (it may not be starting at all), then the scores
        # alone rank, as in oVirt
        since = state.deferred_since if state.deferred_since is not None else obs.now
        if obs.now - since < cfg.start_defer:
            if _rank_low(state, obs, cfg, first) != _own_low(
                    state, own, obs.now - cfg.move_dwell) or first.score != own:
                why = 'its score stayed higher within the last %d s' % cfg.move_dwell
            elif state.engine_seen_on == obs.host_id:
                why = 'it ranks the same, and the engine was last up here'
            else:
                why = 'it ranks the same and has the lower host id'
            return DOWN, {'deferred_since': since}, (
                'host id %d starts the VM first: %s' % (first.host_id, why))
        first = next((p for p in _eligible(obs.peers) if p.score > own), None)
        if first is not None:
            return DOWN, {'deferred_since': since}, ''
        return START_VM, {}, (
            'no better host; host id %d, which ranks first, did not start the VM within %d s'
            % (_outranked_by(state, obs, cfg, own).host_id, cfg.start_defer))
    if first is not None:
        return DOWN, {}, ''
    higher = sorted(p.host_id for p in _eligible(obs.peers) if p.score > own)
    if higher:
        return START_VM, {}, ('no host ranks higher: host id %d scores more, but its score '
                              'fell lower within the last %d s' % (higher[0], cfg.move_dwell))
    if early:
        return START_VM, {}, ('no better host; sanlock shows no other live host, so the %d s '
                              'of metadata history were not awaited' % cfg.history)
    return START_VM, {}, 'no better host'


def _alone_in_lockspace(obs):
    """sanlock shows no live host id but this host's: no other host can run the engine
    or start it, and the VM lease would refuse a second start anyway."""
    return obs.sanlock_live is not None and obs.sanlock_live == {obs.host_id}


def _history_wait(obs, cfg):
    """Why EngineDown waits for the metadata history before it may start the VM."""
    if obs.sanlock_live is None:
        why = 'sanlock cannot tell yet which hosts are live'
    else:
        others = sorted(i for i in obs.sanlock_live if i != obs.host_id)
        why = 'sanlock shows host id%s %s live' % ('s' if len(others) > 1 else '',
                                                   ', '.join(str(i) for i in others))
    return 'waiting for %d s of metadata history before starting the VM: %s' % (
        cfg.history, why)


def _start(state, obs, cfg, vm, elapsed):
    res = obs.result
    if res is not None and res.action == 'start':
        if res.ok:
            return STARTING, {'retries': 0, 'last_failure': None}, 'VM started'
        return DOWN, {'retries': state.retries + 1, 'last_failure': obs.now}, \
            'start failed: %s' % (res.message or res.code)
    if vm == 'up':
        return STARTING, {'retries': 0, 'last_failure': None}, 'VM up here'
    return DOWN, {'retries': state.retries + 1, 'last_failure': obs.now}, 'start result missing'


def _starting(state, obs, cfg, vm, elapsed):
    st = obs.local_vm
    if vm == 'up' and st.get('health') == 'good':
        return UP, {}, 'engine healthy'
    if vm == 'down' and st.get('reason') == REASON_LEASE:
        return FORCE_STOP, {}, REASON_LEASE
    if vm != 'up':
        return MAYBE_AWAY, {}, 'VM down'
    if elapsed >= cfg.starting_timeout:
        return STOP, {}, 'engine not healthy after %ds' % cfg.starting_timeout
    return STARTING, {}, ''


def _up_common(state, obs, cfg, vm):
    """Checks shared by EngineUp and EngineUpBadHealth; None when nothing applies."""
    if vm == 'down_unexpected':
        return UNEXPECTEDLY_DOWN, {}, 'VM died unexpectedly'
    if vm != 'up':
        return MAYBE_AWAY, {}, 'VM down'
    if not _storage_ok(obs, cfg):
        return None
    own_rank = engine_rank(obs.local_vm)
    if any(engine_rank(p.engine_status) > own_rank for p in _visible(obs.peers)):
        return STOP, {}, 'better engine elsewhere'
    own = _score(UP, state, obs, cfg, state.retries)
    if _move_targets(state, obs, cfg, own):
        since = state.better_since if state.better_since is not None else obs.now
        if obs.now - since >= cfg.move_hold:
            return STOP, {'better_since': None}, 'a host scores %d more' % cfg.migration_margin
        return '', {'better_since': since}, ''
    return '', {'better_since': None}, ''


def _up(state, obs, cfg, vm, elapsed):
    r = _up_common(state, obs, cfg, vm)
    if r is not None and r[0]:
        return r
    updates = r[1] if r else {}
    if obs.local_vm.get('health') != 'good':
        updates['bad_since'] = obs.now
        return UP_BAD, updates, 'engine health bad'
    return UP, updates, ''


def _up_bad(state, obs, cfg, vm, elapsed):
    r = _up_common(state, obs, cfg, vm)
    if r is not None and r[0]:
        return r
    updates = r[1] if r else {}
    if obs.local_vm.get('health') == 'good':
        return UP, updates, 'engine health good'
    if elapsed >= cfg.bad_health_timeout:
        return STOP, updates, 'engine health bad for %ds' % cfg.bad_health_timeout
    return UP_BAD, updates, ''


def _stop(state, obs, cfg, vm, elapsed):
    if vm != 'up':
        return DOWN, {}, 'VM down'
    if obs.local_vm.get('detail', '').lower() == 'paused':
        return FORCE_STOP, {}, 'VM paused'
    res = obs.result
    if res is not None and res.action == 'shutdown' and not res.ok:
        return FORCE_STOP, {}, 'shutdown failed'
    if elapsed >= cfg.stop_timeout:
        return FORCE_STOP, {}, 'VM not down after %ds' % cfg.stop_timeout
    return STOP, {}, ''


def _force_stop(state, obs, cfg, vm, elapsed):
    res = obs.result
    if res is not None and res.action == 'poweroff' and not res.ok:
        return REINIT, {}, 'power off failed'
    if vm != 'up':
        return DOWN, {}, 'VM down'
    if res is None:
        return REINIT, {}, 'power off result missing'
    return FORCE_STOP, {}, ''


def _maybe_away(state, obs, cfg, vm, elapsed):
    if vm == 'up':
        return UP, {}, 'VM up here'
    if _storage_ok(obs, cfg) and _engine_up_elsewhere(obs.peers):
        return DOWN, {}, 'engine up elsewhere'
    if elapsed >= cfg.maybe_away_timeout:
        return UNEXPECTEDLY_DOWN, {}, 'VM did not show up elsewhere'
    return MAYBE_AWAY, {}, ''


def _unexpectedly_down(state, obs, cfg, vm, elapsed):
    if vm == 'up':
        return STARTING, {}, 'VM up here'
    if elapsed >= cfg.unexpectedly_down_time:
        return DOWN, {}, 'back-off over'
    return UNEXPECTEDLY_DOWN, {}, ''


_HANDLERS = {
    REINIT: _reinit,
    DOWN: _down,
    START_VM: _start,
    STARTING: _starting,
    UP: _up,
    UP_BAD: _up_bad,
    STOP: _stop,
    FORCE_STOP: _force_stop,
    MAYBE_AWAY: _maybe_away,
    UNEXPECTEDLY_DOWN: _unexpectedly_down,
}
