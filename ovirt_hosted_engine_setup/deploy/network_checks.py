"""Checks of the hosted-engine network answers (pure helpers of the deploy's network plugin).

The host's NICs, bridges and addresses come from the host agent's Host.getCapabilities
(``caps``: nics/bridges/vlans, each {addr, netmask, ipv4addrs, ipv6addrs, gateway, ...}).
Each check raises ValueError whose text is one line naming the problem and the fix.
"""
import ipaddress
import socket
import subprocess

NETWORK_TESTS = ('ping', 'dns', 'tcp', 'none')
DEFAULT_NETWORK_TEST = 'dns'
PING_COMMAND = ('ping', '-c', '1', '-W', '2')
# one lost echo (a busy host, an ARP entry being refreshed) must not fail a deploy
PING_ATTEMPTS = 3


def _section(caps, name):
    return (caps or {}).get(name) or {}


def nic_names(caps):
    """The host's NICs, sorted."""
    return sorted(_section(caps, 'nics'))


def bridge_port(caps, bridge):
    """The NIC under an existing bridge (directly or through a VLAN), or None."""
    info = _section(caps, 'bridges').get(bridge)
    if not info:
        return None
    nics = _section(caps, 'nics')
    vlans = _section(caps, 'vlans')
    for port in info.get('ports') or ():
        if port in nics:
            return port
        if port in vlans and vlans[port].get('iface') in nics:
            return vlans[port]['iface']
    return None


def default_route_nic(caps):
    """The NIC carrying the default route (directly, or as the port of the bridge or VLAN
    that carries it), or None."""
    nics = _section(caps, 'nics')
    for name in sorted(nics):
        if nics[name].get('gateway'):
            return name
    for name, info in sorted(_section(caps, 'vlans').items()):
        if info.get('gateway') and info.get('iface') in nics:
            return info['iface']
    for name, info in sorted(_section(caps, 'bridges').items()):
        if info.get('gateway'):
            port = bridge_port(caps, name)
            if port:
                return port
    return None


def default_nic(caps):
    """The NIC offered by default: the one with the default route, else the first NIC."""
    names = nic_names(caps)
    return default_route_nic(caps) or (names[0] if names else None)


def check_nic(caps, nic):
    names = nic_names(caps)
    if not names:
        raise ValueError('the host agent reports no NIC on this host: connect a network '
                         'interface card and deploy again')
    if nic not in names:
        raise ValueError('%r is not a NIC of this host: choose one of %s'
                         % (str(nic), ', '.join(names)))
    return nic


def caps_gateway(caps):
    """The default gateway the capabilities show on any NIC, bridge or VLAN, or None."""
    for section in ('bridges', 'nics', 'vlans'):
        for _name, info in sorted(_section(caps, section).items()):
            if info.get('gateway'):
                return info['gateway']
    return None


def parse_default_gateway(text):
    """The gateway of the first default route in `ip -4 route show default` output."""
    for line in (text or '').splitlines():
        words = line.split()
        if words[:1] == ['default'] and 'via' in words:
            i = words.index('via')
            if i + 1 < len(words):
                return words[i + 1]
    return None


def route_gateway(run=subprocess.run):
    """This host's default gateway from `ip -4 route show default`, or None."""
    try:
        p = run(['ip', '-4', 'route', 'show', 'default'], capture_output=True, text=True,
                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_default_gateway(p.stdout) if p.returncode == 0 else None


def gateway_address(value):
    """An IPv4 gateway address, normalised."""
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        raise ValueError('%r is not an IPv4 address: give the gateway address (like '
                         '192.0.2.1)' % (str(value),))


def ping(address, run=subprocess.run, attempts=PING_ATTEMPTS):
    """(True, '') if a ping of address is answered within 2 s, in up to ``attempts``
    tries, else (False, the last try's reason)."""
    for _ in range(attempts):
        try:
            p = run(list(PING_COMMAND) + [address], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            return False, 'ping could not run: %s' % e
        if p.returncode == 0:
            return True, ''
        lines = [line for line in (p.stderr or p.stdout or '').strip().splitlines() if line]
        reason = lines[-1] if lines else 'no reply'
    return False, reason


def check_gateway(value, run=subprocess.run):
    """The gateway must be IPv4 and answer a ping; returns it normalised."""
    address = gateway_address(value)
    ok, reason = ping(address, run)
    if not ok:
        raise ValueError('The gateway %s does not answer ping (%s): give a gateway that '
                         'answers, or make it answer ICMP echo requests' % (address, reason))
    return address


def network_test(value):
    text = str(value).strip().lower()
    if text not in NETWORK_TESTS:
        raise ValueError('%r is not a network test: use one of %s'
                         % (str(value), ', '.join(NETWORK_TESTS)))
    return text


def local_addresses(caps):
    """Addresses configured on this host's NICs, bridges and VLANs (without prefixes)."""
    out = set()
    for section in ('nics', 'bridges', 'vlans'):
        for info in _section(caps, section).values():
            for key in ('ipv4addrs', 'ipv6addrs'):
                for a in info.get(key) or ():
                    out.add(str(a).split('/')[0])
            if info.get('addr'):
                out.add(info['addr'])
    return out


def parse_ip_addr(text):
    """Addresses in `ip -o addr show` output (loopback included)."""
    out = set()
    for line in (text or '').splitlines():
        words = line.split()
        for family in ('inet', 'inet6'):
            if family in words:
                i = words.index(family)
                if i + 1 < len(words):
                    out.add(words[i + 1].split('/')[0])
    return out


def resolve(name):
    """Addresses a name resolves to on this host (the system resolver: files, DNS)."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError('%s does not resolve (%s): add it to DNS or /etc/hosts, or give '
                         'this host\'s address' % (name, getattr(e, 'strerror', None) or e))
    return sorted({info[4][0].split('%')[0] for info in infos})


def check_host_address(value, local, resolver=resolve):
    """This host's address (a name or an IP) must resolve to an address configured on this
    host that is not a loopback address. Returns the value stripped."""
    name = str(value).strip()
    if not name:
        raise ValueError('this host\'s address is empty: give its FQDN or IP address')
    if name.lower().split('.')[0] == 'localhost':
        raise ValueError('%s is not an address other hosts can reach: give this host\'s FQDN '
                         'or IP address' % name)
    try:
        addresses = [str(ipaddress.ip_address(name))]
    except ValueError:
        addresses = resolver(name)
    usable = [a for a in addresses if not ipaddress.ip_address(a).is_loopback]
    if not usable:
        raise ValueError('%s resolves only to loopback addresses (%s): make it resolve to this '
                         'host\'s management address (DNS or /etc/hosts)'
                         % (name, ', '.join(addresses)))
    mine = [a for a in usable if a in local]
    if not mine:
        raise ValueError('%s resolves to %s, which is not an address of this host (%s): give '
                         'this host\'s FQDN or fix its DNS or /etc/hosts entry'
                         % (name, ', '.join(usable), ', '.join(sorted(local)) or 'none'))
    return name


def bridge_attrs(caps, nic):
    """Host.setupNetworks attributes of the management bridge on nic: bridged, and the NIC's
    addressing kept (DHCP stays DHCP; a static address keeps its address and prefix, and
    the default route moves to the bridge when the NIC carries it)."""
    info = _section(caps, 'nics').get(nic) or {}
    attrs = {'nic': nic, 'bridged': True}
    if info.get('dhcpv4'):
        attrs['bootproto'] = 'dhcp'
        attrs['defaultRoute'] = bool(info.get('gateway'))
        return attrs
    attrs['bootproto'] = 'none'
    addrs = info.get('ipv4addrs') or []
    if addrs:
        iface = ipaddress.IPv4Interface(str(addrs[0]))
        attrs['ipaddr'] = str(iface.ip)
        attrs['prefix'] = iface.network.prefixlen
    elif info.get('addr'):
        attrs['ipaddr'] = info['addr']
        if info.get('netmask'):
            attrs['netmask'] = info['netmask']
    if info.get('gateway'):
        attrs['gateway'] = info['gateway']
        attrs['defaultRoute'] = True
    else:
        attrs['defaultRoute'] = False
    return attrs
