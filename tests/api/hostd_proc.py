"""A real ovirt-hosted-engine-hostd process for the API tests, stopped by pid."""
import os
import signal
import socket
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def python():
    """The interpreter that sees the project and Debian's bindings."""
    venv = os.path.join(TOP, '.venv', 'bin', 'python')
    return venv if os.path.exists(venv) else sys.executable


class Hostd:
    """ovirt-hosted-engine-hostd --foreground with its own root, run dir and port."""

    def __init__(self, base, port=None, extra=(), netns=None, address='127.0.0.1'):
        self.base = base
        self.root = os.path.join(base, 'root')
        self.run_dir = os.path.join(base, 'run')
        self.log_file = os.path.join(base, 'hostd.log')
        self.ha_conf = os.path.join(base, 'ha', 'ha.conf')
        self.port = port or free_port()
        self.address = address
        self.extra = list(extra)
        self.netns = netns
        self.proc = None

    def command(self):
        cmd = [python(), '-m', 'ovirt_hosted_engine_setup.hostd.daemon', '--foreground',
               '--address', self.address, '--port', str(self.port), '--root', self.root,
               '--run-dir', self.run_dir, '--data-center-dir', os.path.join(self.base, 'dc'),
               '--log-file', self.log_file, '--ha-conf', self.ha_conf,
               '--hosted-engine-conf', os.path.join(self.base, 'hosted-engine.conf'),
               '--debug'] + self.extra
        if self.netns:
            cmd = ['ip', 'netns', 'exec', self.netns] + cmd
        return cmd

    def start(self, timeout=30):
        self.err = open(os.path.join(self.base, 'hostd.stderr'), 'ab')
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err, cwd=TOP,
                                     start_new_session=True)
        ready = os.path.join(self.run_dir, 'hostd.pid')
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('hostd exited with %s: %s' % (self.proc.returncode,
                                                                 self.read_log()[-3000:]))
            if os.path.exists(ready):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError('hostd not ready within %d s: %s' % (timeout, self.read_log()[-3000:]))

    def stop(self, timeout=20):
        """SIGTERM by pid; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return 'killed'

    def read_log(self):
        try:
            with open(self.log_file, encoding='utf-8', errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    @property
    def pki(self):
        return os.path.join(self.root, 'pki')

    def client(self, **kw):
        from ovirt_hosted_engine_setup.api.client import Client
        kw.setdefault('timeout', 30)
        kw.setdefault('connect_timeout', 10)
        return Client('127.0.0.1', self.port, hostd_root=self.root, **kw)

    def rpc(self, *args, timeout=60):
        """Run ovirt-hosted-engine-rpc against this agent (inside its netns if any)."""
        cmd = [python(), '-m', 'ovirt_hosted_engine_setup.api.rpc_cli', '--host', self.address,
               '--port', str(self.port), '--root', self.root] + list(args)
        if self.netns:
            cmd = ['ip', 'netns', 'exec', self.netns] + cmd
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=TOP,
                              stdin=subprocess.DEVNULL)
