"""The host agent's storage backend: file storage domains laid out as VDSM does.

Connections (StoragePool.connectStorageServer):
- NFS (1): ``mount -t nfs`` of "server:/export" at <data_center_dir>/mnt/<mangled>.
- POSIXFS (6) / GLUSTERFS (7): ``mount -t <vfs_type>``. A POSIXFS connection
  that is a local directory with an empty vfs_type (or "none") is bind-mounted.
- LOCALFS (4): a local directory, linked (symlink) as <data_center_dir>/mnt/<mangled>
  ("/srv/data" -> "_srv_data"), as VDSM does.
Mangling: "_" doubled, then "/" -> "_".

Domains live at <mnt>/<sdUUID>/ (dom_md/, images/); a pool connected on this
host is <data_center_dir>/<spUUID>/ with a link per domain and "mastersd".
The pool's own metadata is kept in the master domain's metadata (POOL_* keys).

State that must survive a restart of the agent (connections, connected pools,
monitored domains, tasks) is kept under <root_dir>/storage/.
"""
import errno
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time

from ...api.schema import constant, enum
from ...he_storage import sanlock_util
from ..api_base import Backend, VdsmError, verb
from . import metadata as md
from .fileutil import (BLANK_UUID, DIR_MODE, FILE_MODE, is_mounted, makedirs, make_sparse, mangle,
                       read_direct, write_atomic)
from .monitor import DomainMonitor
from .tasks import TaskManager

log = logging.getLogger(__name__)

_TYPES = enum('domainType')
NFS, LOCALFS, POSIXFS, GLUSTERFS = (_TYPES[n] for n in ('NFS', 'LOCALFS', 'POSIXFS', 'GLUSTERFS'))
FILE_DOMAIN_TYPES = (NFS, LOCALFS, POSIXFS, GLUSTERFS)
COW, RAW = enum('volFormat')['COW'], enum('volFormat')['RAW']
PREALLOCATED = enum('preallocate')['PREALLOCATED']
# The domain metadata keys of the sanlock lease timings StoragePool.create takes.
LEASE_TIMING_KEYS = {'lockRenewalIntervalSec': 'LOCKRENEWALINTERVALSEC',
                     'leaseTimeSec': 'LEASETIMESEC', 'ioOpTimeoutSec': 'IOOPTIMEOUTSEC',
                     'leaseRetries': 'LEASERETRIES'}

MiB = 1 << 20
GiB = 1 << 30
# dom_md files and their sizes (sparse files; sanlock needs 1 MiB alignment).
DOM_MD_FILES = {'ids': MiB, 'leases': 2 * GiB, 'xleases': GiB, 'inbox': 16 * MiB,
                'outbox': 16 * MiB}
SPM_RESOURCE = 'SDM'
SPM_LEASE_OFFSET = MiB   # the SPM lease's slot in dom_md/leases
NFS_DEFAULT_OPTIONS = 'soft,nosharecache,timeo=600,retrans=6'
SPM_START_TIMEOUT = 180.0


def _run(cmd, what):
    """Run a command; VdsmError 100 naming what failed (with its stderr) on failure."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if p.returncode != 0:
        raise VdsmError(100, '%s failed: %s' % (what, (p.stderr or p.stdout).strip()
                                                 or 'exit status %d' % p.returncode))
    return p.stdout


def _int(value, name):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise VdsmError(1000, 'parameter %s must be an integer, got %r' % (name, value))


class StorageBackend(Backend):
    """StoragePool, StorageDomain, Volume, Image, Task verbs and domain monitoring."""

    def __init__(self, ctx, monitor_interval=None, io_timeout=None):
        super().__init__(ctx)
        sanlock_util.use_run_dir(ctx.sanlock_run_dir)
        self.mnt_dir = os.path.join(ctx.data_center_dir, 'mnt')
        self.state_dir = os.path.join(ctx.root_dir, 'storage')
        self.state_path = os.path.join(self.state_dir, 'state.json')
        self.monitor_interval = float(monitor_interval if monitor_interval is not None
                                      else getattr(ctx, 'monitor_interval', 10.0))
        # sanlock I/O timeout of the lockspaces this agent writes and joins (0: sanlock's default, 10 s).
        self.io_timeout = int(io_timeout if io_timeout is not None
                              else getattr(ctx, 'sanlock_io_timeout', 0) or 0)
        self._lock = threading.RLock()
        self.connections = {}    # mount point -> {domainType, id, connection, ...}
        self.pools = {}          # spUUID -> {hostID, masterSdUUID, masterVersion, spm}
        self.monitored = {}      # sdUUID -> hostID (Host.startMonitoringDomain)
        self.monitors = {}       # sdUUID -> DomainMonitor
        self.prepared = set()    # run links made by Image.prepare
        self.tasks = TaskManager(os.path.join(self.state_dir, 'tasks'))

    # ------------------------------------------------------------------ state
    def _save(self):
        state = {'connections': self.connections,
                 'pools': {sp: {k: v for k, v in p.items() if k != 'spm'}
                           for sp, p in self.pools.items()},
                 'monitored': self.monitored}
        os.makedirs(self.state_dir, exist_ok=True)
        write_atomic(self.state_path, json.dumps(state, indent=1, sort_keys=True).encode(),
                     mode=0o600)

    def recover(self):
        self.tasks.recover()
        try:
            with open(self.state_path) as f:
                state = json.load(f)
        except FileNotFoundError:
            return
        with self._lock:
            for mnt, conn in state.get('connections', {}).items():
                try:
                    self._connect_one(conn['domainType'], conn)
                except VdsmError as e:
                    log.warning('restoring connection %s: %s', conn.get('connection'), e.message)
                self.connections[mnt] = conn
            for sp, pool in state.get('pools', {}).items():
                pool['spm'] = None   # the SPM lease belonged to the previous process
                self.pools[sp] = pool
                try:
                    self._link_pool(sp, pool)
                except VdsmError as e:
                    log.warning('restoring pool %s: %s', sp, e.message)
            self.monitored = dict(state.get('monitored', {}))
            self._update_monitors()

    def close(self):
        with self._lock:
            monitors = list(self.monitors.values())
        for m in monitors:
            m.stop()
        self.tasks.wait_all(5)

    def host_stats(self):
        with self._lock:
            monitors = dict(self.monitors)
        out = {}
        for sd, m in monitors.items():
            r = m.report()
            out[sd] = {k: r[k] for k in ('acquired', 'delay', 'valid', 'lastCheck', 'code')}
        return {'storageDomains': out}

    # ------------------------------------------------------------ connections
    def _mountpoint(self, domain_type, connection):
        return os.path.join(self.mnt_dir, mangle(connection))

    @staticmethod
    def _probe_dir(path):
        """None if path is a writable directory, else the reason."""
        if not os.path.exists(path):
            return 'path %s does not exist' % path
        if not os.path.isdir(path):
            return 'path %s is not a directory' % path
        try:
            fd, probe = tempfile.mkstemp(prefix='.hostd-write-test-', dir=path)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            return 'directory %s is not writable (%s)' % (path, e.strerror)
        return None

    def _connect_one(self, domain_type, conn):
        connection = conn.get('connection') or ''
        if not connection:
            raise VdsmError(451, 'connection %s has no "connection" value' % conn.get('id'))
        mnt = self._mountpoint(domain_type, connection)
        makedirs(self.mnt_dir, 0o755)
        if domain_type == LOCALFS:
            if not connection.startswith('/'):
                raise VdsmError(451, 'local storage path %r must be absolute' % connection)
            reason = self._probe_dir(connection)
            if reason:
                raise VdsmError(451, reason)
            if os.path.islink(mnt):
                if os.readlink(mnt) == connection:
                    return mnt
                os.unlink(mnt)
            elif os.path.exists(mnt):
                raise VdsmError(451, '%s exists and is not a link: remove it' % mnt)
            os.symlink(connection, mnt)
            return mnt
        if domain_type not in (NFS, POSIXFS, GLUSTERFS):
            raise VdsmError(451, 'storage type %s is not supported by this host agent (file '
                            'domains only: NFS=1, LOCALFS=4, POSIXFS=6, GLUSTERFS=7)'
                            % domain_type)
        if is_mounted(mnt):
            reason = self._probe_dir(mnt)
            if reason:
                raise VdsmError(451, reason)
            return mnt
        vfs_type = conn.get('vfs_type') or ''
        options = conn.get('mnt_options') or ''
        if domain_type == NFS:
            opts = [NFS_DEFAULT_OPTIONS] + ([options] if options else [])
            version = str(conn.get('protocol_version') or 'auto')
            if version not in ('auto', ''):
                opts.append('nfsvers=3' if version == '3' else 'vers=%s' % version)
            cmd = ['mount', '-t', 'nfs', '-o', ','.join(opts), connection, mnt]
        elif domain_type == GLUSTERFS:
            cmd = ['mount', '-t', 'glusterfs'] + (['-o', options] if options else []) + \
                  [connection, mnt]
        elif vfs_type in ('', 'none') and connection.startswith('/'):
            reason = self._probe_dir(connection)
            if reason:
                raise VdsmError(451, reason)
            cmd = ['mount', '--bind'] + (['-o', options] if options else []) + [connection, mnt]
        else:
            if not vfs_type:
                raise VdsmError(451, 'POSIXFS connection %s needs a vfs_type (or a local '
                                'directory as connection)' % connection)
            cmd = ['mount', '-t', vfs_type] + (['-o', options] if options else []) + \
                  [connection, mnt]
        makedirs(mnt, 0o755)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        if p.returncode != 0:
            try:
                os.rmdir(mnt)
            except OSError:
                pass
            raise VdsmError(451, 'cannot mount %s at %s: %s' % (
                connection, mnt, (p.stderr or p.stdout).strip() or 'mount failed'))
        reason = self._probe_dir(mnt)
        if reason:
            subprocess.run(['umount', mnt])
            try:
                os.rmdir(mnt)
            except OSError:
                pass
            raise VdsmError(451, reason)
        return mnt

    def _disconnect_one(self, domain_type, conn):
        mnt = self._mountpoint(domain_type, conn.get('connection') or '')
        if domain_type == LOCALFS:
            if os.path.islink(mnt):
                os.unlink(mnt)
            return
        if is_mounted(mnt):
            p = subprocess.run(['umount', mnt], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
            if p.returncode != 0:
                raise VdsmError(451, 'cannot unmount %s: %s' % (mnt, p.stderr.strip()))
        try:
            os.rmdir(mnt)
        except OSError:
            pass

    @staticmethod
    def _public_conn(domain_type, conn):
        keep = {k: v for k, v in conn.items() if k != 'password'}
        keep['domainType'] = domain_type
        return keep

    @verb('StoragePool.connectStorageServer')
    def connectStorageServer(self, storagepoolID, domainType, connectionParams):
        domain_type = domainType
        result = []
        with self._lock:
            for conn in connectionParams:
                if not isinstance(conn, dict):
                    raise VdsmError(1000, 'connectionParams entries must be objects')
                try:
                    mnt = self._connect_one(domain_type, conn)
                except VdsmError as e:
                    log.warning('connectStorageServer %s: %s', conn.get('connection'), e.message)
                    result.append({'id': conn.get('id', BLANK_UUID), 'status': e.code,
                                   'message': e.message})
                    continue
                self.connections[mnt] = self._public_conn(domain_type, conn)
                result.append({'id': conn.get('id', BLANK_UUID), 'status': 0})
            self._save()
        return result

    @verb('StoragePool.disconnectStorageServer')
    def disconnectStorageServer(self, storagepoolID, domainType, connectionParams):
        domain_type = domainType
        result = []
        with self._lock:
            for conn in connectionParams:
                mnt = self._mountpoint(domain_type, conn.get('connection') or '')
                try:
                    self._disconnect_one(domain_type, conn)
                except VdsmError as e:
                    result.append({'id': conn.get('id', BLANK_UUID), 'status': e.code,
                                   'message': e.message})
                    continue
                self.connections.pop(mnt, None)
                result.append({'id': conn.get('id', BLANK_UUID), 'status': 0})
            self._save()
        return result

    # ---------------------------------------------------------------- domains
    def _domain_dirs(self):
        """{sdUUID: domain directory} of every file domain under the mount points."""
        out = {}
        try:
            mounts = sorted(os.listdir(self.mnt_dir))
        except FileNotFoundError:
            return out
        for m in mounts:
            base = os.path.join(self.mnt_dir, m)
            try:
                entries = os.listdir(base)
            except OSError:
                continue
            for e in entries:
                if os.path.isfile(os.path.join(base, e, 'dom_md', 'metadata')):
                    out.setdefault(e, os.path.join(base, e))
        return out

    def find_domain(self, sd_uuid):
        """The directory of domain sd_uuid; VdsmError 358 if no connected storage has it."""
        try:
            mounts = sorted(os.listdir(self.mnt_dir))
        except FileNotFoundError:
            mounts = []
        for m in mounts:
            d = os.path.join(self.mnt_dir, m, sd_uuid)
            if os.path.isfile(os.path.join(d, 'dom_md', 'metadata')):
                return d
        raise VdsmError(358, 'storage domain %s does not exist on the connected storage: '
                        'connect its storage server first' % sd_uuid)

    def read_domain_md(self, sd_uuid, sd_dir=None):
        sd_dir = sd_dir or self.find_domain(sd_uuid)
        data, _ = read_direct(os.path.join(sd_dir, 'dom_md', 'metadata'))
        return md.parse_domain(data, sd_uuid)

    def write_domain_md(self, sd_uuid, fields, sd_dir=None):
        sd_dir = sd_dir or self.find_domain(sd_uuid)
        write_atomic(os.path.join(sd_dir, 'dom_md', 'metadata'), md.format_domain(fields))

    def _update_domain_md(self, sd_uuid, **changes):
        fields = self.read_domain_md(sd_uuid)
        for k, v in changes.items():
            if v is None:
                fields.pop(k, None)
            else:
                fields[k] = str(v)
        self.write_domain_md(sd_uuid, fields)
        return fields

    @verb('StorageDomain.create')
    def createStorageDomain(self, storagedomainID, domainType, typeArgs, name, domainClass,
                            version=5, blockSize=512, maxHosts=2000):
        sd = storagedomainID
        domain_type = domainType
        version = _int(version, 'version')
        if domain_type not in FILE_DOMAIN_TYPES:
            raise VdsmError(1000, 'domainType %s is not a file domain type (NFS=1, LOCALFS=4, '
                            'POSIXFS=6, GLUSTERFS=7)' % domainType)
        if version not in (3, 4, 5):
            raise VdsmError(1000, 'domain version %s is not supported (3, 4 or 5)' % version)
        if blockSize != 512:
            raise VdsmError(1000, 'block size %s is not supported on file domains here (512)'
                            % blockSize)
        if len(name) > 50:
            raise VdsmError(1000, 'domain name %r is longer than 50 characters' % name)
        with self._lock:
            if sd in self._domain_dirs():
                raise VdsmError(365, 'storage domain %s already exists at %s'
                                % (sd, self._domain_dirs()[sd]))
            mnt = self._mountpoint(domain_type, typeArgs)
            if not os.path.isdir(mnt):
                raise VdsmError(451, 'storage %s is not connected (no %s): call '
                                'StoragePool.connectStorageServer first' % (typeArgs, mnt))
            reason = self._probe_dir(mnt)
            if reason:
                raise VdsmError(451, reason)
            sd_dir = os.path.join(mnt, sd)
            tmp_dir = os.path.join(mnt, '.%s.creating' % sd)
            shutil.rmtree(tmp_dir, ignore_errors=True)
            try:
                makedirs(tmp_dir)
                makedirs(os.path.join(tmp_dir, 'dom_md'))
                makedirs(os.path.join(tmp_dir, 'images'))
                for fname, size in DOM_MD_FILES.items():
                    if fname == 'xleases' and version < 4:
                        continue
                    make_sparse(os.path.join(tmp_dir, 'dom_md', fname), size)
                fields = {
                    'CLASS': md.DOMAIN_CLASSES[domainClass],
                    'DESCRIPTION': name,
                    'LOCKPOLICY': '',
                    'POOL_UUID': '',
                    'REMOTE_PATH': typeArgs,
                    'ROLE': 'Regular',
                    'SDUUID': sd,
                    'TYPE': md.DOMAIN_TYPES[domain_type],
                    'VERSION': str(version),
                }
                for key, value in constant('leaseTimings').items():
                    fields[LEASE_TIMING_KEYS[key]] = str(value)
                if version >= 5:
                    fields['ALIGNMENT'] = str(sanlock_util.ALIGNMENT)
                    fields['BLOCK_SIZE'] = '512'
                self.write_domain_md(sd, fields, tmp_dir)
                os.rename(tmp_dir, sd_dir)
                ids = os.path.join(sd_dir, 'dom_md', 'ids')
                leases = os.path.join(sd_dir, 'dom_md', 'leases')
                try:
                    sanlock_util.write_lockspace(sd, ids, iotimeout=self.io_timeout)
                    sanlock_util.write_resource(sd, SPM_RESOURCE, leases, SPM_LEASE_OFFSET)
                except sanlock_util.SanlockException as e:
                    raise VdsmError(100, 'cannot initialise the sanlock lockspace of domain %s: '
                                    '%s' % (sd, sanlock_util.describe(e)))
            except Exception:
                shutil.rmtree(tmp_dir, ignore_errors=True)
                shutil.rmtree(sd_dir, ignore_errors=True)
                raise
        log.info('created storage domain %s (%s) at %s', sd, name, sd_dir)
        return True

    def _domain_pools(self, fields):
        pool = fields.get('POOL_UUID', '')
        return [p for p in pool.split(',') if p]

    @verb('StorageDomain.getInfo')
    def getStorageDomainInfo(self, storagedomainID):
        sd_dir = self.find_domain(storagedomainID)
        f = self.read_domain_md(storagedomainID, sd_dir)
        return {
            'uuid': f.get('SDUUID', storagedomainID),
            'type': f.get('TYPE', ''),
            'class': f.get('CLASS', ''),
            'name': f.get('DESCRIPTION', ''),
            'role': f.get('ROLE', 'Regular'),
            'pool': self._domain_pools(f),
            'version': f.get('VERSION', ''),
            'block_size': int(f.get('BLOCK_SIZE', 512)),
            'alignment': int(f.get('ALIGNMENT', sanlock_util.ALIGNMENT)),
            'remotePath': f.get('REMOTE_PATH', ''),
            'lver': f.get('POOL_SPM_LVER', '-1'),
            'spm_id': f.get('POOL_SPM_ID', '-1'),
            'master_ver': f.get('MASTER_VERSION', '0'),
        }

    @verb('StorageDomain.getStats')
    def getStorageDomainStats(self, storagedomainID):
        sd_dir = self.find_domain(storagedomainID)
        self.read_domain_md(storagedomainID, sd_dir)
        st = os.statvfs(sd_dir)
        return {'disktotal': str(st.f_blocks * st.f_frsize),
                'diskfree': str(st.f_bavail * st.f_frsize),
                'mdavalid': True, 'mdathreshold': True, 'mdasize': 0, 'mdafree': 0}

    @verb('StorageDomain.validate')
    def validateStorageDomain(self, storagedomainID):
        self.read_domain_md(storagedomainID)
        return True

    def _pool_md(self, sp_uuid):
        """(master sdUUID, master metadata fields) of a pool connected on this host."""
        pool = self._pool(sp_uuid)
        master = pool['masterSdUUID']
        return master, self.read_domain_md(master)

    @staticmethod
    def _pool_domains(fields):
        out = {}
        for item in (fields.get('POOL_DOMAINS') or '').split(','):
            if ':' in item:
                sd, status = item.split(':', 1)
                out[sd] = status
        return out

    @staticmethod
    def _format_pool_domains(domains):
        return ','.join('%s:%s' % (sd, domains[sd]) for sd in sorted(domains))

    def _set_pool_domain(self, sp_uuid, sd_uuid, status):
        master, fields = self._pool_md(sp_uuid)
        domains = self._pool_domains(fields)
        if status is None:
            domains.pop(sd_uuid, None)
        else:
            domains[sd_uuid] = status
        fields['POOL_DOMAINS'] = self._format_pool_domains(domains)
        self.write_domain_md(master, fields)

    @verb('StorageDomain.attach')
    def attachStorageDomain(self, storagedomainID, storagepoolID):
        with self._lock:
            self._require_spm(storagepoolID)
            fields = self.read_domain_md(storagedomainID)
            pools = self._domain_pools(fields)
            if pools and storagepoolID not in pools:
                raise VdsmError(100, 'storage domain %s is attached to pool %s: detach it first'
                                % (storagedomainID, pools[0]))
            if storagepoolID not in pools:
                self._update_domain_md(storagedomainID, POOL_UUID=storagepoolID)
            self._set_pool_domain(storagepoolID, storagedomainID, 'Attached')
            self._link_pool(storagepoolID, self.pools[storagepoolID])
        return True

    @verb('StorageDomain.activate')
    def activateStorageDomain(self, storagedomainID, storagepoolID):
        with self._lock:
            self._require_spm(storagepoolID)
            fields = self.read_domain_md(storagedomainID)
            if storagepoolID not in self._domain_pools(fields):
                raise VdsmError(100, 'storage domain %s is not attached to pool %s: attach it '
                                'first' % (storagedomainID, storagepoolID))
            self._set_pool_domain(storagepoolID, storagedomainID, 'Active')
            self._link_pool(storagepoolID, self.pools[storagepoolID])
            self._update_monitors()
        return True

    @verb('StorageDomain.detach')
    def detachStorageDomain(self, storagedomainID, storagepoolID, masterSdUUID=None,
                            masterVersion=0, force=False):
        with self._lock:
            pool = self._pool(storagepoolID)
            if storagedomainID == pool['masterSdUUID']:
                raise VdsmError(100, 'storage domain %s is the master of pool %s: destroy the '
                                'pool instead' % (storagedomainID, storagepoolID))
            if masterSdUUID not in (None, BLANK_UUID, pool['masterSdUUID']):
                raise VdsmError(1000, 'masterSdUUID %s is not the master of pool %s (%s): this '
                                'host agent does not move the master role'
                                % (masterSdUUID, storagepoolID, pool['masterSdUUID']))
            if masterVersion and masterVersion != pool['masterVersion']:
                raise VdsmError(1000, 'masterVersion %d is not the master version %d of pool %s'
                                % (masterVersion, pool['masterVersion'], storagepoolID))
            if not force:
                self._require_spm(storagepoolID)
            self._update_domain_md(storagedomainID, POOL_UUID='')
            self._set_pool_domain(storagepoolID, storagedomainID, None)
            link = os.path.join(self.ctx.data_center_dir, storagepoolID, storagedomainID)
            if os.path.islink(link):
                os.unlink(link)
            self._update_monitors()
        return True

    @verb('StorageDomain.format')
    def formatStorageDomain(self, storagedomainID, autoDetach):
        sd = storagedomainID
        with self._lock:
            sd_dir = self.find_domain(sd)
            fields = self.read_domain_md(sd, sd_dir)
            in_pools = [sp for sp, pool in self.pools.items()
                        if pool['masterSdUUID'] == sd or sd in self._pool_links(sp)]
            if in_pools:
                raise VdsmError(392, 'storage domain %s is in pool %s, connected on this host: '
                                'disconnect the pool (StoragePool.disconnect) first'
                                % (sd, in_pools[0]))
            if sd in self.monitors:
                raise VdsmError(382, 'storage domain %s is in use: this host monitors it (host id '
                                '%d in its lockspace): stop monitoring it '
                                '(Host.stopMonitoringDomain) first'
                                % (sd, self.monitors[sd].host_id))
            pools = self._domain_pools(fields)
            if pools and not autoDetach:
                raise VdsmError(391, 'storage domain %s is attached to pool %s: detach it or '
                                'pass autoDetach=true' % (sd, pools[0]))
            self._refuse_live_lockspace(sd, sd_dir)
            if pools:
                self._update_domain_md(sd, POOL_UUID='')
            trash = os.path.join(os.path.dirname(sd_dir), '.%s.deleting' % sd)
            os.rename(sd_dir, trash)
            shutil.rmtree(trash)
        log.info('removed storage domain %s (%s)', sd, sd_dir)
        return True

    def _pool_links(self, sp_uuid):
        pool_dir = os.path.join(self.ctx.data_center_dir, sp_uuid)
        try:
            return set(os.listdir(pool_dir))
        except OSError:
            return set()

    def _refuse_live_lockspace(self, sd, sd_dir):
        """VdsmError 382 while a host holds a live host id in the domain's lockspace: VDSM
        refuses to remove a domain in use, and other hosts run VMs from it."""
        ids = os.path.join(sd_dir, 'dom_md', 'ids')
        try:
            live = sanlock_util.live_host_ids(sd, ids)
        except OSError as e:
            raise VdsmError(382, 'cannot tell whether storage domain %s is in use: reading its '
                            'lockspace failed (%s): check the storage and that sanlock is '
                            'installed, then retry' % (sd, e))
        if live:
            raise VdsmError(382, 'storage domain %s is in use: host id%s %s hold%s a live lease '
                            'in its lockspace: stop the HA services (ovirt-ha-agent, '
                            'ovirt-ha-broker) and the monitoring of this domain on %s, then '
                            'retry; a host that is really gone stops renewing its lease: fence '
                            'it and retry once its lease has expired' % (
                                sd, 's' if len(live) > 1 else '', ', '.join(map(str, live)),
                                '' if len(live) > 1 else 's',
                                'those hosts' if len(live) > 1 else 'that host'))

    @verb('StorageDomain.getImages')
    def getImages(self, storagedomainID):
        sd_dir = self.find_domain(storagedomainID)
        images = os.path.join(sd_dir, 'images')
        return sorted(d for d in os.listdir(images)
                      if not d.startswith('.') and os.path.isdir(os.path.join(images, d)))

    @verb('StorageDomain.getVolumes')
    def getVolumes(self, storagedomainID, storagepoolID, imageID):
        sd_dir = self.find_domain(storagedomainID)
        img_dir = os.path.join(sd_dir, 'images', imageID)
        if not os.path.isdir(img_dir):
            return []
        return sorted(f[:-5] for f in os.listdir(img_dir) if f.endswith('.meta'))

    @verb('Host.getStorageDomains')
    def getStorageDomains(self, storagepoolID=None, domainClass=None, storageType=None,
                          remotePath=None):
        out = []
        for sd, sd_dir in sorted(self._domain_dirs().items()):
            try:
                f = self.read_domain_md(sd, sd_dir)
            except VdsmError:
                if not (storagepoolID or domainClass or storageType or remotePath):
                    out.append(sd)
                continue
            if storagepoolID and storagepoolID != BLANK_UUID and \
                    storagepoolID not in self._domain_pools(f):
                continue
            if domainClass and str(domainClass) not in (
                    f.get('CLASS'), str({v: k for k, v in md.DOMAIN_CLASSES.items()}
                                        .get(f.get('CLASS')))):
                continue
            if storageType and str(storageType) not in (
                    f.get('TYPE'), str({v: k for k, v in md.DOMAIN_TYPES.items()}
                                       .get(f.get('TYPE')))):
                continue
            if remotePath and remotePath != f.get('REMOTE_PATH'):
                continue
            out.append(sd)
        return out

    # ------------------------------------------------------------------ pools
    def _pool(self, sp_uuid):
        pool = self.pools.get(sp_uuid)
        if pool is None:
            raise VdsmError(309, 'storage pool %s is unknown on this host (not connected): call '
                            'StoragePool.connect first' % sp_uuid)
        return pool

    def _require_spm(self, sp_uuid):
        pool = self._pool(sp_uuid)
        if not pool.get('spm'):
            raise VdsmError(654, 'this host is not the SPM of pool %s: call StoragePool.spmStart '
                            'and wait for its task first' % sp_uuid)
        return pool

    def _link_pool(self, sp_uuid, pool):
        """<data_center_dir>/<spUUID>/{<sdUUID>, mastersd} -> domain directories."""
        pool_dir = os.path.join(self.ctx.data_center_dir, sp_uuid)
        makedirs(pool_dir, 0o755)
        master, fields = pool['masterSdUUID'], self.read_domain_md(pool['masterSdUUID'])
        wanted = {sd: self.find_domain(sd) for sd in self._pool_domains(fields)
                  if sd in self._domain_dirs()}
        wanted[master] = self.find_domain(master)
        for name in os.listdir(pool_dir):
            path = os.path.join(pool_dir, name)
            if os.path.islink(path) and name != 'mastersd' and name not in wanted:
                os.unlink(path)
        links = dict(wanted)
        links['mastersd'] = wanted[master]
        for name, target in links.items():
            path = os.path.join(pool_dir, name)
            if os.path.islink(path):
                if os.readlink(path) == target:
                    continue
                os.unlink(path)
            os.symlink(target, path)

    @verb('StoragePool.create')
    def createStoragePool(self, storagepoolID, name, masterSdUUID, masterVersion, domainList,
                          lockRenewalIntervalSec, leaseTimeSec, ioOpTimeoutSec, leaseRetries):
        sp = storagepoolID
        if masterSdUUID not in domainList:
            raise VdsmError(1000, 'master domain %s is not in domainList' % masterSdUUID)
        # As VDSM: 0 selects the default of a timing.
        given = {'lockRenewalIntervalSec': lockRenewalIntervalSec, 'leaseTimeSec': leaseTimeSec,
                 'ioOpTimeoutSec': ioOpTimeoutSec, 'leaseRetries': leaseRetries}
        timings = {k: v or constant('leaseTimings')[k] for k, v in given.items()}
        bad = sorted(k for k, v in given.items() if v < 0)
        if bad:
            raise VdsmError(1000, 'lease timings must not be negative: %s' % ', '.join(
                '%s=%s' % (k, given[k]) for k in bad))
        if timings['lockRenewalIntervalSec'] >= timings['leaseTimeSec']:
            raise VdsmError(1000, 'lockRenewalIntervalSec (%d) must be less than leaseTimeSec '
                            '(%d)' % (timings['lockRenewalIntervalSec'], timings['leaseTimeSec']))
        with self._lock:
            if sp in self.pools:
                raise VdsmError(316, 'storage pool %s already exists (connected on this host)'
                                % sp)
            for sd in domainList:
                fields = self.read_domain_md(sd)
                pools = self._domain_pools(fields)
                if pools:
                    raise VdsmError(316 if sp in pools else 100,
                                    'storage domain %s already belongs to pool %s'
                                    % (sd, pools[0]))
            for sd in domainList:
                self._update_domain_md(sd, POOL_UUID=sp)
            self._update_domain_md(
                masterSdUUID, ROLE='Master', MASTER_VERSION=masterVersion,
                POOL_DESCRIPTION=name, POOL_SPM_ID=-1, POOL_SPM_LVER=-1,
                POOL_DOMAINS=self._format_pool_domains({sd: 'Active' if sd == masterSdUUID
                                                        else 'Attached' for sd in domainList}),
                **{LEASE_TIMING_KEYS[k]: v for k, v in timings.items()})
        log.info('created storage pool %s (%s) with master domain %s', sp, name, masterSdUUID)
        return True

    @verb('StoragePool.connect')
    def connectStoragePool(self, storagepoolID, hostID, scsiKey, masterSdUUID, masterVersion,
                           domainDict=None):
        host_id = hostID
        if not 1 <= host_id <= 2000:
            raise VdsmError(1000, 'hostID %s is out of range (1..2000)' % hostID)
        with self._lock:
            fields = self.read_domain_md(masterSdUUID)
            if storagepoolID not in self._domain_pools(fields) or fields.get('ROLE') != 'Master':
                raise VdsmError(309, 'storage pool %s is unknown: domain %s is not its master'
                                % (storagepoolID, masterSdUUID))
            if domainDict:
                domains = self._pool_domains(fields)
                changed = False
                for sd, status in domainDict.items():
                    status = str(status).capitalize()
                    if domains.get(sd) != status:
                        domains[sd] = status
                        changed = True
                if changed:
                    fields['POOL_DOMAINS'] = self._format_pool_domains(domains)
                    self.write_domain_md(masterSdUUID, fields)
            pool = self.pools.get(storagepoolID)
            if pool and pool['hostID'] != host_id:
                raise VdsmError(100, 'pool %s is connected with host id %d, not %d: disconnect '
                                'it first' % (storagepoolID, pool['hostID'], host_id))
            pool = pool or {'spm': None}
            pool.update(hostID=host_id, masterSdUUID=masterSdUUID,
                        masterVersion=masterVersion)
            self.pools[storagepoolID] = pool
            self._link_pool(storagepoolID, pool)
            self._update_monitors()
            self._save()
        return True

    @verb('StoragePool.disconnect')
    def disconnectStoragePool(self, storagepoolID, hostID, scsiKey, remove=False):
        with self._lock:
            pool = self._pool(storagepoolID)
            if pool.get('spm'):
                self._spm_stop(storagepoolID)
            del self.pools[storagepoolID]
            pool_dir = os.path.join(self.ctx.data_center_dir, storagepoolID)
            if os.path.isdir(pool_dir):
                for name in os.listdir(pool_dir):
                    if os.path.islink(os.path.join(pool_dir, name)):
                        os.unlink(os.path.join(pool_dir, name))
                try:
                    os.rmdir(pool_dir)
                except OSError:
                    pass
            self._update_monitors()
            self._save()
        return True

    @verb('StoragePool.destroy')
    def destroyStoragePool(self, storagepoolID, hostID, scsiKey):
        with self._lock:
            self._require_spm(storagepoolID)
            master, fields = self._pool_md(storagepoolID)
            for sd in self._pool_domains(fields):
                if sd != master and sd in self._domain_dirs():
                    self._update_domain_md(sd, POOL_UUID='')
            self._spm_stop(storagepoolID)
            self._update_domain_md(master, ROLE='Regular', POOL_UUID='', MASTER_VERSION=None,
                                   POOL_DESCRIPTION=None, POOL_DOMAINS=None, POOL_SPM_ID=None,
                                   POOL_SPM_LVER=None)
        return self.disconnectStoragePool(storagepoolID, hostID, scsiKey)

    @verb('StoragePool.getInfo')
    def getStoragePoolInfo(self, storagepoolID):
        with self._lock:
            pool = self._pool(storagepoolID)
            master, fields = self._pool_md(storagepoolID)
            domains = self._pool_domains(fields)
            st = os.statvfs(self.find_domain(master))
            info = {
                'name': fields.get('POOL_DESCRIPTION', ''),
                'type': fields.get('TYPE', ''),
                'master_uuid': master,
                'master_ver': int(fields.get('MASTER_VERSION', 0)),
                'spm_id': int(fields.get('POOL_SPM_ID', -1)),
                'lver': int(fields.get('POOL_SPM_LVER', -1)),
                'domains': self._format_pool_domains(domains),
                'pool_status': 'connected',
                'version': fields.get('VERSION', ''),
                'isoprefix': '',
            }
            dominfo = {}
            for sd, status in domains.items():
                entry = {'status': status, 'alerts': [], 'isoprefix': '', 'version': -1}
                try:
                    f = self.read_domain_md(sd)
                    entry['version'] = int(f.get('VERSION', -1))
                    s = os.statvfs(self.find_domain(sd))
                    entry['diskfree'] = str(s.f_bavail * s.f_frsize)
                    entry['disktotal'] = str(s.f_blocks * s.f_frsize)
                except VdsmError as e:
                    entry['alerts'].append({'code': e.code, 'message': e.message})
                dominfo[sd] = entry
            info['disktotal'] = str(st.f_blocks * st.f_frsize)
            info['diskfree'] = str(st.f_bavail * st.f_frsize)
            info['hostID'] = pool['hostID']
        return {'info': info, 'dominfo': dominfo}

    @verb('Host.getConnectedStoragePools')
    def getConnectedStoragePools(self):
        with self._lock:
            return sorted(self.pools)

    # -------------------------------------------------------------------- SPM
    @verb('StoragePool.spmStart')
    def spmStart(self, storagepoolID, prevID, prevLver, enableScsiFencing, maxHostID=250,
                 domVersion=None):
        # prevID, prevLver and enableScsiFencing are deprecated in VDSM and not used there
        # either: the SPM lease itself says who held it before.
        with self._lock:
            pool = self._pool(storagepoolID)
            if pool['hostID'] > maxHostID:
                raise VdsmError(1000, 'this host has host id %d, above maxHostID %d: connect the '
                                'pool with a host id up to %d' % (pool['hostID'], maxHostID,
                                                                   maxHostID))
            if domVersion not in (None, ''):
                _, fields = self._pool_md(storagepoolID)
                if str(fields.get('VERSION')) != str(_int(domVersion, 'domVersion')):
                    raise VdsmError(1000, 'master domain %s has version %s, not domVersion %s'
                                    % (pool['masterSdUUID'], fields.get('VERSION'), domVersion))
            if pool.get('spm'):
                # Already SPM: a task that finishes at once, as VDSM does.
                return self.tasks.start('StoragePool.spmStart', lambda: None)
        return self.tasks.start('StoragePool.spmStart',
                                lambda: self._spm_start(storagepoolID))

    def _spm_start(self, sp_uuid):
        with self._lock:
            pool = self._pool(sp_uuid)
            master = pool['masterSdUUID']
            host_id = pool['hostID']
            monitor = self.monitors.get(master)
        # The SPM lease lives in the master domain's lockspace: wait for the host id.
        deadline = time.monotonic() + SPM_START_TIMEOUT
        while True:
            status = monitor.report() if monitor else {}
            if status.get('acquired'):
                break
            if time.monotonic() > deadline:
                raise VdsmError(661, 'host id %d was not acquired in the lockspace of master '
                                'domain %s within %d s: %s' % (
                                    host_id, master, SPM_START_TIMEOUT,
                                    status.get('message', 'domain not monitored')))
            time.sleep(0.5)
            with self._lock:
                if sp_uuid not in self.pools:
                    raise VdsmError(313, 'storage pool %s was disconnected' % sp_uuid)
                monitor = self.monitors.get(master)
        leases = os.path.join(self.find_domain(master), 'dom_md', 'leases')
        try:
            sanlock_util.acquire(master, SPM_RESOURCE, leases, SPM_LEASE_OFFSET)
        except sanlock_util.SanlockException as e:
            raise VdsmError(100, 'cannot become SPM of pool %s: %s' % (
                sp_uuid, sanlock_util.describe(e)))
        try:
            lver = int(sanlock_util.read_resource(leases, SPM_LEASE_OFFSET).get('version', 0))
        except sanlock_util.SanlockException:
            lver = 0
        with self._lock:
            pool = self.pools.get(sp_uuid)
            if pool is None:
                sanlock_util.release(master, SPM_RESOURCE, leases, SPM_LEASE_OFFSET)
                raise VdsmError(313, 'storage pool %s was disconnected' % sp_uuid)
            pool['spm'] = {'leases': leases, 'lver': lver, 'master': master}
            self._update_domain_md(master, POOL_SPM_ID=host_id, POOL_SPM_LVER=lver)
        log.info('this host (id %d) is SPM of pool %s (lver %d)', host_id, sp_uuid, lver)

    def _spm_stop(self, sp_uuid):
        pool = self._pool(sp_uuid)
        spm = pool.get('spm')
        if not spm:
            return
        running = self.tasks.running()
        if running:
            raise VdsmError(100, 'cannot stop being SPM of pool %s while tasks run: %s'
                            % (sp_uuid, ', '.join(running)))
        try:
            self._update_domain_md(spm['master'], POOL_SPM_ID=-1, POOL_SPM_LVER=spm['lver'])
        finally:
            pool['spm'] = None
            try:
                sanlock_util.release(spm['master'], SPM_RESOURCE, spm['leases'],
                                     SPM_LEASE_OFFSET)
            except sanlock_util.SanlockException as e:
                log.warning('releasing the SPM lease of pool %s: %s', sp_uuid,
                            sanlock_util.describe(e))

    @verb('StoragePool.spmStop')
    def spmStop(self, storagepoolID):
        with self._lock:
            self._pool(storagepoolID)
            self._spm_stop(storagepoolID)
        return True

    @verb('StoragePool.getSpmStatus')
    def getSpmStatus(self, storagepoolID):
        with self._lock:
            pool = self._pool(storagepoolID)
            spm = pool.get('spm')
            if spm:
                return {'spmId': pool['hostID'], 'spmStatus': 'SPM', 'spmLver': spm['lver']}
            _, fields = self._pool_md(storagepoolID)
            return {'spmId': int(fields.get('POOL_SPM_ID', -1)), 'spmStatus': 'Free',
                    'spmLver': int(fields.get('POOL_SPM_LVER', -1))}

    # ------------------------------------------------------------- monitoring
    def _wanted_monitors(self):
        """{sdUUID: hostID}: domains monitored on request plus active domains of connected pools."""
        wanted = dict(self.monitored)
        for sp, pool in self.pools.items():
            try:
                fields = self.read_domain_md(pool['masterSdUUID'])
                domains = self._pool_domains(fields)
            except VdsmError:
                domains = {pool['masterSdUUID']: 'Active'}
            for sd, status in domains.items():
                if status == 'Active' or sd == pool['masterSdUUID']:
                    wanted.setdefault(sd, pool['hostID'])
        return wanted

    def _update_monitors(self):
        wanted = self._wanted_monitors()
        for sd in list(self.monitors):
            if sd not in wanted or self.monitors[sd].host_id != int(wanted[sd]):
                m = self.monitors.pop(sd)
                m.stop()
                m.leave()
        for sd, host_id in wanted.items():
            if sd not in self.monitors:
                m = DomainMonitor(sd, host_id, self.find_domain, interval=self.monitor_interval,
                                  io_timeout=self.io_timeout)
                self.monitors[sd] = m
                m.start()

    @verb('Host.startMonitoringDomain')
    def startMonitoringDomain(self, sdUUID, hostID):
        host_id = hostID
        if not 1 <= host_id <= 2000:
            raise VdsmError(1000, 'hostID %s is out of range (1..2000)' % hostID)
        with self._lock:
            self.find_domain(sdUUID)
            current = self.monitors.get(sdUUID)
            if current and current.host_id != host_id:
                raise VdsmError(100, 'domain %s is already monitored with host id %d'
                                % (sdUUID, current.host_id))
            self.monitored[sdUUID] = host_id
            self._update_monitors()
            self._save()
        return True

    @verb('Host.stopMonitoringDomain')
    def stopMonitoringDomain(self, sdUUID):
        with self._lock:
            self.monitored.pop(sdUUID, None)
            self._update_monitors()
            self._save()
        return True

    @verb('Host.getStorageRepoStats')
    def getStorageRepoStats(self, domains=None):
        with self._lock:
            monitors = dict(self.monitors)
        out = {}
        for sd, m in monitors.items():
            if domains and sd not in domains:
                continue
            r = m.report()
            out[sd] = {k: r[k] for k in ('valid', 'delay', 'acquired', 'lastCheck', 'code',
                                         'version', 'actual')}
            if r['code']:
                out[sd]['message'] = r['message']
        return out

    # ----------------------------------------------------------------- tasks
    @verb('Task.getStatus')
    def getTaskStatus(self, taskID):
        return self.tasks.get_status(taskID)

    @verb('Task.clear')
    def clearTask(self, taskID):
        return self.tasks.clear(taskID)

    @verb('Host.getAllTasksStatuses')
    def getAllTasksStatuses(self):
        return self.tasks.all_statuses()

    # --------------------------------------------------------------- volumes
    def _volume_paths(self, sd_dir, img, vol):
        base = os.path.join(sd_dir, 'images', img, vol)
        return base, base + '.meta', base + '.lease'

    def _read_volume_md(self, sd_uuid, img, vol):
        sd_dir = self.find_domain(sd_uuid)
        path, meta, lease = self._volume_paths(sd_dir, img, vol)
        if not os.path.exists(meta):
            raise VdsmError(201, 'volume %s does not exist in image %s of domain %s'
                            % (vol, img, sd_uuid))
        with open(meta, 'rb') as f:
            return path, meta, lease, md.parse_volume(f.read())

    @verb('Volume.create')
    def createVolume(self, volumeID, storagepoolID, storagedomainID, imageID, size, volFormat,
                     preallocate, diskType, desc, srcImgUUID, srcVolUUID, initialSize=None,
                     addBitmaps=False, legal=True, sequence=0, bitmap=None):
        vol, img = volumeID, imageID
        capacity = _int(size, 'size')
        fmt, alloc = volFormat, preallocate
        if capacity <= 0:
            raise VdsmError(1000, 'volume size must be a positive number of bytes, got %s' % size)
        if initialSize not in (None, ''):
            # As VDSM: only a preallocated RAW volume on a file domain takes an initial size.
            if fmt != RAW or alloc != PREALLOCATED:
                raise VdsmError(1000, 'initialSize is allowed only for a preallocated RAW volume')
            if not 0 < _int(initialSize, 'initialSize') <= capacity:
                raise VdsmError(1000, 'initialSize %s must be between 1 and the size %d'
                                % (initialSize, capacity))
        if sequence < 0:
            raise VdsmError(1000, 'sequence must not be negative, got %d' % sequence)
        if bitmap is not None and fmt != COW:
            raise VdsmError(1000, 'a bitmap can be added to a COW volume only (volFormat 4)')
        if addBitmaps and srcVolUUID == BLANK_UUID:
            raise VdsmError(1000, 'addBitmaps needs a parent volume (srcVolUUID)')
        with self._lock:
            self._require_spm(storagepoolID)
            sd_dir = self.find_domain(storagedomainID)
            self.read_domain_md(storagedomainID, sd_dir)
            path, meta, lease = self._volume_paths(sd_dir, img, vol)
            if os.path.exists(meta) or os.path.exists(path):
                raise VdsmError(212, 'volume %s already exists in image %s' % (vol, img))
            parent = None
            if srcVolUUID != BLANK_UUID:
                src_img = srcImgUUID if srcImgUUID != BLANK_UUID else img
                parent = self._read_volume_md(storagedomainID, src_img, srcVolUUID)
                if fmt != COW:
                    raise VdsmError(1000, 'a volume with a parent must be COW (volFormat 4)')
                if addBitmaps and parent[3].get('FORMAT') != 'COW':
                    raise VdsmError(1000, 'addBitmaps needs a COW parent volume')
            # Reserve the name now so that a second create of the same volume gets 212.
            makedirs(os.path.dirname(path))
            fields = {
                'CAP': str(capacity), 'CTIME': str(int(time.time())),
                'DESCRIPTION': desc, 'DISKTYPE': str(diskType), 'DOMAIN': storagedomainID,
                'FORMAT': md.VOLUME_FORMATS[fmt], 'GEN': '0', 'IMAGE': img,
                'LEGALITY': 'ILLEGAL', 'PUUID': srcVolUUID if parent else BLANK_UUID,
                'SEQ': str(sequence), 'TYPE': md.ALLOCATIONS[alloc], 'VOLTYPE': 'LEAF',
            }
            data = md.format_volume(fields)
            fd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            os.write(fd, data)
            os.close(fd)
            os.chmod(meta, FILE_MODE)

        def create():
            try:
                self._make_volume(storagedomainID, sd_dir, img, vol, capacity, fmt, alloc,
                                  parent, fields, legal=legal, add_bitmaps=addBitmaps,
                                  bitmap=bitmap, initial_size=initialSize)
            except Exception:
                for p in (path, lease, meta):
                    try:
                        os.unlink(p)
                    except FileNotFoundError:
                        pass
                raise
        return self.tasks.start('Volume.create', create)

    def _make_volume(self, sd_uuid, sd_dir, img, vol, capacity, fmt, alloc, parent, fields,
                     legal=True, add_bitmaps=False, bitmap=None, initial_size=None):
        path, meta, lease = self._volume_paths(sd_dir, img, vol)
        if fmt == RAW:
            cmd = ['qemu-img', 'create', '-f', 'raw']
            if alloc == PREALLOCATED and initial_size in (None, ''):
                cmd += ['-o', 'preallocation=falloc']
            cmd += [path, str(capacity)]
        else:
            opts = ['compat=1.1']
            if alloc == PREALLOCATED:
                opts.append('preallocation=falloc')
            cmd = ['qemu-img', 'create', '-f', 'qcow2', '-o', ','.join(opts)]
            if parent:
                ppath, _, _, pfields = parent
                cmd += ['-b', os.path.relpath(ppath, os.path.dirname(path)), '-F',
                        'qcow2' if pfields.get('FORMAT') == 'COW' else 'raw']
            cmd += [path, str(capacity)]
        try:
            _run(cmd, 'qemu-img create of volume %s' % vol)
        except VdsmError as e:
            raise VdsmError(205, e.message)
        os.chmod(path, FILE_MODE)
        if initial_size not in (None, ''):
            # the first initialSize bytes allocated, the rest sparse
            _run(['fallocate', '-l', str(int(initial_size)), path],
                 'allocating the initial size of volume %s' % vol)
        names = []
        if add_bitmaps:
            names = self._bitmaps(parent[0])
        if bitmap is not None:
            names.append(bitmap)
        for name in names:
            _run(['qemu-img', 'bitmap', '--add', path, name],
                 'adding bitmap %s to volume %s' % (name, vol))
        make_sparse(lease, MiB)
        try:
            sanlock_util.write_resource(sd_uuid, vol, lease, 0)
        except sanlock_util.SanlockException as e:
            raise VdsmError(205, 'cannot initialise the lease of volume %s: %s'
                            % (vol, sanlock_util.describe(e)))
        if parent:
            ppath, pmeta, _, pfields = parent
            pfields['VOLTYPE'] = 'INTERNAL'
            write_atomic(pmeta, md.format_volume(pfields))
        if legal:
            fields = dict(fields, LEGALITY='LEGAL')
            write_atomic(meta, md.format_volume(fields))
        log.info('created volume %s/%s/%s (%s %s, %d bytes)', sd_uuid, img, vol,
                 fields['FORMAT'], fields['TYPE'], capacity)

    @staticmethod
    def _bitmaps(path):
        """Names of the persistent dirty bitmaps of a qcow2 image."""
        info = json.loads(_run(['qemu-img', 'info', '--output', 'json', '-U', path],
                               'reading the bitmaps of %s' % path))
        data = (info.get('format-specific') or {}).get('data') or {}
        return [b['name'] for b in data.get('bitmaps') or []]

    @staticmethod
    def _sizes(path):
        st = os.stat(path)
        return st.st_size, st.st_blocks * 512

    @verb('Volume.getInfo')
    def getVolumeInfo(self, volumeID, storagepoolID, storagedomainID, imageID):
        path, meta, lease, f = self._read_volume_md(storagedomainID, imageID, volumeID)
        apparent, true = self._sizes(path) if os.path.exists(path) else (0, 0)
        try:
            owners = [o.get('host_id') for o in sanlock_util.read_resource_owners(
                storagedomainID, volumeID, lease, 0)]
        except (sanlock_util.SanlockException, OSError):
            owners = []
        return {
            'uuid': volumeID, 'domain': f.get('DOMAIN', storagedomainID),
            'image': f.get('IMAGE', imageID), 'parent': f.get('PUUID', BLANK_UUID),
            'format': f.get('FORMAT'), 'type': f.get('TYPE'), 'voltype': f.get('VOLTYPE'),
            'disktype': f.get('DISKTYPE'), 'description': f.get('DESCRIPTION', ''),
            'legality': f.get('LEGALITY'), 'capacity': f.get('CAP'),
            'apparentsize': str(apparent), 'truesize': str(true),
            'ctime': f.get('CTIME'), 'mtime': '0', 'generation': int(f.get('GEN', 0)),
            'status': 'OK' if f.get('LEGALITY') == 'LEGAL' else 'ILLEGAL',
            'pool': '', 'children': [],
            'lease': {'path': lease, 'offset': 0, 'owners': owners, 'version': None},
        }

    @verb('Volume.getSize')
    def getVolumeSize(self, volumeID, storagepoolID, storagedomainID, imageID):
        path, _, _, _ = self._read_volume_md(storagedomainID, imageID, volumeID)
        apparent, true = self._sizes(path)
        return {'apparentsize': str(apparent), 'truesize': str(true)}

    @verb('Volume.delete')
    def deleteVolume(self, volumeID, storagepoolID, storagedomainID, imageID, postZero, force,
                     discard=False):
        with self._lock:
            self._require_spm(storagepoolID)
            path, meta, lease, f = self._read_volume_md(storagedomainID, imageID, volumeID)
            if f.get('VOLTYPE') in ('INTERNAL', 'SHARED') and not force:
                raise VdsmError(100, 'volume %s is %s (it has children or is shared): delete '
                                'them first or pass force=true'
                                % (volumeID, f.get('VOLTYPE')))

        def delete():
            size = os.path.getsize(path) if os.path.exists(path) else 0
            if size and postZero:
                _run(['fallocate', '--zero-range', '-o', '0', '-l', str(size), path],
                     'zeroing volume %s' % volumeID)
            if size and discard:
                _run(['fallocate', '--punch-hole', '-o', '0', '-l', str(size), path],
                     'discarding volume %s' % volumeID)
            for p in (path, lease, meta):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            self._parent_leaf_again(os.path.dirname(path), f.get('PUUID', BLANK_UUID))
            try:
                os.rmdir(os.path.dirname(path))
            except OSError:
                pass
        return self.tasks.start('Volume.delete', delete)

    @staticmethod
    def _parent_leaf_again(img_dir, parent):
        """As VDSM: a parent volume whose last child is deleted is a LEAF again."""
        pmeta = os.path.join(img_dir, parent + '.meta')
        if parent == BLANK_UUID or not os.path.exists(pmeta):
            return
        for name in os.listdir(img_dir):
            if name.endswith('.meta') and name != parent + '.meta':
                with open(os.path.join(img_dir, name), 'rb') as fh:
                    if md.parse_volume(fh.read()).get('PUUID') == parent:
                        return
        with open(pmeta, 'rb') as fh:
            pfields = md.parse_volume(fh.read())
        if pfields.get('VOLTYPE') == 'INTERNAL':
            pfields['VOLTYPE'] = 'LEAF'
            write_atomic(pmeta, md.format_volume(pfields))

    # ----------------------------------------------------------------- images
    def _run_link(self, sd_uuid, img):
        return os.path.join(self.ctx.run_dir, 'storage', sd_uuid, img)

    @verb('Image.prepare')
    def prepareImage(self, storagepoolID, storagedomainID, imageID, volumeID,
                     allowIllegal=False):
        path, meta, lease, f = self._read_volume_md(storagedomainID, imageID, volumeID)
        if f.get('LEGALITY') != 'LEGAL' and not allowIllegal:
            raise VdsmError(100, 'volume %s is ILLEGAL (its creation did not finish): pass '
                            'allowIllegal=true or recreate it' % volumeID)
        with self._lock:
            pool = self.pools.get(storagepoolID) if storagepoolID != BLANK_UUID else None
            if pool:
                img_dir = os.path.join(self.ctx.data_center_dir, storagepoolID, storagedomainID,
                                       'images', imageID)
                if not os.path.isdir(img_dir):
                    self._link_pool(storagepoolID, pool)
            else:
                img_dir = self._run_link(storagedomainID, imageID)
                makedirs(os.path.dirname(img_dir), 0o755)
                target = os.path.dirname(path)
                if os.path.islink(img_dir) and os.readlink(img_dir) != target:
                    os.unlink(img_dir)
                if not os.path.islink(img_dir):
                    os.symlink(target, img_dir)
                self.prepared.add((storagedomainID, imageID))
        vol_path = os.path.join(img_dir, volumeID)
        vols = []
        for v in self.getVolumes(storagedomainID, storagepoolID, imageID):
            vols.append({'domainID': storagedomainID, 'imageID': imageID, 'volumeID': v,
                         'path': os.path.join(img_dir, v),
                         'leasePath': os.path.join(img_dir, v + '.lease'), 'leaseOffset': 0})
        return {'path': vol_path, 'info': {'type': 'file', 'path': vol_path},
                'imgVolumesInfo': vols}

    @verb('Image.teardown')
    def teardownImage(self, storagepoolID, storagedomainID, imageID, volumeID=None):
        self.find_domain(storagedomainID)
        link = self._run_link(storagedomainID, imageID)
        with self._lock:
            if os.path.islink(link):
                os.unlink(link)
            self.prepared.discard((storagedomainID, imageID))
        return True
