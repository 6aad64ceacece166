"""Thin helpers over python3-sanlock for the host agent.

The sanlock client library reads SANLOCK_RUN_DIR (where the daemon's socket
is) once per process, at its first request. A host agent process therefore
talks to exactly one sanlock daemon: use_run_dir() must be called before the
first request and refuses a second, different directory.

Names (lockspaces, resources) are given as str and sent as bytes; paths too.
"""
import errno
import os
import threading
import time

import sanlock

from . import delta_leases, layout

SanlockException = sanlock.SanlockException

# sanlock's own error codes, as found in SanlockException.errno.
SANLK_ACQUIRE_IDLIVE = -243      # the lease is held by a live host
SANLK_ACQUIRE_OWNED = -244
SANLK_ACQUIRE_OTHER = -245

ALIGNMENT = 1048576
SECTOR = 512
DEFAULT_IO_TIMEOUT = layout.DEFAULT_IO_TIMEOUT

_lock = threading.Lock()
_run_dir = None
_reg_fd = None


def use_run_dir(run_dir):
    """Point this process's sanlock client at the daemon in run_dir (None: default)."""
    global _run_dir
    with _lock:
        if run_dir is None:
            return
        if _run_dir is not None and _run_dir != run_dir:
            raise RuntimeError('this process already talks to the sanlock daemon in %s; '
                               'one host agent process serves one sanlock daemon' % _run_dir)
        _run_dir = run_dir
        os.environ['SANLOCK_RUN_DIR'] = run_dir


def _b(value):
    return value if isinstance(value, bytes) else str(value).encode('utf-8')


def errno_of(exc):
    """The error number of a SanlockException (positive errno or sanlock's negative code)."""
    if isinstance(exc, SanlockException):
        return exc.errno
    return getattr(exc, 'errno', None)


def describe(exc):
    """One line for a SanlockException."""
    code = errno_of(exc)
    if code == SANLK_ACQUIRE_IDLIVE:
        return 'the lease is held by another live host (sanlock error -243)'
    if code == errno.ECONNREFUSED or code == errno.ENOENT:
        return 'the sanlock daemon is not running (%s)' % (exc,)
    return 'sanlock: %s' % (exc,)


def write_lockspace(name, path, iotimeout=0, max_hosts=0):
    sanlock.write_lockspace(_b(name), _b(path), offset=0, max_hosts=max_hosts,
                            iotimeout=iotimeout, align=ALIGNMENT, sector=SECTOR)


def write_resource(lockspace, resource, path, offset=0):
    sanlock.write_resource(_b(lockspace), _b(resource), [(_b(path), offset)],
                           align=ALIGNMENT, sector=SECTOR)


def read_resource_owners(lockspace, resource, path, offset=0):
    return sanlock.read_resource_owners(_b(lockspace), _b(resource), [(_b(path), offset)],
                                        align=ALIGNMENT, sector=SECTOR)


def add_lockspace(name, host_id, path, iotimeout=0, wait=False):
    """Join lockspace name with host_id; True if started or already joined (EEXIST)."""
    try:
        sanlock.add_lockspace(_b(name), int(host_id), _b(path), offset=0,
                              iotimeout=iotimeout, wait=wait)
    except SanlockException as e:
        if e.errno == errno.EEXIST:
            return True
        raise
    return True


def inq_lockspace(name, host_id, path):
    """True: host id held; False: not held; None: being acquired or released."""
    return sanlock.inq_lockspace(_b(name), int(host_id), _b(path), offset=0)


def rem_lockspace(name, host_id, path, wait=True):
    """Leave a lockspace unless a process still holds a resource in it.

    Returns True if left (or not joined), False if busy (a VM holds a lease:
    sanlock would otherwise kill it).
    """
    try:
        sanlock.rem_lockspace(_b(name), int(host_id), _b(path), offset=0, wait=wait,
                              unused=True)
    except SanlockException as e:
        if e.errno == errno.ENOENT:
            return True
        if e.errno == errno.EBUSY:
            return False
        raise
    return True


def get_lockspaces():
    return sanlock.get_lockspaces()


def _registration():
    global _reg_fd
    with _lock:
        if _reg_fd is None:
            _reg_fd = sanlock.register()
        return _reg_fd


def acquire(lockspace, resource, path, offset=0):
    """Acquire a resource lease for this process (released when it exits)."""
    sanlock.acquire(_b(lockspace), _b(resource), [(_b(path), offset)], slkfd=_registration())


def release(lockspace, resource, path, offset=0):
    sanlock.release(_b(lockspace), _b(resource), [(_b(path), offset)], slkfd=_registration())


def read_resource(path, offset=0):
    return sanlock.read_resource(_b(path), offset=offset, align=ALIGNMENT, sector=SECTOR)


def lockspace_timestamps(path, name=None):
    """{host id: delta_leases.DeltaLease} of the delta leases with a non-zero timestamp in a
    lockspace file (delta_leases.read_delta_leases: direct I/O, no daemon needed, the
    lockspace need not be joined). A host that left the lockspace wrote timestamp 0 there; a
    host that holds its host id renews its timestamp every 2 x its I/O timeout. Raises
    delta_leases.LockspaceError (an OSError) when the file holds no readable lockspace."""
    return {h: lease for h, lease in delta_leases.read_delta_leases(path, name).items()
            if lease.held}


def live_host_ids(name, path, window=None, clock=time.monotonic, sleep=time.sleep):
    """Host ids with a live lease in lockspace name (file path): the delta leases
    whose timestamp the holder renews. Reads the leases, and if some carry a
    timestamp, reads them again for up to ``window`` seconds (default 3 x the
    holders' I/O timeout, the renewal interval plus a margin): a host id whose
    timestamp changes is live; one that stays the same belongs to a host that
    stopped renewing (gone, or left without clearing it). Raises
    delta_leases.LockspaceError (an OSError) when the lockspace cannot be read."""
    first = lockspace_timestamps(path, name)
    if not first:
        return []
    if window is None:
        window = 3 * max([lease.io_timeout for lease in first.values() if lease.io_timeout]
                         or [DEFAULT_IO_TIMEOUT])
    live = set()
    deadline = clock() + window
    while True:
        now = lockspace_timestamps(path, name)
        for h, lease in now.items():
            if h in first and (lease.timestamp, lease.generation) != (
                    first[h].timestamp, first[h].generation):
                live.add(h)
        pending = [h for h in first if h not in live and h in now]
        if not pending or clock() >= deadline:
            return sorted(live)
        sleep(min(0.5, max(0.0, deadline - clock())))
