"""ovirt-hosted-engine-cleanup: undo a hosted-engine deploy on this host so that it can be
deployed again.

    ovirt-hosted-engine-cleanup [-q] [--remove-storage [--fenced-host=ID[,ID...]]]

Works from whatever a deploy (finished, failed or interrupted) left behind:
/etc/ovirt-hosted-engine/hosted-engine.conf when it exists, the latest answer file, and
what the host agent reports (its VMs, the storage domains it sees and monitors). The only
storage domain it ever touches is this host's own: the sdUUID of hosted-engine.conf, or,
without it (a failed deploy), the domain on the answer file's storage connection that holds
the metadata and lockspace images that deploy recorded. Never a domain found by its name:
every host of a hosted-engine cluster sees one of the same name. Steps, each reported in
one line and each a no-op when its object is already gone:

1. stop the HA services (ovirt-ha-agent, then ovirt-ha-broker); each is said stopped only
   when it was running;
2. destroy the engine VM (VM.destroy of the conf's vmid and of any VM named HostedEngine);
3. tear the domain's images down (Image.teardown: the host agent's run links), stop
   monitoring the hosted-engine storage domain (Host.stopMonitoringDomain; a storage
   pool left connected by an interrupted deploy is disconnected) and leave the
   ``hosted-engine`` sanlock lockspace of this host;
4. with --remove-storage: delete the hosted-engine storage domain (StorageDomain.format).
   Before anything is changed, refused while another host is alive in the domain
   (ha/peers.py: its sanlock host id renewed, or its HA metadata slot written), naming
   those hosts; --fenced-host=ID overrides this for hosts that were fenced;
5. disconnect the storage server (StoragePool.disconnectStorageServer);
   then, only when the deploy opened the firewall (its record in
   /var/lib/ovirt-hosted-engine-setup/firewall.json, or the nftables table
   inet ovirt_hosted_engine on this host): remove those rules and the record;
   then, only when the deploy made the management bridge (its record of the NIC in
   /var/lib/ovirt-hosted-engine-setup/network-before-bridge.json): remove the bridge
   (Host.setupNetworks, Host.setSafeNetworkConfig) and check that the NIC has its recorded
   addresses, default route and MTU back (the record is removed only then);
6. remove the generated configuration: hosted-engine.conf, vm.conf, answers.conf,
   broker.conf, the HA services' runtime vm.conf and state, the engine CA the host agent
   trusts, the deploy's cloud-init seed ISO. Each removed file is listed.

When the host agent does not answer, steps 2 to 5 are skipped (said in one line each) and
the files are still removed. Exit status 0 when every step succeeded, 1 otherwise (after
trying every step) or when the user did not confirm. Tracebacks go to the log file under
/var/log/ovirt-hosted-engine-setup/.
"""
import argparse
import datetime
import glob
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

from ... import paths
from ...api.client import Client
from ...api.errors import ConnectionFailed
from ...ha import cli_common, peers
from ...he_storage import layout
from ...he_storage.heconf import parse_kv
from ...runner.config import read_bounded
from ...runner.errors import ConfigError
from .. import firewall, host_agent

log = logging.getLogger('ovirt_hosted_engine_setup.deploy.cleanup')

PROG = 'ovirt-hosted-engine-cleanup'
VM_NAME = 'HostedEngine'
LOCKSPACE = layout.LOCKSPACE_NAME
NO_SUCH_VM = 1
STORAGE_DOMAIN_DOES_NOT_EXIST = 358
# The HA daemons, in the order they are stopped: (program, module run with python -m,
# log file the daemon keeps open). They write no pid file; a running daemon is the process
# that runs that program and holds that log file open.
HA_DAEMONS = (
    ('ovirt-ha-agent', 'ovirt_hosted_engine_setup.ha.agent',
     os.path.join(paths.HA_LOG_DIR, 'agent.log')),
    ('ovirt-ha-broker', 'ovirt_hosted_engine_setup.ha.broker.daemon',
     os.path.join(paths.HA_LOG_DIR, 'broker.log')),
)
HA_STOP_GRACE = 30      # seconds a daemon gets after SIGTERM (the agent publishes its stop)
LOCKSPACE_TIMEOUT = 90  # seconds for leaving the sanlock lockspace
# storage domain TYPE of the domain metadata -> the domainType name of hosted-engine.conf
MD_TYPES = {'NFS': 'nfs', 'LOCALFS': 'localfs', 'POSIXFS': 'posixfs', 'GLUSTERFS': 'glusterfs',
            '1': 'nfs', '4': 'localfs', '6': 'posixfs', '7': 'glusterfs'}
SEED_VOLUME_ID = b'cidata'


def read_network_record():
    """The deploy's record of the management NIC before its bridge (network/bridge.py), or
    None when the deploy made no bridge (or the record is unreadable: logged)."""
    try:
        with open(paths.NETWORK_RECORD, encoding='utf-8') as f:
            rec = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning('cannot read %s (%s): the network is left as it is', paths.NETWORK_RECORD, e)
        return None
    return rec if isinstance(rec, dict) and rec.get('nic') else None


class StepFailed(Exception):
    """A step failed; str() is one line naming the problem and the fix."""


class StepSkipped(Exception):
    """A step could not run (the host agent is down); str() says why and what to do."""


# -- what the deploy left ------------------------------------------------------------

def read_kv(path):
    """key=value lines of a file, leniently ({} when missing or unreadable)."""
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return parse_kv(f.read())
    except OSError:
        return {}


def latest_answers():
    """The values of the newest answer file a deploy wrote ({} when none), types stripped."""
    files = sorted(glob.glob(os.path.join(paths.ANSWERS_DIR, 'answers-*.conf')))
    if os.path.isfile(paths.ETC_ANSWER_FILE):
        files.append(paths.ETC_ANSWER_FILE)
    if not files:
        return {}
    newest = max(files, key=lambda p: os.stat(p).st_mtime)
    try:
        text = read_bounded(newest)     # a regular file of at most 1 MiB, as for the deploy
    except ConfigError as e:
        log.warning('%s: the deploy\'s answers are not used', e)
        return {}
    out = {}
    for key, value in parse_kv(text).items():
        kind, sep, rest = value.partition(':')
        out[key] = rest if sep and kind in ('str', 'int', 'bool', 'none', 'multi-str') else value
    return out


def is_seed_iso(path):
    """True when path is an ISO 9660 image with volume id cidata (a cloud-init seed)."""
    try:
        with open(path, 'rb') as f:
            f.seek(16 * 2048)
            pvd = f.read(72)
    except OSError:
        return False
    return pvd[1:6] == b'CD001' and pvd[40:72].rstrip(b' \0') == SEED_VOLUME_ID


def seed_isos():
    """The deploy's cloud-init seed ISOs under the setup state directory."""
    out = []
    for root, dirs, files in os.walk(paths.SETUP_STATE_DIR):
        dirs[:] = [d for d in dirs if os.path.join(root, d) != paths.ANSWERS_DIR]
        for name in files:
            p = os.path.join(root, name)
            if os.path.isfile(p) and not os.path.islink(p) and is_seed_iso(p):
                out.append(p)
    return sorted(out)


# -- processes -----------------------------------------------------------------------

def _stat_fields(pid):
    """(state, start time) of a process from /proc/PID/stat, or None when it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
        rest = data[data.rindex(')') + 2:].split()
        return rest[0], rest[19]
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return [a.decode('utf-8', 'replace') for a in f.read().split(b'\0') if a]
    except OSError:
        return []


def runs_daemon(argv, program, module):
    """True when argv runs the daemon: its program or ``python -m module``."""
    head = argv[:4]
    return any(os.path.basename(a) == program for a in head) or module in head


def daemon_pids(program, module, log_path):
    """Pids of the processes running ``program`` with ``log_path`` open."""
    try:
        st = os.stat(log_path)
    except OSError:
        return []
    me = os.getpid()
    out = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        if not runs_daemon(_cmdline(pid), program, module):
            continue
        fd_dir = '/proc/%d/fd' % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                fst = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if (fst.st_dev, fst.st_ino) == (st.st_dev, st.st_ino):
                fields = _stat_fields(pid)
                if fields and fields[0] != 'Z':
                    out.append(pid)
                break
    return sorted(out)


def _alive(pid, start):
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != 'Z' and fields[1] == start


def terminate(pids, grace=HA_STOP_GRACE):
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the pids that had to be killed."""
    procs = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            procs[pid] = fields[1]
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p, s) for p, s in procs.items()):
        time.sleep(0.2)
    killed = []
    for pid, start in procs.items():
        if _alive(pid, start):
            killed.append(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p, procs[p]) for p in killed):
        time.sleep(0.1)
    return killed


# -- sanlock -------------------------------------------------------------------------

# Run in a child process: the sanlock client library keeps its daemon connection settings
# for the life of a process, and a rem_lockspace that hangs on storage must not hang this
# command (the child has a timeout).
REM_LOCKSPACE = r'''
import errno, json, sys
try:
    import sanlock
except ImportError:
    print(json.dumps({"unavailable": "python3-sanlock is not installed"}))
    sys.exit(0)
name = sys.argv[1].encode()
out = {"left": [], "busy": [], "errors": []}
try:
    spaces = sanlock.get_lockspaces()
except sanlock.SanlockException as e:
    if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
        out["no_daemon"] = str(e)
    else:
        out["errors"].append("cannot list the lockspaces: %s" % e)
    print(json.dumps(out))
    sys.exit(0)
for ls in spaces:
    if ls["lockspace"] != name:
        continue
    desc = {"host_id": ls["host_id"], "path": ls["path"].decode("utf-8", "replace")}
    try:
        sanlock.rem_lockspace(ls["lockspace"], ls["host_id"], ls["path"], offset=ls["offset"],
                              wait=True, unused=True)
        out["left"].append(desc)
    except sanlock.SanlockException as e:
        if e.errno == errno.ENOENT:
            continue
        if e.errno == errno.EBUSY:
            out["busy"].append(desc)
        else:
            out["errors"].append("host id %s on %s: %s" % (desc["host_id"], desc["path"], e))
print(json.dumps(out))
'''


def split_sanlock_spec(spec):
    """'name:host_id:path:offset' of `sanlock client status` (':' in names escaped as '\\:')
    -> [name, host_id, path, offset]."""
    parts, cur, i = [], '', 0
    while i < len(spec):
        ch = spec[i]
        if ch == '\\' and i + 1 < len(spec):
            cur += spec[i + 1]
            i += 2
            continue
        if ch == ':':
            parts.append(cur)
            cur = ''
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return parts


def lockspaces_of_status(text, name=LOCKSPACE):
    """[(host_id, path, offset, spec)] of lockspace ``name`` in `sanlock client status`."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] != 's':
            continue
        parts = split_sanlock_spec(fields[1])
        if len(parts) == 4 and parts[0] == name:
            out.append((int(parts[1]), parts[2], int(parts[3]), fields[1]))
    return out


def _leave_with_command(name):
    """The `sanlock client` way, for hosts without python3-sanlock."""
    if not shutil.which('sanlock'):
        return {'no_daemon': 'neither python3-sanlock nor the sanlock command is installed'}
    p = subprocess.run(['sanlock', 'client', 'status'], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        return {'no_daemon': (p.stderr or p.stdout).strip()}
    out = {'left': [], 'busy': [], 'errors': []}
    for host_id, path, _offset, spec in lockspaces_of_status(p.stdout, name):
        r = subprocess.run(['sanlock', 'client', 'rem_lockspace', '-s', spec],
                           capture_output=True, text=True, timeout=LOCKSPACE_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        desc = {'host_id': host_id, 'path': path}
        text = (r.stdout + r.stderr).strip()
        if r.returncode == 0:
            out['left'].append(desc)
        elif '-16' in text:
            out['busy'].append(desc)
        else:
            out['errors'].append('host id %s on %s: %s' % (host_id, path, text.splitlines()[-1:]))
    return out


def leave_lockspace(name=LOCKSPACE):
    """Leave every host id this host holds in lockspace ``name``.

    Returns {'left': [...], 'busy': [...], 'errors': [...]} or {'no_daemon': reason}."""
    try:
        p = subprocess.run([sys.executable, '-c', REM_LOCKSPACE, name], capture_output=True,
                           text=True, timeout=LOCKSPACE_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {'left': [], 'busy': [], 'errors': [
            'sanlock did not release the lockspace within %d s' % LOCKSPACE_TIMEOUT]}
    if p.returncode != 0:
        log.info('sanlock helper failed: %s', p.stderr)
        return {'left': [], 'busy': [], 'errors': [
            'the sanlock helper failed: %s' % (p.stderr.strip().splitlines() or ['?'])[-1]]}
    result = json.loads(p.stdout.strip().splitlines()[-1])
    if 'unavailable' in result:
        return _leave_with_command(name)
    return result


# -- the command ---------------------------------------------------------------------

class Domain:
    """A hosted-engine storage domain this host uses."""

    def __init__(self, sd_uuid, storage=None, domain_type=None, connection_uuid=None,
                 sp_uuid=None, mnt_options='', name=None, conf=None):
        self.sd_uuid = sd_uuid
        # hosted-engine.conf's keys of the domain (its volumes), for the liveness check
        self.conf = dict(conf or {}, sdUUID=sd_uuid, storage=storage or '',
                         domainType=domain_type or '')
        self.alive = []               # peers.LiveHost: other hosts alive in it
        self.unknown = []             # why that could not be judged
        self.storage = storage
        self.domain_type = domain_type
        self.connection_uuid = connection_uuid or layout.BLANK_UUID
        self.sp_uuid = sp_uuid or layout.BLANK_UUID
        self.mnt_options = mnt_options or ''
        self.name = name              # its description, when the host agent told it
        self.monitored = False
        self.pools = []

    def where(self):
        return '%s on %s' % (self.sd_uuid, self.storage or 'an unknown storage')


class Cleanup:
    firewall_pending = False    # discover(): the deploy's firewall rules are to be removed
    network_record = None       # discover(): the NIC before the deploy's bridge (a dict)

    def __init__(self, quiet=False, remove_storage=False, out=sys.stdout, err=sys.stderr,
                 stdin=sys.stdin, fenced=()):
        self.quiet = quiet
        self.remove_storage = remove_storage
        self.fenced = set(fenced)     # host ids declared fenced (--fenced-host)
        self.out = out
        self.err = err
        self.stdin = stdin
        self.conf = {}
        self.answers = {}
        self.client = None
        self.agent_problem = None
        self.vm_ids = []            # engine VM ids known from the files
        self.vms = []               # (vmId, vmName, status) of the engine VMs on this host
        self.domains = []
        self.failed = []
        self.skipped = []
        self.steps = []
        self.log_path = None

    # -- output ------------------------------------------------------------------
    def say(self, text, stream=None):
        stream = stream or self.out
        stream.write(text + '\n')
        stream.flush()

    def info(self, text):
        log.info('%s', text)
        self.say('[ INFO  ] ' + text)

    def warn(self, text):
        log.warning('%s', text)
        self.say('[ WARN  ] ' + text)

    def error(self, text):
        log.error('%s', text)
        self.say('[ ERROR ] ' + text, self.err)

    # -- discovery ---------------------------------------------------------------
    def discover(self):
        self.conf = read_kv(paths.HOSTED_ENGINE_CONF)
        self.answers = latest_answers()
        ids = [self.conf.get('vmid'), read_kv(paths.VM_CONF).get('vmId'),
               self.answers.get('OVEHOSTED_VM/vmUUID')]
        if self.conf.get('conf') and os.path.basename(self.conf['conf']) == 'vm.conf':
            ids.append(read_kv(self.conf['conf']).get('vmId'))
        self.vm_ids = list(dict.fromkeys(i for i in ids if i))
        self.sd_name = (self.answers.get('OVEHOSTED_STORAGE/storageDomainName')
                        or layout.DEFAULT_SD_NAME)
        if self.conf.get('sdUUID'):
            self.domains = [Domain(self.conf['sdUUID'], self.conf.get('storage'),
                                   self.conf.get('domainType'), self.conf.get('connectionUUID'),
                                   self.conf.get('spUUID'), self.conf.get('mnt_options'),
                                   conf=self.conf)]
        self.firewall_pending = firewall.pending(paths.FIREWALL_RECORD)
        self.network_record = read_network_record()
        self.connect_agent()
        if self.client is not None:
            try:
                self.discover_with_agent()
            except Exception as e:
                log.info('asking the host agent failed', exc_info=True)
                self.agent_problem = 'the host agent failed to answer (%s)' % _reason(e)
                self.close_agent()

    def connect_agent(self):
        try:
            port = cli_common.hostd_port()
        except cli_common.CliError as e:
            self.agent_problem = str(e)
            return
        insecure = str(self.conf.get('vdsm_use_ssl', 'true')).strip().lower() == 'false'
        try:
            self.client = Client('localhost', port, insecure=insecure, timeout=120,
                                 connect_timeout=10, reconnect_interval=0)
        except ConnectionFailed as e:
            log.info('host agent connection failed', exc_info=True)
            self.agent_problem = ('the host agent (ovirt-hosted-engine-hostd or vdsmd) does not '
                                  'answer on localhost:%d (%s)'
                                  % (port, _reason(e).rpartition(': ')[2] or e))
            self.client = None

    def close_agent(self):
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                log.info('closing the host agent connection', exc_info=True)
            self.client = None

    def call(self, method, **params):
        return self.client.call(method, _timeout=120, **params)

    def discover_with_agent(self):
        vms = []
        for st in self.call('Host.getAllVmStats') or []:
            if st.get('vmId') in self.vm_ids or st.get('vmName') == VM_NAME:
                vms.append((st.get('vmId'), st.get('vmName') or VM_NAME, st.get('status')))
        self.vms = vms
        monitored = set(self.call('Host.getStorageRepoStats') or {})
        if not self.domains:
            self.domains = self.recorded_domains(monitored)
        else:
            for d in self.domains:
                info = self._domain_info(d.sd_uuid)
                if info:
                    d.name = info.get('name')
        pools = self.call('Host.getConnectedStoragePools') or []
        for d in self.domains:
            d.monitored = d.sd_uuid in monitored
            for sp in pools:
                try:
                    master = self.call('StoragePool.getInfo', storagepoolID=sp)['info'].get(
                        'master_uuid')
                except Exception as e:
                    log.info('StoragePool.getInfo %s: %s', sp, e)
                    continue
                if master == d.sd_uuid:
                    d.pools.append(sp)

    def recorded_domains(self, monitored):
        """No hosted-engine.conf (a failed deploy): the domain that deploy created, known
        from its answer file (its storage connection and the metadata and lockspace images
        it made there). Domains are never picked by name: every host of a hosted-engine
        cluster sees a domain of the same name."""
        a = self.answers
        storage = a.get('OVEHOSTED_STORAGE/storageDomainConnection')
        images = [a.get('OVEHOSTED_STORAGE/%s' % k) for k in ('metadataImageUUID',
                                                             'lockspaceImageUUID')]
        if not storage or not all(images):
            log.info('no hosted-engine.conf and no answer file naming the images of a '
                     'hosted-engine storage domain: no domain to clean up')
            return []
        seen = set(self.call('Host.getStorageDomains') or []) | monitored
        out = []
        for sd in sorted(seen):
            info = self._domain_info(sd)
            if not info or (info.get('remotePath') or '').rstrip('/') != storage.rstrip('/'):
                continue
            try:
                have = set(self.call('StorageDomain.getImages', storagedomainID=sd) or [])
            except Exception as e:
                log.info('StorageDomain.getImages %s: %s', sd, e)
                continue
            if not set(images) <= have:
                log.info('storage domain %s on %s lacks the images %s of the last deploy: '
                         'not its domain', sd, storage, ', '.join(sorted(set(images) - have)))
                continue
            dtype = a.get('OVEHOSTED_STORAGE/domainType') or MD_TYPES.get(
                str(info.get('type')).upper())
            conf = {'metadata_image_UUID': images[0], 'lockspace_image_UUID': images[1],
                    'metadata_volume_UUID': a.get('OVEHOSTED_STORAGE/metadataVolumeUUID'),
                    'lockspace_volume_UUID': a.get('OVEHOSTED_STORAGE/lockspaceVolumeUUID'),
                    'sanlock_io_timeout': a.get('OVEHOSTED_STORAGE/sanlockIoTimeout')}
            out.append(Domain(sd, storage, dtype, None, (info.get('pool') or [None])[0],
                              name=info.get('name'), conf=conf))
        return out

    def check_peers(self):
        """Which other hosts are alive in the domains to delete (before anything changes)."""
        own = {int(self.conf['host_id'])} if str(self.conf.get('host_id', '')).isdigit() \
            else set()
        owner = peers.local_sanlock_name()
        for d in self.domains:
            verdict = peers.find_alive(d.conf, cli_common.DATA_CENTER_DIR, exclude=own,
                                       own_owner=owner, progress=self.info)
            d.alive = verdict.alive
            d.unknown = [] if verdict.read_any else verdict.unknown or [
                'its lockspaces cannot be found under %s' % cli_common.DATA_CENTER_DIR]
            log.info('storage domain %s: alive %s, unknown %s', d.sd_uuid,
                     [(h.host_id, h.hostname, h.evidence) for h in d.alive], verdict.unknown)

    def refusal(self):
        """One line when --remove-storage must not run (other hosts alive), else None."""
        for d in self.domains:
            if d.unknown:
                return ('Refusing to delete storage domain %s: cannot tell whether other hosts '
                        'use it (%s); connect its storage (hosted-engine --connect-storage) and '
                        'run %s --remove-storage again; nothing was changed'
                        % (d.where(), '; '.join(d.unknown), PROG))
            live = [h for h in d.alive if h.host_id not in self.fenced]
            if live:
                one = len(live) == 1
                return ('Refusing to delete storage domain %s: %s %s alive in it (%s); '
                        'nothing was changed. Run %s without --remove-storage to clean up '
                        'this host only; if %s really gone, fence %s (power off) and run '
                        'again with --fenced-host=%s' % (
                            d.where(), peers.describe(live), 'is' if one else 'are',
                            '; '.join('%s: %s' % (h, ', '.join(h.evidence)) for h in live),
                            PROG, 'it is' if one else 'they are', 'it' if one else 'them',
                            ','.join(str(h.host_id) for h in live)))
        return None

    def _domain_info(self, sd):
        try:
            return self.call('StorageDomain.getInfo', storagedomainID=sd)
        except Exception as e:
            if getattr(e, 'code', None) != STORAGE_DOMAIN_DOES_NOT_EXIST:
                log.info('StorageDomain.getInfo %s: %s', sd, e)
            return None

    def files_to_remove(self):
        """Existing files of the generated configuration (removed in the last step)."""
        candidates = [paths.HOSTED_ENGINE_CONF, paths.VM_CONF, paths.ETC_ANSWER_FILE,
                      paths.BROKER_CONF, os.path.join(paths.HA_RUN_DIR, 'vm.conf')]
        if self.conf.get('conf') and os.path.basename(self.conf['conf']) == 'vm.conf':
            candidates.append(self.conf['conf'])
        try:
            candidates += [os.path.join(paths.HA_STATE_DIR, n)
                           for n in sorted(os.listdir(paths.HA_STATE_DIR))]
        except OSError:
            pass
        candidates += sorted(glob.glob(os.path.join(host_agent.root(), 'pki', 'trusted-cas',
                                                    'engine-*.pem')))
        candidates += seed_isos()
        return [p for p in dict.fromkeys(candidates) if os.path.lexists(p)]

    # -- confirmation ------------------------------------------------------------
    def describe(self):
        lines = ['This will remove the hosted-engine configuration of this host, so that '
                 'hosted-engine --deploy can run again:',
                 '  - the HA services ovirt-ha-agent and ovirt-ha-broker are stopped']
        if self.client is None:
            lines.append('  - (%s: the engine VM, the storage monitoring and the storage '
                         'connection are left as they are)' % self.agent_problem)
        else:
            for vm_id, name, status in self.vms:
                lines.append('  - the engine VM %s (%s, %s) is powered off and removed from '
                             'this host' % (name, vm_id, status))
            if not self.vms:
                lines.append('  - no engine VM runs on this host')
            for d in self.domains:
                lines.append('  - storage domain %s is no longer monitored and its storage '
                             'disconnected' % d.where())
        lines.append('  - this host leaves the %s sanlock lockspace' % LOCKSPACE)
        if self.firewall_pending:
            lines.append('  - the firewall rules the deploy added are removed (nftables table '
                         '%s or firewalld service %s)' % (firewall.TABLE, firewall.SERVICE))
        if self.network_record:
            rec = self.network_record
            lines.append('  - the bridge %s is removed and %s gets back what it had before the '
                         'deploy (%s)' % (rec.get('bridge'), rec.get('nic'), ', '.join(
                             (rec.get('nic_before') or {}).get('ipv4addrs') or [])
                             or 'no IPv4 address'))
        files = self.files_to_remove()
        if files:
            lines.append('  - these files are removed:')
            lines += ['      %s' % p for p in files]
        if self.remove_storage:
            if self.domains:
                for d in self.domains:
                    for h in d.alive:
                        lines.append('  - %s IS ALIVE in storage domain %s (%s)%s' % (
                            h, d.sd_uuid, ', '.join(h.evidence),
                            ': declared fenced (--fenced-host=%d)' % h.host_id
                            if h.host_id in self.fenced else
                            ': the storage domain is not deleted'))
                    lines.append('  - THE STORAGE DOMAIN %s IS DELETED with the engine VM '
                                 'disk: the engine and its data are lost' % d.where())
            else:
                lines.append('  - (--remove-storage: no hosted-engine storage domain found)')
        return lines

    def ask(self, question):
        """True on yes; False on no or end of input."""
        while True:
            self.out.write('%s [y/N] ' % question)
            self.out.flush()
            line = self.stdin.readline() if self.stdin else ''
            if not line or not _isatty(self.stdin):
                self.out.write('%s\n' % line.strip())     # the answer, as a terminal shows it
            if not line:
                return False
            answer = line.strip().lower()
            if answer in ('y', 'yes'):
                return True
            if answer in ('', 'n', 'no'):
                return False
            self.say('Please answer y or n.')

    def confirm(self):
        if self.quiet:
            return True
        for line in self.describe():
            self.say(line)
        if not self.ask('Are you sure you want to continue?'):
            return False
        if self.remove_storage and self.domains:
            return self.ask('Delete the hosted-engine storage domain %s? This cannot be undone.'
                            % ', '.join(d.where() for d in self.domains))
        return True

    # -- steps -------------------------------------------------------------------
    def step(self, title, fn):
        n = len(self.steps) + 1
        self.steps.append(title)
        label = '%d/%d %s' % (n, self.total, title)
        try:
            text = fn()
        except StepSkipped as e:
            self.skipped.append(title)
            self.warn('%s: skipped: %s' % (label, e))
        except StepFailed as e:
            self.failed.append(title)
            self.error('%s: %s' % (label, e))
        except Exception as e:
            log.exception('%s failed', title)
            self.failed.append(title)
            self.error('%s: %s: %s (details in %s)' % (label, type(e).__name__, e,
                                                       self.log_path or 'the log'))
        else:
            lines = text if isinstance(text, list) else [text]
            self.info('%s: %s' % (label, lines[0]))
            for line in lines[1:]:
                self.say('            %s' % line)

    def need_agent(self):
        if self.client is None:
            raise StepSkipped('%s: start it and run %s again' % (self.agent_problem, PROG))

    def stop_ha(self):
        """Stop the HA daemons; each is said stopped only when it was running."""
        stopped = {}           # program -> how it was stopped
        notes = []
        names = [d[0] for d in HA_DAEMONS]
        if os.environ.get('OVIRT_HE_LAB_HOST'):
            host = os.environ['OVIRT_HE_LAB_HOST']
            exe = shutil.which('hosted-engine-lab') or os.path.join(
                os.path.dirname(sys.executable), 'hosted-engine-lab')
            p = subprocess.run([exe, 'ha', 'stop', host], capture_output=True, text=True,
                               timeout=180, stdin=subprocess.DEVNULL)
            log.info('hosted-engine-lab ha stop %s: %s%s', host, p.stdout, p.stderr)
            if p.returncode != 0:
                raise StepFailed('hosted-engine-lab ha stop %s failed: %s; stop them with '
                                 'hosted-engine-lab ha stop %s and run %s again' % (
                                     host, (p.stderr or p.stdout).strip().splitlines()[-1:],
                                     host, PROG))
            # it says "[lab] ha-agent stopped on host1" for each daemon it stopped
            for line in p.stdout.splitlines():
                what, sep, _where = line.partition(' stopped on ')
                what = (what.split() or [''])[-1]
                if sep and what in ('ha-agent', 'ha-broker'):
                    stopped['ovirt-' + what] = 'hosted-engine-lab ha stop %s' % host
        elif os.path.isdir('/run/systemd/system') and not paths.PREFIX:
            units = [n + '.service' for n in names]
            for name, unit in zip(names, units):
                active = subprocess.run(['systemctl', 'is-active', '--quiet', unit],
                                        stdin=subprocess.DEVNULL, timeout=60).returncode == 0
                p = subprocess.run(['systemctl', 'stop', unit], capture_output=True, text=True,
                                   timeout=180, stdin=subprocess.DEVNULL)
                # 5: the unit is not installed
                if p.returncode not in (0, 5):
                    raise StepFailed('systemctl stop %s failed: %s; see journalctl -u %s'
                                     % (unit, p.stderr.strip(), unit))
                if active:
                    stopped[name] = 'systemctl stop'
            p = subprocess.run(['systemctl', 'disable'] + units, capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
            log.info('systemctl disable: %s %s', p.returncode, p.stderr)
            if p.returncode == 0:
                notes.append('units disabled')
        for program, module, log_path in HA_DAEMONS:
            pids = daemon_pids(program, module, log_path)
            if pids:
                killed = terminate(pids)
                stopped[program] = 'pid %s%s' % (', '.join(map(str, pids)),
                                                  ', killed after %d s' % HA_STOP_GRACE
                                                  if killed else '')
                left = daemon_pids(program, module, log_path)
                if left:
                    raise StepFailed('%s (pid %s) does not stop: kill it and run %s again'
                                     % (program, ', '.join(map(str, left)), PROG))
        if not stopped:
            return 'ovirt-ha-agent and ovirt-ha-broker are not running' + (
                ' (%s)' % ', '.join(notes) if notes else '')
        if len(stopped) == len(names):
            hows = list(dict.fromkeys(stopped.values()))
            detail = hows[0] if len(hows) == 1 else ', '.join(
                '%s: %s' % (n, stopped[n]) for n in names)
            return 'ovirt-ha-agent and ovirt-ha-broker stopped (%s)' % '; '.join(
                [detail] + notes)
        parts = ['%s stopped (%s)' % (n, stopped[n]) if n in stopped else
                 '%s was not running' % n for n in names]
        return ', '.join(parts) + ('; %s' % ', '.join(notes) if notes else '')

    def destroy_vm(self):
        self.need_agent()
        if not self.vms:
            return 'no engine VM on this host'
        done = []
        for vm_id, name, status in self.vms:
            try:
                self.call('VM.destroy', vmID=vm_id)
            except Exception as e:
                if getattr(e, 'code', None) == NO_SUCH_VM:
                    continue
                raise StepFailed('powering off the engine VM %s (%s) failed: %s; power it off '
                                 'with hosted-engine --vm-poweroff or virsh destroy %s, then '
                                 'run %s again' % (name, vm_id, _reason(e), name, PROG))
            done.append('%s (%s, was %s)' % (name, vm_id, status))
        left = [v for v in (self.call('Host.getAllVmStats') or [])
                if v.get('vmId') in [x[0] for x in self.vms] and v.get('status') != 'Down']
        if left:
            raise StepFailed('the engine VM %s is still %s: power it off (virsh destroy %s) '
                             'and run %s again' % (left[0]['vmId'], left[0].get('status'),
                                                   VM_NAME, PROG))
        if not done:
            return 'no engine VM on this host'
        return 'powered off and removed from this host: %s' % ', '.join(done)

    def release(self):
        parts = []
        problems = []
        if self.client is None:
            parts.append('storage domain monitoring left as it is')
        else:
            for d in self.domains:
                teardown = self._teardown_images(d, problems)
                if teardown:
                    parts.append(teardown)
                for sp in d.pools:
                    parts.append(self._disconnect_pool(d, sp, problems))
                if d.monitored:
                    try:
                        self.call('Host.stopMonitoringDomain', sdUUID=d.sd_uuid)
                        parts.append('storage domain %s no longer monitored' % d.sd_uuid)
                    except Exception as e:
                        problems.append('stopping the monitoring of storage domain %s failed '
                                        '(%s)' % (d.sd_uuid, _reason(e)))
                else:
                    parts.append('storage domain %s not monitored' % d.sd_uuid)
            if not self.domains:
                parts.append('no hosted-engine storage domain monitored')
        res = leave_lockspace()
        if res.get('no_daemon'):
            log.info('sanlock: %s', res['no_daemon'])
            parts.append('not in the %s lockspace (the sanlock daemon is not running)'
                         % LOCKSPACE)
        else:
            for ls in res.get('left', []):
                parts.append('left the %s lockspace (host id %s)' % (LOCKSPACE, ls['host_id']))
            if not res.get('left') and not res.get('busy') and not res.get('errors'):
                parts.append('not in the %s lockspace' % LOCKSPACE)
            for ls in res.get('busy', []):
                problems.append('the %s lockspace (host id %s on %s) is busy: a process still '
                                'holds a lease in it (is an HA broker still running?)'
                                % (LOCKSPACE, ls['host_id'], ls['path']))
            for text in res.get('errors', []):
                problems.append('leaving the %s lockspace failed: %s' % (LOCKSPACE, text))
        if problems:
            raise StepFailed('%s; fix it and run %s again' % ('; '.join(problems), PROG))
        if self.client is None:
            raise StepSkipped('%s; %s: start it and run %s again'
                              % ('; '.join(parts), self.agent_problem, PROG))
        return '; '.join(parts)

    def _teardown_images(self, d, problems):
        """Image.teardown of every image of the domain: the host agent removes the links
        Image.prepare made under its run directory (VDSM: /run/vdsm/storage/<sd>/<img>)."""
        try:
            images = self.call('StorageDomain.getImages', storagedomainID=d.sd_uuid) or []
        except Exception as e:
            if getattr(e, 'code', None) != STORAGE_DOMAIN_DOES_NOT_EXIST:
                problems.append('listing the images of storage domain %s failed (%s)'
                                % (d.sd_uuid, _reason(e)))
            return None
        done = 0
        for img in images:
            try:
                self.call('Image.teardown', storagepoolID=d.sp_uuid, storagedomainID=d.sd_uuid,
                          imageID=img)
                done += 1
            except Exception as e:
                problems.append('tearing down image %s of storage domain %s failed (%s)'
                                % (img, d.sd_uuid, _reason(e)))
        return '%d image%s of storage domain %s torn down' % (
            done, '' if done == 1 else 's', d.sd_uuid) if done else None

    def _disconnect_pool(self, d, sp, problems):
        """Leave a storage pool an interrupted deploy left connected (master: d)."""
        host_id = int(self.conf.get('host_id') or 1)
        try:
            try:
                if self.call('StoragePool.getSpmStatus', storagepoolID=sp).get(
                        'spmStatus') == 'SPM':
                    self.call('StoragePool.spmStop', storagepoolID=sp)
            except Exception as e:
                log.info('SPM status of %s: %s', sp, e)
            self.call('StoragePool.disconnect', storagepoolID=sp, hostID=host_id, scsiKey=sp)
            return 'storage pool %s disconnected' % sp
        except Exception as e:
            problems.append('disconnecting storage pool %s failed (%s)' % (sp, _reason(e)))
            return 'storage pool %s left connected' % sp

    def delete_domain(self):
        self.need_agent()
        if not self.domains:
            return 'no hosted-engine storage domain found: nothing to delete'
        done = []
        for d in self.domains:
            info = self._domain_info(d.sd_uuid)
            if info is None:
                done.append('%s already gone' % d.where())
                continue
            if info.get('name') != self.sd_name:
                raise StepFailed('storage domain %s is named %r, not %r: it is not the '
                                 'hosted-engine domain, it is left as it is; remove it by hand '
                                 'if it must go' % (d.where(), info.get('name'), self.sd_name))
            try:
                self.call('StorageDomain.format', storagedomainID=d.sd_uuid, autoDetach=True)
            except Exception as e:
                raise StepFailed('deleting storage domain %s failed: %s; stop what uses it and '
                                 'run %s --remove-storage again' % (d.where(), _reason(e), PROG))
            done.append('%s deleted' % d.where())
        return '; '.join(done)

    def disconnect(self):
        self.need_agent()
        if not self.domains:
            return 'no hosted-engine storage connection known: nothing to disconnect'
        done = []
        dc_dir = cli_common.DATA_CENTER_DIR
        for d in self.domains:
            if not d.storage or not d.domain_type:
                raise StepFailed('the storage of domain %s is unknown (no storage/domainType in '
                                 '%s): disconnect it by hand' % (d.sd_uuid,
                                                                 paths.HOSTED_ENGINE_CONF))
            try:
                type_id = layout.DOMAIN_TYPES[d.domain_type]
            except KeyError:
                raise StepFailed('domainType %r of %s is not one of %s: disconnect the storage '
                                 'by hand' % (d.domain_type, paths.HOSTED_ENGINE_CONF,
                                              ', '.join(sorted(layout.DOMAIN_TYPES))))
            mnt = layout.mount_point(d.storage, dc_dir)
            was = os.path.lexists(mnt)
            params = layout.connection_params(
                {'storage': d.storage, 'domainType': d.domain_type,
                 'mnt_options': d.mnt_options}, d.connection_uuid)
            try:
                res = self.call('StoragePool.disconnectStorageServer', storagepoolID=d.sp_uuid,
                                domainType=type_id, connectionParams=[params])
            except Exception as e:
                raise StepFailed('disconnecting the storage %s failed: %s; stop what uses it '
                                 'and run %s again' % (d.storage, _reason(e), PROG))
            status = (res or [{}])[0]
            if status.get('status') not in (0, None):
                raise StepFailed('disconnecting the storage %s failed (code %s: %s): stop what '
                                 'uses it (mount point %s) and run %s again' % (
                                     d.storage, status.get('status'), status.get('message', ''),
                                     mnt, PROG))
            done.append('%s %s' % (d.storage, 'disconnected' if was else
                                   'was not connected'))
        return '; '.join(done)

    def remove_firewall(self):
        try:
            return firewall.undo_recorded(paths.FIREWALL_RECORD)
        except firewall.FirewallError as e:
            raise StepFailed('%s; then run %s again' % (e, PROG))

    def restore_network(self):
        """Remove the management bridge the deploy created (Host.setupNetworks with the
        network removed, then Host.setSafeNetworkConfig) and check that the NIC has what the
        deploy recorded before the bridge (paths.NETWORK_RECORD) back; the record is removed
        only then."""
        rec = self.network_record
        bridge, nic = rec.get('bridge') or 'ovirtmgmt', rec.get('nic')
        before = rec.get('nic_before') or {}
        self.need_agent()
        caps = self.call('Host.getCapabilities') or {}
        parts = []
        if bridge in (caps.get('bridges') or {}) or bridge in (caps.get('networks') or {}):
            try:
                self.call('Host.setupNetworks', networks={bridge: {'remove': True}},
                          bondings={}, options={'connectivityCheck': False})
                self.call('Host.setSafeNetworkConfig')
            except Exception as e:
                raise StepFailed('removing the bridge %s failed: %s; remove it by hand (ip link '
                                 'del %s) and run %s again' % (bridge, _reason(e), bridge, PROG))
            parts.append('bridge %s removed' % bridge)
            caps = self.call('Host.getCapabilities') or {}
        else:
            parts.append('bridge %s was not there' % bridge)
        now = (caps.get('nics') or {}).get(nic)
        if not nic or now is None:
            raise StepFailed('the NIC %s recorded in %s is not on this host: configure the '
                             'network by hand, then remove %s' % (nic, paths.NETWORK_RECORD,
                                                                  paths.NETWORK_RECORD))
        missing, fixes = [], []
        have = set(now.get('ipv4addrs') or [])
        for a in before.get('ipv4addrs') or []:
            if a not in have:
                missing.append('address %s' % a)
                fixes.append('ip addr add %s dev %s' % (a, nic))
        gw = before.get('gateway')
        if gw and now.get('gateway') != gw:
            missing.append('default route via %s' % gw)
            fixes.append('ip route replace default via %s dev %s' % (gw, nic))
        if before.get('mtu') and str(now.get('mtu')) != str(before.get('mtu')):
            missing.append('MTU %s (now %s)' % (before['mtu'], now.get('mtu')))
            fixes.append('ip link set dev %s mtu %s' % (nic, before['mtu']))
        if missing:
            dhcp = ' (it used DHCP: restart its DHCP client)' if before.get('dhcpv4') else ''
            raise StepFailed('%s; but %s lacks what it had before the deploy: %s%s; put it back '
                             '(%s), then run %s again' % (
                                 '; '.join(parts), nic, ', '.join(missing), dhcp,
                                 '; '.join(fixes), PROG))
        try:
            os.unlink(paths.NETWORK_RECORD)
        except FileNotFoundError:
            pass
        addrs = ', '.join(before.get('ipv4addrs') or []) or 'no IPv4 address'
        parts.append('%s has its configuration back (%s%s, MTU %s)' % (
            nic, addrs, ', default route via %s' % gw if gw else '', now.get('mtu')))
        return '; '.join(parts)

    def remove_files(self, ha_stopped):
        files = self.files_to_remove()
        socket = os.path.join(paths.HA_RUN_DIR, 'broker.socket')
        if ha_stopped and os.path.lexists(socket):
            files.append(socket)        # left by a broker that was killed
        removed, problems = [], []
        for p in files:
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
                removed.append(p)
            except FileNotFoundError:
                pass
            except OSError as e:
                problems.append('%s (%s)' % (p, e.strerror or e))
        for p in removed:
            log.info('removed %s', p)
        if problems:
            for p in removed:
                self.say('            - %s' % p)
            raise StepFailed('cannot remove %s: remove by hand' % ', '.join(problems))
        if not removed:
            return 'nothing to remove'
        return ['%d removed' % len(removed)] + ['- %s' % p for p in removed]

    # -- the whole ---------------------------------------------------------------
    def run(self):
        self.discover()
        if self.remove_storage and self.domains and self.client is not None:
            self.check_peers()
        refusal = self.refusal() if self.remove_storage else None
        if refusal:
            if not self.quiet:
                for line in self.describe():
                    self.say(line)
            self.error(refusal)
            return 1
        for d in self.domains if self.remove_storage else []:
            for h in d.alive:
                self.warn('%s looks alive in storage domain %s (%s), declared fenced with '
                          '--fenced-host=%d: the domain is deleted anyway'
                          % (h, d.sd_uuid, ', '.join(h.evidence), h.host_id))
        if not self.confirm():
            self.error('Aborted: nothing was changed (run %s -q to clean up without questions)'
                       % PROG)
            return 1
        self.total = (6 if self.remove_storage else 5) + (1 if self.firewall_pending else 0) \
            + (1 if self.network_record else 0)
        self.step('HA services', self.stop_ha)
        ha_stopped = 'HA services' not in self.failed
        self.step('Engine VM', self.destroy_vm)
        self.step('Sanlock and storage monitoring', self.release)
        if self.remove_storage:
            if 'Engine VM' in self.failed + self.skipped or \
                    'Sanlock and storage monitoring' in self.failed:
                self.steps.append('Storage domain')
                self.skipped.append('Storage domain')
                self.warn('%d/%d Storage domain: skipped: the engine VM or the storage '
                          'monitoring could not be stopped; run %s --remove-storage again '
                          'once the steps above succeed' % (len(self.steps), self.total, PROG))
            else:
                self.step('Storage domain', self.delete_domain)
        self.step('Storage connection', self.disconnect)
        if self.firewall_pending:
            self.step('Firewall', self.remove_firewall)
        if self.network_record:
            self.step('Management network', self.restore_network)
        self.step('Configuration files', lambda: self.remove_files(ha_stopped))
        self.close_agent()
        if self.failed or self.skipped:
            parts = []
            if self.failed:
                parts.append('failed: %s' % ', '.join(self.failed))
            if self.skipped:
                parts.append('skipped: %s' % ', '.join(dict.fromkeys(self.skipped)))
            self.error('Hosted engine cleanup incomplete (%s): fix the causes above and run %s '
                       'again; log: %s' % ('; '.join(parts), PROG, self.log_path))
            return 1
        self.info('Hosted engine cleanup finished: this host can be deployed again '
                  '(hosted-engine --deploy); log: %s' % self.log_path)
        return 0


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _reason(exc):
    msg = getattr(exc, 'message', None) or str(exc).split('; ')[0]
    code = getattr(exc, 'code', None)
    return ('code %s: %s' % (code, msg)) if code is not None else msg


def setup_logging():
    """A new log file under the setup log directory; returns its path (None if impossible)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    stamp = datetime.datetime.now().strftime('%Y%m%d%H%M%S')
    path = os.path.join(paths.SETUP_LOG_DIR, '%s-%s-%d.log' % (PROG, stamp, os.getpid()))
    try:
        os.makedirs(paths.SETUP_LOG_DIR, exist_ok=True)
        handler = logging.FileHandler(path, encoding='utf-8')
    except OSError:
        root.addHandler(logging.NullHandler())
        return None
    handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s [%(name)s] %(message)s'))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    return path


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(1, '%s: %s; see %s --help\n' % (self.prog, message, self.prog))


def parse_args(argv):
    p = _Parser(prog=PROG, description=(
        'Remove what hosted-engine --deploy configured on this host (engine VM, HA services, '
        'sanlock lockspace, storage connection, generated configuration) so that a failed '
        'deploy can be retried.'))
    p.add_argument('-q', '--quiet', action='store_true',
                   help='do not ask for confirmation')
    p.add_argument('--remove-storage', action='store_true',
                   help='also delete the hosted-engine storage domain (the engine VM disk) '
                        'from the shared storage; refused while other hosts are alive in it')
    p.add_argument('--fenced-host', metavar='ID[,ID...]', action='append', default=[],
                   type=_host_ids,
                   help='with --remove-storage: these host ids were fenced (powered off) and '
                        'are really gone; delete the storage domain even though their lease or '
                        'metadata still looks alive')
    args = p.parse_args(argv)
    args.fenced_host = sorted({h for ids in args.fenced_host for h in ids})
    if args.fenced_host and not args.remove_storage:
        p.error('--fenced-host is only for --remove-storage')
    return args


def _host_ids(text):
    try:
        ids = [int(x) for x in text.split(',') if x.strip()]
    except ValueError:
        ids = []
    if not ids or not all(1 <= h <= peers.MAX_HOSTS for h in ids):
        raise argparse.ArgumentTypeError('%r is not a list of host ids (1..%d)'
                                         % (text, peers.MAX_HOSTS))
    return ids


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0 and not paths.PREFIX:
        sys.stderr.write('%s: must be run as root: run it again with sudo\n' % PROG)
        return 1
    cleanup = Cleanup(quiet=args.quiet, remove_storage=args.remove_storage,
                      fenced=args.fenced_host)
    cleanup.log_path = setup_logging()
    log.info('%s %s', PROG, ' '.join(sys.argv[1:] if argv is None else argv))
    try:
        return cleanup.run()
    except KeyboardInterrupt:
        cleanup.error('Interrupted: run %s again to finish the cleanup' % PROG)
        return 1
    except Exception as e:
        log.exception('cleanup failed')
        cleanup.error('%s: %s (details in %s)' % (type(e).__name__, e, cleanup.log_path))
        return 1
    finally:
        cleanup.close_agent()


if __name__ == '__main__':
    sys.exit(main())
