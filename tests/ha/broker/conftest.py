"""Fixtures of the broker tests: real files, real loopback servers, a real host
agent (ovirt-hosted-engine-hostd) and a real sanlock daemon, each stopped by pid."""
import os
import shutil
import tempfile

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def not_tmpfs_dir():
    """A directory on a file system that accepts O_DIRECT (/var/tmp, else the checkout)."""
    for base in ('/var/tmp', TOP):
        d = tempfile.mkdtemp(prefix='broker-test-', dir=base)
        probe = os.path.join(d, 'probe')
        with open(probe, 'wb') as f:
            f.write(b'\0' * 4096)
        try:
            fd = os.open(probe, os.O_RDONLY | os.O_DIRECT)
            os.close(fd)
            os.unlink(probe)
            return d
        except OSError:
            shutil.rmtree(d, ignore_errors=True)
    pytest.skip('no file system accepting O_DIRECT under /var/tmp or the checkout')


@pytest.fixture
def direct_dir():
    d = not_tmpfs_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def needs_root():
    if os.geteuid() != 0:
        pytest.skip('needs root (sanlock, host agent)')
