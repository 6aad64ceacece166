"""Validators of user input: each raises ValueError with a reason a user can act on."""
import ipaddress
import re

from ..he_storage import layout
from ..he_storage.layout import MAX_HOSTS

_NAME = re.compile(r'^[a-zA-Z0-9_-]+$')
_LABEL = re.compile(r'^(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$')
_EMAIL = re.compile(r'^[^@\s,]+@[^@\s,]+$')
_MAC = re.compile(r'^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$')
_UUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')


def one_of(*values):
    def check(value):
        if value not in values:
            raise ValueError('must be one of %s' % ', '.join(values))
    return check


def name(value):
    """Data center and cluster names."""
    if not _NAME.match(str(value)):
        raise ValueError('only letters, digits, "_" and "-" are allowed')


def fqdn(value):
    value = str(value)
    if len(value) > 253 or '.' not in value.strip('.'):
        raise ValueError('%r is not a fully qualified domain name (like engine.example.com)'
                         % value)
    if value.lower().startswith('localhost'):
        raise ValueError('localhost cannot be used as an FQDN')
    for label in value.rstrip('.').split('.'):
        if not _LABEL.match(label):
            raise ValueError('%r is not a valid host name (bad label %r)' % (value, label))
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return
    raise ValueError('%r is an IP address; an FQDN is required' % value)


def port(value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError('%r is not a port number' % (value,))
    if not 1 <= number <= 65535:
        raise ValueError('port %d is out of range 1-65535' % number)
    return number


def positive_int(value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError('%r is not a whole number' % (value,))
    if number <= 0:
        raise ValueError('%d is not a positive number' % number)
    return number


def io_timeout(value):
    """The sanlock I/O timeout of the hosted-engine lockspace, seconds."""
    number = positive_int(value)
    if not layout.MIN_IO_TIMEOUT <= number <= layout.MAX_IO_TIMEOUT:
        raise ValueError('%d s is not a sanlock I/O timeout: use %d to %d seconds (VDSM\'s '
                         'default is %d)' % (number, layout.MIN_IO_TIMEOUT,
                                              layout.MAX_IO_TIMEOUT, layout.DEFAULT_IO_TIMEOUT))
    return number


def io_timeout_text(value):
    """The preview's line: the timeout and the failover floor it implies."""
    number = int(value)
    return '%d s (a crashed host is known dead after %d s)' % (
        number, layout.failover_floor(number))


def host_id(value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError('%r is not a host id (a whole number 1-%d)' % (value, MAX_HOSTS))
    if not 1 <= number <= MAX_HOSTS:
        raise ValueError('host id %d is out of range 1-%d' % (number, MAX_HOSTS))
    return number


_SSH_FINGERPRINT = re.compile(r'^SHA256:[A-Za-z0-9+/]{43}$')


def ssh_fingerprint(value):
    """An SSH host key fingerprint as `ssh-keygen -lf` prints it."""
    text = str(value).strip()
    if not _SSH_FINGERPRINT.match(text):
        raise ValueError('%r is not an SSH host key fingerprint: give it as ssh-keygen -lf '
                         'prints it on the first host, SHA256: and 43 characters' % (value,))
    return text


def email(value):
    if not _EMAIL.match(str(value)):
        raise ValueError('%r is not an email address (like root@localhost)' % (value,))


def emails(value):
    """A comma-separated list of addresses."""
    parts = [p.strip() for p in str(value).split(',')]
    if not parts or not all(parts):
        raise ValueError('give one or more addresses separated by commas')
    for p in parts:
        email(p)
    return ','.join(parts)


def host_address(value):
    """An IP address or a host name (for SMTP servers, gateways, TCP test addresses)."""
    value = str(value)
    try:
        ipaddress.ip_address(value)
        return
    except ValueError:
        pass
    labels = value.rstrip('.').split('.')
    if not value or not all(_LABEL.match(label) for label in labels):
        raise ValueError('%r is neither an IP address nor a host name' % value)


def unicast_mac(value):
    value = str(value)
    if not _MAC.match(value):
        raise ValueError('%r is not a MAC address (like 00:16:3e:12:34:56)' % value)
    if int(value.split(':')[0], 16) & 1:
        raise ValueError('%s is a multicast address; use a unicast one (first octet even)'
                         % value)


def uuid(value):
    if not _UUID.match(str(value)):
        raise ValueError('%r is not a UUID' % (value,))


def storage_connection(value):
    """NFS/Gluster style ``host:/path`` (not ``host:/``) or an absolute local path."""
    value = str(value)
    if value.startswith('/'):
        return
    if ':' not in value:
        raise ValueError('%r is not host:/path' % value)
    host, path = value.split(':', 1)
    host_address(host.strip('[]'))
    if not path.startswith('/'):
        raise ValueError('the path in %r must be absolute (host:/path)' % value)
    if path.rstrip('/') == '':
        raise ValueError('%r exports the server root; give a directory (host:/path)' % value)


def cidr(value):
    try:
        iface = ipaddress.ip_interface(str(value))
    except ValueError:
        raise ValueError('%r is not an address with prefix length (like 192.0.2.10/24)'
                         % (value,))
    if '/' not in str(value):
        raise ValueError('%r has no prefix length (like 192.0.2.10/24)' % (value,))
    return str(iface)
