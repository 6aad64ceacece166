"""Observing a deployed lab with several HA hosts while faults are injected: where the engine
VM runs (from /proc and the hosts' /run, so a hung host is observed too: lab/invariants.py),
what each host's `hosted-engine --vm-status` says, the engine's health page and inventory,
a watcher that samples the engine VMs every 2 s, and a wait until the lab is settled.
`HaCluster(hosts, tag)` binds the HA hosts of one test module; the functions take the lab
(tests/lab/conftest.py's LabRunner)."""
import json
import threading
import time

from ovirt_hosted_engine_setup.lab import faults, invariants
from ovirt_hosted_engine_setup.lab.lab import Lab, LabError

from .deploy_helpers import wait_for

ADMIN_PW = 'lab-admin-Pa55'       # examples/lab-answers.conf
CA = '/var/lib/ovirt-hosted-engine-hostd/pki/trusted-cas/engine-engine.lab.test.pem'
HEALTH_URL = 'http://engine.lab.test/ovirt-engine/services/health'

SDK = r'''
import json, sys
import ovirtsdk4 as sdk
c = sdk.Connection(url="https://engine.lab.test/ovirt-engine/api", username="admin@internal",
                   password=sys.stdin.readline().strip(), ca_file=%r, timeout=120)
s = c.system_service()
print(json.dumps({"hosts": sorted(h.name for h in s.hosts_service().list()),
                  "vms": sorted(v.name for v in s.vms_service().list()),
                  "domains": sorted(d.name for d in s.storage_domains_service().list())}))
c.close()
''' % CA


def vm_status(lab, host):
    """A host's `hosted-engine --vm-status --json` ({} when it does not answer)."""
    try:
        return invariants.vm_status(Lab(lab.dir), host)
    except LabError:
        return {}


def lab_name(record):
    return (record.get('hostname') or '').split('.')[0]


def view(status):
    """(set of live hosts, [hosts whose engine is up with good health], {host: score},
    {host: agent state}) of one host's --vm-status."""
    live, engine, scores, states = set(), [], {}, {}
    for k, rec in status.items():
        if not k.isdigit():
            continue
        name = lab_name(rec)
        scores[name] = rec.get('score')
        states[name] = (rec.get('extra') or '')
        if isinstance(states[name], str):
            line = [x for x in states[name].splitlines() if x.startswith('state=')]
            states[name] = line[0][6:] if line else ''
        if rec.get('live-data'):
            live.add(name)
            es = rec.get('engine-status') or {}
            if es.get('vm') == 'up' and es.get('health') == 'good':
                engine.append(name)
    return live, engine, scores, states


def healthy(lab, via):
    """The engine's health page answers 'DB Up' when fetched from lab host `via`."""
    r = lab.exec(via, 'curl', '-s', '-m', '5', HEALTH_URL, check=False, timeout=30)
    return r.returncode == 0 and 'DB Up' in r.stdout


def inventory(lab, via):
    """The engine's hosts, VMs and storage domains, through ovirt-engine-sdk-python run in
    lab host `via`."""
    r = lab.exec(via, 'python3', '-c', SDK, check=False, timeout=180, input=ADMIN_PW + '\n')
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


class HaCluster:
    """The HA hosts of one test module and its progress lines ('[tag HH:MM:SS] ...')."""

    def __init__(self, hosts, tag):
        self.hosts = tuple(hosts)
        self.tag = tag

    def note(self, msg):
        print('[%s %s] %s' % (self.tag, time.strftime('%H:%M:%S'), msg), flush=True)

    def engine_vms(self, lab):
        """{host: engine VMs running there}."""
        return invariants.engine_vm_hosts(Lab(lab.dir), self.hosts)

    def where_engine(self, lab):
        """(host, its engine VM's qemu pids) of the one engine VM running; (None, None) when
        none or several run."""
        state = Lab(lab.dir)
        running = [h for h, n in invariants.engine_vm_hosts(state, self.hosts).items()
                   for _ in range(n)]
        if len(running) != 1:
            return None, None
        return running[0], tuple(sorted(faults.engine_qemu_pids(state, running[0])))

    def others(self, host):
        return [h for h in self.hosts if h != host]

    def healthy_elsewhere(self, lab, lost, watchers):
        """wait_for check: the engine VM runs on another host than `lost`, the watchers' view
        (their --vm-status) shows it up with good health there."""
        def check():
            host, _pid = self.where_engine(lab)
            if host is None or host == lost:
                return False, 'engine VMs %s' % self.engine_vms(lab)
            seen = {w: view(vm_status(lab, w))[1] for w in watchers}
            return all(v == [host] for v in seen.values()), (host, seen)
        return check

    def check_inventory(self, lab, via):
        inv = inventory(lab, via)
        assert inv['hosts'] == list(self.hosts), inv
        assert 'HostedEngine' in inv['vms'] and 'hosted_storage' in inv['domains'], inv

    def watch(self, lab, health_via=None):
        return Watch(self, lab, health_via)

    def settle(self, lab, limit=600):
        """Wait until the lab is settled: one engine VM, up with good health in every host's
        --vm-status, all of them agreeing where and seeing every HA host live. Prints
        progress; returns the engine's host."""
        t0 = time.monotonic()
        last = [0.0]

        def check():
            host, _pid = self.where_engine(lab)
            views = {h: view(vm_status(lab, h)) for h in self.hosts}
            detail = {h: (sorted(v[0]), v[1], v[3]) for h, v in views.items()}
            ok = host is not None and all(v[0] == set(self.hosts) and v[1] == [host]
                                          for v in views.values())
            if not ok and time.monotonic() - last[0] > 30:
                last[0] = time.monotonic()
                self.note('settling (%.0f s): engine VMs %s; views %s'
                          % (time.monotonic() - t0, self.engine_vms(lab), detail))
            return ok, (host, detail)
        host, _ = wait_for('one engine VM, healthy, every HA host live in every --vm-status',
                           check, limit, 5)
        self.note('settled in %.0f s: the engine on %s' % (time.monotonic() - t0, host))
        return host

    def fault(self, lab, host, kind, *args):
        r = lab.cli('fault', host, kind, *args, timeout=180)
        self.note(r.stdout.strip())
        return r


class Watch:
    """A thread sampling every 2 s how many engine VMs run (and, with `health_via`, whether
    the engine's health page answers from that host) until the block ends."""

    def __init__(self, cluster, lab, health_via=None):
        self.cluster = cluster
        self.lab = lab
        self.health_via = health_via
        self.samples = []          # (seconds since start, {host: count})
        self.health = []           # (seconds since start, bool)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            t = time.monotonic() - self.t0
            self.samples.append((t, self.cluster.engine_vms(self.lab)))
            if self.health_via:
                self.health.append((t, healthy(self.lab, self.health_via)))
            self._stop.wait(2)

    def __enter__(self):
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(60)

    @property
    def max_count(self):
        return max(sum(c.values()) for _t, c in self.samples)

    def split_brain(self):
        return [(round(t), c) for t, c in self.samples if sum(c.values()) > 1]

    def check(self):
        assert self.samples, 'the watcher took no sample'
        assert self.max_count <= 1, 'two engine VMs ran at once: %s' % self.split_brain()

    def outages(self):
        return [round(t) for t, ok in self.health if not ok]
