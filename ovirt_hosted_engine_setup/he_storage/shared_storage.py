"""The hosted-engine shared storage: a file storage domain with four images.

Laid out as VDSM lays out a file storage domain (<mount point>/<sdUUID>/dom_md/ and
images/<image>/<volume>, see docs/ha-services.md), created and used only through
the host agent API (VDSM or ovirt-hosted-engine-hostd):

- HEVD: the engine VM's disk (its ``.lease`` is the VM lease, lockspace sdUUID);
- HEMD: the HA metadata area (4096-byte slots, slot 0 the global block);
- HESD: the ``hosted-engine`` sanlock lockspace of the HA broker;
- HECI: the configuration volume, an uncompressed tar (ConfigVolume).

prepare_domain(client, spec, progress) creates all of it (the otopi-era
sequence) and returns the hosted-engine.conf values; connect()/disconnect()
attach and detach a host; volume_paths() is the pure path arithmetic;
metadata_max_hosts() bounds the metadata area; write_vm_disk() copies an
appliance or the lab guest into the VM volume.

Every error is a StorageError with one line naming the step and the fix.
``progress(what, elapsed, limit)`` is called while waiting (about once a second).
"""
import errno
import fcntl
import hashlib
import io
import json
import logging
import mmap
import os
import subprocess
import tarfile
import time
import uuid as uuidlib

from ..api.schema import constant, enum
from ..ha import metadata
from . import sanlock_util

log = logging.getLogger(__name__)

BLANK_UUID = constant('blankUUID')
DATA_CENTER_DIR = '/rhev/data-center'
MiB = 1 << 20

# domainType names of hosted-engine.conf -> the API's domain type numbers
_TYPE_IDS = enum('domainType')
DOMAIN_TYPES = {'nfs': _TYPE_IDS['NFS'], 'nfs3': _TYPE_IDS['NFS'], 'nfs4': _TYPE_IDS['NFS'],
                'localfs': _TYPE_IDS['LOCALFS'], 'posixfs': _TYPE_IDS['POSIXFS'],
                'glusterfs': _TYPE_IDS['GLUSTERFS']}
NFS_VERSIONS = {'nfs3': '3', 'nfs4': '4'}
RAW, COW = enum('volFormat')['RAW'], enum('volFormat')['COW']
PREALLOCATED, SPARSE = enum('preallocate')['PREALLOCATED'], enum('preallocate')['SPARSE']
DATA_CLASS = enum('domainClass')['Data']
DOMAIN_VERSION = 5
MAX_HOSTS = 250

LOCKSPACE_NAME = 'hosted-engine'
DEFAULT_IO_TIMEOUT = 10
# The metadata volume holds MAX_HOSTS host slots plus the global block:
# 251 x 4096 = 1028096 bytes, in 1 MiB.
METADATA_SIZE = MiB
# A sanlock lockspace with 512-byte sectors and 1 MiB alignment: 1 MiB.
LOCKSPACE_SIZE = MiB
# The configuration tar: five small files, a vm.conf with its base64 domain
# XML of a few KiB; under 64 KiB in practice. 1 MiB leaves room.
CONF_SIZE = MiB

DEFAULT_SD_NAME = 'hosted_storage'
DEFAULT_SP_NAME = 'hosted_datacenter'

# Volume descriptions oVirt uses.
VM_DESC = 'hosted-engine'
METADATA_DESC = 'hosted-engine.metadata'
LOCKSPACE_DESC = 'hosted-engine.lockspace'
CONF_DESC = 'HostedEngineConfigurationImage'

CONF_FILES = ('version', 'fhanswers.conf', 'hosted-engine.conf', 'broker.conf', 'vm.conf')

WAIT_ACQUIRED = 300.0
WAIT_TASK = 600.0


class StorageError(Exception):
    """A step on the shared storage failed; str() is one line with the fix."""


class ConfigChanged(StorageError):
    """The configuration volume changed since it was read."""


def _call(client, step, method, **params):
    """One API call; StorageError naming the step on a server or connection error."""
    try:
        return client.call(method, **params)
    except Exception as e:  # ServerError, ConnectionFailed, CallTimeout
        code = getattr(e, 'code', None)
        msg = getattr(e, 'message', None) or str(e)
        raise StorageError('%s: %s failed (%s%s)' % (
            step, method, 'code %s: ' % code if code is not None else '', msg)) from e


def _waiter(what, limit, progress, interval):
    """Yield elapsed seconds until limit, reporting progress about once a second."""
    t0 = time.monotonic()
    last = -1.0
    while True:
        elapsed = time.monotonic() - t0
        if progress and elapsed - last >= 1.0:
            progress(what, elapsed, limit)
            last = elapsed
        yield elapsed
        if elapsed > limit:
            return
        time.sleep(interval)


def wait_acquired(client, sd_uuid, progress=None, limit=WAIT_ACQUIRED, interval=0.5):
    """Wait until this host holds its host id in the domain's lockspace."""
    what = 'host id in the lockspace of storage domain %s' % sd_uuid
    stats = {}
    for _ in _waiter(what, limit, progress, interval):
        stats = _call(client, 'waiting for the ' + what, 'Host.getStorageRepoStats',
                      domains=[sd_uuid]).get(sd_uuid, {})
        if stats.get('acquired'):
            return stats
    raise StorageError('the host id in the lockspace of storage domain %s was not acquired '
                       'within %d s (%s): check that the sanlock daemon runs and the storage '
                       'answers' % (sd_uuid, limit, stats.get('message') or
                                    'valid=%s' % stats.get('valid')))


def wait_task(client, task_id, step, progress=None, limit=WAIT_TASK, interval=0.3):
    """Wait for a task to finish; clear it; StorageError unless it succeeded."""
    what = 'task %s (%s)' % (task_id, step)
    st = {}
    for _ in _waiter(what, limit, progress, interval):
        st = _call(client, step, 'Task.getStatus', taskID=task_id)
        if st.get('taskState') == 'finished':
            break
    else:
        raise StorageError('%s: task %s did not finish within %d s (state %s): check the host '
                           'agent log' % (step, task_id, limit, st.get('taskState')))
    try:
        client.call('Task.clear', taskID=task_id)
    except Exception as e:
        log.warning('cannot clear task %s: %s', task_id, e)
    if st.get('taskResult') != 'success':
        raise StorageError('%s failed (code %s: %s)' % (step, st.get('code'),
                                                         st.get('message') or st.get('taskResult')))
    return st


def _settle(client, task_id, what):
    """Wait for a task to end, whatever its result (cleanup after a failure)."""
    try:
        wait_task(client, task_id, what)
    except StorageError as e:
        log.info('cleanup: %s', e)


def connection_params(conf_or_spec, conn_id):
    """The connectionParams entry of the storage connection."""
    storage = conf_or_spec['storage']
    dtype = conf_or_spec.get('domainType') or conf_or_spec.get('domain_type') or 'nfs'
    p = {'id': conn_id, 'connection': storage}
    options = conf_or_spec.get('mnt_options') or ''
    if options:
        p['mnt_options'] = options
    if dtype in NFS_VERSIONS:
        p['protocol_version'] = NFS_VERSIONS[dtype]
    if dtype == 'posixfs':
        p['vfs_type'] = conf_or_spec.get('vfs_type') or ''
    if dtype == 'glusterfs':
        p['vfs_type'] = 'glusterfs'
    return p


def _domain_type(name):
    try:
        return DOMAIN_TYPES[name]
    except KeyError:
        raise StorageError('storage type %r is not one of %s: fix domainType'
                           % (name, ', '.join(sorted(DOMAIN_TYPES))))


def mount_point(storage, data_center_dir=DATA_CENTER_DIR):
    """VDSM's mount point of a storage connection: "_" doubled, then "/" -> "_"."""
    return os.path.join(data_center_dir, 'mnt', storage.replace('_', '__').replace('/', '_'))


def volume_paths(conf, data_center_dir=DATA_CENTER_DIR):
    """Paths of the four volumes and of the VM lease under the mount point (pure).

    Keys: vm, vm_lease, metadata, lockspace, conf, domain (the domain's directory).
    """
    sd = conf['sdUUID']
    dom = os.path.join(mount_point(conf['storage'], data_center_dir), sd)

    def vol(img, vol_id):
        return os.path.join(dom, 'images', conf[img], conf[vol_id])
    vm = vol('vm_disk_id', 'vm_disk_vol_id')
    return {'domain': dom,
            'vm': vm,
            'vm_lease': vm + '.lease',
            'metadata': vol('metadata_image_UUID', 'metadata_volume_UUID'),
            'lockspace': vol('lockspace_image_UUID', 'lockspace_volume_UUID'),
            'conf': vol('conf_image_UUID', 'conf_volume_UUID')}


IMAGES = (  # (name, image key, volume key) of the four images
    ('vm', 'vm_disk_id', 'vm_disk_vol_id'),
    ('metadata', 'metadata_image_UUID', 'metadata_volume_UUID'),
    ('lockspace', 'lockspace_image_UUID', 'lockspace_volume_UUID'),
    ('conf', 'conf_image_UUID', 'conf_volume_UUID'),
)


def _size_of(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def metadata_max_hosts(path):
    """Host slots of the metadata volume: min(250, size // 4096 - 1)."""
    try:
        size = _size_of(path)
    except OSError as e:
        raise StorageError('cannot open the metadata volume %s (%s): connect the storage '
                           '(hosted-engine --connect-storage)' % (path, e.strerror or e))
    n = min(metadata.MAX_HOST_ID, size // metadata.SLOT_SIZE - 1)
    if n < 1:
        raise StorageError('the metadata volume %s is %d bytes, too small for one host slot: '
                           'deploy again' % (path, size))
    return n


# ------------------------------------------------------------ direct I/O

def _aligned(size):
    return mmap.mmap(-1, max(size, mmap.PAGESIZE))


def _open_direct(path, flags):
    """Open with O_DIRECT|O_SYNC; plain O_SYNC where the file system refuses O_DIRECT."""
    try:
        return os.open(path, flags | os.O_DIRECT | os.O_SYNC), True
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return os.open(path, flags | os.O_SYNC), False


def read_volume(path, size=None):
    """Read a volume (or its first size bytes) with direct I/O."""
    total = _size_of(path) if size is None else size
    fd, direct = _open_direct(path, os.O_RDONLY)
    try:
        n = -(-total // 4096) * 4096
        buf = _aligned(n)
        got = os.preadv(fd, [memoryview(buf)[:n]], 0) if direct else None
        if got is None:
            data = os.pread(fd, total, 0)
        else:
            data = bytes(buf[:min(got, total)])
        buf.close()
        return data
    finally:
        os.close(fd)


def write_volume(path, data, pad_to=None):
    """Write data at offset 0 with direct I/O, zero padded to pad_to bytes (4 KiB multiple)."""
    total = max(len(data), pad_to or 0)
    total = -(-total // 4096) * 4096
    fd, direct = _open_direct(path, os.O_WRONLY)
    try:
        chunk = MiB
        buf = _aligned(chunk)
        off = 0
        while off < total:
            n = min(chunk, total - off)
            piece = data[off:off + n]
            buf.seek(0)
            buf.write(piece)
            buf.write(b'\0' * (n - len(piece)))
            view = memoryview(buf)[:n]
            written = os.pwritev(fd, [view], off)
            view.release()
            if written != n:
                raise OSError(errno.EIO, 'short write (%d of %d bytes at %d)' % (written, n, off))
            off += n
        buf.close()
        if not direct:
            os.fsync(fd)
    finally:
        os.close(fd)


def zero_volume(path):
    """Zero a whole volume with direct I/O."""
    write_volume(path, b'', pad_to=_size_of(path))


def init_lockspace(path, io_timeout=DEFAULT_IO_TIMEOUT, name=LOCKSPACE_NAME):
    """Write the sanlock lockspace 'hosted-engine' on the lockspace volume (needs the host's
    sanlock daemon)."""
    try:
        sanlock_util.write_lockspace(name, path, iotimeout=int(io_timeout))
    except sanlock_util.SanlockException as e:
        raise StorageError('initialising the %s lockspace on %s failed: %s; check that the '
                           'sanlock daemon runs and the volume is writable'
                           % (name, path, sanlock_util.describe(e)))


# ------------------------------------------------------------ preparation

def _new_uuid():
    return str(uuidlib.uuid4())


class _Undo:
    """What prepare_domain created, undone in reverse order on failure."""

    def __init__(self, client):
        self.client = client
        self.steps = []      # (description, function)

    def push(self, what, fn):
        self.steps.append((what, fn))

    def run(self):
        """Undo; return the list of what could not be undone."""
        left = []
        for what, fn in reversed(self.steps):
            try:
                fn()
            except Exception as e:
                log.warning('cleanup: %s failed: %s', what, e)
                left.append(what)
        self.steps = []
        return left


def find_hosted_engine_domain(client, spec_or_conf, name=DEFAULT_SD_NAME):
    """sdUUID of a hosted-engine storage domain on the connected storage, or None."""
    dtype = spec_or_conf.get('domain_type') or spec_or_conf.get('domainType') or 'nfs'
    domains = _call(client, 'looking for an existing storage domain', 'Host.getStorageDomains',
                    storageType=_domain_type(dtype), remotePath=spec_or_conf['storage'])
    for sd in domains:
        try:
            info = client.call('StorageDomain.getInfo', storagedomainID=sd)
        except Exception as e:
            log.warning('storage domain %s: %s', sd, e)
            continue
        if info.get('name') == name:
            return sd
    return None


def prepare_domain(client, spec, progress=None):
    """Create the hosted-engine storage domain over the host agent API.

    spec (a dict): storage (the connection: 'server:/export' or a directory),
    domain_type (localfs, nfs, nfs3, nfs4, posixfs, glusterfs; default nfs),
    vm_disk_size (bytes, required), host_id (default 1), io_timeout (the
    hosted-engine lockspace's, default 10), mnt_options, vfs_type,
    vm_disk_format ('raw' or 'qcow2'), sd_name, sp_name; optional preset
    UUIDs with hosted-engine.conf names (sdUUID, spUUID, connectionUUID,
    vm_disk_id, ...).

    Returns the hosted-engine.conf values it determined (UUIDs, storage,
    domainType, mnt_options, host_id, sanlock_io_timeout, spUUID (blank: the
    pool is disconnected at the end, as the otopi-era deploy did)). On
    failure, undoes what it created and raises StorageError.
    """
    dtype = spec.get('domain_type') or spec.get('domainType') or 'nfs'
    type_id = _domain_type(dtype)
    storage = spec.get('storage')
    if not storage:
        raise StorageError('no storage connection given: set storage (server:/export or a '
                           'directory)')
    try:
        vm_size = int(spec['vm_disk_size'])
        host_id = int(spec.get('host_id') or 1)
        io_timeout = int(spec.get('io_timeout') or DEFAULT_IO_TIMEOUT)
    except (KeyError, TypeError, ValueError) as e:
        raise StorageError('bad storage specification (%s): give vm_disk_size in bytes, '
                           'host_id and io_timeout as numbers' % e)
    if vm_size < MiB:
        raise StorageError('the VM disk size %d is too small: give at least 1 MiB' % vm_size)
    vm_format = COW if spec.get('vm_disk_format') == 'qcow2' else RAW
    sd_name = spec.get('sd_name') or DEFAULT_SD_NAME
    sp_name = spec.get('sp_name') or DEFAULT_SP_NAME
    ids = {k: spec.get(k) or _new_uuid() for k in (
        'sdUUID', 'spUUID', 'connectionUUID', 'vm_disk_id', 'vm_disk_vol_id',
        'metadata_image_UUID', 'metadata_volume_UUID', 'lockspace_image_UUID',
        'lockspace_volume_UUID', 'conf_image_UUID', 'conf_volume_UUID')}
    sd, sp = ids['sdUUID'], ids['spUUID']
    conn = connection_params(dict(spec, domainType=dtype), ids['connectionUUID'])
    undo = _Undo(client)
    t0 = time.monotonic()

    def step(what):
        log.info('shared storage: %s (%.1f s)', what, time.monotonic() - t0)

    try:
        step('connecting %s' % storage)
        res = _call(client, 'connecting the storage server %s' % storage,
                    'StoragePool.connectStorageServer', storagepoolID=BLANK_UUID,
                    domainType=type_id, connectionParams=[conn])
        status = (res or [{}])[0]
        if status.get('status') != 0:
            raise StorageError('connecting the storage server %s failed (code %s%s): check the '
                               'address, the export and its permissions' % (
                                   storage, status.get('status'),
                                   ': ' + status['message'] if status.get('message') else ''))
        undo.push('disconnect the storage server', lambda: client.call(
            'StoragePool.disconnectStorageServer', storagepoolID=BLANK_UUID,
            domainType=type_id, connectionParams=[conn]))

        existing = find_hosted_engine_domain(client, dict(spec, domain_type=dtype), sd_name)
        if existing:
            undo.steps = []   # the storage was in use before: leave it connected
            raise StorageError('the storage %s already holds a hosted-engine storage domain (%s): '
                               'use it, or remove it to start over' % (storage, existing))

        step('creating storage domain %s' % sd)
        _call(client, 'creating the storage domain', 'StorageDomain.create',
              storagedomainID=sd, domainType=type_id, typeArgs=storage, name=sd_name,
              domainClass=DATA_CLASS, version=DOMAIN_VERSION, blockSize=512,
              maxHosts=MAX_HOSTS)
        undo.push('remove storage domain %s' % sd, lambda: client.call(
            'StorageDomain.format', storagedomainID=sd, autoDetach=True))

        step('creating storage pool %s' % sp)
        _call(client, 'creating the storage pool', 'StoragePool.create', storagepoolID=sp,
              name=sp_name, masterSdUUID=sd, masterVersion=1, domainList=[sd],
              **constant('leaseTimings'))
        _call(client, 'connecting the storage pool', 'StoragePool.connect', storagepoolID=sp,
              hostID=host_id, scsiKey=sp, masterSdUUID=sd, masterVersion=1,
              domainDict={sd: 'active'})
        undo.push('disconnect storage pool %s' % sp, lambda: client.call(
            'StoragePool.disconnect', storagepoolID=sp, hostID=host_id, scsiKey=sp))

        step('joining the lockspace of %s with host id %d' % (sd, host_id))
        _call(client, 'monitoring the storage domain', 'Host.startMonitoringDomain',
              sdUUID=sd, hostID=host_id)
        undo.push('stop monitoring storage domain %s' % sd, lambda: client.call(
            'Host.stopMonitoringDomain', sdUUID=sd))
        wait_acquired(client, sd, progress)

        step('starting the SPM')
        task = _call(client, 'starting the SPM', 'StoragePool.spmStart', storagepoolID=sp,
                     maxHostID=MAX_HOSTS, domVersion=DOMAIN_VERSION,
                     **constant('spmStartNoPrevious'))
        wait_task(client, task, 'starting the SPM', progress)
        _call(client, 'activating the storage domain', 'StorageDomain.activate',
              storagedomainID=sd, storagepoolID=sp)

        step('creating the volumes')
        volumes = [
            ('vm_disk_id', 'vm_disk_vol_id', vm_size, vm_format, SPARSE, 'HEVD', VM_DESC),
            ('metadata_image_UUID', 'metadata_volume_UUID', METADATA_SIZE, RAW, PREALLOCATED,
             'HEMD', METADATA_DESC),
            ('lockspace_image_UUID', 'lockspace_volume_UUID', LOCKSPACE_SIZE, RAW,
             PREALLOCATED, 'HESD', LOCKSPACE_DESC),
            ('conf_image_UUID', 'conf_volume_UUID', CONF_SIZE, RAW, PREALLOCATED, 'HECI',
             CONF_DESC),
        ]
        tasks = []
        for img, vol, size, fmt, alloc, disk_type, desc in volumes:
            what = 'creating the %s volume' % disk_type
            task = _call(client, what, 'Volume.create', volumeID=ids[vol], storagepoolID=sp,
                         storagedomainID=sd, imageID=ids[img], size=str(size), volFormat=fmt,
                         preallocate=alloc, diskType=disk_type, desc=desc,
                         srcImgUUID=BLANK_UUID, srcVolUUID=BLANK_UUID)
            tasks.append((what, task))
            # the SPM cannot stop while a task runs: on failure, let it end first
            undo.push('wait for task %s' % task, lambda t=task, w=what: _settle(client, t, w))
        for what, task in tasks:
            wait_task(client, task, what, progress)
        undo.steps = [s for s in undo.steps if not s[0].startswith('wait for task')]

        step('preparing the images')
        prepared = {}
        for name, img, vol in IMAGES:
            prepared[name] = _call(client, 'preparing the %s image' % name, 'Image.prepare',
                                   storagepoolID=sp, storagedomainID=sd, imageID=ids[img],
                                   volumeID=ids[vol])['path']

        step('initialising the %s lockspace (io timeout %d s)' % (LOCKSPACE_NAME, io_timeout))
        init_lockspace(prepared['lockspace'], io_timeout)
        step('zeroing the metadata volume')
        try:
            zero_volume(prepared['metadata'])
        except OSError as e:
            raise StorageError('zeroing the metadata volume %s failed (%s): check the storage'
                               % (prepared['metadata'], e.strerror or e))
        for name, img, vol in IMAGES:
            try:
                client.call('Image.teardown', storagepoolID=sp, storagedomainID=sd,
                            imageID=ids[img], volumeID=ids[vol])
            except Exception as e:
                log.warning('teardown of the %s image: %s', name, e)

        step('stopping the SPM and disconnecting the pool')
        _call(client, 'stopping the SPM', 'StoragePool.spmStop', storagepoolID=sp)
        _call(client, 'disconnecting the storage pool', 'StoragePool.disconnect',
              storagepoolID=sp, hostID=host_id, scsiKey=sp)
        undo.steps = [s for s in undo.steps if not s[0].startswith('disconnect storage pool')]
        step('monitoring storage domain %s with host id %d' % (sd, host_id))
        _call(client, 'monitoring the storage domain', 'Host.startMonitoringDomain',
              sdUUID=sd, hostID=host_id)
        wait_acquired(client, sd, progress)
    except BaseException as e:
        had_steps = bool(undo.steps)
        left = undo.run()
        if isinstance(e, StorageError):
            msg = str(e)
        elif isinstance(e, KeyboardInterrupt):
            msg = 'interrupted'
        else:
            log.exception('preparing the shared storage failed')
            msg = 'preparing the shared storage failed: %s' % e
        if left:
            msg += '; could not undo: %s (remove %s by hand)' % (
                ', '.join(left), os.path.join(storage, sd) if dtype == 'localfs' else
                'storage domain %s on %s' % (sd, storage))
        elif had_steps:
            msg += '; what was created is removed'
        if isinstance(e, KeyboardInterrupt):
            raise
        raise StorageError(msg) from e
    step('done')
    out = dict(ids)
    out.update(storage=storage, domainType=dtype, mnt_options=spec.get('mnt_options') or '',
               host_id=str(host_id), sanlock_io_timeout=str(io_timeout), spUUID=BLANK_UUID)
    return out


def connect(client, conf, wait=False, progress=None):
    """Connect this host to the hosted-engine storage and prepare the four images.

    connectStorageServer, startMonitoringDomain(sdUUID, host_id) (joins the VM
    lease lockspace; with wait=True, waits until acquired), Image.prepare of each
    image. Returns {vm, vm_lease, metadata, lockspace, conf}: the prepared paths.
    """
    for k in ('storage', 'sdUUID', 'host_id', 'connectionUUID', 'domainType'):
        if not conf.get(k):
            raise StorageError('hosted-engine.conf has no %s: deploy again or add it' % k)
    type_id = _domain_type(conf['domainType'])
    sd = conf['sdUUID']
    sp = conf.get('spUUID') or BLANK_UUID
    res = _call(client, 'connecting the storage server %s' % conf['storage'],
                'StoragePool.connectStorageServer', storagepoolID=sp, domainType=type_id,
                connectionParams=[connection_params(conf, conf['connectionUUID'])])
    status = (res or [{}])[0]
    if status.get('status') != 0:
        raise StorageError('connecting the storage server %s failed (code %s%s): check that the '
                           'storage is reachable' % (conf['storage'], status.get('status'),
                                                     ': ' + status['message']
                                                     if status.get('message') else ''))
    _call(client, 'monitoring storage domain %s' % sd, 'Host.startMonitoringDomain',
          sdUUID=sd, hostID=int(conf['host_id']))
    if wait:
        wait_acquired(client, sd, progress)
    out = {}
    for name, img, vol in IMAGES:
        if not conf.get(img) or not conf.get(vol):
            raise StorageError('hosted-engine.conf has no %s/%s: deploy again or add them'
                               % (img, vol))
        out[name] = _call(client, 'preparing the %s image' % name, 'Image.prepare',
                          storagepoolID=sp, storagedomainID=sd, imageID=conf[img],
                          volumeID=conf[vol])['path']
    out['vm_lease'] = out['vm'] + '.lease'
    return out


def _teardown_images(client, conf, sp, report):
    """Image.teardown of the four images of conf; report(text) for each failure."""
    for name, img, vol in IMAGES:
        if conf.get(img):
            try:
                client.call('Image.teardown', storagepoolID=sp, storagedomainID=conf['sdUUID'],
                            imageID=conf[img], volumeID=conf.get(vol))
            except Exception as e:
                report('teardown of the %s image: %s' % (name, e))


def disconnect(client, conf):
    """Tear the images down, stop monitoring the domain, disconnect the storage server.

    Errors of single steps are collected; StorageError lists them at the end.
    """
    sd = conf['sdUUID']
    sp = conf.get('spUUID') or BLANK_UUID
    problems = []
    _teardown_images(client, conf, sp, problems.append)
    try:
        client.call('Host.stopMonitoringDomain', sdUUID=sd)
    except Exception as e:
        problems.append('stop monitoring: %s' % e)
    _disconnect_server(client, conf, sp, problems)
    if problems:
        raise StorageError('disconnecting the hosted-engine storage: %s; stop the VM and the '
                           'HA services first, then retry' % '; '.join(problems))


def _disconnect_server(client, conf, sp, problems):
    """StoragePool.disconnectStorageServer of conf's connection; a failure is appended to
    problems."""
    try:
        res = client.call('StoragePool.disconnectStorageServer', storagepoolID=sp,
                          domainType=_domain_type(conf['domainType']),
                          connectionParams=[connection_params(conf, conf['connectionUUID'])])
        status = (res or [{}])[0]
        if status.get('status') not in (0, None):
            problems.append('disconnect: code %s %s' % (status.get('status'),
                                                        status.get('message', '')))
    except Exception as e:
        problems.append('disconnect: %s' % e)


def destroy_domain(client, conf):
    """Remove a storage domain prepare_domain created (rollback of a deploy that failed
    later): tear the images down, stop monitoring the domain, remove it (its directory with
    the volumes) and disconnect the storage server.

    Every step is tried; StorageError lists the ones that failed and what to remove by hand.
    """
    sd = conf['sdUUID']
    sp = conf.get('spUUID') or BLANK_UUID
    problems = []
    _teardown_images(client, conf, sp, lambda text: log.warning('%s', text))
    try:
        client.call('Host.stopMonitoringDomain', sdUUID=sd)
    except Exception as e:
        problems.append('stop monitoring: %s' % e)
    removed = False
    try:
        client.call('StorageDomain.format', storagedomainID=sd, autoDetach=True)
        removed = True
    except Exception as e:
        problems.append('remove storage domain %s: %s' % (sd, e))
    _disconnect_server(client, conf, BLANK_UUID, problems)
    if problems:
        where = (os.path.join(conf['storage'], sd) if conf.get('domainType') in
                 ('localfs', 'posixfs') else 'directory %s of %s' % (sd, conf['storage']))
        raise StorageError('removing the hosted-engine storage domain %s: %s; %s' % (
            sd, '; '.join(problems),
            'disconnect the storage by hand' if removed else 'remove %s by hand' % where))


# ------------------------------------------------------------ configuration volume

class ConfigVolume:
    """The configuration volume: an uncompressed tar written from offset 0, zero padded.

        cv = ConfigVolume(path)
        files = cv.read()                    # {name: str}
        cv.write(dict(files, **{'vm.conf': text}), expected_checksum=files_checksum)

    write() refuses (ConfigChanged) when the volume's checksum is not the one the
    caller read (optimistic concurrency between hosts).
    """

    def __init__(self, path):
        self.path = path

    def _raw(self):
        try:
            return read_volume(self.path)
        except OSError as e:
            raise StorageError('cannot read the configuration volume %s (%s): connect the '
                               'storage (hosted-engine --connect-storage)'
                               % (self.path, e.strerror or e))

    @staticmethod
    def _checksum(raw):
        return hashlib.sha256(raw).hexdigest()

    def checksum(self):
        """sha256 (hex) of the whole volume."""
        return self._checksum(self._raw())

    @staticmethod
    def _parse(raw, path):
        if not raw[:512].strip(b'\0'):
            return {}
        try:
            with tarfile.open(fileobj=io.BytesIO(raw), mode='r:') as tar:
                out = {}
                for m in tar.getmembers():
                    if not m.isfile():
                        continue
                    out[m.name] = tar.extractfile(m).read().decode('utf-8')
                return out
        except (tarfile.TarError, UnicodeDecodeError) as e:
            raise StorageError('the configuration volume %s is not a readable tar (%s): '
                               'write it again from a host\'s files' % (path, e))

    def read(self):
        """{file name: text} (empty for a fresh, zeroed volume)."""
        return self._parse(self._raw(), self.path)

    def read_with_checksum(self):
        raw = self._raw()
        return self._parse(raw, self.path), self._checksum(raw)

    def write(self, files, expected_checksum):
        """Write files ({name: text or bytes}) as the volume's tar; return the new checksum."""
        unknown = sorted(set(files) - set(CONF_FILES))
        if unknown:
            raise ValueError('unknown configuration files: %s (known: %s)'
                             % (', '.join(unknown), ', '.join(CONF_FILES)))
        buf = io.BytesIO()
        now = int(time.time())
        with tarfile.open(fileobj=buf, mode='w:', format=tarfile.USTAR_FORMAT) as tar:
            for name in CONF_FILES:
                if name not in files:
                    continue
                data = files[name]
                if isinstance(data, str):
                    data = data.encode('utf-8')
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = now
                info.mode = 0o644
                info.uname = info.gname = 'root'
                tar.addfile(info, io.BytesIO(data))
        data = buf.getvalue()
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError as e:
            raise StorageError('cannot open the configuration volume %s (%s): connect the '
                               'storage' % (self.path, e.strerror or e))
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            size = os.lseek(fd, 0, os.SEEK_END)
            if len(data) > size:
                raise StorageError('the configuration (%d bytes) does not fit the configuration '
                                   'volume (%d bytes): shorten it' % (len(data), size))
            current = self.checksum()
            if current != expected_checksum:
                raise ConfigChanged('the configuration volume changed since it was read '
                                    '(another host wrote it): read it again and retry')
            try:
                write_volume(self.path, data, pad_to=size)
            except OSError as e:
                raise StorageError('writing the configuration volume %s failed (%s): check '
                                   'the storage' % (self.path, e.strerror or e))
        finally:
            os.close(fd)
        return self.checksum()


# ------------------------------------------------------------ the VM disk

def image_info(path):
    """qemu-img info of an image as a dict."""
    p = subprocess.run(['qemu-img', 'info', '--output=json', path], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise StorageError('cannot read the image %s: %s' % (
            path, (p.stderr or p.stdout).strip().splitlines()[-1:] or 'qemu-img failed'))
    return json.loads(p.stdout)


def write_vm_disk(source, volume_path, volume_format='raw', progress=None):
    """Copy a disk image (the appliance, the lab guest) into the VM volume with qemu-img.

    The source's format is detected; its virtual size must fit the volume.
    """
    src = image_info(source)
    dst = image_info(volume_path)
    if src['virtual-size'] > dst['virtual-size']:
        raise StorageError('the image %s (%d bytes) is larger than the VM volume (%d bytes): '
                           'create a larger VM disk' % (source, src['virtual-size'],
                                                        dst['virtual-size']))
    if progress:
        progress('copying %s into the VM volume' % os.path.basename(source), 0.0, None)
    p = subprocess.run(['qemu-img', 'convert', '-n', '-t', 'none', '-f', src['format'],
                        '-O', volume_format, source, volume_path],
                       capture_output=True, text=True)
    if p.returncode != 0 and 'cache' in (p.stderr or ''):
        p = subprocess.run(['qemu-img', 'convert', '-n', '-f', src['format'], '-O',
                            volume_format, source, volume_path], capture_output=True, text=True)
    if p.returncode != 0:
        raise StorageError('copying %s into the VM volume %s failed: %s' % (
            source, volume_path, (p.stderr or p.stdout).strip() or 'qemu-img failed'))
    return volume_path
