"""Real daemons for the host agent backend tests: sanlock, and libvirtd + virtlogd
in a private mount namespace. Each is started and stopped by pid.

The sanlock daemon runs with an LD_PRELOAD library: a workaround for restricted
containers (sanlock cannot raise RLIMIT_MEMLOCK there, see
ovirt_hosted_engine_setup/lab/sanlock_preload.c); real hosts run sanlock as a service.
"""
import os
import signal
import subprocess
import time

from ovirt_hosted_engine_setup.lab.preload import ensure_preload


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError('%s did not happen within %d s' % (what, timeout))


def stop_pid(pid, timeout=20):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


class SanlockDaemon:
    """sanlock daemon -D -w 0 with its own SANLOCK_RUN_DIR."""

    def __init__(self, run_dir, name='host'):
        self.run_dir = run_dir
        self.name = name
        self.proc = None

    def start(self):
        os.makedirs(self.run_dir, exist_ok=True)
        env = dict(os.environ, SANLOCK_RUN_DIR=self.run_dir, LD_PRELOAD=ensure_preload())
        self.log = open(os.path.join(self.run_dir, 'sanlock.out'), 'wb')
        self.proc = subprocess.Popen(
            ['sanlock', 'daemon', '-D', '-w', '0', '-U', 'root', '-G', 'root', '-l', '0',
             '-e', self.name], env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        sock = os.path.join(self.run_dir, 'sanlock.sock')
        _wait_for(lambda: os.path.exists(sock) or self.proc.poll() is not None, 20,
                  'sanlock daemon start')
        if self.proc.poll() is not None:
            raise RuntimeError('sanlock daemon exited: see %s' % self.log.name)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # Force: leave every lockspace, then exit.
            subprocess.run(['sanlock', 'shutdown', '-f', '1'], timeout=30,
                           env=dict(os.environ, SANLOCK_RUN_DIR=self.run_dir),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                stop_pid(self.proc.pid, timeout=5)
        if self.proc:
            self.proc.wait()
        self.proc = None
