"""The engine VM's definition (installer side): libvirt domain XML, vm.conf, value checks.

    spec = EngineVMSpec(vm_uuid=..., memory_mb=4096, vcpus=2, disk_path=paths['vm'],
                        sd_uuid=sd, volume_uuid=vol, image_uuid=img, seed_iso='/var/tmp/seed.iso',
                        bridge='ovirtmgmt', mac=random_mac(),
                        channel_path='/var/lib/libvirt/qemu/channels/<uuid>.org.ovirt.hosted-engine-setup.0')
    xml = domain_xml(spec)          # give to VM.create as vmParams['xml']
    conf = vm_conf(spec, xml)       # vm.conf dict (he_storage/heconf.render_vm_conf writes it)

The VM: name HostedEngine, its disk on the hosted-engine storage domain
(virtio, cache none, an I/O thread, exclusive), the sanlock lease of the VM
volume (lockspace sdUUID, key the volume UUID, target <volume>.lease offset 0),
the cloud-init seed as a read-only cdrom, one virtio NIC on the management
bridge, the virtio-serial channels org.ovirt.hosted-engine-setup.0 and
org.qemu.guest_agent.0, a serial console (pty), VNC (or SPICE) graphics whose
password is set later with VM.setTicket, a virtio RNG and a memory balloon.

Checks the deploy calls for the VM questions (each raises VMConfigError, one
line naming the problem and the fix, or returns a warning text to confirm):
check_mac, random_mac, check_memory, check_vcpus, check_disk_size.
"""
import dataclasses
import math
import random
import re
from typing import Optional
from xml.sax.saxutils import escape, quoteattr

from ovirt_hosted_engine_setup.he_storage import heconf

NAME = 'HostedEngine'
SETUP_CHANNEL = 'org.ovirt.hosted-engine-setup.0'
GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0'
MIN_MEMORY_MB = 4096
MIN_VCPUS = 2
DEFAULT_DISK_GIB = 25
OVIRT_MAC_PREFIX = '00:16:3e'
# A display password nobody can use: VM.setTicket sets the real one (VDSM does the same).
LOCKED_PASSWD = '*****'
LOCKED_PASSWD_VALID_TO = '1970-01-01T00:00:01'
GiB = 1 << 30

_MAC_RE = re.compile(r'^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$')
_UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                      r'[0-9a-fA-F]{12}$')


class VMConfigError(ValueError):
    """A bad VM value; str() is one line naming the problem and the fix."""


@dataclasses.dataclass
class EngineVMSpec:
    """Deploy values of the engine VM.

    domain_type: 'kvm' when /dev/kvm works on the host, else 'qemu' (TCG).
    cpu_model: None (host-model under kvm, QEMU's default under TCG), 'host-model',
      'host-passthrough' or a model name (oVirt's 'model_' prefix is accepted).
    disk_path: the VM volume under /rhev/data-center/mnt/...; its sanlock lease is
      lease_path (default disk_path + '.lease') in lockspace sd_uuid, key volume_uuid.
    seed_iso: the cloud-init seed ISO (None: no cdrom).
    channel_path / guest_agent_path: unix sockets libvirt binds for the two
      virtio-serial channels (guest_agent_path None: libvirt chooses).
    display_listen: the address VNC/SPICE listens on ('0' = every address of the
      host; the display network's address in production).
    """
    vm_uuid: str
    memory_mb: int
    vcpus: int
    disk_path: str
    sd_uuid: str
    volume_uuid: str
    image_uuid: Optional[str] = None
    lease_path: Optional[str] = None
    disk_format: str = 'raw'
    max_vcpus: Optional[int] = None
    cpu_model: Optional[str] = None
    domain_type: str = 'kvm'
    emulated_machine: str = 'pc'
    seed_iso: Optional[str] = None
    bridge: str = 'ovirtmgmt'
    mac: Optional[str] = None
    channel_path: Optional[str] = None
    guest_agent_path: Optional[str] = None
    console: str = 'vnc'
    display_listen: str = '0'
    emulator: Optional[str] = None
    name: str = NAME

    def validate(self):
        if not _UUID_RE.match(str(self.vm_uuid)):
            raise VMConfigError('the VM UUID %r is not a UUID' % (self.vm_uuid,))
        for what, value in (('storage domain UUID', self.sd_uuid),
                            ('VM volume UUID', self.volume_uuid)):
            if not value:
                raise VMConfigError('the %s is missing: create the VM disk first' % what)
        if self.domain_type not in ('kvm', 'qemu'):
            raise VMConfigError('domain type %r is neither kvm nor qemu' % (self.domain_type,))
        if self.disk_format not in ('raw', 'qcow2'):
            raise VMConfigError('disk format %r is neither raw nor qcow2' % (self.disk_format,))
        if self.console not in ('vnc', 'spice'):
            raise VMConfigError('console type %r is neither vnc nor spice' % (self.console,))
        if int(self.memory_mb) < 1 or int(self.vcpus) < 1:
            raise VMConfigError('memory and vCPUs must be positive numbers')
        if self.max_vcpus is not None and int(self.max_vcpus) < int(self.vcpus):
            raise VMConfigError('maxVCpus %s is below the %s vCPUs' % (self.max_vcpus,
                                                                       self.vcpus))
        if self.mac:
            check_mac(self.mac)
        return self


# ---------------------------------------------------------------- the domain XML

def _cpu_model(spec):
    model = spec.cpu_model
    if model and model.startswith('model_'):
        model = model[len('model_'):]
    return model


def _cpu_xml(spec, max_vcpus):
    topology = "<topology sockets='%d' cores='1' threads='1'/>" % max_vcpus
    model = _cpu_model(spec)
    if model in ('host-model', 'host-passthrough'):
        return "<cpu mode=%s>%s</cpu>" % (quoteattr(model), topology)
    if model:
        return ("<cpu mode='custom' match='exact'><model fallback='allow'>%s</model>%s</cpu>"
                % (escape(model), topology))
    if spec.domain_type == 'kvm':
        return "<cpu mode='host-model'>%s</cpu>" % topology
    return '<cpu>%s</cpu>' % topology


def _cpu_type(spec):
    model = _cpu_model(spec)
    if model:
        return model
    return 'host-model' if spec.domain_type == 'kvm' else 'qemu64'


def domain_xml(spec):
    """The libvirt domain XML (a string) of the engine VM."""
    spec.validate()
    vcpus = int(spec.vcpus)
    max_vcpus = int(spec.max_vcpus or vcpus)
    lease_path = spec.lease_path or spec.disk_path + '.lease'
    q35 = 'q35' in spec.emulated_machine
    devices = []
    if spec.emulator:
        devices.append('<emulator>%s</emulator>' % escape(spec.emulator))
    devices.append(
        "<disk type='file' device='disk' snapshot='no'>"
        "<driver name='qemu' type=%s cache='none' error_policy='stop' io='threads'"
        " iothread='1'/>"
        '<source file=%s/>'
        "<target dev='vda' bus='virtio'/>"
        '%s'
        "<boot order='1'/>"
        '</disk>' % (quoteattr(spec.disk_format), quoteattr(spec.disk_path),
                     '<serial>%s</serial>' % escape(spec.image_uuid) if spec.image_uuid
                     else ''))
    if spec.seed_iso:
        devices.append(
            "<disk type='file' device='cdrom'>"
            "<driver name='qemu' type='raw'/>"
            '<source file=%s/>'
            '%s<readonly/>'
            '</disk>' % (quoteattr(spec.seed_iso),
                         "<target dev='sdc' bus='sata'/>" if q35 else
                         "<target dev='hdc' bus='ide'/>"))
    devices.append(
        '<lease><lockspace>%s</lockspace><key>%s</key><target path=%s offset=\'0\'/></lease>'
        % (escape(spec.sd_uuid), escape(spec.volume_uuid), quoteattr(lease_path)))
    devices.append(
        "<interface type='bridge'>%s<source bridge=%s/><model type='virtio'/>"
        "<link state='up'/></interface>"
        % ('<mac address=%s/>' % quoteattr(check_mac(spec.mac)) if spec.mac else '',
           quoteattr(spec.bridge)))
    devices.append("<controller type='virtio-serial' index='0' ports='16'/>")
    devices.append(
        "<channel type='unix'><source mode='bind'%s/><target type='virtio' name=%s/></channel>"
        % (' path=%s' % quoteattr(spec.channel_path) if spec.channel_path else '',
           quoteattr(SETUP_CHANNEL)))
    devices.append(
        "<channel type='unix'><source mode='bind'%s/><target type='virtio' name=%s/></channel>"
        % (' path=%s' % quoteattr(spec.guest_agent_path) if spec.guest_agent_path else '',
           quoteattr(GUEST_AGENT_CHANNEL)))
    devices.append("<serial type='pty'><target port='0'/></serial>")
    devices.append("<console type='pty'><target type='serial' port='0'/></console>")
    devices.append(
        "<graphics type=%s autoport='yes' passwd=%s passwdValidTo=%s listen=%s>"
        "<listen type='address' address=%s/></graphics>"
        % (quoteattr(spec.console), quoteattr(LOCKED_PASSWD), quoteattr(LOCKED_PASSWD_VALID_TO),
           quoteattr(spec.display_listen), quoteattr(spec.display_listen)))
    devices.append("<video><model type=%s/></video>"
                   % quoteattr('qxl' if spec.console == 'spice' else 'vga'))
    devices.append("<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>")
    devices.append("<memballoon model='virtio'/>")
    memory = int(spec.memory_mb)
    return (
        "<domain type=%s>"
        '<name>%s</name><uuid>%s</uuid>'
        "<memory unit='MiB'>%d</memory><currentMemory unit='MiB'>%d</currentMemory>"
        "<vcpu placement='static' current='%d'>%d</vcpu>"
        '<iothreads>1</iothreads>'
        "<os><type arch='x86_64' machine=%s>hvm</type><bios useserial='yes'/></os>"
        '<features><acpi/><apic/></features>'
        '%s'
        "<clock offset='utc'/>"
        '<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>'
        '<on_crash>destroy</on_crash>'
        '<devices>%s</devices>'
        '</domain>'
        % (quoteattr(spec.domain_type), escape(spec.name), escape(str(spec.vm_uuid)),
           memory, memory, vcpus, max_vcpus, quoteattr(spec.emulated_machine),
           _cpu_xml(spec, max_vcpus), ''.join(devices)))


def vm_conf(spec, xml):
    """The vm.conf dict of the engine VM (he_storage/heconf.make_vm_conf with the spec's values)."""
    return heconf.make_vm_conf(
        spec.vm_uuid, xml, mem_mb=spec.memory_mb, vcpus=spec.vcpus,
        max_vcpus=spec.max_vcpus or spec.vcpus, cpu_type=_cpu_type(spec),
        emulated_machine=spec.emulated_machine, display=spec.console, name=spec.name)


# ---------------------------------------------------------------- checks

def random_mac(rng=None):
    """A unicast MAC in oVirt's range: 00:16:3e, 4th octet 0x00-0x7f, two random octets."""
    rng = rng or random.SystemRandom()
    return '%s:%02x:%02x:%02x' % (OVIRT_MAC_PREFIX, rng.randint(0, 0x7f), rng.randint(0, 0xff),
                                  rng.randint(0, 0xff))


def check_mac(mac):
    """The MAC in lower-case colon form; VMConfigError if malformed, multicast or zero."""
    text = str(mac or '').strip()
    if not _MAC_RE.match(text):
        raise VMConfigError('the MAC address %s is malformed; use six hex pairs separated by '
                            'colons, such as %s' % (text or '(empty)', random_mac()))
    text = text.replace('-', ':').lower()
    first = int(text[:2], 16)
    if first & 1:
        raise VMConfigError('the MAC address %s is multicast; use a unicast address such as %s'
                            % (text, random_mac()))
    if text == '00:00:00:00:00:00':
        raise VMConfigError('the MAC address %s is all zeros; use an address such as %s'
                            % (text, random_mac()))
    return text


def _number(value, what):
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise VMConfigError('%s %r is not a whole number' % (what, value))
    if n < 1:
        raise VMConfigError('%s must be a positive number, not %d' % (what, n))
    return n


def check_memory(memory_mb, host_free_mb=None, minimum=MIN_MEMORY_MB):
    """Returns a warning text (below the minimum: ask to confirm) or None.

    Raises VMConfigError when the host has less free memory than asked for.
    """
    mb = _number(memory_mb, 'the memory size')
    if host_free_mb is not None and mb > int(host_free_mb):
        raise VMConfigError('%d MB of memory is more than the %d MB free on this host: give '
                            'at most %d MB or free memory on the host'
                            % (mb, int(host_free_mb), int(host_free_mb)))
    if mb < minimum:
        return ('%d MB of memory is below the minimum requirement of %d MB; the engine may '
                'not run well' % (mb, minimum))
    return None


def check_vcpus(vcpus, host_cores=None, minimum=MIN_VCPUS):
    """Returns a warning text (below the minimum) or None; VMConfigError above the host's cores."""
    n = _number(vcpus, 'the number of vCPUs')
    if host_cores is not None and n > int(host_cores):
        raise VMConfigError('%d vCPUs are more than the %d CPU cores of this host: give at '
                            'most %d' % (n, int(host_cores), int(host_cores)))
    if n < minimum:
        return ('%d vCPU%s below the minimum requirement of %d; the engine may be slow'
                % (n, ' is' if n == 1 else 's are', minimum))
    return None


def check_disk_size(disk_gib, appliance_size_bytes=None, minimum_gib=DEFAULT_DISK_GIB):
    """Check the VM disk size in GiB against the appliance's virtual size (bytes).

    Raises VMConfigError if smaller than the appliance ("disk smaller than the
    appliance: at least N GiB"); returns a warning text below minimum_gib, else None.
    """
    gib = _number(disk_gib, 'the disk size')
    if appliance_size_bytes is not None and gib * GiB < int(appliance_size_bytes):
        raise VMConfigError('disk smaller than the appliance: at least %d GiB'
                            % int(math.ceil(int(appliance_size_bytes) / GiB)))
    if gib < minimum_gib:
        return ('a %d GiB disk is below the minimum requirement of %d GiB'
                % (gib, minimum_gib))
    return None


# ---------------------------------------------------------------- the host's view

# oVirt's cluster CPU types, oldest first: (name, description, vendor, CPU flags a host
# needs to offer the model). The name without "model_" is the libvirt/QEMU model.
CPU_MODELS = (
    ('model_Conroe', 'Intel Conroe Family', 'intel', ('sse2', 'ssse3')),
    ('model_Penryn', 'Intel Penryn Family', 'intel', ('sse2', 'ssse3', 'sse4_1')),
    ('model_Nehalem', 'Intel Nehalem Family', 'intel',
     ('sse2', 'ssse3', 'sse4_1', 'sse4_2', 'popcnt')),
    ('model_Westmere', 'Intel Westmere Family', 'intel',
     ('sse2', 'ssse3', 'sse4_1', 'sse4_2', 'popcnt', 'aes', 'pclmulqdq')),
    ('model_SandyBridge', 'Intel SandyBridge Family', 'intel',
     ('sse4_2', 'popcnt', 'aes', 'pclmulqdq', 'avx', 'xsave')),
    ('model_IvyBridge', 'Intel IvyBridge Family', 'intel',
     ('sse4_2', 'popcnt', 'aes', 'pclmulqdq', 'avx', 'xsave', 'f16c', 'rdrand',
      'fsgsbase')),
    ('model_Haswell-noTSX', 'Intel Haswell-noTSX Family', 'intel',
     ('sse4_2', 'popcnt', 'aes', 'pclmulqdq', 'avx', 'xsave', 'f16c', 'rdrand', 'fsgsbase',
      'avx2', 'bmi1', 'bmi2', 'fma', 'movbe')),
    ('model_Broadwell-noTSX', 'Intel Broadwell-noTSX Family', 'intel',
     ('sse4_2', 'popcnt', 'aes', 'pclmulqdq', 'avx', 'xsave', 'f16c', 'rdrand', 'fsgsbase',
      'avx2', 'bmi1', 'bmi2', 'fma', 'movbe', 'adx', 'rdseed', 'smap')),
    ('model_Skylake-Client', 'Intel Skylake Client Family', 'intel',
     ('sse4_2', 'popcnt', 'aes', 'pclmulqdq', 'avx', 'xsave', 'f16c', 'rdrand', 'fsgsbase',
      'avx2', 'bmi1', 'bmi2', 'fma', 'movbe', 'adx', 'rdseed', 'smap', 'xsavec',
      'clflushopt')),
    ('model_Skylake-Server', 'Intel Skylake Server Family', 'intel',
     ('sse4_2', 'popcnt', 'aes', 'pclmulqdq', 'avx', 'xsave', 'f16c', 'rdrand', 'fsgsbase',
      'avx2', 'bmi1', 'bmi2', 'fma', 'movbe', 'adx', 'rdseed', 'smap', 'xsavec',
      'clflushopt', 'avx512f', 'avx512dq', 'avx512cd', 'avx512bw', 'avx512vl', 'clwb')),
    ('model_Cascadelake-Server', 'Intel Cascadelake Server Family', 'intel',
     ('sse4_2', 'popcnt', 'aes', 'pclmulqdq', 'avx', 'xsave', 'f16c', 'rdrand', 'fsgsbase',
      'avx2', 'bmi1', 'bmi2', 'fma', 'movbe', 'adx', 'rdseed', 'smap', 'xsavec',
      'clflushopt', 'avx512f', 'avx512dq', 'avx512cd', 'avx512bw', 'avx512vl', 'clwb',
      'avx512_vnni')),
    ('model_Opteron_G4', 'AMD Opteron G4', 'amd',
     ('sse4_1', 'sse4_2', 'popcnt', 'aes', 'pclmulqdq', 'avx', 'xsave', 'sse4a')),
    ('model_Opteron_G5', 'AMD Opteron G5', 'amd',
     ('sse4_1', 'sse4_2', 'popcnt', 'aes', 'pclmulqdq', 'avx', 'xsave', 'sse4a', 'fma',
      'f16c', 'tbm')),
    ('model_EPYC', 'AMD EPYC', 'amd',
     ('sse4_2', 'popcnt', 'aes', 'pclmulqdq', 'avx', 'xsave', 'avx2', 'bmi1', 'bmi2', 'fma',
      'movbe', 'adx', 'rdseed', 'smap', 'sha_ni', 'xsavec')),
)
CPU_DESCRIPTIONS = {name: desc for name, desc, _v, _f in CPU_MODELS}
# What QEMU's TCG emulates on any host (QEMU 7 and later): the models up to Westmere.
TCG_FLAGS = frozenset(('sse2', 'ssse3', 'sse4_1', 'sse4_2', 'popcnt', 'aes', 'pclmulqdq'))


def _flags(caps):
    return {f.strip() for f in str((caps or {}).get('cpuFlags') or '').split(',') if f.strip()}


def kvm_usable(caps):
    """True when the engine VM can run under KVM: the host agent reports KVM enabled and
    the CPU offers hardware virtualization (vmx or svm). Otherwise the VM runs under TCG
    (domain type qemu), as in the lab, where /dev/kvm exists but the CPU shows neither."""
    caps = caps or {}
    enabled = str(caps.get('kvmEnabled', '')).lower() in ('true', '1', 'yes')
    return enabled and bool(_flags(caps) & {'vmx', 'svm'})


def host_vendor(caps):
    text = ' '.join(str((caps or {}).get(k) or '') for k in ('cpuModel', 'cpuVendor')).lower()
    if 'intel' in text or 'genuineintel' in text:
        return 'intel'
    if 'amd' in text or 'authenticamd' in text:
        return 'amd'
    return None


def supported_cpu_models(caps):
    """[(name, description)] of the CPU types this host can give the engine VM, newest first.

    VDSM lists them as model_* entries of cpuFlags; otherwise a model is supported when the
    host's CPU flags include the model's (under KVM, of the host's vendor), or, under TCG,
    when QEMU emulates it.
    """
    flags = _flags(caps)
    listed = [f for f in flags if f.startswith('model_')]
    if listed:
        order = {name: i for i, (name, _d, _v, _f) in enumerate(CPU_MODELS)}
        listed.sort(key=lambda n: (order.get(n, -1), n), reverse=True)
        return [(n, CPU_DESCRIPTIONS.get(n, n[len('model_'):])) for n in listed]
    if kvm_usable(caps):
        vendor = host_vendor(caps)
        out = [(n, d) for n, d, v, need in CPU_MODELS
               if (vendor is None or v == vendor) and set(need) <= flags]
    else:
        out = [(n, d) for n, d, _v, need in CPU_MODELS if set(need) <= TCG_FLAGS]
    return list(reversed(out))


def check_cpu_model(model, supported):
    """The model if it is one of supported [(name, description)]; else VMConfigError."""
    names = [n for n, _d in supported]
    text = str(model or '').strip()
    if text in names:
        return text
    if not text.startswith('model_') and 'model_' + text in names:
        return 'model_' + text
    raise VMConfigError('the CPU type %s is not supported by this host; use one of: %s'
                        % (text or '(empty)', ', '.join(names) or '(none found)'))


def host_cores(caps):
    """CPU cores of the host (cpuCores, else cpuCores x cpuSockets as VDSM counts per
    socket, else os.cpu_count())."""
    import os
    caps = caps or {}
    try:
        cores = int(caps.get('cpuCores') or 0)
    except (TypeError, ValueError):
        cores = 0
    try:
        threads = int(caps.get('cpuThreads') or 0)
    except (TypeError, ValueError):
        threads = 0
    return max(cores, threads) or os.cpu_count() or 1


def local_addresses(caps=None):
    """IP addresses of this host: the host agent's view (nics, bridges, vlans, networks)
    and the kernel's (ip -j addr), loopback included."""
    import ipaddress
    import json
    import subprocess
    out = set()

    def add(text):
        try:
            out.add(str(ipaddress.ip_interface(str(text).strip()).ip))
        except ValueError:
            pass
    for group in ('nics', 'bridges', 'vlans', 'networks', 'bondings'):
        for info in ((caps or {}).get(group) or {}).values():
            if not isinstance(info, dict):
                continue
            if info.get('addr'):
                add(info['addr'])
            for a in list(info.get('ipv4addrs') or []) + list(info.get('ipv6addrs') or []):
                add(a)
    try:
        p = subprocess.run(['ip', '-j', 'addr', 'show'], capture_output=True, text=True,
                           timeout=10)
        for link in json.loads(p.stdout or '[]'):
            for a in link.get('addr_info', []):
                if a.get('local'):
                    add(a['local'])
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return out


def resolve(name):
    """The addresses name resolves to (the system resolver: /etc/hosts, DNS)."""
    import socket
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    return sorted({i[4][0] for i in infos})


def check_engine_fqdn(fqdn, local_addrs, resolver=resolve):
    """The engine VM's FQDN: syntax, not localhost, resolvable, not one of this host's
    addresses. Returns the addresses it resolves to; VMConfigError otherwise."""
    import ipaddress
    import socket
    text = str(fqdn or '').strip().rstrip('.')
    if text.lower() == 'localhost' or text.lower().startswith('localhost.'):
        raise VMConfigError('%s cannot be the engine FQDN: give the engine VM its own name, '
                            'such as engine.example.com' % text)
    labels = text.split('.')
    if len(text) > 253 or len(labels) < 2 or not all(
            re.match(r'^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$', lb) for lb in labels):
        raise VMConfigError('%r is not a valid fully qualified domain name: use letters, '
                            'digits and "-" in dot-separated labels, such as '
                            'engine.example.com' % text)
    if labels[-1].isdigit():
        raise VMConfigError('%s is an IP address: give the engine VM a fully qualified '
                            'domain name' % text)
    try:
        addrs = resolver(text)
    except (socket.gaierror, socket.herror, UnicodeError, OSError) as e:
        raise VMConfigError('the engine FQDN %s does not resolve (%s): add it to DNS or to '
                            '/etc/hosts on this host' % (text, getattr(e, 'strerror', None)
                                                         or e))
    if not addrs:
        raise VMConfigError('the engine FQDN %s does not resolve: add it to DNS or to '
                            '/etc/hosts on this host' % text)
    local = set(local_addrs or ())
    for a in addrs:
        if a in local or ipaddress.ip_address(a).is_loopback:
            raise VMConfigError('the engine FQDN %s resolves to %s, an address of this host: '
                                'the engine VM needs a name and address of its own'
                                % (text, a))
    return addrs
