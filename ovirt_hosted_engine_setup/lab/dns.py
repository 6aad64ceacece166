"""The lab's DNS server: name resolution on the lab network, as a site has.

The lab's names (the gateway, every lab host, the engine VM) have one home, entries()
below: the lab's /etc/hosts (bind-mounted in every lab host) and the hosts file of the DNS
server are both written from it. The DNS server is Debian's dnsmasq (package
dnsmasq-base), started by `hosted-engine-lab up` in the lab's own network namespace, the
one holding the bridge and the gateway address, so that it answers on the gateway address
only, port 53 (UDP and TCP):

  - names from the lab's hosts file only (--addn-hosts), reverse lookups (PTR) included;
    the machine's /etc/hosts is not read (--no-hosts);
  - no upstream server, no forwarding (--no-resolv and every domain local, --local=/#/):
    a name the lab does not have is NXDOMAIN at once, and no query ever leaves the lab;
  - no DHCP (no --dhcp-range), no pid file (--pid-file= with no name: the process runs in
    the machine's mount namespace, its /run stays untouched), no configuration file of the
    machine's (--conf-file=/dev/null);
  - as root, like the lab's other daemons: its hosts file is in the lab directory, which
    may be private to root, and dnsmasq reads it after it would have dropped privileges.

Every lab host's /etc/resolv.conf (in the host's own mount namespace) names the server, so
a lab host's resolver works like a real host's; the engine VM is told the same server by
cloud-init. The machine's /etc/resolv.conf is never written.
"""
import os
import shlex

PORT = 53
DNSMASQ = 'dnsmasq'
# Files of the DNS server, in <lab dir>/DIR.
DIR = 'dns'
HOSTS = 'hosts'
RESOLV_CONF = 'resolv.conf'
LOG = 'dnsmasq.log'
# The host's resolver configuration the lab's replaces (in the host's mount namespace).
HOST_RESOLV_CONF = '/etc/resolv.conf'


def entries(domain, gateway, hosts, engine_address, engine_fqdn):
    """[(address, fqdn, short name)] of every name of the lab: the gateway, the hosts
    [(name, address)] and the engine VM. The one list of the lab's names."""
    out = [(gateway, 'gateway.%s' % domain, 'gateway')]
    out += [(address, '%s.%s' % (name, domain), name) for name, address in hosts]
    out.append((engine_address, engine_fqdn, engine_fqdn.split('.', 1)[0]))
    return out


def hosts_text(entries_, localhost=False):
    """A hosts file of entries_ (the FQDN first: it is the name of reverse lookups);
    with localhost, the loopback lines a host's /etc/hosts has first."""
    lines = []
    if localhost:
        lines += ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback']
    lines += ['%s\t%s %s' % e for e in entries_]
    return '\n'.join(lines) + '\n'


def resolv_conf_text(server, domain):
    return ('# the lab DNS server (hosted-engine-lab up)\nsearch %s\nnameserver %s\n'
            % (domain, server))


def paths(lab_dir):
    """(hosts file, resolv.conf of the lab hosts, dnsmasq's log) of the lab in lab_dir."""
    d = os.path.join(lab_dir, DIR)
    return os.path.join(d, HOSTS), os.path.join(d, RESOLV_CONF), os.path.join(d, LOG)


def write_files(lab_dir, entries_, server, domain):
    """Write the DNS server's hosts file and the lab hosts' resolv.conf; return their paths
    and the log's (see paths())."""
    hosts, resolv, log = paths(lab_dir)
    os.makedirs(os.path.dirname(hosts), exist_ok=True)
    for path, text in ((hosts, hosts_text(entries_)), (resolv, resolv_conf_text(server, domain))):
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, 0o644)
    return hosts, resolv, log


def resolv_conf_script(resolv_file, machine_path=HOST_RESOLV_CONF):
    """Shell lines, run in a lab host's mount namespace once its private /run is mounted,
    that bind-mount resolv_file over the host's resolv.conf; None when the machine has no
    resolv.conf to cover (a mount point would have to be made on the machine).

    A resolv.conf that is a symbolic link (systemd-resolved, resolvconf) is followed: a
    target in /run is made in the host's private /run, another one is covered where it is.
    """
    target = os.path.realpath(machine_path)
    mount = 'mount --bind %s %s' % (shlex.quote(resolv_file), shlex.quote(target))
    if target == '/run' or target.startswith('/run/'):
        return ['mkdir -p %s' % shlex.quote(os.path.dirname(target)),
                ': > %s' % shlex.quote(target), mount]
    if os.path.isfile(target):
        return [mount]
    return None


def command(hosts_file, address):
    """The dnsmasq command line: DNS only, in the foreground, on address:PORT only, answering
    from hosts_file only, nothing forwarded, its log on stderr."""
    return [DNSMASQ, '--keep-in-foreground', '--conf-file=/dev/null', '--pid-file=',
            '--user=root', '--group=root', '--log-facility=-', '--log-queries',
            '--bind-interfaces', '--listen-address=%s' % address, '--port=%d' % PORT,
            '--no-resolv', '--no-poll', '--local=/#/', '--no-hosts',
            '--addn-hosts=%s' % hosts_file]


def _hex_address(address, port):
    return '%s:%04X' % (''.join('%02X' % int(p) for p in reversed(address.split('.'))), port)


def listening(net_pid, address, port=PORT):
    """Whether a UDP socket is bound to address:port in the network namespace of net_pid."""
    want = _hex_address(address, port)
    try:
        with open('/proc/%d/net/udp' % net_pid) as f:
            next(f)
            return any(line.split()[1:2] == [want] for line in f)
    except (OSError, StopIteration):
        return False


def names_loaded(log, hosts_file):
    """True once dnsmasq's log says it read hosts_file, the reason when it could not (its
    log line), None while neither."""
    try:
        with open(log, errors='replace') as f:
            text = f.read()
    except OSError:
        return None
    for line in text.splitlines():
        if 'failed to load names from %s' % hosts_file in line:
            return line.split(': ', 1)[-1]
        if ' read %s - ' % hosts_file in line:
            return True
    return None
