"""misc: the hosted-engine storage domain (domain.prepare_domain over the host agent):
domain, pool, SPM, the VM disk, metadata, lockspace and configuration volumes, the
hosted-engine lockspace; the pool is disconnected again and the domain stays monitored.

Its values (hosted-engine.conf names) go to OVEHOSTED_STORAGE/domainConf and the UUID keys.
If a later step before the transaction commit fails, the domain is removed again.
"""
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup import progress
from ovirt_hosted_engine_setup.deploy import storage_checks
from ovirt_hosted_engine_setup import he_storage
from ovirt_hosted_engine_setup.he_storage import domain
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, TransactionElement, event

# environment key -> the name prepare_domain and hosted-engine.conf use
UUID_KEYS = (
    (c.StorageEnv.SD_UUID, 'sdUUID'),
    (c.StorageEnv.SP_UUID, 'spUUID'),
    (c.StorageEnv.CONNECTION_UUID, 'connectionUUID'),
    (c.StorageEnv.IMG_UUID, 'vm_disk_id'),
    (c.StorageEnv.VOL_UUID, 'vm_disk_vol_id'),
    (c.StorageEnv.METADATA_IMAGE_UUID, 'metadata_image_UUID'),
    (c.StorageEnv.METADATA_VOLUME_UUID, 'metadata_volume_UUID'),
    (c.StorageEnv.LOCKSPACE_IMAGE_UUID, 'lockspace_image_UUID'),
    (c.StorageEnv.LOCKSPACE_VOLUME_UUID, 'lockspace_volume_UUID'),
    (c.StorageEnv.CONF_IMAGE_UUID, 'conf_image_UUID'),
    (c.StorageEnv.CONF_VOLUME_UUID, 'conf_volume_UUID'),
)


class DomainRollback(TransactionElement):
    """Removes the storage domain when the deploy fails before the transaction commit."""

    def __init__(self, client, conf, logger):
        self.client = client
        self.conf = conf
        self.logger = logger

    def __str__(self):
        return 'hosted-engine storage domain %s on %s' % (self.conf['sdUUID'],
                                                           self.conf['storage'])

    def abort(self):
        self.logger.info('Removing the storage domain %s created by this deploy from %s',
                         self.conf['sdUUID'], self.conf['storage'])
        try:
            domain.destroy_domain(self.client, self.conf)
        except he_storage.StorageError as e:
            self.logger.error('%s', e)


class Plugin(PluginBase):

    @event(stage=Stages.INIT)
    def _init(self):
        env = self.environment
        env.setdefault(c.StorageEnv.DOMAIN_CONF, None)
        for key, _name in UUID_KEYS:
            env.setdefault(key, None)

    def spec(self):
        """prepare_domain's specification from the answers (preset UUIDs reused)."""
        env = self.environment
        dtype = env[c.StorageEnv.DOMAIN_TYPE]
        spec = {
            'storage': env[c.StorageEnv.STORAGE_DOMAIN_CONNECTION],
            'domain_type': dtype,
            'mnt_options': storage_checks.mount_options(
                dtype, env.get(c.StorageEnv.NFS_VERSION), env.get(c.StorageEnv.MNT_OPTIONS)),
            'vm_disk_size': int(env[c.StorageEnv.IMAGE_SIZE_GB]) * storage_checks.GiB,
            'host_id': int(env[c.StorageEnv.HOST_ID]),
            'io_timeout': int(env[c.StorageEnv.IO_TIMEOUT]),
            'sd_name': env[c.StorageEnv.STORAGE_DOMAIN_NAME],
            'sp_name': env[c.StorageEnv.STORAGE_DATACENTER_NAME],
        }
        for key, name in UUID_KEYS:
            value = storage_checks.preset_uuid(env.get(key))
            if value:
                spec[name] = value
        return spec

    @event(stage=Stages.MISC, name=c.Events.STORAGE_AVAILABLE,
           after=(c.Events.BRIDGE_AVAILABLE,), condition=first_host)
    def _prepare_domain(self):
        env = self.environment
        client = env[c.VDSMEnv.CLIENT]
        spec = self.spec()
        self.logger.info('Creating the storage domain %s (data center %s) on %s',
                         spec['sd_name'], spec['sp_name'], spec['storage'])
        conf = domain.prepare_domain(client, spec, progress.Reporter(self.logger))
        self.context.main_transaction.append(DomainRollback(client, conf, self.logger))
        env[c.StorageEnv.DOMAIN_CONF] = conf
        for key, name in UUID_KEYS:
            env[key] = conf[name]
        self.logger.info('Storage domain %s ready: VM disk %s (%d GB), metadata, lockspace and '
                         'configuration volumes', conf['sdUUID'], conf['vm_disk_vol_id'],
                         int(env[c.StorageEnv.IMAGE_SIZE_GB]))
