"""A lab of two hosts shared by the tests of a module (started with the real command)."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

LAB_CLI = [sys.executable, '-m', 'ovirt_hosted_engine_setup.lab.cli']


def netns_list():
    return subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout


class LabRunner:
    def __init__(self, lab_dir):
        self.dir = lab_dir
        self.env = dict(os.environ, OVIRT_HE_LAB_DIR=lab_dir)

    def cli(self, *args, check=True, timeout=300, **kw):
        kw.setdefault('capture_output', True)
        kw.setdefault('text', True)
        r = subprocess.run(LAB_CLI + list(args), env=self.env, timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError('hosted-engine-lab %s failed (%d):\n%s\n%s'
                                 % (' '.join(args), r.returncode, r.stdout, r.stderr))
        return r

    def exec(self, host, *cmd, check=True, **kw):
        return self.cli('exec', host, '--', *cmd, check=check, **kw)

    def service(self, host, unit):
        """The record ({pid, start, ...}) of a unit the host's service manager started."""
        from ovirt_hosted_engine_setup.lab.lab import Lab
        return Lab(self.dir).service(host, unit)


def wait_until(what, predicate, timeout, interval=1.0):
    """predicate()'s first true value, polled every `interval` s; AssertionError naming
    `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %d s waiting for %s' % (timeout, what))
        time.sleep(interval)


def lab_processes(st):
    """Records ({pid, start}) of every process in the namespaces of the lab whose state is
    `st`: its hosts' and its network's. Taken before `down`, they show afterwards whether
    anything outlived it (the namespaces' numbers cannot: the kernel gives them to new
    namespaces once they are gone)."""
    spaces = [(kind, h['ns'][kind], h['holder']) for h in st['hosts'].values()
              for kind in ('mnt', 'net')]
    net = st.get('net') or {}
    spaces.append(('net', (net.get('ns') or {}).get('net'), net))
    return namespace_processes(spaces)


def namespace_processes(spaces):
    """Records ({pid, start}) of every process in the namespaces `spaces`, (kind, namespace
    id, holder record) each."""
    from ovirt_hosted_engine_setup.lab.lab import pids_in_ns, record
    pids = set()
    for kind, nsid, holder in spaces:
        pids.update(pids_in_ns(kind, nsid, holder))
    return [r for r in map(record, sorted(pids)) if r['start'] is not None]


def outlived(records):
    """The pids of `records` still running as the same process."""
    from ovirt_hosted_engine_setup.lab.lab import alive
    return [r['pid'] for r in records if alive(r)]


def module_lab(hosts, prefix='he-lab-test-', sanlock_io_timeout=None, storage=None):
    """A `lab` fixture for the tests of a module: `hosts` lab hosts in a directory of its
    own, started with the real command (`--sanlock-io-timeout`, `--storage` when given) and
    stopped at the end (kept, with its logs, when OVIRT_HE_LAB_TEST_KEEP=1: stop it then
    with `OVIRT_HE_LAB_DIR=DIR hosted-engine-lab down`)."""
    @pytest.fixture(scope='module')
    def lab():
        lab_dir = tempfile.mkdtemp(prefix=prefix, dir='/var/tmp')
        runner = LabRunner(lab_dir)
        runner.netns_before = netns_list()
        try:
            extra = [] if sanlock_io_timeout is None else [
                '--sanlock-io-timeout', str(sanlock_io_timeout)]
            extra += [] if storage is None else ['--storage', storage]
            runner.cli('up', '--hosts', str(hosts), *extra, timeout=600)
            yield runner
        finally:
            if os.environ.get('OVIRT_HE_LAB_TEST_KEEP') == '1':
                print('lab kept in %s' % lab_dir)
            else:
                runner.cli('down', check=False, timeout=300)
                shutil.rmtree(lab_dir, ignore_errors=True)
    return lab


lab = module_lab(2)


@pytest.fixture
def own_lab_dir():
    """A directory for a lab a test starts itself; whatever lab is up there is stopped and
    the directory removed at the end."""
    d = tempfile.mkdtemp(prefix='he-lab-own-', dir='/var/tmp')
    yield d
    LabRunner(d).cli('down', check=False, timeout=120)
    shutil.rmtree(d, ignore_errors=True)
