"""The firewall of a hosted-engine host: the ports it serves opened through nftables (our own
table) or firewalld (our own service in the default zone), recorded, and undone.

The deploy reaches the host otherwise only through the host agent's API, but VDSM has no
firewall verb (oVirt's host deploy configures the host firewall itself), so, like
services.py, this module runs the host's own tools:

    ports = host_ports()                       # what a hosted-engine host serves
    applied = apply('nftables', ports)         # opened now; Applied.undo() reverts it
    write_record(applied, path)                # what was applied, for cleanup
    undo_recorded(path)                        # ovirt-hosted-engine-cleanup

nftables: ``table inet ovirt_hosted_engine`` with one input chain, policy drop, as an oVirt
host's firewall: loopback, established and related traffic, ICMP and ICMPv6, DHCPv6 replies
and the listed ports are accepted; anything else is rejected (admin-prohibited), as oVirt's
iptables rules did. Nothing else of the ruleset is touched; the table is replaced as a whole
(atomically), and undo deletes it. Bridged traffic of the VMs does not pass the input hook.

firewalld (used where it runs): a permanent service ``ovirt-hosted-engine`` with the same
ports, added to the default zone, then ``firewall-cmd --reload``; undo removes it.

Each failure is a FirewallError whose str() is one line: what failed and what to do.
"""
import collections
import datetime
import json
import logging
import os
import shutil
import subprocess

from . import host_agent

log = logging.getLogger(__name__)

NFTABLES = 'nftables'
FIREWALLD = 'firewalld'
NONE = 'none'
MANAGERS = (NFTABLES, FIREWALLD, NONE)
TABLE_FAMILY = 'inet'
TABLE_NAME = 'ovirt_hosted_engine'
TABLE = '%s %s' % (TABLE_FAMILY, TABLE_NAME)
SERVICE = 'ovirt-hosted-engine'
TIMEOUT = 60
LIBVIRT_TLS_PORT = 16514
CONSOLE_PORTS = (5900, 6923)      # VNC and SPICE of the VMs, the range oVirt opens
SSH_PORT = 22
# A host that is also a gluster server (the hyperconverged layout: the storage domain on a
# volume whose bricks the hosts themselves serve): glusterd's ports and the brick ports
# glusterd hands out (its default base-port..max-port), as firewalld's glusterfs service
GLUSTERD_PORTS = (24007, 24008)
GLUSTER_BRICK_PORTS = (49152, 60999)
INSTALL_HINT = 'install nftables (apt-get install nftables) or firewalld'
# nft and firewall-cmd live in sbin, which a user's PATH may lack: looked up there too
EXTRA_PATH = '/usr/sbin:/sbin'


class FirewallError(RuntimeError):
    """One line for the user."""


Port = collections.namedtuple('Port', 'proto first last what')


def host_ports(ssh_port=None, agent_port=None, gluster_server=False):
    """What a hosted-engine host serves: SSH, the host agent (VDSM's API), libvirt's TLS
    port and the consoles of its VMs; with gluster_server (glusterd runs on the host),
    glusterd and its bricks too, which the other hosts mount."""
    ssh_port = int(ssh_port or SSH_PORT)
    agent_port = int(agent_port or host_agent.port())
    ports = [Port('tcp', ssh_port, ssh_port, 'SSH'),
             Port('tcp', agent_port, agent_port, 'host agent'),
             Port('tcp', LIBVIRT_TLS_PORT, LIBVIRT_TLS_PORT, 'libvirt TLS'),
             Port('tcp', CONSOLE_PORTS[0], CONSOLE_PORTS[1], 'VM consoles, VNC and SPICE')]
    if gluster_server:
        ports += [Port('tcp', GLUSTERD_PORTS[0], GLUSTERD_PORTS[1], 'glusterd'),
                  Port('tcp', GLUSTER_BRICK_PORTS[0], GLUSTER_BRICK_PORTS[1], 'gluster bricks')]
    return ports


def port_text(port):
    """'22/tcp' or '5900-6923/tcp'."""
    if port.first == port.last:
        return '%d/%s' % (port.first, port.proto)
    return '%d-%d/%s' % (port.first, port.last, port.proto)


def describe_ports(ports):
    """'22/tcp (SSH), 54321/tcp (host agent), ...'"""
    return ', '.join('%s (%s)' % (port_text(p), p.what) for p in ports)


def compact_ports(ports):
    """'22, 54321, 16514, 5900-6923/tcp' (grouped by protocol)."""
    by_proto = collections.OrderedDict()
    for p in ports:
        by_proto.setdefault(p.proto, []).append(port_text(p).split('/')[0])
    return '; '.join('%s/%s' % (', '.join(v), proto) for proto, v in by_proto.items())


def preview_text(manager, ports):
    """The preview's line of what the deploy does to the firewall (short enough for one
    preview line)."""
    if manager == NFTABLES:
        return 'open %s; reject other input (nftables)' % compact_ports(ports)
    if manager == FIREWALLD:
        return 'open %s (firewalld, default zone)' % compact_ports(ports)
    return 'none: the firewall is left as it is'


# -- what this host has ------------------------------------------------------------------

def _which(name, environ=None):
    environ = os.environ if environ is None else environ
    path = environ.get('PATH', os.defpath)
    if EXTRA_PATH:
        path = path + os.pathsep + EXTRA_PATH
    return shutil.which(name, path=path)


def nft_path(environ=None):
    return _which('nft', environ)


def firewall_cmd_path(environ=None):
    return _which('firewall-cmd', environ)


def firewalld_running(environ=None):
    """True when firewall-cmd is installed and firewalld answers 'running'."""
    exe = firewall_cmd_path(environ)
    if exe is None:
        return False
    try:
        r = subprocess.run([exe, '--state'], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=TIMEOUT, env=_env(environ))
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and r.stdout.strip() == 'running'


def detect(environ=None):
    """The firewall manager the question offers: firewalld where it runs, else nftables
    where nft is installed, else None."""
    if firewalld_running(environ):
        return FIREWALLD
    if nft_path(environ):
        return NFTABLES
    return None


def check_manager(value, found):
    """The answer (firewallManager) normalised: nftables, firewalld or none; ValueError with
    the reason and the fix otherwise. ``found`` is what detect() returned."""
    text = str(value).strip().lower()
    if text in ('nft', NFTABLES):
        text = NFTABLES
    if text == 'iptables':
        raise ValueError('iptables is not supported: answer nftables (Debian\'s iptables '
                         'is nftables underneath), firewalld or none')
    if text not in MANAGERS:
        raise ValueError('not a firewall manager: answer nftables, firewalld or none')
    if text == NONE:
        return text
    if found is None:
        raise ValueError('neither nft nor firewalld is on this host: %s, or answer none'
                         % INSTALL_HINT)
    if text == NFTABLES and found == FIREWALLD:
        raise ValueError('firewalld runs on this host and would still reject the ports: '
                         'answer firewalld, or none')
    if text == FIREWALLD and found != FIREWALLD:
        raise ValueError('firewalld is not running on this host: start it (systemctl start '
                         'firewalld), or answer nftables or none')
    return text


# -- running the tools -------------------------------------------------------------------

def _env(environ):
    env = dict(os.environ if environ is None else environ)
    env['LC_ALL'] = 'C'
    return env


def _run(argv, what, stdin=None, environ=None, ok=(0,)):
    log.debug('running %s', argv)
    try:
        r = subprocess.run(argv, input=stdin, stdin=None if stdin is not None else
                           subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=TIMEOUT, env=_env(environ))
    except FileNotFoundError:
        raise FirewallError('%s: command not found: %s' % (argv[0], INSTALL_HINT))
    except subprocess.TimeoutExpired:
        raise FirewallError('%s did not finish within %d s: %s' % (' '.join(argv), TIMEOUT,
                                                                   what))
    out = ((r.stdout or '') + (r.stderr or '')).strip()
    if out:
        log.debug('%s (exit %d):\n%s', argv[0], r.returncode, out)
    if r.returncode not in ok:
        last = ' '.join(out.splitlines()[-1].split()) if out else 'no output'
        command = ' '.join([os.path.basename(argv[0])] + list(argv[1:]))
        raise FirewallError('%s failed (exit %d: %s): %s' % (command, r.returncode, last, what))
    return r


# -- nftables ----------------------------------------------------------------------------

def nft_ruleset(ports):
    """The nft script of our table (replaces any table of that name, atomically)."""
    lines = ['table %s' % TABLE, 'delete table %s' % TABLE,
             'table %s {' % TABLE,
             '\tchain input {',
             '\t\ttype filter hook input priority filter; policy drop;',
             '\t\tiif "lo" accept',
             '\t\tct state established,related accept',
             '\t\tmeta l4proto icmp accept',
             '\t\tmeta l4proto ipv6-icmp accept',
             '\t\tip6 saddr fe80::/10 udp dport 546 accept comment "DHCPv6 client"']
    for p in ports:
        dport = str(p.first) if p.first == p.last else '%d-%d' % (p.first, p.last)
        lines.append('\t\t%s dport %s accept comment "%s"' % (p.proto, dport, p.what))
    lines += ['\t\treject with icmpx type admin-prohibited',
              '\t}', '}']
    return '\n'.join(lines) + '\n'


def nft_table(environ=None):
    """Our table as `nft list table` prints it, or None when there is none (or no nft)."""
    exe = nft_path(environ)
    if exe is None:
        return None
    r = _run([exe, 'list', 'table', TABLE_FAMILY, TABLE_NAME], 'list the table',
             environ=environ, ok=(0, 1))
    return r.stdout if r.returncode == 0 else None


def nft_check(ports, environ=None):
    """Check the table against the kernel without changing anything (nft -c)."""
    exe = nft_path(environ)
    if exe is None:
        raise FirewallError('nft is not installed: %s, or answer none' % INSTALL_HINT)
    _run([exe, '-c', '-f', '-'], 'the rules of table %s are refused: answer none and open '
         'the ports (%s) by hand' % (TABLE, describe_ports(ports)), stdin=nft_ruleset(ports),
         environ=environ)


def _nft_load(text, what, environ=None):
    exe = nft_path(environ)
    if exe is None:
        raise FirewallError('nft is not installed: %s' % INSTALL_HINT)
    _run([exe, '-f', '-'], what, stdin=text, environ=environ)


def _nft_delete(environ=None):
    """Delete our table; False when there was none."""
    if nft_table(environ) is None:
        return False
    _run([nft_path(environ), 'delete', 'table', TABLE_FAMILY, TABLE_NAME],
         'delete it by hand: nft delete table %s' % TABLE, environ=environ)
    return True


# -- firewalld ---------------------------------------------------------------------------

def _fw(args, what, environ=None, ok=(0,)):
    exe = firewall_cmd_path(environ)
    if exe is None:
        raise FirewallError('firewall-cmd is not installed: %s' % INSTALL_HINT)
    return _run([exe] + args, what, environ=environ, ok=ok)


def _fw_services(environ=None):
    return _fw(['--permanent', '--get-services'], 'list the firewalld services',
               environ=environ).stdout.split()


def _fw_zone_services(zone, environ=None):
    return _fw(['--permanent', '--zone=%s' % zone, '--list-services'],
               'list the services of zone %s' % zone, environ=environ).stdout.split()


def _fw_remove(zone, service_existed, in_zone_before, environ=None):
    """Take our service out of the zone and delete it, unless they were there before."""
    fix = ('remove it by hand: firewall-cmd --permanent --zone=%s --remove-service=%s; '
           'firewall-cmd --reload' % (zone, SERVICE))
    if not in_zone_before and SERVICE in _fw_zone_services(zone, environ):
        _fw(['--permanent', '--zone=%s' % zone, '--remove-service=%s' % SERVICE], fix,
            environ=environ)
    if not service_existed and SERVICE in _fw_services(environ):
        _fw(['--permanent', '--delete-service=%s' % SERVICE], fix, environ=environ)
    _fw(['--reload'], fix, environ=environ)


# -- apply and undo ----------------------------------------------------------------------

class Applied:
    """What apply() changed; undo() puts the firewall back as it was before."""

    def __init__(self, manager, ports, **details):
        self.manager = manager
        self.ports = list(ports)
        self.details = details
        self.time = datetime.datetime.now().isoformat(timespec='seconds')

    def __str__(self):
        return 'firewall (%s: %s)' % (self.manager, ', '.join(port_text(p) for p in self.ports))

    def record(self):
        out = {'manager': self.manager, 'applied': self.time,
               'ports': [{'port': port_text(p), 'what': p.what} for p in self.ports]}
        if self.manager == NFTABLES:
            out['table'] = TABLE
            out['ruleset'] = self.details.get('ruleset')
        elif self.manager == FIREWALLD:
            out['service'] = SERVICE
            out['zone'] = self.details.get('zone')
        return out

    def undo(self, environ=None):
        """Revert (rollback of a failed deploy): our table or service back as before."""
        if self.manager == NFTABLES:
            previous = self.details.get('previous')
            if previous:
                _nft_load('table %s\ndelete table %s\n%s' % (TABLE, TABLE, previous),
                          'restore it by hand', environ=environ)
                return 'table %s restored as it was' % TABLE
            _nft_delete(environ)
            return 'table %s deleted' % TABLE
        if self.manager == FIREWALLD:
            _fw_remove(self.details['zone'], self.details.get('service_existed'),
                       self.details.get('in_zone_before'), environ)
            return 'firewalld service %s removed from zone %s' % (SERVICE,
                                                                  self.details['zone'])
        return 'nothing to undo'


def apply(manager, ports, environ=None):
    """Open the ports with the manager (nftables or firewalld); returns Applied."""
    if manager == NFTABLES:
        previous = nft_table(environ)
        text = nft_ruleset(ports)
        _nft_load(text, 'the firewall is left as it was; answer none and open the ports '
                  '(%s) by hand' % describe_ports(ports), environ=environ)
        return Applied(NFTABLES, ports, previous=previous, ruleset=nft_table(environ))
    if manager == FIREWALLD:
        zone = _fw(['--get-default-zone'], 'is firewalld running?',
                   environ=environ).stdout.strip()
        service_existed = SERVICE in _fw_services(environ)
        in_zone_before = SERVICE in _fw_zone_services(zone, environ)
        applied = Applied(FIREWALLD, ports, zone=zone, service_existed=service_existed,
                          in_zone_before=in_zone_before)
        fix = 'answer none and open the ports (%s) by hand' % describe_ports(ports)
        try:
            if not service_existed:
                _fw(['--permanent', '--new-service=%s' % SERVICE], fix, environ=environ)
            else:
                old = _fw(['--permanent', '--service=%s' % SERVICE, '--get-ports'], fix,
                          environ=environ).stdout.split()
                for p in old:
                    _fw(['--permanent', '--service=%s' % SERVICE, '--remove-port=%s' % p],
                        fix, environ=environ)
            _fw(['--permanent', '--service=%s' % SERVICE,
                 '--set-short=oVirt hosted-engine host'], fix, environ=environ)
            for p in ports:
                _fw(['--permanent', '--service=%s' % SERVICE, '--add-port=%s' % port_text(p)],
                    fix, environ=environ)
            if not in_zone_before:
                _fw(['--permanent', '--zone=%s' % zone, '--add-service=%s' % SERVICE], fix,
                    environ=environ)
            _fw(['--reload'], fix, environ=environ)
        except FirewallError:
            try:
                applied.undo(environ)
            except FirewallError:
                log.exception('undoing a partly applied firewalld service')
            raise
        return applied
    raise ValueError('apply: manager must be %s or %s, not %r' % (NFTABLES, FIREWALLD, manager))


def write_record(applied, path):
    """What was applied, as JSON, written atomically (0644)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    tmp = '%s.tmp' % path
    with open(tmp, 'w') as f:
        json.dump(applied.record(), f, indent=1, sort_keys=True)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def read_record(path):
    """The record, or None when there is none; {} when unreadable."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.info('unreadable firewall record %s', path, exc_info=True)
        return {}
    return data if isinstance(data, dict) else {}


def pending(path, environ=None):
    """True when there is something to undo: a record, or our nft table on this host."""
    if os.path.lexists(path):
        return True
    try:
        return nft_table(environ) is not None
    except FirewallError:
        return False


def undo_recorded(path, environ=None):
    """Remove what a deploy opened (ovirt-hosted-engine-cleanup): our nft table, our
    firewalld service; then the record. Returns one line of what was done."""
    record = read_record(path) or {}
    manager = record.get('manager')
    done = []
    if manager == FIREWALLD or (manager is None and firewalld_running(environ)):
        zone = record.get('zone')
        if firewalld_running(environ):
            zones = [zone] if zone else _fw(['--get-zones'], 'list the zones',
                                            environ=environ).stdout.split()
            present = SERVICE in _fw_services(environ)
            used = [z for z in zones if SERVICE in _fw_zone_services(z, environ)]
            for z in used:
                _fw(['--permanent', '--zone=%s' % z, '--remove-service=%s' % SERVICE],
                    'remove it by hand: firewall-cmd --permanent --zone=%s --remove-service=%s'
                    % (z, SERVICE), environ=environ)
            if present:
                _fw(['--permanent', '--delete-service=%s' % SERVICE],
                    'delete it by hand: firewall-cmd --permanent --delete-service=%s'
                    % SERVICE, environ=environ)
            if present or used:
                _fw(['--reload'], 'run firewall-cmd --reload', environ=environ)
                done.append('firewalld service %s removed%s' % (
                    SERVICE, ' from zone %s' % ', '.join(used) if used else ''))
        elif manager == FIREWALLD:
            raise FirewallError('firewalld is not running: start it (systemctl start '
                                'firewalld) and run ovirt-hosted-engine-cleanup again, or '
                                'remove the service %s by hand' % SERVICE)
    if _nft_delete(environ):
        done.append('nftables table %s deleted' % TABLE)
    if os.path.lexists(path):
        os.unlink(path)
        log.info('removed %s', path)
    if not done:
        return 'no firewall rules of the deploy left (%s)' % (
            'record removed' if record or manager else 'nothing recorded')
    return '; '.join(done)
