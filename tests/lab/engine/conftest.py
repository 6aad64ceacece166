"""Fixtures of the lab engine tests: a set-up engine process on loopback."""
import os
import shutil
import tempfile

import pytest

from .engine_proc import ADMIN_PASSWORD, EngineProc, engine_setup


@pytest.fixture(scope='module')
def engine():
    base = tempfile.mkdtemp(prefix='lab-engine-')
    state = os.path.join(base, 'state')
    r = engine_setup(state)
    assert r.returncode == 0, r.stderr
    proc = EngineProc(state).start()
    proc.base = base
    proc.ca_file = proc.fetch_ca(os.path.join(base, 'engine-ca.pem'))
    yield proc
    rc = proc.stop()
    assert rc == 0, 'engine exit status %s; log:\n%s' % (rc, proc.read_log()[-3000:])
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def connection(engine):
    import ovirtsdk4
    conn = ovirtsdk4.Connection(url=engine.api_url, username='admin@internal',
                                password=ADMIN_PASSWORD, ca_file=engine.ca_file, timeout=30)
    yield conn
    conn.close()
