"""`--== NETWORK CONFIGURATION ==--`: whether to configure the firewall (nftables, or firewalld
where it runs; applied in misc by firewall.py), the NIC of the management bridge, a gateway
that answers ping, the network test of the HA agent and this host's address.

The NICs and addresses come from the host agent's capabilities (OVEHOSTED_VDSM/caps). Typed
answers that fail a check are asked again; answer-file values fail with the same message.
"""
import socket

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import firewall, network_checks, validators
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event

SECTION_START = c.Events.TITLE_S_NETWORK
SECTION_END = c.Events.TITLE_E_NETWORK
FIREWALL = 'ohosted.network.firewall'
NIC = 'ohosted.network.nic'
GATEWAY = 'ohosted.network.gateway'
NETWORK_TEST = 'ohosted.network.test'
HOST_ADDRESS = 'ohosted.network.hostaddress'

FIREWALL_NOTE = '%s was detected on your computer, do you wish setup to configure it?'
NO_FIREWALL_NOTE = ('Neither nftables (nft) nor firewalld was found on this host: setup can '
                    'only leave the firewall as it is. Do you wish setup to configure it?')
NIC_NOTE = 'Please indicate a nic to set %s bridge on'
GATEWAY_NOTE = 'Please indicate a pingable gateway IP address'
TEST_NOTE = 'Please specify which way the network connectivity should be checked'
TCP_ADDRESS_NOTE = 'Please specify the desired destination IP address of the TCP connection test'
TCP_PORT_NOTE = 'Please specify the desired port of the TCP connection test'
HOST_NOTE = ('Please provide the address of this host.\n'
             'Note: The engine VM and all the other hosts should be able to correctly resolve '
             'it.\n'
             'Host address')


class NetworkCheckError(RuntimeError):
    """A network answer failed a check; str() names the problem and the fix."""


class Plugin(PluginBase):

    @event(stage=Stages.INIT)
    def _init(self):
        env = self.environment
        env.setdefault(c.NetworkEnv.BRIDGE_NAME, c.DEFAULT_BRIDGE)
        for key in (c.NetworkEnv.BRIDGE_IF, c.NetworkEnv.GATEWAY, c.NetworkEnv.FIREWALL_MANAGER,
                    c.NetworkEnv.NETWORK_TEST, c.NetworkEnv.NETWORK_TEST_TCP_ADDRESS,
                    c.NetworkEnv.NETWORK_TEST_TCP_PORT, c.NetworkEnv.HOST_NAME):
            env.setdefault(key, None)

    def _ask_or_check(self, key, check, ask):
        return self.ask_or_check(key, check, ask, NetworkCheckError)

    @property
    def caps(self):
        return self.environment.get(c.VDSMEnv.CAPS) or {}

    @event(stage=Stages.CUSTOMIZATION, name=FIREWALL, after=(SECTION_START,),
           before=(SECTION_END,))
    def _firewall(self):
        """firewallManager: nftables, firewalld or none. Asked as oVirt asks it (Yes: the
        manager found here); a given value is checked against what this host has."""
        found = firewall.detect()

        def check(value):
            return firewall.check_manager(value, found)

        def answer(value):
            if value == 'Yes' and found is None:
                raise ValueError('neither nft nor firewalld is on this host: %s, or answer No'
                                 % firewall.INSTALL_HINT)

        def ask():
            note = FIREWALL_NOTE % found if found else NO_FIREWALL_NOTE
            reply = self.dialog.query_string(
                'NETWORK_FIREWALL_MANAGER', note, valid_values=('Yes', 'No'),
                case_sensitive=False, default='Yes' if found else 'No', validator=answer)
            return found if reply == 'Yes' else firewall.NONE
        self._ask_or_check(c.NetworkEnv.FIREWALL_MANAGER, check, ask)

    @event(stage=Stages.CUSTOMIZATION, name=NIC, after=(SECTION_START, FIREWALL),
           before=(SECTION_END,))
    def _nic(self):
        env = self.environment
        caps = self.caps
        bridge = env[c.NetworkEnv.BRIDGE_NAME]
        try:
            validators.name(bridge)
        except ValueError as e:
            raise NetworkCheckError('%s=%r: %s' % (c.NetworkEnv.BRIDGE_NAME, bridge, e))
        port = network_checks.bridge_port(caps, bridge)
        if bridge in (caps.get('bridges') or {}):
            self.logger.info('Bridge %s already created', bridge)
            if env[c.NetworkEnv.BRIDGE_IF] is None and port:
                env[c.NetworkEnv.BRIDGE_IF] = port
                return

        def check(value):
            return network_checks.check_nic(caps, str(value).strip())
        names = network_checks.nic_names(caps)
        if not names:
            raise NetworkCheckError('The host agent reports no NIC on this host: connect a '
                                    'network interface card and deploy again')
        self._ask_or_check(c.NetworkEnv.BRIDGE_IF, check, lambda: self.dialog.query_string(
            'NETWORK_BRIDGE_IF', NIC_NOTE % bridge, valid_values=names,
            default=network_checks.default_nic(caps), validator=check))

    @event(stage=Stages.CUSTOMIZATION, name=GATEWAY, after=(SECTION_START, NIC),
           before=(SECTION_END,))
    def _gateway(self):
        default = (network_checks.caps_gateway(self.caps) or
                   network_checks.route_gateway())
        self._ask_or_check(
            c.NetworkEnv.GATEWAY, network_checks.check_gateway,
            lambda: self.dialog.query_string('NETWORK_GATEWAY', GATEWAY_NOTE, default=default,
                                             validator=network_checks.check_gateway))

    @event(stage=Stages.CUSTOMIZATION, name=NETWORK_TEST, after=(SECTION_START, GATEWAY),
           before=(SECTION_END,))
    def _network_test(self):
        test = self._ask_or_check(
            c.NetworkEnv.NETWORK_TEST, network_checks.network_test,
            lambda: self.dialog.query_string(
                'NETWORK_TEST', TEST_NOTE, valid_values=network_checks.NETWORK_TESTS,
                case_sensitive=False, default=network_checks.DEFAULT_NETWORK_TEST))
        if test != 'tcp':
            return

        def address(value):
            validators.host_address(str(value).strip())
            return str(value).strip()
        self._ask_or_check(
            c.NetworkEnv.NETWORK_TEST_TCP_ADDRESS, address,
            lambda: self.dialog.query_string('NETWORK_TEST_TCP_ADDRESS', TCP_ADDRESS_NOTE,
                                             validator=address))
        self._ask_or_check(
            c.NetworkEnv.NETWORK_TEST_TCP_PORT, validators.port,
            lambda: self.dialog.query_string('NETWORK_TEST_TCP_PORT', TCP_PORT_NOTE,
                                             validator=validators.port))

    @event(stage=Stages.CUSTOMIZATION, name=HOST_ADDRESS, after=(SECTION_START, NETWORK_TEST),
           before=(SECTION_END,))
    def _host_address(self):
        local = network_checks.local_addresses(self.caps)

        def check(value):
            return network_checks.check_host_address(value, local)
        self._ask_or_check(
            c.NetworkEnv.HOST_NAME, check,
            lambda: self.dialog.query_string('NETWORK_HOST_ADDRESS', HOST_NOTE,
                                             default=socket.getfqdn(), validator=check))
