"""Fixtures of the host agent backend tests: real sanlock (and libvirtd) daemons."""
import os
import shutil
import tempfile

import pytest

from ovirt_hosted_engine_setup.he_storage import sanlock_util
from ovirt_hosted_engine_setup.hostd.api_base import HostContext

from .daemons import SanlockDaemon

if os.geteuid() != 0:
    pytest.skip('the host agent backend tests need root (mounts, sanlock, libvirtd)',
                allow_module_level=True)

# Short sanlock I/O timeout for the tests' lockspaces: joining takes ~2x this.
IO_TIMEOUT = 1


@pytest.fixture(scope='session')
def sanlock_daemon():
    """The sanlock daemon this test process talks to (one per process, see sanlock_util)."""
    base = tempfile.mkdtemp(prefix='hostd-sanlock-')
    daemon = SanlockDaemon(os.path.join(base, 'run'), 'pytest-host').start()
    sanlock_util.use_run_dir(daemon.run_dir)
    yield daemon
    daemon.stop()
    shutil.rmtree(base, ignore_errors=True)


def make_ctx(base, sanlock_run_dir, **kw):
    ctx = HostContext(root_dir=os.path.join(base, 'root'),
                      data_center_dir=os.path.join(base, 'dc'),
                      run_dir=os.path.join(base, 'run'),
                      sanlock_run_dir=sanlock_run_dir, **kw)
    ctx.sanlock_io_timeout = IO_TIMEOUT
    ctx.monitor_interval = 1.0
    ctx.vm_sample_interval = 1.0     # VDSM's is 15 s
    for d in (ctx.root_dir, ctx.data_center_dir, ctx.run_dir):
        os.makedirs(d, exist_ok=True)
    return ctx
