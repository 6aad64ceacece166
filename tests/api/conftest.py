"""Fixtures of the host agent API tests: a real hostd over TLS on loopback."""
import shutil
import tempfile

import pytest

from .hostd_proc import Hostd


@pytest.fixture(scope='module')
def hostd():
    """One agent for a module; small frame limit for the oversized-frame test."""
    base = tempfile.mkdtemp(prefix='api-hostd-')
    agent = Hostd(base, extra=['--max-frame', str(256 * 1024)]).start()
    yield agent
    rc = agent.stop()
    assert rc == 0, 'hostd exit status %s; log:\n%s' % (rc, agent.read_log()[-3000:])
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def client(hostd):
    c = hostd.client()
    yield c
    c.close()


@pytest.fixture
def tmpdir_path():
    d = tempfile.mkdtemp(prefix='api-test-')
    yield d
    shutil.rmtree(d, ignore_errors=True)
