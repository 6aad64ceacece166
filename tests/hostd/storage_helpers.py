"""Helpers of the storage backend tests."""
import time
import uuid

LOCALFS, POSIXFS, NFS = 4, 6, 1
COW, RAW = 4, 5
PREALLOCATED, SPARSE = 1, 2
BLANK = '00000000-0000-0000-0000-000000000000'


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
