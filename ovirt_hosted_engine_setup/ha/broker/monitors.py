"""The broker's local monitors.

Each monitor runs in its own thread every ``interval`` seconds and stores its
values with the monotonic time they were taken. A monitor that raises keeps
its last values and logs once per distinct error. The values (names of the
``monitors`` method of the broker API):

- network: fraction (0..1) of successful network tests (``network_test`` of
  hosted-engine.conf: ping the gateway, a DNS lookup, a TCP connect, or none),
  5 tries with a 5 s timeout each;
- bridge_up: the management bridge's state in Host.getStats;
- mem_free_mb: Host.getStats memFree;
- cpu_load: the host's CPU load without the engine VM, 0..1, averaged over
  15 minutes: /proc/stat minus the VM's share that VM.getStats reports as VDSM
  does (cpuUser + cpuSys, percent of one CPU), as oVirt's broker computes it;
- storage_valid, storage_delay: Host.getStorageRepoStats of the domain;
- engine_health: the engine status (engine_health.py), polled and refreshed
  right away on the host agent's ``|virt|VM_status|<vmid>`` events; while the VM is
  up and its health page does not say good (a booting engine, or a bad one), every
  ENGINE_FOLLOW_INTERVAL seconds, so that an engine coming up is known within
  seconds rather than a whole interval later.
"""
import collections
import logging
import os
import socket
import subprocess
import threading
import time

from ...api.errors import CallTimeout, ConnectionFailed, ServerError
from . import engine_health

log = logging.getLogger(__name__)

TRIES = 5
TRY_TIMEOUT = 5
CPU_WINDOW = 900.0
# VDSM reports cpuUser/cpuSys/cpuUsage "0.00" until it has two samples of a new VM;
# as oVirt's broker, ignore such figures (keep the load) for at most this long.
CPU_INIT_VALUE = '0.00'
CPU_INIT_GRACE = 300.0
STATS_MAX_AGE = 1.0

NAMES = ('network', 'bridge_up', 'mem_free_mb', 'cpu_load', 'storage_valid', 'storage_delay',
         'engine_health')


def _one_line(e):
    text = str(e) or type(e).__name__
    return ' '.join(text.split())


# -- the host agent --------------------------------------------------------

class HostAgent:
    """One lazily (re)connected host agent API client shared by the monitors,
    subscribed to the host agent's events."""

    RETRY_AFTER = 2.0

    def __init__(self, address='localhost', port=54321, hostd_root=None, timeout=30.0,
                 client_factory=None):
        self.address = address
        self.port = int(port)
        self.hostd_root = hostd_root
        self.timeout = timeout
        self._factory = client_factory
        self._client = None
        self._lock = threading.Lock()
        self._listeners = []
        self._stats = None
        self._stats_lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ''
        self._connecting = threading.Lock()

    def add_listener(self, callback):
        """callback(method, params) for each host agent event."""
        self._listeners.append(callback)

    def _on_event(self, method, params):
        for cb in list(self._listeners):
            try:
                cb(method, params)
            except Exception:
                log.exception('event listener failed for %s', method)

    def client(self):
        with self._lock:
            if self._client is None:
                if self._factory is not None:
                    self._client = self._factory(event_callback=self._on_event)
                else:
                    from ...api.client import Client
                    self._client = Client(self.address, self.port, hostd_root=self.hostd_root,
                                          timeout=self.timeout, connect_timeout=10,
                                          event_callback=self._on_event, lazy=True)
            return self._client

    def call(self, method, **params):
        """One call. While the host agent is unreachable, one thread at a time tries
        to connect (the others wait for its outcome), and for ``RETRY_AFTER``
        seconds after a failed attempt calls fail at once instead of queueing
        behind reconnection attempts."""
        client = self.client()
        if not client.connected:
            with self._connecting:
                with self._lock:
                    if time.monotonic() < self._down_until:
                        raise ConnectionFailed(self._down_reason)
                if not client.connected:
                    try:
                        client.connect()
                    except ConnectionFailed as e:
                        with self._lock:
                            self._down_until = time.monotonic() + self.RETRY_AFTER
                            self._down_reason = str(e)
                        raise
        return client.call(method, params)

    def host_stats(self, max_age=STATS_MAX_AGE):
        """Host.getStats, shared by the monitors that need it within max_age seconds."""
        with self._stats_lock:
            if self._stats and time.monotonic() - self._stats[0] <= max_age:
                return self._stats[1]
            stats = self.call('Host.getStats')
            self._stats = (time.monotonic(), stats)
            return stats

    def close(self):
        with self._lock:
            c, self._client = self._client, None
        if c is not None:
            c.close()


# -- the monitor threads ---------------------------------------------------

class Monitor:
    """A function returning {name: value} run every interval in a thread."""

    def __init__(self, name, func, interval, store):
        self.name = name
        self.func = func
        self.interval = interval
        self.store = store
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = None
        self._last_error = None

    def start(self):
        self._thread = threading.Thread(target=self._loop, name='monitor-' + self.name,
                                        daemon=True)
        self._thread.start()
        return self

    def run_once(self):
        try:
            values = self.func()
        except Exception as e:
            msg = _one_line(e)
            if msg != self._last_error:
                self._last_error = msg
                log.warning('monitor %s: %s; keeping its last value', self.name, msg)
                log.debug('monitor %s failure', self.name, exc_info=True)
            return False
        if self._last_error is not None:
            log.info('monitor %s works again', self.name)
            self._last_error = None
        self.store.update(values)
        return True

    def next_wait(self):
        """Seconds to the next run: the interval, or less when the function asks to be
        followed sooner (its follow_interval(): None for the interval)."""
        follow = getattr(self.func, 'follow_interval', None)
        sooner = follow() if follow is not None else None
        return self.interval if sooner is None else min(self.interval, sooner)

    def _loop(self):
        while not self._stop.is_set():
            self.run_once()
            self._wake.wait(self.next_wait())
            self._wake.clear()

    def wake(self):
        self._wake.set()

    def stop(self):
        self._stop.set()
        self._wake.set()

    def join(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)


class ValueStore:
    """Monitor values with the monotonic time each was taken."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._values = {}

    def update(self, values):
        now = self._clock()
        with self._lock:
            for k, v in values.items():
                self._values[k] = (v, now)

    def get(self, name):
        with self._lock:
            entry = self._values.get(name)
        return entry[0] if entry else None

    def snapshot(self):
        """The ``monitors`` answer: every value (None when not taken yet) and its age."""
        now = self._clock()
        with self._lock:
            values = dict(self._values)
        out = {name: (values[name][0] if name in values else None) for name in NAMES}
        out['age'] = {name: (round(now - values[name][1], 3) if name in values else None)
                      for name in NAMES}
        return out


# -- network ---------------------------------------------------------------

def _ping(address, timeout=TRY_TIMEOUT):
    try:
        r = subprocess.run(['ping', '-n', '-c', '1', '-W', str(int(timeout)), address],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=timeout + 5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _dns(name, timeout=TRY_TIMEOUT):
    result = []

    def lookup():
        try:
            result.append(bool(socket.getaddrinfo(name, None)))
        except (OSError, UnicodeError):
            result.append(False)
    t = threading.Thread(target=lookup, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def _tcp(address, port, timeout=TRY_TIMEOUT):
    try:
        with socket.create_connection((address, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def host_part(fqdn):
    """The host name of an fqdn that may carry a :port (or an [IPv6]:port)."""
    fqdn = fqdn.strip()
    if fqdn.startswith('['):
        return fqdn[1:].split(']', 1)[0]
    if fqdn.count(':') == 1:
        return fqdn.split(':', 1)[0]
    return fqdn


def network_check(conf, tries=TRIES, timeout=TRY_TIMEOUT):
    """A function returning {'network': fraction} for the configured network test."""
    test = (conf.get('network_test') or 'ping').strip().lower()
    if test == 'none':
        return lambda: {'network': 1.0}
    if test == 'ping':
        gateway = (conf.get('gateway') or '').strip()
        if not gateway:
            raise ValueError('network_test=ping needs gateway= in hosted-engine.conf')
        one = lambda: _ping(gateway, timeout)  # noqa: E731
    elif test == 'dns':
        name = host_part(conf.get('fqdn') or '')
        if not name:
            raise ValueError('network_test=dns needs fqdn= in hosted-engine.conf')
        one = lambda: _dns(name, timeout)  # noqa: E731
    elif test == 'tcp':
        address = (conf.get('tcp_t_address') or '').strip()
        port = (conf.get('tcp_t_port') or '').strip()
        if not address or not port.isdigit():
            raise ValueError('network_test=tcp needs tcp_t_address= and tcp_t_port= in '
                             'hosted-engine.conf')
        one = lambda: _tcp(address, port, timeout)  # noqa: E731
    else:
        raise ValueError('network_test=%s in hosted-engine.conf is not one of ping, dns, tcp, '
                         'none' % test)

    def check():
        ok = sum(1 for _ in range(tries) if one())
        return {'network': ok / float(tries)}
    return check


# -- host agent monitors -----------------------------------------------------

def bridge_check(agent, bridge):
    def check():
        stats = agent.host_stats()
        nets = stats.get('network') or {}
        entry = nets.get(bridge)
        if entry is None:
            return {'bridge_up': False}
        return {'bridge_up': str(entry.get('state', '')).lower() == 'up'}
    return check


def memory_check(agent):
    def check():
        stats = agent.host_stats()
        return {'mem_free_mb': int(float(stats['memFree']))}
    return check


def read_proc_stat(path='/proc/stat'):
    """(busy jiffies, total jiffies) of all CPUs."""
    with open(path) as f:
        first = f.readline().split()
    if not first or first[0] != 'cpu':
        raise ValueError('%s has no cpu line' % path)
    values = [int(v) for v in first[1:9]]
    values += [0] * (8 - len(values))
    total = sum(values)
    idle = values[3] + values[4]
    return total - idle, total


class CpuLoad:
    """The host's CPU load without the engine VM, averaged over ``window`` seconds."""

    def __init__(self, agent, vmid, window=CPU_WINDOW, proc_stat='/proc/stat', clock=time.monotonic,
                 ncpu=None):
        self.agent = agent
        self.vmid = vmid
        self.window = window
        self.proc_stat = proc_stat
        self.clock = clock
        self.ncpu = ncpu or os.cpu_count() or 1
        self._prev = None      # (clock, busy, total)
        self._samples = collections.deque()
        self._init_since = None

    def _engine_share(self):
        """(the engine VM's share of the host's CPUs, 0..1; whether VDSM's figures are real).

        VM.getStats' cpuUser + cpuSys are percents of one CPU over VDSM's last sampling
        interval; cpuUsage stays "0.00" until VDSM has real samples."""
        if not self.vmid:
            return 0.0, True
        try:
            stats = self.agent.call('VM.getStats', vmID=self.vmid)
        except ServerError as e:
            if e.code == engine_health.NO_SUCH_VM:
                return 0.0, True
            raise
        entry = stats[0] if isinstance(stats, list) and stats else (stats or {})
        if entry.get('status') == 'Down':
            return 0.0, True
        try:
            percent = float(entry['cpuUser']) + float(entry['cpuSys'])
        except (KeyError, TypeError, ValueError):
            return 0.0, False
        real = str(entry.get('cpuUsage', CPU_INIT_VALUE)) != CPU_INIT_VALUE
        return max(0.0, percent) / 100.0 / self.ncpu, real

    def __call__(self):
        share, real = self._engine_share()
        now = self.clock()
        busy, total = read_proc_stat(self.proc_stat)
        prev, self._prev = self._prev, (now, busy, total)
        if prev is None or total <= prev[2]:
            if self._samples:
                return {'cpu_load': self._average()}
            # first sample: the load since boot
            load = busy / float(total) if total else 0.0
            self._samples.append((now, load))
            return {'cpu_load': round(load, 4)}
        host = (busy - prev[1]) / float(total - prev[2])
        if real:
            self._init_since = None
        else:
            if self._init_since is None:
                self._init_since = now
            if now - self._init_since < CPU_INIT_GRACE:
                log.debug('engine VM CPU figures are still initial: keeping the load')
                return {'cpu_load': self._average()}
        load = min(1.0, max(0.0, host - share))
        self._samples.append((now, load))
        while self._samples and self._samples[0][0] < now - self.window:
            self._samples.popleft()
        return {'cpu_load': self._average()}

    def _average(self):
        return round(sum(v for _, v in self._samples) / len(self._samples), 4)


def storage_check(agent, sd_uuid):
    def check():
        stats = agent.call('Host.getStorageRepoStats', domains=[sd_uuid]) or {}
        entry = stats.get(sd_uuid)
        if entry is None:
            return {'storage_valid': False, 'storage_delay': None}
        try:
            delay = float(entry.get('delay') or 0.0)
        except (TypeError, ValueError):
            delay = None
        return {'storage_valid': bool(entry.get('valid')), 'storage_delay': delay}
    return check


# how often the engine health is polled while the VM is up and its health is not good
ENGINE_FOLLOW_INTERVAL = 2.0


class EngineHealth:
    """VM.getStats of the engine VM plus, for an Up VM, the health page."""

    def __init__(self, agent, vmid, fqdn, timeout=engine_health.HEALTH_TIMEOUT):
        self.agent = agent
        self.vmid = vmid
        self.fqdn = fqdn
        self.timeout = timeout
        self.last_page_problem = None
        self.last_status = None

    def follow_interval(self):
        """ENGINE_FOLLOW_INTERVAL while the VM is up without good health, else None."""
        st = self.last_status
        if st is not None and st.get('vm') == 'up' and st.get('health') != 'good':
            return ENGINE_FOLLOW_INTERVAL
        return None

    def __call__(self):
        self.last_status = None
        try:
            stats = self.agent.call('VM.getStats', vmID=self.vmid)
        except ServerError as e:
            if e.code == engine_health.NO_SUCH_VM:
                return {'engine_health': engine_health.status_not_running()}
            raise
        except (ConnectionFailed, CallTimeout) as e:
            log.debug('engine health: %s', e)
            return {'engine_health': engine_health.status_unreachable()}
        entry = stats[0] if isinstance(stats, list) and stats else (stats or None)
        page_ok = None
        if engine_health.needs_page(entry):
            page_ok, problem = engine_health.fetch_health(self.fqdn, self.timeout)
            if problem != self.last_page_problem:
                if problem:
                    log.warning('engine health page: %s', problem)
                self.last_page_problem = problem
        self.last_status = engine_health.engine_status(entry, page_ok)
        return {'engine_health': self.last_status}
