"""closeup of an additional host: its configuration files, then the HA services.

- /etc/ovirt-hosted-engine/hosted-engine.conf: the first host's (from the configuration
  volume) with this host's id, connection and engine CA path;
- /etc/ovirt-hosted-engine/vm.conf and /etc/ovirt-hosted-engine-ha/broker.conf: the
  configuration volume's copies (the HA agent reads vm.conf from the volume afterwards);
- ovirt-ha-broker and ovirt-ha-agent enabled and started, then awaited until this host's
  agent publishes its state and score in the metadata area of the domain.
The configuration volume itself is left as the first host wrote it.
"""
from ovirt_hosted_engine_setup import paths, progress
from ovirt_hosted_engine_setup.deploy import additional_host as ah
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import services
from ovirt_hosted_engine_setup.ha import peers
from ovirt_hosted_engine_setup.he_storage import heconf, layout
from ovirt_hosted_engine_setup.runner import (FileTransaction, PluginBase, Priority, Stages,
                                              Transaction, event)

CONF_WRITTEN = 'ohosted.additional.conf.written'
HA_STARTED = 'ohosted.additional.ha.started'
HA_TIMEOUT = 300
INTERVAL = 2


class Plugin(PluginBase):

    @event(stage=Stages.CLOSEUP, name=CONF_WRITTEN, priority=Priority.HIGH,
           after=(c.Events.HOST_ADDED, c.Events.ENGINE_CA_AVAILABLE),
           condition=ah.additional_host)
    def _write(self):
        env = self.environment
        files = env[c.StorageEnv.SHARED_CONFIG]
        conf = dict(env[c.StorageEnv.DOMAIN_CONF])
        if env.get(c.EngineEnv.CA_FILE):
            conf['ca_cert'] = env[c.EngineEnv.CA_FILE]
        he_text = heconf.render(conf)
        broker_text = files['broker.conf']
        self.logger.info('Writing %s (host id %s), %s and %s', paths.HOSTED_ENGINE_CONF,
                         conf['host_id'], paths.VM_CONF, paths.BROKER_CONF)
        with Transaction() as t:
            t.append(FileTransaction(paths.HOSTED_ENGINE_CONF, he_text, mode=0o644))
            t.append(FileTransaction(paths.VM_CONF, files['vm.conf'], mode=0o644))
            t.append(FileTransaction(paths.BROKER_CONF, broker_text, mode=0o644))

    @event(stage=Stages.CLOSEUP, name=HA_STARTED, priority=Priority.HIGH,
           after=(CONF_WRITTEN,), condition=ah.additional_host)
    def _start_ha(self):
        env = self.environment
        conf = env[c.StorageEnv.DOMAIN_CONF]
        host_id = int(conf['host_id'])
        self.logger.info('Enabling and starting the HA services (%s)',
                         ', '.join(services.HA_SERVICES))
        try:
            services.start_ha_services()
        except services.ServiceError as e:
            raise RuntimeError(str(e))
        metadata = layout.volume_paths(conf, paths.DATA_CENTER_DIR)['metadata']
        first = {}

        def published():
            try:
                slots = peers.read_slots(metadata)
            except peers.PeerError as e:
                return False, str(e)
            me = slots.get(host_id)
            if me is None or not me.timestamp:
                return False, 'no state of host id %d in the metadata yet' % host_id
            first.setdefault('timestamp', me.timestamp)
            if me.timestamp == first['timestamp']:
                return False, 'host id %d last wrote at %d' % (host_id, me.timestamp)
            others = ', '.join('host %d (%s) score %d' % (h, r.hostname, r.score)
                               for h, r in sorted(slots.items()) if h != host_id)
            text = 'host id %d: %s, score %d; %s' % (host_id, me.state or 'up', me.score,
                                                    others or 'no other host')
            return text, text
        try:
            detail = progress.wait_until(
                published, 'the HA agent of this host to publish its state and score',
                HA_TIMEOUT, INTERVAL, progress.Reporter(self.logger))
        except progress.WaitTimeout as e:
            raise RuntimeError('%s: look at /var/log/ovirt-hosted-engine-ha/agent.log and '
                               'broker.log' % e)
        self.logger.info('This host runs the HA services for the engine: %s', detail)
        self.dialog.note('Run hosted-engine --vm-status to see the hosted-engine hosts and '
                         'their scores')
