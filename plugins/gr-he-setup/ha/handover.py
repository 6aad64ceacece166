"""closeup, HA_STARTED: enable and start the HA services (ovirt-ha-broker, ovirt-ha-agent),
then wait until the HA agent started the engine VM again and the engine is healthy."""
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup.deploy import engine_api, services
from ovirt_hosted_engine_setup import progress
from ovirt_hosted_engine_setup.runner import PluginBase, Priority, Stages, event

HANDOVER_TIMEOUT = 600
INTERVAL = 1


class Plugin(PluginBase):

    @event(stage=Stages.CLOSEUP, name=c.Events.HA_STARTED, priority=Priority.HIGH,
           after=(c.Events.VM_SHUTDOWN,), condition=first_host)
    def _start_ha(self):
        env = self.environment
        client = env[c.VDSMEnv.CLIENT]
        vm_id = env[c.VMEnv.VM_UUID]
        base = engine_api.http_base(env[c.NetworkEnv.FQDN])
        self.logger.info('Enabling and starting the HA services (%s)',
                         ', '.join(services.HA_SERVICES))
        try:
            argv = services.start_ha_services()
        except services.ServiceError as e:
            raise RuntimeError(str(e))
        self.logger.debug('HA services started with %s', argv)

        def engine_up():
            stats = [s for s in client.call('Host.getAllVmStats') or ()
                     if s.get('vmId') == vm_id]
            status = stats[0].get('status') if stats else 'not running'
            if status != 'Up':
                return False, 'engine VM %s' % status
            ok, reply = engine_api.read_health(base)
            return ok, 'engine VM Up, health page: %s' % reply
        try:
            progress.wait_until(engine_up, 'the HA agent to start the engine VM and the engine '
                                'to be healthy', HANDOVER_TIMEOUT, INTERVAL,
                                progress.Reporter(self.logger))
        except progress.WaitTimeout as e:
            raise RuntimeError('%s: look at hosted-engine --vm-status and '
                               '/var/log/ovirt-hosted-engine-ha/agent.log' % e)
        self.logger.info('The engine VM is up under the HA services')
        self.dialog.note('Run hosted-engine --vm-status to see the state of the engine VM '
                         'and of the hosted-engine hosts')
