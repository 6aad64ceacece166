"""The engine VM definition (misc): libvirt domain XML with the VM lease, the seed cdrom and
the setup channel, and the vm.conf dict that closeup writes."""
import os
import uuid

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup.deploy import engine_vm
from ovirt_hosted_engine_setup import he_storage
from ovirt_hosted_engine_setup.he_storage import layout, volumes
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event

CHANNELS_DIR = '/var/lib/libvirt/qemu/channels'


def channel_path(vm_uuid):
    """The host side (unix socket) of the VM's org.ovirt.hosted-engine-setup.0 channel."""
    return os.path.join(CHANNELS_DIR, '%s.%s' % (vm_uuid, engine_vm.SETUP_CHANNEL))


def volume_format(path):
    try:
        fmt = volumes.image_info(path).get('format')
    except he_storage.StorageError:
        return 'raw'
    return fmt if fmt in ('raw', 'qcow2') else 'raw'


def make_spec(env):
    conf = env[c.StorageEnv.DOMAIN_CONF]
    vols = layout.volume_paths(conf)
    caps = env.get(c.VDSMEnv.CAPS) or {}
    return engine_vm.EngineVMSpec(
        vm_uuid=env[c.VMEnv.VM_UUID], memory_mb=int(env[c.VMEnv.MEM_SIZE_MB]),
        vcpus=int(env[c.VMEnv.VCPUS]), disk_path=vols['vm'], sd_uuid=conf['sdUUID'],
        volume_uuid=conf['vm_disk_vol_id'], image_uuid=conf['vm_disk_id'],
        lease_path=vols['vm_lease'], disk_format=volume_format(vols['vm']),
        cpu_model=env.get(c.VDSMEnv.CPU),
        domain_type='kvm' if engine_vm.kvm_usable(caps) else 'qemu',
        emulated_machine=env.get(c.VMEnv.EMULATED_MACHINE) or 'pc',
        seed_iso=env.get(c.VMEnv.SEED_ISO_PATH),
        bridge=env.get(c.NetworkEnv.BRIDGE_NAME) or c.DEFAULT_BRIDGE,
        mac=env[c.VMEnv.MAC_ADDR], channel_path=env[c.VMEnv.CHANNEL_PATH],
        console=env.get(c.VDSMEnv.CONSOLE_TYPE) or 'vnc')


class Plugin(PluginBase):

    @event(stage=Stages.MISC, name=c.Events.VM_CONF_AVAILABLE,
           after=(c.Events.SEED_AVAILABLE, c.Events.IMAGE_AVAILABLE), condition=first_host)
    def _vm_conf(self):
        env = self.environment
        if env.get(c.VMEnv.VM_UUID) is None:
            env[c.VMEnv.VM_UUID] = str(uuid.uuid4())
        env[c.VMEnv.CHANNEL_PATH] = channel_path(env[c.VMEnv.VM_UUID])
        self.logger.info('Configuring the engine VM')
        spec = make_spec(env)
        try:
            xml = engine_vm.domain_xml(spec)
        except engine_vm.VMConfigError as e:
            raise RuntimeError('Cannot define the engine VM: %s' % e)
        env[c.VMEnv.DOMAIN_XML] = xml
        env[c.VMEnv.VM_CONF] = engine_vm.vm_conf(spec, xml)
        self.logger.debug('engine VM %s: %s domain, %s vCPU, %s MB, seed %s',
                          spec.vm_uuid, spec.domain_type, spec.vcpus, spec.memory_mb,
                          spec.seed_iso)
