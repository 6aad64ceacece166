"""Domain monitoring: one thread per monitored storage domain.

At start the monitor asks sanlock to join the domain's lockspace (named by the
domain UUID, on dom_md/ids) with the host id; joining is asynchronous (about
2 x the lockspace I/O timeout). Every interval it reads the domain metadata
with direct I/O, measures the delay, validates the checksum, and asks sanlock
whether the host id is acquired.

update_monitors() starts and stops the monitors a storage backend's state asks
for (domains monitored on request, active domains of connected pools);
Monitoring serves the Host.*MonitoringDomain and Host.getStorageRepoStats verbs.
"""
import logging
import os
import threading
import time

from ...api.schema import error_code
from ...he_storage import sanlock_util
from ..api_base import VdsmError, verb
from . import metadata
from .fileutil import read_direct

log = logging.getLogger(__name__)

ACQUIRE_HOST_ID_FAILURE = error_code('AcquireHostIdFailure')
GENERAL = error_code('general')


class DomainMonitor:
    def __init__(self, sd_uuid, host_id, find_domain, interval=10.0, io_timeout=0):
        self.sd_uuid = sd_uuid
        self.host_id = int(host_id)
        self._find_domain = find_domain  # sd_uuid -> domain directory (raises VdsmError)
        self.interval = interval
        self.io_timeout = io_timeout
        self._stop = threading.Event()
        self._checked = threading.Event()
        self._lock = threading.Lock()
        self.ids_path = None
        self.joined = False
        self.join_error = None
        self.status = {'valid': False, 'delay': '0', 'acquired': False, 'lastCheckTime': None,
                       'code': 0, 'version': -1, 'message': 'not checked yet'}
        self._thread = threading.Thread(target=self._loop, name='monitor-%s' % sd_uuid[:8],
                                        daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(30)

    def wait_checked(self, timeout):
        return self._checked.wait(timeout)

    def _join(self, sd_dir):
        ids = os.path.join(sd_dir, 'dom_md', 'ids')
        self.ids_path = ids
        try:
            sanlock_util.add_lockspace(self.sd_uuid, self.host_id, ids,
                                       iotimeout=self.io_timeout, wait=False)
            self.joined = True
            self.join_error = None
        except sanlock_util.SanlockException as e:
            self.join_error = 'cannot join lockspace %s with host id %d: %s' % (
                self.sd_uuid, self.host_id, sanlock_util.describe(e))
            log.warning('%s', self.join_error)

    def check(self):
        status = {'valid': False, 'acquired': False, 'code': 0, 'message': 'OK'}
        delay = 0.0
        version = -1
        try:
            sd_dir = self._find_domain(self.sd_uuid)
            data, delay = read_direct(os.path.join(sd_dir, 'dom_md', 'metadata'))
            fields = metadata.parse_domain(data, self.sd_uuid)
            version = int(fields.get('VERSION', -1))
            status['valid'] = True
            if not self.joined:
                self._join(sd_dir)
            if self.joined:
                acquired = sanlock_util.inq_lockspace(self.sd_uuid, self.host_id,
                                                      self.ids_path)
                status['acquired'] = bool(acquired)
                if acquired is False:
                    # Not held and not in transition: the join failed or was lost; retry.
                    self._join(sd_dir)
            if self.join_error:
                status['code'] = ACQUIRE_HOST_ID_FAILURE
                status['message'] = self.join_error
        except VdsmError as e:
            status.update(code=e.code, message=e.message)
        except OSError as e:
            status.update(code=GENERAL, message='cannot read metadata of domain %s: %s'
                          % (self.sd_uuid, e))
        except sanlock_util.SanlockException as e:
            status.update(valid=True, code=ACQUIRE_HOST_ID_FAILURE,
                          message=sanlock_util.describe(e))
        status['delay'] = '%.6f' % delay
        status['version'] = version
        status['lastCheckTime'] = time.monotonic()
        with self._lock:
            if status['code'] and status['code'] != self.status.get('code'):
                log.warning('domain %s: %s', self.sd_uuid, status['message'])
            self.status = status
        self._checked.set()

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # the monitor must keep running
                log.exception('monitor of domain %s failed a check', self.sd_uuid)
            # Check often until the host id is acquired, then at the interval.
            wait = self.interval if self.status.get('acquired') else min(self.interval, 1.0)
            self._stop.wait(wait)

    def leave(self):
        """Leave the lockspace (unless a process still holds a lease in it)."""
        if not self.ids_path:
            return True
        # A join still in progress would complete after the removal and leave the host
        # id's lease on the storage: let it finish first.
        deadline = time.monotonic() + 4 * (self.io_timeout or sanlock_util.DEFAULT_IO_TIMEOUT)
        while time.monotonic() < deadline:
            try:
                if sanlock_util.inq_lockspace(self.sd_uuid, self.host_id,
                                              self.ids_path) is not None:
                    break
            except sanlock_util.SanlockException:
                break
            time.sleep(0.2)
        try:
            left = sanlock_util.rem_lockspace(self.sd_uuid, self.host_id, self.ids_path)
        except sanlock_util.SanlockException as e:
            log.warning('cannot leave lockspace %s: %s', self.sd_uuid, sanlock_util.describe(e))
            return False
        if not left:
            log.warning('lockspace %s kept: a process (a VM) still holds a lease in it',
                        self.sd_uuid)
        return left

    def report(self):
        with self._lock:
            s = dict(self.status)
        last = s.pop('lastCheckTime')
        s['lastCheck'] = '%.1f' % (time.monotonic() - last) if last is not None else '-1.0'
        s['actual'] = last is not None
        return s


def wanted_monitors(sc):
    """{sdUUID: hostID}: domains monitored on request plus active domains of connected pools."""
    wanted = dict(sc.monitored)
    for sp, pool in sc.pools.items():
        try:
            fields = sc.read_domain_md(pool['masterSdUUID'])
            domains = metadata.pool_domains(fields)
        except VdsmError:
            domains = {pool['masterSdUUID']: 'Active'}
        for sd, status in domains.items():
            if status == 'Active' or sd == pool['masterSdUUID']:
                wanted.setdefault(sd, pool['hostID'])
    return wanted


def update_monitors(sc):
    """Start and stop monitors (joining, leaving lockspaces) as sc's state asks; sc.lock held."""
    wanted = wanted_monitors(sc)
    for sd in list(sc.monitors):
        if sd not in wanted or sc.monitors[sd].host_id != int(wanted[sd]):
            m = sc.monitors.pop(sd)
            m.stop()
            m.leave()
    for sd, host_id in wanted.items():
        if sd not in sc.monitors:
            m = DomainMonitor(sd, host_id, sc.find_domain, interval=sc.monitor_interval,
                              io_timeout=sc.io_timeout)
            sc.monitors[sd] = m
            m.start()


class Monitoring:
    """Host.startMonitoringDomain, Host.stopMonitoringDomain, Host.getStorageRepoStats."""

    def __init__(self, sc):
        self.sc = sc

    def restore(self, state):
        """Monitor again what the saved state monitored; sc.lock held."""
        self.sc.monitored = dict(state.get('monitored', {}))
        update_monitors(self.sc)

    def host_stats(self):
        with self.sc.lock:
            monitors = dict(self.sc.monitors)
        out = {}
        for sd, m in monitors.items():
            r = m.report()
            out[sd] = {k: r[k] for k in ('acquired', 'delay', 'valid', 'lastCheck', 'code')}
        return {'storageDomains': out}

    def close(self):
        with self.sc.lock:
            monitors = list(self.sc.monitors.values())
        for m in monitors:
            m.stop()

    @verb('Host.startMonitoringDomain')
    def startMonitoringDomain(self, sdUUID, hostID):
        host_id = hostID
        if not 1 <= host_id <= 2000:
            raise VdsmError('InvalidParameterException',
                            'hostID %s is out of range (1..2000)' % hostID)
        with self.sc.lock:
            self.sc.find_domain(sdUUID)
            current = self.sc.monitors.get(sdUUID)
            if current and current.host_id != host_id:
                raise VdsmError('general', 'domain %s is already monitored with host id %d'
                                % (sdUUID, current.host_id))
            self.sc.monitored[sdUUID] = host_id
            update_monitors(self.sc)
            self.sc.save()
        return True

    @verb('Host.stopMonitoringDomain')
    def stopMonitoringDomain(self, sdUUID):
        with self.sc.lock:
            self.sc.monitored.pop(sdUUID, None)
            update_monitors(self.sc)
            self.sc.save()
        return True

    @verb('Host.getStorageRepoStats')
    def getStorageRepoStats(self, domains=None):
        with self.sc.lock:
            monitors = dict(self.sc.monitors)
        out = {}
        for sd, m in monitors.items():
            if domains and sd not in domains:
                continue
            r = m.report()
            out[sd] = {k: r[k] for k in ('valid', 'delay', 'acquired', 'lastCheck', 'code',
                                         'version', 'actual')}
            if r['code']:
                out[sd]['message'] = r['message']
        return out
