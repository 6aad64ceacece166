"""What the tests' daemon wrappers share (the host agent, the lab engine, the broker, the
HA agent, sanlock and libvirt): a real process in its own session, stopped by pid, its log
read, and waiting on it.

    class Hostd(DaemonProc):
        NAME = 'hostd'
        ...
        self.spawn(cmd, stderr_path)
        self.wait_ready(lambda: os.path.exists(pid_file), 30)
        self.wait_log('connected', 30)
        self.stop()          # SIGTERM by pid; SIGKILL after STOP_TIMEOUT; the exit status
"""
import os
import signal
import socket
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python():
    """The interpreter that sees the project and Debian's bindings."""
    venv = os.path.join(TOP, '.venv', 'bin', 'python')
    return venv if os.path.exists(venv) else sys.executable


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(what, predicate, timeout, interval=0.2):
    """predicate()'s first true value; AssertionError naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('%s: not within %d s' % (what, timeout))
        time.sleep(interval)


def stop_pid(pid, timeout=20):
    """SIGTERM a process by pid (ours or not), SIGKILL after timeout seconds; wait for it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _gone(pid):
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return bool(done)
    except ChildProcessError:       # not our child: gone when it cannot be signalled
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


class DaemonProc:
    """Base of a test's daemon process. Subclasses set NAME, STOP_TIMEOUT and log_file,
    and start with spawn()."""

    NAME = 'daemon'
    STOP_TIMEOUT = 20
    log_file = None
    proc = None

    def spawn(self, cmd, stderr_path, env=None, cwd=TOP, mode='ab'):
        """Start cmd in a session of its own, stdout and stderr to stderr_path."""
        self.err = open(stderr_path, mode)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=self.err, cwd=cwd, env=env, start_new_session=True)
        return self.proc

    def stop(self, timeout=None):
        """SIGTERM by pid; the exit status ('killed' when SIGKILL was needed; None when
        never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.STOP_TIMEOUT if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return 'killed'
        return self.proc.returncode

    def read_log(self):
        try:
            with open(self.log_file, encoding='utf-8', errors='replace') as f:
                return f.read()
        except (OSError, TypeError):
            return ''

    def wait_ready(self, ready, timeout):
        """Wait until ready() while the process lives; RuntimeError with the end of its log
        when it exits first or is not ready in time (then it is stopped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('%s exited with %s: %s' % (self.NAME, self.proc.returncode,
                                                              self.read_log()[-3000:]))
            if ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError('%s not ready within %d s: %s' % (self.NAME, timeout,
                                                             self.read_log()[-3000:]))

    def wait_log(self, text, timeout=30, count=1):
        """The log once it holds text count times; AssertionError when the process exits
        first or timeout seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.read_log()
            if log.count(text) >= count:
                return log
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError('the %s exited (%s) before logging %r:\n%s'
                                     % (self.NAME, self.proc.returncode, text, log[-4000:]))
            if time.monotonic() > deadline:
                raise AssertionError('the %s did not log %r within %d s:\n%s'
                                     % (self.NAME, text, timeout, log[-4000:]))
            time.sleep(0.1)
