"""The firewall answer (OVEHOSTED_NETWORK/firewallManager) applied.

Before the preview: the ports a hosted-engine host serves (SSH, the host agent, libvirt TLS,
the VM consoles; on a host that is also a gluster server, glusterd and its bricks) are shown in the preview as what will be opened, and with nftables the rules
are checked by the kernel without a change (nft -c). In misc: the ports are opened (our own
nftables table, or our firewalld service) and what was applied is recorded in
/var/lib/ovirt-hosted-engine-setup/firewall.json; if a later step before the transaction
commit fails, the firewall is put back as it was and the record removed.
ovirt-hosted-engine-cleanup removes the rules. With the answer none the firewall is left as
it is, and the deploy says which ports the host needs.
"""
import os

from ovirt_hosted_engine_setup.api.errors import ServerError
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import firewall
from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, TransactionElement, event


class FirewallRollback(TransactionElement):
    """Puts the firewall back as it was when the deploy fails before the commit."""

    def __init__(self, applied, record_path, logger):
        self.applied = applied
        self.record_path = record_path
        self.logger = logger

    def __str__(self):
        return str(self.applied)

    def abort(self):
        try:
            what = self.applied.undo()
            self.logger.info('Firewall rules of this deploy removed (%s)', what)
        except firewall.FirewallError as e:
            self.logger.error('Removing the firewall rules of this deploy failed: %s', e)
        if os.path.lexists(self.record_path):
            os.unlink(self.record_path)


class Plugin(PluginBase):

    _gluster_server = None

    @event(stage=Stages.INIT)
    def _init(self):
        self.environment.setdefault(c.NetworkEnv.FIREWALL_PORTS, None)

    def manager(self):
        return self.environment.get(c.NetworkEnv.FIREWALL_MANAGER) or firewall.NONE

    def gluster_server(self):
        """Whether glusterd runs on this host: the host agent's GlusterVolume.list without a
        server asks the local glusterd. A host agent without gluster support (VDSM without
        vdsm-gluster) or a glusterd that does not answer: not a gluster server."""
        if self._gluster_server is None:
            client = self.environment.get(c.VDSMEnv.CLIENT)
            if client is None:      # no host agent connection in this run: nothing to ask
                return False
            try:
                client.call('GlusterVolume.list')
                self._gluster_server = True
            except ServerError as e:
                self.logger.debug('no gluster server on this host: %s (code %s)',
                                  e.message, e.code)
                self._gluster_server = False
        return self._gluster_server

    def ports(self):
        return firewall.host_ports(ssh_port=self.environment.get(c.NetworkEnv.SSHD_PORT),
                                   gluster_server=self.gluster_server())

    @event(stage=Stages.VALIDATION, before=(c.Events.PREVIEW,))
    def _validate(self):
        manager = self.manager()
        ports = self.ports()
        if manager == firewall.NFTABLES:
            firewall.nft_check(ports)
        self.environment[c.NetworkEnv.FIREWALL_PORTS] = firewall.preview_text(manager, ports)

    @event(stage=Stages.MISC, name=c.Events.FIREWALL_AVAILABLE,
           after=(c.Events.BRIDGE_AVAILABLE,))
    def _apply(self):
        manager = self.manager()
        ports = self.ports()
        if manager == firewall.NONE:
            self.logger.info('The firewall is left as it is (%s=none): this host needs %s '
                             'open', c.NetworkEnv.FIREWALL_MANAGER,
                             firewall.describe_ports(ports))
            return
        applied = firewall.apply(manager, ports)
        rollback = FirewallRollback(applied, paths.FIREWALL_RECORD, self.logger)
        self.context.main_transaction.append(rollback)
        firewall.write_record(applied, paths.FIREWALL_RECORD)
        where = ('nftables table %s' % firewall.TABLE if manager == firewall.NFTABLES else
                 'firewalld service %s in zone %s' % (firewall.SERVICE,
                                                     applied.details.get('zone')))
        self.logger.info('Firewall: opened %s (%s; recorded in %s)',
                         firewall.describe_ports(ports), where, paths.FIREWALL_RECORD)
