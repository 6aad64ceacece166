"""The agent loop: core.decide() wired to the broker and the host agent API.

The loop sees its host only through an AgentWorld (ha/agent_world.py): the
daemon (ha/agent.py) passes the real one, the simulator (ha/simulator/) one
simulated world per virtual host, so both run this very class.

Each loop (ha/__init__.py "One agent loop"):
- asks the broker for its status (host id held in the lockspace, live ids),
  the monitor values, the metadata area and the VM lease owner;
- reads local maintenance from ha.conf, refreshes the VM definition from the
  configuration volume;
- asks the host agent for the VM's record (reachability, Down records, a
  fresh view right after an action of this agent);
- decides, and carries out the actions in order; the VM action's outcome is
  given back to the core in the next loop.

Nothing in a loop raises: a broker or host agent that does not answer gives
"no value" to the core (which then does nothing that needs it), and the loop
runs again.
"""
import logging
import time
from dataclasses import replace

from ..api.errors import ApiError, CallTimeout, ConnectionFailed, ServerError
from . import core
from .agent_vm import NO_SUCH_VM, VmDefinition, engine_status_from_stats, unreachable_status
from ..he_storage.heconf import parse_kv
from .agent_world import HostWorld
from .broker_client import BrokerError, BrokerUnavailable
from .score import Monitors

log = logging.getLogger('ovirt_hosted_engine_setup.ha.agent')

DEGRADED_INTERVAL = 30.0
MAX_BACKOFF = 30.0

# timeouts of the timed states, by CoreConfig attribute
_STATE_TIMEOUTS = {
    core.STARTING: 'starting_timeout',
    core.UP_BAD: 'bad_health_timeout',
    core.STOP: 'stop_timeout',
    core.MAYBE_AWAY: 'maybe_away_timeout',
    core.UNEXPECTEDLY_DOWN: 'unexpectedly_down_time',
}


def monitors_from(raw):
    """score.Monitors from the broker's ``monitors`` result; None when it gave no value."""
    if not isinstance(raw, dict):
        return None
    names = ('network', 'bridge_up', 'mem_free_mb', 'cpu_load', 'storage_valid', 'storage_delay')
    if all(raw.get(n) is None for n in names):
        return None
    valid, delay = raw.get('storage_valid'), raw.get('storage_delay')
    if valid is None or delay is None:
        # not judged yet: no start and no move until the storage monitor has a value
        valid, delay = False, 0.0
    try:
        return Monitors(
            network=None if raw.get('network') is None else float(raw['network']),
            bridge_up=None if raw.get('bridge_up') is None else bool(raw['bridge_up']),
            mem_free_mb=None if raw.get('mem_free_mb') is None else int(raw['mem_free_mb']),
            cpu_load=None if raw.get('cpu_load') is None else float(raw['cpu_load']),
            storage_valid=bool(valid), storage_delay=float(delay))
    except (TypeError, ValueError):
        log.warning('the broker sent monitor values that are not numbers: %r', raw)
        return None


def state_timeout_text(state, cfg):
    """The ``timeout`` published in the extra metadata: when the timed state ends
    (the agent's monotonic clock, shown as a date like oVirt does), else ''."""
    attr = _STATE_TIMEOUTS.get(state.name)
    if attr is None or state.entered is None:
        return ''
    return time.asctime(time.gmtime(state.entered + getattr(cfg, attr)))


class Agent:
    """One ovirt-ha-agent: ``run()`` until asked to stop, then publish AgentStopped.

    ``world`` is the AgentWorld the loop observes and acts through. Without it,
    the real HostWorld is built from ``broker``, ``host_agent_factory``,
    ``vm_conf_path``, ``ha_conf_path``, ``config_volume``, ``stop_event`` and
    ``clock`` (see ha/agent_world.py)."""

    def __init__(self, *, conf, core_config, world=None, interval=10.0, **host):
        if world is None:
            world = HostWorld(**host)
        elif host:
            raise TypeError('Agent takes a world or the parts of a HostWorld, not both (%s)'
                            % ', '.join(sorted(host)))
        self.world = world
        self.conf = conf
        self.vmid = conf['vmid']
        self.host_id = int(conf['host_id'])
        self.cfg = core_config
        self.vm_conf_path = world.vm_conf_path
        self.interval = interval
        self.state = core.AgentState()
        self.memory = core.AgentMemory()
        self.decision = None     # the decision being carried out (or the last one)
        self.last_result = None
        self._stay_reason = ''    # the last reason logged for staying in a state
        self.last_action_at = None
        self.local_vm = unreachable_status()
        self.vm_def = None
        self.vm_conf_refresh_time = 0
        self.max_hosts = None
        self._said = {}          # topic -> last message logged (log a condition once)
        # waiting for the services: (which, attempt, next delay); None once connected
        self._waiting = ('broker', 0, 1.0)
        self._load_local_vm_conf()

    # -- logging helpers -------------------------------------------------------
    def _once(self, topic, level, message, *args):
        text = message % args if args else message
        if self._said.get(topic) != text:
            self._said[topic] = text
            log.log(level, '%s', text)

    def _clear(self, topic, message=None):
        if self._said.pop(topic, None) is not None and message:
            log.info('%s', message)

    # -- start -------------------------------------------------------------------
    def _sleep(self, seconds):
        """Wait; True when asked to stop."""
        return self.world.wait(seconds)

    def connect_step(self):
        """One attempt at reaching the broker, then the host agent, with back-off and a
        line per attempt. Never gives up (a slow broker is not a reason to exit and be
        restarted). Returns None once both answer, else the seconds to wait."""
        while self._waiting is not None:
            which, attempt, delay = self._waiting
            attempt += 1
            try:
                if which == 'broker':
                    log.info('connected to the broker at %s', self.world.connect_broker())
                    self._waiting = ('host agent', 0, 1.0)
                else:
                    log.info('connected to the host agent at %s',
                             self.world.connect_host_agent())
                    self._waiting = None
                continue
            except (BrokerUnavailable, BrokerError, ApiError) as e:
                log.warning('waiting for the %s (attempt %d, next in %.0f s): %s',
                            which, attempt, delay, e)
            self._waiting = (which, attempt, min(delay * 2, MAX_BACKOFF))
            return delay
        return None

    def wait_for_services(self):
        """Wait for the broker, then the host agent; False when asked to stop meanwhile."""
        while not self.world.stopping():
            delay = self.connect_step()
            if delay is None:
                return True
            if self._sleep(delay):
                return False
        return False

    def _drop_host_agent(self):
        self.world.drop_host_agent()

    # -- the VM definition ---------------------------------------------------------
    def _load_local_vm_conf(self):
        try:
            text = self.world.read_vm_conf()
        except OSError as e:
            self._once('vmconf', logging.WARNING, 'cannot read the VM definition %s: %s',
                       self.vm_conf_path, e.strerror or e)
            return
        if text is not None:
            self._use_vm_conf(text)

    def _use_vm_conf(self, text):
        d = VmDefinition(text, self.vm_conf_path)
        self.vm_def = d
        if d.mem_mb:
            self.cfg = replace(self.cfg, vm_mem_mb=d.mem_mb)
        if d.problem:
            self._once('vmdef', logging.WARNING, 'the VM definition cannot start the VM: %s',
                       d.problem)
        else:
            self._clear('vmdef')

    def refresh_vm_conf(self, now):
        """Copy vm.conf from the configuration volume when it changed; keep the last
        copy when the volume cannot be read."""
        try:
            text = self.world.read_config_volume()
        except Exception as e:     # unreadable, torn, missing member: keep the last copy
            self._once('confvol', logging.WARNING,
                       'cannot read the VM definition from the configuration volume (%s); '
                       'using the last copy %s', e, self.vm_conf_path)
            return
        if text is None:     # the configuration names no configuration volume
            return
        self._clear('confvol', 'the configuration volume is readable again')
        self.vm_conf_refresh_time = int(now)
        if self.vm_def is not None and self.vm_def.text == text:
            return
        try:
            self.world.write_vm_conf(text)
        except OSError as e:
            self._once('vmconfw', logging.WARNING, 'cannot write the VM definition %s: %s',
                       self.vm_conf_path, e.strerror or e)
        else:
            self._clear('vmconfw')
            log.info('VM definition refreshed from the configuration volume into %s',
                     self.vm_conf_path)
        self._use_vm_conf(text)

    # -- observations ----------------------------------------------------------------
    def _broker(self, method, **params):
        """Call the broker; (result, None) or (None, error text)."""
        try:
            return self.world.broker(method, **params), None
        except (BrokerUnavailable, BrokerError) as e:
            return None, str(e)

    def local_maintenance(self):
        try:
            text = self.world.read_ha_conf()
        except OSError as e:
            self._once('haconf', logging.WARNING, 'cannot read %s: %s', e.filename or 'ha.conf',
                       e.strerror or e)
            return False
        if text is None:
            return False
        values = parse_kv(text)
        return values.get('local_maintenance', 'False').strip().lower() == 'true'

    def vm_record(self):
        """(reachable, stats or None when the host agent has no such VM)."""
        try:
            stats = self.world.host_agent('VM.getStats', vmID=self.vmid)
        except ServerError as e:
            if e.code == NO_SUCH_VM:
                self._clear('hostagent', 'the host agent answers again')
                return True, None
            self._once('hostagent', logging.WARNING, 'the host agent failed VM.getStats: %s', e)
            return True, None
        except (ConnectionFailed, CallTimeout) as e:
            self._drop_host_agent()
            self._once('hostagent', logging.WARNING, 'the host agent is not reachable: %s', e)
            return False, None
        self._clear('hostagent', 'the host agent answers again')
        return True, (stats[0] if isinstance(stats, list) and stats else None)

    def choose_local_vm(self, now, engine_health, health_age, reachable, stats):
        """The local VM's engine status: the broker's engine health, unless it was
        taken before this agent's last VM action (then the host agent's own view)."""
        if not reachable:
            return unreachable_status()
        fresh = (self.last_action_at is None or health_age is None
                 or health_age <= now - self.last_action_at)
        if isinstance(engine_health, dict) and engine_health.get('vm') and fresh:
            return dict(engine_health)
        if isinstance(engine_health, dict) and engine_health.get('vm'):
            return engine_status_from_stats(stats)
        return {'vm': 'unknown', 'health': 'unknown', 'detail': 'unknown',
                'reason': 'no engine health from the broker'}

    def observe(self, now):
        status, err = self._broker('status')
        if err:
            self._once('broker', logging.WARNING, 'the broker does not answer: %s', err)
        else:
            self._clear('broker', 'the broker answers again')
        lock = (status or {}).get('lockspace') or {}
        held = bool(lock.get('held'))
        live = lock.get('live_ids')
        sanlock_live = frozenset(int(i) for i in live) if isinstance(live, list) else None
        # sanlock cannot be asked or refuses the host id; not while the broker has yet to
        # connect the storage (a starting broker: that is no reason to back off)
        storage_connected = ((status or {}).get('storage') or {}).get('connected', True)
        sanlock_down = (status is not None and live is None and bool(lock.get('error'))
                        and bool(storage_connected))
        if status is not None and not held:
            self._once('lockspace', logging.WARNING,
                       'host id %d is not held in the hosted-engine lockspace: %s',
                       self.host_id, lock.get('error') or 'not joined yet')
        elif held:
            self._clear('lockspace', 'host id %d held in the hosted-engine lockspace'
                        % self.host_id)
        if status and status.get('max_hosts'):
            self.max_hosts = int(status['max_hosts'])

        raw_monitors = None
        if status is not None:
            raw_monitors, err = self._broker('monitors')
            if err:
                log.warning('no monitor values from the broker: %s', err)
        monitors = monitors_from(raw_monitors)
        engine_health = (raw_monitors or {}).get('engine_health')
        health_age = ((raw_monitors or {}).get('age') or {}).get('engine_health')

        view = None
        if status is not None:
            view = self.read_area()
        owner = None
        if status is not None:
            owner, err = self._broker('vm_lease_owner')
            if err:
                owner = None
                log.debug('VM lease owner unknown: %s', err)
        reachable, stats = self.vm_record()
        local_vm = self.choose_local_vm(now, engine_health, health_age, reachable, stats)
        self.local_vm = local_vm
        peers, gm, self.memory = core.observe_area(self.memory, view, self.host_id, now,
                                                   sanlock_live)
        obs = core.Observations(
            now=now, local_vm=local_vm, monitors=monitors, peers=peers, global_maintenance=gm,
            local_maintenance=self.local_maintenance(), lockspace_held=held,
            result=self.last_result, host_id=self.host_id, sanlock_live=sanlock_live,
            vm_lease_owner=int(owner) if isinstance(owner, int) else None)
        degraded = not reachable or sanlock_down
        return obs, stats, degraded

    def read_area(self):
        try:
            view = self.world.read_area(self.max_hosts)
        except (BrokerUnavailable, BrokerError) as e:
            self._once('area', logging.WARNING, 'cannot read the metadata area: %s', e)
            return None
        except (KeyError, TypeError, ValueError) as e:
            self._once('area', logging.WARNING, 'the broker sent a malformed metadata area: %s', e)
            return None
        self._clear('area', 'the metadata area is readable again')
        skipped = '; '.join(str(s) for s in view.skipped)
        if skipped:
            self._once('skipped', logging.WARNING, '%s', skipped)
        else:
            self._clear('skipped')
        return view

    # -- actions ----------------------------------------------------------------------
    def _vm_call(self, action, method, **params):
        """Run one host agent verb for a VM action; its core.ActionResult."""
        try:
            self.world.host_agent(method, **params)
        except ServerError as e:
            log.warning('%s of VM %s failed: %s', action, self.vmid, e)
            return core.ActionResult(action, False, e.code, e.message)
        except ApiError as e:
            self._drop_host_agent()
            log.warning('%s of VM %s failed: %s', action, self.vmid, e)
            return core.ActionResult(action, False, 0, str(e))
        return core.ActionResult(action, True)

    def start_vm(self, action, stats):
        d = self.vm_def
        if d is None or d.problem:
            why = d.problem if d else 'no VM definition at %s yet' % self.vm_conf_path
            log.error('cannot start the engine VM: %s', why)
            return core.ActionResult('start', False, 0, why)
        if stats is not None and stats.get('status') == 'Down':
            log.info('removing the Down record of VM %s before starting it', self.vmid)
            res = self._vm_call('start', 'VM.destroy', vmID=self.vmid)
            if not res.ok and res.code != NO_SUCH_VM:
                return res
        params = {'vmId': self.vmid, 'xml': d.xml}
        if action.paused:
            params['launchPaused'] = 'true'
        log.info('starting the engine VM %s', self.vmid)
        return self._vm_call('start', 'VM.create', vmID=self.vmid, vmParams=params)

    def shutdown_vm(self, action):
        log.info('shutting down the engine VM %s (guest delay %d s)', self.vmid, action.delay)
        return self._vm_call('shutdown', 'VM.shutdown', vmID=self.vmid, delay=int(action.delay),
                             message=action.message)

    def power_off_vm(self):
        log.info('powering off the engine VM %s', self.vmid)
        res = self._vm_call('poweroff', 'VM.destroy', vmID=self.vmid)
        if not res.ok and res.code == NO_SUCH_VM:
            return core.ActionResult('poweroff', True)
        return res

    def notify(self, action):
        res, err = self._broker('notify', type='state_transition', detail=action.detail)
        if err:
            log.warning('notification %s not sent: %s', action.detail, err)
        elif isinstance(res, dict) and not res.get('sent'):
            log.debug('notification %s not sent: %s', action.detail, res.get('reason'))

    def publish(self, published, state):
        res, err = self._broker(
            'put_host', score=int(published.score), engine_status=published.engine_status,
            state=published.state, local_maintenance=bool(published.local_maintenance),
            stopped=bool(published.stopped), timeout=state_timeout_text(state, self.cfg),
            vm_conf_refresh_time=int(self.vm_conf_refresh_time))
        if err:
            self._once('publish', logging.WARNING, 'cannot publish the metadata: %s', err)
            return False
        self._clear('publish', 'metadata published again')
        return True

    def execute(self, decision, stats, now):
        result = None
        for action in decision.actions:
            if isinstance(action, core.StartVM):
                result = self.start_vm(action, stats)
            elif isinstance(action, core.ShutdownVM):
                result = self.shutdown_vm(action)
            elif isinstance(action, core.PowerOffVM):
                result = self.power_off_vm()
            elif isinstance(action, core.Notify):
                self.notify(action)
            elif isinstance(action, core.PublishMetadata):
                self.publish(action.published, decision.next_state)
            else:
                log.error('unknown action %r', action)
            if isinstance(action, (core.StartVM, core.ShutdownVM, core.PowerOffVM)):
                self.last_action_at = self.world.monotonic()
        return result

    # -- the loop ---------------------------------------------------------------------
    def loop_once(self):
        """One loop; returns the seconds to wait before the next."""
        now = self.world.monotonic()
        self.refresh_vm_conf(now)
        obs, stats, degraded = self.observe(now)
        decision = core.decide(self.state, obs, self.cfg)
        old = self.state.name
        new = decision.next_state.name
        if new != old:
            log.info('state %s -> %s%s (score %d)', old, new,
                     (': %s' % decision.reason) if decision.reason else '',
                     decision.published.score)
        elif decision.published.score != self.state.score:
            log.info('score %d -> %d in %s', self.state.score, decision.published.score, new)
        if new == old and decision.reason and decision.reason != self._stay_reason:
            log.info('%s: %s', new, decision.reason)     # why it stays, once per reason
        self._stay_reason = decision.reason if new == old else ''
        self.decision = decision
        self.last_result = self.execute(decision, stats, now)
        self.state = decision.next_state
        if degraded:
            return DEGRADED_INTERVAL
        if (old, new) in core.FOLLOW_AT_ONCE:
            return min(core.FOLLOW_INTERVAL, self.interval)
        if decision.watch:
            return min(core.WATCH_INTERVAL, self.interval)
        return self.interval

    def step(self):
        """One turn of the daemon: reach the services (back-off) or run one loop.
        Returns the seconds to wait before the next turn."""
        delay = self.connect_step()
        if delay is not None:
            return delay
        return self.loop_once()

    def run(self):
        """Loop until asked to stop; then publish AgentStopped. Returns the exit code."""
        if not self.wait_for_services():
            self.publish_stopped()
            return 0
        while not self.world.stopping():
            try:
                wait = self.step()
            except Exception:  # one broken loop must not end the agent
                log.exception('agent loop failed; trying again in %.0f s', self.interval)
                wait = self.interval
            if self._sleep(wait):
                break
        self.publish_stopped()
        return 0

    def publish_stopped(self):
        published = core.agent_stopped(self.state, self.local_vm)
        stopped_state = core.AgentState(name=core.AGENT_STOPPED)
        if self.publish(published, stopped_state):
            log.info('published %s (score 0, stopped)', core.AGENT_STOPPED)
        self.close()

    def close(self):
        self.world.close()
