"""A real ovirt-hosted-engine-hostd process for the API tests, stopped by pid."""
import os
import subprocess

from daemon_proc import TOP, DaemonProc, free_port, python  # noqa: F401 (used by other tests)


class Hostd(DaemonProc):
    """ovirt-hosted-engine-hostd --foreground with its own root, run dir and port."""

    NAME = 'hostd'

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
        self.spawn(self.command(), os.path.join(self.base, 'hostd.stderr'))
        ready = os.path.join(self.run_dir, 'hostd.pid')
        return self.wait_ready(lambda: os.path.exists(ready), timeout)

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
