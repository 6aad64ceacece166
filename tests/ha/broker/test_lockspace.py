"""The hosted-engine lockspace against a real sanlock daemon (with the container
workaround of tests/hostd/daemons.py), on a file written with write_lockspace."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from .conftest import TOP, needs_root

sys.path.insert(0, os.path.join(TOP, 'tests'))
from hostd.daemons import SanlockDaemon  # noqa: E402

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lockspace_child.py')


def python():
    venv = os.path.join(TOP, '.venv', 'bin', 'python')
    return venv if os.path.exists(venv) else sys.executable


@pytest.fixture(scope='module')
def sanlock_dir():
    needs_root()
    base = tempfile.mkdtemp(prefix='broker-sanlock-', dir='/var/tmp')
    daemon = SanlockDaemon(os.path.join(base, 'run'), 'broker-test').start()
    yield base, daemon.run_dir
    daemon.stop()
    shutil.rmtree(base, ignore_errors=True)


def blank_file(base, name):
    """A 1 MiB file of zeros in `base` (a lockspace once written, else none at all)."""
    path = os.path.join(base, name)
    with open(path, 'wb') as f:
        f.truncate(1 << 20)
    return path


def run_child(run_dir, *args):
    r = subprocess.run([python(), CHILD] + [str(a) for a in args], cwd=TOP,
                       env=dict(os.environ, SANLOCK_RUN_DIR=run_dir), capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_join_live_ids_and_leave(sanlock_dir):
    base, run_dir = sanlock_dir
    path = blank_file(base, 'lockspace')
    out = run_child(run_dir, path, 2, 1, '--write', '--drop')
    assert out['held_at_once'] is False        # joining takes ~2 x io timeout
    assert out['held'] is True and out['error'] is None
    assert out['held_after_drop'] is False and out['rejoined'] is True
    assert out['live_ids'] == [2]
    assert out['left'] is True and out['held_after'] is False
    assert 'hosted-engine' not in out['lockspaces']


def test_alone_at_join_when_every_other_lease_is_free(sanlock_dir):
    """Right after joining sanlock cannot tell the live hosts for one renewal interval
    (get_hosts: EAGAIN); the delta leases show every other host id free, so the host is
    alone at once instead of one renewal interval later."""
    base, run_dir = sanlock_dir
    path = blank_file(base, 'lockspace-alone')
    out = run_child(run_dir, path, 3, 3, '--write')
    assert out['held'] is True and out['error'] is None
    assert out['live_ids_at_join'] == [3]
    assert out['left'] is True


def test_alone_only_when_every_other_delta_lease_is_free():
    from ovirt_hosted_engine_setup.ha.broker.lockspace import alone
    from ovirt_hosted_engine_setup.he_storage.delta_leases import DeltaLease

    def lease(i, ts, gen=1):
        return DeltaLease(i, ts, gen, 'host%d' % i if gen else '', 10)
    assert alone({1: lease(1, 500), 2: lease(2, 0, 0), 3: lease(3, 0, 4)}, 1) == [1]
    # host 2 holds its id (live, or dead without leaving: only sanlock can tell)
    assert alone({1: lease(1, 500), 2: lease(2, 77)}, 1) is None
    assert alone({}, 1) == [1]


def test_not_a_lockspace_keeps_retrying(sanlock_dir):
    base, run_dir = sanlock_dir
    path = blank_file(base, 'zeros')
    out = run_child(run_dir, path, 1, 1, '--no-wait')
    assert out['held'] is False and out['live_ids'] is None
    assert 'cannot acquire host id 1 in the hosted-engine lockspace' in out['error']
    assert out['left'] is True and out['stop_seconds'] < 10
