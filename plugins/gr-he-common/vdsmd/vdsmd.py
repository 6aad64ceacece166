"""late_setup: connect to this host's agent over its JSON-RPC/TLS API (waiting for it up to
OVEHOSTED_VDSM/connectTimeout seconds, 120 by default), read its capabilities, and refuse
a host that is already deployed. Every later step talks to the host only through this client
(environment key OVEHOSTED_VDSM/client)."""
import os

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import host_agent
from ovirt_hosted_engine_setup import paths, progress
from ovirt_hosted_engine_setup.api.client import Client
from ovirt_hosted_engine_setup.api.errors import ConnectionFailed
from ovirt_hosted_engine_setup.runner import PluginBase, Priority, Stages, event

class AlreadyDeployed(RuntimeError):
    pass


class Plugin(PluginBase):

    @event(stage=Stages.INIT)
    def _init(self):
        env = self.environment
        env.setdefault(c.VDSMEnv.CLIENT, None)
        env.setdefault(c.VDSMEnv.CAPS, None)
        env.setdefault(c.VDSMEnv.CONNECT_TIMEOUT, 120)

    @event(stage=Stages.PROGRAMS)
    def _refuse_deployed(self):
        if os.path.exists(paths.HOSTED_ENGINE_CONF):
            raise AlreadyDeployed(
                'This host is already a hosted-engine host (%s exists): to deploy again, run '
                'ovirt-hosted-engine-cleanup first' % paths.HOSTED_ENGINE_CONF)

    def _connect(self, port):
        try:
            return Client('localhost', port, timeout=120, connect_timeout=5,
                          reconnect_interval=0), None
        except ConnectionFailed as e:
            self.logger.debug('host agent not answering yet: %s', e)
            return None, str(e).split('; ')[0]

    @event(stage=Stages.LATE_SETUP, name=c.Events.VDSM_CONNECTED, priority=Priority.HIGH)
    def _connect_host_agent(self):
        env = self.environment
        port = host_agent.port()
        limit = int(env[c.VDSMEnv.CONNECT_TIMEOUT])
        self.logger.info('Connecting to the host agent on localhost:%d', port)
        try:
            client = progress.wait_until(
                lambda: self._connect(port),
                'the host agent (ovirt-hosted-engine-hostd or vdsmd) on localhost:%d' % port,
                limit, 1.0, progress.Reporter(self.logger))
        except progress.WaitTimeout as e:
            raise RuntimeError('%s: start the host agent (systemctl start '
                               'ovirt-hosted-engine-hostd, or vdsmd) and deploy again' % e)
        env[c.VDSMEnv.CLIENT] = client
        caps = client.call('Host.getCapabilities')
        env[c.VDSMEnv.CAPS] = caps
        self.logger.debug('host capabilities: %s', caps)
        if caps.get('hostedEngineDeployed'):
            raise AlreadyDeployed(
                'The host agent reports this host as already deployed with hosted engine: to '
                'deploy again, run ovirt-hosted-engine-cleanup first')

    @event(stage=Stages.CLEANUP, priority=Priority.LAST)
    def _disconnect(self):
        client = self.environment.get(c.VDSMEnv.CLIENT)
        if client is not None:
            client.close()
