"""A virtual hosted-engine cluster driving the real decision core.

Virtual parts, each with the semantics the real ones have:
- clock: whole seconds; every host has its own monotonic clock (reset when it boots);
- shared storage: the metadata area as 4096-byte slots written and parsed with
  ha/metadata.py (so corruption is real corrupted bytes), bounded to the slots
  deploy initialised;
- sanlock: delta leases (host ids) renewed every 2N; a host that cannot renew
  kills its lease holders (the VM) at 8N; other hosts see its id dead and may
  take its leases at 8N + W; a host id already live for another host cannot be
  acquired; the VM lease has at most one holder, a start elsewhere fails like
  libvirt with -243;
- VMs: boot time before the engine is healthy, graceful shutdown time,
  pause, crash, engine health faults;
- broker monitors, host agent (VDSM) availability, agents that stop and restart.

Each host runs the agent loop every 10 s (30 s while its host agent is down) with
a per-host phase: read the area, judge liveness (ha/liveness.py), call
core.decide(), carry out the actions, publish the slot.
"""

from .. import core, metadata
from ..score import Monitors

IO_TIMEOUT = 10                      # N
WATCHDOG = 60                        # W
RENEWAL = 2 * IO_TIMEOUT
KILL_AFTER = 8 * IO_TIMEOUT          # a host that cannot renew kills its lease holders
DEAD_AFTER = 8 * IO_TIMEOUT + WATCHDOG   # others may take its leases
BOOT_TIME = 60                       # VM start -> engine health page up
SHUTDOWN_TIME = 30                   # guest shutdown
HOST_BOOT = 20                       # power on -> agent and broker running
LOOP = 10
LOOP_NO_HOSTAGENT = 30
BROKER_RESTART = 15


class Host:
    def __init__(self, index):
        self.index = index
        self.name = 'host%d' % index
        self.host_id = index
        self.phase = (index * 3) % LOOP
        self.powered = True
        self.boot_at = 0
        self.agent_running = False
        self.agent_start_at = None
        self.state = core.AgentState()
        self.memory = core.AgentMemory()
        self.result = None
        self.next_loop = 0
        # monitors
        self.network = 1.0
        self.bridge = True
        self.mem_free = 16384
        self.cpu = 0.1
        self.storage_ok = True
        self.storage_delay = 0.0
        self.broker_slow_until = -1
        self.hostagent_ok = True
        self.ts_offset = 0
        self.local_maint = False
        self.engine_unhealthy = False
        self.guest_hang = False
        # sanlock
        self.id_held = False
        self.last_renew = None
        self.collision_logged = False
        # VM
        self.vm_running = False
        self.vm_started_at = None
        self.vm_paused = False
        self.vm_shutdown_at = None
        self.vm_last_exit = None     # None | 'unexpected' | 'lease' | 'clean'
        self.flap = None             # (period, until, low, since)

    def mono(self, t):
        return t - self.boot_at + 1000   # a monotonic clock that started at boot

    def vm_healthy(self, t):
        return (self.vm_running and not self.vm_paused and not self.engine_unhealthy
                and t - self.vm_started_at >= BOOT_TIME)


class Cluster:
    def __init__(self, n_hosts, slots=None, cfg=None):
        self.t = 0
        self.cfg = cfg or core.CoreConfig()
        self.hosts = [Host(i) for i in range(1, n_hosts + 1)]
        self.slots = slots or max(n_hosts, 8)
        self.area = [bytes(metadata.SLOT_SIZE)] * (self.slots + 1)
        self.area_version = 0
        self._view_cache = (None, None)
        self.lease_holder = None
        self.log = []
        self.violations = []
        self.skip_logged = {}
        self.score_moves = []
        self.down_since = None
        self.longest_down = 0
        self.vm_owner_seen = None
        self.lease_read = True       # agents read the VM lease owner from sanlock
        for h in self.hosts:
            h.agent_running = True
            h.next_loop = h.phase

    # ----- log -----
    def emit(self, who, msg):
        self.log.append('%5d %s: %s' % (self.t, who, msg))

    def host(self, ref):
        ref = str(ref)
        name = ref if ref.startswith('host') else 'host' + ref
        for h in self.hosts:
            if h.name == name:
                return h
        raise ValueError('no host %s' % ref)

    # ----- storage -----
    def write_slot(self, slot, data):
        self.area[slot] = bytes(data)
        self.area_version += 1
        result = (metadata.parse_global(self.area[0])[1] if slot == 0
                  else metadata.parse_host_slot(slot, self.area[slot]))
        bad = result if isinstance(result, metadata.Skipped) else None
        prev = self.skip_logged.get(slot)
        if bad and (prev is None or prev != bad.reason):
            self.emit('storage', 'slot %d skipped by readers (%s)' % (slot, bad.reason))
            self.skip_logged[slot] = bad.reason
        elif not bad and prev is not None:
            self.emit('storage', 'slot %d valid again' % slot)
            del self.skip_logged[slot]

    def read_area(self):
        version, view = self._view_cache
        if version != self.area_version:
            view = metadata.parse_slots(self.area, self.slots)
            self._view_cache = (self.area_version, view)
        return view

    # ----- sanlock -----
    def id_live(self, h):
        """Whether h's host id is live as seen by the other hosts."""
        # the on-disk delta lease: live until DEAD_AFTER past its last renewal,
        # whatever the host itself still believes
        return h.last_renew is not None and self.t - h.last_renew <= DEAD_AFTER

    def sanlock_live_ids(self):
        return frozenset(h.host_id for h in self.hosts if self.id_live(h))

    def lockspace_held(self, h):
        return h.id_held and h.last_renew is not None and self.t - h.last_renew < KILL_AFTER

    def sanlock_tick(self):
        for h in self.hosts:
            if not h.powered:
                continue
            if not h.id_held and h.agent_running and h.storage_ok:
                other = [o for o in self.hosts
                         if o is not h and o.host_id == h.host_id and self.id_live(o)]
                if other:
                    if not h.collision_logged:
                        self.emit(h.name, 'host id %d is live for %s: not acquired'
                                  % (h.host_id, other[0].name))
                        h.collision_logged = True
                    continue
                if h.host_id > self.slots:
                    if not h.collision_logged:
                        self.emit(h.name, 'host id %d outside the metadata area' % h.host_id)
                        h.collision_logged = True
                    continue
                h.id_held = True
                h.last_renew = self.t
                h.collision_logged = False
                continue
            if h.id_held and h.storage_ok and (self.t - h.phase) % RENEWAL == 0:
                h.last_renew = self.t
            if h.id_held and self.t - h.last_renew >= KILL_AFTER:
                h.id_held = False
                self.emit(h.name, 'sanlock: host id %d lost (no renewal for %ds)'
                          % (h.host_id, KILL_AFTER))
                if h.vm_running:
                    self.vm_stop(h, 'unexpected', 'VM killed by sanlock')

    def lease_free_for(self, h):
        holder = self.lease_holder
        return holder is None or holder is h or not self.id_live(holder)

    # ----- VM -----
    def vm_stop(self, h, how, msg):
        h.vm_running = False
        h.vm_paused = False
        h.vm_shutdown_at = None
        h.vm_last_exit = how
        self.emit(h.name, msg)
        if self.lease_holder is h and h.powered and h.storage_ok:
            self.lease_holder = None     # released on disk; otherwise it expires with the host id

    def vm_tick(self):
        for h in self.hosts:
            if h.vm_running and h.vm_shutdown_at is not None and self.t >= h.vm_shutdown_at:
                self.vm_stop(h, 'clean', 'VM shut down')

    def vm_status(self, h):
        if not h.hostagent_ok:
            return core.vm_status('unknown', 'unknown', 'Unknown', 'host agent not reachable')
        if h.vm_running:
            if h.vm_paused:
                return core.vm_status('up', 'bad', 'Paused', 'VM paused')
            if self.t - h.vm_started_at < BOOT_TIME:
                return core.vm_status('up', 'bad', 'Powering up', 'failed liveliness check')
            if h.engine_unhealthy:
                return core.vm_status('up', 'bad', 'Up', 'failed liveliness check')
            return core.vm_status('up', 'good', 'Up')
        if h.vm_last_exit == 'unexpected':
            return core.vm_status('down_unexpected', 'bad', 'Down', 'VM exited unexpectedly')
        if h.vm_last_exit == 'lease':
            return core.vm_status('down', 'bad', 'Down', core.REASON_LEASE)
        return core.vm_status('down', 'bad', 'Down', 'VM not running on this host')

    def start_vm(self, h):
        if h.vm_running:
            return core.ActionResult('start', True)
        if not h.hostagent_ok:
            return core.ActionResult('start', False, 1, 'host agent not reachable')
        if not self.lockspace_held(h):
            return core.ActionResult('start', False, 1, 'host id not held')
        if not self.lease_free_for(h):
            h.vm_last_exit = 'lease'
            self.emit(h.name, 'VM start failed: lease held by %s (-243)' % self.lease_holder.name)
            return core.ActionResult('start', False, -243, core.REASON_LEASE)
        self.lease_holder = h
        h.vm_running = True
        h.vm_started_at = self.t
        h.vm_paused = False
        h.vm_last_exit = None
        self.emit(h.name, 'VM started')
        return core.ActionResult('start', True)

    # ----- agent -----
    def start_agent(self, h):
        h.agent_running = True
        h.state = core.AgentState()
        h.memory = core.AgentMemory()
        h.result = None
        h.next_loop = self.t + ((h.phase - self.t) % LOOP)

    def stop_agent(self, h, publish=True):
        if not h.agent_running:
            return
        h.agent_running = False
        if publish and self.lockspace_held(h) and h.storage_ok:
            self.publish(h, core.agent_stopped(h.state, self.vm_status(h)))
        self.emit(h.name, 'agent stopped')

    def publish(self, h, pub):
        if h.host_id > self.slots:
            return
        data = metadata.serialize_host(
            h.host_id, h.mono(self.t) + h.ts_offset, pub.score, pub.engine_status, h.name,
            local_maintenance=pub.local_maintenance, stopped=pub.stopped, state=pub.state)
        self.write_slot(h.host_id, data)

    def monitors(self, h):
        if self.t < h.broker_slow_until:
            return None
        return Monitors(network=h.network, bridge_up=h.bridge, mem_free_mb=h.mem_free,
                        cpu_load=h.cpu, storage_valid=h.storage_ok,
                        storage_delay=h.storage_delay)

    def agent_loop(self, h):
        now = h.mono(self.t)
        view = self.read_area() if h.storage_ok else None
        sanlock_live = self.sanlock_live_ids() if h.storage_ok else None
        peers, global_maint, h.memory = core.observe_area(h.memory, view, h.host_id, now,
                                                          sanlock_live)
        owner = None
        if self.lease_read and h.storage_ok and self.lease_holder is not None:
            owner = self.lease_holder.host_id
        obs = core.Observations(
            now=now, local_vm=self.vm_status(h), monitors=self.monitors(h), peers=peers,
            global_maintenance=global_maint, local_maintenance=h.local_maint,
            lockspace_held=self.lockspace_held(h), result=h.result, host_id=h.host_id,
            sanlock_live=sanlock_live, vm_lease_owner=owner)
        decision = core.decide(h.state, obs, self.cfg)
        self.decide_calls += 1
        h.state = decision.next_state
        h.result = None
        for action in decision.actions:
            if isinstance(action, core.Notify):
                why = ' (%s)' % decision.reason if decision.reason else ''
                self.emit(h.name, '%s -> %s%s' % (action.old_state, action.new_state, why))
            elif isinstance(action, core.StartVM):
                h.result = self.start_vm(h)
            elif isinstance(action, core.ShutdownVM):
                if decision.reason.startswith('a host scores'):
                    self.score_moves.append(self.t)
                if h.vm_running and h.vm_shutdown_at is None:
                    if h.guest_hang:
                        self.emit(h.name, 'VM shutdown requested (the guest ignores it)')
                    else:
                        h.vm_shutdown_at = self.t + SHUTDOWN_TIME
                        self.emit(h.name, 'VM shutdown requested')
                h.result = core.ActionResult('shutdown', h.hostagent_ok)
            elif isinstance(action, core.PowerOffVM):
                if h.vm_running:
                    self.vm_stop(h, 'clean', 'VM powered off')
                h.result = core.ActionResult('poweroff', h.hostagent_ok)
            elif isinstance(action, core.PublishMetadata):
                self.publish(h, action.published)
        h.next_loop = self.t + (LOOP if h.hostagent_ok else LOOP_NO_HOSTAGENT)

    decide_calls = 0

    # ----- time -----
    def tick(self):
        for h in self.hosts:
            if h.flap is not None:
                period, until, low, since = h.flap
                if self.t >= until:
                    h.flap = None
                    h.network = 1.0
                elif (self.t - since) % period == 0:
                    h.network = low if ((self.t - since) // period) % 2 == 0 else 1.0
            if h.powered and not h.agent_running and h.agent_start_at is not None \
                    and self.t >= h.agent_start_at:
                h.agent_start_at = None
                self.start_agent(h)
                self.emit(h.name, 'agent started')
        self.sanlock_tick()
        self.vm_tick()
        for h in self.hosts:
            if h.powered and h.agent_running and self.t >= h.next_loop:
                self.agent_loop(h)
        self.check_invariants()

    def check_invariants(self):
        running = [h.name for h in self.hosts if h.vm_running]
        if len(running) > 1:
            self.violations.append('%d: two engine VMs running (%s)' % (self.t, ', '.join(running)))
        healthy = any(h.vm_healthy(self.t) for h in self.hosts)
        if healthy:
            if self.down_since is not None:
                self.emit('cluster', 'engine healthy again after %ds' % (self.t - self.down_since))
                self.longest_down = max(self.longest_down, self.t - self.down_since)
                self.down_since = None
        elif self.down_since is None:
            self.down_since = self.t
            self.emit('cluster', 'engine down')
        owner = next((h.name for h in self.hosts if h.vm_running), None)
        self.vm_owner_seen = owner

    def finish(self):
        if self.down_since is not None:
            self.longest_down = max(self.longest_down, self.t - self.down_since)
        moves = sorted(self.score_moves)
        for a, b in zip(moves, moves[1:]):
            if b - a < self.cfg.move_dwell:
                self.violations.append('VM moved for score twice within %ds (at %d and %d)'
                                       % (self.cfg.move_dwell, a, b))
