"""What must hold in a lab running the engine VM under the HA services, checked from outside
the hosts (the soak run, the fault tests and the failover benchmark use these; stable):

    engine_vm_hosts(lab, hosts) -> {host: count}
        how many engine VMs run in each host: qemu processes of the engine VM (started with
        -uuid vmid) that are alive, not stopped (a frozen host's qemu runs no guest code)
        and that libvirt's status file (/run/libvirt/qemu/<domain>.xml in the host) shows
        running (a domain still acquiring its sanlock lease is paused, and is killed when
        another host holds the lease: it does not count). Read from /proc and the host's
        /run only, so a frozen or crashed host never blocks it.
    vm_status(lab, host) -> dict
        `hosted-engine --vm-status --json` run in the host, parsed; LabError when it fails.
    engine_healthy_on(lab, hosts) -> host or None
        the host that the --vm-status of some host in `hosts` shows running the engine VM
        with health good (live data), or None.
    views(lab, hosts) -> {host: [engine hosts]}
        for each host, where its --vm-status shows the engine VM up (live data).
    check(lab, hosts) -> [problem, ...]
        the invariants at one moment: exactly one engine VM running across `hosts`, the
        engine healthy somewhere, and every host of `hosts` whose --vm-status answers
        showing it on that same host; [] when all hold.
    Sampler(lab, hosts, interval=2.0)
        a thread sampling engine_vm_hosts every interval seconds (start(), stop(); `max`,
        the most engine VMs seen at once, and `worst`, that sample).
"""
import glob
import json
import re
import threading
import time

from . import faults
from .lab import LabError, alive

STATUS_DIR = '/run/libvirt/qemu'
VM_STATUS_TIMEOUT = 60


def _libvirt_running(holder, pid):
    """Whether libvirt's status file of the domain run by qemu `pid` shows it running;
    None when no status file names that pid."""
    for path in glob.glob('/proc/%d/root%s/*.xml' % (holder, STATUS_DIR)):
        try:
            with open(path, errors='replace') as f:
                head = f.read(4096)
        except OSError:
            continue
        m = re.search(r'<domstatus\b[^>]*>', head)
        if not m or not re.search(r"\bpid=['\"]%d['\"]" % pid, m.group(0)):
            continue
        state = re.search(r"\bstate=['\"]([a-z]+)['\"]", m.group(0))
        return bool(state) and state.group(1) == 'running'
    return None


def engine_vm_hosts(lab, hosts):
    """{host: number of engine VMs running there} (see the module's docstring)."""
    out = {}
    for name in hosts:
        try:
            h = lab.host(name)
        except LabError:
            out[name] = 0
            continue
        holder = h['holder']['pid']
        n = 0
        for pid in faults.engine_qemu_pids(lab, name):
            if faults.stopped(pid) or faults.proc_state(pid) in (None, 'Z', 'X'):
                continue
            if _libvirt_running(holder, pid) is not False:
                n += 1
        out[name] = n
    return out


def vm_status(lab, host, timeout=VM_STATUS_TIMEOUT):
    """The host's `hosted-engine --vm-status --json`, parsed."""
    h = lab.host(host)
    try:
        r = lab.run_in(h['holder']['pid'], ['hosted-engine', '--vm-status', '--json'],
                       check=False, timeout=timeout)
    except Exception as e:  # subprocess.TimeoutExpired: a hung host
        raise LabError('hosted-engine --vm-status on %s did not answer: %s' % (host, e))
    if r.returncode != 0:
        raise LabError('hosted-engine --vm-status on %s failed (exit %d): %s' % (
            host, r.returncode, (r.stderr or r.stdout).strip().splitlines()[-1:] or ''))
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise LabError('hosted-engine --vm-status --json on %s printed no JSON: %s'
                       % (host, r.stdout.strip()[:200]))


def _entries(status):
    return [v for k, v in status.items() if k != 'global_maintenance' and isinstance(v, dict)]


def engine_up_in(status):
    """Hosts a --vm-status document shows running the engine VM (live data)."""
    return sorted(v['hostname'] for v in _entries(status)
                  if v.get('live-data') and (v.get('engine-status') or {}).get('vm') == 'up')


def healthy_in(status):
    """Hosts a --vm-status document shows running the engine with health good."""
    return sorted(v['hostname'] for v in _entries(status)
                  if v.get('live-data') and (v.get('engine-status') or {}).get('health') == 'good')


def engine_healthy_on(lab, hosts):
    """The host whose engine VM some host's --vm-status shows healthy, or None."""
    for name in hosts:
        try:
            good = healthy_in(vm_status(lab, name))
        except LabError:
            continue
        if good:
            return good[0]
    return None


def views(lab, hosts):
    """{host: [hosts its --vm-status shows running the engine VM]}; a host whose
    --vm-status fails is left out."""
    return {h: engine_up_in(st) for h, st in _statuses(lab, hosts).items()}


def _statuses(lab, hosts):
    out = {}
    for name in hosts:
        try:
            out[name] = vm_status(lab, name)
        except LabError:
            continue
    return out


def live_hosts(lab, hosts):
    """The hosts that run (holder alive, nothing stopped, link up): whose view counts."""
    out = []
    for name in hosts:
        try:
            h = lab.host(name)
        except LabError:
            continue
        daemons = (h.get('daemons') or {}).values()
        if all(alive(d) and not faults.stopped(d['pid']) for d in daemons) \
                and faults.link_up(lab, name):
            out.append(name)
    return out


def check(lab, hosts):
    """The problems at this moment ([] when every invariant holds)."""
    problems = []
    counts = engine_vm_hosts(lab, hosts)
    running = {h: n for h, n in counts.items() if n}
    total = sum(running.values())
    if total != 1:
        problems.append('%s engine VMs running (%s)' % (
            total, ', '.join('%s: %d' % kv for kv in sorted(running.items())) or 'none'))
    live = live_hosts(lab, hosts)
    statuses = _statuses(lab, live)
    seen = {h: engine_up_in(st) for h, st in statuses.items()}
    if not any(healthy_in(st) for st in statuses.values()):
        problems.append('no host shows the engine healthy in --vm-status')
    where = {tuple(v) for v in seen.values()}
    if len(where) > 1:
        problems.append('the hosts disagree on where the engine VM is: %s' % ', '.join(
            '%s sees %s' % (h, '+'.join(v) or 'none') for h, v in sorted(seen.items())))
    elif where == {()}:
        problems.append("no host's --vm-status shows the engine VM up")
    elif where and len(next(iter(where))) > 1:
        problems.append('--vm-status shows the engine VM up on %s at once'
                        % ' and '.join(next(iter(where))))
    elif where and running and next(iter(where))[0] not in running:
        problems.append('--vm-status shows the engine VM on %s, it runs on %s'
                        % (next(iter(where))[0], ', '.join(sorted(running))))
    missing = sorted(set(live) - set(seen))
    if missing:
        problems.append('--vm-status fails on %s' % ', '.join(missing))
    return problems


class Sampler:
    """engine_vm_hosts every `interval` seconds in a thread, keeping the worst sample."""

    def __init__(self, lab, hosts, interval=2.0):
        # a Lab of its own: the state it loads never replaces the one the caller updates
        self.lab = type(lab)(lab.dir)
        self.hosts = list(hosts)
        self.interval = interval
        self.max = 0
        self.worst = {}
        self.samples = 0
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                counts = engine_vm_hosts(self.lab, self.hosts)
            except Exception as e:  # reported by stop()
                self.error = '%s: %s' % (type(e).__name__, e)
                return
            total = sum(counts.values())
            self.samples += 1
            if total > self.max or not self.worst:
                self.max = max(self.max, total)
                self.worst = counts
            self._stop.wait(self.interval)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)
        return self.max


def wait_invariants(lab, hosts, limit, progress=None, every=10.0):
    """Wait until check() finds nothing; return (seconds waited, []) or, after `limit`
    seconds, (limit, last problems). progress(what, elapsed, limit) every `every` s."""
    t0 = time.monotonic()
    last_report = t0
    while True:
        problems = check(lab, hosts)
        now = time.monotonic()
        if not problems:
            return now - t0, []
        if now - t0 >= limit:
            return now - t0, problems
        if progress and now - last_report >= every:
            progress('; '.join(problems), now - t0, limit)
            last_report = now
        time.sleep(2)
