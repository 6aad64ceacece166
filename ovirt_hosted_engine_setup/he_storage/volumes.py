"""Direct I/O on the hosted-engine volumes, and copying a disk image into the VM volume.

    data = read_volume(path)                # the whole volume (or its first size bytes)
    write_volume(path, data, pad_to=size)   # from offset 0, zero padded
    zero_volume(path)
    write_vm_disk(source, volume_path, 'raw', progress)   # qemu-img convert

Reads and writes bypass the page cache (O_DIRECT|O_SYNC) so that every host sees what
another host wrote; a file system that refuses O_DIRECT gets O_SYNC and an fsync.
"""
import errno
import json
import mmap
import os
import subprocess

from . import StorageError
from .layout import MiB, size_of

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
    total = size_of(path) if size is None else size
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
    write_volume(path, b'', pad_to=size_of(path))


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
