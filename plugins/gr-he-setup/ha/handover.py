"""The HA services at closeup.

BROKER_STARTED (right after the engine VM started): write hosted-engine.conf and
broker.conf from what is known then (everything but the engine CA, which no HA service
reads) and start ovirt-ha-broker. Joining the hosted-engine lockspace takes it about
2 x sanlock's io_timeout; started here it joins while engine-setup runs in the engine VM,
instead of while the hand-over waits.

HA_STARTED (after the engine VM was shut down): restart ovirt-ha-broker when the final
hosted-engine.conf (HE_CONF_WRITTEN) changed what it runs from (a restore that gives this
host the id the restored engine knows it by), enable and start ovirt-ha-broker and
ovirt-ha-agent, then wait until the HA agent started the engine VM again and the engine is
healthy."""
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup.deploy import engine_api, services
from ovirt_hosted_engine_setup.he_storage import heconf
from ovirt_hosted_engine_setup import paths, progress
from ovirt_hosted_engine_setup.runner import PluginBase, Priority, Stages, event

from . import conf as ha_conf

HANDOVER_TIMEOUT = 600
INTERVAL = 1


def broker_view(conf):
    """What the broker runs from: hosted-engine.conf without the engine CA's keys."""
    return {k: v for k, v in conf.items() if k not in heconf.ENGINE_CA_KEYS}


class Plugin(PluginBase):

    def __init__(self, context):
        super().__init__(context)
        self._broker_conf = None    # the hosted-engine.conf the running broker started from

    def _service_call(self, func):
        try:
            return func()
        except services.ServiceError as e:
            raise RuntimeError(str(e))

    @event(stage=Stages.CLOSEUP, name=c.Events.BROKER_STARTED, priority=Priority.HIGH,
           after=(c.Events.VM_STARTED,),
           before=(c.Events.ENGINE_RESTORED, c.Events.ENGINE_SETUP_DONE), condition=first_host)
    def _start_broker(self):
        env = self.environment
        conf = ha_conf.he_conf(env)
        ha_conf.write_local_files({paths.HOSTED_ENGINE_CONF: heconf.render(conf),
                                   paths.BROKER_CONF: ha_conf.broker_conf(env)})
        self.logger.info('Starting ovirt-ha-broker now: it joins the hosted-engine lockspace '
                         '(about %d s) while the engine is set up',
                         2 * int(conf['sanlock_io_timeout']))
        argv = self._service_call(services.start_broker)
        self.logger.debug('ovirt-ha-broker started with %s', argv)
        self._broker_conf = conf

    @event(stage=Stages.CLOSEUP, name=c.Events.HA_STARTED, priority=Priority.HIGH,
           after=(c.Events.VM_SHUTDOWN,), condition=first_host)
    def _start_ha(self):
        env = self.environment
        client = env[c.VDSMEnv.CLIENT]
        vm_id = env[c.VMEnv.VM_UUID]
        base = engine_api.http_base(env[c.NetworkEnv.FQDN])
        final = ha_conf.he_conf(env)
        if self._broker_conf is not None and \
                broker_view(self._broker_conf) != broker_view(final):
            changed = sorted(k for k in set(final) | set(self._broker_conf)
                             if k not in heconf.ENGINE_CA_KEYS
                             and final.get(k) != self._broker_conf.get(k))
            self.logger.info('Restarting ovirt-ha-broker: hosted-engine.conf changed since it '
                             'started (%s)', ', '.join(changed))
            self._service_call(services.restart_broker)
        self.logger.info('Enabling and starting the HA services (%s)',
                         ', '.join(services.HA_SERVICES))
        argv = self._service_call(services.start_ha_services)
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
