"""`hosted-engine-lab soak --seed N --rounds K`: random real faults against a lab running the
engine VM under the HA services on at least 3 hosts, with the invariants checked after each
(lab/invariants.py).

Each round draws from random.Random(seed), in this order: the fault (crash, freeze,
partition, vm-kill or kill DAEMON), the daemon for kill, whether the engine's host is hit
(else one of the others), the other host, and the hold time (hold_range: up to 1.5 x sanlock's time to take a silent host for
dead, from the lockspace's io_timeout). It injects the fault
(lab/faults.py), waits the hold time, undoes it (crash: restart; freeze: thaw; partition:
heal; kill of an HA unit: nothing, the service manager applies the unit's Restart=; kill of
sanlock: restart of the host, as a real host's watchdog resets it; kill of libvirtd or
hostd: the daemon started again, as systemd restarts libvirtd and vdsmd; vm-kill: nothing,
the agents start the VM again), then waits until the invariants hold. A thread samples the engine VMs
every 2 s from the injection on: two running at any sample fails the round. The same seed
and round count give the same draws (the engine's host at each round start decides which
host "the engine's host" is).
"""
import os
import random
import sys
import time

from ..he_storage import heconf, layout
from . import faults, invariants
from .lab import LabError

ROUND_KINDS = ('crash', 'freeze', 'partition', 'vm-kill', 'kill')
HOLD_MIN = 10                # seconds a fault is held before it is undone, at least
SETTLE_LIMIT = 600           # seconds the invariants may take to hold again after a round
START_LIMIT = 300            # seconds they may take to hold before the first round
MIN_HOSTS = 3


class RoundFailed(Exception):
    pass


def hold_range(io_timeout):
    """Hold times: from HOLD_MIN to 1.5 x the time after which sanlock takes a silent host
    for dead (8 x io_timeout + 60 s), so that some holds end before the other hosts may take
    the engine VM's lease and some after."""
    return HOLD_MIN, int(1.5 * layout.failover_floor(io_timeout))


def plan(rng, hosts, engine_host, holds=None):
    """(kind, daemon or None, host, hold seconds) of one round, drawn from rng; holds: the
    (least, most) hold time (default: hold_range of sanlock's default io_timeout)."""
    kind = rng.choice(ROUND_KINDS)
    daemon = rng.choice(faults.KILL_DAEMONS) if kind == 'kill' else None
    on_engine = rng.random() < 0.5
    others = [h for h in hosts if h != engine_host]
    other = rng.choice(others)
    hold = rng.randint(*(holds or hold_range(layout.DEFAULT_IO_TIMEOUT)))
    if kind == 'vm-kill':   # the engine VM runs on one host only
        return kind, None, engine_host, 0
    return kind, daemon, engine_host if on_engine else other, hold


def describe(kind, daemon, host, hold):
    what = 'kill %s' % daemon if kind == 'kill' else kind
    return '%s %s%s' % (what, host, ' hold %d s' % hold if hold else '')


def undo(lab, kind, daemon, host):
    """Undo a fault; return one line."""
    if kind == 'crash':
        return faults.restart(lab, host)
    if kind == 'freeze':
        return faults.inject(lab, host, 'thaw')
    if kind == 'partition':
        return faults.inject(lab, host, 'heal')
    if kind == 'kill' and daemon in faults.HA_UNITS:
        return '%s: %s comes back by its unit\'s Restart=' % (host, faults.HA_UNITS[daemon])
    if kind == 'kill' and daemon == 'sanlock':
        # sanlock dead with leases held: a real host's watchdog resets it
        return faults.restart(lab, host)
    if kind == 'kill':
        return faults.start_daemon(lab, host, daemon)
    return ''


class Soak:
    def __init__(self, lab, seed, rounds, out=None, settle_limit=SETTLE_LIMIT,
                 interval=2.0):
        self.lab = lab
        self.seed = seed
        self.rounds = rounds
        self.out = out or sys.stdout
        self.settle_limit = settle_limit
        self.interval = interval

    def say(self, text):
        self.out.write(text + '\n')
        self.out.flush()

    def progress(self, what, elapsed, limit):
        self.say('  waiting for %s (%d s, limit %d s)' % (what, elapsed, limit))

    def hosts(self):
        hosts = self.lab.host_names()
        if len(hosts) < MIN_HOSTS:
            raise LabError('soak needs a lab of at least %d hosts running the engine under HA '
                           '(this one has %d): hosted-engine-lab up --hosts %d, then deploy'
                           % (MIN_HOSTS, len(hosts), MIN_HOSTS))
        lacking = [h for h in hosts if faults.engine_vm_id(self.lab, h) is None]
        if lacking:
            raise LabError('%s not hosted-engine host(s) (no engine VM in %s): deploy the '
                           'engine and add every host first' % (', '.join(lacking),
                                                                faults.HE_CONF))
        return hosts

    def io_timeout(self, host):
        """sanlock's io_timeout of the hosted-engine lockspace (hosted-engine.conf)."""
        path = os.path.join(self.lab.host_dir(host), 'etc-ovirt-hosted-engine',
                            os.path.basename(faults.HE_CONF))
        try:
            return heconf.io_timeout(heconf.load(path))
        except (heconf.ConfError, ValueError):
            return layout.DEFAULT_IO_TIMEOUT

    def settle(self, hosts, limit):
        waited, problems = invariants.wait_invariants(
            self.lab, hosts, limit, progress=lambda what, e, lim: self.progress(
                'the invariants (now: %s)' % what, e, lim))
        return waited, problems

    def engine_host(self, hosts):
        counts = invariants.engine_vm_hosts(self.lab, hosts)
        return next(h for h, n in counts.items() if n)

    def run(self):
        """Run the rounds; return 0, or 1 after the first failing round."""
        hosts = self.hosts()
        holds = hold_range(self.io_timeout(hosts[0]))
        rng = random.Random(self.seed)
        waited, problems = self.settle(hosts, START_LIMIT)
        if problems:
            raise LabError('the lab is not in a state to soak (after %d s: %s): the engine '
                           'must run under HA, healthy, on one host' % (waited,
                                                                       '; '.join(problems)))
        for n in range(1, self.rounds + 1):
            kind, daemon, host, hold = plan(rng, hosts, self.engine_host(hosts), holds)
            head = 'round %d/%d seed %d: %s' % (n, self.rounds, self.seed,
                                                describe(kind, daemon, host, hold))
            try:
                line = self.round(hosts, kind, daemon, host, hold)
            except (RoundFailed, LabError) as e:
                self.say('%s -> FAILED: %s' % (head, e))
                self.say('replay: hosted-engine-lab soak --seed %d --rounds %d'
                         % (self.seed, n))
                return 1
            self.say('%s -> %s' % (head, line))
        return 0

    def round(self, hosts, kind, daemon, host, hold):
        sampler = invariants.Sampler(self.lab, hosts, self.interval).start()
        try:
            self.say('  ' + faults.inject(self.lab, host, kind, daemon))
            try:
                if hold:
                    time.sleep(hold)
            except KeyboardInterrupt:   # interrupted while held: the lab is left healed
                self.say('  interrupted: undoing the fault')
                undo(self.lab, kind, daemon, host)
                raise
            done = undo(self.lab, kind, daemon, host)
            if done:
                self.say('  ' + done)
            waited, problems = self.settle(hosts, self.settle_limit)
        finally:
            most = sampler.stop()
        if sampler.error:
            raise RoundFailed('sampling the engine VMs failed: %s' % sampler.error)
        if most > 1:
            raise RoundFailed('%d engine VMs ran at once (%s), max engine VMs %d' % (
                most, ', '.join('%s: %d' % kv for kv in sorted(sampler.worst.items()) if kv[1]),
                most))
        if problems:
            raise RoundFailed('invariants still broken %d s after the fault was undone: %s'
                              % (waited, '; '.join(problems)))
        return 'engine on %s, healthy after %d s, max engine VMs %d' % (
            self.engine_host(hosts), waited, most)
