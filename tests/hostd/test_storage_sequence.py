"""The otopi-era hosted-engine storage sequence, end to end against the storage backend,
with a real sanlock daemon, qemu-img and a local directory as storage."""
import json
import os
import subprocess

import pytest

from ovirt_hosted_engine_setup.he_storage import sanlock_util
from ovirt_hosted_engine_setup.hostd.storage import StorageBackend
from ovirt_hosted_engine_setup.hostd.storage import metadata as md

from .conftest import make_ctx
from .storage_helpers import (BLANK, COW, LOCALFS, POOL_TIMINGS, PREALLOCATED, RAW, SPARSE,
                              SPM_START, new_uuid, wait_acquired, wait_task)


@pytest.fixture
def env(tmp_path, sanlock_daemon):
    storage = tmp_path / 'storage'
    storage.mkdir()
    ctx = make_ctx(str(tmp_path / 'host'), sanlock_daemon.run_dir)
    backend = StorageBackend(ctx)
    backend.recover()
    yield ctx, backend, str(storage)
    for sd in list(backend.monitored):
        backend.stopMonitoringDomain(sdUUID=sd)
    for sp in list(backend.pools):
        backend.disconnectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp)
    backend.close()


def test_otopi_storage_sequence(env):
    ctx, b, storage = env
    sd, sp, conn_id = new_uuid(), new_uuid(), new_uuid()
    img, vol_raw, vol_cow, vol_pre = new_uuid(), new_uuid(), new_uuid(), new_uuid()

    res = b.connectStorageServer(storagepoolID=BLANK, domainType=LOCALFS,
                                 connectionParams=[{'id': conn_id, 'connection': storage}])
    assert res == [{'id': conn_id, 'status': 0}]
    mnt = os.path.join(ctx.data_center_dir, 'mnt', storage.replace('_', '__').replace('/', '_'))
    assert os.path.islink(mnt) and os.readlink(mnt) == storage

    assert b.createStorageDomain(storagedomainID=sd, domainType=LOCALFS, typeArgs=storage,
                                 name='hosted_storage', domainClass=1, version=5) is True
    info = b.getStorageDomainInfo(storagedomainID=sd)
    assert info['uuid'] == sd and info['type'] == 'LOCALFS' and info['class'] == 'Data'
    assert info['role'] == 'Regular' and info['remotePath'] == storage
    assert sd in b.getStorageDomains()

    assert b.createStoragePool(storagepoolID=sp, name='hosted_datacenter', masterSdUUID=sd,
                               masterVersion=1, domainList=[sd], **POOL_TIMINGS) is True
    assert b.getStorageDomainInfo(storagedomainID=sd)['role'] == 'Master'
    assert b.connectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp, masterSdUUID=sd,
                                masterVersion=1, domainDict={sd: 'active'}) is True
    assert b.getConnectedStoragePools() == [sp]
    pool_dir = os.path.join(ctx.data_center_dir, sp)
    assert os.path.realpath(os.path.join(pool_dir, sd)) == os.path.join(storage, sd)
    assert os.path.realpath(os.path.join(pool_dir, 'mastersd')) == os.path.join(storage, sd)

    assert b.startMonitoringDomain(sdUUID=sd, hostID=1) is True
    stats = wait_acquired(b, sd)
    assert stats['valid'] is True and stats['code'] == 0 and stats['version'] == 5
    assert float(stats['delay']) >= 0
    held = [ls for ls in sanlock_util.get_lockspaces() if ls['lockspace'] == sd.encode()]
    assert held and held[0]['host_id'] == 1
    assert b.host_stats()['storageDomains'][sd]['acquired'] is True

    task = b.spmStart(storagepoolID=sp, maxHostID=250, domVersion=5, **SPM_START)
    st = wait_task(b, task)
    assert st['taskResult'] == 'success', st
    assert b.clearTask(taskID=task) is True
    spm = b.getSpmStatus(storagepoolID=sp)
    assert spm['spmStatus'] == 'SPM' and spm['spmId'] == 1

    assert b.activateStorageDomain(storagedomainID=sd, storagepoolID=sp) is True
    assert b.getStoragePoolInfo(storagepoolID=sp)['dominfo'][sd]['status'] == 'Active'

    size = 64 * 1024 * 1024
    tasks = [
        b.createVolume(volumeID=vol_raw, storagepoolID=sp, storagedomainID=sd, imageID=img,
                       size=str(size), volFormat=RAW, preallocate=SPARSE, diskType='HEVD',
                       desc='hosted-engine', srcImgUUID=BLANK, srcVolUUID=BLANK),
        b.createVolume(volumeID=vol_cow, storagepoolID=sp, storagedomainID=sd,
                       imageID=new_uuid(), size=str(size), volFormat=COW, preallocate=SPARSE,
                       diskType='HEVD', desc='qcow2 disk', srcImgUUID=BLANK, srcVolUUID=BLANK),
        b.createVolume(volumeID=vol_pre, storagepoolID=sp, storagedomainID=sd,
                       imageID=new_uuid(), size=str(1024 * 1024), volFormat=RAW,
                       preallocate=PREALLOCATED, diskType='HESD',
                       desc='hosted-engine.lockspace', srcImgUUID=BLANK, srcVolUUID=BLANK),
    ]
    assert set(b.getAllTasksStatuses()) >= set(tasks)
    for t in tasks:
        st = wait_task(b, t)
        assert st['taskResult'] == 'success' and st['code'] == 0, st
        b.clearTask(taskID=t)

    vol_dir = os.path.join(storage, sd, 'images', img)
    path = os.path.join(vol_dir, vol_raw)
    out = json.loads(subprocess.check_output(['qemu-img', 'info', '--output=json', path]))
    assert out['format'] == 'raw' and out['virtual-size'] == size
    assert os.stat(path).st_blocks * 512 < size           # sparse
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o660)
    assert oct(os.stat(vol_dir).st_mode & 0o777) == oct(0o775)
    cow_info = b.getVolumeInfo(volumeID=vol_cow, storagepoolID=sp, storagedomainID=sd,
                               imageID=b.getVolumeInfo(volumeID=vol_cow, storagepoolID=sp,
                                                       storagedomainID=sd,
                                                       imageID=_image_of(b, sd, vol_cow))['image'])
    assert cow_info['format'] == 'COW' and cow_info['capacity'] == str(size)
    cow_path = os.path.join(storage, sd, 'images', cow_info['image'], vol_cow)
    out = json.loads(subprocess.check_output(['qemu-img', 'info', '--output=json', cow_path]))
    assert out['format'] == 'qcow2' and out['virtual-size'] == size
    pre_img = _image_of(b, sd, vol_pre)
    pre = os.path.join(storage, sd, 'images', pre_img, vol_pre)
    assert os.stat(pre).st_blocks * 512 >= 1024 * 1024   # fallocated

    # .meta: sorted KEY=VALUE lines then EOF, <= 512 bytes.
    with open(path + '.meta', 'rb') as f:
        raw = f.read()
    assert len(raw) <= 512
    lines = raw.decode().splitlines()
    assert lines[-1] == 'EOF' and lines[:-1] == sorted(lines[:-1])
    meta = dict(line.split('=', 1) for line in lines[:-1])
    assert meta['FORMAT'] == 'RAW' and meta['TYPE'] == 'SPARSE' and meta['VOLTYPE'] == 'LEAF'
    assert meta['CAP'] == str(size) and meta['LEGALITY'] == 'LEGAL'
    assert meta['DOMAIN'] == sd and meta['IMAGE'] == img and meta['PUUID'] == BLANK
    assert meta['DISKTYPE'] == 'HEVD' and meta['DESCRIPTION'] == 'hosted-engine'
    # .lease: a sanlock resource named volUUID in lockspace sdUUID at offset 0.
    res = sanlock_util.read_resource(path + '.lease', 0)
    assert res['lockspace'] == sd.encode() and res['resource'] == vol_raw.encode()

    size_info = b.getVolumeSize(volumeID=vol_raw, storagepoolID=sp, storagedomainID=sd,
                                imageID=img)
    assert size_info['apparentsize'] == str(size)
    assert b.getVolumes(storagedomainID=sd, storagepoolID=sp, imageID=img) == [vol_raw]
    assert img in b.getImages(storagedomainID=sd)

    prep = b.prepareImage(storagepoolID=sp, storagedomainID=sd, imageID=img, volumeID=vol_raw)
    assert prep['path'] == os.path.join(ctx.data_center_dir, sp, sd, 'images', img, vol_raw)
    assert os.path.realpath(prep['path']) == path
    assert b.teardownImage(storagepoolID=sp, storagedomainID=sd, imageID=img) is True

    assert b.spmStop(storagepoolID=sp) is True
    assert b.getSpmStatus(storagepoolID=sp)['spmStatus'] == 'Free'
    assert b.disconnectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp) is True
    assert b.getConnectedStoragePools() == []
    assert not os.path.exists(pool_dir)

    # Monitoring again, as the HA services do, and Image.prepare without a pool.
    assert b.startMonitoringDomain(sdUUID=sd, hostID=1) is True
    wait_acquired(b, sd)
    prep = b.prepareImage(storagepoolID=BLANK, storagedomainID=sd, imageID=img,
                          volumeID=vol_raw)
    assert prep['path'] == os.path.join(ctx.run_dir, 'storage', sd, img, vol_raw)
    assert os.path.realpath(prep['path']) == path
    assert b.teardownImage(storagepoolID=BLANK, storagedomainID=sd, imageID=img) is True
    assert b.stopMonitoringDomain(sdUUID=sd) is True
    assert not [ls for ls in sanlock_util.get_lockspaces() if ls['lockspace'] == sd.encode()]


def _image_of(backend, sd, vol):
    for img in backend.getImages(storagedomainID=sd):
        if vol in backend.getVolumes(storagedomainID=sd, storagepoolID='', imageID=img):
            return img
    raise AssertionError('volume %s not found' % vol)


def test_domain_layout_and_checksum(env):
    ctx, b, storage = env
    sd = new_uuid()
    b.connectStorageServer(storagepoolID=BLANK, domainType=LOCALFS,
                           connectionParams=[{'id': new_uuid(), 'connection': storage}])
    b.createStorageDomain(storagedomainID=sd, domainType=LOCALFS, typeArgs=storage,
                          name='hosted_storage', domainClass=1, version=5)
    dom = os.path.join(storage, sd)
    assert sorted(os.listdir(os.path.join(dom, 'dom_md'))) == [
        'ids', 'inbox', 'leases', 'metadata', 'outbox', 'xleases']
    assert os.path.isdir(os.path.join(dom, 'images'))
    with open(os.path.join(dom, 'dom_md', 'metadata')) as f:
        lines = f.read().splitlines()
    assert lines == sorted(lines)
    fields = dict(line.split('=', 1) for line in lines)
    assert fields['SDUUID'] == sd and fields['TYPE'] == 'LOCALFS' and fields['CLASS'] == 'Data'
    assert fields['VERSION'] == '5' and fields['ALIGNMENT'] == '1048576'
    assert fields['BLOCK_SIZE'] == '512' and fields['IOOPTIMEOUTSEC'] == '10'
    assert fields['LEASERETRIES'] == '3' and fields['LEASETIMESEC'] == '60'
    assert fields['LOCKPOLICY'] == '' and fields['LOCKRENEWALINTERVALSEC'] == '5'
    assert fields['ROLE'] == 'Regular' and fields['REMOTE_PATH'] == storage
    assert fields['DESCRIPTION'] == 'hosted_storage' and fields['POOL_UUID'] == ''
    import hashlib
    h = hashlib.sha1(''.join(line for line in lines
                             if not line.startswith('_SHA_CKSUM=')).encode()).hexdigest()
    assert lines[-1] == '_SHA_CKSUM=' + h
    # ids is a sanlock lockspace named by the domain.
    ls = sanlock_util.sanlock.read_lockspace(os.path.join(dom, 'dom_md', 'ids').encode())
    assert ls['lockspace'] == sd.encode()
    assert b.validateStorageDomain(storagedomainID=sd) is True

    # Corrupt the metadata: 752 everywhere it is read, and the monitor reports it.
    md_path = os.path.join(dom, 'dom_md', 'metadata')
    with open(md_path) as f:
        text = f.read()
    with open(md_path, 'w') as f:
        f.write(text.replace('DESCRIPTION=hosted_storage', 'DESCRIPTION=tampered'))
    for call in (lambda: b.validateStorageDomain(storagedomainID=sd),
                 lambda: b.getStorageDomainInfo(storagedomainID=sd)):
        with pytest.raises(md.VdsmError) as e:
            call()
        assert e.value.code == 752
    b.startMonitoringDomain(sdUUID=sd, hostID=1)
    b.monitors[sd].wait_checked(10)
    stats = b.getStorageRepoStats(domains=[sd])[sd]
    assert stats['valid'] is False and stats['code'] == 752
