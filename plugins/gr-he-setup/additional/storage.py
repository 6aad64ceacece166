"""misc of an additional host: connect the deployed storage domain with this host's id and
monitor it (the domain's lockspace joined), as every hosted-engine host does. The first
host's hosted-engine.conf, with this host's id and connection, becomes OVEHOSTED_STORAGE/
domainConf. If a later step fails before the transaction commit, the storage is
disconnected again; the domain itself is never changed.
"""
from ovirt_hosted_engine_setup import he_storage, progress
from ovirt_hosted_engine_setup.deploy import additional_host as ah
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.he_storage import domain
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, TransactionElement, event


STORAGE_JOINED = 'ohosted.additional.storage.joined'


class Disconnect(TransactionElement):
    """Disconnects this host from the storage domain when the deploy fails."""

    def __init__(self, client, conf, logger):
        self.client = client
        self.conf = conf
        self.logger = logger

    def __str__(self):
        return 'connection of this host to storage domain %s' % self.conf['sdUUID']

    def abort(self):
        self.logger.info('Disconnecting this host from storage domain %s', self.conf['sdUUID'])
        try:
            domain.disconnect(self.client, self.conf)
        except he_storage.StorageError as e:
            self.logger.error('%s', e)


class Plugin(PluginBase):

    @event(stage=Stages.MISC, name=STORAGE_JOINED, after=(c.Events.BRIDGE_AVAILABLE,),
           condition=ah.additional_host)
    def _connect(self):
        env = self.environment
        client = env[c.VDSMEnv.CLIENT]
        first = ah.first_host_conf(env[c.StorageEnv.SHARED_CONFIG])
        conf = ah.host_conf(first, env[c.StorageEnv.HOST_ID], ah.storage_conf(env))
        self.logger.info('Connecting this host to storage domain %s with host id %s',
                         conf['sdUUID'], conf['host_id'])
        self.context.main_transaction.append(Disconnect(client, conf, self.logger))
        try:
            domain.connect(client, conf, wait=True, progress=progress.Reporter(self.logger))
        except he_storage.StorageError as e:
            raise ah.AdditionalHostError('Cannot join storage domain %s: %s' % (conf['sdUUID'],
                                                                                 e))
        env[c.StorageEnv.DOMAIN_CONF] = conf
        env[c.StorageEnv.SP_UUID] = conf.get('spUUID')
        self.logger.info('Storage domain %s is monitored by this host (host id %s)',
                         conf['sdUUID'], conf['host_id'])
