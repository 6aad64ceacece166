"""Connecting a host to the hosted-engine storage domain, provisioning it, removing it.

Created and used only through the host agent API (VDSM or ovirt-hosted-engine-hostd):

- prepare_domain(client, spec, progress) creates the domain, its pool and its four images
  (the otopi-era sequence), writes the lockspace, zeroes the metadata area and returns the
  hosted-engine.conf values; on failure it undoes what it created;
- connect(client, conf) connects a host and prepares the four images; disconnect() undoes
  that; destroy_domain() removes a domain prepare_domain() created.

Every error is a StorageError with one line naming the step and the fix.
``progress(what, elapsed, limit)`` is called while waiting (about once a second).
"""
import logging
import os
import time
import uuid as uuidlib

from ..api.schema import constant
from . import StorageError
from .layout import (BLANK_UUID, CONF_DESC, CONF_SIZE, COW, DATA_CLASS, DEFAULT_IO_TIMEOUT,
                     DEFAULT_SD_NAME, DEFAULT_SP_NAME, DOMAIN_VERSION, IMAGES, LOCKSPACE_DESC,
                     LOCKSPACE_NAME, LOCKSPACE_SIZE, MAX_HOSTS, METADATA_DESC, METADATA_SIZE,
                     PREALLOCATED, RAW, SPARSE, VM_DESC, MiB, connection_params, domain_type)
from .lockspace import init_lockspace
from .volumes import zero_volume

log = logging.getLogger(__name__)

WAIT_ACQUIRED = 300.0
WAIT_TASK = 600.0


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
                    storageType=domain_type(dtype), remotePath=spec_or_conf['storage'])
    for sd in domains:
        try:
            info = client.call('StorageDomain.getInfo', storagedomainID=sd)
        except Exception as e:
            log.warning('storage domain %s: %s', sd, e)
            continue
        if info.get('name') == name:
            return sd
    return None


def find_conf_volume(client, sd_uuid, sp_uuid=BLANK_UUID):
    """(image, volume) UUIDs of the configuration volume of a hosted-engine storage domain
    (the volume described as oVirt describes it, CONF_DESC), or None. The storage must be
    connected."""
    images = _call(client, 'listing the images of storage domain %s' % sd_uuid,
                   'StorageDomain.getImages', storagedomainID=sd_uuid) or ()
    for img in images:
        volumes = _call(client, 'listing the volumes of image %s' % img,
                        'StorageDomain.getVolumes', storagedomainID=sd_uuid,
                        storagepoolID=sp_uuid, imageID=img) or ()
        for vol in volumes:
            info = _call(client, 'reading volume %s' % vol, 'Volume.getInfo',
                         volumeID=vol, storagepoolID=sp_uuid, storagedomainID=sd_uuid,
                         imageID=img) or {}
            if info.get('description') == CONF_DESC:
                return img, vol
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
    type_id = domain_type(dtype)
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


def change_host_id(client, sd_uuid, host_id, progress=None):
    """Leave the domain's lockspace and join it again with another host id (nothing of
    this host may hold a lease in it: the engine VM is down)."""
    _call(client, 'leaving the lockspace of storage domain %s' % sd_uuid,
          'Host.stopMonitoringDomain', sdUUID=sd_uuid)
    _call(client, 'monitoring storage domain %s with host id %s' % (sd_uuid, host_id),
          'Host.startMonitoringDomain', sdUUID=sd_uuid, hostID=int(host_id))
    wait_acquired(client, sd_uuid, progress)


def connect(client, conf, wait=False, progress=None):
    """Connect this host to the hosted-engine storage and prepare the four images.

    connectStorageServer, startMonitoringDomain(sdUUID, host_id) (joins the VM
    lease lockspace; with wait=True, waits until acquired), Image.prepare of each
    image. Returns {vm, vm_lease, metadata, lockspace, conf}: the prepared paths.
    """
    for k in ('storage', 'sdUUID', 'host_id', 'connectionUUID', 'domainType'):
        if not conf.get(k):
            raise StorageError('hosted-engine.conf has no %s: deploy again or add it' % k)
    type_id = domain_type(conf['domainType'])
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
                          domainType=domain_type(conf['domainType']),
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
