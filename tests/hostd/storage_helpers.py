"""Helpers of the storage backend tests."""
import time
import uuid

from ovirt_hosted_engine_setup.api.schema import constant, enum

LOCALFS, POSIXFS, NFS = (enum('domainType')[n] for n in ('LOCALFS', 'POSIXFS', 'NFS'))
COW, RAW = enum('volFormat')['COW'], enum('volFormat')['RAW']
PREALLOCATED, SPARSE = enum('preallocate')['PREALLOCATED'], enum('preallocate')['SPARSE']
BLANK = constant('blankUUID')
# what StoragePool.create and StoragePool.spmStart need, as the deploy sends it
POOL_TIMINGS = constant('leaseTimings')
SPM_START = constant('spmStartNoPrevious')


def new_uuid():
    return str(uuid.uuid4())


def wait_task(backend, task_id, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        st = backend.getTaskStatus(taskID=task_id)
        if st['taskState'] == 'finished':
            return st
        if time.monotonic() > deadline:
            raise AssertionError('task %s not finished after %d s: %r' % (task_id, timeout, st))
        time.sleep(0.2)


def wait_acquired(backend, sd_uuid, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        stats = backend.getStorageRepoStats(domains=[sd_uuid])
        if stats.get(sd_uuid, {}).get('acquired'):
            return stats[sd_uuid]
        if time.monotonic() > deadline:
            raise AssertionError('host id not acquired on %s after %d s: %r'
                                 % (sd_uuid, timeout, stats))
        time.sleep(0.2)
