"""File helpers of the storage backend: names, atomic writes, direct I/O reads."""
import mmap
import os
import tempfile
import time

from ...api.schema import constant

BLANK_UUID = constant('blankUUID')

DIR_MODE = 0o775
FILE_MODE = 0o660


def write_atomic(path, data, mode=FILE_MODE):
    """Write data to path.new, fsync, rename over path."""
    tmp = path + '.new'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def make_sparse(path, size, mode=FILE_MODE):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def read_direct(path, limit=1 << 20):
    """Read a small file bypassing the page cache; returns (data, seconds taken).

    Falls back to a buffered read where the file system refuses O_DIRECT.
    """
    start = time.monotonic()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        with open(path, 'rb') as f:
            data = f.read(limit)
        return data, time.monotonic() - start
    try:
        size = min(os.fstat(fd).st_size, limit)
        length = max(4096, (size + 4095) // 4096 * 4096)
        buf = mmap.mmap(-1, length)
        try:
            try:
                n = os.readv(fd, [buf])
            except OSError:
                os.close(fd)
                fd = -1
                with open(path, 'rb') as f:
                    data = f.read(limit)
                return data, time.monotonic() - start
            data = bytes(buf[:min(n, size if size else n)])
        finally:
            buf.close()
    finally:
        if fd >= 0:
            os.close(fd)
    return data, time.monotonic() - start


def makedirs(path, mode=DIR_MODE):
    if not os.path.isdir(path):
        os.makedirs(path, mode)
        os.chmod(path, mode)


def is_mounted(path):
    """True if path is a mount point (bind mounts included, which os.path.ismount misses)."""
    path = os.path.realpath(path)
    try:
        with open('/proc/self/mountinfo') as f:
            for line in f:
                mnt = line.split()[4]
                mnt = mnt.replace('\\040', ' ').replace('\\011', '\t').replace(
                    '\\012', '\n').replace('\\134', '\\')
                if mnt == path:
                    return True
    except OSError:
        return os.path.ismount(path)
    return False


def probe_dir(path):
    """None if path is a writable directory, else the reason."""
    if not os.path.exists(path):
        return 'path %s does not exist' % path
    if not os.path.isdir(path):
        return 'path %s is not a directory' % path
    try:
        fd, probe = tempfile.mkstemp(prefix='.hostd-write-test-', dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return 'directory %s is not writable (%s)' % (path, e.strerror)
    return None
