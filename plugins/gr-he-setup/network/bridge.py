"""misc: the management bridge (ovirtmgmt) on the chosen NIC through the host agent
(Host.setupNetworks keeping the NIC's addressing, then Host.setSafeNetworkConfig), unless the
host already has it. If a later step before the transaction commit fails, the bridge is
removed again and the NIC gets its configuration back.

Before the bridge is made, what the NIC had (as Host.getCapabilities reports it: addresses,
default gateway, MTU, DHCP) is recorded in paths.NETWORK_RECORD (JSON, mode 0600), so that
ovirt-hosted-engine-cleanup can give the NIC back as the deploy found it. No record is
written when the bridge was already there (cleanup then leaves the network alone)."""
import datetime
import json
import os

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import network_checks
from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.he_storage import heconf
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, TransactionElement, event


def agent_message(e):
    """The host agent's message of an error, on one line."""
    return ' '.join(str(getattr(e, 'message', None) or e).split())


class BridgeError(RuntimeError):
    """Creating the bridge failed; str() names the problem and the fix."""


# what of a NIC's Host.getCapabilities entry is recorded
RECORDED_KEYS = ('addr', 'netmask', 'ipv4addrs', 'gateway', 'ipv4defaultroute', 'mtu',
                 'dhcpv4', 'bootproto4', 'ipv6addrs', 'dhcpv6', 'hwaddr')


def network_record(caps, bridge, nic, attrs):
    """The record of the NIC before the bridge (a dict, as written to the file)."""
    info = (caps.get('nics') or {}).get(nic) or {}
    return {'bridge': bridge, 'nic': nic,
            'recorded': datetime.datetime.now(datetime.timezone.utc).strftime(
                '%Y-%m-%dT%H:%M:%SZ'),
            'nic_before': {k: info[k] for k in RECORDED_KEYS if k in info},
            'setup_networks': attrs}


def write_network_record(record, path=None):
    path = path or paths.NETWORK_RECORD
    heconf.write(path, json.dumps(record, indent=1, sort_keys=True) + '\n', mode=0o600)
    return path


def remove_network_record(path=None):
    try:
        os.unlink(path or paths.NETWORK_RECORD)
    except FileNotFoundError:
        pass


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
            remove_network_record()
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
            record = write_network_record(network_record(caps, bridge, nic, attrs))
        except OSError as e:
            raise BridgeError('Cannot record the configuration of %s before creating the bridge '
                              '%s (%s): check that %s is writable'
                              % (nic, bridge, e.strerror or e, paths.SETUP_STATE_DIR))
        self.logger.debug('the configuration of %s before the bridge is recorded in %s',
                          nic, record)
        try:
            client.call('Host.setupNetworks', networks={bridge: attrs}, bondings={},
                        options={'connectivityCheck': False})
        except Exception as e:
            remove_network_record()
            raise BridgeError('Creating the bridge %s on %s failed: the host agent reports: %s: '
                              'check the NIC (%s) and its addresses'
                              % (bridge, nic, agent_message(e),
                                 c.NetworkEnv.BRIDGE_IF))
        self.context.main_transaction.append(BridgeRollback(client, bridge, nic, self.logger))
        client.call('Host.setSafeNetworkConfig')
        env[c.VDSMEnv.CAPS] = client.call('Host.getCapabilities')
