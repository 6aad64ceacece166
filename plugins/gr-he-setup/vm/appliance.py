"""The engine appliance: the OVA question (opened and validated at once), the fit of the VM
disk, and in misc the appliance disk copied into the VM volume."""
import glob
import os
import time

from ovirt_hosted_engine_setup.deploy import appliance as applib
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup.deploy import engine_vm
from ovirt_hosted_engine_setup import progress
from ovirt_hosted_engine_setup.he_storage import layout
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event

from . import common

APPLIANCE_GLOB = '/usr/share/ovirt-engine-appliance/*.ova'


def installed_appliance(pattern=APPLIANCE_GLOB):
    """The newest installed oVirt engine appliance OVA, or None."""
    found = sorted(glob.glob(pattern), key=lambda p: (os.path.getmtime(p), p))
    return found[-1] if found else None


def _human(n):
    return '%.1f GiB' % (n / applib.GiB) if n >= applib.GiB else '%d MiB' % -(-n // applib.MiB)


def check_tempdir(app, tempdir):
    """A gzip OVA's disk is extracted into tempdir before the copy: it must hold it."""
    if not app.compressed:
        return
    try:
        st = os.statvfs(tempdir)
    except OSError as e:
        raise ValueError('the temporary directory %s is not usable (%s): create it or set '
                         '%s to another directory' % (tempdir, e.strerror or e,
                                                      c.CoreEnv.TEMPDIR))
    free = st.f_bavail * st.f_frsize
    if free < app.disk_member_size:
        raise ValueError('not enough free space in %s to extract the appliance disk: %s needed, '
                         '%s free; free space there or set %s to another directory'
                         % (tempdir, _human(app.disk_member_size), _human(free),
                            c.CoreEnv.TEMPDIR))


def check_disk_fit(image_size_gb, ovf_info):
    """The VM disk (GiB) must hold the appliance's virtual disk."""
    if image_size_gb is None or not ovf_info:
        return
    try:
        engine_vm.check_disk_size(image_size_gb, ovf_info['disk_size'])
    except engine_vm.VMConfigError as e:
        raise ValueError('%s (the VM disk %s is %s GiB, the appliance disk %s): give a larger '
                         'disk size' % (e, c.StorageEnv.IMAGE_SIZE_GB, image_size_gb,
                                        _human(ovf_info['disk_size'])))


class Plugin(PluginBase):

    def __init__(self, context):
        super().__init__(context)
        self.app = None

    @event(stage=Stages.INIT)
    def _init(self):
        env = self.environment
        for key in (c.VMEnv.OVF_ARCHIVE, c.VMEnv.OVF_INFO, c.VMEnv.VM_UUID,
                    c.VMEnv.MEM_SIZE_MB, c.VMEnv.VCPUS, c.VMEnv.MAC_ADDR,
                    c.VMEnv.EMULATED_MACHINE, c.VMEnv.CLOUD_INIT_ISO, c.VMEnv.CDROM,
                    c.VMEnv.CLOUDINIT_INSTANCE_HOSTNAME, c.VMEnv.CLOUDINIT_INSTANCE_DOMAINNAME,
                    c.VMEnv.CLOUDINIT_EXECUTE_ESETUP, c.VMEnv.CLOUDINIT_VM_NETWORK,
                    c.VMEnv.CLOUDINIT_VM_STATIC_CIDR, c.VMEnv.CLOUDINIT_VM_DNS,
                    c.VMEnv.CLOUDINIT_VM_ETC_HOSTS, c.VMEnv.CLOUDINIT_VM_TZ,
                    c.VMEnv.ROOT_SSH_ACCESS, c.VMEnv.ROOT_SSH_PUBKEY,
                    c.VMEnv.CLOUDINIT_ROOTPWD, c.VMEnv.SEED_ISO_PATH, c.VMEnv.DOMAIN_XML,
                    c.VMEnv.VM_CONF, c.VMEnv.CHANNEL_PATH, c.VDSMEnv.CPU,
                    c.VDSMEnv.CONSOLE_TYPE, c.NetworkEnv.FQDN):
            env.setdefault(key, None)

    def _open(self, path):
        """Validator of the OVA path: open the archive, read its OVF, check the temp dir."""
        path = os.path.abspath(os.path.expanduser(str(path).strip()))
        try:
            app = applib.Appliance.open(path)
        except applib.ApplianceError as e:
            raise ValueError(str(e))
        check_tempdir(app, self.environment[c.CoreEnv.TEMPDIR] or '/var/tmp')
        self.app = app
        return path

    @event(stage=Stages.CUSTOMIZATION, name=common.E_OVF, condition=first_host,
           **common.SECTION)
    def _ovf(self):
        env = self.environment
        default = installed_appliance()
        common.ask(self, c.VMEnv.OVF_ARCHIVE, 'OVEHOSTED_VMENV_OVF',
                   'Please specify path to OVF archive you would like to use',
                   self._open, default=default)
        app = self.app
        env[c.VMEnv.OVF_INFO] = {
            'path': app.path, 'vcpus': app.vcpus, 'memory_mb': app.memory_mb,
            'disk_size': app.disk_size_bytes, 'disk_format': app.disk_format,
            'compressed': app.compressed, 'disk_member_size': app.disk_member_size,
            'vm_name': app.vm_name, 'engine_version': app.engine_version,
        }
        self.logger.info('Appliance %s: %d vCPU, %d MB of memory, a %s %s disk',
                         os.path.basename(app.path), app.vcpus, app.memory_mb,
                         _human(app.disk_size_bytes), app.disk_format)
        check_disk_fit(env.get(c.StorageEnv.IMAGE_SIZE_GB), env[c.VMEnv.OVF_INFO])

    @event(stage=Stages.VALIDATION, condition=first_host)
    def _validate_disk_fit(self):
        check_disk_fit(self.environment.get(c.StorageEnv.IMAGE_SIZE_GB),
                       self.environment.get(c.VMEnv.OVF_INFO))

    @event(stage=Stages.MISC, name=c.Events.IMAGE_AVAILABLE,
           after=(c.Events.STORAGE_AVAILABLE,), before=(c.Events.SEED_AVAILABLE,),
           condition=first_host)
    def _copy_image(self):
        env = self.environment
        app = self.app or applib.Appliance.open(env[c.VMEnv.OVF_ARCHIVE])
        volume = layout.volume_paths(env[c.StorageEnv.DOMAIN_CONF])['vm']
        report = progress.Reporter(self.logger)
        what = 'the appliance disk to be copied into the VM volume'

        def on_progress(done, total, elapsed):
            report(what, elapsed, None, '%d%% of %s' % (100 * done // max(1, total),
                                                       _human(total)))

        self.logger.info('Copying the appliance disk into the VM volume')
        t0 = time.monotonic()
        try:
            app.copy_to_volume(volume, tmpdir=env[c.CoreEnv.TEMPDIR] or '/var/tmp',
                               progress=on_progress)
        except applib.ApplianceError as e:
            raise RuntimeError('%s; the storage domain is removed by the rollback, fix the '
                               'appliance or the storage and deploy again' % e)
        self.logger.info('Appliance disk copied into the VM volume in %.0f s',
                         time.monotonic() - t0)
