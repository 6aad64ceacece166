"""Storage domain metadata (dom_md/metadata) and volume metadata (<vol>.meta).

Domain metadata: UTF-8 KEY=VALUE lines sorted by key, last line
_SHA_CKSUM=<sha1 hex of the sorted KEY=VALUE lines concatenated without
separators>. Volume metadata: sorted KEY=VALUE lines, then EOF, at most 512 bytes.
"""
import hashlib

from ...api.schema import enum
from ..api_base import VdsmError

CHECKSUM_KEY = '_SHA_CKSUM'
VOLUME_META_MAX = 512

# number -> the name the metadata files carry, from the API schema's enums
DOMAIN_TYPES = {v: k for k, v in enum('domainType').items()}
DOMAIN_CLASSES = {v: k for k, v in enum('domainClass').items()}
VOLUME_FORMATS = {v: k for k, v in enum('volFormat').items()}
ALLOCATIONS = {v: k for k, v in enum('preallocate').items()}
# The domain metadata keys of the sanlock lease timings StoragePool.create takes.
LEASE_TIMING_KEYS = {'lockRenewalIntervalSec': 'LOCKRENEWALINTERVALSEC',
                     'leaseTimeSec': 'LEASETIMESEC', 'ioOpTimeoutSec': 'IOOPTIMEOUTSEC',
                     'leaseRetries': 'LEASERETRIES'}


def checksum(fields):
    h = hashlib.sha1()
    for key in sorted(fields):
        h.update(('%s=%s' % (key, fields[key])).encode('utf-8'))
    return h.hexdigest()


def format_domain(fields):
    """Bytes of a domain metadata file for fields (without the checksum)."""
    fields = {k: v for k, v in fields.items() if k != CHECKSUM_KEY}
    lines = ['%s=%s' % (k, fields[k]) for k in sorted(fields)]
    lines.append('%s=%s' % (CHECKSUM_KEY, checksum(fields)))
    return ('\n'.join(lines) + '\n').encode('utf-8')


def _parse_lines(text):
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line == 'EOF':
            continue
        if '=' not in line:
            continue
        key, value = line.split('=', 1)
        fields[key] = value
    return fields


def parse_domain(data, sd_uuid=''):
    """Fields of a domain metadata file; VdsmError MetaDataSealIsBroken if the checksum is
    wrong."""
    try:
        text = data.rstrip(b'\0').decode('utf-8')
    except UnicodeDecodeError:
        raise VdsmError('MetaDataSealIsBroken', 'metadata of storage domain %s is not UTF-8: the '
                        'domain is damaged' % sd_uuid)
    fields = _parse_lines(text)
    stored = fields.pop(CHECKSUM_KEY, None)
    if stored is None:
        raise VdsmError('MetaDataSealIsBroken', 'metadata of storage domain %s has no %s line: '
                        'the domain is damaged' % (sd_uuid, CHECKSUM_KEY))
    actual = checksum(fields)
    if stored != actual:
        raise VdsmError('MetaDataSealIsBroken', 'metadata checksum of storage domain %s is '
                        'broken (stored %s, computed %s): the metadata was changed outside '
                        'the host agent'
                        % (sd_uuid, stored, actual))
    return fields


def format_volume(fields):
    lines = ['%s=%s' % (k, fields[k]) for k in sorted(fields)]
    lines.append('EOF')
    data = ('\n'.join(lines) + '\n').encode('utf-8')
    if len(data) > VOLUME_META_MAX:
        raise VdsmError('InvalidParameterException', 'volume metadata would take %d bytes, '
                        'more than %d: use a shorter description' % (len(data), VOLUME_META_MAX))
    return data


def parse_volume(data):
    return _parse_lines(data.rstrip(b'\0').decode('utf-8', 'replace'))


def domain_pools(fields):
    """The pools a domain's metadata (POOL_UUID) says it belongs to."""
    return [p for p in fields.get('POOL_UUID', '').split(',') if p]


def pool_domains(fields):
    """{sdUUID: status} of a master domain's POOL_DOMAINS ("<sd>:<status>,...")."""
    out = {}
    for item in (fields.get('POOL_DOMAINS') or '').split(','):
        if ':' in item:
            sd, status = item.split(':', 1)
            out[sd] = status
    return out


def format_pool_domains(domains):
    """The POOL_DOMAINS value of {sdUUID: status}."""
    return ','.join('%s:%s' % (sd, domains[sd]) for sd in sorted(domains))
