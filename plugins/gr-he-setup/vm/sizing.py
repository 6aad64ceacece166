"""The engine VM's CPU type, vCPUs, memory, MAC address, console and machine type."""
import re
import uuid

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup.deploy import engine_vm
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event

from . import common

_MACHINE = re.compile(r'^(pc|q35)(-[A-Za-z0-9_.-]+)?$')


def check_machine(value):
    text = str(value).strip()
    if not _MACHINE.match(text):
        raise ValueError('the emulated machine %r is not a QEMU x86 machine type: use pc '
                         '(the default), q35 or a versioned one such as pc-i440fx-7.2' % text)
    return text


def check_console(value):
    text = str(value).strip().lower()
    if text not in ('vnc', 'spice'):
        raise ValueError('the console type %r is neither vnc nor spice' % (value,))
    return text


class Plugin(PluginBase):

    def _caps(self):
        return self.environment.get(c.VDSMEnv.CAPS) or {}

    def host_free_mb(self):
        """Free memory of the host (Host.getStats memFree), else its size (caps memSize)."""
        client = self.environment.get(c.VDSMEnv.CLIENT)
        if client is not None:
            try:
                return int(client.call('Host.getStats')['memFree'])
            except Exception as e:   # an older agent: fall back to the memory size
                self.logger.debug('Host.getStats memFree: %s', e)
        try:
            return int(self._caps().get('memSize')) or None
        except (TypeError, ValueError):
            return None

    def _sized(self, key, name, note, default, validate, check, warning_id):
        """Ask (or validate) a size; a value below the minimum needs confirmation."""
        while True:
            value, typed = common.ask(self, key, name, note, validate, default=default)
            warning = check(value)
            if warning is None or common.confirm_warning(self, warning_id, warning):
                return value
            if not typed:
                raise common.refused(warning, warning_id, key)
            self.environment[key] = None

    @event(stage=Stages.CUSTOMIZATION, name=common.E_SIZING, after=(
        c.Events.TITLE_S_VM, common.E_OVF), before=(c.Events.TITLE_E_VM,),
        condition=first_host)
    def _sizing(self):
        env = self.environment
        ovf = env.get(c.VMEnv.OVF_INFO) or {}
        caps = self._caps()

        supported = engine_vm.supported_cpu_models(caps)
        listing = ''.join('    - %s: %s\n' % (n, d) for n, d in supported)
        common.ask(self, c.VDSMEnv.CPU, 'OVEHOSTED_VMENV_CPU_TYPE',
                   'The following CPU types are supported by this host:\n%s'
                   'Please specify the CPU type to be used by the VM' % listing,
                   lambda v: engine_vm.check_cpu_model(v, supported),
                   default=supported[0][0] if supported else None)

        cores = engine_vm.host_cores(caps)

        def vcpus(v):
            n = engine_vm._number(v, 'the number of vCPUs')
            engine_vm.check_vcpus(n, cores)
            return n
        self._sized(c.VMEnv.VCPUS, 'OVEHOSTED_VMENV_CPU',
                    'Please specify the number of virtual CPUs for the VM (Defaults to '
                    'appliance OVF value)', ovf.get('vcpus') or c.MIN_VCPUS, vcpus,
                    lambda n: engine_vm.check_vcpus(n, cores), 'low-vcpus')

        free = self.host_free_mb()

        def memory(v):
            n = engine_vm._number(v, 'the memory size')
            engine_vm.check_memory(n, free)
            return n
        self._sized(c.VMEnv.MEM_SIZE_MB, 'OVEHOSTED_VMENV_MEM',
                    'Please specify the memory size of the VM in MB (Defaults to appliance '
                    'OVF value)', ovf.get('memory_mb') or c.MIN_MEM_SIZE_MB, memory,
                    lambda n: engine_vm.check_memory(n, free), 'low-memory')

        common.ask(self, c.VMEnv.MAC_ADDR, 'OVEHOSTED_VMENV_MAC',
                   'You may specify a unicast MAC address for the VM or accept a randomly '
                   'generated default', engine_vm.check_mac, default=engine_vm.random_mac())

        common.ask(self, c.VDSMEnv.CONSOLE_TYPE, 'OVEHOSTED_VMENV_CONSOLE_TYPE',
                   'Please specify the console type you would like to use to connect to the '
                   'VM', check_console, default='vnc', valid_values=('vnc', 'spice'),
                   case_sensitive=False)

        if env.get(c.VMEnv.EMULATED_MACHINE) is None:
            env[c.VMEnv.EMULATED_MACHINE] = 'pc'
        common.ask(self, c.VMEnv.EMULATED_MACHINE, 'OVEHOSTED_VMENV_MACHINE',
                   'Please specify the emulated machine type of the VM', check_machine)
        if env.get(c.VMEnv.VM_UUID) is None:
            env[c.VMEnv.VM_UUID] = str(uuid.uuid4())
