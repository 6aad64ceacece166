"""A real lab engine process on loopback for the tests, stopped by pid."""
import os
import ssl
import subprocess
import urllib.request

from daemon_proc import TOP, DaemonProc, free_port, python

ADMIN_PASSWORD = 'lab-Engine-pw1'
FQDN = 'engine.lab.test'


def engine_setup(state_dir, password=ADMIN_PASSWORD, fqdn=FQDN):
    pw = os.path.join(os.path.dirname(state_dir), 'admin-password')
    with open(pw, 'w') as f:
        f.write(password + '\n')
    return subprocess.run([python(), '-m', 'ovirt_hosted_engine_setup.lab.engine.setup',
                           '--state-dir', state_dir, '--fqdn', fqdn,
                           '--admin-password-file', pw],
                          capture_output=True, text=True, timeout=120, cwd=TOP,
                          stdin=subprocess.DEVNULL)


class EngineProc(DaemonProc):
    NAME = 'engine'

    def __init__(self, state_dir, monitor_interval=0.5):
        self.state_dir = state_dir
        self.http_port = free_port()
        self.https_port = free_port()
        self.monitor_interval = monitor_interval
        self.pid_file = os.path.join(os.path.dirname(state_dir), 'engine.pid')
        # the engine's temporary files (its SSH askpass directories) in a directory of its
        # own, so that tests see only this engine's
        self.tmp_dir = os.path.join(os.path.dirname(state_dir), 'engine-tmp')
        self.proc = None

    @property
    def http(self):
        return 'http://127.0.0.1:%d' % self.http_port

    @property
    def https(self):
        return 'https://127.0.0.1:%d' % self.https_port

    @property
    def api_url(self):
        return self.https + '/ovirt-engine/api'

    @property
    def log_file(self):
        return os.path.join(self.state_dir, 'engine.log')

    def start(self, timeout=30):
        cmd = [python(), '-m', 'ovirt_hosted_engine_setup.lab.engine', '--state-dir',
               self.state_dir, '--address', '127.0.0.1', '--http-port', str(self.http_port),
               '--https-port', str(self.https_port), '--pid-file', self.pid_file,
               '--monitor-interval', str(self.monitor_interval), '--debug']
        os.makedirs(self.tmp_dir, exist_ok=True)
        self.spawn(cmd, os.path.join(os.path.dirname(self.state_dir), 'engine.stderr'),
                   env=dict(os.environ, TMPDIR=self.tmp_dir))
        return self.wait_ready(lambda: os.path.exists(self.pid_file), timeout)

    def fetch_ca(self, dest):
        """The engine CA over plain HTTP, as a deploy fetches it."""
        url = (self.http + '/ovirt-engine/services/pki-resource'
               '?resource=ca-certificate&format=X509-PEM-CA')
        with urllib.request.urlopen(url, timeout=10) as r:
            data = r.read()
        with open(dest, 'wb') as f:
            f.write(data)
        return dest

    def tls_context(self, ca_file):
        return ssl.create_default_context(cafile=ca_file)
