"""The broker: storage connection, metadata store, lockspace, monitors and the
methods of the socket API (docs/ha-services.md), wired together.

Threads: one per monitor, one connecting the storage (retrying with back-off,
never giving up on transient failures), one joining the lockspace, one
reading the metadata area every interval to keep the liveness map, and the
socket server's. ``ping``, ``status`` and ``monitors`` answer from memory, so a
slow storage read never blocks them.
"""
import base64
import logging
import socket
import threading
import time

from ... import local_ha_state
from ...he_storage import heconf
from .. import liveness, metadata
from .. import notifications
from . import lockspace as lockspace_mod
from . import monitors as mon
from . import storage
from .server import ApiError
from .store import MetadataStore, StoreError

log = logging.getLogger(__name__)

REQUIRED = ('host_id', 'sdUUID', 'vmid')
BACKOFF_MAX = 60.0
# unreadable area reads in a row before the images are prepared again
REPREPARE_AFTER = 3


class Broker:
    def __init__(self, conf, broker_conf_path, interval=10.0, agent=None, hostname=None,
                 storage_connect=None, template_path=None, local_state_path=None):
        self.conf = conf
        # where this host's published score and state go for the host agent's haStats
        # (local_ha_state; None: not recorded)
        self.local_state_path = local_state_path
        self.host_id, self.sd_uuid, self.vmid = heconf.required(conf, *REQUIRED)
        self.host_id = int(self.host_id)
        self.broker_conf_path = broker_conf_path
        self.template_path = template_path
        self.interval = float(interval)
        self.hostname = hostname or socket.gethostname()
        self.io_timeout = heconf.io_timeout(conf)
        self.agent = agent or mon.HostAgent()
        self._storage_connect = storage_connect or storage.connect
        self.values = mon.ValueStore()
        self.monitors = []
        self.store = None
        self.lockspace = None
        self.paths = None
        self.storage_error = 'not connected yet'
        self._stop = threading.Event()
        self._threads = []
        self._area_lock = threading.Lock()
        self._seen = {}
        self._last_good = {}
        self._liveness = {}
        self._sanlock_live = None
        self._warned_skips = set()
        self._engine_monitor = None
        self._notify_problem = None

    # -- start / stop ----------------------------------------------------
    def start(self):
        self._start_monitors()
        self._spawn('storage-connect', self._connect_loop)
        return self

    def _spawn(self, name, target):
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _start_monitors(self):
        c = self.conf
        try:
            net = mon.network_check(c)
        except ValueError as e:
            log.error('network monitor: %s', e)
            net = None
        if net is not None:
            self.monitors.append(mon.Monitor('network', net, self.interval, self.values))
        self.monitors.append(mon.Monitor('bridge', mon.bridge_check(
            self.agent, c.get('bridge') or 'ovirtmgmt'), self.interval, self.values))
        self.monitors.append(mon.Monitor('mem-free', mon.memory_check(self.agent),
                                         self.interval, self.values))
        self.monitors.append(mon.Monitor('cpu-load', mon.CpuLoad(self.agent, self.vmid),
                                         self.interval, self.values))
        self.monitors.append(mon.Monitor('storage-domain', mon.storage_check(
            self.agent, self.sd_uuid), self.interval, self.values))
        self._engine_monitor = mon.Monitor('engine-health', mon.EngineHealth(
            self.agent, self.vmid, c.get('fqdn') or ''), self.interval, self.values)
        self.monitors.append(self._engine_monitor)
        self.agent.add_listener(self._on_event)
        for m in self.monitors:
            m.start()

    def _on_event(self, method, params):
        if method == '|virt|VM_status|%s' % self.vmid and self._engine_monitor is not None:
            self._engine_monitor.wake()

    def _connect_loop(self):
        delay = 1.0
        last = None
        while not self._stop.is_set():
            try:
                paths = self._storage_connect(self.agent, self.conf)
                self.store = MetadataStore(paths.metadata)
                self.paths = paths
            except Exception as e:
                self.storage_error = ' '.join(str(e).split()) or type(e).__name__
                if self.storage_error != last:
                    log.warning('cannot connect the hosted-engine storage yet: %s; retrying',
                                self.storage_error)
                    log.debug('storage connection failure', exc_info=True)
                    last = self.storage_error
                self._stop.wait(delay)
                delay = min(BACKOFF_MAX, delay * 2)
                continue
            self.storage_error = None
            log.info('hosted-engine storage connected: metadata %s (%d host slots), lockspace %s',
                     paths.metadata, self.store.max_hosts, paths.lockspace)
            if self.host_id > self.store.max_hosts:
                log.error('host_id %d is beyond the %d host slots of the metadata volume; this '
                          'host cannot publish its state: give it a host id from 1 to %d',
                          self.host_id, self.store.max_hosts, self.store.max_hosts)
            self.lockspace = lockspace_mod.Lockspace(paths.lockspace, self.host_id,
                                                     self.io_timeout).start()
            if self._stop.is_set():
                # stop() ran meanwhile and may not have seen the lockspace
                self.lockspace.stop(leave=True)
                return
            self._spawn('area-reader', self._area_loop)
            return

    def _area_loop(self):
        failures = 0
        while not self._stop.is_set():
            try:
                self._read_area()
                failures = 0
            except ApiError as e:
                failures += 1
                log.debug('area reader: %s', e.message)
                if failures >= REPREPARE_AFTER:
                    failures = 0
                    self._reprepare(e.message)
            except Exception:
                log.exception('area reader failed')
            self._stop.wait(self.interval)

    def _reprepare(self, problem):
        """The metadata volume stays unreadable (its image was torn down, the host
        agent restarted...): connect the storage and prepare the images again."""
        log.warning('the metadata volume is not readable (%s); preparing the hosted-engine '
                    'images again', problem)
        try:
            paths = self._storage_connect(self.agent, self.conf)
            store = MetadataStore(paths.metadata)
        except Exception as e:
            log.warning('preparing the hosted-engine images again failed: %s; retrying',
                        ' '.join(str(e).split()))
            return
        self.paths, self.store = paths, store
        log.info('hosted-engine images prepared again: metadata %s', paths.metadata)

    def stop(self, grace=3.0):
        """Stop the threads, leave the lockspace (when no lease uses it), close the client.

        Threads still blocked in a host agent call after ``grace`` seconds are
        left to end with the process (they hold nothing on shared storage)."""
        self._stop.set()
        for m in self.monitors:
            m.stop()
        if self.lockspace is not None:
            self.lockspace.stop(leave=True)
        deadline = time.monotonic() + grace
        for t in [m for m in self.monitors] + self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        closer = threading.Thread(target=self.agent.close, name='close-host-agent', daemon=True)
        closer.start()
        closer.join(max(0.5, deadline - time.monotonic()))

    # -- helpers ---------------------------------------------------------
    def _need_store(self):
        if self.store is None:
            raise ApiError('storage-not-connected', 'the hosted-engine storage is not connected '
                           '(%s); the broker keeps retrying' % self.storage_error)
        return self.store

    def _need_lockspace(self):
        self._need_store()
        if self.lockspace is None or not self.lockspace.held():
            raise ApiError('lockspace-not-held', 'host id %d is not held in the hosted-engine '
                           'lockspace yet%s; retry later' % (
                               self.host_id, ' (%s)' % self.lockspace.error
                               if self.lockspace is not None and self.lockspace.error else ''))

    def _read_area(self):
        store = self._need_store()
        try:
            data, delay = store.read_area()
        except StoreError as e:
            raise ApiError('storage-error', str(e))
        live = self.lockspace.live_ids() if self.lockspace is not None else None
        view = metadata.parse_area(data, store.max_hosts)
        now = time.monotonic()
        with self._area_lock:
            for s in view.skipped:
                key = (s.slot, s.reason)
                if key not in self._warned_skips:
                    self._warned_skips.add(key)
                    log.warning('%s', s)
            self._warned_skips &= {(s.slot, s.reason) for s in view.skipped}
            records = liveness.merge_last_good(self._last_good, view)
            self._last_good = records
            self._seen = liveness.observe(self._seen, records, now)
            live_set = set(live) if live is not None else None
            self._liveness = {hid: liveness.judge(self._seen, hid, now, live_set)
                              for hid in records}
            self._sanlock_live = live
        return data, delay, view

    # -- the API ---------------------------------------------------------
    def methods(self):
        return {'ping': self.ping, 'status': self.status, 'monitors': self.monitors_values,
                'read_area': self.read_area, 'put_host': self.put_host,
                'set_global_maintenance': self.set_global_maintenance,
                'clean_slot': self.clean_slot, 'vm_lease_owner': self.vm_lease_owner,
                'notify': self.notify}

    def ping(self):
        return True

    def status(self):
        ls = self.lockspace
        # sanlock answers these from its own memory: no storage I/O here
        live = ls.live_ids() if ls is not None else None
        held = live is not None or (ls.held() if ls is not None else False)
        return {
            'host_id': self.host_id,
            'hostname': self.hostname,
            'max_hosts': self.store.max_hosts if self.store is not None else None,
            'storage': {'connected': self.store is not None, 'error': self.storage_error},
            'lockspace': {'held': held,
                          'live_ids': live,
                          'error': ls.error if ls is not None else 'storage not connected'},
        }

    def monitors_values(self):
        return self.values.snapshot()

    def read_area(self):
        data, delay, _view = self._read_area()
        with self._area_lock:
            verdicts = {str(k): v for k, v in sorted(self._liveness.items())}
            live = self._sanlock_live
        return {'area': base64.b64encode(data).decode('ascii'),
                'max_hosts': self.store.max_hosts, 'read_delay': round(delay, 6),
                'liveness': verdicts, 'sanlock_live': live}

    def put_host(self, score, engine_status, state, local_maintenance=False, stopped=False,
                 timeout='', vm_conf_refresh_time=0):
        self._need_lockspace()
        if not isinstance(engine_status, dict):
            raise ValueError('engine_status must be an object')
        refresh = int(vm_conf_refresh_time or 0)
        data = metadata.serialize_host(
            self.host_id, int(time.monotonic()), int(score), engine_status, self.hostname,
            local_maintenance=bool(local_maintenance), stopped=bool(stopped),
            local_conf_timestamp=refresh, state=str(state), vm_conf_refresh_time=refresh,
            timeout=str(timeout or ''))
        self._write(self.host_id, data)
        if self.local_state_path:
            try:
                local_ha_state.write(score, state, self.local_state_path)
            except OSError as e:
                log.warning('cannot record the local HA state in %s: %s',
                            self.local_state_path, e)
        return True

    def _write(self, slot, data):
        try:
            self.store.write_slot(slot, data)
        except StoreError as e:
            raise ApiError('storage-error', str(e))

    def set_global_maintenance(self, enabled):
        self._need_lockspace()
        self._write(0, metadata.serialize_global(bool(enabled)))
        log.info('global maintenance %s', 'set' if enabled else 'cleared')
        return True

    def clean_slot(self, host_id, force=False):
        store = self._need_store()
        host_id = int(host_id)
        if not 1 <= host_id <= store.max_hosts:
            raise ApiError('bad-host-id', 'host id %d is outside the metadata area (1..%d)'
                           % (host_id, store.max_hosts))
        self._need_lockspace()
        self._read_area()
        with self._area_lock:
            verdict = self._liveness.get(host_id)
        if verdict == liveness.LIVE and not force:
            raise ApiError('host-live', 'host %d is live (its metadata changes): stop its agent '
                           'first, or force the cleanup' % host_id)
        self._write(host_id, bytes(metadata.SLOT_SIZE))
        with self._area_lock:
            self._last_good.pop(host_id, None)
            self._seen.pop(host_id, None)
            self._liveness.pop(host_id, None)
        log.info('metadata slot of host %d cleaned%s', host_id, ' (forced)' if force else '')
        return True

    def vm_lease_owner(self):
        self._need_store()
        lease = self.paths.vm_lease
        if not lease:
            raise ApiError('no-vm-lease', 'the VM disk lease path is not known; check '
                           'vm_disk_id and vm_disk_vol_id in hosted-engine.conf')
        try:
            return lockspace_mod.read_lease_owner(self.sd_uuid, self.conf.get('vm_disk_vol_id'),
                                                  lease)
        except Exception as e:
            raise ApiError('sanlock-error', 'cannot read the VM lease %s: %s' % (
                lease, ' '.join(str(e).split())))

    def notify(self, type, detail):  # noqa: A002 (the API's parameter name)
        try:
            notifier = notifications.Notifier.from_file(self.broker_conf_path, self.template_path)
        except notifications.ConfigError as e:
            reason = str(e)
            if reason != self._notify_problem:
                log.warning('notifications are not sent: %s', reason)
                self._notify_problem = reason
            log.debug('notification %s %s not sent: %s', type, detail, reason)
            return {'sent': False, 'reason': reason}
        self._notify_problem = None
        sent, reason = notifier.notify(type, detail, self.hostname)
        return {'sent': bool(sent), 'reason': reason}
