"""Storage domains: StorageDomain.* and Host.getStorageDomains.

A file domain lives at <mount point>/<sdUUID>/: dom_md/ (metadata, ids, leases,
xleases, inbox, outbox) and images/<imgUUID>/ (the volumes). Its type, class
and the lease timings it records are the API schema's (enums domainType and
domainClass, constant leaseTimings).
"""
import logging
import os
import shutil

from ...api.schema import constant
from ...he_storage import sanlock_util
from ..api_base import VdsmError, verb
from . import metadata as md
from .connections import FILE_DOMAIN_TYPES, FILE_DOMAIN_TYPES_TEXT
from .context import int_param
from .fileutil import BLANK_UUID, make_sparse, makedirs, probe_dir
from .monitor import update_monitors
from .pools import SPM_LEASE_OFFSET, SPM_RESOURCE, link_pool, pool_links, set_pool_domain

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
# dom_md files and their sizes (sparse files; sanlock needs 1 MiB alignment).
DOM_MD_FILES = {'ids': MiB, 'leases': 2 * GiB, 'xleases': GiB, 'inbox': 16 * MiB,
                'outbox': 16 * MiB}


def list_volumes(sc, sd_uuid, img_uuid):
    """The volume UUIDs of an image (its <vol>.meta files), sorted."""
    sd_dir = sc.find_domain(sd_uuid)
    img_dir = os.path.join(sd_dir, 'images', img_uuid)
    if not os.path.isdir(img_dir):
        return []
    return sorted(f[:-5] for f in os.listdir(img_dir) if f.endswith('.meta'))


def _matches(wanted, value, names):
    """A filter of Host.getStorageDomains: the metadata name, or its schema number."""
    return str(wanted) in (value, str({v: k for k, v in names.items()}.get(value)))


class Domains:
    """The file storage domains on the connected storage."""

    def __init__(self, sc):
        self.sc = sc

    @verb('StorageDomain.create')
    def createStorageDomain(self, storagedomainID, domainType, typeArgs, name, domainClass,
                            version=5, blockSize=512, maxHosts=2000):
        sc, sd = self.sc, storagedomainID
        domain_type = domainType
        version = int_param(version, 'version')
        if domain_type not in FILE_DOMAIN_TYPES:
            raise VdsmError('InvalidParameterException',
                            'domainType %s is not a file domain type (%s)'
                            % (domainType, FILE_DOMAIN_TYPES_TEXT))
        if version not in (3, 4, 5):
            raise VdsmError('InvalidParameterException',
                            'domain version %s is not supported (3, 4 or 5)' % version)
        if blockSize != 512:
            raise VdsmError('InvalidParameterException',
                            'block size %s is not supported on file domains here (512)'
                            % blockSize)
        if len(name) > 50:
            raise VdsmError('InvalidParameterException',
                            'domain name %r is longer than 50 characters' % name)
        with sc.lock:
            if sd in sc.domain_dirs():
                raise VdsmError('StorageDomainAlreadyExists', 'storage domain %s already exists '
                                'at %s' % (sd, sc.domain_dirs()[sd]))
            mnt = sc.mountpoint(typeArgs, domain_type)
            if not os.path.isdir(mnt):
                raise VdsmError('StorageServerConnectionError',
                                'storage %s is not connected (no %s): call '
                                'StoragePool.connectStorageServer first' % (typeArgs, mnt))
            reason = probe_dir(mnt)
            if reason:
                raise VdsmError('StorageServerConnectionError', reason)
            sd_dir = os.path.join(mnt, sd)
            tmp_dir = os.path.join(mnt, '.%s.creating' % sd)
            shutil.rmtree(tmp_dir, ignore_errors=True)
            try:
                self._lay_out(tmp_dir, sd, domain_type, typeArgs, name, domainClass, version)
                os.rename(tmp_dir, sd_dir)
                ids = os.path.join(sd_dir, 'dom_md', 'ids')
                leases = os.path.join(sd_dir, 'dom_md', 'leases')
                try:
                    sanlock_util.write_lockspace(sd, ids, iotimeout=sc.io_timeout)
                    sanlock_util.write_resource(sd, SPM_RESOURCE, leases, SPM_LEASE_OFFSET)
                except sanlock_util.SanlockException as e:
                    raise VdsmError('general', 'cannot initialise the sanlock lockspace of '
                                    'domain %s: %s' % (sd, sanlock_util.describe(e)))
            except Exception:
                shutil.rmtree(tmp_dir, ignore_errors=True)
                shutil.rmtree(sd_dir, ignore_errors=True)
                raise
        log.info('created storage domain %s (%s) at %s', sd, name, sd_dir)
        return True

    def _lay_out(self, tmp_dir, sd, domain_type, remote_path, name, domain_class, version):
        """dom_md/ with its files and metadata, and images/, in tmp_dir."""
        makedirs(tmp_dir)
        makedirs(os.path.join(tmp_dir, 'dom_md'))
        makedirs(os.path.join(tmp_dir, 'images'))
        for fname, size in DOM_MD_FILES.items():
            if fname == 'xleases' and version < 4:
                continue
            make_sparse(os.path.join(tmp_dir, 'dom_md', fname), size)
        fields = {
            'CLASS': md.DOMAIN_CLASSES[domain_class],
            'DESCRIPTION': name,
            'LOCKPOLICY': '',
            'POOL_UUID': '',
            'REMOTE_PATH': remote_path,
            'ROLE': 'Regular',
            'SDUUID': sd,
            'TYPE': md.DOMAIN_TYPES[domain_type],
            'VERSION': str(version),
        }
        for key, value in constant('leaseTimings').items():
            fields[md.LEASE_TIMING_KEYS[key]] = str(value)
        if version >= 5:
            fields['ALIGNMENT'] = str(sanlock_util.ALIGNMENT)
            fields['BLOCK_SIZE'] = '512'
        self.sc.write_domain_md(sd, fields, tmp_dir)

    @verb('StorageDomain.getInfo')
    def getStorageDomainInfo(self, storagedomainID):
        sd_dir = self.sc.find_domain(storagedomainID)
        f = self.sc.read_domain_md(storagedomainID, sd_dir)
        return {
            'uuid': f.get('SDUUID', storagedomainID),
            'type': f.get('TYPE', ''),
            'class': f.get('CLASS', ''),
            'name': f.get('DESCRIPTION', ''),
            'role': f.get('ROLE', 'Regular'),
            'pool': md.domain_pools(f),
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
        sd_dir = self.sc.find_domain(storagedomainID)
        self.sc.read_domain_md(storagedomainID, sd_dir)
        st = os.statvfs(sd_dir)
        return {'disktotal': str(st.f_blocks * st.f_frsize),
                'diskfree': str(st.f_bavail * st.f_frsize),
                'mdavalid': True, 'mdathreshold': True, 'mdasize': 0, 'mdafree': 0}

    @verb('StorageDomain.validate')
    def validateStorageDomain(self, storagedomainID):
        self.sc.read_domain_md(storagedomainID)
        return True

    @verb('StorageDomain.attach')
    def attachStorageDomain(self, storagedomainID, storagepoolID):
        sc = self.sc
        with sc.lock:
            sc.require_spm(storagepoolID)
            pools = md.domain_pools(sc.read_domain_md(storagedomainID))
            if pools and storagepoolID not in pools:
                raise VdsmError('general', 'storage domain %s is attached to pool %s: detach it '
                                'first' % (storagedomainID, pools[0]))
            if storagepoolID not in pools:
                sc.update_domain_md(storagedomainID, POOL_UUID=storagepoolID)
            set_pool_domain(sc, storagepoolID, storagedomainID, 'Attached')
            link_pool(sc, storagepoolID, sc.pools[storagepoolID])
        return True

    @verb('StorageDomain.activate')
    def activateStorageDomain(self, storagedomainID, storagepoolID):
        sc = self.sc
        with sc.lock:
            sc.require_spm(storagepoolID)
            if storagepoolID not in md.domain_pools(sc.read_domain_md(storagedomainID)):
                raise VdsmError('general', 'storage domain %s is not attached to pool %s: attach '
                                'it first' % (storagedomainID, storagepoolID))
            set_pool_domain(sc, storagepoolID, storagedomainID, 'Active')
            link_pool(sc, storagepoolID, sc.pools[storagepoolID])
            update_monitors(sc)
        return True

    @verb('StorageDomain.detach')
    def detachStorageDomain(self, storagedomainID, storagepoolID, masterSdUUID=None,
                            masterVersion=0, force=False):
        sc = self.sc
        with sc.lock:
            pool = sc.pool(storagepoolID)
            if storagedomainID == pool['masterSdUUID']:
                raise VdsmError('general', 'storage domain %s is the master of pool %s: destroy '
                                'the pool instead' % (storagedomainID, storagepoolID))
            if masterSdUUID not in (None, BLANK_UUID, pool['masterSdUUID']):
                raise VdsmError('InvalidParameterException',
                                'masterSdUUID %s is not the master of pool %s (%s): this '
                                'host agent does not move the master role'
                                % (masterSdUUID, storagepoolID, pool['masterSdUUID']))
            if masterVersion and masterVersion != pool['masterVersion']:
                raise VdsmError('InvalidParameterException',
                                'masterVersion %d is not the master version %d of pool %s'
                                % (masterVersion, pool['masterVersion'], storagepoolID))
            if not force:
                sc.require_spm(storagepoolID)
            sc.update_domain_md(storagedomainID, POOL_UUID='')
            set_pool_domain(sc, storagepoolID, storagedomainID, None)
            link = os.path.join(sc.ctx.data_center_dir, storagepoolID, storagedomainID)
            if os.path.islink(link):
                os.unlink(link)
            update_monitors(sc)
        return True

    @verb('StorageDomain.format')
    def formatStorageDomain(self, storagedomainID, autoDetach):
        sc, sd = self.sc, storagedomainID
        with sc.lock:
            sd_dir = sc.find_domain(sd)
            fields = sc.read_domain_md(sd, sd_dir)
            in_pools = [sp for sp, pool in sc.pools.items()
                        if pool['masterSdUUID'] == sd or sd in pool_links(sc, sp)]
            if in_pools:
                raise VdsmError('CannotFormatStorageDomainInConnectedPool',
                                'storage domain %s is in pool %s, connected on this host: '
                                'disconnect the pool (StoragePool.disconnect) first'
                                % (sd, in_pools[0]))
            if sd in sc.monitors:
                raise VdsmError('StorageDomainActive',
                                'storage domain %s is in use: this host monitors it (host id '
                                '%d in its lockspace): stop monitoring it '
                                '(Host.stopMonitoringDomain) first'
                                % (sd, sc.monitors[sd].host_id))
            pools = md.domain_pools(fields)
            if pools and not autoDetach:
                raise VdsmError('CannotFormatAttachedStorageDomain',
                                'storage domain %s is attached to pool %s: detach it or '
                                'pass autoDetach=true' % (sd, pools[0]))
            self._refuse_live_lockspace(sd, sd_dir)
            if pools:
                sc.update_domain_md(sd, POOL_UUID='')
            trash = os.path.join(os.path.dirname(sd_dir), '.%s.deleting' % sd)
            os.rename(sd_dir, trash)
            shutil.rmtree(trash)
        log.info('removed storage domain %s (%s)', sd, sd_dir)
        return True

    @staticmethod
    def _refuse_live_lockspace(sd, sd_dir):
        """VdsmError StorageDomainActive while a host holds a live host id in the domain's
        lockspace: VDSM refuses to remove a domain in use, and other hosts run VMs from it."""
        ids = os.path.join(sd_dir, 'dom_md', 'ids')
        try:
            live = sanlock_util.live_host_ids(sd, ids)
        except OSError as e:
            raise VdsmError('StorageDomainActive',
                            'cannot tell whether storage domain %s is in use: reading its '
                            'lockspace failed (%s): check the storage and that sanlock is '
                            'installed, then retry' % (sd, e))
        if live:
            many = len(live) > 1
            raise VdsmError('StorageDomainActive',
                            'storage domain %s is in use: host id%s %s hold%s a live lease '
                            'in its lockspace: stop the HA services (ovirt-ha-agent, '
                            'ovirt-ha-broker) and the monitoring of this domain on %s, then '
                            'retry; a host that is really gone stops renewing its lease: fence '
                            'it and retry once its lease has expired' % (
                                sd, 's' if many else '', ', '.join(map(str, live)),
                                '' if many else 's', 'those hosts' if many else 'that host'))

    @verb('StorageDomain.getImages')
    def getImages(self, storagedomainID):
        sd_dir = self.sc.find_domain(storagedomainID)
        images = os.path.join(sd_dir, 'images')
        return sorted(d for d in os.listdir(images)
                      if not d.startswith('.') and os.path.isdir(os.path.join(images, d)))

    @verb('StorageDomain.getVolumes')
    def getVolumes(self, storagedomainID, storagepoolID, imageID):
        return list_volumes(self.sc, storagedomainID, imageID)

    @verb('Host.getStorageDomains')
    def getStorageDomains(self, storagepoolID=None, domainClass=None, storageType=None,
                          remotePath=None):
        sc = self.sc
        out = []
        for sd, sd_dir in sorted(sc.domain_dirs().items()):
            try:
                f = sc.read_domain_md(sd, sd_dir)
            except VdsmError:
                if not (storagepoolID or domainClass or storageType or remotePath):
                    out.append(sd)
                continue
            if storagepoolID and storagepoolID != BLANK_UUID and \
                    storagepoolID not in md.domain_pools(f):
                continue
            if domainClass and not _matches(domainClass, f.get('CLASS'), md.DOMAIN_CLASSES):
                continue
            if storageType and not _matches(storageType, f.get('TYPE'), md.DOMAIN_TYPES):
                continue
            if remotePath and remotePath != f.get('REMOTE_PATH'):
                continue
            out.append(sd)
        return out
