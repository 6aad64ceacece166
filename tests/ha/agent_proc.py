"""ovirt-ha-agent as a process for the tests: its files under a temporary prefix."""
import importlib.util
import os
import signal
import subprocess
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_hostd_proc():
    # tests/api/hostd_proc.py: the real host agent process used by the API tests
    spec = importlib.util.spec_from_file_location(
        'ha_agent_tests_hostd_proc', os.path.join(TOP, 'tests', 'api', 'hostd_proc.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


hostd_proc = _load_hostd_proc()
python = hostd_proc.python
Hostd = hostd_proc.Hostd


class AgentProc:
    def __init__(self, base, socket_path, host_agent=None, host_agent_root=None, interval=1.0,
                 conf=None, extra=()):
        self.base = base
        self.prefix = os.path.join(base, 'prefix')
        self.socket_path = socket_path
        self.conf_path = os.path.join(base, 'hosted-engine.conf')
        self.log_file = os.path.join(base, 'agent.log')
        self.ha_conf = os.path.join(self.prefix, 'var/lib/ovirt-hosted-engine-ha/ha.conf')
        self.vm_conf = os.path.join(base, 'run', 'vm.conf')
        self.host_agent = host_agent
        self.host_agent_root = host_agent_root
        self.interval = interval
        self.extra = list(extra)
        self.proc = None
        if conf is not None:
            self.write_conf(conf)

    def write_conf(self, conf):
        conf = dict(conf)
        conf.setdefault('conf', self.vm_conf)
        with open(self.conf_path, 'w') as f:
            f.write(''.join('%s=%s\n' % kv for kv in sorted(conf.items())))

    def command(self):
        cmd = [python(), '-m', 'ovirt_hosted_engine_setup.ha.agent', '--conf', self.conf_path,
               '--socket', self.socket_path, '--log-file', self.log_file,
               '--interval', str(self.interval)]
        if self.host_agent:
            cmd += ['--host-agent', self.host_agent]
        if self.host_agent_root:
            cmd += ['--hostd-root', self.host_agent_root]
        return cmd + self.extra

    def env(self):
        return dict(os.environ, OVIRT_HOSTED_ENGINE_PREFIX=self.prefix)

    def start(self):
        self.err = open(os.path.join(self.base, 'agent.stderr'), 'wb')
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=self.err, cwd=TOP, env=self.env(),
                                     start_new_session=True)
        return self

    def run(self, timeout=30):
        """Run to completion; CompletedProcess."""
        return subprocess.run(self.command(), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, cwd=TOP, env=self.env(), timeout=timeout)

    def stop(self, timeout=60):
        """SIGTERM by pid; the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return 'killed'
        return self.proc.returncode

    def read_log(self):
        try:
            with open(self.log_file, encoding='utf-8', errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def wait_log(self, text, timeout=30, count=1):
        deadline = time.monotonic() + timeout
        while True:
            log = self.read_log()
            if log.count(text) >= count:
                return log
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError('the agent exited (%s) before logging %r:\n%s'
                                     % (self.proc.returncode, text, log[-4000:]))
            if time.monotonic() > deadline:
                raise AssertionError('the agent did not log %r within %d s:\n%s'
                                     % (text, timeout, log[-4000:]))
            time.sleep(0.1)
