"""hosted-engine.conf and vm.conf: oVirt's ``key=value`` files.

hosted-engine.conf (/etc/ovirt-hosted-engine/hosted-engine.conf) says where the
hosted-engine storage domain and its volumes are and how this host takes part
(host_id, gateway, bridge, network_test, ...); see docs/ha-services.md.

vm.conf is the VM definition the HA agent starts the engine VM from: oVirt's
keys (vmId, memSize, vmName, smp, ...) plus ``xmlBase64``, the base64 of the
libvirt domain XML given to ``VM.create`` as ``vmParams['xml']``.

    conf = load(path)                     # a dict of str -> str; ConfError names file and line
    sd, host_id = required(conf, 'sdUUID', 'host_id')
    text = render(conf)                   # sorted key=value lines
    vmconf = load_vm_conf(path); xml = vm_xml(vmconf)
    vmconf = make_vm_conf(vm_id, xml, mem_mb=4096, vcpus=2)

Lines are ``key=value``; blank lines and lines starting with ``#`` are skipped;
the value is everything after the first ``=`` (stripped of surrounding blanks).
"""
import base64
import binascii
import os
import re
import tempfile
import xml.etree.ElementTree as ET

from . import layout

KEY_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.\-]*$')

# Keys of hosted-engine.conf (oVirt's, plus sanlock_io_timeout).
HE_KEYS = (
    'fqdn', 'vm_disk_id', 'vm_disk_vol_id', 'vmid', 'storage', 'mnt_options', 'conf', 'host_id',
    'console', 'domainType', 'spUUID', 'sdUUID', 'connectionUUID', 'ca_cert', 'ca_subject',
    'vdsm_use_ssl', 'gateway', 'bridge', 'metadata_volume_UUID', 'metadata_image_UUID',
    'lockspace_volume_UUID', 'lockspace_image_UUID', 'conf_volume_UUID', 'conf_image_UUID',
    'network_test', 'tcp_t_address', 'tcp_t_port', 'sanlock_io_timeout')
# The engine CA's keys: known only once engine-setup ran in the engine VM, and read by no HA
# service (the broker runs from a hosted-engine.conf without them until the deploy ends).
ENGINE_CA_KEYS = ('ca_cert', 'ca_subject')
DOMAIN_TYPES = tuple(layout.DOMAIN_TYPES)     # the storage layout's names, in its order
NETWORK_TESTS = ('dns', 'ping', 'tcp', 'none')
DEFAULT_SANLOCK_IO_TIMEOUT = layout.DEFAULT_IO_TIMEOUT


class ConfError(Exception):
    """A configuration file is missing, unreadable or wrong.

    str() is one line: '<path>[:<line>]: <problem>'; path and line are attributes.
    """

    def __init__(self, path, line, problem):
        where = path or '<configuration>'
        if line:
            where = '%s:%d' % (where, line)
        super().__init__('%s: %s' % (where, problem))
        self.path = path
        self.line = line
        self.problem = problem


class Conf(dict):
    """A loaded key=value file: a dict that remembers its path and key lines."""

    def __init__(self, items=(), path=None, lines=None):
        super().__init__(items)
        self.path = path
        self.lines = dict(lines or {})


def parse(text, path=None):
    """Parse key=value text; return a Conf. Raises ConfError naming path and line."""
    conf = Conf(path=path)
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        key, sep, value = line.partition('=')
        key = key.strip()
        if not sep:
            raise ConfError(path, n, 'expected key=value, found %r; fix or remove the line'
                            % line[:60])
        if not KEY_RE.match(key):
            raise ConfError(path, n, 'bad key %r; keys are letters, digits, "_", "." and "-"'
                            % key[:60])
        if key in conf:
            raise ConfError(path, n, 'key %s given twice (first on line %d); keep one'
                            % (key, conf.lines[key]))
        conf[key] = value.strip()
        conf.lines[key] = n
    return conf


def _read(path, what):
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except FileNotFoundError:
        raise ConfError(path, None, 'no such file; %s' % what)
    except UnicodeDecodeError as e:
        raise ConfError(path, None, 'not UTF-8 text (%s); restore the file' % e.reason)
    except OSError as e:
        raise ConfError(path, None, 'cannot read it (%s)' % (e.strerror or e))


def load(path):
    """Load hosted-engine.conf; return a Conf (dict of str -> str)."""
    conf = parse(_read(path, 'deploy hosted-engine first (hosted-engine --deploy)'), path)
    _check_he(conf)
    return conf


def _number(lo, hi, unit):
    def check(value):
        try:
            return lo <= int(value) <= hi
        except ValueError:
            return False
    return check, '%s from %d to %d' % (unit, lo, hi)


def _one_of(choices, fold=False):
    def check(value):
        return (value.lower() if fold else value) in choices
    return check, 'one of %s' % ', '.join(choices)


def _port_or_empty(value):
    return value == '' or _number(1, 65535, '')[0](value)


# The one table of checked hosted-engine.conf keys: key -> (check(value) -> bool, what is
# accepted, checked when empty). load() checks every key of it present in the file, and
# `hosted-engine --set-shared-config --type=he_local|he_shared` checks the value it writes.
HE_VALIDATORS = {
    'host_id': _number(1, layout.MAX_HOSTS, 'a number') + (True,),
    'domainType': _one_of(DOMAIN_TYPES) + (False,),
    'network_test': _one_of(NETWORK_TESTS) + (False,),
    'sanlock_io_timeout': _number(1, 300, 'seconds') + (False,),
    'tcp_t_port': (_port_or_empty, 'a port number from 1 to 65535, or empty', False),
    'vdsm_use_ssl': _one_of(('true', 'false'), fold=True) + (False,),
}


# ha.conf (/var/lib/ovirt-hosted-engine-ha/ha.conf): the host agent reads these flags as
# exactly 'True' (anything else is False) and the HA agent case-insensitively, so only what
# both read alike is written by `hosted-engine --set-shared-config --type=ha`.
HA_VALIDATORS = {
    'local_maintenance': _one_of(('True', 'False')) + (True,),
    'local_maintenance_manual': _one_of(('True', 'False')) + (True,),
}


def value_problem(key, value, table=None):
    """None when ``value`` is accepted for key ``key`` of hosted-engine.conf (or of the
    file whose ``table`` is given, e.g. HA_VALIDATORS), else one line naming the key, what
    is accepted and the value."""
    entry = (HE_VALIDATORS if table is None else table).get(key)
    if entry is None:
        return None
    check, accepted, check_empty = entry
    if value == '' and not check_empty:
        return None
    if check(value):
        return None
    return '%s must be %s, not %r' % (key, accepted, value)


def _check_he(conf):
    for key in HE_VALIDATORS:
        if key in conf:
            problem = value_problem(key, conf[key])
            if problem:
                raise ConfError(conf.path, conf.lines.get(key), problem)


def _value(key, value):
    if isinstance(value, bool):
        value = 'true' if value else 'false'
    text = '' if value is None else str(value)
    if '\n' in text or '\r' in text:
        raise ValueError('the value of %s has a line break' % key)
    if not KEY_RE.match(str(key)):
        raise ValueError('bad key %r' % (key,))
    return text


def render(conf):
    """key=value lines, sorted by key (bools as true/false, None as empty)."""
    return ''.join('%s=%s\n' % (k, _value(k, conf[k])) for k in sorted(conf))


def required(conf, *keys):
    """The values of keys (a list, in order); ConfError naming every missing or empty key."""
    missing = [k for k in keys if conf.get(k) in (None, '')]
    if missing:
        raise ConfError(getattr(conf, 'path', None), None,
                        'missing %s; deploy again or add %s' % (
                            ', '.join(missing), 'them' if len(missing) > 1 else 'it'))
    return [conf[k] for k in keys]


def io_timeout(conf):
    """The io timeout the hosted-engine lockspace was written with (default 10)."""
    return int(conf.get('sanlock_io_timeout') or DEFAULT_SANLOCK_IO_TIMEOUT)


def parse_kv(text):
    """{key: value} of ``key=value`` lines, leniently: comments, blank lines and lines
    without '=' are skipped (for files read to look one value up; load() checks)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, _, value = line.partition('=')
        out[key.strip()] = value.strip()
    return out


def write(path, text, mode=0o644, keep_mode=False):
    """Write a file atomically (temporary file in the same directory, fsync, rename).

    ``text`` is str (UTF-8) or bytes; ``keep_mode``: an existing file keeps its mode."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    if keep_mode:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            pass
    data = text.encode('utf-8') if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=d)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------- vm.conf

def load_vm_conf(path):
    """Load vm.conf; return a Conf. Checks vmId and, when present, xmlBase64."""
    conf = parse(_read(path, 'the HA agent writes it from the configuration volume'), path)
    required(conf, 'vmId')
    if 'xmlBase64' in conf:
        vm_xml(conf)
    return conf


def parse_vm_conf(text, path=None):
    """vm.conf given as text (e.g. read from the configuration volume)."""
    conf = parse(text, path)
    required(conf, 'vmId')
    return conf


def render_vm_conf(vmconf):
    """vm.conf text: vmId first, then the other keys sorted."""
    keys = sorted(vmconf, key=lambda k: (k != 'vmId', k))
    return ''.join('%s=%s\n' % (k, _value(k, vmconf[k])) for k in keys)


def vm_xml(vmconf):
    """The libvirt domain XML of vm.conf (decoded xmlBase64); ConfError when absent or bad."""
    path = getattr(vmconf, 'path', None)
    line = getattr(vmconf, 'lines', {}).get('xmlBase64')
    data = vmconf.get('xmlBase64')
    if not data:
        raise ConfError(path, None, 'no xmlBase64 (the VM\'s domain XML); '
                        'deploy again or set it with hosted-engine --set-shared-config')
    try:
        text = base64.b64decode(data.encode('ascii'), validate=True).decode('utf-8')
    except (binascii.Error, ValueError, UnicodeError):
        raise ConfError(path, line, 'xmlBase64 is not base64 of UTF-8 text; '
                        'deploy again or restore vm.conf')
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ConfError(path, line, 'xmlBase64 is not valid XML (%s); deploy again or '
                        'restore vm.conf' % e)
    if root.tag != 'domain':
        raise ConfError(path, line, 'xmlBase64 holds <%s>, not a libvirt <domain>' % root.tag)
    uuid = (root.findtext('uuid') or '').strip()
    if vmconf.get('vmId') and uuid and uuid.lower() != vmconf['vmId'].lower():
        raise ConfError(path, line, 'the domain XML is for VM %s but vmId is %s; make them '
                        'the same' % (uuid, vmconf['vmId']))
    return text


def encode_xml(xml):
    return base64.b64encode(xml.encode('utf-8')).decode('ascii')


def make_vm_conf(vm_id, xml, mem_mb, vcpus, max_vcpus=None, cpu_type='qemu64',
                 emulated_machine='pc', display='vnc', name='HostedEngine', **extra):
    """A vm.conf dict for the engine VM started from the domain XML ``xml``.

    extra: more oVirt keys (e.g. spiceSecureChannels, devices) added as given.
    """
    root = ET.fromstring(xml)
    uuid = (root.findtext('uuid') or '').strip()
    if uuid and uuid.lower() != str(vm_id).lower():
        raise ValueError('the domain XML is for VM %s, not %s' % (uuid, vm_id))
    conf = {
        'vmId': str(vm_id),
        'memSize': str(int(mem_mb)),
        'vmName': name,
        'smp': str(int(vcpus)),
        'maxVCpus': str(int(max_vcpus or vcpus)),
        'cpuType': cpu_type,
        'emulatedMachine': emulated_machine,
        'display': display,
        'xmlBase64': encode_xml(xml),
    }
    for k, v in extra.items():
        conf[k] = _value(k, v)
    return conf
