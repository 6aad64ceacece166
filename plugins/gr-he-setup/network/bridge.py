"""misc: the management bridge (ovirtmgmt) on the chosen NIC through the host agent
(Host.setupNetworks keeping the NIC's addressing, then Host.setSafeNetworkConfig), unless the
host already has it. If a later step before the transaction commit fails, the bridge is
removed again and the NIC gets its configuration back."""
from ovirt_hosted_engine_setup import constants as c
from ovirt_hosted_engine_setup import network_checks
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, TransactionElement, event


def agent_message(e):
    """The host agent's message of an error, on one line."""
    return ' '.join(str(getattr(e, 'message', None) or e).split())


class BridgeError(RuntimeError):
    """Creating the bridge failed; str() names the problem and the fix."""


class BridgeRollback(TransactionElement):
    """Removes the bridge this deploy created when the deploy fails before the commit."""

    def __init__(self, client, bridge, nic, logger):
        self.client = client
        self.bridge = bridge
        self.nic = nic
        self.logger = logger

    def __str__(self):
        return 'management bridge %s on %s' % (self.bridge, self.nic)

    def abort(self):
        self.logger.info('Removing the bridge %s created by this deploy (%s gets its '
                         'configuration back)', self.bridge, self.nic)
        try:
            self.client.call('Host.setupNetworks', networks={self.bridge: {'remove': True}},
                             bondings={}, options={'connectivityCheck': False})
            self.client.call('Host.setSafeNetworkConfig')
        except Exception as e:
            self.logger.error('Removing the bridge %s failed (%s): remove it with "ip link del '
                              '%s" and restore the address of %s', self.bridge,
                              agent_message(e), self.bridge, self.nic)


class Plugin(PluginBase):

    @event(stage=Stages.MISC, name=c.Events.BRIDGE_AVAILABLE)
    def _bridge(self):
        env = self.environment
        client = env[c.VDSMEnv.CLIENT]
        bridge = env[c.NetworkEnv.BRIDGE_NAME]
        nic = env[c.NetworkEnv.BRIDGE_IF]
        caps = client.call('Host.getCapabilities')
        env[c.VDSMEnv.CAPS] = caps
        if bridge in (caps.get('bridges') or {}):
            self.logger.info('Bridge %s already created', bridge)
            return
        attrs = network_checks.bridge_attrs(caps, nic)
        self.logger.info('Creating the management bridge %s on %s%s', bridge, nic,
                         ' (%s/%s)' % (attrs['ipaddr'], attrs.get('prefix') or
                                       attrs.get('netmask')) if attrs.get('ipaddr') else '')
        self.logger.debug('setupNetworks %s: %s', bridge, attrs)
        try:
            client.call('Host.setupNetworks', networks={bridge: attrs}, bondings={},
                        options={'connectivityCheck': False})
        except Exception as e:
            raise BridgeError('Creating the bridge %s on %s failed: the host agent reports: %s: '
                              'check the NIC (%s) and its addresses'
                              % (bridge, nic, agent_message(e),
                                 c.NetworkEnv.BRIDGE_IF))
        self.context.main_transaction.append(BridgeRollback(client, bridge, nic, self.logger))
        client.call('Host.setSafeNetworkConfig')
        env[c.VDSMEnv.CAPS] = client.call('Host.getCapabilities')
