"""Faults injected into lab hosts, each a real one on the host's own processes or link.

Entry points (used by `hosted-engine-lab fault` / `restart`, the soak run and the fault
tests; stable):

    inject(lab, host, kind, daemon=None) -> str   one line saying what was done
    restart(lab, host) -> str                     the host booted again, one line

`lab` is a lab.Lab; every error a user can meet is a lab.LabError with one line.

Kinds (docs/lab.md, "Faults"):

- crash: every process of the host killed at once, as a power cut: all are stopped first
  (SIGSTOP, so none sees another die and reacts: no sanlock lease released, no VM shut
  down cleanly, no agent publishing that it stops), then killed (SIGKILL). The engine VM's
  qemu goes with them. The host's namespaces stay (its network link stays up with nothing
  answering behind it, as a powered-off host's switch port). Undo: restart.
- freeze: every process of the host stopped (SIGSTOP): a hung host. Its sanlock stops
  renewing its host id and leases; nothing fires in the host since nothing runs in it
  (a lab host has no watchdog). Undo: thaw (SIGCONT to every process of the host), or
  restart (the host is killed, then booted).
- partition: the host's management link cut: its veth port on the lab bridge set down, so
  that the host reaches no other host, the gateway (the lab DNS server) or the engine, and
  none reaches it; its storage, a directory every host sees, stays. Undo: heal.
- vm-kill: the engine VM's qemu on the host killed (SIGKILL). The engine VM is the VM of
  `vmid` in the host's /etc/ovirt-hosted-engine/hosted-engine.conf.
- kill DAEMON: SIGKILL to one daemon of the host: sanlock (with its helper process),
  libvirtd, hostd (the lab's base daemons that `up` starts), ha-broker or ha-agent (units
  of the host's service manager, lab/systemctl.py: SIGKILL to the unit's main process and
  its process group, not to the unit's supervisor; the unit is then `activating
  (auto-restart)` and the service manager starts it again after its RestartSec=, as its
  Restart=on-failure says). Undo: none needed for the HA units (`hosted-engine-lab ha start
  HOST` starts them at once), restart for a base daemon.

In a gluster lab (`up --storage gluster`, lab/gluster.py):

- storage-loss: the host's path to the volume cut (an nft table in the host's network
  namespace drops what it sends to glusterd and to the bricks, its own included); the
  management network works. Undo: storage-back.
- storage-slow MS: every packet the host sends to glusterd or a brick held MS milliseconds
  (lab/gluster.py says how). Undo: storage-back (which undoes storage-loss too).
- brick-kill: the host's brick process of the volume killed (SIGKILL). Undo: brick-back
  (`gluster volume start VOLUME force`).
- partition cuts the volume too (it is reached over the lab network); restart detaches the
  host's glusterfs mounts left by the crash (a boot finds none), starts glusterd after
  sanlock and waits until glusterd has started the host's brick again.
"""
import contextlib
import os
import shutil
import signal
import subprocess
import time

from .lab import HA_DAEMONS, HA_SOCKET, LabError, alive, pids_in_ns, record
from . import gluster, systemctl

KINDS = ('crash', 'freeze', 'thaw', 'partition', 'heal', 'vm-kill', 'kill',
         # a gluster lab's storage (lab/gluster.py)
         'storage-loss', 'storage-slow', 'storage-back', 'brick-kill', 'brick-back')
GLUSTER_KINDS = KINDS[KINDS.index('storage-loss'):]
KILL_DAEMONS = ('sanlock', 'libvirtd', 'hostd', 'ha-broker', 'ha-agent')
HA_UNITS = dict(HA_DAEMONS)   # ha-broker -> ovirt-ha-broker, ha-agent -> ovirt-ha-agent
HE_CONF = '/etc/ovirt-hosted-engine/hosted-engine.conf'
# What stays in a host's /run when it boots again (everything else there is what the
# killed daemons left: pid files, sockets, lock files, libvirt's domain status): the
# service manager (lab/bin, and lab/systemd/enabled/, which stands for the enablement a
# real host keeps in /etc), the systemd mark, sshd's privilege separation directory and
# the empty directories `up` makes.
RUN_KEEP = ('lab', 'systemd', 'sshd', 'lock', 'user')
BOOT_UNITS_TIMEOUT = 60


# ---------------------------------------------------------------- processes

def host_processes(h):
    """Pids of every process of lab host h (its mount namespace), its holder left out."""
    mnt = (h.get('ns') or {}).get('mnt')
    holder = h.get('holder') or {}
    return [p for p in pids_in_ns('mnt', mnt, holder) if p != holder.get('pid')]


def proc_state(pid):
    """The one-letter state of a process (R, S, D, T, t, Z...), None when it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
        return data[data.rindex(')') + 2:].split()[0]
    except (OSError, ValueError, IndexError):
        return None


def stopped(pid):
    return proc_state(pid) in ('T', 't')


def _signal(recs, sig):
    for r in recs:
        if alive(r):
            with contextlib.suppress(ProcessLookupError):
                os.kill(r['pid'], sig)


def _wait_dead(name, recs, timeout=10.0):
    deadline = time.monotonic() + timeout
    left = recs
    while left and time.monotonic() < deadline:
        for r in left:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(r['pid'], os.WNOHANG)
        left = [r for r in left if alive(r)]
        if left:
            time.sleep(0.05)
    if left:
        raise LabError('%s: %d processes still alive %d s after SIGKILL: %s'
                       % (name, len(left), timeout, ', '.join(str(r['pid']) for r in left)))


def _records(pids):
    return [r for r in (record(p) for p in pids) if r['start'] is not None]


# ---------------------------------------------------------------- the kinds

def crash(lab, name, timeout=10.0):
    """Kill every process of host `name` at once; return how many were killed."""
    h = lab.host(name)
    recs = _records(host_processes(h))
    _signal(recs, signal.SIGSTOP)
    # what forked meanwhile is stopped too before anything is killed
    recs += _records(set(host_processes(h)) - {r['pid'] for r in recs})
    _signal(recs, signal.SIGSTOP)
    _signal(recs, signal.SIGKILL)
    _wait_dead(name, recs, timeout)
    return len(recs)


def freeze(lab, name):
    """SIGSTOP every process of host `name`, until none is left running (a process forked
    while stopping the others is stopped too); return how many are stopped."""
    h = lab.host(name)
    done = set()
    for _ in range(20):
        todo = [p for p in host_processes(h) if p not in done or not stopped(p)]
        if not todo:
            break
        for p in todo:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)
            done.add(p)
        time.sleep(0.05)
    else:
        raise LabError('%s: processes keep appearing or running while the host is being '
                       'frozen: %s' % (name, ', '.join(map(str, todo))))
    return len([p for p in host_processes(h) if stopped(p)])


def thaw(lab, name):
    """SIGCONT every process of host `name`; return how many were stopped before."""
    h = lab.host(name)
    pids = host_processes(h)
    n = len([p for p in pids if stopped(p)])
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGCONT)
    return n


def _veth(name):
    return 'lab-%s' % name


def _link(lab, name, up):
    """Set the host's port on the lab bridge (its veth's other end) up or down."""
    lab.host(name)
    net = lab.state['net']['pid']
    r = subprocess.run(['nsenter', '-t', str(net), '-n', '--', 'ip', 'link', 'set',
                        _veth(name), 'up' if up else 'down'],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise LabError('%s: cannot set its link %s %s on the lab bridge: %s'
                       % (name, _veth(name), 'up' if up else 'down', r.stderr.strip()))


def link_up(lab, name):
    """Whether the host's port on the lab bridge is up (False: partitioned)."""
    lab.host(name)
    net = lab.state['net']['pid']
    r = subprocess.run(['nsenter', '-t', str(net), '-n', '--', 'ip', '-o', 'link', 'show',
                        _veth(name)], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise LabError('%s: its link %s is not on the lab bridge: %s'
                       % (name, _veth(name), r.stderr.strip()))
    flags = r.stdout.split('<', 1)[1].split('>', 1)[0].split(',')
    return 'UP' in flags


def engine_vm_id(lab, name):
    """The engine VM's id (vmid of the host's hosted-engine.conf), or None."""
    path = os.path.join(lab.host_dir(name), 'etc-ovirt-hosted-engine',
                        os.path.basename(HE_CONF))
    try:
        with open(path) as f:
            for line in f:
                key, sep, value = line.strip().partition('=')
                if sep and key.strip() == 'vmid':
                    return value.strip() or None
    except OSError:
        return None
    return None


def qemu_cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read().split(b'\0')
    except OSError:
        return []


def engine_qemu_pids(lab, name, vm_id=None):
    """Pids of the engine VM's qemu in host `name` (qemu started with -uuid vmid)."""
    h = lab.host(name)
    vm_id = vm_id or engine_vm_id(lab, name)
    if not vm_id:
        return []
    want = vm_id.encode()
    out = []
    for p in host_processes(h):
        argv = qemu_cmdline(p)
        if argv and os.path.basename(argv[0]).startswith(b'qemu') and want in argv:
            out.append(p)
    return out


def vm_kill(lab, name):
    lab.host(name)
    vm_id = engine_vm_id(lab, name)
    if vm_id is None:
        raise LabError('%s has no engine VM defined (no vmid in %s): deploy first, or run '
                       'hosted-engine-lab ha-prepare' % (name, HE_CONF))
    recs = _records(engine_qemu_pids(lab, name, vm_id))
    if not recs:
        raise LabError('no engine VM runs on %s (no qemu process of VM %s there)'
                       % (name, vm_id))
    _signal(recs, signal.SIGKILL)
    _wait_dead(name, recs)
    return vm_id, [r['pid'] for r in recs]


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _children(pid, pids):
    out = []
    for p in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open('/proc/%d/stat' % p) as f:
                data = f.read()
            if int(data[data.rindex(')') + 2:].split()[1]) == pid:
                out.append(p)
    return out


def kill_daemon(lab, name, daemon):
    """SIGKILL one daemon of the host; return (what, pids)."""
    if daemon not in KILL_DAEMONS:
        raise LabError('unknown daemon %r: use one of %s' % (daemon, ', '.join(KILL_DAEMONS)))
    h = lab.host(name)
    if daemon in HA_UNITS:
        unit = HA_UNITS[daemon]
        rec = lab.service(name, unit)
        if not alive(rec):
            raise LabError('%s is not running on %s: start it first (hosted-engine-lab ha '
                           'start %s)' % (unit, name, name))
        # the unit's main process leads its process group (the service manager starts it
        # in a session of its own): SIGKILL to the group, as a kill of its control group
        recs = _records([p for p in host_processes(h) if _pgid(p) == rec['pid']])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(rec['pid'], signal.SIGKILL)
        _wait_dead(name, recs)
        return unit, [r['pid'] for r in recs]
    rec = (h.get('daemons') or {}).get(daemon)
    if not alive(rec):
        raise LabError('%s is not running on %s: run hosted-engine-lab restart %s'
                       % (daemon, name, name))
    pids = [rec['pid']]
    if daemon == 'sanlock':   # its helper process (run as its child) goes with it
        pids += _children(rec['pid'], host_processes(h))
    recs = _records(pids)
    _signal(recs, signal.SIGKILL)
    _wait_dead(name, recs)
    return daemon, [r['pid'] for r in recs]


def inject(lab, name, kind, daemon=None, ms=None):
    """Inject fault `kind` into lab host `name`; return one line saying what was done.
    daemon: for kill; ms: for storage-slow, the delay in milliseconds."""
    if kind not in KINDS:
        raise LabError('unknown fault %r: use one of %s' % (kind, ', '.join(KINDS)))
    if kind == 'storage-slow':
        if ms is None:
            raise LabError('fault storage-slow needs a delay: hosted-engine-lab fault HOST '
                           'storage-slow MS (milliseconds, 1 to %d)' % gluster.MAX_DELAY_MS)
        if not 1 <= ms <= gluster.MAX_DELAY_MS:
            raise LabError('the delay of storage-slow must be 1 to %d ms, not %d'
                           % (gluster.MAX_DELAY_MS, ms))
    elif ms is not None:
        raise LabError('fault %s takes no delay (only storage-slow does)' % kind)
    if kind == 'kill':
        if daemon is None:
            raise LabError('fault kill needs a daemon: one of %s' % ', '.join(KILL_DAEMONS))
    elif daemon is not None:
        raise LabError('fault %s takes no daemon (only kill does)' % kind)
    if kind == 'crash':
        n = crash(lab, name)
        return '%s: crashed (%d processes killed at once, as a power cut)' % (name, n)
    if kind == 'freeze':
        n = freeze(lab, name)
        return '%s: frozen (%d processes stopped, as a hung host)' % (name, n)
    if kind == 'thaw':
        n = thaw(lab, name)
        return '%s: thawed (%d stopped processes continued)' % (name, n)
    if kind == 'partition':
        _link(lab, name, False)
        return ('%s: partitioned (its link %s on the lab bridge down: no host, gateway or '
                'engine reachable; %s)' % (name, _veth(name), 'the gluster volume unreachable'
                                           if lab.state.get('gluster') else 'storage untouched'))
    if kind == 'heal':
        _link(lab, name, True)
        return '%s: healed (its link %s on the lab bridge up again)' % (name, _veth(name))
    if kind == 'vm-kill':
        vm_id, pids = vm_kill(lab, name)
        return '%s: engine VM %s killed (qemu %s, SIGKILL)' % (
            name, vm_id, ', '.join(map(str, pids)))
    if kind in GLUSTER_KINDS:
        lab.host(name)
        gluster.require(lab, kind)
    if kind == 'storage-loss':
        ports = gluster.storage_ports(lab, name)
        gluster.storage_loss(lab, name, ports)
        return ('%s: storage lost (what it sends to glusterd and the bricks of volume %s '
                'dropped: TCP ports %s; management network untouched)'
                % (name, lab.state['gluster']['volume'], ', '.join(map(str, ports))))
    if kind == 'storage-slow':
        ports = gluster.storage_ports(lab, name)
        pid = gluster.storage_slow(lab, name, ports, ms)
        return ('%s: storage slowed (what it sends to glusterd and the bricks of volume %s, '
                'TCP ports %s, held %d ms by delayer %d; management network untouched)'
                % (name, lab.state['gluster']['volume'], ', '.join(map(str, ports)), ms, pid))
    if kind == 'storage-back':
        undone = gluster.storage_back(lab, name)
        return '%s: storage back (%s undone)' % (name, ', '.join(undone))
    if kind == 'brick-kill':
        pid = gluster.brick_kill(lab, name)
        return '%s: brick of volume %s killed (glusterfsd %d, SIGKILL)' % (
            name, lab.state['gluster']['volume'], pid)
    if kind == 'brick-back':
        pid = gluster.brick_back(lab, name)
        return '%s: brick of volume %s running again (glusterfsd %d; gluster volume start ' \
            '%s force)' % (name, lab.state['gluster']['volume'], pid,
                           lab.state['gluster']['volume'])
    what, pids = kill_daemon(lab, name, daemon)
    return '%s: %s killed (SIGKILL to %s)' % (name, what, ', '.join(map(str, pids)))


# ---------------------------------------------------------------- restart

def _mount_points(holder):
    with open('/proc/%d/mountinfo' % holder) as f:
        return [line.split()[4] for line in f]


def clean_run(lab, name):
    """Empty the host's /run as a boot finds it: what the killed daemons left there (pid
    files, sockets, lock files, libvirt's domain status, the units' records) is removed;
    RUN_KEEP, the enable marks and whatever is mounted stay. Return how many entries went."""
    holder = lab.host(name)['holder']['pid']
    root = '/proc/%d/root' % holder
    mounts = [m for m in _mount_points(holder) if m.startswith('/run/')]
    removed = 0
    for entry in sorted(os.listdir(root + '/run')):
        path = '/run/' + entry
        if entry in RUN_KEEP or any(m == path or m.startswith(path + '/') for m in mounts):
            continue
        _remove(root + path)
        removed += 1
    for sub in ('/run/lock',):
        for entry in os.listdir(root + sub):
            _remove(root + sub + '/' + entry)
            removed += 1
    state = root + systemctl.STATE_DIR
    for entry in os.listdir(state):
        if entry.endswith('.json') or entry.endswith('.json.tmp'):
            os.unlink(os.path.join(state, entry))
            removed += 1
    return removed


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def enabled_units(lab, name):
    """The units enabled in the host's service manager (started at boot)."""
    holder = lab.host(name)['holder']['pid']
    d = '/proc/%d/root%s/enabled' % (holder, systemctl.STATE_DIR)
    try:
        return sorted(fn[:-len('.service')] for fn in os.listdir(d) if fn.endswith('.service'))
    except FileNotFoundError:
        return []


def start_enabled_units(lab, name, timeout=BOOT_UNITS_TIMEOUT):
    """`systemctl start` of the enabled units, as a boot does; wait until each runs (the
    broker: its socket). Return the units started."""
    units = enabled_units(lab, name)
    if not units:
        return []
    holder = lab.state['hosts'][name]['holder']['pid']
    r = lab.run_in(holder, ['systemctl', 'start'] + units, check=False, timeout=300)
    if r.returncode != 0:
        raise LabError('%s: systemctl start %s failed at boot: %s'
                       % (name, ' '.join(units), (r.stderr or r.stdout).strip()))
    deadline = time.monotonic() + timeout
    for unit in units:
        while True:
            rec = lab.service(name, unit)
            ready = alive(rec) and (unit != 'ovirt-ha-broker' or os.path.exists(
                '/proc/%d/root%s' % (holder, HA_SOCKET)))
            if ready:
                break
            if rec is not None and not alive(rec):
                raise LabError('%s exited at boot on %s; its log: %s'
                               % (unit, name, rec.get('log')))
            if time.monotonic() > deadline:
                raise LabError('%s did not come up within %d s of boot on %s; its log: '
                               '/var/log/lab/%s.log' % (unit, timeout, name, unit))
            time.sleep(0.2)
    return units


def start_daemon(lab, name, daemon):
    """Start a killed base daemon of host `name` again, as a real host's service manager
    restarts vdsmd or libvirtd (the lab runs them without a unit). Return one line."""
    lab.load()
    h = lab.host(name)
    rec = (h.get('daemons') or {}).get(daemon)
    if rec is not None and alive(rec):
        raise LabError('%s: %s is running (pid %d): nothing to start' % (name, daemon,
                                                                         rec['pid']))
    t0 = time.monotonic()
    lab.start_base_daemon(name, daemon, report=lambda line: None)
    return '%s: %s started again in %.1f s' % (name, daemon, time.monotonic() - t0)


def restart(lab, name):
    """Boot host `name` again, as after a reboot: what still runs there is killed first
    (a power cycle: a frozen host, or one with a daemon killed), its /run emptied as a boot
    finds it, its link set up, its base daemons started as `up` starts them, then the units
    enabled in its service manager. Return one line."""
    h = lab.host(name)
    t0 = time.monotonic()
    killed = crash(lab, name) if host_processes(h) else 0
    removed = clean_run(lab, name)
    lab.load()
    mounts = gluster.unmount_stale(lab, name) if lab.state.get('gluster') else []
    _link(lab, name, True)
    started = []
    lab.start_host_daemons(name, with_hostd='hostd' in (h.get('daemons') or {}),
                           report=started.append)
    brick = ''
    if gluster.serves(lab.state, name):
        if gluster.loss_active(lab, name):
            brick = '; its brick not awaited: storage-loss holds'
        else:
            brick = '; brick %d started by glusterd' % gluster.wait_brick(lab, name)
    units = start_enabled_units(lab, name)
    daemons = [d for d in lab.boot_order(name) if d in lab.state['hosts'][name]['daemons']]
    return '%s: restarted in %.0f s (%s%d leftovers removed from /run; %slink up; daemons ' \
        '%s started%s%s)' % (name, time.monotonic() - t0,
                             '%d processes killed first; ' % killed if killed else '', removed,
                             '%d glusterfs mounts detached; ' % len(mounts) if mounts else '',
                             ', '.join(daemons), brick,
                             '; units %s started' % ', '.join(units) if units else '')
