"""Storage backend error codes and restart recovery, against a real sanlock daemon."""
import os
import subprocess

import pytest

from ovirt_hosted_engine_setup.he_storage import sanlock_util
from ovirt_hosted_engine_setup.hostd.api_base import VdsmError
from ovirt_hosted_engine_setup.hostd.storage import StorageBackend
from ovirt_hosted_engine_setup.hostd.storage.fileutil import is_mounted

from .conftest import make_ctx
from .storage_helpers import (BLANK, LOCALFS, POOL_TIMINGS, POSIXFS, RAW, SPARSE, SPM_START,
                              new_uuid, wait_acquired, wait_task)


@pytest.fixture
def env(tmp_path, sanlock_daemon):
    storage = tmp_path / 'storage'
    storage.mkdir()
    ctx = make_ctx(str(tmp_path / 'host'), sanlock_daemon.run_dir)
    backends = [StorageBackend(ctx)]
    backends[0].recover()
    yield ctx, backends, str(storage)
    b = backends[-1]
    for sd in list(b.monitored):
        b.stopMonitoringDomain(sdUUID=sd)
    for sp in list(b.pools):
        b.disconnectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp)
    for x in backends:
        x.close()


def code_of(fn, **kw):
    with pytest.raises(VdsmError) as e:
        fn(**kw)
    return e.value.code, e.value.message


def test_connection_errors_451(env, tmp_path):
    ctx, (b,), storage = env
    afile = tmp_path / 'afile'
    afile.write_text('x')
    ro = tmp_path / 'ro'
    ro.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', str(ro)], check=True)
    try:
        res = b.connectStorageServer(storagepoolID=BLANK, domainType=LOCALFS, connectionParams=[
            {'id': 'a', 'connection': str(tmp_path / 'missing')},
            {'id': 'b', 'connection': str(afile)},
            {'id': 'c', 'connection': str(ro)},
            {'id': 'd', 'connection': storage}])
    finally:
        subprocess.run(['umount', str(ro)], check=True)
    by_id = {r['id']: r for r in res}
    assert by_id['a']['status'] == 451 and 'does not exist' in by_id['a']['message']
    assert by_id['b']['status'] == 451 and 'not a directory' in by_id['b']['message']
    assert by_id['c']['status'] == 451 and 'not writable' in by_id['c']['message']
    assert by_id['d']['status'] == 0
    # Domain creation on storage that is not connected.
    code, msg = code_of(b.createStorageDomain, storagedomainID=new_uuid(), domainType=LOCALFS,
                        typeArgs=str(tmp_path / 'other'), name='x', domainClass=1)
    assert code == 451 and 'connectStorageServer' in msg


def test_posixfs_local_directory_is_bind_mounted(env):
    ctx, (b,), storage = env
    res = b.connectStorageServer(storagepoolID=BLANK, domainType=POSIXFS, connectionParams=[
        {'id': 'p', 'connection': storage, 'vfs_type': ''}])
    assert res == [{'id': 'p', 'status': 0}]
    mnt = os.path.join(ctx.data_center_dir, 'mnt', storage.replace('_', '__').replace('/', '_'))
    try:
        assert is_mounted(mnt)
        sd = new_uuid()
        b.createStorageDomain(storagedomainID=sd, domainType=POSIXFS, typeArgs=storage,
                              name='posix', domainClass=1)
        assert os.path.isfile(os.path.join(storage, sd, 'dom_md', 'metadata'))
        assert b.getStorageDomainInfo(storagedomainID=sd)['type'] == 'POSIXFS'
    finally:
        res = b.disconnectStorageServer(storagepoolID=BLANK, domainType=POSIXFS,
                                        connectionParams=[{'id': 'p', 'connection': storage}])
    assert res == [{'id': 'p', 'status': 0}]
    assert not is_mounted(mnt)


def test_error_codes(env):
    ctx, (b,), storage = env
    sd, sp = new_uuid(), new_uuid()
    b.connectStorageServer(storagepoolID=BLANK, domainType=LOCALFS,
                           connectionParams=[{'id': 'x', 'connection': storage}])
    assert code_of(b.getStorageDomainInfo, storagedomainID=new_uuid())[0] == 358
    assert code_of(b.startMonitoringDomain, sdUUID=new_uuid(), hostID=1)[0] == 358
    b.createStorageDomain(storagedomainID=sd, domainType=LOCALFS, typeArgs=storage, name='d',
                          domainClass=1)
    assert code_of(b.createStorageDomain, storagedomainID=sd, domainType=LOCALFS,
                   typeArgs=storage, name='d', domainClass=1)[0] == 365
    assert code_of(b.getSpmStatus, storagepoolID=sp)[0] == 309
    b.createStoragePool(storagepoolID=sp, name='dc', masterSdUUID=sd, masterVersion=1,
                        domainList=[sd], **POOL_TIMINGS)
    b.connectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp, masterSdUUID=sd,
                         masterVersion=1, domainDict={sd: 'active'})
    assert code_of(b.createStoragePool, storagepoolID=sp, name='dc', masterSdUUID=sd,
                   masterVersion=1, domainList=[sd], **POOL_TIMINGS)[0] == 316
    img, vol = new_uuid(), new_uuid()
    create = dict(volumeID=vol, storagepoolID=sp, storagedomainID=sd, imageID=img,
                  size='1048576', volFormat=RAW, preallocate=SPARSE, diskType='HEVD', desc='v',
                  srcImgUUID=BLANK, srcVolUUID=BLANK)
    assert code_of(b.createVolume, **create)[0] == 654          # not SPM yet
    wait_acquired(b, sd)
    t = b.spmStart(storagepoolID=sp, **SPM_START)
    assert wait_task(b, t)['taskResult'] == 'success'
    t = b.createVolume(**create)
    assert code_of(b.createVolume, **create)[0] == 212          # exists while being created
    assert wait_task(b, t)['taskResult'] == 'success'
    assert code_of(b.createVolume, **create)[0] == 212
    assert code_of(b.getVolumeInfo, volumeID=new_uuid(), storagepoolID=sp, storagedomainID=sd,
                   imageID=img)[0] == 201
    assert code_of(b.getTaskStatus, taskID=new_uuid())[0] == 401
    b.clearTask(taskID=t)
    assert code_of(b.getTaskStatus, taskID=t)[0] == 401
    # A failing task reports its error through Task.getStatus.
    t = b.createVolume(volumeID=new_uuid(), storagepoolID=sp, storagedomainID=sd,
                       imageID=new_uuid(), size=str(1 << 60), volFormat=RAW, preallocate=1,
                       diskType='HEVD', desc='too big', srcImgUUID=BLANK,
                       srcVolUUID=BLANK)
    st = wait_task(b, t)
    assert st['taskResult'] == 'cleanFailure' and st['code'] == 205 and st['message']
    b.spmStop(storagepoolID=sp)
    assert code_of(b.activateStorageDomain, storagedomainID=sd, storagepoolID=sp)[0] == 654


def test_restart_recovers_connections_pools_monitoring_and_tasks(env):
    ctx, backends, storage = env
    b = backends[0]
    sd, sp = new_uuid(), new_uuid()
    b.connectStorageServer(storagepoolID=BLANK, domainType=LOCALFS,
                           connectionParams=[{'id': 'x', 'connection': storage}])
    b.createStorageDomain(storagedomainID=sd, domainType=LOCALFS, typeArgs=storage, name='d',
                          domainClass=1)
    b.createStoragePool(storagepoolID=sp, name='dc', masterSdUUID=sd, masterVersion=1,
                        domainList=[sd], **POOL_TIMINGS)
    b.connectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp, masterSdUUID=sd,
                         masterVersion=1, domainDict={sd: 'active'})
    b.startMonitoringDomain(sdUUID=sd, hostID=1)
    wait_acquired(b, sd)
    t = b.spmStart(storagepoolID=sp, **SPM_START)
    assert wait_task(b, t)['taskResult'] == 'success'
    b.spmStop(storagepoolID=sp)

    # The agent stops (close() leaves lockspaces joined) and a new one starts.
    b.close()
    os.unlink(os.path.join(ctx.data_center_dir, 'mnt',
                           storage.replace('_', '__').replace('/', '_')))
    b2 = StorageBackend(ctx)
    backends.append(b2)
    b2.recover()
    assert b2.getConnectedStoragePools() == [sp]
    assert sd in b2.getStorageDomains()                      # connection restored
    stats = wait_acquired(b2, sd)                            # lockspace re-joined (EEXIST ok)
    assert stats['valid'] is True
    st = b2.getTaskStatus(taskID=t)                          # finished result survives
    assert st['taskState'] == 'finished' and st['taskResult'] == 'success'
    assert b2.getSpmStatus(storagepoolID=sp)['spmStatus'] == 'Free'
    assert [ls for ls in sanlock_util.get_lockspaces() if ls['lockspace'] == sd.encode()]
