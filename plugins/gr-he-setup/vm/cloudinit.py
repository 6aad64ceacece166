"""cloud-init questions: the engine VM's FQDN, network, root access, engine-setup on first
boot; and, before the preview, the seed values checked together."""
import ipaddress
import os
import re

from ovirt_hosted_engine_setup.deploy import cloud_init
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup.deploy import engine_vm, restore_backup
from ovirt_hosted_engine_setup.deploy.restore_engine import restoring
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event

from . import common

RESOLV_CONF = '/etc/resolv.conf'
FQDN_NOTE = ('Please provide the FQDN you would like to use for the engine appliance.\n'
             'Note: This will be the FQDN of the engine VM you are now going to launch,\n'
             'it should not point to the base host or to any other existing machine.\n'
             'Engine VM FQDN')


def host_dns_servers(path=RESOLV_CONF):
    """Name servers of this host usable by the VM (loopback stub resolvers left out)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == 'nameserver':
                    try:
                        addr = ipaddress.IPv4Address(parts[1])
                    except ValueError:
                        continue
                    if not addr.is_loopback and str(addr) not in out:
                        out.append(str(addr))
    except OSError:
        pass
    return out[:3]


def host_timezone():
    """This host's time zone name (/etc/timezone, the /etc/localtime link), else UTC."""
    try:
        with open('/etc/timezone') as f:
            name = f.read().strip()
            if name:
                return name
    except OSError:
        pass
    try:
        target = os.path.realpath('/etc/localtime')
        if '/zoneinfo/' in target:
            return target.split('/zoneinfo/', 1)[1]
    except OSError:
        pass
    return 'UTC'


def check_dns(value):
    """A comma- or blank-separated list of at most 3 IPv4 addresses ('' for none)."""
    parts = [p for p in re.split(r'[,\s]+', str(value or '').strip()) if p]
    if len(parts) > 3:
        raise ValueError('give at most 3 DNS servers, not %d' % len(parts))
    for p in parts:
        try:
            ipaddress.IPv4Address(p)
        except ValueError:
            raise ValueError('the DNS server %r is not an IPv4 address such as 192.168.1.1' % p)
    return ','.join(parts)


def check_pubkey(value):
    text = str(value or '').strip()
    if text and ('\n' in text or not re.match(r'^(ssh-|ecdsa-|sk-)\S+ \S+', text)):
        raise ValueError('the SSH public key must be one line such as '
                         '"ssh-ed25519 AAAA... user@host"')
    return text


def check_ssh_access(value):
    text = str(value).strip().lower()
    if text not in cloud_init.ROOT_SSH_ACCESS:
        raise ValueError('root SSH access %r is not one of %s'
                         % (value, ', '.join(cloud_init.ROOT_SSH_ACCESS)))
    return text


def check_timezone(value):
    text = str(value).strip()
    if not re.match(r'^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$', text):
        raise ValueError('the time zone %r is not a zone name such as Europe/Rome or UTC'
                         % text)
    return text


def check_root_password(value):
    if not value:
        raise ValueError('the root password of the engine VM is empty: give a password')
    return None


def ipv4_of(addrs):
    return [a for a in addrs or () if ':' not in a]


def check_static_cidr(value, fqdn_addrs, local_addrs, gateway):
    """The engine VM's static address A.B.C.D/N."""
    text = str(value).strip()
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise ValueError('%r is not an IPv4 address with prefix length, such as '
                         '192.168.1.10/24' % text)
    if '/' not in text:
        raise ValueError('%s has no prefix length: write it as %s/24 (or the right prefix)'
                         % (text, text))
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        raise ValueError('%s is the network or broadcast address of %s: choose a host '
                         'address' % (text, net))
    if str(iface.ip) in (local_addrs or ()):
        raise ValueError('%s is an address of this host: the engine VM needs its own' % iface.ip)
    v4 = ipv4_of(fqdn_addrs)
    if v4 and str(iface.ip) not in v4:
        raise ValueError('the engine FQDN resolves to %s, not to %s: use the address the FQDN '
                         'resolves to, or fix DNS or /etc/hosts' % (', '.join(v4), iface.ip))
    if gateway:
        try:
            gw = ipaddress.IPv4Address(str(gateway))
        except ValueError:
            gw = None
        if gw is not None and gw not in net:
            raise ValueError('the gateway %s is outside %s: give the prefix length of the '
                             'management network' % (gw, net))
    return str(iface)


def default_cidr(fqdn_addrs, caps):
    """The FQDN's address with the prefix of the host network it belongs to."""
    v4 = ipv4_of(fqdn_addrs)
    if not v4:
        return None
    addr = ipaddress.IPv4Address(v4[0])
    for group in ('bridges', 'networks', 'nics', 'vlans'):
        for info in ((caps or {}).get(group) or {}).values():
            for a in (info or {}).get('ipv4addrs') or []:
                try:
                    iface = ipaddress.IPv4Interface(a)
                except ValueError:
                    continue
                if addr in iface.network:
                    return '%s/%d' % (addr, iface.network.prefixlen)
    return '%s/24' % addr


class Plugin(PluginBase):

    def __init__(self, context):
        super().__init__(context)
        self.fqdn_addrs = []
        self._local = None

    def local_addrs(self):
        if self._local is None:
            self._local = engine_vm.local_addresses(self.environment.get(c.VDSMEnv.CAPS))
        return self._local

    def check_fqdn(self, value):
        text = str(value).strip().rstrip('.')
        backup = self.environment.get(c.CoreEnv.BACKUP_INFO)
        if backup is not None:
            try:
                restore_backup.check_fqdn(backup.fqdn, text)
            except restore_backup.RestoreError as e:
                raise ValueError(str(e))
        self.fqdn_addrs = engine_vm.check_engine_fqdn(text, self.local_addrs())
        return text

    @event(stage=Stages.CUSTOMIZATION, name=common.E_CLOUDINIT, after=(
        c.Events.TITLE_S_VM, common.E_SIZING), before=(c.Events.TITLE_E_VM,),
        condition=first_host)
    def _cloudinit(self):
        env = self.environment
        mode = env.get(c.VMEnv.CLOUD_INIT_ISO)
        if mode is None:
            if self.dialog.query_yes_no(
                    'CLOUD_INIT_USE', 'Would you like to use cloud-init to customize the '
                    'appliance on the first boot', default=True):
                mode = self.dialog.query_string(
                    'CLOUD_INIT_GENERATE', 'Would you like to generate on-fly a cloud-init '
                    'ISO image (of no-cloud type) or do you have an existing one',
                    valid_values=('Generate', 'Existing'), case_sensitive=False,
                    default='Generate').lower()
            else:
                mode = 'skip'
            env[c.VMEnv.CLOUD_INIT_ISO] = mode
        if mode == 'existing':
            common.ask(self, c.VMEnv.CDROM, 'OVEHOSTED_VMENV_CDROM',
                       'Please specify the path of the cloud-init ISO image (volume id '
                       'cidata) to attach to the VM', self.check_iso)

        backup = env.get(c.CoreEnv.BACKUP_INFO)
        common.ask(self, c.NetworkEnv.FQDN, 'OVEHOSTED_NETWORK_FQDN', FQDN_NOTE,
                   self.check_fqdn, default=backup.fqdn if backup else None)
        fqdn = env[c.NetworkEnv.FQDN]
        if env.get(c.VMEnv.CLOUDINIT_INSTANCE_HOSTNAME) is None:
            env[c.VMEnv.CLOUDINIT_INSTANCE_HOSTNAME] = fqdn.split('.', 1)[0]
        if env.get(c.VMEnv.CLOUDINIT_INSTANCE_DOMAINNAME) is None:
            env[c.VMEnv.CLOUDINIT_INSTANCE_DOMAINNAME] = fqdn.split('.', 1)[1]
        if restoring(self) and mode != 'generate':
            raise ValueError('Restoring a backup needs the cloud-init seed this deploy '
                             'generates (it gives the engine VM the root login and SSH host '
                             'key the restore uses): answer Generate (%s=str:generate)'
                             % c.VMEnv.CLOUD_INIT_ISO)
        if mode != 'generate':
            return

        if restoring(self):
            # the deploy runs engine-setup itself, after restoring the backup in the VM
            env[c.VMEnv.CLOUDINIT_EXECUTE_ESETUP] = False
        else:
            common.ask_yes_no(self, c.VMEnv.CLOUDINIT_EXECUTE_ESETUP, 'CI_EXECUTE_ESETUP',
                              'Automatically execute engine-setup on the engine appliance on '
                              'first boot', default=True)
        if env.get(c.VMEnv.CLOUDINIT_ROOTPWD) is None:
            env[c.VMEnv.CLOUDINIT_ROOTPWD] = self.dialog.query_password(
                'CI_ROOT_PASSWORD', 'Enter root password that will be used for the engine '
                'appliance', 'Confirm appliance root password', validator=check_root_password)
        else:
            try:
                check_root_password(env[c.VMEnv.CLOUDINIT_ROOTPWD])
            except ValueError as e:
                raise ValueError('Invalid %s: %s' % (c.VMEnv.CLOUDINIT_ROOTPWD, e))
        common.ask(self, c.VMEnv.ROOT_SSH_PUBKEY, 'CI_ROOT_SSH_PUBKEY',
                   'Enter ssh public key for the root user that will be used for the engine '
                   'appliance (leave it empty to skip)', check_pubkey, allow_empty=True)
        common.ask(self, c.VMEnv.ROOT_SSH_ACCESS, 'CI_ROOT_SSH_ACCESS',
                   'Do you want to enable ssh access for the root user', check_ssh_access,
                   default='yes', valid_values=cloud_init.ROOT_SSH_ACCESS)
        if restoring(self) and env[c.VMEnv.ROOT_SSH_ACCESS] != 'yes':
            raise ValueError('Restoring a backup copies it into the engine VM over SSH as root '
                             'with the root password: answer yes to root SSH access (%s); '
                             'restrict it in the engine VM after the deploy'
                             % c.VMEnv.ROOT_SSH_ACCESS)
        self._network()
        common.ask_yes_no(self, c.VMEnv.CLOUDINIT_VM_ETC_HOSTS, 'CI_VM_ETC_HOST',
                          'Add lines for the appliance itself and for this host to /etc/hosts '
                          'on the engine VM?\nNote: ensuring that this host could resolve the '
                          'engine VM hostname is still up to you', default=False)
        common.ask(self, c.VMEnv.CLOUDINIT_VM_TZ, 'CI_VM_TZ',
                   'Please provide the time zone of the engine VM', check_timezone,
                   default=host_timezone())

    def check_iso(self, value):
        path = os.path.abspath(str(value).strip())
        if not os.path.isfile(path):
            raise ValueError('the cloud-init ISO %s does not exist: give the path of a NoCloud '
                             'seed ISO' % path)
        try:
            with open(path, 'rb') as f:
                f.seek(0x8001)
                magic = f.read(5)
        except OSError as e:
            raise ValueError('cannot read the cloud-init ISO %s (%s)' % (path, e.strerror or e))
        if magic != b'CD001':
            raise ValueError('%s is not an ISO 9660 image: give a NoCloud seed ISO (volume id '
                             'cidata)' % path)
        return path

    def _network(self):
        env = self.environment
        if env.get(c.VMEnv.CLOUDINIT_VM_STATIC_CIDR) is not None:
            env[c.VMEnv.CLOUDINIT_VM_NETWORK] = 'static'
        if env.get(c.VMEnv.CLOUDINIT_VM_NETWORK) is None:
            env[c.VMEnv.CLOUDINIT_VM_NETWORK] = self.dialog.query_string(
                'CI_VM_STATIC_NETWORKING', 'How should the engine VM network be configured',
                valid_values=('DHCP', 'Static'), case_sensitive=False, default='DHCP').lower()
        if env[c.VMEnv.CLOUDINIT_VM_NETWORK] != 'static':
            return
        if not self.fqdn_addrs:
            try:
                self.fqdn_addrs = engine_vm.resolve(env[c.NetworkEnv.FQDN])
            except OSError:
                self.fqdn_addrs = []
        caps = env.get(c.VDSMEnv.CAPS)
        common.ask(self, c.VMEnv.CLOUDINIT_VM_STATIC_CIDR, 'CLOUDINIT_VM_STATIC_IP_ADDRESS',
                   'Please enter the IP address to be used for the engine VM (A.B.C.D/N)',
                   lambda v: check_static_cidr(v, self.fqdn_addrs, self.local_addrs(),
                                               env.get(c.NetworkEnv.GATEWAY)),
                   default=default_cidr(self.fqdn_addrs, caps))
        self.logger.info('The engine VM will be configured to use %s',
                         env[c.VMEnv.CLOUDINIT_VM_STATIC_CIDR])
        dns = host_dns_servers()
        common.ask(self, c.VMEnv.CLOUDINIT_VM_DNS, 'CLOUDINIT_VM_DNS',
                   'Please provide a comma-separated list (max 3) of IP addresses of domain '
                   'name servers for the engine VM\nEngine VM DNS (leave it empty to skip)',
                   check_dns, default=','.join(dns) if dns else None, allow_empty=True)
