"""GlusterFS replica 3 in the lab (`hosted-engine-lab up --storage gluster`), and its faults.

oVirt's hyperconverged layout runs the storage on the hypervisor hosts themselves: a
Gluster volume of replica 3 with one brick on each of three hosts. In the lab:

- glusterd is a base daemon of host1, host2 and host3 (the servers), started after sanlock
  (by `up`, and by `restart HOST` as at a boot; `crash` kills it with the rest). Its
  working directory /var/lib/glusterd is the host's own (a per-host bind mount, seeded
  with the machine's option groups, `virt` among them); it listens on port 24007 in the
  host's network namespace, which is the lab network only;
- the volume VOLUME, replica 3, one brick per server in the host's own directory
  (<lab dir>/hosts/hostK/gluster-bricks/VOLUME), with oVirt's options (VOLUME_OPTIONS, as
  "Preparing Gluster Storage" gives them);
- its connection string (`host1:/engine`), the backup volfile servers (`host2:host3`) and
  the mount options are kept in the lab state (state['gluster']) and shown by `status`.

Faults (lab/faults.py calls these):

- storage-loss: the host's path to the volume cut: an nft table in the host's network
  namespace drops what the host sends to glusterd (TCP 24007) and to the volume's bricks
  (their ports, read from `gluster volume status VOLUME --xml`), its own included; the
  management network (gateway, host agent, SSH) is untouched. I/O on the host's mount hangs
  until gluster's ping-timeout, then fails.
- storage-slow MS: every packet the host sends to glusterd or a brick held MS milliseconds
  (a user-space delayer on a tun device, see "storage-slow" below).
- storage-back: undoes either (both).
- brick-kill: the host's brick process (glusterfsd) of the volume killed (SIGKILL).
- brick-back: `gluster volume start VOLUME force`, which starts the bricks that are down.
"""
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

from ovirt_hosted_engine_setup.he_storage import layout

from . import paths
from .lab import LabError, alive, kill_pids, pids_in_ns, proc_start, record

VOLUME = 'engine'
SERVERS = 3                      # replica 3: glusterd and one brick on each of 3 hosts
GLUSTERD_DIR = '/var/lib/glusterd'
HOST_DIR = 'var-lib-glusterd'    # the per-host directory bind-mounted over GLUSTERD_DIR
BRICKS_DIR = 'gluster-bricks'    # under the host's own directory
GLUSTERD_PORT = 24007
# oVirt's volume options for a storage domain ("Preparing Gluster Storage"), in this order:
# the virt group first, the options that differ from it after
VOLUME_OPTIONS = (
    ('group', 'virt'),
    ('performance.strict-o-direct', 'on'),
    ('network.remote-dio', 'off'),
    ('storage.owner-uid', '36'),
    ('storage.owner-gid', '36'),
    ('network.ping-timeout', '30'),
)
NFT_TABLE = 'lab_storage_loss'
COMMANDS = ('glusterd', 'gluster', 'glusterfs', 'glusterfsd', 'mount.glusterfs', 'nft')
CLI_TIMEOUT = 60


# ---------------------------------------------------------------- the plan

def plan(lab_dir, names):
    """The gluster part of the lab state for hosts `names` (the first SERVERS serve)."""
    if len(names) < SERVERS:
        raise LabError('--storage gluster needs at least %d hosts (replica %d, one brick '
                       'per host): use --hosts %d or more' % (SERVERS, SERVERS, SERVERS))
    servers = list(names[:SERVERS])
    bricks = {n: os.path.join(lab_dir, 'hosts', n, BRICKS_DIR, VOLUME) for n in servers}
    backup = ':'.join(servers[1:])
    return {
        'volume': VOLUME,
        'replica': SERVERS,
        'servers': servers,
        'bricks': bricks,
        'connection': '%s:/%s' % (servers[0], VOLUME),
        'backup_volfile_servers': backup,
        'mount_options': 'backup-volfile-servers=%s' % backup,
        'options': [list(o) for o in VOLUME_OPTIONS],
    }


def check_installed(path):
    """Refuse, in one line, a machine without the Gluster server and client."""
    missing = [c for c in COMMANDS if not shutil.which(c, path=path)]
    if missing:
        raise LabError('--storage gluster needs glusterfs-server and glusterfs-client (missing '
                       '%s): run scripts/bootstrap' % ', '.join(missing))


def serves(state, name):
    """Whether host `name` runs glusterd and a brick of the lab's volume."""
    g = (state or {}).get('gluster')
    return bool(g) and name in g['servers']


def mount_point(g):
    """Where a host mounts the volume, as VDSM does: glusterSD/<server>:_<volume> (the
    project's one mount point function, he_storage/layout.py)."""
    return layout.mount_point(g['connection'], domain_type='glusterfs')


def mount_command(g, target=None):
    """`mount -t glusterfs` of the volume at target (default mount_point(g))."""
    return ['mount', '-t', 'glusterfs', '-o', g['mount_options'], g['connection'],
            target or mount_point(g)]


def prepare_host_dir(host_dir, g, name):
    """Seed the host's own /var/lib/glusterd (the machine's option groups, which `volume set
    group virt` reads; no hooks: they would act on the machine's /etc) and its brick
    directory, for a server; glusterd's log directory for every host."""
    os.makedirs(os.path.join(host_dir, 'var-log', 'glusterfs'), exist_ok=True)
    if not serves({'gluster': g}, name):
        return
    groups = os.path.join(GLUSTERD_DIR, 'groups')
    if not os.path.isfile(os.path.join(groups, 'virt')):
        raise LabError('%s/virt is missing (glusterfs-server not installed): run '
                       'scripts/bootstrap' % groups)
    shutil.copytree(groups, os.path.join(host_dir, HOST_DIR, 'groups'))
    os.makedirs(g['bricks'][name])


# ---------------------------------------------------------------- glusterd

def glusterd_command():
    """glusterd in the foreground (its pid is the recorded one), logging into the host's
    /var/log/glusterfs."""
    return ['glusterd', '-N', '--log-file=/var/log/glusterfs/glusterd.log',
            '--pid-file=/run/glusterd.pid']


def cli(volume_args, xml=False):
    """The gluster command line in script mode (no questions)."""
    return ['gluster', '--mode=script'] + (['--xml'] if xml else []) + list(volume_args)


def _run(lab, name, args, xml=False, timeout=CLI_TIMEOUT, check=True):
    pid = lab.state['hosts'][name]['holder']['pid']
    r = lab.run_in(pid, cli(args, xml), check=False, timeout=timeout)
    if check and r.returncode != 0:
        raise LabError('%s: gluster %s failed (exit %d): %s' % (
            name, ' '.join(args), r.returncode,
            ' '.join((r.stderr or r.stdout or '').split())))
    return r


def glusterd_ready(lab, name):
    return _run(lab, name, ['pool', 'list'], timeout=20, check=False).returncode == 0


def parse_pool(text):
    """{hostname: connected?} from `gluster pool list` (localhost left out)."""
    out = {}
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) >= 3 and f[1] != 'localhost':
            out[f[1]] = f[2] == 'Connected'
    return out


def create_volume(lab, say):
    """Peer the servers, create the replica 3 volume with VOLUME_OPTIONS and start it;
    wait until every brick is online."""
    g = lab.state['gluster']
    first, others = g['servers'][0], g['servers'][1:]
    t0 = time.monotonic()
    for peer in others:
        _run(lab, first, ['peer', 'probe', peer])
    _wait('the servers to be peers', lambda: all(
        parse_pool(_run(lab, first, ['pool', 'list']).stdout).get(p) for p in others), 60)
    _run(lab, first, ['volume', 'create', g['volume'], 'replica', str(g['replica'])] +
         ['%s:%s' % (n, g['bricks'][n]) for n in g['servers']] + ['force'])
    for key, value in g['options']:
        _run(lab, first, ['volume', 'set', g['volume'], key, value])
    _run(lab, first, ['volume', 'start', g['volume']])
    _wait('the bricks of volume %s to be online' % g['volume'],
          lambda: all(b['online'] for b in volume_status(lab, first).values()), 60)
    say('gluster volume %s: replica %d on %s, started (%.1f s); connection %s, mount options %s'
        % (g['volume'], g['replica'], ', '.join(g['servers']), time.monotonic() - t0,
           g['connection'], g['mount_options']))


def _wait(what, predicate, timeout, interval=0.3):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            if predicate():
                return
        except LabError as e:
            last = e
        if time.monotonic() > deadline:
            raise LabError('timed out after %d s waiting for %s%s'
                           % (timeout, what, ' (%s)' % last if last else ''))
        time.sleep(interval)


# ---------------------------------------------------------------- reading the volume

def parse_volume_status(text, bricks):
    """{host: {'path', 'online', 'port', 'pid'}} of the volume's bricks from
    `gluster volume status VOLUME --xml` (the self-heal daemons left out)."""
    root = ET.fromstring(text)
    ret = root.findtext('opRet')
    if ret is not None and ret.strip() != '0':
        raise LabError('gluster volume status failed: %s'
                       % (root.findtext('opErrstr') or 'no reason given'))
    out = {}
    for node in root.iter('node'):
        host, path = node.findtext('hostname'), node.findtext('path')
        if bricks.get(host) != path:
            continue
        port = node.findtext('ports/tcp') or node.findtext('port') or ''
        pid = node.findtext('pid') or ''
        out[host] = {'path': path, 'online': node.findtext('status') == '1',
                     'port': int(port) if port.isdigit() and int(port) > 0 else None,
                     'pid': int(pid) if pid.isdigit() and int(pid) > 0 else None}
    return out


def volume_status(lab, via):
    g = lab.state['gluster']
    r = _run(lab, via, ['volume', 'status', g['volume']], xml=True)
    return parse_volume_status(r.stdout, g['bricks'])


def parse_volume_info(text):
    """{'name', 'type', 'replica', 'bricks': [...], 'options': {key: value}} from
    `gluster volume info VOLUME --xml`."""
    root = ET.fromstring(text)
    vol = root.find('volInfo/volumes/volume')
    if vol is None:
        raise LabError('gluster volume info printed no volume')
    return {'name': vol.findtext('name'), 'type': vol.findtext('typeStr'),
            'status': vol.findtext('statusStr'),
            'replica': int(vol.findtext('replicaCount') or 0),
            'bricks': [b.findtext('name') for b in vol.findall('bricks/brick')],
            'options': {o.findtext('name'): o.findtext('value')
                        for o in vol.findall('options/option')}}


def brick_pid(lab, name):
    """The pid of host `name`'s brick process (glusterfsd) of the volume, read from /proc
    (so a frozen or cut-off host never blocks it), or None."""
    g = lab.state['gluster']
    h = lab.state['hosts'][name]
    want = g['bricks'].get(name)
    if want is None:
        return None
    for pid in pids_in_ns('mnt', (h.get('ns') or {}).get('mnt'), h.get('holder')):
        argv = _cmdline(pid)
        if argv and os.path.basename(argv[0]) == 'glusterfsd' and \
                _arg(argv, '--brick-name') == want and proc_start(pid) is not None:
            return pid
    return None


def gluster_pids(lab, name):
    """Every gluster process of host `name` (glusterd, bricks, self-heal daemon, clients)."""
    h = lab.state['hosts'][name]
    return [p for p in pids_in_ns('mnt', (h.get('ns') or {}).get('mnt'), h.get('holder'))
            if _cmdline(p) and os.path.basename(_cmdline(p)[0]).startswith('gluster')]


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return [a.decode(errors='replace') for a in f.read().split(b'\0') if a]
    except OSError:
        return []


def _arg(argv, opt):
    for i, a in enumerate(argv):
        if a == opt and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(opt + '='):
            return a[len(opt) + 1:]
    return None


def wait_brick(lab, name, timeout=60):
    """Wait until host `name`'s brick process runs; return its pid."""
    deadline = time.monotonic() + timeout
    while True:
        pid = brick_pid(lab, name)
        if pid:
            return pid
        if time.monotonic() > deadline:
            raise LabError('%s: its brick of volume %s did not start within %d s; '
                           "glusterd's log: /var/log/glusterfs/glusterd.log in the host"
                           % (name, lab.state['gluster']['volume'], timeout))
        time.sleep(0.3)


def _reachable_server(lab, prefer):
    """A server whose glusterd runs, `prefer` first."""
    g = lab.state['gluster']
    for n in [prefer] + [s for s in g['servers'] if s != prefer]:
        h = lab.state['hosts'].get(n) or {}
        if n in g['servers'] and alive((h.get('daemons') or {}).get('glusterd')):
            return n
    raise LabError('no glusterd of volume %s runs (%s): restart a host'
                   % (g['volume'], ', '.join(g['servers'])))


def require(lab, what):
    g = (lab.state or {}).get('gluster')
    if not g:
        raise LabError('%s needs a gluster lab: the storage of this lab is a local '
                       'directory (hosted-engine-lab up --storage gluster)' % what)
    return g


# ---------------------------------------------------------------- storage-loss / back

def _nft_output_table(table, hook, rule, ports):
    """An nft script that (re)makes `table` with one output chain (`hook`: its type, hook
    and priority) whose one rule applies `rule` (its text before and after the port set,
    '{ports}' in it) to TCP traffic to `ports`."""
    ports = sorted(set(int(p) for p in ports))
    return ('table inet {t}\ndelete table inet {t}\n'
            'table inet {t} {{\n'
            '  chain output {{\n'
            '    type {hook}; policy accept;\n'
            '    {rule}\n'
            '  }}\n'
            '}}\n').format(t=table, hook=hook,
                          rule=rule.replace('{ports}', '{ %s }' % ', '.join(map(str, ports))))


def nft_loss_script(ports):
    """The nft table that drops what the host sends to glusterd and to the bricks."""
    return _nft_output_table(NFT_TABLE, 'filter hook output priority 0',
                             'tcp dport {ports} drop', ports)


def storage_ports(lab, name):
    """glusterd's port and the ports of the volume's online bricks (read from a running
    glusterd, the host's own first)."""
    require(lab, 'storage-loss')
    via = _reachable_server(lab, name)
    bricks = volume_status(lab, via)
    return [GLUSTERD_PORT] + sorted(b['port'] for b in bricks.values() if b['port'])


def storage_loss(lab, name, ports):
    """Cut the host's path to the volume: drop what it sends to TCP `ports` (see
    storage_ports)."""
    pid = lab.state['hosts'][name]['holder']['pid']
    r = subprocess.run(lab.nsenter(pid) + ['nft', '-f', '-'], input=nft_loss_script(ports),
                       capture_output=True, text=True, timeout=30, env=lab.env())
    if r.returncode != 0:
        raise LabError('%s: cannot install the nft table %s: %s'
                       % (name, NFT_TABLE, ' '.join(r.stderr.split())))
    lab.state['hosts'][name]['storage_loss'] = {'ports': sorted(ports)}
    lab.save()
    return ports


def loss_active(lab, name):
    pid = lab.state['hosts'][name]['holder']['pid']
    return lab.run_in(pid, ['nft', 'list', 'table', 'inet', NFT_TABLE], check=False,
                      timeout=30).returncode == 0


def storage_back(lab, name):
    """Remove what storage-loss and storage-slow did on the host; return what was undone."""
    require(lab, 'storage-back')
    undone = []
    pid = lab.state['hosts'][name]['holder']['pid']
    if loss_active(lab, name):
        lab.run_in(pid, ['nft', 'delete', 'table', 'inet', NFT_TABLE], timeout=30)
        undone.append('storage-loss')
    if lab.state['hosts'][name].pop('storage_loss', None) is not None:
        lab.save()
    if slow_active(lab, name):
        slow_back(lab, name)
        undone.append('storage-slow')
    if not undone:
        raise LabError('%s has no storage fault to undo (no storage-loss or storage-slow on '
                       'it)' % name)
    return undone


# ---------------------------------------------------------------- storage-slow
#
# The kernel this runs on may lack netem (and prio, and nft's queue): the delay is made in
# user space. Packets the host sends to glusterd or a brick (not over 127.0.0.0/8) get a
# firewall mark in an nft `route` chain, which routes them again: a rule of the host's
# (before its `local` table, so that its own brick is covered too) sends marked packets to
# a tun device. A delayer process (`python -m ovirt_hosted_engine_setup.lab.gluster delay`)
# holds what it reads there MS milliseconds and writes it back into the tun device, as if
# received: the host forwards it to the other server (ip_forward) or delivers it locally
# (accept_local). What comes back to the host is not delayed: a round trip gains MS.
# The delayer lives in the host's network namespace only (not its mount namespace), so a
# crash or restart of the host leaves the slow path as it is, as storage-loss does.

SLOW_DEVICE = 'lab-slow'
SLOW_TABLE = 'lab_storage_slow'
SLOW_MARK = 0x4c47
SLOW_ROUTE_TABLE = 147
SLOW_RULE_PREF = 10
LOCAL_RULE_PREF = 20             # the `local` rule's place while a host is slowed
SLOW_DAEMON = 'storage-slow'     # its record in the host's daemons
MAX_DELAY_MS = 60000
TUN_MTU = 65535                  # what a loopback connection sends fits in one packet


def nft_slow_script(ports):
    """The nft table that marks what the host sends to glusterd and to the bricks, for the
    route into the delayer's tun device."""
    return _nft_output_table(SLOW_TABLE, 'route hook output priority mangle',
                             'ip daddr != 127.0.0.0/8 tcp dport {ports} meta mark set %#x'
                             % SLOW_MARK, ports)


def slow_setup_script():
    """What routes the marked packets into the delayer's tun device (in the host)."""
    dev = SLOW_DEVICE
    return [
        ['ip', 'link', 'set', dev, 'mtu', str(TUN_MTU), 'txqueuelen', '10000', 'up'],
        ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1',
         'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.%s.rp_filter=0' % dev,
         'net.ipv4.conf.%s.accept_local=1' % dev],
        ['ip', 'route', 'replace', 'default', 'dev', dev, 'table', str(SLOW_ROUTE_TABLE)],
        ['ip', 'rule', 'add', 'pref', str(LOCAL_RULE_PREF), 'lookup', 'local'],
        ['ip', 'rule', 'del', 'pref', '0', 'lookup', 'local'],
        ['ip', 'rule', 'add', 'pref', str(SLOW_RULE_PREF), 'fwmark', '%#x' % SLOW_MARK,
         'lookup', str(SLOW_ROUTE_TABLE)],
    ]


SAVED_SYSCTLS = ('net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter')


def has_device(pid, dev):
    """Whether the network namespace of process pid has device dev."""
    try:
        with open('/proc/%d/net/dev' % pid) as f:
            return any(line.split(':', 1)[0].strip() == dev for line in f)
    except OSError:
        return False


def slow_active(lab, name):
    return alive(lab.state['hosts'][name]['daemons'].get(SLOW_DAEMON)) or \
        bool(lab.state['hosts'][name].get('storage_slow'))


def storage_slow(lab, name, ports, ms):
    """Hold every packet the host sends to TCP `ports` (glusterd, the bricks) ms milliseconds;
    return the delayer's pid."""
    if slow_active(lab, name):
        raise LabError('%s is already slowed (storage-slow %d ms): hosted-engine-lab fault %s '
                       'storage-back first' % (name, lab.state['hosts'][name]
                                               .get('storage_slow', {}).get('ms', 0), name))
    h = lab.state['hosts'][name]
    holder = h['holder']['pid']
    saved = {}
    for key in SAVED_SYSCTLS:
        saved[key] = lab.run_in(holder, ['sysctl', '-n', key], timeout=30).stdout.strip()
    log = os.path.join(h['dir'], 'var-log', 'lab', '%s.log' % SLOW_DAEMON)
    with open(log, 'ab') as out:
        p = subprocess.Popen(
            ['nsenter', '-t', str(holder), '-n', '--',
             os.path.join(paths.venv_bin(), 'python'), '-m',
             'ovirt_hosted_engine_setup.lab.gluster', 'delay', '--device', SLOW_DEVICE,
             '--ms', str(ms)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd='/', env=lab.env())
    h['daemons'][SLOW_DAEMON] = dict(record(p.pid), log=log)
    h['storage_slow'] = {'ms': ms, 'ports': sorted(ports), 'saved': saved}
    lab.save()
    try:
        deadline = time.monotonic() + 20
        while not has_device(holder, SLOW_DEVICE):
            if p.poll() is not None:
                raise LabError('%s: the storage delayer exited at start; its log: %s'
                               % (name, log))
            if time.monotonic() > deadline:
                raise LabError('%s: the storage delayer made no device %s within 20 s; its '
                               'log: %s' % (name, SLOW_DEVICE, log))
            time.sleep(0.05)
        for cmd in slow_setup_script():
            lab.run_in(holder, cmd, timeout=30)
        r = subprocess.run(lab.nsenter(holder) + ['nft', '-f', '-'],
                           input=nft_slow_script(ports), capture_output=True, text=True,
                           timeout=30, env=lab.env())
        if r.returncode != 0:
            raise LabError('%s: cannot install the nft table %s: %s'
                           % (name, SLOW_TABLE, ' '.join(r.stderr.split())))
    except BaseException:
        slow_back(lab, name)
        raise
    return p.pid


def slow_back(lab, name):
    """Undo storage-slow on the host (whatever part of it is in place): the nft table, the
    rules (the `local` rule back at 0), the route table, the sysctls as they were, the
    delayer."""
    h = lab.state['hosts'][name]
    holder = h['holder']['pid']
    slow = h.pop('storage_slow', None) or {}
    lab.run_in(holder, ['nft', 'delete', 'table', 'inet', SLOW_TABLE], check=False, timeout=30)
    prefs = rule_prefs(lab.run_in(holder, ['ip', 'rule', 'show'], timeout=30).stdout)
    cmds = []
    if SLOW_RULE_PREF in prefs:
        cmds.append(['ip', 'rule', 'del', 'pref', str(SLOW_RULE_PREF)])
    if 0 not in prefs:
        cmds.append(['ip', 'rule', 'add', 'pref', '0', 'lookup', 'local'])
    if LOCAL_RULE_PREF in prefs:
        cmds.append(['ip', 'rule', 'del', 'pref', str(LOCAL_RULE_PREF)])
    cmds.append(['ip', 'route', 'flush', 'table', str(SLOW_ROUTE_TABLE)])
    if slow.get('saved'):
        cmds.append(['sysctl', '-q', '-w'] + ['%s=%s' % kv for kv in sorted(slow['saved'].items())])
    errors = []
    for cmd in cmds:
        r = lab.run_in(holder, cmd, check=False, timeout=30)
        if r.returncode != 0 and 'flush' not in cmd:
            errors.append('%s: %s' % (' '.join(cmd), ' '.join((r.stderr or '').split())))
    rec = h['daemons'].pop(SLOW_DAEMON, None)
    lab.save()
    if alive(rec):
        kill_pids([rec['pid']])
    if errors:
        raise LabError('%s: storage-slow not fully undone: %s' % (name, '; '.join(errors)))


def rule_prefs(text):
    """The preferences of `ip rule show`'s rules."""
    return {int(m.group(1)) for m in re.finditer(r'^(\d+):', text, re.M)}


def delay_main(device, ms):
    """The delayer: make tun `device`, hold each packet read from it ms milliseconds and
    write it back. Runs until killed."""
    import collections
    import fcntl
    import struct
    import threading
    TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454ca, 0x0001, 0x1000
    fd = os.open('/dev/net/tun', os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', device.encode(), IFF_TUN | IFF_NO_PI))
    delay = ms / 1000.0
    queue = collections.deque()
    ready = threading.Condition()

    def writer():
        while True:
            with ready:
                while not queue:
                    ready.wait()
                due, pkt = queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with ready:
                queue.popleft()
            try:
                os.write(fd, pkt)
            except OSError as e:   # a packet the host no longer takes: dropped, as a link may
                print('write: %s' % e, flush=True)

    threading.Thread(target=writer, daemon=True).start()
    print('delaying what %s gets by %d ms' % (device, ms), flush=True)
    while True:
        pkt = os.read(fd, TUN_MTU + 64)
        with ready:
            queue.append((time.monotonic() + delay, pkt))
            ready.notify()


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog='python -m ovirt_hosted_engine_setup.lab.gluster',
                                description='the lab storage delayer (storage-slow)')
    sub = p.add_subparsers(dest='command', required=True)
    d = sub.add_parser('delay')
    d.add_argument('--device', required=True)
    d.add_argument('--ms', type=int, required=True)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    delay_main(args.device, args.ms)



# ---------------------------------------------------------------- bricks

def brick_kill(lab, name):
    """SIGKILL the host's brick process of the volume; return its pid."""
    g = require(lab, 'brick-kill')
    if name not in g['servers']:
        raise LabError('%s has no brick of volume %s: its bricks are on %s'
                       % (name, g['volume'], ', '.join(g['servers'])))
    pid = brick_pid(lab, name)
    if pid is None:
        raise LabError('the brick of volume %s on %s is not running: hosted-engine-lab '
                       'fault %s brick-back starts it' % (g['volume'], name, name))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    # until the process is reaped: glusterd takes a brick whose pid is still in /proc (a
    # zombie) for running, and `volume start force` would then leave it down
    deadline = time.monotonic() + 20
    while os.path.exists('/proc/%d' % pid):
        if time.monotonic() > deadline:
            raise LabError('%s: brick process %d still in /proc 20 s after SIGKILL'
                           % (name, pid))
        time.sleep(0.05)
    return pid


def brick_back(lab, name):
    """`gluster volume start VOLUME force` (starts the bricks that are down); wait for the
    host's brick; return its pid."""
    g = require(lab, 'brick-back')
    if name not in g['servers']:
        raise LabError('%s has no brick of volume %s: its bricks are on %s'
                       % (name, g['volume'], ', '.join(g['servers'])))
    if brick_pid(lab, name):
        raise LabError('the brick of volume %s on %s is running: nothing to bring back'
                       % (g['volume'], name))
    if not alive(lab.state['hosts'][name]['daemons'].get('glusterd')):
        raise LabError('glusterd is not running on %s: hosted-engine-lab restart %s '
                       'starts it and its brick' % (name, name))
    _run(lab, name, ['volume', 'start', g['volume'], 'force'])
    return wait_brick(lab, name, timeout=30)


# ---------------------------------------------------------------- boot

def unmount_stale(lab, name):
    """Detach the host's glusterfs mounts (a boot finds none; a crash leaves them with their
    client process dead); return the mount points."""
    pid = lab.state['hosts'][name]['holder']['pid']
    gone = []
    with open('/proc/%d/mountinfo' % pid) as f:
        for line in f:
            pre, _, post = line.partition(' - ')
            if post.split()[:1] == ['fuse.glusterfs']:
                gone.append(_unescape(pre.split()[4]))
    for mp in reversed(gone):
        lab.run_in(pid, ['umount', '-l', mp], timeout=30)
    return gone


def _unescape(path):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), path)


def faults_line(state):
    """`storage faults: host2 storage-loss, host3 storage-slow 400 ms` (None when none)."""
    out = []
    for name, h in sorted(state['hosts'].items(), key=lambda kv: kv[1]['index']):
        if h.get('storage_loss'):
            out.append('%s storage-loss' % name)
        if h.get('storage_slow'):
            out.append('%s storage-slow %d ms' % (name, h['storage_slow']['ms']))
    return 'storage faults: %s' % ', '.join(out) if out else None


def status_line(g):
    return ('gluster: volume %s replica %d on %s   connection %s   mount options %s'
            % (g['volume'], g['replica'], ', '.join(g['servers']), g['connection'],
               g['mount_options']))


if __name__ == '__main__':
    main()
