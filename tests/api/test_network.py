"""Host.setupNetworks / setSafeNetworkConfig inside network namespaces made here.

Two namespaces joined by a veth pair: "host" (where hostd runs) and "peer".
Nothing touches the machine's own interfaces.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from .hostd_proc import TOP, Hostd, python

if os.geteuid() != 0:
    pytest.skip('network namespaces need root', allow_module_level=True)

HOST_IP, PEER_IP = '10.213.77.1', '10.213.77.2'


def ip(*args, check=True):
    return subprocess.run(['ip'] + list(args), capture_output=True, text=True, check=check,
                          timeout=30)


def ipj(ns, *args):
    out = ip('-n', ns, '-j', *args).stdout
    return json.loads(out) if out.strip() else []


def addrs(ns, dev):
    for link in ipj(ns, 'addr', 'show', 'dev', dev):
        return ['%s/%d' % (a['local'], a['prefixlen']) for a in link.get('addr_info', [])
                if a['family'] == 'inet']
    return []


def master(ns, dev):
    return ipj(ns, 'link', 'show', 'dev', dev)[0].get('master')


def default_dev(ns):
    routes = ipj(ns, 'route', 'show', 'default')
    return routes[0].get('dev') if routes else None


def exists(ns, dev):
    return ip('-n', ns, 'link', 'show', 'dev', dev, check=False).returncode == 0


@pytest.fixture(scope='module')
def lab():
    tag = 'heapi%d' % os.getpid()
    host, peer = tag + 'h', tag + 'p'
    ip('netns', 'add', host)
    ip('netns', 'add', peer)
    base = tempfile.mkdtemp(prefix='api-net-')
    agent = None
    try:
        ip('-n', host, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1',
           'netns', peer)
        for ns, dev, a in ((host, 'veth0', HOST_IP), (peer, 'veth1', PEER_IP)):
            ip('-n', ns, 'link', 'set', 'lo', 'up')
            ip('-n', ns, 'addr', 'add', a + '/24', 'dev', dev)
            ip('-n', ns, 'link', 'set', dev, 'up')
        ip('-n', host, 'route', 'add', 'default', 'via', PEER_IP)
        agent = Hostd(base, netns=host, address='0.0.0.0').start()
        yield {'host': host, 'peer': peer, 'agent': agent}
    finally:
        if agent is not None:
            rc = agent.stop()
            assert rc == 0, agent.read_log()[-3000:]
        ip('netns', 'del', host, check=False)
        ip('netns', 'del', peer, check=False)
        shutil.rmtree(base, ignore_errors=True)


def rpc_ok(agent, *args):
    r = agent.rpc(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def peer_rpc(lab, *args, timeout=30):
    a = lab['agent']
    cmd = ['ip', 'netns', 'exec', lab['peer'], python(), '-m',
           'ovirt_hosted_engine_setup.api.rpc_cli', '--host', HOST_IP, '--port', str(a.port),
           '--root', a.root, '--timeout', '10'] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=TOP)


def setup(agent, networks, options=None):
    return agent.rpc('Host', 'setupNetworks', 'networks=' + json.dumps(networks),
                     'bondings={}', 'options=' + json.dumps(options or {}))


def test_capabilities_show_the_namespace_nic(lab):
    caps = rpc_ok(lab['agent'], 'Host', 'getCapabilities')
    assert set(caps['nics']) == {'veth0'}
    assert caps['nics']['veth0']['addr'] == HOST_IP
    assert caps['nics']['veth0']['netmask'] == '255.255.255.0'
    assert caps['bridges'] == {} and caps['networks'] == {}


def test_bridge_takes_over_the_nic_address(lab):
    host, agent = lab['host'], lab['agent']
    r = setup(agent, {'ovirtmgmt': {'nic': 'veth0', 'bootproto': 'none', 'defaultRoute': True}})
    assert r.returncode == 0, r.stderr
    assert exists(host, 'ovirtmgmt')
    assert master(host, 'veth0') == 'ovirtmgmt'
    assert addrs(host, 'ovirtmgmt') == [HOST_IP + '/24'] and addrs(host, 'veth0') == []
    assert default_dev(host) == 'ovirtmgmt'
    caps = rpc_ok(agent, 'Host', 'getCapabilities')
    net = caps['networks']['ovirtmgmt']
    assert net['addr'] == HOST_IP and net['ports'] == ['veth0'] and net['southbound'] == 'veth0'
    assert caps['bridges']['ovirtmgmt']['gateway'] == PEER_IP
    stats = rpc_ok(agent, 'Host', 'getStats')
    assert stats['network']['ovirtmgmt']['state'] == 'up'
    # The agent is reachable from the peer through the bridge.
    r = peer_rpc(lab, 'Host', 'ping2')
    assert r.returncode == 0, r.stderr


def test_remove_gives_the_nic_its_address_back(lab):
    host, agent = lab['host'], lab['agent']
    r = setup(agent, {'ovirtmgmt': {'remove': True}})
    assert r.returncode == 0, r.stderr
    assert not exists(host, 'ovirtmgmt')
    assert addrs(host, 'veth0') == [HOST_IP + '/24'] and default_dev(host) == 'veth0'
    r = setup(agent, {'ovirtmgmt': {'remove': True}})
    assert r.returncode == 1 and r.stderr.startswith('code 27:')


def test_bad_input(lab):
    agent = lab['agent']
    r = setup(agent, {'ovirtmgmt': {'nic': 'nosuchnic0'}})
    assert r.returncode == 1 and r.stderr.startswith('code 23:') and 'nosuchnic0' in r.stderr
    r = setup(agent, {'ovirtmgmt': {'nic': 'veth0', 'ipaddr': '10.1.1.300'}})
    assert r.returncode == 1 and r.stderr.startswith('code 22:')
    r = setup(agent, {'ovirtmgmt': {'nic': 'veth0', 'bootproto': 'dhcp'}})
    assert r.returncode == 1 and r.stderr.startswith('code 21:')
    assert not exists(lab['host'], 'ovirtmgmt')


def test_connectivity_check_rolls_back(lab):
    host, agent = lab['host'], lab['agent']
    start = time.monotonic()
    r = setup(agent, {'ovirtmgmt': {'nic': 'veth0', 'ipaddr': HOST_IP, 'netmask': '255.255.255.0',
                                    'gateway': PEER_IP, 'defaultRoute': True}},
              {'connectivityCheck': 'true', 'connectivityTimeout': 2})
    assert r.returncode == 1 and r.stderr.startswith('code 10:'), r.stderr
    assert time.monotonic() - start >= 2
    assert not exists(host, 'ovirtmgmt')
    assert addrs(host, 'veth0') == [HOST_IP + '/24'] and default_dev(host) == 'veth0'
    assert master(host, 'veth0') is None


def test_connectivity_check_passes_when_a_client_comes_back(lab):
    host, agent = lab['host'], lab['agent']
    # A client in the peer namespace keeps calling through the new bridge.
    pinger = subprocess.Popen(
        ['ip', 'netns', 'exec', lab['peer'], python(), '-c',
         'import time\n'
         'from ovirt_hosted_engine_setup.api.client import Client\n'
         'from ovirt_hosted_engine_setup.api.errors import ApiError\n'
         'for i in range(60):\n'
         '    try:\n'
         '        c = Client(%r, %d, hostd_root=%r, connect_timeout=2, timeout=2)\n'
         '        c.Host.ping2(); c.close()\n'
         '    except ApiError:\n'
         '        pass\n'
         '    time.sleep(0.5)\n' % (HOST_IP, agent.port, agent.root)],
        cwd=TOP, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = setup(agent, {'ovirtmgmt': {'nic': 'veth0', 'ipaddr': HOST_IP,
                                        'netmask': '255.255.255.0', 'gateway': PEER_IP}},
                  {'connectivityCheck': True, 'connectivityTimeout': 20})
        assert r.returncode == 0, r.stderr
    finally:
        pinger.kill()
        pinger.wait()
    assert master(host, 'veth0') == 'ovirtmgmt' and default_dev(host) == 'ovirtmgmt'


def test_safe_config_is_restored_at_start(lab):
    host, agent = lab['host'], lab['agent']
    assert exists(host, 'ovirtmgmt')
    rpc_ok(agent, 'Host', 'setSafeNetworkConfig')
    assert agent.stop() == 0
    ip('-n', host, 'link', 'del', 'ovirtmgmt')
    assert not exists(host, 'ovirtmgmt')
    agent.start()
    assert exists(host, 'ovirtmgmt') and master(host, 'veth0') == 'ovirtmgmt'
    assert addrs(host, 'ovirtmgmt') == [HOST_IP + '/24']
    assert 'ovirtmgmt' in rpc_ok(agent, 'Host', 'getCapabilities')['networks']
    r = peer_rpc(lab, 'Host', 'ping2')
    assert r.returncode == 0, r.stderr


def test_unsafe_change_is_not_persisted(lab):
    """A change without setSafeNetworkConfig is not restored after a restart."""
    host, agent = lab['host'], lab['agent']
    r = setup(agent, {'ovirtmgmt': {'remove': True}})
    assert r.returncode == 0, r.stderr
    r = setup(agent, {'testnet': {'nic': 'veth0'}})
    assert r.returncode == 0, r.stderr
    assert agent.stop() == 0
    ip('-n', host, 'link', 'del', 'testnet')
    agent.start()
    assert not exists(host, 'testnet')
    assert 'testnet' not in rpc_ok(agent, 'Host', 'getCapabilities')['networks']
    # The safe configuration (ovirtmgmt) was missing too, so it came back.
    assert exists(host, 'ovirtmgmt')
