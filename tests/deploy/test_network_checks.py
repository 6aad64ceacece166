"""The network answer checks of the deploy (ovirt_hosted_engine_setup.deploy.network_checks)."""
import subprocess

import pytest

from ovirt_hosted_engine_setup.deploy import network_checks as nc


def nic(addr='', prefix=24, gateway='', **kw):
    info = {'addr': addr, 'netmask': '255.255.255.0' if addr else '',
            'ipv4addrs': ['%s/%d' % (addr, prefix)] if addr else [], 'ipv6addrs': [],
            'gateway': gateway, 'mtu': '1500', 'hwaddr': '52:54:00:00:00:01'}
    info.update(kw)
    return info


CAPS = {
    'nics': {'eth0': nic('192.168.222.11', gateway='192.168.222.1'),
             'eth1': nic('10.0.0.5', 16)},
    'bridges': {}, 'vlans': {},
}

BRIDGED = {
    'nics': {'eth0': nic(), 'eth1': nic('10.0.0.5', 16)},
    'bridges': {'ovirtmgmt': dict(nic('192.168.222.11', gateway='192.168.222.1'),
                                  ports=['eth0'])},
    'vlans': {},
}

VLAN_BRIDGED = {
    'nics': {'eno1': nic()},
    'vlans': {'eno1.20': dict(nic(), iface='eno1', vlanid=20)},
    'bridges': {'ovirtmgmt': dict(nic('198.51.100.7', gateway='198.51.100.1'),
                                  ports=['eno1.20'])},
}


def test_nic_names_and_default():
    assert nc.nic_names(CAPS) == ['eth0', 'eth1']
    assert nc.default_nic(CAPS) == 'eth0'


def test_default_is_the_default_route_nic_not_the_first():
    caps = {'nics': {'eth0': nic('10.0.0.5'), 'eth1': nic('192.0.2.9', gateway='192.0.2.1')}}
    assert nc.default_route_nic(caps) == 'eth1'
    assert nc.default_nic(caps) == 'eth1'


def test_default_without_any_route_is_the_first_nic():
    caps = {'nics': {'ens4': nic(), 'ens3': nic()}}
    assert nc.default_route_nic(caps) is None
    assert nc.default_nic(caps) == 'ens3'
    assert nc.default_nic({}) is None


def test_default_nic_under_an_existing_bridge():
    assert nc.bridge_port(BRIDGED, 'ovirtmgmt') == 'eth0'
    assert nc.default_nic(BRIDGED) == 'eth0'
    assert nc.bridge_port(VLAN_BRIDGED, 'ovirtmgmt') == 'eno1'
    assert nc.default_nic(VLAN_BRIDGED) == 'eno1'
    assert nc.bridge_port(BRIDGED, 'other') is None


def test_check_nic():
    assert nc.check_nic(CAPS, 'eth1') == 'eth1'
    with pytest.raises(ValueError) as e:
        nc.check_nic(CAPS, 'eth7')
    assert str(e.value) == "'eth7' is not a NIC of this host: choose one of eth0, eth1"
    with pytest.raises(ValueError, match='reports no NIC'):
        nc.check_nic({'nics': {}}, 'eth0')


def test_gateway_from_caps_and_route_output():
    assert nc.caps_gateway(CAPS) == '192.168.222.1'
    assert nc.caps_gateway(BRIDGED) == '192.168.222.1'
    assert nc.caps_gateway({'nics': {'eth0': nic('10.0.0.5')}}) is None
    out = ('default via 192.0.2.1 dev eth0 proto static metric 100\n'
           'default via 192.0.2.254 dev eth1 metric 200\n')
    assert nc.parse_default_gateway(out) == '192.0.2.1'
    assert nc.parse_default_gateway('default dev wg0 scope link\n') is None
    assert nc.parse_default_gateway('') is None


def test_route_gateway_uses_ip_route():
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, 'default via 203.0.113.1 dev br0\n', '')
    assert nc.route_gateway(run) == '203.0.113.1'
    assert calls == [['ip', '-4', 'route', 'show', 'default']]

    def fails(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, '', 'error')
    assert nc.route_gateway(fails) is None


@pytest.mark.parametrize('value', ['gw.example.com', '2001:db8::1', '192.0.2', '300.1.1.1', ''])
def test_gateway_must_be_ipv4(value):
    with pytest.raises(ValueError, match='is not an IPv4 address: give the gateway address'):
        nc.gateway_address(value)


def test_gateway_that_answers():
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, '1 received', '')
    assert nc.check_gateway(' 192.0.2.1 ', run) == '192.0.2.1'
    assert calls == [['ping', '-c', '1', '-W', '2', '192.0.2.1']]


def test_gateway_that_answers_the_second_echo():
    answers = [1, 0]

    def run(cmd, **kw):
        return subprocess.CompletedProcess(cmd, answers.pop(0), '', '')
    assert nc.check_gateway('192.0.2.1', run) == '192.0.2.1'
    assert answers == []


def test_gateway_that_does_not_answer():
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(
            cmd, 1, '1 packets transmitted, 0 received, 100% packet loss, time 0ms\n', '')
    with pytest.raises(ValueError) as e:
        nc.check_gateway('192.0.2.254', run)
    text = str(e.value)
    assert text.startswith('The gateway 192.0.2.254 does not answer ping (1 packets transmitted')
    assert 'give a gateway that answers' in text
    assert '\n' not in text
    assert len(calls) == nc.PING_ATTEMPTS == 3


def test_ping_of_loopback_really_runs():
    ok, reason = nc.ping('127.0.0.1')
    assert ok, reason


def test_network_test_values():
    assert nc.network_test('DNS') == 'dns'
    with pytest.raises(ValueError, match='use one of ping, dns, tcp, none'):
        nc.network_test('icmp')


def test_local_addresses():
    assert nc.local_addresses(BRIDGED) == {'192.168.222.11', '10.0.0.5'}
    caps = {'nics': {'eth0': nic('192.0.2.9', ipv6addrs=['2001:db8::9/64'])}}
    assert nc.local_addresses(caps) == {'192.0.2.9', '2001:db8::9'}


def test_parse_ip_addr():
    out = ('1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n'
           '2: eth0    inet 192.168.222.11/24 brd 192.168.222.255 scope global eth0\n'
           '2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever\n')
    assert nc.parse_ip_addr(out) == {'127.0.0.1', '192.168.222.11', 'fe80::1'}


LOCAL = {'192.168.222.11'}


def resolver(table):
    def resolve(name):
        if name not in table:
            raise ValueError('%s does not resolve (Name or service not known): add it' % name)
        return table[name]
    return resolve


def test_host_address_resolving_to_this_host():
    r = resolver({'host1.lab.test': ['192.168.222.11']})
    assert nc.check_host_address('host1.lab.test', LOCAL, r) == 'host1.lab.test'
    assert nc.check_host_address('192.168.222.11', LOCAL, r) == '192.168.222.11'


@pytest.mark.parametrize('value, table, words', [
    ('localhost', {}, 'is not an address other hosts can reach'),
    ('localhost.localdomain', {}, 'is not an address other hosts can reach'),
    ('host1', {'host1': ['127.0.1.1']}, 'resolves only to loopback addresses (127.0.1.1)'),
    ('host2.lab.test', {'host2.lab.test': ['192.168.222.12']},
     'resolves to 192.168.222.12, which is not an address of this host (192.168.222.11)'),
    ('192.168.222.99', {}, 'resolves to 192.168.222.99, which is not an address of this host'),
    ('nowhere.lab.test', {}, 'does not resolve'),
    ('', {}, 'is empty'),
])
def test_host_address_refused(value, table, words):
    with pytest.raises(ValueError) as e:
        nc.check_host_address(value, LOCAL, resolver(table))
    assert words in str(e.value)
    assert '\n' not in str(e.value)


def test_resolve_numeric_name_without_lookup():
    assert nc.resolve('127.0.0.1') == ['127.0.0.1']


def test_bridge_attrs_keep_a_static_address_and_the_default_route():
    attrs = nc.bridge_attrs(CAPS, 'eth0')
    assert attrs == {'nic': 'eth0', 'bridged': True, 'bootproto': 'none',
                     'ipaddr': '192.168.222.11', 'prefix': 24, 'gateway': '192.168.222.1',
                     'defaultRoute': True}


def test_bridge_attrs_on_a_nic_without_the_default_route():
    attrs = nc.bridge_attrs(CAPS, 'eth1')
    assert attrs == {'nic': 'eth1', 'bridged': True, 'bootproto': 'none',
                     'ipaddr': '10.0.0.5', 'prefix': 16, 'defaultRoute': False}


def test_bridge_attrs_dhcp_stays_dhcp():
    caps = {'nics': {'eth0': nic('192.0.2.50', gateway='192.0.2.1', dhcpv4=True)}}
    assert nc.bridge_attrs(caps, 'eth0') == {'nic': 'eth0', 'bridged': True,
                                             'bootproto': 'dhcp', 'defaultRoute': True}


def test_bridge_attrs_nic_without_address():
    caps = {'nics': {'eth2': nic()}}
    assert nc.bridge_attrs(caps, 'eth2') == {'nic': 'eth2', 'bridged': True,
                                             'bootproto': 'none', 'defaultRoute': False}
