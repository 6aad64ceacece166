"""A virtual hosted-engine cluster running the real agent loop on every host.

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
- VMs: boot time before the engine is healthy, graceful shutdown time (after
  the notice VM.shutdown asks for, which the host agent honours), pause, crash,
  engine health faults;
- broker monitors, host agent (VDSM) availability, agents that stop and restart.

Each host runs ovirt-ha-agent's own loop (ha/agent_loop.py ``Agent``) in a
``SimulatedHost``, the AgentWorld (ha/agent_world.py) of that virtual host: its
broker answers status, monitors (engine health by the broker's own table,
ha/broker/engine_health.py), read_area, vm_lease_owner, put_host and notify
from the cluster; its host agent answers VM.getStats, VM.create, VM.destroy and
VM.shutdown from the host's VM; its clock is the host's monotonic clock. The
agent's first loop runs at the host's phase, the next ones when the loop asks
(10 s, 30 s while the host agent or sanlock cannot be reached, the back-off
while the services do not answer).
"""
import logging
import math

from .. import core, metadata
from ...api.errors import ConnectionFailed, ServerError
from ...he_storage import heconf, layout
from ..agent_loop import Agent
from ..agent_vm import NO_SUCH_VM
from ..broker import engine_health
from ..broker_client import BrokerError

IO_TIMEOUT = layout.DEFAULT_IO_TIMEOUT
RENEWAL = layout.renewal_interval(IO_TIMEOUT)
KILL_AFTER = layout.renewal_fail(IO_TIMEOUT)   # a host that cannot renew kills its lease holders
DEAD_AFTER = layout.failover_floor(IO_TIMEOUT)  # others may take its leases
BOOT_TIME = 60                       # VM start -> engine health page up
SHUTDOWN_TIME = 30                   # guest shutdown
HOST_BOOT = 20                       # power on -> agent and broker running
LOOP = 10
BROKER_RESTART = 15
VMID = '6a7e5c1e-2f3b-4c5d-8e9f-0a1b2c3d4e5f'
_VM_CONF = heconf.render_vm_conf(heconf.make_vm_conf(
    VMID, '<domain type="kvm"><name>HostedEngine</name><uuid>%s</uuid></domain>' % VMID,
    mem_mb=core.CoreConfig().vm_mem_mb, vcpus=2))
AGENT_LOG = logging.getLogger('ovirt_hosted_engine_setup.ha.agent')


class ScoreMove:
    """The engine VM shut down on ``source`` because another host scored better: the time,
    the score ``source`` published with that decision, and where the VM started next."""

    def __init__(self, t, source, score, dest=None):
        self.t, self.source, self.score, self.dest = t, source, score, dest

    def __repr__(self):
        return 'ScoreMove(%d, %s, %d, %s)' % (self.t, self.source, self.score, self.dest)


def back_and_forth(moves, dwell):
    """The ping-pongs in a list of ScoreMoves: a move whose VM started on a host that the VM
    had left for score less than ``dwell`` seconds before, unless the host it now left scored
    lower than that host did when the VM left it (then the return is worth it, not a flap).
    Returns (earlier move, later move) pairs."""
    found = []
    moves = sorted(moves, key=lambda m: m.t)
    for i, later in enumerate(moves):
        for earlier in moves[:i]:
            if (later.dest is not None and later.dest == earlier.source
                    and later.dest != later.source and later.t - earlier.t < dwell
                    and later.score >= earlier.score):
                found.append((earlier, later))
    return found


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
        self.agent = None            # the ha/agent_loop.py Agent while it runs
        self.next_loop = 0
        # monitors
        self.network = 1.0
        self.bridge = True
        self.mem_free = 16384
        self.cpu = 0.1
        self.storage_ok = True
        self.storage_delay = 0.0
        self.broker_slow_until = -1      # host monitors give no value
        self.broker_restart_until = -1   # no monitor value at all (engine health included)
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
        self.vm_last_exit = None     # the Down record: None | 'unexpected' | 'lease' | 'clean'
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
        self._live_cache = (None, None)
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
            self.start_agent(h)

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
        """The bounded area parsed as ha/metadata.py parses it (one view per version)."""
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
        """The live host ids (renewals happen in sanlock_tick, so one set per second)."""
        t, ids = self._live_cache
        if t != self.t:
            ids = frozenset(h.host_id for h in self.hosts if self.id_live(h))
            self._live_cache = (self.t, ids)
        return ids

    def lockspace_held(self, h):
        return h.id_held and h.last_renew is not None and self.t - h.last_renew < KILL_AFTER

    def sanlock_tick(self):
        self._live_cache = (None, None)
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

    def vm_stats(self, h):
        """The host agent's VM.getStats entry for the engine VM on h; None: no such VM."""
        if h.vm_running:
            if h.vm_paused:
                return {'vmId': VMID, 'status': 'Paused'}
            return {'vmId': VMID, 'status': 'Up'}
        if h.vm_last_exit == 'unexpected':
            return {'vmId': VMID, 'status': 'Down', 'exitCode': 1,
                    'exitMessage': 'VM exited unexpectedly'}
        if h.vm_last_exit == 'lease':
            return {'vmId': VMID, 'status': 'Down', 'exitCode': 1, 'exitLeaseHeld': True,
                    'exitMessage': core.REASON_LEASE}
        if h.vm_last_exit == 'clean':
            return {'vmId': VMID, 'status': 'Down', 'exitCode': 0,
                    'exitMessage': 'VM not running on this host'}
        return None

    def engine_health(self, h):
        """The broker's engine health monitor on h (its table, the health page answering
        once the engine has booted)."""
        if not h.hostagent_ok:
            return engine_health.status_unreachable()
        stats = self.vm_stats(h)
        page_ok = h.vm_healthy(self.t)
        return engine_health.engine_status(stats, page_ok if engine_health.needs_page(stats)
                                           else None)

    def create_vm(self, h):
        """VM.create on h: the VM lease (at most one holder) and the host id decide."""
        if h.vm_running:
            raise ServerError(4, 'Virtual machine already exists')
        if not self.lockspace_held(h):
            raise ServerError(100, 'host id not held')
        if not self.lease_free_for(h):
            h.vm_last_exit = 'lease'
            self.emit(h.name, 'VM start failed: lease held by %s (-243)' % self.lease_holder.name)
            raise ServerError(-243, core.REASON_LEASE)
        self.lease_holder = h
        if self.score_moves and self.score_moves[-1].dest is None:
            self.score_moves[-1].dest = h.name
        h.vm_running = True
        h.vm_started_at = self.t
        h.vm_paused = False
        h.vm_last_exit = None
        self.emit(h.name, 'VM started')

    # ----- agent -----
    def start_agent(self, h):
        h.agent_running = True
        h.agent = Agent(conf={'vmid': VMID, 'host_id': str(h.host_id)}, core_config=self.cfg,
                        world=SimulatedHost(self, h), interval=LOOP)
        h.next_loop = self.t + ((h.phase - self.t) % LOOP)

    def stop_agent(self, h, publish=True):
        if not h.agent_running:
            return
        h.agent_running = False
        if publish:
            h.agent.publish_stopped()
        else:
            h.agent.close()
        h.agent = None
        self.emit(h.name, 'agent stopped')

    def agent_step(self, h):
        """One turn of h's agent (ha/agent_loop.py Agent.step); the next when it asks."""
        wait = h.agent.step()
        h.next_loop = self.t + max(1, math.ceil(wait))

    loops = 0      # agent loops run (each asks its broker for the status once)

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
                self.agent_step(h)
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
        for a, b in back_and_forth(self.score_moves, self.cfg.move_dwell):
            self.violations.append(
                'VM moved back and forth for score within %ds: %s -> %s at %d (score %d), '
                '%s -> %s at %d (score %d)' % (self.cfg.move_dwell, a.source, a.dest, a.t,
                                               a.score, b.source, b.dest, b.t, b.score))


class SimulatedHost:
    """The AgentWorld (ha/agent_world.py) of one virtual host: its broker, its host
    agent, its files and its clock, all backed by the cluster."""

    vm_conf_path = '/run/ovirt-hosted-engine-ha/vm.conf'

    def __init__(self, cluster, host):
        self.c = cluster
        self.h = host

    # -- the broker --------------------------------------------------------------
    def connect_broker(self):
        return 'the virtual broker of %s' % self.h.name

    def broker(self, method, **params):
        return getattr(self, '_broker_' + method)(**params)

    def _broker_status(self):
        c, h = self.c, self.h
        c.loops += 1
        held = c.lockspace_held(h)
        return {'host_id': h.host_id, 'hostname': h.name, 'max_hosts': c.slots,
                'storage': {'connected': True, 'error': None if h.storage_ok else 'I/O error'},
                'lockspace': {'held': held,
                              'live_ids': sorted(c.sanlock_live_ids()) if held else None,
                              'error': None if held else 'host id %d not held' % h.host_id}}

    def _broker_monitors(self):
        c, h = self.c, self.h
        restarting = c.t < h.broker_restart_until
        host = not restarting and c.t >= h.broker_slow_until
        return {'network': h.network if host else None,
                'bridge_up': h.bridge if host else None,
                'mem_free_mb': h.mem_free if host else None,
                'cpu_load': h.cpu if host else None,
                'storage_valid': h.storage_ok if host else None,
                'storage_delay': h.storage_delay if host else None,
                'engine_health': None if restarting else c.engine_health(h),
                'age': {'engine_health': None if restarting else 0.0}}

    def _storage(self):
        if not self.h.storage_ok:
            raise BrokerError('storage-error', 'the hosted-engine storage does not answer')

    def read_area(self, max_hosts=None):
        self._storage()
        return self.c.read_area()

    def _broker_vm_lease_owner(self):
        self._storage()
        if not self.c.lease_read:
            raise BrokerError('no-vm-lease', 'the VM lease owner is not read')
        holder = self.c.lease_holder
        return None if holder is None else holder.host_id

    def _broker_put_host(self, score, engine_status, state, local_maintenance=False,
                         stopped=False, timeout='', vm_conf_refresh_time=0):
        c, h = self.c, self.h
        if not c.lockspace_held(h):
            raise BrokerError('lockspace-not-held', 'host id %d is not held' % h.host_id)
        self._storage()
        if h.host_id > c.slots:
            raise BrokerError('storage-error', 'host id %d is outside the metadata area'
                              % h.host_id)
        data = metadata.serialize_host(
            h.host_id, h.mono(c.t) + h.ts_offset, score, engine_status, h.name,
            local_maintenance=local_maintenance, stopped=stopped, state=state,
            local_conf_timestamp=int(vm_conf_refresh_time),
            vm_conf_refresh_time=int(vm_conf_refresh_time), timeout=timeout)
        c.write_slot(h.host_id, data)
        return True

    def _broker_notify(self, type, detail):  # noqa: A002 (the API's parameter name)
        old, new = detail.split('-', 1)
        reason = self.h.agent.decision.reason if self.h.agent is not None else ''
        self.c.emit(self.h.name, '%s -> %s%s' % (old, new, ' (%s)' % reason if reason else ''))
        return {'sent': False, 'reason': 'the simulator sends no mail'}

    # -- the host agent ------------------------------------------------------------
    def _host_agent_up(self):
        if not self.h.hostagent_ok:
            raise ConnectionFailed('host agent not reachable')

    def connect_host_agent(self):
        self._host_agent_up()
        return 'the virtual host agent of %s' % self.h.name

    def host_agent(self, method, **params):
        self._host_agent_up()
        c, h = self.c, self.h
        if method == 'VM.getStats':
            stats = c.vm_stats(h)
            if stats is None:
                raise ServerError(NO_SUCH_VM, 'Virtual machine does not exist')
            return [stats]
        if method == 'VM.create':
            c.create_vm(h)
            return {'vmId': VMID}
        if method == 'VM.destroy':
            if h.vm_running:
                c.vm_stop(h, 'clean', 'VM powered off')
            elif c.vm_stats(h) is None:
                raise ServerError(NO_SUCH_VM, 'Virtual machine does not exist')
            h.vm_last_exit = None        # the Down record is gone
            return True
        if method == 'VM.shutdown':
            if not h.vm_running:
                raise ServerError(NO_SUCH_VM, 'Virtual machine does not exist')
            decision = h.agent.decision if h.agent is not None else None
            if decision is not None and decision.reason.startswith('a host scores'):
                c.score_moves.append(ScoreMove(c.t, h.name, decision.published.score))
            if h.vm_shutdown_at is None:
                delay = int(params.get('delay') or 0)
                notice = ' (guest notice %d s)' % delay if delay else ''
                if h.guest_hang:
                    c.emit(h.name, 'VM shutdown requested%s (the guest ignores it)' % notice)
                else:
                    h.vm_shutdown_at = c.t + delay + SHUTDOWN_TIME
                    c.emit(h.name, 'VM shutdown requested%s' % notice)
            return True
        raise ServerError(-32601, 'no such method %s' % method)

    def drop_host_agent(self):
        pass

    # -- files ---------------------------------------------------------------------
    def read_ha_conf(self):
        return 'local_maintenance=%s\n' % self.h.local_maint

    def read_vm_conf(self):
        return _VM_CONF

    def write_vm_conf(self, text):
        raise OSError('the simulated vm.conf is never rewritten')

    def read_config_volume(self):
        return _VM_CONF

    # -- time ----------------------------------------------------------------------
    def monotonic(self):
        return self.h.mono(self.c.t)

    def wait(self, seconds):
        raise RuntimeError('the simulator schedules the loops itself')

    def stopping(self):
        return not self.h.agent_running

    def close(self):
        pass
