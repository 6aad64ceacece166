"""Lab hosts: namespaced hosts on one machine.

A lab host hostK is a holder process (`unshare --mount --uts --net sleep infinity`)
whose namespaces the lab enters with nsenter. Inside:
  - UTS: hostname hostK;
  - mount: a private /run (tmpfs) and per-host directories bind-mounted over
    HOST_DIRS (logs, libvirt's state and config, the host agent's root, the
    HA services' directories, /rhev); everything else (the checkout, /var/tmp,
    /usr, the shared storage directory) is the machine's own;
  - network: lo, and eth0, one end of a veth pair whose other end sits on the
    bridge LAB_BRIDGE in the lab network namespace (a second holder). The lab
    network is SUBNET.0/24 with the gateway address SUBNET.1 on that bridge;
    nothing in it is connected to the machine's network. The lab DNS server (dnsmasq,
    lab/dns.py) answers the lab's names on the gateway address; every host's
    /etc/resolv.conf names it.
Daemons per host: sanlock (with the container workaround library preloaded),
virtlogd, libvirtd, the host agent ovirt-hosted-engine-hostd, and sshd with the host's own
keys, /etc/ssh and root password (lab/sshd.py). Each host also has
a service manager (lab/systemctl.py) that `systemctl` in the host reaches: the HA
services are its units, started and stopped with `systemctl` as on any host.

Everything the lab starts is recorded in <lab dir>/state.json with its pid and
start time; `down` stops every process living in the lab's namespaces by pid
(SIGTERM, then SIGKILL after a grace period). The namespaces and their mounts
vanish with their last process.

Over 600 lines because a lab host's whole life is one piece: bringing its namespaces and
daemons up, its HA units, its status and taking it down share the state file and the
holder processes (the service manager, the guest image and the appliance are apart).
"""
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

from ovirt_hosted_engine_setup.he_storage import layout
from ovirt_hosted_engine_setup.lab import dns, paths, preload, sshd, systemctl
from ovirt_hosted_engine_setup.lab.systemctl import proc_start

SUBNET = '192.168.222'
PREFIX = 24
GATEWAY = SUBNET + '.1'
DOMAIN = 'lab.test'
ENGINE_ADDRESS = SUBNET + '.200'
ENGINE_FQDN = 'engine.' + DOMAIN
LAB_BRIDGE = 'labbr0'
# The lab bridge's own MAC address, set once: a Linux bridge without one takes the lowest
# MAC of its ports, so a port added or removed (the standalone engine's) would change the
# gateway's MAC under the hosts' ARP caches and the gateway would stop answering them for
# tens of seconds.
LAB_BRIDGE_MAC = '02:4c:41:42:00:01'
HOSTD_PORT = 54321
HOSTD_ROOT = '/var/lib/ovirt-hosted-engine-hostd'
MAX_HOSTS = 20
GRACE = 5.0

# Directories each host has privately: mount point -> per-host directory name.
HOST_DIRS = [
    ('/var/log', 'var-log'),
    ('/var/lib/libvirt', 'var-lib-libvirt'),
    ('/var/cache/libvirt', 'var-cache-libvirt'),
    ('/etc/libvirt', 'etc-libvirt'),
    ('/etc/ovirt-hosted-engine', 'etc-ovirt-hosted-engine'),
    ('/etc/ovirt-hosted-engine-ha', 'etc-ovirt-hosted-engine-ha'),
    ('/var/lib/ovirt-hosted-engine-ha', 'var-lib-ovirt-hosted-engine-ha'),
    ('/var/lib/ovirt-hosted-engine-setup', 'var-lib-ovirt-hosted-engine-setup'),
    (HOSTD_ROOT, 'var-lib-ovirt-hosted-engine-hostd'),
    ('/rhev', 'rhev'),
    ('/var/lib/glusterd', 'var-lib-glusterd'),   # glusterd's own, in a gluster lab (gluster.py)
]

# a lab host's base daemons, in the order `up` (and a restart, as a boot) starts them
BASE_DAEMONS = ('sanlock', 'virtlogd', 'libvirtd', 'hostd', 'sshd')
# glusterd: a base daemon of the volume's servers in a gluster lab (lab/gluster.py), started
# right after sanlock
GLUSTERD = 'glusterd'
STORAGE_KINDS = ('dir', 'gluster')
DAEMONS = BASE_DAEMONS + ('ha-broker', 'ha-agent')
# The HA services: status column -> unit of the host's service manager (lab/systemctl.py).
HA_DAEMONS = (('ha-broker', 'ovirt-ha-broker'), ('ha-agent', 'ovirt-ha-agent'))
HA_SOCKET = '/run/ovirt-hosted-engine-ha/broker.socket'

REQUIRED_COMMANDS = ['unshare', 'nsenter', 'ip', 'sanlock', 'virtlogd', 'libvirtd', 'virsh',
                     'qemu-system-x86_64', 'qemu-img', 'sshd', 'ssh-keygen', 'openssl',
                     dns.DNSMASQ]

LIBVIRT_QEMU_CONF = """\
# Lab host: libvirt's sanlock lock driver, qemu as root, no cgroups,
# security drivers or private /dev (the lab host is already a namespace).
lock_manager = "sanlock"
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
"""

LIBVIRT_SANLOCK_CONF = """\
auto_disk_leases = 0
require_lease_for_disks = 0
"""

LIBVIRTD_CONF = """\
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_rw_perms = "0770"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log 3:stderr"
"""


class LabError(Exception):
    """A problem a user can fix; the message says how."""


def say(msg):
    with _print_lock:
        print('[lab] %s' % msg, flush=True)


_print_lock = threading.Lock()


# ---------------------------------------------------------------- processes

def record(pid):
    return {'pid': pid, 'start': proc_start(pid)}


alive = systemctl.record_alive


def ns_id(pid, kind):
    try:
        return os.readlink('/proc/%d/ns/%s' % (pid, kind))
    except OSError:
        return None


def pids_in_ns(kind, nsid, holder):
    """Pids of the processes in namespace nsid (never our own namespace), `holder` (the
    record of the process that keeps the namespace) included.

    Known only while the holder lives in it: once a namespace is gone the kernel gives its
    number to the next new namespace, another lab's maybe, whose processes must never be
    taken for this lab's. Without its holder a namespace of the lab has no process left
    (the holder is the last process `down` stops), so the answer is then empty."""
    if not nsid or nsid == ns_id(os.getpid(), kind):
        return []
    if not alive(holder) or ns_id(holder['pid'], kind) != nsid:
        return []
    out = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            pid = int(name)
            if ns_id(pid, kind) == nsid and proc_start(pid) is not None:
                out.append(pid)
    return out


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def kill_pids(pids, grace=GRACE):
    """SIGTERM the processes, SIGKILL what is left after grace seconds; wait for them."""
    recs = [r for r in (record(p) for p in pids) if r['start'] is not None]
    for r in recs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(r['pid'], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for r in recs:
            _reap(r['pid'])
        recs = [r for r in recs if alive(r)]
        if not recs:
            return
        time.sleep(0.1)
    for r in recs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(r['pid'], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while recs and time.monotonic() < deadline:
        for r in recs:
            _reap(r['pid'])
        recs = [r for r in recs if alive(r)]
        time.sleep(0.05)


# ---------------------------------------------------------------- the lab

class Lab:
    def __init__(self, lab_dir=None):
        self.dir = os.path.abspath(lab_dir or paths.lab_dir())
        if self.dir == '/':
            raise LabError('the lab directory cannot be /: set OVIRT_HE_LAB_DIR to a directory '
                           'of its own')
        self.state_path = os.path.join(self.dir, 'state.json')
        self.storage = os.path.join(self.dir, 'storage')
        self.state = None
        self._state_lock = threading.Lock()

    # state ---------------------------------------------------------------
    def load(self):
        try:
            with open(self.state_path) as f:
                self.state = json.load(f)
        except FileNotFoundError:
            self.state = None
        return self.state

    def save(self):
        with self._state_lock:
            tmp = self.state_path + '.tmp'
            with open(tmp, 'w') as f:
                json.dump(self.state, f, indent=1, sort_keys=True)
            os.rename(tmp, self.state_path)

    @contextlib.contextmanager
    def locked(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, '.lock'), 'w') as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def host_dir(self, name):
        return os.path.join(self.dir, 'hosts', name)

    @staticmethod
    def address(index):
        return '%s.%d' % (SUBNET, 10 + index)

    def any_alive(self):
        st = self.state or {}
        if alive(st.get('net')) or alive(st.get('dns')):
            return True
        for h in st.get('hosts', {}).values():
            if alive(h.get('holder')) or any(alive(d) for d in h.get('daemons', {}).values()):
                return True
            if pids_in_ns('mnt', h.get('ns', {}).get('mnt'), h.get('holder')):
                return True
        return False

    def host(self, name):
        st = self.load()
        if not st:
            raise LabError('no lab is up in %s: run hosted-engine-lab up --hosts N' % self.dir)
        h = st['hosts'].get(name)
        if h is None:
            raise LabError('no lab host %r: the lab has %s' % (name, ', '.join(sorted(
                st['hosts'], key=lambda n: st['hosts'][n]['index']))))
        if not alive(h.get('holder')):
            raise LabError('lab host %s is not running: run hosted-engine-lab down, then up'
                           % name)
        return h

    # helpers ------------------------------------------------------------
    @staticmethod
    def nsenter(pid, net=True, mnt=True, uts=True):
        cmd = ['nsenter', '-t', str(pid)]
        if mnt:
            cmd.append('-m')
        if uts:
            cmd.append('-u')
        if net:
            cmd.append('-n')
        return cmd + ['--']

    def run_in(self, pid, cmd, check=True, timeout=60, **kw):
        kw.setdefault('capture_output', True)
        kw.setdefault('text', True)
        r = subprocess.run(self.nsenter(pid) + cmd, timeout=timeout, env=self.env(), **kw)
        if check and r.returncode != 0:
            raise LabError('%s failed in the lab (exit %d): %s'
                           % (' '.join(cmd), r.returncode, (r.stderr or r.stdout or '').strip()))
        return r

    @staticmethod
    def env(extra=None):
        # systemctl.LAB_BIN: the host's service manager, inside the hosts only
        path = [paths.venv_bin(), systemctl.LAB_BIN, '/usr/local/sbin', '/usr/local/bin',
                '/usr/sbin', '/usr/bin', '/sbin', '/bin']
        env = {'PATH': ':'.join(path), 'LANG': 'C.UTF-8', 'HOME': '/root'}
        env.update(extra or {})
        return env

    # checks -------------------------------------------------------------
    @staticmethod
    def check_prerequisites():
        if os.geteuid() != 0:
            raise LabError('the lab needs root (namespaces, sanlock, libvirt): run it as root')
        missing = [c for c in REQUIRED_COMMANDS if not shutil.which(c, path=Lab.env()['PATH'])]
        if missing:
            raise LabError('the host stack is not installed (missing %s): run scripts/bootstrap'
                           % ', '.join(missing))
        lib = preload.preload_path()
        if not os.path.isfile(lib):
            raise LabError('the sanlock workaround library %s is not built: run scripts/bootstrap'
                           % lib)
        from ovirt_hosted_engine_setup.lab import images
        try:
            images.guest_image()
        except images.ImageMissing as e:
            raise LabError(str(e))

    @staticmethod
    def hostd_available():
        return os.path.isfile(os.path.join(paths.checkout_dir(), 'ovirt_hosted_engine_setup',
                                           'hostd', 'daemon.py')) and \
            os.path.isfile(os.path.join(paths.venv_bin(), 'ovirt-hosted-engine-hostd'))

    # up -----------------------------------------------------------------
    def up(self, count, with_hostd=True, root_password=None, sanlock_io_timeout=None,
           storage='dir'):
        """Start count hosts; root_password: the hosts' root password for SSH (default
        sshd.ROOT_PASSWORD); sanlock_io_timeout: the I/O timeout every host agent gives the
        storage domains' lockspaces it writes and joins (default 10 s, VDSM's); storage:
        'dir' (one local directory every host sees) or 'gluster' (a replica 3 volume on
        host1..host3, lab/gluster.py)."""
        if not 1 <= count <= MAX_HOSTS:
            raise LabError('--hosts must be between 1 and %d' % MAX_HOSTS)
        if storage not in STORAGE_KINDS:
            raise LabError('--storage must be one of %s, not %r' % (', '.join(STORAGE_KINDS),
                                                                     storage))
        if storage == 'gluster':
            from ovirt_hosted_engine_setup.lab import gluster
            gluster.plan(self.dir, ['host%d' % i for i in range(1, count + 1)])
        if sanlock_io_timeout is None:
            sanlock_io_timeout = layout.DEFAULT_IO_TIMEOUT
        if not layout.MIN_IO_TIMEOUT <= sanlock_io_timeout <= layout.MAX_IO_TIMEOUT:
            raise LabError('--sanlock-io-timeout must be between %d and %d seconds, not %d'
                           % (layout.MIN_IO_TIMEOUT, layout.MAX_IO_TIMEOUT, sanlock_io_timeout))
        self.check_prerequisites()
        if storage == 'gluster':
            gluster.check_installed(self.env()['PATH'])
        with self.locked():
            if self.load():
                if self.any_alive():
                    raise LabError('a lab is already up in %s: run hosted-engine-lab down first'
                                   % self.dir)
                self._down_locked(quiet=True)
            try:
                self._up_locked(count, with_hostd, root_password or sshd.ROOT_PASSWORD,
                                sanlock_io_timeout, storage)
            except BaseException as e:
                say('bringing the lab up failed: %s' % e)
                say('stopping what was started')
                self._down_locked(quiet=True)
                raise

    def _prepare_dirs(self, names):
        for sub in ('hosts', 'storage', 'pki', dns.DIR):
            shutil.rmtree(os.path.join(self.dir, sub), ignore_errors=True)
        os.makedirs(self.storage)
        os.chmod(self.storage, 0o755)
        for dst, _src in HOST_DIRS:
            os.makedirs(dst, exist_ok=True)  # mount points on the machine
        # the lab's names (one list): the hosts' /etc/hosts and the lab DNS server's hosts file
        names_ = dns.entries(DOMAIN, GATEWAY,
                             [(n, self.address(i)) for i, n in enumerate(names, 1)],
                             ENGINE_ADDRESS, ENGINE_FQDN)
        with open(os.path.join(self.dir, 'hosts.txt'), 'w') as f:
            f.write(dns.hosts_text(names_, localhost=True))
        dns.write_files(self.dir, names_, GATEWAY, DOMAIN)
        for n in names:
            hd = self.host_dir(n)
            for dst, src in HOST_DIRS:
                os.makedirs(os.path.join(hd, src))
            self._seed_libvirt(hd)
            os.makedirs(os.path.join(hd, 'var-log', 'lab'))
            os.makedirs(os.path.join(hd, 'var-log', 'libvirt', 'qemu'))
            os.makedirs(os.path.join(hd, 'var-log', 'ovirt-hosted-engine-hostd'))
            # a hardware UUID of its own, as every real host has (the machine's DMI UUID is
            # the same for all lab hosts); the engine knows a host by it (vds_unique_id)
            with open(os.path.join(hd, 'var-lib-ovirt-hosted-engine-hostd', 'host-uuid'),
                      'w') as f:
                f.write('%s\n' % uuid.uuid4())
        self._seed_pki(names)

    @staticmethod
    def _seed_libvirt(hd):
        etc = os.path.join(hd, 'etc-libvirt')
        shutil.rmtree(etc)
        shutil.copytree('/etc/libvirt', etc, symlinks=True)
        # A lab host starts with no domains and no autostarted networks.
        for d in ('qemu/networks/autostart', 'qemu/autostart'):
            shutil.rmtree(os.path.join(etc, d), ignore_errors=True)
        qd = os.path.join(etc, 'qemu')
        if os.path.isdir(qd):
            for fn in os.listdir(qd):
                if fn.endswith('.xml'):
                    os.unlink(os.path.join(qd, fn))
        for fn, text in (('qemu.conf', LIBVIRT_QEMU_CONF),
                         ('qemu-sanlock.conf', LIBVIRT_SANLOCK_CONF),
                         ('libvirtd.conf', LIBVIRTD_CONF)):
            with open(os.path.join(etc, fn), 'w') as f:
                f.write(text)
        # libvirt's state and cache directories: the machine's layout, empty.
        for src, name in (('/var/lib/libvirt', 'var-lib-libvirt'),
                          ('/var/cache/libvirt', 'var-cache-libvirt')):
            if os.path.isdir(src):
                for root, dirs, _files in os.walk(src):
                    for d in dirs:
                        rel = os.path.relpath(os.path.join(root, d), src)
                        os.makedirs(os.path.join(hd, name, rel), exist_ok=True)

    def _seed_pki(self, names):
        """One lab CA; every host's agent gets its certificates from it, so hosts trust each other."""
        try:
            from ovirt_hosted_engine_setup.hostd import pki
        except ImportError:
            say('host agent PKI module not available: each host agent makes its own CA')
            return
        lab_pki = os.path.join(self.dir, 'pki')
        os.makedirs(lab_pki, mode=0o700, exist_ok=True)
        ca_cert = os.path.join(lab_pki, 'cacert.pem')
        ca_key = os.path.join(lab_pki, 'cakey.pem')
        pki.create_ca(ca_cert, ca_key, cn='ovirt-hosted-engine lab CA')
        for i, n in enumerate(names, 1):
            p = pki.paths(os.path.join(self.host_dir(n), 'var-lib-ovirt-hosted-engine-hostd'))
            os.makedirs(p.dir, mode=0o700, exist_ok=True)
            shutil.copyfile(ca_cert, p.ca_cert)
            shutil.copyfile(ca_key, p.ca_key)
            os.chmod(p.ca_key, 0o600)
            pki.issue_cert(ca_cert, ca_key, p.server_cert, p.server_key, n, server=True,
                           names=('%s.%s' % (n, DOMAIN), self.address(i), 'localhost',
                                  '127.0.0.1', '::1'))
            pki.issue_cert(ca_cert, ca_key, p.client_cert, p.client_key,
                           'ovirt-hosted-engine client %s' % n, server=False)

    def _spawn_holder(self, flags):
        p = subprocess.Popen(['unshare'] + flags + ['--', 'sleep', 'infinity'],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, cwd='/')
        deadline = time.monotonic() + 10
        mine = {k: ns_id(os.getpid(), k) for k in ('mnt', 'net', 'uts')}
        kinds = [k for k, f in (('mnt', '--mount'), ('net', '--net'), ('uts', '--uts'))
                 if f in flags]
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise LabError('unshare %s failed: namespaces are not available here '
                               '(the lab needs root with CAP_SYS_ADMIN)' % ' '.join(flags))
            ids = {k: ns_id(p.pid, k) for k in kinds}
            if all(ids[k] and ids[k] != mine[k] for k in kinds):
                # exec'ed into sleep: the namespaces are in place
                try:
                    with open('/proc/%d/comm' % p.pid) as f:
                        if f.read().strip() == 'sleep':
                            return p.pid, ids
                except OSError:
                    pass
            time.sleep(0.02)
        raise LabError('the namespace holder did not start in 10 s')

    def _up_locked(self, count, with_hostd, root_password, sanlock_io_timeout, storage='dir'):
        names = ['host%d' % i for i in range(1, count + 1)]
        t0 = time.monotonic()
        os.makedirs(self.dir, exist_ok=True)
        self._prepare_dirs(names)
        g = None
        if storage == 'gluster':
            from ovirt_hosted_engine_setup.lab import gluster
            g = gluster.plan(self.dir, names)
            for n in names:
                gluster.prepare_host_dir(self.host_dir(n), g, n)
        self.state = {'version': 1, 'dir': self.dir, 'storage': self.storage, 'subnet': SUBNET,
                      'prefix': PREFIX, 'gateway': GATEWAY, 'bridge': LAB_BRIDGE,
                      'net': None, 'hosts': {}, 'sanlock_io_timeout': sanlock_io_timeout}
        if g:
            self.state['gluster'] = g
        self.save()
        # the lab network
        pid, ids = self._spawn_holder(['--net'])
        self.state['net'] = dict(record(pid), ns=ids)
        self.save()
        for cmd in (['ip', 'link', 'set', 'lo', 'up'],
                    ['ip', 'link', 'add', LAB_BRIDGE, 'address', LAB_BRIDGE_MAC, 'type',
                     'bridge', 'forward_delay', '0', 'stp_state', '0'],
                    ['ip', 'addr', 'add', '%s/%d' % (GATEWAY, PREFIX), 'dev', LAB_BRIDGE],
                    ['ip', 'link', 'set', LAB_BRIDGE, 'up']):
            subprocess.run(['nsenter', '-t', str(pid), '-n', '--'] + cmd, check=True,
                           capture_output=True)
        say('lab network %s.0/%d on bridge %s (gateway %s)' % (SUBNET, PREFIX, LAB_BRIDGE,
                                                               GATEWAY))
        self._start_dns(pid)
        if with_hostd and not self.hostd_available():
            say('the host agent (ovirt-hosted-engine-hostd) is not installed in %s: '
                'hosts come up without it' % paths.venv_bin())
            with_hostd = False
        errors = []

        def bring_up(i, name):
            try:
                self._host_up(i, name, with_hostd, root_password)
            except Exception as e:  # reported below, the lab is then taken down
                errors.append('%s: %s' % (name, e))

        threads = [threading.Thread(target=bring_up, args=(i, n))
                   for i, n in enumerate(names, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise LabError('; '.join(errors))
        if g:
            gluster.create_volume(self, say)
            say('lab up: %d host(s) in %.1f s; gluster volume %s (%s)'
                % (count, time.monotonic() - t0, g['connection'], g['mount_options']))
            return
        say('lab up: %d host(s) in %.1f s; shared storage %s' % (count, time.monotonic() - t0,
                                                                 self.storage))

    def _host_up(self, index, name, with_hostd, root_password):
        hd = self.host_dir(name)
        addr = self.address(index)
        # the host's own /etc/ssh and /etc/shadow (root's password), mounted below
        ssh_mounts = sshd.prepare_host(self.dir, hd, name, addr, root_password)
        pid, ids = self._spawn_holder(['--mount', '--uts', '--net', '--propagation', 'private'])
        h = {'index': index, 'address': addr, 'holder': record(pid), 'ns': ids, 'daemons': {},
             'dir': hd}
        with self._state_lock:
            self.state['hosts'][name] = h
        self.save()
        script = ['set -e', 'hostname %s' % name,
                  'mount -t tmpfs -o mode=0755,size=256m lab-run /run',
                  'mkdir -p /run/lock /run/user %s %s %s' % (
                      systemctl.LAB_BIN, systemctl.STATE_DIR, systemctl.SYSTEMD_MARK),
                  'mount --bind %s /etc/hosts' % _q(os.path.join(self.dir, 'hosts.txt'))]
        # the host's resolver asks the lab DNS server (lab/dns.py)
        resolv = dns.resolv_conf_script(dns.paths(self.dir)[1])
        if resolv is None:
            say('%s: the machine has no %s to cover in the host: the host resolves names '
                'from /etc/hosts only' % (name, dns.HOST_RESOLV_CONF))
        script += resolv or []
        for dst, src in HOST_DIRS:
            script.append('mount --bind %s %s' % (_q(os.path.join(hd, src)), _q(dst)))
        for src, dst in ssh_mounts:
            script.append('mount --bind %s %s' % (_q(src), _q(dst)))
        script.append('mkdir -m 0755 %s' % sshd.PRIVSEP_DIR)
        script.append('ip link set lo up')
        self.run_in(pid, ['sh', '-c', '\n'.join(script)])
        self._install_service_manager(pid)
        net = self.state['net']['pid']
        mac = '02:0e:1a:b0:00:%02x' % index
        veth = 'lab-%s' % name
        subprocess.run(['nsenter', '-t', str(net), '-n', '--', 'ip', 'link', 'add', veth,
                        'type', 'veth', 'peer', 'name', 'eth0', 'netns', str(pid)],
                       check=True, capture_output=True)
        subprocess.run(['nsenter', '-t', str(net), '-n', '--', 'ip', 'link', 'set', veth,
                        'master', LAB_BRIDGE, 'up'], check=True, capture_output=True)
        self.run_in(pid, ['sh', '-c', 'set -e; ip link set eth0 address %s; '
                          'ip addr add %s/%d dev eth0; ip link set eth0 up; '
                          'ip route add default via %s' % (mac, addr, PREFIX, GATEWAY)])
        say('%s: namespaces ready, eth0 %s/%d' % (name, addr, PREFIX))
        self.start_host_daemons(name, with_hostd)

    def start_host_daemons(self, name, with_hostd, report=None):
        """Start the host's base daemons in order, each waited for: at `up`, and when
        `hosted-engine-lab restart` boots a crashed host again (lab/faults.py).
        report(line) is told each daemon that came up (default: the lab's [lab] lines)."""
        for daemon in self.boot_order(name):
            if daemon != 'hostd' or with_hostd:
                self.start_base_daemon(name, daemon, report)

    def boot_order(self, name):
        """The base daemons of host `name` in boot order: BASE_DAEMONS, with glusterd right
        after sanlock on the servers of a gluster lab."""
        from ovirt_hosted_engine_setup.lab import gluster
        if not gluster.serves(self.state, name):
            return BASE_DAEMONS
        return BASE_DAEMONS[:1] + (GLUSTERD,) + BASE_DAEMONS[1:]

    def start_base_daemon(self, name, daemon, report=None):
        """Start one base daemon of host `name` (one of BASE_DAEMONS; sshd last at boot: a
        host answers SSH once it is otherwise complete) and wait until it answers."""
        report = report or say
        h = self.state['hosts'][name]
        pid = h['holder']['pid']
        addr = h['address']
        if daemon == 'sanlock':
            self._start_daemon(name, h, 'sanlock',
                               ['sanlock', 'daemon', '-D', '-w', '0', '-U', 'root', '-G', 'root',
                                '-l', '0', '-e', name],
                               extra_env={'LD_PRELOAD': preload.preload_path()})
            self._wait(name, 'sanlock', lambda: self.run_in(
                pid, ['sanlock', 'client', 'status'], check=False, timeout=10).returncode == 0,
                30, report)
        elif daemon == 'virtlogd':
            self._start_daemon(name, h, 'virtlogd', ['virtlogd'])
            self._wait(name, 'virtlogd', lambda: os.path.exists(
                '/proc/%d/root/run/libvirt/virtlogd-sock' % pid), 30, report)
        elif daemon == 'libvirtd':
            self._start_daemon(name, h, 'libvirtd', ['libvirtd'])
            self._wait(name, 'libvirtd', lambda: self.run_in(
                pid, ['virsh', '-c', 'qemu:///system', 'version'], check=False,
                timeout=30).returncode == 0, 60, report)
        elif daemon == 'hostd':
            self._start_daemon(name, h, 'hostd', [
                os.path.join(paths.venv_bin(), 'ovirt-hosted-engine-hostd'), '--foreground',
                '--address', '0.0.0.0', '--port', str(HOSTD_PORT), '--root', HOSTD_ROOT,
                '--data-center-dir', '/rhev/data-center',
                '--sanlock-io-timeout', str(self.sanlock_io_timeout()),
                '--log-file', '/var/log/ovirt-hosted-engine-hostd/hostd.log'])
            self._wait(name, 'hostd', lambda: self.run_in(
                pid, ['ovirt-hosted-engine-rpc', '--host', addr, '--timeout', '5', 'Host',
                      'ping2'], check=False, timeout=30).returncode == 0, 90,
                report)
        elif daemon == 'sshd':
            self._start_daemon(name, h, 'sshd', sshd.command())
            self._wait(name, 'sshd', lambda: sshd.listening(pid, addr), 30, report)
        elif daemon == GLUSTERD and daemon in self.boot_order(name):
            from ovirt_hosted_engine_setup.lab import gluster
            self._start_daemon(name, h, GLUSTERD, gluster.glusterd_command())
            self._wait(name, GLUSTERD, lambda: gluster.glusterd_ready(self, name), 60, report)
        else:
            raise LabError('%s is not a base daemon of %s: use one of %s'
                           % (daemon, name, ', '.join(self.boot_order(name))))

    def sanlock_io_timeout(self):
        """The I/O timeout the hosts' agents give the storage domains' lockspaces (VDSM's
        [sanlock] io_timeout): `up --sanlock-io-timeout`, kept in the lab state."""
        return int((self.state or {}).get('sanlock_io_timeout') or layout.DEFAULT_IO_TIMEOUT)

    def _start_dns(self, net_pid):
        """The lab DNS server (lab/dns.py): dnsmasq in the lab network namespace, on the
        gateway address; ready once it has read the lab's names and its socket is bound."""
        hosts, _resolv, log = dns.paths(self.dir)
        t0 = time.monotonic()
        with open(log, 'ab') as out:
            p = subprocess.Popen(['nsenter', '-t', str(net_pid), '-n', '--'] +
                                 dns.command(hosts, GATEWAY),
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, cwd='/', env=self.env())
        # nsenter execs dnsmasq: p.pid is the daemon
        rec = dict(record(p.pid), log=log)
        self.state['dns'] = rec
        self.save()
        deadline = t0 + 30
        while True:
            if not alive(rec):
                _reap(rec['pid'])
                raise LabError('the lab DNS server (dnsmasq) exited at start; its log: %s%s'
                               % (log, _tail(log)))
            loaded = dns.names_loaded(log, hosts)
            if loaded not in (None, True):
                raise LabError('the lab DNS server (dnsmasq) could not read the lab names '
                               '(%s); its log: %s%s' % (loaded, log, _tail(log)))
            if loaded and dns.listening(net_pid, GATEWAY):
                break
            if time.monotonic() > deadline:
                raise LabError('the lab DNS server (dnsmasq) did not start within 30 s; its '
                               'log: %s%s' % (log, _tail(log)))
            time.sleep(0.05)
        say('lab DNS server dnsmasq on %s:%d (%.1f s)' % (GATEWAY, dns.PORT,
                                                          time.monotonic() - t0))

    def dns_alive(self):
        """Whether the lab DNS server runs (None: the lab has none recorded)."""
        rec = (self.state or {}).get('dns')
        return None if rec is None else alive(rec)

    def _install_service_manager(self, pid):
        """systemctl in the host: the lab's service manager at LAB_BIN/systemctl (in the
        host's /run), also bind-mounted over /usr/bin/systemctl in the host's own mount
        namespace when the machine has one (the machine's file is never changed)."""
        exe = systemctl.LAB_BIN + '/systemctl'
        with open('/proc/%d/root%s' % (pid, exe), 'w') as f:
            f.write(systemctl.wrapper(os.path.join(paths.venv_bin(), 'python')))
        os.chmod('/proc/%d/root%s' % (pid, exe), 0o755)
        if os.path.isfile('/usr/bin/systemctl'):
            self.run_in(pid, ['mount', '--bind', exe, '/usr/bin/systemctl'])

    def _start_daemon(self, name, h, daemon, cmd, extra_env=None):
        log = os.path.join(h['dir'], 'var-log', 'lab', '%s.log' % daemon)
        with open(log, 'ab') as out:
            p = subprocess.Popen(self.nsenter(h['holder']['pid']) + cmd,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, cwd='/',
                                 env=self.env(dict(extra_env or {}, OVIRT_HE_LAB_HOST=name)))
        # nsenter without a pid namespace execs the daemon: p.pid is the daemon.
        h['daemons'][daemon] = dict(record(p.pid), log=log)
        self.save()
        return p

    def _wait(self, name, daemon, ready, timeout, report=None):
        h = self.state['hosts'][name]
        rec = h['daemons'][daemon]
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        while True:
            if not alive(rec):
                _reap(rec['pid'])
                raise LabError('%s exited at start; its log: %s%s'
                               % (daemon, rec['log'], _tail(rec['log'])))
            if ready():
                (report or say)('%s: %s up (%.1f s)' % (name, daemon, time.monotonic() - t0))
                return
            if time.monotonic() > deadline:
                raise LabError('%s did not answer within %d s; its log: %s%s'
                               % (daemon, timeout, rec['log'], _tail(rec['log'])))
            time.sleep(0.2)

    # the HA services ----------------------------------------------------
    def host_names(self, names=None):
        st = self.load()
        if not st:
            raise LabError('no lab is up in %s: run hosted-engine-lab up --hosts N' % self.dir)
        known = sorted(st['hosts'], key=lambda n: st['hosts'][n]['index'])
        for n in names or []:
            self.host(n)
        return list(names) if names else known

    def service(self, name, unit):
        """The record of a unit the host's service manager started ({pid, start, since,
        argv, log}; its process may have died since, see alive()), or None."""
        h = self.host(name) if self.state is None else self.state['hosts'][name]
        return systemctl.read_record('/proc/%d/root%s' % (h['holder']['pid'], systemctl.STATE_DIR),
                                     unit + '.service')

    def systemctl(self, name, args, timeout=300):
        """Run systemctl inside host name (the host's service manager)."""
        return self.run_in(self.state['hosts'][name]['holder']['pid'], ['systemctl'] + args,
                           timeout=timeout)

    def ha_start(self, names=None):
        """`systemctl start ovirt-ha-broker ovirt-ha-agent` in the hosts; then wait for the
        broker's socket. A host without /etc/ovirt-hosted-engine/hosted-engine.conf is
        refused (the units' condition would leave them inactive)."""
        with self.locked():
            names = self.host_names(names)
            for name in names:
                conf = os.path.join(self.host_dir(name), 'etc-ovirt-hosted-engine',
                                    'hosted-engine.conf')
                if not os.path.isfile(conf):
                    raise LabError('%s has no /etc/ovirt-hosted-engine/hosted-engine.conf: deploy '
                                   'first, or run hosted-engine-lab ha-prepare' % name)
            self.load()
            for name in names:
                pid = self.state['hosts'][name]['holder']['pid']
                before = {u: self.service(name, u) for _d, u in HA_DAEMONS}
                t0 = time.monotonic()
                self.systemctl(name, ['start'] + [u for _d, u in HA_DAEMONS])
                for daemon, unit in HA_DAEMONS:
                    if alive(before[unit]):
                        say('%s: %s already running' % (name, unit))
                        continue
                    rec = self.service(name, unit)
                    if daemon == 'ha-broker':
                        ready = lambda: os.path.exists('/proc/%d/root%s' % (pid, HA_SOCKET))  # noqa
                    else:
                        ready = lambda: True  # noqa: E731 (it waits for the broker itself)
                    deadline = time.monotonic() + 60
                    while True:
                        if not alive(rec):
                            raise LabError('%s exited at start on %s; its log: %s%s' % (
                                unit, name, rec and rec['log'],
                                _tail(self._host_path(name, rec['log']) if rec else '')))
                        if ready():
                            break
                        if time.monotonic() > deadline:
                            raise LabError('%s did not answer within 60 s on %s; its log: %s%s'
                                           % (unit, name, rec['log'],
                                              _tail(self._host_path(name, rec['log']))))
                        time.sleep(0.2)
                    say('%s: %s up (%.1f s)' % (name, unit, time.monotonic() - t0))

    def _host_path(self, name, path):
        return '/proc/%d/root%s' % (self.state['hosts'][name]['holder']['pid'], path)

    def ha_stop(self, names=None):
        """`systemctl stop ovirt-ha-agent ovirt-ha-broker` in the hosts, all at once (the
        agents publish AgentStopped through their brokers before they exit)."""
        with self.locked():
            names = self.host_names(names)
            self._ha_stop(self.state, names)

    def _ha_stop(self, st, names, quiet=False):
        errors = []

        def stop(name):
            running = [u for _d, u in reversed(HA_DAEMONS) if alive(self.service(name, u))]
            try:
                self.systemctl(name, ['stop'] + [u for _d, u in reversed(HA_DAEMONS)])
            except (LabError, subprocess.SubprocessError) as e:
                errors.append('%s: %s' % (name, e))
                return
            if not quiet:
                for unit in running:
                    say('%s stopped on %s' % (unit, name))

        threads = [threading.Thread(target=stop, args=(n,)) for n in names
                   if alive(st['hosts'][n].get('holder'))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors and not quiet:
            raise LabError('; '.join(errors))

    # down ---------------------------------------------------------------
    def down(self):
        with self.locked():
            return self._down_locked()

    def _down_locked(self, quiet=False):
        st = self.load()
        if not st:
            if not quiet:
                say('no lab is up in %s' % self.dir)
            return
        hosts = st.get('hosts', {})
        # the HA agents first, so that they can still publish that they stopped
        self._ha_stop(st, [n for n in hosts if alive(hosts[n].get('holder'))], quiet=True)

        def stop_host(name, h):
            mnt = (h.get('ns') or {}).get('mnt')
            holder = h.get('holder') or {}
            daemons = h.get('daemons', {})
            sanlock = daemons.get('sanlock') or {}
            # First everything but sanlock and the holder: VMs (their leases go with
            # them), commands run with exec, hostd, libvirtd, virtlogd.
            pids = set(pids_in_ns('mnt', mnt, holder))
            pids.update(d['pid'] for d in daemons.values() if alive(d))
            pids.discard(holder.get('pid'))
            pids.discard(sanlock.get('pid'))
            pids = {p for p in pids if _ppid(p) != sanlock.get('pid')}  # sanlock's helper
            if pids:
                kill_pids(sorted(pids))
            # sanlock does not leave while it has lockspaces: ask it to drop them.
            if alive(sanlock) and alive(holder):
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    subprocess.run(self.nsenter(holder['pid']) + ['sanlock', 'shutdown', '-f', '1'],
                                   capture_output=True, timeout=10, env=self.env())
            left = [p for p in pids_in_ns('mnt', mnt, holder) if p != holder.get('pid')]
            if alive(sanlock):
                left.append(sanlock['pid'])
            if left:
                kill_pids(sorted(set(left)))
            if alive(holder):
                kill_pids([holder['pid']])
            if not quiet:
                say('%s: stopped' % name)

        threads = [threading.Thread(target=stop_host, args=(n, h)) for n, h in hosts.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        net = st.get('net') or {}
        pids = set(pids_in_ns('net', (net.get('ns') or {}).get('net'), net))
        if alive(st.get('dns')):
            pids.add(st['dns']['pid'])
        if alive(net):
            pids.add(net['pid'])
        if pids:
            kill_pids(sorted(pids))
        left = self._leftovers(st)
        if left:
            raise LabError('processes %s of the lab are still running; run '
                           'hosted-engine-lab down again' % ', '.join(map(str, left)))
        os.unlink(self.state_path)
        self.state = None
        if not quiet:
            say('lab down: no process of the lab is left')

    @staticmethod
    def _leftovers(st):
        left = set()
        for h in st.get('hosts', {}).values():
            left.update(pids_in_ns('mnt', (h.get('ns') or {}).get('mnt'), h.get('holder')))
            left.update(d['pid'] for d in h.get('daemons', {}).values() if alive(d))
            if alive(h.get('holder')):
                left.add(h['holder']['pid'])
        net = st.get('net') or {}
        left.update(pids_in_ns('net', (net.get('ns') or {}).get('net'), net))
        if alive(st.get('dns')):
            left.add(st['dns']['pid'])
        if alive(net):
            left.add(net['pid'])
        return sorted(left)

    # status -------------------------------------------------------------
    def status(self):
        """[(host, address, {daemon: alive or None when not started})] or None."""
        st = self.load()
        if not st:
            return None
        out = []
        for name, h in sorted(st['hosts'].items(), key=lambda kv: kv[1]['index']):
            d = {k: (alive(h['daemons'][k]) if k in h.get('daemons', {}) else None)
                 for k in DAEMONS}
            for daemon, unit in HA_DAEMONS:   # units of the host's service manager
                rec = self.service(name, unit) if alive(h.get('holder')) else None
                d[daemon] = None if rec is None else alive(rec)
            if st.get('gluster'):   # glusterd and the host's brick of the volume
                from ovirt_hosted_engine_setup.lab import gluster
                serves = gluster.serves(st, name)
                d[GLUSTERD] = alive(h['daemons'].get(GLUSTERD)) if serves else None
                d['brick'] = (gluster.brick_pid(self, name) is not None) if serves else None
            out.append((name, h['address'], alive(h.get('holder')), d))
        return out

    def ssh_fingerprint(self, name, key_type='ed25519'):
        """'SHA256:...' of lab host name's SSH host key (kept across down and up)."""
        st = self.load()
        known = sorted(st['hosts'], key=lambda n: st['hosts'][n]['index']) if st else []
        if (st and name not in known) or not re.fullmatch(r'host[0-9]+', name):
            raise LabError('no lab host %r%s' % (name, ': the lab has %s' % ', '.join(known)
                                                    if known else ''))
        return sshd.fingerprint(self.dir, name, key_type)

    # exec ---------------------------------------------------------------
    def exec_argv(self, name, cmd, cwd=None):
        """The argv that runs cmd inside lab host name (for os.execvp)."""
        h = self.host(name)
        pid = h['holder']['pid']
        cwd = cwd or os.getcwd()
        if not os.path.isdir('/proc/%d/root%s' % (pid, cwd)):
            cwd = '/'
        if not cmd:
            cmd = [os.environ.get('SHELL') or '/bin/sh']
        return ['nsenter', '-t', str(pid), '-m', '-u', '-n', '--wd=%s' % cwd, '--'] + list(cmd)

    def exec_env(self, name):
        env = dict(os.environ)
        parts = [paths.venv_bin(), systemctl.LAB_BIN] + [
            p for p in env.get('PATH', '').split(':')
            if p and p not in (paths.venv_bin(), systemctl.LAB_BIN)]
        for p in ('/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'):
            if p not in parts:
                parts.append(p)
        env['PATH'] = ':'.join(parts)
        env['OVIRT_HE_LAB_HOST'] = name
        env.pop('SANLOCK_RUN_DIR', None)
        return env


def _ppid(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
        return int(data[data.rindex(')') + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _q(s):
    return "'" + s.replace("'", "'\\''") + "'"


def _tail(path, n=5):
    try:
        with open(path, errors='replace') as f:
            lines = f.read().splitlines()[-n:]
    except OSError:
        return ''
    return ''.join('\n    ' + ln for ln in lines)


def main_exit(e):
    sys.stderr.write('hosted-engine-lab: %s\n' % e)
    return 1
