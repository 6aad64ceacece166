"""The metadata area on shared storage, read and written with direct I/O.

The area is the metadata volume: slot 0 is the global block, slot N (offset
N * 4096) belongs to host id N. It is bounded to what deploy initialised:
``max_hosts = min(250, size // 4096 - 1)``; bytes beyond are never read.

Reads take the whole area at once with O_DIRECT into a page-aligned buffer
(an anonymous mmap), so a host never sees stale cached data of a file on NFS.
Writes (one 4096-byte slot) use O_DIRECT|O_SYNC. Where the file system
refuses O_DIRECT (tmpfs), buffered I/O with O_SYNC is used and the page cache
of the file is dropped (posix_fadvise DONTNEED) before each read; a warning
says so once.
"""
import errno
import logging
import mmap
import os
import threading
import time

from .. import metadata

log = logging.getLogger(__name__)

SLOT_SIZE = metadata.SLOT_SIZE
O_DIRECT = getattr(os, 'O_DIRECT', 0)


class StoreError(Exception):
    """The metadata volume cannot be read or written (one line)."""


def max_hosts_for_size(size):
    """Host slots of a metadata volume of ``size`` bytes (0 when too small)."""
    return max(0, min(metadata.MAX_HOST_ID, size // SLOT_SIZE - 1))


class MetadataStore:
    """The metadata volume at ``path``; thread-safe."""

    def __init__(self, path):
        self.path = path
        self.direct = True
        self._warned = False
        self._lock = threading.Lock()
        self.max_hosts = self._size_hosts()

    def _size_hosts(self):
        try:
            size = os.stat(self.path).st_size
        except OSError as e:
            raise StoreError('cannot open the metadata volume %s: %s'
                             % (self.path, e.strerror or e))
        hosts = max_hosts_for_size(size)
        if hosts < 1:
            raise StoreError('the metadata volume %s is %d bytes: too small for one host slot '
                             '(at least %d bytes); deploy initialises it'
                             % (self.path, size, 2 * SLOT_SIZE))
        return hosts

    def _open(self, flags):
        if self.direct and O_DIRECT:
            try:
                return os.open(self.path, flags | O_DIRECT), True
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                self.direct = False
                if not self._warned:
                    self._warned = True
                    log.warning('the file system of %s refuses direct I/O; using buffered I/O '
                                'with O_SYNC and dropping its page cache before reads', self.path)
        return os.open(self.path, flags), False

    def area_size(self):
        return (self.max_hosts + 1) * SLOT_SIZE

    def read_area(self):
        """Return (bytes of slots 0..max_hosts, seconds the read took)."""
        size = self.area_size()
        t0 = time.monotonic()
        try:
            fd, direct = self._open(os.O_RDONLY)
        except OSError as e:
            raise StoreError('cannot open the metadata volume %s: %s'
                             % (self.path, e.strerror or e))
        try:
            if not direct:
                os.posix_fadvise(fd, 0, size, os.POSIX_FADV_DONTNEED)
            buf = mmap.mmap(-1, size)
            try:
                got = os.preadv(fd, [buf], 0)
                data = bytes(buf[:got])
            finally:
                buf.close()
        except OSError as e:
            raise StoreError('cannot read the metadata volume %s: %s'
                             % (self.path, e.strerror or e))
        finally:
            os.close(fd)
        if len(data) < size:
            data = data.ljust(size, b'\0')
        return data, time.monotonic() - t0

    def write_slot(self, slot, data):
        """Write 4096 bytes at slot * 4096 (0: the global block), synchronously."""
        if not 0 <= slot <= self.max_hosts:
            raise StoreError('slot %d is outside the metadata area (slots 0..%d)'
                             % (slot, self.max_hosts))
        if len(data) != SLOT_SIZE:
            raise ValueError('a slot is %d bytes, got %d' % (SLOT_SIZE, len(data)))
        with self._lock:
            try:
                fd, _direct = self._open(os.O_WRONLY | os.O_SYNC)
            except OSError as e:
                raise StoreError('cannot open the metadata volume %s for writing: %s'
                                 % (self.path, e.strerror or e))
            buf = mmap.mmap(-1, SLOT_SIZE)
            try:
                buf[:] = data
                n = os.pwritev(fd, [buf], slot * SLOT_SIZE)
                if n != SLOT_SIZE:
                    raise StoreError('short write of metadata slot %d on %s (%d bytes)'
                                     % (slot, self.path, n))
            except OSError as e:
                raise StoreError('cannot write metadata slot %d on %s: %s'
                                 % (slot, self.path, e.strerror or e))
            finally:
                buf.close()
                os.close(fd)
