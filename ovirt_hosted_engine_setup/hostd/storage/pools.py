"""Storage pools: StoragePool.* (but the connections) and the SPM.

A pool connected on this host is <data_center_dir>/<spUUID>/ with a link per
domain and "mastersd". The pool's own metadata is kept in the master domain's
metadata (POOL_* keys). The SPM lease is the resource SPM_RESOURCE at
SPM_LEASE_OFFSET of the master domain's dom_md/leases, in the lockspace the
master domain's monitor joins with this host's id.
"""
import logging
import os
import time

from ...api.schema import constant
from ...he_storage import sanlock_util
from ..api_base import VdsmError, verb
from . import metadata as md
from .context import int_param
from .fileutil import makedirs
from .monitor import update_monitors

log = logging.getLogger(__name__)

MiB = 1 << 20
SPM_RESOURCE = 'SDM'
SPM_LEASE_OFFSET = MiB   # the SPM lease's slot in dom_md/leases
SPM_START_TIMEOUT = 180.0


def link_pool(sc, sp_uuid, pool):
    """<data_center_dir>/<spUUID>/{<sdUUID>, mastersd} -> domain directories."""
    pool_dir = os.path.join(sc.ctx.data_center_dir, sp_uuid)
    makedirs(pool_dir, 0o755)
    master, fields = pool['masterSdUUID'], sc.read_domain_md(pool['masterSdUUID'])
    wanted = {sd: sc.find_domain(sd) for sd in md.pool_domains(fields)
              if sd in sc.domain_dirs()}
    wanted[master] = sc.find_domain(master)
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


def pool_links(sc, sp_uuid):
    """Names in <data_center_dir>/<spUUID>/ (the pool's domain links)."""
    pool_dir = os.path.join(sc.ctx.data_center_dir, sp_uuid)
    try:
        return set(os.listdir(pool_dir))
    except OSError:
        return set()


def set_pool_domain(sc, sp_uuid, sd_uuid, status):
    """Record a domain's status (None: remove it) in the pool's POOL_DOMAINS."""
    master, fields = sc.pool_md(sp_uuid)
    domains = md.pool_domains(fields)
    if status is None:
        domains.pop(sd_uuid, None)
    else:
        domains[sd_uuid] = status
    fields['POOL_DOMAINS'] = md.format_pool_domains(domains)
    sc.write_domain_md(master, fields)


class Pools:
    """The pools connected on this host (state: sc.pools) and their SPM."""

    def __init__(self, sc):
        self.sc = sc

    def restore(self, state):
        """Link again the pools the saved state had connected; sc.lock held."""
        for sp, pool in state.get('pools', {}).items():
            pool['spm'] = None   # the SPM lease belonged to the previous process
            self.sc.pools[sp] = pool
            try:
                link_pool(self.sc, sp, pool)
            except VdsmError as e:
                log.warning('restoring pool %s: %s', sp, e.message)

    @verb('StoragePool.create')
    def createStoragePool(self, storagepoolID, name, masterSdUUID, masterVersion, domainList,
                          lockRenewalIntervalSec, leaseTimeSec, ioOpTimeoutSec, leaseRetries):
        sc, sp = self.sc, storagepoolID
        if masterSdUUID not in domainList:
            raise VdsmError('InvalidParameterException',
                            'master domain %s is not in domainList' % masterSdUUID)
        # As VDSM: 0 selects the default of a timing.
        given = {'lockRenewalIntervalSec': lockRenewalIntervalSec, 'leaseTimeSec': leaseTimeSec,
                 'ioOpTimeoutSec': ioOpTimeoutSec, 'leaseRetries': leaseRetries}
        timings = {k: v or constant('leaseTimings')[k] for k, v in given.items()}
        bad = sorted(k for k, v in given.items() if v < 0)
        if bad:
            raise VdsmError('InvalidParameterException',
                            'lease timings must not be negative: %s' % ', '.join(
                                '%s=%s' % (k, given[k]) for k in bad))
        if timings['lockRenewalIntervalSec'] >= timings['leaseTimeSec']:
            raise VdsmError('InvalidParameterException',
                            'lockRenewalIntervalSec (%d) must be less than leaseTimeSec (%d)'
                            % (timings['lockRenewalIntervalSec'], timings['leaseTimeSec']))
        with sc.lock:
            if sp in sc.pools:
                raise VdsmError('StoragePoolAlreadyExists',
                                'storage pool %s already exists (connected on this host)' % sp)
            for sd in domainList:
                pools = md.domain_pools(sc.read_domain_md(sd))
                if pools:
                    raise VdsmError('StoragePoolAlreadyExists' if sp in pools else 'general',
                                    'storage domain %s already belongs to pool %s'
                                    % (sd, pools[0]))
            for sd in domainList:
                sc.update_domain_md(sd, POOL_UUID=sp)
            sc.update_domain_md(
                masterSdUUID, ROLE='Master', MASTER_VERSION=masterVersion,
                POOL_DESCRIPTION=name, POOL_SPM_ID=-1, POOL_SPM_LVER=-1,
                POOL_DOMAINS=md.format_pool_domains({sd: 'Active' if sd == masterSdUUID
                                                     else 'Attached' for sd in domainList}),
                **{md.LEASE_TIMING_KEYS[k]: v for k, v in timings.items()})
        log.info('created storage pool %s (%s) with master domain %s', sp, name, masterSdUUID)
        return True

    @verb('StoragePool.connect')
    def connectStoragePool(self, storagepoolID, hostID, scsiKey, masterSdUUID, masterVersion,
                           domainDict=None):
        sc, host_id = self.sc, hostID
        if not 1 <= host_id <= 2000:
            raise VdsmError('InvalidParameterException',
                            'hostID %s is out of range (1..2000)' % hostID)
        with sc.lock:
            fields = sc.read_domain_md(masterSdUUID)
            if storagepoolID not in md.domain_pools(fields) or fields.get('ROLE') != 'Master':
                raise VdsmError('StoragePoolUnknown',
                                'storage pool %s is unknown: domain %s is not its master'
                                % (storagepoolID, masterSdUUID))
            if domainDict:
                domains = md.pool_domains(fields)
                changed = False
                for sd, status in domainDict.items():
                    status = str(status).capitalize()
                    if domains.get(sd) != status:
                        domains[sd] = status
                        changed = True
                if changed:
                    fields['POOL_DOMAINS'] = md.format_pool_domains(domains)
                    sc.write_domain_md(masterSdUUID, fields)
            pool = sc.pools.get(storagepoolID)
            if pool and pool['hostID'] != host_id:
                raise VdsmError('general', 'pool %s is connected with host id %d, not %d: '
                                'disconnect it first' % (storagepoolID, pool['hostID'], host_id))
            pool = pool or {'spm': None}
            pool.update(hostID=host_id, masterSdUUID=masterSdUUID,
                        masterVersion=masterVersion)
            sc.pools[storagepoolID] = pool
            link_pool(sc, storagepoolID, pool)
            update_monitors(sc)
            sc.save()
        return True

    @verb('StoragePool.disconnect')
    def disconnectStoragePool(self, storagepoolID, hostID, scsiKey, remove=False):
        sc = self.sc
        with sc.lock:
            pool = sc.pool(storagepoolID)
            if pool.get('spm'):
                self._spm_stop(storagepoolID)
            del sc.pools[storagepoolID]
            pool_dir = os.path.join(sc.ctx.data_center_dir, storagepoolID)
            if os.path.isdir(pool_dir):
                for name in os.listdir(pool_dir):
                    if os.path.islink(os.path.join(pool_dir, name)):
                        os.unlink(os.path.join(pool_dir, name))
                try:
                    os.rmdir(pool_dir)
                except OSError:
                    pass
            update_monitors(sc)
            sc.save()
        return True

    @verb('StoragePool.destroy')
    def destroyStoragePool(self, storagepoolID, hostID, scsiKey):
        sc = self.sc
        with sc.lock:
            sc.require_spm(storagepoolID)
            master, fields = sc.pool_md(storagepoolID)
            for sd in md.pool_domains(fields):
                if sd != master and sd in sc.domain_dirs():
                    sc.update_domain_md(sd, POOL_UUID='')
            self._spm_stop(storagepoolID)
            sc.update_domain_md(master, ROLE='Regular', POOL_UUID='', MASTER_VERSION=None,
                                POOL_DESCRIPTION=None, POOL_DOMAINS=None, POOL_SPM_ID=None,
                                POOL_SPM_LVER=None)
        return self.disconnectStoragePool(storagepoolID, hostID, scsiKey)

    @verb('StoragePool.getInfo')
    def getStoragePoolInfo(self, storagepoolID):
        sc = self.sc
        with sc.lock:
            pool = sc.pool(storagepoolID)
            master, fields = sc.pool_md(storagepoolID)
            domains = md.pool_domains(fields)
            st = os.statvfs(sc.find_domain(master))
            info = {
                'name': fields.get('POOL_DESCRIPTION', ''),
                'type': fields.get('TYPE', ''),
                'master_uuid': master,
                'master_ver': int(fields.get('MASTER_VERSION', 0)),
                'spm_id': int(fields.get('POOL_SPM_ID', -1)),
                'lver': int(fields.get('POOL_SPM_LVER', -1)),
                'domains': md.format_pool_domains(domains),
                'pool_status': 'connected',
                'version': fields.get('VERSION', ''),
                'isoprefix': '',
            }
            dominfo = {}
            for sd, status in domains.items():
                entry = {'status': status, 'alerts': [], 'isoprefix': '', 'version': -1}
                try:
                    f = sc.read_domain_md(sd)
                    entry['version'] = int(f.get('VERSION', -1))
                    s = os.statvfs(sc.find_domain(sd))
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
        with self.sc.lock:
            return sorted(self.sc.pools)

    # -------------------------------------------------------------------- SPM
    @verb('StoragePool.spmStart')
    def spmStart(self, storagepoolID, prevID, prevLver, enableScsiFencing, maxHostID=250,
                 domVersion=None):
        # prevID, prevLver and enableScsiFencing are deprecated in VDSM and not used there
        # either: the SPM lease itself says who held it before.
        sc = self.sc
        with sc.lock:
            pool = sc.pool(storagepoolID)
            if pool['hostID'] > maxHostID:
                raise VdsmError('InvalidParameterException',
                                'this host has host id %d, above maxHostID %d: connect the '
                                'pool with a host id up to %d' % (pool['hostID'], maxHostID,
                                                                   maxHostID))
            if domVersion not in (None, ''):
                _, fields = sc.pool_md(storagepoolID)
                if str(fields.get('VERSION')) != str(int_param(domVersion, 'domVersion')):
                    raise VdsmError('InvalidParameterException',
                                    'master domain %s has version %s, not domVersion %s'
                                    % (pool['masterSdUUID'], fields.get('VERSION'), domVersion))
            if pool.get('spm'):
                # Already SPM: a task that finishes at once, as VDSM does.
                return sc.tasks.start('StoragePool.spmStart', lambda: None)
        return sc.tasks.start('StoragePool.spmStart', lambda: self._spm_start(storagepoolID))

    def _spm_start(self, sp_uuid):
        sc = self.sc
        with sc.lock:
            pool = sc.pool(sp_uuid)
            master = pool['masterSdUUID']
            host_id = pool['hostID']
            monitor = sc.monitors.get(master)
        # The SPM lease lives in the master domain's lockspace: wait for the host id.
        deadline = time.monotonic() + SPM_START_TIMEOUT
        while True:
            status = monitor.report() if monitor else {}
            if status.get('acquired'):
                break
            if time.monotonic() > deadline:
                raise VdsmError('AcquireHostIdFailure',
                                'host id %d was not acquired in the lockspace of master '
                                'domain %s within %d s: %s' % (
                                    host_id, master, SPM_START_TIMEOUT,
                                    status.get('message', 'domain not monitored')))
            time.sleep(0.5)
            with sc.lock:
                if sp_uuid not in sc.pools:
                    raise VdsmError('StoragePoolNotConnected',
                                    'storage pool %s was disconnected' % sp_uuid)
                monitor = sc.monitors.get(master)
        leases = os.path.join(sc.find_domain(master), 'dom_md', 'leases')
        try:
            sanlock_util.acquire(master, SPM_RESOURCE, leases, SPM_LEASE_OFFSET)
        except sanlock_util.SanlockException as e:
            raise VdsmError('general', 'cannot become SPM of pool %s: %s' % (
                sp_uuid, sanlock_util.describe(e)))
        try:
            lver = int(sanlock_util.read_resource(leases, SPM_LEASE_OFFSET).get('version', 0))
        except sanlock_util.SanlockException:
            lver = 0
        with sc.lock:
            pool = sc.pools.get(sp_uuid)
            if pool is None:
                sanlock_util.release(master, SPM_RESOURCE, leases, SPM_LEASE_OFFSET)
                raise VdsmError('StoragePoolNotConnected',
                                'storage pool %s was disconnected' % sp_uuid)
            pool['spm'] = {'leases': leases, 'lver': lver, 'master': master}
            sc.update_domain_md(master, POOL_SPM_ID=host_id, POOL_SPM_LVER=lver)
        log.info('this host (id %d) is SPM of pool %s (lver %d)', host_id, sp_uuid, lver)

    def _spm_stop(self, sp_uuid):
        sc = self.sc
        pool = sc.pool(sp_uuid)
        spm = pool.get('spm')
        if not spm:
            return
        running = sc.tasks.running()
        if running:
            raise VdsmError('general', 'cannot stop being SPM of pool %s while tasks run: %s'
                            % (sp_uuid, ', '.join(running)))
        try:
            sc.update_domain_md(spm['master'], POOL_SPM_ID=-1, POOL_SPM_LVER=spm['lver'])
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
        with self.sc.lock:
            self.sc.pool(storagepoolID)
            self._spm_stop(storagepoolID)
        return True

    @verb('StoragePool.getSpmStatus')
    def getSpmStatus(self, storagepoolID):
        sc = self.sc
        with sc.lock:
            pool = sc.pool(storagepoolID)
            spm = pool.get('spm')
            if spm:
                return {'spmId': pool['hostID'], 'spmStatus': 'SPM', 'spmLver': spm['lver']}
            _, fields = sc.pool_md(storagepoolID)
            return {'spmId': int(fields.get('POOL_SPM_ID', -1)), 'spmStatus': 'Free',
                    'spmLver': int(fields.get('POOL_SPM_LVER', -1))}
