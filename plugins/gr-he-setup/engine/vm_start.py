"""closeup, first step: start the engine VM through the host agent, wait until it runs,
set a temporary console password and tell the user how to reach the console.

When any later step fails, the misc results (storage domain, volumes, VM) are already
committed: the terminate stage then says how to clean up and retry.
"""
import secrets
import socket
import string

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup.deploy import host_agent
from ovirt_hosted_engine_setup import progress
from ovirt_hosted_engine_setup.api.schema import constant
from ovirt_hosted_engine_setup.runner import BaseEnv, PluginBase, Priority, Stages, event

VM_START_TIMEOUT = 300
DISPLAY_TIMEOUT = 30
TICKET_TTL = 10800          # seconds the temporary console password is valid
RUNNING = ('Up', 'Powering up')
CLEANUP_NOTE = ('To clean up and retry: run ovirt-hosted-engine-cleanup, then '
                'hosted-engine --deploy again')


def temporary_password(rng=None):
    """4 digits and 4 letters, as oVirt's deploy generates the console password."""
    rng = rng or secrets.SystemRandom()
    return (''.join(rng.choice(string.digits) for _ in range(4)) +
            ''.join(rng.choice(string.ascii_letters) for _ in range(4)))


def down_detail(stats):
    if stats is None:
        return 'the host agent does not know the VM'
    return 'status %s%s' % (stats.get('status'), ', %s' % (
        stats.get('exitMessage') or stats.get('exitReason'))
        if stats.get('exitMessage') or stats.get('exitReason') else '')


class Plugin(PluginBase):

    def __init__(self, context):
        super().__init__(context)
        self._created = False

    @event(stage=Stages.INIT)
    def _init(self):
        self.environment.setdefault(c.VDSMEnv.VM_PASSWD, None)

    @event(stage=Stages.CLOSEUP, name=c.Events.VM_STARTED, priority=Priority.HIGH,
           condition=first_host)
    def _start_vm(self):
        env = self.environment
        client = env.get(c.VDSMEnv.CLIENT)
        vm_id = env.get(c.VMEnv.VM_UUID)
        xml = env.get(c.VMEnv.DOMAIN_XML)
        if not client or not vm_id or not xml:
            raise RuntimeError('The engine VM is not defined (missing %s): the misc stage did '
                               'not complete; deploy again' % ', '.join(
                                   k for k, v in ((c.VDSMEnv.CLIENT, client),
                                                  (c.VMEnv.VM_UUID, vm_id),
                                                  (c.VMEnv.DOMAIN_XML, xml)) if not v))
        self.logger.info('Creating the engine VM %s', vm_id)
        client.call('VM.create', vmID=vm_id, vmParams={'xml': xml, 'vmId': vm_id})
        self._created = True
        reporter = progress.Reporter(self.logger)

        def running():
            stats = host_agent.vm_stats(client, vm_id)
            status = stats.get('status') if stats else None
            if stats is None or status == 'Down':
                raise RuntimeError(
                    'The engine VM did not start (%s): look at /var/log/libvirt/qemu/'
                    'HostedEngine.log and the host agent log' % down_detail(stats))
            return status in RUNNING, 'status %s' % status
        try:
            progress.wait_until(running, 'the engine VM to start', VM_START_TIMEOUT, 1.0,
                                reporter)
        except progress.WaitTimeout as e:
            raise RuntimeError('The engine VM did not start: %s; look at /var/log/libvirt/qemu/'
                               'HostedEngine.log and the host agent log' % e)
        self.logger.info('The engine VM is running')
        self._console(client, vm_id, reporter)

    def _console(self, client, vm_id, reporter):
        env = self.environment
        if not env[c.VDSMEnv.VM_PASSWD]:
            env[c.VDSMEnv.VM_PASSWD] = temporary_password()
        self.dialog.register_secret(env[c.VDSMEnv.VM_PASSWD])
        client.call('VM.setTicket', vmID=vm_id, password=env[c.VDSMEnv.VM_PASSWD],
                    ttl=TICKET_TTL, **constant('consoleTicket'))
        self.logger.info('A temporary console password is set on the engine VM (valid %d '
                         'hours)', TICKET_TTL // 3600)

        def display():
            stats = host_agent.vm_stats(client, vm_id) or {}
            for d in stats.get('displayInfo') or ():
                if str(d.get('port', '-1')) not in ('-1', '', 'None'):
                    return d, 'port assigned'
            return None, 'no display port yet'
        try:
            info = progress.wait_until(display, 'the engine VM console port', DISPLAY_TIMEOUT,
                                       1.0, reporter)
        except progress.WaitTimeout as e:
            self.logger.warning('The engine VM console address is not known (%s): use '
                                'hosted-engine --console', e)
            return
        address = info.get('ipAddress') or ''
        if address in ('', '0', '0.0.0.0', '::'):
            address = env.get(c.NetworkEnv.HOST_NAME) or socket.getfqdn()
        kind = info.get('type') or env.get(c.VDSMEnv.CONSOLE_TYPE) or 'vnc'
        self.dialog.note(
            'You can now connect to the engine VM console with:\n'
            '    remote-viewer %s://%s:%s\n'
            'or reach its serial console with: hosted-engine --console\n'
            'To set a console password of your own, run: '
            'hosted-engine --add-console-password' % (kind, address, info.get('port')))

    @event(stage=Stages.TERMINATE, priority=Priority.LAST - 10,
           condition=lambda self: self._created and self.environment[BaseEnv.ERROR])
    def _cleanup_note(self):
        self.logger.debug('%s', CLEANUP_NOTE)
        self.dialog.note(CLEANUP_NOTE)
