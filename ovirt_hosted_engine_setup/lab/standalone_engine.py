"""A standalone oVirt engine in the lab: the engine on a server of its own, the one an
admin backs up with engine-backup to move it into a hosted-engine VM.

    hosted-engine-lab standalone-engine up [--populate] [--admin-password-file F]
                                           [--root-password-file F]
    hosted-engine-lab standalone-engine backup FILE
    hosted-engine-lab standalone-engine down

The engine is the lab engine process (python3 -m ovirt_hosted_engine_setup.lab.engine, set
up first with its engine-setup, lab.engine.setup), running in namespaces of its own as a lab
host does (lab.py): a holder process (`unshare --mount --uts --net`) with hostname `engine`,
a private /run, the lab's /etc/hosts and resolv.conf, and eth0 on the lab bridge with the
address and FQDN the lab gives the engine VM (ENGINE_ADDRESS, ENGINE_FQDN); it listens on
ports 80 and 443 there. Its files are in <lab dir>/standalone-engine/: the engine's state
directory `state/`, its log `engine.log`, its output `engine.out`, its pid file, and
`standalone.json`, the record of the namespace holder and the engine process (pid and start
time, so that a reused pid is never taken for them).

`--populate` gives the engine an inventory through its REST API with ovirt-engine-sdk-python,
run inside the engine's namespace (the real protocol, as an admin's script would): the data
center POPULATE_DC and its cluster POPULATE_CLUSTER, every lab host but host1 added with the
lab's root password and its SSH host key pinned (the engine installs its CA on the host over
SSH, as oVirt's host-deploy) and awaited Up, a data storage domain created by the engine
through the first of them on a directory of the lab's storage (StoragePool.connectStorageServer
and StorageDomain.create on that host's agent), and two VMs (down) in the cluster. What
exists already (by name) is kept: a second populate adds only what is missing.

`backup` stops the engine (so that the old engine and the one restored from the backup never
manage the same hosts) and removes its namespace (the engine address is then free for the
engine VM restored from the backup), and runs the lab engine's engine-backup
(lab.engine.backup) on its state directory; the engine stays stopped. `down` stops the engine and every process of its
namespaces by pid; the state stays for the next `up` in the same lab (an `up` after the lab
itself was restarted sets up a new engine: the lab's hosts and storage are new).
"""
import argparse
import contextlib
import fcntl
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from ovirt_hosted_engine_setup.lab import dns, paths, sshd
from ovirt_hosted_engine_setup.lab.lab import (DOMAIN, ENGINE_ADDRESS, ENGINE_FQDN, GATEWAY,
                                               LAB_BRIDGE, PREFIX, Lab, LabError, alive, kill_pids,
                                               pids_in_ns, record, say, _q, _tail)

DIR = 'standalone-engine'
HOSTNAME = 'engine'
VETH = 'lab-engine'
MAC = '02:0e:1a:b0:00:c8'
ADMIN_USER = 'admin@internal'
# the engine admin password of the lab (examples/lab-answers.conf), unless a file gives another
ADMIN_PASSWORD = 'lab-admin-Pa55'
POPULATE_DC = 'Legacy'
POPULATE_CLUSTER = 'LegacyCluster'
POPULATE_SD = 'legacy_data'
POPULATE_SD_DIR = 'legacy-data'      # in the lab's storage directory
POPULATE_VMS = ('legacy-vm1', 'legacy-vm2')
POPULATE_VM_MEMORY = 512 * 1024 * 1024
HEALTH_TIMEOUT = 60
HOST_UP_TIMEOUT = 240
STOP_GRACE = 20
BACKUP_MODULE = 'ovirt_hosted_engine_setup.lab.engine.backup'


def read_secret_file(path, what):
    """The first line of path, without its line end; LabError when unreadable or empty."""
    try:
        with open(path, encoding='utf-8') as f:
            line = f.readline().rstrip('\r\n')
    except OSError as e:
        raise LabError('cannot read the %s file %s (%s): give a readable file'
                       % (what, path, e.strerror or e))
    if not line:
        raise LabError('the %s file %s is empty: put the password on its first line'
                       % (what, path))
    return line


def python():
    return os.path.join(paths.venv_bin(), 'python')


def _no_hang(method):
    """A command that hangs past its time limit is a LabError naming it, not a traceback."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except subprocess.TimeoutExpired as e:
            cmd = [e.cmd] if isinstance(e.cmd, str) else list(e.cmd)
            if '--' in cmd:     # what runs in a namespace, without nsenter's part
                cmd = cmd[cmd.index('--') + 1:]
            raise LabError('%s did not finish within %d s; the standalone engine\'s log: %s'
                           % (' '.join(os.path.basename(c) for c in cmd)[:200], e.timeout,
                              args[0].log_file))
    return wrapper


class StandaloneEngine:
    def __init__(self, lab):
        self.lab = lab
        self.dir = os.path.join(lab.dir, DIR)
        self.state_dir = os.path.join(self.dir, 'state')
        self.record_path = os.path.join(self.dir, 'standalone.json')
        self.log_file = os.path.join(self.dir, 'engine.log')
        self.out_file = os.path.join(self.dir, 'engine.out')
        self.pid_file = os.path.join(self.dir, 'engine.pid')

    # record ------------------------------------------------------------------
    def load(self):
        try:
            with open(self.record_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise LabError('cannot read %s (%s): remove it and run hosted-engine-lab '
                           'standalone-engine up again' % (self.record_path, e))

    def save(self, rec):
        tmp = self.record_path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(rec, f, indent=1, sort_keys=True)
        os.rename(tmp, self.record_path)

    @contextlib.contextmanager
    def locked(self):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        with open(os.path.join(self.dir, '.lock'), 'w') as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def status(self):
        """None when there is no standalone engine; else {'engine': True (alive), False
        (died) or None (stopped), 'pid', 'namespace': True, False (died) or None (none),
        'backup': the file of the backup that stopped it, or None}."""
        rec = self.load()
        if not rec or not (rec.get('holder') or rec.get('engine') or rec.get('backup')):
            return None
        eng, holder = rec.get('engine'), rec.get('holder')
        return {'engine': None if eng is None else alive(eng), 'pid': eng and eng['pid'],
                'namespace': None if holder is None else alive(holder),
                'backup': rec.get('backup')}

    # up ----------------------------------------------------------------------
    @_no_hang
    def up(self, admin_password=None, root_password=None, populate=False):
        """admin_password: set it (a new engine gets ADMIN_PASSWORD when None; an engine
        that is set up keeps its own)."""
        st = self.lab.load()
        if not st or not alive(st.get('net')):
            raise LabError('no lab is up in %s: run hosted-engine-lab up first' % self.lab.dir)
        hosts = sorted(st['hosts'], key=lambda n: st['hosts'][n]['index'])
        if populate and len(hosts) < 2:
            raise LabError('--populate adds the lab hosts other than host1 to the engine, and '
                           'this lab has only %s: run hosted-engine-lab up --hosts 3'
                           % ', '.join(hosts))
        with self.locked():
            rec = self.load()
            if rec and alive(rec.get('engine')):
                raise LabError('the standalone engine already runs (pid %d, https://%s): run '
                               'hosted-engine-lab standalone-engine down first'
                               % (rec['engine']['pid'], ENGINE_FQDN))
            lab_id = {'pid': st['net']['pid'], 'start': st['net']['start']}
            if rec and rec.get('lab') != lab_id:
                say('standalone engine: the state in %s belongs to an earlier lab: setting up a '
                    'new engine' % self.dir)
                self._stop(rec, quiet=True)
                shutil.rmtree(self.state_dir, ignore_errors=True)
                rec = None
            rec = rec or {'lab': lab_id, 'holder': None, 'ns': None, 'engine': None}
            if not alive(rec.get('holder')):
                self._check_address_free(st['net']['pid'])
                try:
                    self._make_namespace(rec, st['net']['pid'])
                except BaseException:
                    self._stop(rec, quiet=True)
                    raise
            rec['backup'] = None
            set_up = os.path.isfile(os.path.join(self.state_dir, 'setup.json'))
            try:
                if not set_up or admin_password:
                    self._setup(admin_password or ADMIN_PASSWORD)
                else:
                    say('standalone engine: set up already in %s (its admin password kept)'
                        % self.state_dir)
                self._start(rec)
            except BaseException:
                say('standalone engine: starting failed; stopping what was started')
                self._stop(rec, quiet=True)
                raise
            self._print_info(rec)
            if populate:
                self._populate(rec, hosts, admin_password or ADMIN_PASSWORD,
                               root_password or sshd.ROOT_PASSWORD)

    def _check_address_free(self, net_pid):
        """Refuse when something on the lab network holds the engine's address (an engine
        VM deployed in the lab): it answers ping, or a TCP connection to 443 is accepted or
        refused (a refusal comes from a machine that is there)."""
        ping = subprocess.run(self.lab.nsenter(net_pid, mnt=False, uts=False) +
                              ['ping', '-n', '-c', '1', '-W', '1', ENGINE_ADDRESS],
                              capture_output=True, text=True, timeout=30, env=self.lab.env())
        probe = ('import socket, sys\n'
                 's = socket.socket(); s.settimeout(3)\n'
                 'try:\n    s.connect((sys.argv[1], 443)); print("listening")\n'
                 'except ConnectionRefusedError:\n    print("refused")\n'
                 'except OSError:\n    print("none")\n')
        port = subprocess.run(self.lab.nsenter(net_pid, mnt=False, uts=False) +
                              [python(), '-c', probe, ENGINE_ADDRESS], capture_output=True,
                              text=True, timeout=30, env=self.lab.env())
        answer = port.stdout.strip()
        if ping.returncode == 0 or answer in ('listening', 'refused'):
            raise LabError('the engine address %s (%s) is already in use on the lab network (%s):'
                           ' an engine VM deployed in the lab holds it; undeploy it '
                           '(ovirt-hosted-engine-cleanup) or stop the lab first'
                           % (ENGINE_ADDRESS, ENGINE_FQDN,
                              'it answers ping' if ping.returncode == 0 else
                              'port 443 %s' % ('accepts connections' if answer == 'listening'
                                               else 'answers')))

    def _make_namespace(self, rec, net_pid):
        t0 = time.monotonic()
        pid, ids = self.lab._spawn_holder(['--mount', '--uts', '--net', '--propagation',
                                           'private'])
        rec.update(holder=record(pid), ns=ids, engine=None)
        self.save(rec)
        q = _q
        script = ['set -e', 'hostname %s' % HOSTNAME,
                  'mount -t tmpfs -o mode=0755,size=16m lab-engine-run /run',
                  'mount --bind %s /etc/hosts' % q(os.path.join(self.lab.dir, 'hosts.txt'))]
        script += dns.resolv_conf_script(dns.paths(self.lab.dir)[1]) or []
        script.append('ip link set lo up')
        self.lab.run_in(pid, ['sh', '-c', '\n'.join(script)])
        lab_net = self.lab.nsenter(net_pid, mnt=False, uts=False)
        for cmd in (['ip', 'link', 'add', VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns',
                     str(pid)],
                    ['ip', 'link', 'set', VETH, 'master', LAB_BRIDGE, 'up']):
            r = subprocess.run(lab_net + cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise LabError('cannot connect the standalone engine to the lab network (%s): '
                               '%s' % (' '.join(cmd), r.stderr.strip()))
        self.lab.run_in(pid, ['sh', '-c', 'set -e; ip link set eth0 address %s; '
                              'ip addr add %s/%d dev eth0; ip link set eth0 up; '
                              'ip route add default via %s' % (MAC, ENGINE_ADDRESS, PREFIX,
                                                               GATEWAY)])
        say('standalone engine: namespaces ready, eth0 %s/%d (%s) (%.1f s)'
            % (ENGINE_ADDRESS, PREFIX, ENGINE_FQDN, time.monotonic() - t0))

    def _setup(self, admin_password):
        """engine-setup of the lab engine; the password reaches it in a 0600 file that is
        removed at once (never on a command line)."""
        t0 = time.monotonic()
        tmp = tempfile.mkdtemp(prefix='.setup-', dir=self.dir)
        try:
            pw = os.path.join(tmp, 'admin-password')
            fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                f.write(admin_password + '\n')
            r = subprocess.run([python(), '-m', 'ovirt_hosted_engine_setup.lab.engine.setup',
                                '--state-dir', self.state_dir, '--fqdn', ENGINE_FQDN,
                                '--admin-password-file', pw, '--san', ENGINE_ADDRESS],
                               capture_output=True, text=True, timeout=120, cwd='/',
                               stdin=subprocess.DEVNULL, env=self.lab.env())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if r.returncode != 0:
            raise LabError('engine-setup of the standalone engine failed: %s'
                           % (r.stderr or r.stdout).strip())
        say('standalone engine: engine-setup done in %s (%.1f s)' % (self.state_dir,
                                                                    time.monotonic() - t0))

    def _start(self, rec):
        t0 = time.monotonic()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pid_file)
        cmd = [python(), '-m', 'ovirt_hosted_engine_setup.lab.engine', '--state-dir',
               self.state_dir, '--address', '0.0.0.0', '--http-port', '80', '--https-port',
               '443', '--log-file', self.log_file, '--pid-file', self.pid_file]
        with open(self.out_file, 'ab') as out:
            p = subprocess.Popen(self.lab.nsenter(rec['holder']['pid']) + cmd,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, cwd='/', env=self.lab.env())
        # nsenter without a pid namespace execs the engine: p.pid is the engine
        rec['engine'] = record(p.pid)
        self.save(rec)
        deadline = t0 + HEALTH_TIMEOUT
        shown = t0
        while True:
            if p.poll() is not None:
                raise LabError('the standalone engine exited at start (status %d); its output: '
                               '%s%s' % (p.returncode, self.out_file, _tail(self.out_file)))
            if os.path.exists(self.pid_file) and self._health().startswith('DB Up'):
                break
            now = time.monotonic()
            if now > deadline:
                raise LabError('the standalone engine\'s health page did not answer "DB Up" '
                               'within %d s; its log: %s%s' % (HEALTH_TIMEOUT, self.log_file,
                                                               _tail(self.log_file)))
            if now - shown >= 5:
                say('standalone engine: waiting for the health page (DB Up): %d s of %d s'
                    % (now - t0, HEALTH_TIMEOUT))
                shown = now
            time.sleep(0.5)
        say('standalone engine: health page answers DB Up (pid %d, %.1f s)'
            % (p.pid, time.monotonic() - t0))

    def _health(self):
        """The health page's first words as a client on the lab network reads it, from
        inside the engine's namespace by its FQDN."""
        code = ('import sys, urllib.request\n'
                'try:\n'
                '    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:\n'
                '        print(r.read().decode()[:6])\n'
                'except Exception as e:\n'
                '    print("error: %s" % e)\n')
        url = 'http://%s/ovirt-engine/services/health' % ENGINE_FQDN
        rec = self.load()
        r = subprocess.run(self.lab.nsenter(rec['holder']['pid']) + [python(), '-c', code, url],
                           capture_output=True, text=True, timeout=30, env=self.lab.env())
        return r.stdout.strip()

    def _print_info(self, rec):
        from ovirt_hosted_engine_setup.deploy.engine_api import fingerprint
        with open(os.path.join(self.state_dir, 'pki', 'ca.pem')) as f:
            ca = f.read()
        print('The standalone engine is up:\n'
              '  FQDN:           %s\n'
              '  address:        %s\n'
              '  API:            https://%s/ovirt-engine/api\n'
              '  admin user:     %s\n'
              '  CA fingerprint: SHA256 %s\n'
              '  CA certificate: %s\n'
              '  log:            %s'
              % (ENGINE_FQDN, ENGINE_ADDRESS, ENGINE_FQDN, ADMIN_USER, fingerprint(ca),
                 os.path.join(self.state_dir, 'pki', 'ca.pem'), self.log_file), flush=True)

    def _populate(self, rec, hosts, admin_password, root_password):
        """Run populate_main inside the engine's namespace; the passwords go on its stdin."""
        storage = os.path.join(self.lab.dir, 'storage', POPULATE_SD_DIR)
        os.makedirs(storage, exist_ok=True)
        os.chmod(storage, 0o755)
        st = self.lab.load()
        lab_ca = os.path.join(self.lab.dir, 'pki', 'cacert.pem')   # signed the host agents
        request = {
            'host_ca': open(lab_ca).read() if os.path.isfile(lab_ca) else None,
            'admin_password': admin_password, 'root_password': root_password,
            'ca_file': os.path.join(self.state_dir, 'pki', 'ca.pem'),
            'storage_path': storage,
            'hosts': [{'name': n, 'address': '%s.%s' % (n, DOMAIN),
                       'ssh_fingerprint': self.lab.ssh_fingerprint(n)}
                      for n in hosts if st['hosts'][n]['index'] != 1],
        }
        sys.stdout.flush()
        r = subprocess.run(self.lab.nsenter(rec['holder']['pid']) +
                           [python(), '-m', __name__, 'populate'],
                           input=json.dumps(request), text=True, cwd='/', env=self.lab.env(),
                           timeout=HOST_UP_TIMEOUT + 300)
        if r.returncode != 0:
            raise LabError('populating the standalone engine failed (see above); the engine '
                           'keeps running, its log: %s' % self.log_file)

    # backup ------------------------------------------------------------------
    @_no_hang
    def backup(self, dest):
        dest = os.path.abspath(dest)
        with self.locked():
            rec = self.load()
            if not rec or not os.path.isfile(os.path.join(self.state_dir, 'setup.json')):
                raise LabError('there is no standalone engine in %s to back up: run '
                               'hosted-engine-lab standalone-engine up first' % self.lab.dir)
            if importlib.util.find_spec(BACKUP_MODULE) is None:
                raise LabError('engine-backup of the lab engine (%s) is missing from this '
                               'checkout: update it' % BACKUP_MODULE)
            if os.path.isdir(dest):
                raise LabError('%s is a directory: give the path of the backup file' % dest)
            # the destination must take a file before the engine is stopped
            try:
                fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(dest),
                                           dir=os.path.dirname(dest))
            except OSError as e:
                raise LabError('cannot write the backup to %s (%s): give a path in a writable '
                               'directory' % (dest, e.strerror or e))
            os.close(fd)
            try:
                self._backup(rec, dest, tmp)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def _backup(self, rec, dest, tmp):
        if alive(rec.get('engine')):
            say('standalone engine: stopping the engine (pid %d) before the backup, so that it '
                'and the engine restored from the backup never manage the same hosts'
                % rec['engine']['pid'])
        # the old server is switched off: the engine, then its namespace, so that its
        # address is free for the engine VM restored from the backup
        self._stop(rec, quiet=True)
        say('standalone engine: stopped and off the lab network (%s is free)' % ENGINE_ADDRESS)
        work = os.path.join(self.dir, 'backups')
        os.makedirs(work, mode=0o700, exist_ok=True)
        stamp = time.strftime('%Y%m%d%H%M%S')
        archive = os.path.join(work, 'engine-backup-%s.backup' % stamp)
        log = os.path.join(work, 'engine-backup-%s.log' % stamp)
        sys.stdout.flush()
        r = subprocess.run([python(), '-m', BACKUP_MODULE, '--state-dir', self.state_dir,
                            '--mode=backup', '--file', archive, '--log', log],
                           stdin=subprocess.DEVNULL, cwd='/', env=self.lab.env(), timeout=600)
        if r.returncode != 0 or not os.path.isfile(archive):
            raise LabError('engine-backup failed (exit status %d); the engine is stopped '
                           '(hosted-engine-lab standalone-engine up starts it again); the '
                           'backup log: %s%s' % (r.returncode, log, _tail(log)))
        shutil.copyfile(archive, tmp)
        os.chmod(tmp, 0o600)
        os.rename(tmp, dest)
        rec['backup'] = dest
        self.save(rec)
        size = os.path.getsize(dest)
        print('Backup of the standalone engine written to %s (%d bytes); the engine stays '
              'stopped' % (dest, size), flush=True)

    # down --------------------------------------------------------------------
    @_no_hang
    def down(self, quiet=False):
        if not os.path.isdir(self.dir):
            return
        with self.locked():
            rec = self.load()
            if not rec or not (rec.get('holder') or rec.get('engine') or rec.get('backup')):
                if not quiet:
                    say('no standalone engine is up in %s' % self.lab.dir)
                return
            rec['backup'] = None
            self._stop(rec, quiet=quiet)

    @staticmethod
    def _ns_pids(ns, holder):
        return set(pids_in_ns('mnt', ns.get('mnt'), holder)) | \
            set(pids_in_ns('net', ns.get('net'), holder))

    def _stop(self, rec, quiet=False):
        """Stop the engine by pid, then every process of its namespaces and the holder."""
        eng = rec.get('engine')
        if alive(eng):
            kill_pids([eng['pid']], grace=STOP_GRACE)
            if not quiet:
                say('standalone engine: engine stopped (pid %d)' % eng['pid'])
        holder = rec.get('holder')
        ns = rec.get('ns') or {}
        left = self._ns_pids(ns, holder)
        if holder:
            left.discard(holder['pid'])
        if left:
            kill_pids(sorted(left))
        if alive(holder):
            kill_pids([holder['pid']])
        left = sorted(self._ns_pids(ns, holder))
        if alive(eng) or alive(holder) or left:
            raise LabError('processes of the standalone engine are still running (%s): run '
                           'hosted-engine-lab standalone-engine down again'
                           % ', '.join(str(p) for p in left or [holder['pid']]))
        rec.update(holder=None, ns=None, engine=None)
        self.save(rec)
        if not quiet:
            say('standalone engine: down (its namespace is gone; its state stays in %s)'
                % self.state_dir)


# ---------------------------------------------------------------- populate (in the namespace)

def _progress(msg):
    print('[populate] %s' % msg, flush=True)


def populate(conn, request):
    """Data center, cluster, hosts (Up), storage domain and VMs through the REST API; what
    exists by name is kept."""
    import ovirtsdk4.types as types
    system = conn.system_service()
    dcs = system.data_centers_service()
    dc = _find(dcs, POPULATE_DC)
    if dc is None:
        dc = dcs.add(types.DataCenter(name=POPULATE_DC, local=False,
                                      description='data center of the standalone engine'))
        _progress('data center %s added' % POPULATE_DC)
    else:
        _progress('data center %s is there' % POPULATE_DC)
    clusters = system.clusters_service()
    if _find(clusters, POPULATE_CLUSTER) is None:
        clusters.add(types.Cluster(name=POPULATE_CLUSTER, data_center=types.DataCenter(id=dc.id),
                                   cpu=types.Cpu(type='Intel Nehalem Family')))
        _progress('cluster %s added in %s' % (POPULATE_CLUSTER, POPULATE_DC))
    else:
        _progress('cluster %s is there' % POPULATE_CLUSTER)
    hosts = system.hosts_service()
    for h in request['hosts']:
        if _find(hosts, h['name']) is None:
            hosts.add(types.Host(name=h['name'], address=h['address'],
                                 root_password=request['root_password'],
                                 ssh=types.Ssh(fingerprint=h['ssh_fingerprint']),
                                 certificate=types.Certificate(content=request['host_ca'])
                                 if request.get('host_ca') else None,
                                 cluster=types.Cluster(name=POPULATE_CLUSTER)))
            _progress('host %s (%s) added; the engine installs it over SSH'
                      % (h['name'], h['address']))
        else:
            _progress('host %s is there' % h['name'])
    up = _wait_hosts_up(hosts, [h['name'] for h in request['hosts']])
    sds = system.storage_domains_service()
    if _find(sds, POPULATE_SD) is None:
        sds.add(types.StorageDomain(
            name=POPULATE_SD, type=types.StorageDomainType.DATA,
            host=types.Host(name=up[0]),
            storage=types.HostStorage(type=types.StorageType.LOCALFS,
                                      path=request['storage_path'])))
        _progress('storage domain %s created on %s through host %s'
                  % (POPULATE_SD, request['storage_path'], up[0]))
    else:
        _progress('storage domain %s is there' % POPULATE_SD)
    vms = system.vms_service()
    for name in POPULATE_VMS:
        if _find(vms, name) is None:
            vms.add(types.Vm(name=name, cluster=types.Cluster(name=POPULATE_CLUSTER),
                             template=types.Template(name='Blank'),
                             memory=POPULATE_VM_MEMORY))
            _progress('VM %s added in %s' % (name, POPULATE_CLUSTER))
        else:
            _progress('VM %s is there' % name)


def _find(service, name):
    found = service.list(search='name=%s' % name)
    return found[0] if found else None


def _wait_hosts_up(hosts, names):
    t0 = time.monotonic()
    shown = t0
    while True:
        status = {}
        for name in names:
            h = _find(hosts, name)
            status[name] = (h.status.value if h and h.status else 'missing',
                            h.status_detail if h else None)
        failed = [n for n, (s, _d) in status.items() if s == 'install_failed']
        if failed:
            raise RuntimeError('installing host %s failed: %s' % (failed[0],
                                                                  status[failed[0]][1]))
        if all(s == 'up' for s, _d in status.values()):
            _progress('hosts %s are up (%.0f s)' % (', '.join(names), time.monotonic() - t0))
            return names
        now = time.monotonic()
        if now - t0 > HOST_UP_TIMEOUT:
            raise RuntimeError('hosts not up within %d s: %s' % (HOST_UP_TIMEOUT, ', '.join(
                '%s %s%s' % (n, s, ' (%s)' % d if d else '') for n, (s, d) in status.items())))
        if now - shown >= 10:
            _progress('waiting for the hosts to come up: %s (%d s of %d s)' % (', '.join(
                '%s %s' % (n, s) for n, (s, _d) in status.items()), now - t0, HOST_UP_TIMEOUT))
            shown = now
        time.sleep(1)


def populate_main(argv=None):
    """Inside the engine's namespace: the request (JSON, with the passwords) on stdin."""
    argparse.ArgumentParser(prog='python3 -m %s populate' % __name__).parse_args(argv)
    import ovirtsdk4
    request = json.loads(sys.stdin.read())
    conn = ovirtsdk4.Connection(url='https://%s/ovirt-engine/api' % ENGINE_FQDN,
                                username=ADMIN_USER, password=request['admin_password'],
                                ca_file=request['ca_file'], timeout=120)
    try:
        populate(conn, request)
    except (ovirtsdk4.Error, RuntimeError) as e:
        print('[populate] error: %s' % e, file=sys.stderr, flush=True)
        return 1
    finally:
        conn.close()
    return 0


if __name__ == '__main__':
    if sys.argv[1:2] == ['populate']:
        sys.exit(populate_main(sys.argv[2:]))
    sys.exit('usage: hosted-engine-lab standalone-engine up|backup|down')
