"""closeup, VM_SHUTDOWN: shut the engine VM down so the HA services can take it over.

The guest is asked to shut down (VM.shutdown); if it is not Down within the limit it is
powered off (VM.destroy). VM.destroy then clears the host agent's record of the VM, and the
cloud-init seed ISO is removed (the VM definition the HA agent uses has no cdrom)."""
import os

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup.deploy import host_agent
from ovirt_hosted_engine_setup import progress
from ovirt_hosted_engine_setup.runner import PluginBase, Priority, Stages, event

SHUTDOWN_TIMEOUT = 180    # the guest's time to power off after the ACPI request


class Plugin(PluginBase):

    @event(stage=Stages.CLOSEUP, name=c.Events.VM_SHUTDOWN, priority=Priority.HIGH,
           after=(c.Events.HE_CONF_WRITTEN,), condition=first_host)
    def _shutdown(self):
        env = self.environment
        client = env[c.VDSMEnv.CLIENT]
        vm_id = env[c.VMEnv.VM_UUID]
        self.logger.info('Shutting down the engine VM, to hand it over to the HA services')
        if host_agent.vm_status(client, vm_id) not in (None, 'Down'):
            client.call('VM.shutdown', vmID=vm_id, delay=0, timeout=SHUTDOWN_TIMEOUT,
                        message='The engine VM is handed over to the hosted-engine HA services')

            def down():
                status = host_agent.vm_status(client, vm_id)
                return status in (None, 'Down'), 'status %s' % status
            try:
                progress.wait_until(down, 'the engine VM to shut down', SHUTDOWN_TIMEOUT, 1.0,
                                    progress.Reporter(self.logger))
            except progress.WaitTimeout as e:
                self.logger.warning('%s: powering the engine VM off', e)
        host_agent.destroy_vm(client, vm_id)
        self.logger.info('The engine VM is down')
        seed = env.get(c.VMEnv.SEED_ISO_PATH)
        if seed and os.path.exists(seed):
            try:
                os.unlink(seed)
                self.logger.debug('removed the cloud-init seed %s', seed)
            except OSError as e:
                self.logger.warning('Cannot remove the cloud-init seed %s (%s): remove it by '
                                    'hand (it holds the root password hash)', seed,
                                    e.strerror or e)
