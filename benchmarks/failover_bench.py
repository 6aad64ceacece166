#!/usr/bin/env python3
"""Benchmark of the engine's failover in the lab: crash, vm-kill, partition and storage loss
of the engine's host, against the floor sanlock sets.

Starts a three-host lab in its own directory with its storage on a Gluster replica 3 volume
served by the three hosts, the hyperconverged layout (`hosted-engine-lab up --storage gluster
--sanlock-io-timeout` of --vm-lease-io-timeout: the io timeout the host agents give the
storage domain's lockspace, which holds the engine VM's lease), deploys the engine unattended
on host1 onto the volume (examples/lab-gluster-answers.conf, the sanlock I/O timeout of
--io-timeout for the hosted-engine lockspace), joins host2 and
host3 as additional HA hosts (examples/lab-additional-host-answers.conf), waits until the
engine is healthy and the three hosts live, then injects into the engine's host, one after
the other (the lab settled again between them, and every HA agent past its first minute,
in which it waits for metadata history before it starts the VM):

- vm-kill: the engine VM's qemu killed;
- partition: the host's link cut (healed once the engine runs elsewhere);
- crash: every process of the host killed at once, as a power cut (the host restarted
  afterwards);
- storage-loss: the host's path to the volume cut (its storage given back once the engine
  runs elsewhere).

For each it prints the time from the fault to the engine VM running (again, or on another
host for partition and crash) and to the engine healthy there (the engine VM up with good
health in another host's --vm-status, on the host that runs it). The floor is sanlock's: the
time before another host may take a dead host's leases, from the io_timeout the domain's
lockspace (dom_md/ids, the lockspace of the engine VM's lease) carries on the storage, read
in the same run. A crash and a storage loss have to wait for it (the host's leases cannot
be released, only expire); a killed qemu or a VM shut down by its agent releases its lease
at once. Each time is printed with the ratio time / floor, and the engine VM's age at each
fault.
A thread counts the engine VMs every second on the three hosts from the fault to the end of
the run; a sample with more than one is a split brain. The last line is

    failover crash=<s> floor=<s> vm-kill=<s> partition=<s> storage-loss=<s> split-brain=<n>

with the times to a healthy engine. The lab is stopped at the end.

Run: /work/main/.venv/bin/python benchmarks/failover_bench.py [--io-timeout N]
         [--vm-lease-io-timeout N] [--keep-lab]
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from ovirt_hosted_engine_setup.ha import core  # noqa: E402
from ovirt_hosted_engine_setup.he_storage import layout  # noqa: E402
from ovirt_hosted_engine_setup.lab import faults, invariants  # noqa: E402
from ovirt_hosted_engine_setup.lab.lab import Lab, LabError  # noqa: E402
from tests.lab.conftest import LabRunner  # noqa: E402
from tests.lab.deploy_helpers import deploy_ha_hosts, vm_lease_io_timeout  # noqa: E402

HOSTS = ('host1', 'host2', 'host3')
KINDS = ('vm-kill', 'partition', 'crash', 'storage-loss')
SETTLE_LIMIT = 900
FAILOVER_LIMIT = 1200


def say(msg):
    print('[%s] %s' % (time.strftime('%H:%M:%S'), msg), flush=True)


def short(name):
    return (name or '').split('.')[0]


class Counter:
    """Engine VMs counted on every host every `interval` seconds, in a thread."""

    def __init__(self, lab_dir, interval=1.0):
        self.lab = Lab(lab_dir)
        self.interval = interval
        self.samples = 0
        self.split = []            # (time, {host: count}) of the samples with more than one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            counts = invariants.engine_vm_hosts(self.lab, HOSTS)
            self.samples += 1
            if sum(counts.values()) > 1:
                self.split.append((time.strftime('%H:%M:%S'), counts))
            self._stop.wait(self.interval)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(30)


def running_on(lab):
    """The host running the one engine VM, None when none or several run."""
    hosts = [h for h, n in invariants.engine_vm_hosts(lab, HOSTS).items() for _ in range(n)]
    return hosts[0] if len(hosts) == 1 else None


def seen_healthy(lab, watcher):
    """The hosts `watcher`'s --vm-status shows running the engine with good health."""
    try:
        return [short(h) for h in invariants.healthy_in(invariants.vm_status(lab, watcher))]
    except LabError:
        return None


def live_in(lab, watcher):
    try:
        st = invariants.vm_status(lab, watcher)
    except LabError:
        return set()
    return {short(v.get('hostname')) for k, v in st.items()
            if k.isdigit() and v.get('live-data')}


def settle(lab, limit=SETTLE_LIMIT):
    """Wait until one engine VM runs, every host's --vm-status shows it healthy there and
    the three hosts live; return the engine's host."""
    t0 = time.monotonic()
    last = 0.0
    while True:
        host = running_on(lab)
        ok = host is not None and all(seen_healthy(lab, h) == [host]
                                      and live_in(lab, h) == set(HOSTS) for h in HOSTS)
        now = time.monotonic()
        if ok:
            say('settled (%.0f s): the engine on %s' % (now - t0, host))
            return host
        if now - t0 > limit:
            raise LabError('the lab did not settle within %d s: engine VMs %s'
                           % (limit, invariants.engine_vm_hosts(lab, HOSTS)))
        if now - last > 30:
            last = now
            say('settling (%.0f s): engine VMs %s; --vm-status %s' % (
                now - t0, invariants.engine_vm_hosts(lab, HOSTS), invariants.views(lab, HOSTS)))
        time.sleep(2)


def vm_age(lab, host):
    """Seconds the engine VM's qemu on `host` has been running (None when none runs)."""
    pids = faults.engine_qemu_pids(lab, host)
    if not pids:
        return None
    with open('/proc/%d/stat' % pids[0]) as f:
        start_ticks = int(f.read().rsplit(')', 1)[1].split()[19])
    with open('/proc/uptime') as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf('SC_CLK_TCK')


def inject(lab, host, kind):
    with lab.locked():
        lab.load()
        say(faults.inject(lab, host, kind))


def measure(lab, kind):
    """Inject `kind` into the engine's host; return (seconds to the VM running, seconds to
    the engine healthy, engine host before, after)."""
    before = running_on(lab)
    watcher = [h for h in HOSTS if h != before][0]
    must_move = kind != 'vm-kill'
    say('%s on %s: its engine VM has been running for %.0f s' % (kind, before,
                                                               vm_age(lab, before)))
    t0 = time.monotonic()
    inject(lab, before, kind)
    t_run = t_ok = None
    after = None
    while t_ok is None:
        now = time.monotonic() - t0
        if now > FAILOVER_LIMIT:
            raise LabError('%s: the engine was not back within %d s' % (kind, FAILOVER_LIMIT))
        host = running_on(lab)
        if host is not None and (host != before or not must_move) and t_run is None:
            # vm-kill: the VM was killed before inject returned; a VM running now is a new one
            t_run, after = now, host
            say('%s: engine VM running on %s after %.1f s' % (kind, host, t_run))
        if t_run is not None:
            if host != after:
                t_run, after = None, None
                continue
            if seen_healthy(lab, watcher) == [after]:
                t_ok = time.monotonic() - t0
                say('%s: engine healthy on %s after %.1f s' % (kind, after, t_ok))
        time.sleep(1)
    return t_run, t_ok, before, after


def agents_past_history(started):
    """Wait until the agents that (re)started at monotonic time `started` are past their
    first minute: an agent that is not alone in the lockspace waits for that much metadata
    history before it starts the VM, which a fault on long-running hosts never meets."""
    wait = core.CoreConfig().history - (time.monotonic() - started)
    if wait > 0:
        say('waiting %.0f s: every HA agent past its first %.0f s (metadata history)'
            % (wait, core.CoreConfig().history))
        time.sleep(wait)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--io-timeout', type=int, default=10,
                   help="sanlock's I/O timeout given to the deploy, seconds (default 10, "
                        "VDSM's)")
    p.add_argument('--vm-lease-io-timeout', type=int, default=None,
                   help="sanlock's I/O timeout the host agents give the storage domain's "
                        "lockspace, the one of the engine VM's lease (hosted-engine-lab up "
                        '--sanlock-io-timeout), seconds (default: the --io-timeout)')
    p.add_argument('--keep-lab', action='store_true', help='leave the lab up at the end')
    args = p.parse_args()
    for opt, value in (('--io-timeout', args.io_timeout),
                       ('--vm-lease-io-timeout', args.vm_lease_io_timeout)):
        if value is not None and not layout.MIN_IO_TIMEOUT <= value <= layout.MAX_IO_TIMEOUT:
            p.error('%s must be between %d and %d' % (opt, layout.MIN_IO_TIMEOUT,
                                                      layout.MAX_IO_TIMEOUT))
    if args.vm_lease_io_timeout is None:
        args.vm_lease_io_timeout = args.io_timeout
    lab_dir = tempfile.mkdtemp(prefix='he-failover-bench-', dir='/var/tmp')
    runner = LabRunner(lab_dir)
    lab = Lab(lab_dir)
    counter = None
    try:
        runner.cli('up', '--hosts', str(len(HOSTS)), '--storage', 'gluster',
                   '--sanlock-io-timeout', str(args.vm_lease_io_timeout), timeout=600)
        deploy_ha_hosts(runner, lab_dir, len(HOSTS), args.io_timeout, say=say)
        agents_started = time.monotonic()
        settle(lab)
        io_timeout, ids = vm_lease_io_timeout(runner)
        floor = layout.failover_floor(io_timeout)
        say('the lockspace of the engine VM\'s lease, %s: io_timeout %d s (the host agents '
            'were given %d s, the deploy %d s); sanlock floor %d s'
            % (ids, io_timeout, args.vm_lease_io_timeout, args.io_timeout, floor))
        counter = Counter(lab_dir)
        counter.start()
        results = {}
        for kind in KINDS:
            settle(lab)
            agents_past_history(agents_started)
            t_run, t_ok, before, after = measure(lab, kind)
            results[kind] = (t_run, t_ok, before, after)
            if kind == 'partition':
                inject(lab, before, 'heal')
            elif kind == 'storage-loss':
                inject(lab, before, 'storage-back')
            elif kind == 'crash':
                t = time.monotonic()
                with lab.locked():
                    lab.load()
                    say(faults.restart(lab, before))
                agents_started = time.monotonic()
                settle(lab)
                say('crash: %s restarted and rejoined in %.0f s' % (before, time.monotonic() - t))
        counter.stop()
        print('\n%-12s %-15s %14s %14s %8s %12s %12s' % (
            'fault', 'engine moved', 'VM running s', 'healthy s', 'floor s', 'running/floor',
            'healthy/floor'))
        for kind in KINDS:
            t_run, t_ok, before, after = results[kind]
            print('%-12s %-15s %14.1f %14.1f %8d %12.2f %12.2f' % (
                kind, '%s->%s' % (before, after), t_run, t_ok, floor, t_run / floor,
                t_ok / floor))
        print('floor: sanlock io_timeout %d s read from %s: 8 x %d + 60 = %d s (a crash and a '
              'storage loss wait for it: a killed or shut-down VM frees its lease at once)'
              % (io_timeout, ids, io_timeout, floor))
        print('split-brain samples (more than one engine VM running): %d of %d%s' % (
            len(counter.split), counter.samples,
            ': %s' % counter.split[:5] if counter.split else ''))
        print('failover crash=%.1f floor=%d vm-kill=%.1f partition=%.1f storage-loss=%.1f '
              'split-brain=%d' % (results['crash'][1], floor, results['vm-kill'][1],
                                  results['partition'][1], results['storage-loss'][1],
                                  len(counter.split)))
        return 0
    except (LabError, AssertionError) as e:
        print('failover benchmark failed: %s' % e, file=sys.stderr)
        return 1
    finally:
        if counter is not None:
            counter.stop()
        if not args.keep_lab:
            runner.cli('down', check=False, timeout=300)
            shutil.rmtree(lab_dir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
