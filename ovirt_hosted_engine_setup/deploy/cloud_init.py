"""The engine VM's cloud-init NoCloud seed: an ISO 9660 image with volume id ``cidata``.

    spec = SeedSpec(instance_id=vm_uuid, hostname='engine.example.com', root_password='...',
                    ip='192.168.222.200/24', gateway='192.168.222.1', dns=['192.168.222.1'],
                    mac='00:16:3e:12:34:56', etc_hosts=[('192.168.222.10', ['host1.example.com'])],
                    engine_answers=engine_answers('engine.example.com', admin_password))
    build_seed_iso(spec, '/var/tmp/seed.iso')    # mode 0600: it holds the admin password

The ISO (Joliet + Rock Ridge, made with pycdlib) holds three files, exactly as
docs/appliance-and-seed.md describes: ``meta-data``, ``user-data`` and
``network-config``. The root password is written only as a SHA-512 crypt hash;
the engine admin password only inside the engine-setup answers in user-data.

The engine VM's SSH host key: the deploy makes it (generate_host_key()) and gives it to the
VM in the seed (cloud-init's ``ssh_keys``), keeping the public half, so that its SSH client
(deploy/engine_vm_ssh.py) pins it instead of trusting the first key it sees. The private
half is only ever in the seed, which is mode 0600 like the passwords it carries.
"""
import base64
import dataclasses
import hashlib
import io
import ipaddress
import logging
import os
import re
import tempfile
import warnings
from typing import Dict, Optional, Sequence, Tuple

import yaml

VOLUME_ID = 'cidata'
CHANNEL_NAME = 'org.ovirt.hosted-engine-setup.0'
CHANNEL_DEVICE = '/dev/virtio-ports/' + CHANNEL_NAME
ANSWERS_PATH = '/root/ovirt-engine-answers'
SUCCESS_STRING = 'HE_APPLIANCE_ENGINE_SETUP_SUCCESS'
FAIL_STRING = 'HE_APPLIANCE_ENGINE_SETUP_FAIL'
ROOT_SSH_ACCESS = ('yes', 'no', 'without-password')
SSHD_DROPIN = '/etc/ssh/sshd_config.d/50-ovirt-hosted-engine.conf'

# (ISO 9660 level-1 name, Rock Ridge / Joliet name)
FILES = (('METADATA.;1', 'meta-data'), ('USERDATA.;1', 'user-data'),
         ('NETCONF.;1', 'network-config'))

log = logging.getLogger(__name__)

_LABEL_RE = re.compile(r'^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$')
_MAC_RE = re.compile(r'^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$')


class SeedError(ValueError):
    """A bad seed value; str() is one line naming the value and the fix."""


# ---------------------------------------------------------------- passwords

def _crypt_module():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
    return crypt if hasattr(crypt, 'METHOD_SHA512') else None


def hash_password(password):
    """SHA-512 crypt ("$6$<salt>$<hash>") of password, computed in-process.

    Uses Python's crypt module (libcrypt) where present, else passlib.
    """
    if not isinstance(password, str) or not password:
        raise SeedError('the root password is empty: give a password or leave it out')
    crypt = _crypt_module()
    if crypt is not None:
        value = crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
        if value and value.startswith('$6$'):
            return value
    try:
        from passlib.hash import sha512_crypt
    except ImportError:
        raise SeedError('no SHA-512 crypt implementation here: install passlib '
                        '(pip install passlib)')
    return sha512_crypt.using(rounds=5000).hash(password)


def verify_password(password, hashed):
    """True when hashed is the SHA-512 crypt of password."""
    crypt = _crypt_module()
    if crypt is not None:
        return crypt.crypt(password, hashed) == hashed
    from passlib.hash import sha512_crypt
    return sha512_crypt.verify(password, hashed)


# ---------------------------------------------------------------- the VM's SSH host key

@dataclasses.dataclass(frozen=True)
class SshHostKey:
    """An SSH host key pair for the engine VM: ``private`` in OpenSSH's PEM format (a secret:
    it never reaches a log, an answer file or a repr), ``public`` as an OpenSSH public key line
    ("ssh-ed25519 AAAA... comment")."""
    private: str = dataclasses.field(repr=False)
    public: str

    @property
    def key_type(self):
        """'ed25519' (cloud-init's name of the type, as in ssh_keys' ed25519_private)."""
        return {'ssh-ed25519': 'ed25519', 'ssh-rsa': 'rsa',
                'ecdsa-sha2-nistp256': 'ecdsa', 'ecdsa-sha2-nistp384': 'ecdsa',
                'ecdsa-sha2-nistp521': 'ecdsa'}.get((str(self.public or '').split() or [''])[0])

    @property
    def fingerprint(self):
        """'SHA256:<base64 without padding>', as `ssh-keygen -lf` prints it."""
        blob = base64.b64decode(self.public.split()[1])
        return 'SHA256:' + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip('=')

    def validate(self):
        """Raise SeedError (one line) unless this is a matching ed25519, ecdsa or rsa pair."""
        from cryptography.hazmat.primitives import serialization
        words = str(self.public or '').split()
        if len(words) < 2 or self.key_type is None or '\n' in self.public.strip():
            raise SeedError('the engine VM SSH host public key must be one line such as '
                            '"ssh-ed25519 AAAA... root@engine"')
        try:
            priv = serialization.load_ssh_private_key(str(self.private).encode(), None)
            derived = priv.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH)
        except (ValueError, TypeError, AttributeError):
            raise SeedError('the engine VM SSH host private key is not an unencrypted OpenSSH '
                            'private key: generate the pair again')
        if derived.decode().split()[:2] != words[:2]:
            raise SeedError('the engine VM SSH host private key does not match its public key '
                            '%s: generate the pair again' % words[1][:16])
        return self


def generate_host_key(comment='root@engine'):
    """A new ed25519 SshHostKey for the engine VM (made in-process with cryptography)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    priv = ed25519.Ed25519PrivateKey.generate()
    private = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                 serialization.NoEncryption()).decode('ascii')
    public = priv.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                            serialization.PublicFormat.OpenSSH).decode('ascii')
    return SshHostKey(private=private, public='%s %s' % (public, comment) if comment else public)


# ---------------------------------------------------------------- the spec

def engine_answers(fqdn, admin_password, organization=None, extra=None):
    """The engine-setup answers (an otopi answer file's keys) for the appliance."""
    answers = {
        'OVESETUP_CONFIG/adminPassword': admin_password,
        'OVESETUP_CONFIG/fqdn': fqdn,
        'OVESETUP_CONFIG/applicationMode': 'both',
        'OVESETUP_PKI/organization': organization or (fqdn.split('.', 1)[1]
                                                      if '.' in fqdn else 'Test'),
    }
    answers.update(extra or {})
    return answers


@dataclasses.dataclass
class SeedSpec:
    """What the seed configures in the engine VM.

    hostname: the VM's FQDN. root_password: plain text (hashed when the seed is
    built) or None to leave root's password alone. root_ssh_access: yes, no or
    without-password. ip: None for DHCP or "A.B.C.D/N". etc_hosts: [(ip,
    [names])] appended to /etc/hosts. engine_answers: otopi answer keys for
    engine-setup (see engine_answers()); run_engine_setup: run it on first boot.
    ssh_host_key: the VM's SSH host key (an SshHostKey, see generate_host_key()), or None
    to let the VM make its own.
    """
    instance_id: str
    hostname: str
    root_password: Optional[str] = None
    root_ssh_pubkey: Optional[str] = None
    root_ssh_access: str = 'yes'
    ip: Optional[str] = None
    gateway: Optional[str] = None
    dns: Sequence[str] = ()
    mac: Optional[str] = None
    etc_hosts: Sequence[Tuple[str, Sequence[str]]] = ()
    engine_answers: Dict[str, object] = dataclasses.field(default_factory=dict)
    run_engine_setup: bool = True
    timezone: Optional[str] = None
    interface: str = 'eth0'
    ssh_host_key: Optional[SshHostKey] = dataclasses.field(default=None, repr=False)

    def validate(self):
        """Raise SeedError (one line) for the first bad value."""
        if not self.instance_id or any(c.isspace() for c in str(self.instance_id)):
            raise SeedError('the instance id %r is empty or has blanks: use the VM UUID'
                            % (self.instance_id,))
        check_fqdn(self.hostname)
        if self.root_ssh_access not in ROOT_SSH_ACCESS:
            raise SeedError('root SSH access %r is not one of %s' % (
                self.root_ssh_access, ', '.join(ROOT_SSH_ACCESS)))
        if self.root_ssh_pubkey is not None and ('\n' in self.root_ssh_pubkey.strip()
                                                 or not self.root_ssh_pubkey.strip()):
            raise SeedError('the root SSH public key must be one line such as '
                            '"ssh-ed25519 AAAA... user@host"')
        if self.mac is not None and not _MAC_RE.match(self.mac):
            raise SeedError('the MAC address %r is malformed: use six hex pairs such as '
                            '00:16:3e:12:34:56' % (self.mac,))
        net = None
        if self.ip:
            try:
                iface = ipaddress.IPv4Interface(self.ip)
            except ValueError:
                raise SeedError('the engine VM address %r is not A.B.C.D/N: give the '
                                'address with its prefix length, e.g. 192.168.1.10/24'
                                % (self.ip,))
            if '/' not in self.ip:
                raise SeedError('the engine VM address %r has no prefix length: write it '
                                'as %s/24 (or the right prefix)' % (self.ip, self.ip))
            if iface.ip in (iface.network.network_address, iface.network.broadcast_address) \
                    and iface.network.prefixlen < 31:
                raise SeedError('the engine VM address %s is the network or broadcast '
                                'address of %s: choose a host address' % (self.ip,
                                                                          iface.network))
            net = iface.network
        if self.gateway:
            gw = _ipv4(self.gateway, 'the gateway')
            if net is not None and gw not in net:
                raise SeedError('the gateway %s is outside the engine VM network %s: give a '
                                'gateway on that network' % (self.gateway, net))
        for server in self.dns or ():
            _ipv4(server, 'the DNS server')
        for entry in self.etc_hosts or ():
            try:
                ip, names = entry
            except (TypeError, ValueError):
                raise SeedError('an /etc/hosts entry must be (address, [names]), not %r'
                                % (entry,))
            if not _is_ip(ip):
                raise SeedError('the /etc/hosts address %r is not an IP address' % (ip,))
            names = [names] if isinstance(names, str) else list(names)
            if not names:
                raise SeedError('the /etc/hosts entry for %s has no names' % ip)
            for n in names:
                check_fqdn(n, allow_short=True)
        for key, value in (self.engine_answers or {}).items():
            if not re.match(r'^[A-Za-z0-9_]+/[A-Za-z0-9_.\-]+$', str(key)):
                raise SeedError('the engine-setup answer key %r is not SECTION/name' % (key,))
            if '\n' in str(value) or '\r' in str(value):
                raise SeedError('the engine-setup answer %s has a line break; remove it' % key)
        if self.run_engine_setup and not self.engine_answers:
            raise SeedError('engine-setup is to run but there are no engine-setup answers: '
                            'give at least the admin password and the engine FQDN')
        if self.timezone is not None and not re.match(r'^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$',
                                                      self.timezone):
            raise SeedError('the time zone %r is not a zone name such as Europe/Rome or UTC'
                            % (self.timezone,))
        if self.ssh_host_key is not None:
            if not isinstance(self.ssh_host_key, SshHostKey):
                raise SeedError('the engine VM SSH host key must be an SshHostKey '
                                '(cloud_init.generate_host_key())')
            self.ssh_host_key.validate()
        return self


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _ipv4(text, what):
    try:
        return ipaddress.IPv4Address(str(text).strip())
    except ValueError:
        raise SeedError('%s %r is not an IPv4 address such as 192.168.1.1' % (what, text))


def check_fqdn(name, allow_short=False):
    """Raise SeedError unless name is a host name (an FQDN unless allow_short)."""
    text = str(name or '')
    labels = text.rstrip('.').split('.')
    if not text or len(text) > 253 or not all(_LABEL_RE.match(lb) for lb in labels):
        raise SeedError('%r is not a valid host name: use letters, digits and "-" in '
                        'dot-separated labels, e.g. engine.example.com' % text)
    if not allow_short and len(labels) < 2:
        raise SeedError('%r is not a fully qualified name: add the domain, e.g. '
                        '%s.example.com' % (text, text))
    return text


# ---------------------------------------------------------------- the three files

class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, data):
    if '\n' in data:
        return dumper.represent_scalar('tag:yaml.org,2002:str', data, style='|')
    return dumper.represent_scalar('tag:yaml.org,2002:str', data)


_Dumper.add_representer(str, _str)


def _dump(data):
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=False,
                     allow_unicode=True, width=4096)


def meta_data(spec):
    """meta-data: instance-id and local-hostname."""
    return _dump({'instance-id': str(spec.instance_id), 'local-hostname': spec.hostname})


def network_config(spec):
    """network-config (version 1): one physical NIC, static or DHCP."""
    if spec.ip:
        subnet = {'type': 'static', 'address': spec.ip}
        if spec.gateway:
            subnet['gateway'] = spec.gateway
        if spec.dns:
            subnet['dns_nameservers'] = list(spec.dns)
        if '.' in spec.hostname:
            subnet['dns_search'] = [spec.hostname.split('.', 1)[1]]
    else:
        subnet = {'type': 'dhcp'}
    nic = {'type': 'physical', 'name': spec.interface}
    if spec.mac:
        nic['mac_address'] = spec.mac.lower()
    nic['subnets'] = [subnet]
    return _dump({'version': 1, 'config': [nic]})


def _answer_value(value):
    if isinstance(value, bool):
        return 'bool:%s' % value
    if isinstance(value, int):
        return 'int:%d' % value
    if value is None:
        return 'none:None'
    return 'str:%s' % value


def answers_text(answers):
    """The otopi answer file engine-setup reads with --config-append."""
    lines = ['[environment:init]', 'DIALOG/autoAcceptDefault=bool:True',
             '[environment:default]']
    lines += ['%s=%s' % (k, _answer_value(v)) for k, v in answers.items()]
    return '\n'.join(lines) + '\n'


def engine_setup_script():
    """The runcmd script (POSIX sh; busybox sh runs it): engine-setup with its
    output teed to the virtio-serial channel, then the SUCCESS/FAIL line there,
    then the answers file removed."""
    return (
        'rc_file=$(mktemp)\n'
        '{ engine-setup --offline --config-append=%(answers)s; echo $? > "$rc_file"; } 2>&1'
        ' | tee %(port)s\n'
        'if [ "$(cat "$rc_file")" = 0 ]; then\n'
        '  echo %(ok)s >> %(port)s\n'
        'else\n'
        '  echo %(fail)s >> %(port)s\n'
        'fi\n'
        'rm -f %(answers)s "$rc_file"\n'
        % {'answers': ANSWERS_PATH, 'port': CHANNEL_DEVICE, 'ok': SUCCESS_STRING,
           'fail': FAIL_STRING})


def user_data(spec, root_password_hash=None):
    """user-data: "#cloud-config" YAML (see docs/appliance-and-seed.md).

    root_password_hash: the hash to write (default: hash spec.root_password now).
    """
    short = spec.hostname.split('.', 1)[0]
    doc = {
        'fqdn': spec.hostname,
        'hostname': short,
        'ssh_pwauth': spec.root_ssh_access == 'yes',
        'disable_root': spec.root_ssh_access == 'no',
    }
    if spec.root_password:
        doc['chpasswd'] = {'expire': False, 'users': [{
            'name': 'root', 'password': root_password_hash or hash_password(spec.root_password),
            'type': 'hash'}]}
    if spec.root_ssh_pubkey:
        doc['ssh_authorized_keys'] = [spec.root_ssh_pubkey.strip()]
    if spec.timezone:
        doc['timezone'] = spec.timezone
    if spec.ssh_host_key is not None:
        # cloud-init replaces the VM's host keys with these and generates none other: the VM
        # offers only the key the deploy pins
        kind = spec.ssh_host_key.key_type
        doc['ssh_keys'] = {'%s_private' % kind: spec.ssh_host_key.private,
                           '%s_public' % kind: spec.ssh_host_key.public}
    files = [{'path': SSHD_DROPIN, 'content': 'PermitRootLogin %s\n' % spec.root_ssh_access,
              'permissions': '0644'}]
    if spec.etc_hosts:
        lines = []
        for ip, names in spec.etc_hosts:
            names = [names] if isinstance(names, str) else list(names)
            lines.append('%s %s' % (ip, ' '.join(names)))
        files.append({'path': '/etc/hosts', 'content': '\n'.join(lines) + '\n',
                      'append': True})
    if spec.run_engine_setup:
        files.append({'path': ANSWERS_PATH, 'content': answers_text(spec.engine_answers),
                      'owner': 'root:root', 'permissions': '0600'})
    doc['write_files'] = files
    if spec.run_engine_setup:
        doc['runcmd'] = [engine_setup_script()]
    return '#cloud-config\n' + _dump(doc)


# ---------------------------------------------------------------- the ISO

def seed_files(spec):
    """{name: bytes} of the three seed files (validates spec first)."""
    spec.validate()
    return {'meta-data': meta_data(spec).encode('utf-8'),
            'user-data': user_data(spec).encode('utf-8'),
            'network-config': network_config(spec).encode('utf-8')}


def build_seed_iso(spec, path):
    """Write the NoCloud seed ISO (volume id cidata) to path, mode 0600; return path.

    Written to a temporary file (created 0600) in the same directory, then renamed.
    """
    import pycdlib
    files = seed_files(spec)
    if spec.ssh_host_key is not None:
        log.info('The engine VM SSH host key (in the seed): %s %s',
                 spec.ssh_host_key.public.split()[0], spec.ssh_host_key.fingerprint)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=d)
    iso = pycdlib.PyCdlib()
    try:
        os.fchmod(fd, 0o600)
        iso.new(interchange_level=1, joliet=3, rock_ridge='1.09', vol_ident=VOLUME_ID,
                sys_ident='LINUX')
        for iso_name, name in FILES:
            data = files[name]
            iso.add_fp(io.BytesIO(data), len(data), '/' + iso_name, rr_name=name,
                       joliet_path='/' + name, file_mode=0o100400)
        with os.fdopen(fd, 'wb') as f:
            fd = None
            iso.write_fp(f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        iso.close()
    return path


def read_seed_iso(path):
    """{name: bytes} of the files in a seed ISO, read by their Rock Ridge names, plus
    the volume id under the key None."""
    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.open(path)
    try:
        out = {None: iso.pvd.volume_identifier.decode('ascii', 'replace').strip()}
        for _, name in FILES:
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path='/' + name)
            out[name] = buf.getvalue()
        return out
    finally:
        iso.close()


__all__ = ['SeedSpec', 'SeedError', 'SshHostKey', 'generate_host_key', 'build_seed_iso', 'read_seed_iso', 'seed_files',
           'meta_data', 'user_data', 'network_config', 'engine_answers', 'answers_text',
           'hash_password', 'verify_password', 'check_fqdn', 'engine_setup_script',
           'VOLUME_ID', 'CHANNEL_NAME', 'CHANNEL_DEVICE', 'ANSWERS_PATH', 'SUCCESS_STRING',
           'FAIL_STRING']
