"""closeup, HE_CONF_WRITTEN: the files the HA services run from.

(The hand-over plugin writes hosted-engine.conf and broker.conf once before, without the
engine CA, to start ovirt-ha-broker early: write_local_files().)

- /etc/ovirt-hosted-engine/hosted-engine.conf: the storage keys prepare_domain returned,
  the engine FQDN, the VM id, this host's id, the engine CA, the network checks;
- /etc/ovirt-hosted-engine/vm.conf: the engine VM definition the HA agent starts, without
  the cloud-init seed cdrom (cloud-init already ran; the engine lives on the VM disk);
- /etc/ovirt-hosted-engine-ha/broker.conf: the notification settings;
- the configuration volume on the shared storage (a tar: version, fhanswers.conf,
  hosted-engine.conf, broker.conf, vm.conf), which other hosts and the agent read.
"""
import os
import xml.etree.ElementTree as ET

from ovirt_hosted_engine_setup import __version__
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.he_storage import config_volume, heconf, layout
from ovirt_hosted_engine_setup.runner import (FileTransaction, PluginBase, Priority, Stages,
                                              Transaction, event)
from ovirt_hosted_engine_setup.runner import answerfile

NOTIFY_STATES = 'maintenance|start|stop|migrate|up|down'


def vm_conf_path():
    """Where the HA agent keeps the vm.conf it copies from the configuration volume."""
    return os.path.join(paths.HA_RUN_DIR, 'vm.conf')


def he_conf(env):
    """hosted-engine.conf of this host (a dict of hosted-engine.conf keys)."""
    domain = env.get(c.StorageEnv.DOMAIN_CONF)
    if not domain:
        raise RuntimeError('The storage domain values (%s) are missing: the misc stage did '
                           'not complete; deploy again' % c.StorageEnv.DOMAIN_CONF)
    conf = {k: v for k, v in domain.items() if k in heconf.HE_KEYS}
    subject = env.get(c.EngineEnv.CA_SUBJECT)

    def value(key, default=''):
        v = env.get(key)
        return default if v is None else v
    conf.update({
        'fqdn': env[c.NetworkEnv.FQDN],
        'vmid': env[c.VMEnv.VM_UUID],
        'conf': vm_conf_path(),
        'host_id': str(env.get(c.StorageEnv.HOST_ID) or domain.get('host_id') or 1),
        'console': value(c.VDSMEnv.CONSOLE_TYPE, 'vnc'),
        'ca_cert': value(c.EngineEnv.CA_FILE),
        'ca_subject': '"%s"' % subject if subject else '',
        'vdsm_use_ssl': 'true',
        'gateway': value(c.NetworkEnv.GATEWAY),
        'bridge': value(c.NetworkEnv.BRIDGE_NAME, c.DEFAULT_BRIDGE),
        'network_test': value(c.NetworkEnv.NETWORK_TEST, 'ping'),
        'tcp_t_address': value(c.NetworkEnv.NETWORK_TEST_TCP_ADDRESS),
        'tcp_t_port': value(c.NetworkEnv.NETWORK_TEST_TCP_PORT),
        'sanlock_io_timeout': str(domain.get('sanlock_io_timeout') or
                                  env.get(c.StorageEnv.IO_TIMEOUT) or
                                  heconf.DEFAULT_SANLOCK_IO_TIMEOUT),
    })
    missing = [k for k in ('sdUUID', 'storage', 'domainType', 'vm_disk_id', 'vm_disk_vol_id',
                           'conf_image_UUID', 'conf_volume_UUID', 'fqdn', 'vmid')
               if not conf.get(k)]
    if missing:
        raise RuntimeError('hosted-engine.conf would lack %s: the misc stage did not '
                           'complete; deploy again' % ', '.join(missing))
    return conf


def broker_conf(env):
    """broker.conf (INI) from the notification answers."""
    def value(key, default):
        v = env.get(key)
        return default if v in (None, '') else v
    return ('[email]\n'
            'smtp-server = %s\n'
            'smtp-port = %s\n'
            'source-email = %s\n'
            'destination-emails = %s\n'
            '\n'
            '[notify]\n'
            'state_transition = %s\n'
            % (value(c.NotifEnv.SMTP_SERVER, 'localhost'), value(c.NotifEnv.SMTP_PORT, 25),
               value(c.NotifEnv.SOURCE_EMAIL, 'root@localhost'),
               value(c.NotifEnv.DEST_EMAIL, 'root@localhost'), NOTIFY_STATES))


def write_local_files(files):
    """Write {path: text} in one transaction. No backup: the deploy runs only on a host
    without hosted-engine.conf, so what it replaces is what this deploy wrote earlier."""
    with Transaction() as t:
        for path, text in files.items():
            t.append(FileTransaction(path, text, mode=0o644, backup=False))


def xml_without_cdrom(xml):
    """The domain XML without its cdrom devices (the cloud-init seed)."""
    root = ET.fromstring(xml)
    devices = root.find('devices')
    if devices is not None:
        for disk in devices.findall('disk'):
            if disk.get('device') == 'cdrom':
                devices.remove(disk)
    return ET.tostring(root, encoding='unicode')


def ha_vm_conf(vm_conf, domain_xml):
    """vm.conf for the HA agent: the deploy's, with the domain XML minus the seed cdrom."""
    if not vm_conf or not domain_xml:
        raise RuntimeError('The engine VM definition (%s, %s) is missing: the misc stage did '
                           'not complete; deploy again' % (c.VMEnv.VM_CONF, c.VMEnv.DOMAIN_XML))
    out = dict(vm_conf)
    out['xmlBase64'] = heconf.encode_xml(xml_without_cdrom(domain_xml))
    return out


class Plugin(PluginBase):

    @event(stage=Stages.CLOSEUP, name=c.Events.HE_CONF_WRITTEN, priority=Priority.HIGH,
           after=(c.Events.HOST_ADDED,), condition=first_host)
    def _write(self):
        env = self.environment
        conf = he_conf(env)
        he_text = heconf.render(conf)
        vm_text = heconf.render_vm_conf(ha_vm_conf(env.get(c.VMEnv.VM_CONF),
                                                   env.get(c.VMEnv.DOMAIN_XML)))
        broker_text = broker_conf(env)
        self.logger.info('Writing %s, %s and %s', paths.HOSTED_ENGINE_CONF, paths.VM_CONF,
                         paths.BROKER_CONF)
        write_local_files({paths.HOSTED_ENGINE_CONF: he_text, paths.VM_CONF: vm_text,
                           paths.BROKER_CONF: broker_text})
        volume = layout.volume_paths(conf, paths.DATA_CENTER_DIR)['conf']
        fhanswers = answerfile.render(env, self.context.keys.values(), 'hosted-engine --deploy')
        cv = config_volume.ConfigVolume(volume)
        cv.write({'version': __version__ + '\n', 'fhanswers.conf': fhanswers,
                  'hosted-engine.conf': he_text, 'broker.conf': broker_text,
                  'vm.conf': vm_text}, cv.checksum())
        self.logger.info('The configuration volume %s on the shared storage holds the '
                         'hosted-engine configuration', conf['conf_volume_UUID'])
