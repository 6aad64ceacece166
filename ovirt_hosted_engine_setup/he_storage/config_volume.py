"""The configuration volume (HECI): the hosts' shared copy of their configuration files.

An uncompressed tar of CONF_FILES (version, fhanswers.conf, hosted-engine.conf,
broker.conf, vm.conf) written from offset 0 with direct I/O and zero padded; writers
check the checksum they read (ConfigChanged when another host wrote in between).
"""
import fcntl
import hashlib
import io
import os
import tarfile
import time

from . import StorageError
from .layout import CONF_FILES
from .volumes import read_volume, write_volume


class ConfigChanged(StorageError):
    """The configuration volume changed since it was read."""


class ConfigVolume:
    """The configuration volume: an uncompressed tar written from offset 0, zero padded.

        cv = ConfigVolume(path)
        files = cv.read()                    # {name: str}
        cv.write(dict(files, **{'vm.conf': text}), expected_checksum=files_checksum)

    write() refuses (ConfigChanged) when the volume's checksum is not the one the
    caller read (optimistic concurrency between hosts).
    """

    def __init__(self, path):
        self.path = path

    def _raw(self):
        try:
            return read_volume(self.path)
        except OSError as e:
            raise StorageError('cannot read the configuration volume %s (%s): connect the '
                               'storage (hosted-engine --connect-storage)'
                               % (self.path, e.strerror or e))

    @staticmethod
    def _checksum(raw):
        return hashlib.sha256(raw).hexdigest()

    def checksum(self):
        """sha256 (hex) of the whole volume."""
        return self._checksum(self._raw())

    @staticmethod
    def _parse(raw, path):
        if not raw[:512].strip(b'\0'):
            return {}
        try:
            with tarfile.open(fileobj=io.BytesIO(raw), mode='r:') as tar:
                out = {}
                for m in tar.getmembers():
                    if not m.isfile():
                        continue
                    out[m.name] = tar.extractfile(m).read().decode('utf-8')
                return out
        except (tarfile.TarError, UnicodeDecodeError) as e:
            raise StorageError('the configuration volume %s is not a readable tar (%s): '
                               'write it again from a host\'s files' % (path, e))

    def read(self):
        """{file name: text} (empty for a fresh, zeroed volume)."""
        return self._parse(self._raw(), self.path)

    def read_with_checksum(self):
        raw = self._raw()
        return self._parse(raw, self.path), self._checksum(raw)

    def write(self, files, expected_checksum):
        """Write files ({name: text or bytes}) as the volume's tar; return the new checksum."""
        unknown = sorted(set(files) - set(CONF_FILES))
        if unknown:
            raise ValueError('unknown configuration files: %s (known: %s)'
                             % (', '.join(unknown), ', '.join(CONF_FILES)))
        buf = io.BytesIO()
        now = int(time.time())
        with tarfile.open(fileobj=buf, mode='w:', format=tarfile.USTAR_FORMAT) as tar:
            for name in CONF_FILES:
                if name not in files:
                    continue
                data = files[name]
                if isinstance(data, str):
                    data = data.encode('utf-8')
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = now
                info.mode = 0o644
                info.uname = info.gname = 'root'
                tar.addfile(info, io.BytesIO(data))
        data = buf.getvalue()
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError as e:
            raise StorageError('cannot open the configuration volume %s (%s): connect the '
                               'storage' % (self.path, e.strerror or e))
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            size = os.lseek(fd, 0, os.SEEK_END)
            if len(data) > size:
                raise StorageError('the configuration (%d bytes) does not fit the configuration '
                                   'volume (%d bytes): shorten it' % (len(data), size))
            current = self.checksum()
            if current != expected_checksum:
                raise ConfigChanged('the configuration volume changed since it was read '
                                    '(another host wrote it): read it again and retry')
            try:
                write_volume(self.path, data, pad_to=size)
            except OSError as e:
                raise StorageError('writing the configuration volume %s failed (%s): check '
                                   'the storage' % (self.path, e.strerror or e))
        finally:
            os.close(fd)
        return self.checksum()
