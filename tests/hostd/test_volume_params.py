"""Volume.create and Volume.delete with the parameters VDSM takes beyond the base ones:
legal, sequence, bitmap, addBitmaps, initialSize; postZero, force, discard."""
import json
import os
import subprocess

import pytest

from ovirt_hosted_engine_setup.api.schema import get_schema
from ovirt_hosted_engine_setup.hostd.api_base import VdsmError
from ovirt_hosted_engine_setup.hostd.storage import StorageBackend

from .conftest import make_ctx
from .storage_helpers import (BLANK, COW, LOCALFS, POOL_TIMINGS, PREALLOCATED, RAW, SPARSE,
                              SPM_START, new_uuid, wait_acquired, wait_task)

MiB = 1 << 20


@pytest.fixture
def pool(tmp_path, sanlock_daemon):
    storage = str(tmp_path / 'storage')
    os.makedirs(storage)
    ctx = make_ctx(str(tmp_path / 'host'), sanlock_daemon.run_dir)
    b = StorageBackend(ctx)
    b.recover()
    sd, sp = new_uuid(), new_uuid()
    b.connectStorageServer(storagepoolID=BLANK, domainType=LOCALFS,
                           connectionParams=[{'id': new_uuid(), 'connection': storage}])
    b.createStorageDomain(storagedomainID=sd, domainType=LOCALFS, typeArgs=storage, name='d',
                          domainClass=1)
    b.createStoragePool(storagepoolID=sp, name='dc', masterSdUUID=sd, masterVersion=1,
                        domainList=[sd], **POOL_TIMINGS)
    b.connectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp, masterSdUUID=sd,
                         masterVersion=1, domainDict={sd: 'active'})
    wait_acquired(b, sd)
    assert wait_task(b, b.spmStart(storagepoolID=sp, **SPM_START))['taskResult'] == 'success'
    yield b, sd, sp, storage
    b.spmStop(storagepoolID=sp)
    b.disconnectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp)
    b.close()


def create(b, sd, sp, img=None, **kw):
    """Volume.create through the schema (defaults filled as the server fills them)."""
    params = dict(volumeID=new_uuid(), storagepoolID=sp, storagedomainID=sd,
                  imageID=img or new_uuid(), size=str(MiB), volFormat=COW, preallocate=SPARSE,
                  diskType='DATA', desc='v', srcImgUUID=BLANK, srcVolUUID=BLANK)
    params.update(kw)
    params = get_schema().verb('Volume.create').validate(params)
    st = wait_task(b, b.createVolume(**params))
    return params, st


def info(b, sd, sp, p):
    return b.getVolumeInfo(volumeID=p['volumeID'], storagepoolID=sp, storagedomainID=sd,
                           imageID=p['imageID'])


def bitmaps(path):
    out = json.loads(subprocess.check_output(['qemu-img', 'info', '--output=json', '-U', path]))
    return [x['name'] for x in (out.get('format-specific', {}).get('data', {})
                                .get('bitmaps') or [])]


def test_create_parameters(pool):
    b, sd, sp, storage = pool
    p, st = create(b, sd, sp, legal=False, sequence=7)
    assert st['taskResult'] == 'success', st
    assert info(b, sd, sp, p)['legality'] == 'ILLEGAL'
    meta = os.path.join(storage, sd, 'images', p['imageID'], p['volumeID'] + '.meta')
    with open(meta) as f:
        assert 'SEQ=7' in f.read().splitlines()

    bm = new_uuid()
    base, st = create(b, sd, sp, bitmap=bm)
    assert st['taskResult'] == 'success', st
    base_path = os.path.join(storage, sd, 'images', base['imageID'], base['volumeID'])
    assert bitmaps(base_path) == [bm]
    snap, st = create(b, sd, sp, img=base['imageID'], srcImgUUID=base['imageID'],
                      srcVolUUID=base['volumeID'], addBitmaps=True)
    assert st['taskResult'] == 'success', st
    assert bitmaps(os.path.join(storage, sd, 'images', base['imageID'],
                                snap['volumeID'])) == [bm]
    assert info(b, sd, sp, snap)['parent'] == base['volumeID']

    pre, st = create(b, sd, sp, volFormat=RAW, preallocate=PREALLOCATED, size=str(8 * MiB),
                     initialSize=str(2 * MiB))
    assert st['taskResult'] == 'success', st
    path = os.path.join(storage, sd, 'images', pre['imageID'], pre['volumeID'])
    assert os.path.getsize(path) == 8 * MiB
    assert 2 * MiB <= os.stat(path).st_blocks * 512 < 8 * MiB

    for bad in (dict(volFormat=RAW, bitmap=new_uuid()), dict(addBitmaps=True),
                dict(initialSize=str(MiB)), dict(sequence=-1)):
        params = dict(volumeID=new_uuid(), storagepoolID=sp, storagedomainID=sd,
                      imageID=new_uuid(), size=str(MiB), volFormat=COW, preallocate=SPARSE,
                      diskType='DATA', desc='v', srcImgUUID=BLANK, srcVolUUID=BLANK)
        params.update(bad)
        with pytest.raises(VdsmError) as e:
            b.createVolume(**get_schema().verb('Volume.create').validate(params))
        assert e.value.code == 1000, bad


def test_delete_parameters(pool):
    b, sd, sp, storage = pool
    base, _ = create(b, sd, sp)
    snap, _ = create(b, sd, sp, img=base['imageID'], srcImgUUID=base['imageID'],
                     srcVolUUID=base['volumeID'])
    args = dict(storagepoolID=sp, storagedomainID=sd, imageID=base['imageID'])
    with pytest.raises(VdsmError) as e:             # it has a child: force needed
        b.deleteVolume(volumeID=base['volumeID'], postZero=False, force=False, **args)
    assert 'force' in e.value.message
    path = os.path.join(storage, sd, 'images', base['imageID'], snap['volumeID'])
    assert wait_task(b, b.deleteVolume(volumeID=snap['volumeID'], postZero=True, force=False,
                                       discard=True, **args))['taskResult'] == 'success'
    assert not os.path.exists(path)
    assert info(b, sd, sp, base)['voltype'] == 'LEAF'        # its last child is gone
    assert wait_task(b, b.deleteVolume(volumeID=base['volumeID'], postZero=False, force=False,
                                       **args))['taskResult'] == 'success'
    assert b.getVolumes(storagedomainID=sd, storagepoolID=sp, imageID=base['imageID']) == []
