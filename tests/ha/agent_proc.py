"""ovirt-ha-agent as a process for the tests: its files under a temporary prefix."""
import os
import subprocess

from api.hostd_proc import Hostd  # noqa: F401 (the agent tests' host agent)
from daemon_proc import TOP, DaemonProc, python


class AgentProc(DaemonProc):
    NAME = 'agent'
    STOP_TIMEOUT = 60

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
        self.spawn(self.command(), os.path.join(self.base, 'agent.stderr'), env=self.env(),
                   mode='wb')
        return self

    def run(self, timeout=30):
        """Run to completion; CompletedProcess."""
        return subprocess.run(self.command(), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, cwd=TOP, env=self.env(), timeout=timeout)
