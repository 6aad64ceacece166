"""The hosted-engine metadata area: 4096-byte slots on shared storage.

Slot 0 is the global block, slot N belongs to host id N (offset N * 4096).
A host slot holds, in its first 512 bytes (NUL padded), ``|``-separated fields:

    parse version | feature version | timestamp | host id | score |
    engine status JSON | hostname | local maintenance 0/1 | stopped 0/1 |
    crc32 | conf_on_shared_storage 0/1 | local_conf_timestamp

The crc32 (8 lowercase hex digits of crc32 masked to 32 bits) is computed over
the ``|``-joined token string itself with that token written as ``00000000``
(not over the NUL-padded 512 bytes), as ovirt-hosted-engine-ha writes and
checks it. From byte 512 come human-readable ``key=value`` lines (timestamp,
host-id, score, ... state=<State>, stopped, timeout).

Compatibility with the slots oVirt's agents write (ovirt-hosted-engine-ha 2.x,
metadata parse version 1, feature version 1): the parse version is the first
run of digits; a slot whose parse version is newer than our feature version
is "too new"; a slot whose feature version is older than our parse version is
"too old" (an incompatible agent: ignored, as oVirt ignores it). Older agents
leave out the trailing tokens: 7 tokens are enough; stopped, crc32,
conf_on_shared_storage and local_conf_timestamp are read when present, and the
crc32 is checked when present. Tokens beyond the twelfth (a newer agent of the
same parse version) are kept in the checksum and otherwise ignored. An engine
status of ``null`` (an agent whose broker had no value yet) reads as unknown.

The global block (slot 0) is ``key=value`` tokens separated by ``\n`` with no
empty token (oVirt's parser splits every token on ``=``): we write
``maintenance=1`` or ``maintenance=0`` with no trailing newline and read it
with or without one.

Parsing never raises for bad data: a slot that is garbage, torn, CRC-broken,
of a newer parse version or of another host id is skipped and reported as a
value (``Skipped(slot, reason, detail)``) so the caller can warn and carry on.
The area is bounded by ``max_hosts`` (the number of host slots deploy
initialised); bytes beyond it are never looked at.
"""
import functools
import json
import re
import zlib
from dataclasses import dataclass, field

from ..he_storage.layout import MAX_HOSTS, METADATA_SLOT_SIZE

SLOT_SIZE = METADATA_SLOT_SIZE     # the storage layout's slot size
HEADER_SIZE = 512
PARSE_VERSION = 1
FEATURE_VERSION = 1
CRC_PLACEHOLDER = '00000000'
CRC_FIELD = 9
N_FIELDS = 12
# the fewest tokens oVirt's parser accepts (agents before local maintenance wrote 7)
MIN_FIELDS = 7
# oVirt scans up to this many slots; this project bounds the scan to what deploy initialised.
MAX_HOST_ID = MAX_HOSTS

# reasons a slot is skipped
GARBAGE = 'garbage'
TORN = 'torn'
CRC = 'crc-mismatch'
TOO_NEW = 'too-new'
TOO_OLD = 'too-old'
WRONG_ID = 'host-id-mismatch'


@dataclass(frozen=True)
class HostRecord:
    host_id: int
    timestamp: int
    score: int
    engine_status: dict
    hostname: str
    local_maintenance: bool = False
    stopped: bool = False
    crc32: str = ''
    conf_on_shared_storage: bool = True
    local_conf_timestamp: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def state(self):
        return self.extra.get('state', '')

    def __hash__(self):
        return hash((self.host_id, self.timestamp, self.crc32))


@dataclass(frozen=True)
class Skipped:
    slot: int
    reason: str
    detail: str = ''

    def __str__(self):
        return 'metadata slot %d skipped (%s)%s' % (
            self.slot, self.reason, ': ' + self.detail if self.detail else '')


@dataclass(frozen=True)
class AreaView:
    global_maintenance: bool
    hosts: dict          # host id -> HostRecord
    skipped: tuple       # Skipped values, in slot order


def _json_field(status):
    # '|' never appears outside JSON strings, so escaping it inside strings keeps it valid JSON
    return json.dumps(status, separators=(', ', ': ')).replace('|', '\\u007c')


def _clean(text):
    return str(text).replace('|', '_').replace('\0', '').replace('\n', ' ')


def token_crc(tokens):
    """The crc32 token of a header: over the '|'-joined tokens, the crc32 token as 00000000."""
    zeroed = list(tokens)
    zeroed[CRC_FIELD] = CRC_PLACEHOLDER
    return '%08x' % (zlib.crc32('|'.join(zeroed).encode('utf-8')) & 0xffffffff)


def serialize_host(host_id, timestamp, score, engine_status, hostname, *, local_maintenance=False,
                   stopped=False, conf_on_shared_storage=True, local_conf_timestamp=0, state='',
                   vm_conf_refresh_time=0, timeout=''):
    """Return the 4096 bytes of host ``host_id``'s slot."""
    if not 1 <= int(host_id) <= MAX_HOST_ID:
        raise ValueError('host id %r out of range 1..%d' % (host_id, MAX_HOST_ID))
    fields = [str(PARSE_VERSION), str(FEATURE_VERSION), str(int(timestamp)), str(int(host_id)),
              str(int(score)), _json_field(engine_status), _clean(hostname),
              '1' if local_maintenance else '0', '1' if stopped else '0', CRC_PLACEHOLDER,
              '1' if conf_on_shared_storage else '0', str(int(local_conf_timestamp))]
    over = len('|'.join(fields).encode('utf-8')) - HEADER_SIZE
    reason = engine_status.get('reason') if isinstance(engine_status, dict) else None
    if over > 0 and isinstance(reason, str) and reason:
        # a long reason (a VM's exit message) is cut to fit the header, not refused: the
        # other hosts must keep seeing this host's state
        short = reason
        while short and len(_json_field(dict(engine_status, reason=short + '...'))) > \
                len(fields[5]) - over:
            short = short[:-max(1, (len(short) - 1) // 8)]
        fields[5] = _json_field(dict(engine_status, reason=short + '...'))
    crc = token_crc(fields)
    fields[CRC_FIELD] = crc
    header = '|'.join(fields).encode('utf-8')
    if len(header) > HEADER_SIZE:
        raise ValueError('metadata header of host %d is %d bytes, more than %d'
                         % (host_id, len(header), HEADER_SIZE))
    header = header.ljust(HEADER_SIZE, b'\0')
    extra = ('metadata_parse_version=%d\nmetadata_feature_version=%d\ntimestamp=%d (%s)\n'
             'host-id=%d\nscore=%d\nvm_conf_refresh_time=%d\nconf_on_shared_storage=%s\n'
             'maintenance=%s\nstate=%s\nstopped=%s\n' % (
                 PARSE_VERSION, FEATURE_VERSION, int(timestamp), crc, int(host_id), int(score),
                 int(vm_conf_refresh_time), 'True' if conf_on_shared_storage else 'False',
                 'True' if local_maintenance else 'False', _clean(state),
                 'True' if stopped else 'False'))
    if timeout:
        extra += 'timeout=%s\n' % _clean(timeout)
    extra = extra.encode('utf-8')[:SLOT_SIZE - HEADER_SIZE]
    return header + extra.ljust(SLOT_SIZE - HEADER_SIZE, b'\0')


def serialize_global(maintenance):
    """Return the 4096 bytes of the global block (slot 0): no trailing newline, so that
    oVirt's parser (which splits every '\\n'-separated token on '=') finds no empty key."""
    return ('maintenance=%d' % (1 if maintenance else 0)).encode('ascii').ljust(SLOT_SIZE, b'\0')


def _flag(text):
    """A 0/1 token, read as oVirt reads it: a number, true when > 0."""
    return int(text) > 0


# what oVirt's agent makes of an engine status it cannot read (e.g. null)
UNKNOWN_STATUS = {'vm': 'unknown', 'health': 'unknown', 'detail': 'serialization error'}
_DIGITS = re.compile(r'\d+')


@functools.lru_cache(maxsize=8192)
def parse_host_slot(slot, data):
    """Parse one host slot; return a HostRecord, None for an empty (all NUL) slot, or Skipped."""
    if len(data) < HEADER_SIZE:
        return Skipped(slot, TORN, 'short slot (%d bytes)' % len(data))
    header = data[:HEADER_SIZE]
    if not header.strip(b'\0'):
        if data[HEADER_SIZE:SLOT_SIZE].strip(b'\0'):
            return Skipped(slot, TORN, 'empty header with extra data')
        return None
    text = header.rstrip(b'\0')
    if b'\0' in text:
        return Skipped(slot, GARBAGE, 'NUL inside the header')
    try:
        text = text.decode('utf-8')
    except UnicodeDecodeError:
        return Skipped(slot, GARBAGE, 'not UTF-8')
    m = _DIGITS.match(text)
    if m is None:
        return Skipped(slot, GARBAGE, 'no parse version')
    version = int(m.group())
    if version > FEATURE_VERSION:
        return Skipped(slot, TOO_NEW, 'parse version %d' % version)
    if version < 1:
        return Skipped(slot, GARBAGE, 'parse version %d' % version)
    fields = text.split('|')
    if len(fields) < MIN_FIELDS:
        return Skipped(slot, TORN, '%d fields instead of at least %d' % (len(fields), MIN_FIELDS))
    try:
        feature = int(fields[1])
    except ValueError:
        return Skipped(slot, GARBAGE, 'no feature version')
    if feature < PARSE_VERSION:
        return Skipped(slot, TOO_OLD, 'feature version %d, this agent reads %d and later'
                       % (feature, PARSE_VERSION))
    crc = ''
    if len(fields) > CRC_FIELD:
        crc = fields[CRC_FIELD]
        expected = token_crc(fields)
        if crc != expected:
            return Skipped(slot, CRC, 'stored %s, computed %s' % (crc[:8], expected))
    try:
        host_id = int(fields[3])
        timestamp = int(fields[2])
        score = int(fields[4])
        status = json.loads(fields[5])
        if status is None:
            status = dict(UNKNOWN_STATUS)
        if not isinstance(status, dict):
            raise ValueError('engine status is not an object')
        optional = fields[7:CRC_FIELD] + fields[CRC_FIELD + 1:N_FIELDS]
        if any(not t.strip().lstrip('-').isdigit() for t in optional):
            raise ValueError('a flag or timestamp token is not a number')
        record_fields = dict(
            host_id=host_id, timestamp=timestamp, score=score, engine_status=status,
            hostname=fields[6],
            local_maintenance=len(fields) > 7 and _flag(fields[7]),
            stopped=len(fields) > 8 and _flag(fields[8]),
            crc32=crc,
            conf_on_shared_storage=len(fields) > 10 and _flag(fields[10]),
            local_conf_timestamp=int(fields[11]) if len(fields) > 11 else 0)
    except ValueError as e:
        return Skipped(slot, GARBAGE, str(e))
    if host_id != slot:
        return Skipped(slot, WRONG_ID, 'slot holds host id %d' % host_id)
    extra = {}
    tail = data[HEADER_SIZE:SLOT_SIZE].rstrip(b'\0')
    try:
        lines = tail.decode('utf-8').split('\n')
    except UnicodeDecodeError:
        return Skipped(slot, TORN, 'extra lines are not UTF-8')
    for line in lines:
        if not line:
            continue
        key, sep, value = line.partition('=')
        if not sep or '\0' in line:
            return Skipped(slot, TORN, 'bad extra line %r' % line[:40])
        extra[key] = value
    ts_line = extra.get('timestamp', '').split(' ')[0]
    if extra and ts_line != str(timestamp):
        # header and extra lines from different writes: a torn write
        return Skipped(slot, TORN, 'extra timestamp %r, header %d' % (ts_line, timestamp))
    return HostRecord(extra=extra, **record_fields)


@functools.lru_cache(maxsize=1024)
def parse_global(data):
    """Return (maintenance, Skipped or None) for the global block."""
    text = data[:SLOT_SIZE].rstrip(b'\0')
    if not text:
        return False, None
    try:
        lines = text.decode('ascii').split('\n')
    except UnicodeDecodeError:
        return False, Skipped(0, GARBAGE, 'global block is not text')
    values = {}
    for line in lines:
        if not line:
            continue
        key, sep, value = line.partition('=')
        if not sep or '\0' in line:
            return False, Skipped(0, GARBAGE, 'bad global line %r' % line[:40])
        values[key] = value
    if values.get('maintenance') not in ('0', '1'):
        return False, Skipped(0, GARBAGE, 'no maintenance flag')
    return values['maintenance'] == '1', None


def parse_area(data, max_hosts):
    """Parse the metadata area ``data`` (bytes), bounded to slots 0..max_hosts."""
    max_hosts = min(int(max_hosts), MAX_HOST_ID)
    slots = [bytes(data[i * SLOT_SIZE:(i + 1) * SLOT_SIZE]) for i in range(max_hosts + 1)]
    return parse_slots(slots, max_hosts)


def parse_slots(slots, max_hosts):
    """Parse the area given as a sequence of per-slot bytes (slot 0 first)."""
    max_hosts = min(int(max_hosts), MAX_HOST_ID, len(slots) - 1)
    maintenance, problem = parse_global(slots[0]) if slots else (False, None)
    skipped = [problem] if problem else []
    hosts = {}
    for slot in range(1, max_hosts + 1):
        chunk = slots[slot]
        if not chunk:
            break
        result = parse_host_slot(slot, chunk)
        if result is None:
            continue
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            hosts[slot] = result
    return AreaView(maintenance, hosts, tuple(skipped))


def area_size(max_hosts):
    """Bytes deploy initialises (zeroes) for ``max_hosts`` host slots plus the global block."""
    return (min(int(max_hosts), MAX_HOST_ID) + 1) * SLOT_SIZE


def status_report(view, live_ids, unknown_ids=()):
    """The ``hosted-engine --vm-status --json`` document for an AreaView.

    ``live_ids``: host ids whose data is judged current (ha/liveness.py),
    giving each host's "live-data"; ``unknown_ids``: host ids for which that
    cannot be known now ("live-data": null). Skipped slots are not reported
    as hosts.
    """
    out = {}
    for host_id, rec in sorted(view.hosts.items()):
        out[str(host_id)] = {
            'host-id': rec.host_id,
            'host-ts': rec.timestamp,
            'score': rec.score,
            'engine-status': rec.engine_status,
            'hostname': rec.hostname,
            'maintenance': rec.local_maintenance,
            'stopped': rec.stopped,
            'crc32': rec.crc32,
            'conf_on_shared_storage': rec.conf_on_shared_storage,
            'local_conf_timestamp': rec.local_conf_timestamp,
            'extra': ''.join('%s=%s\n' % kv for kv in rec.extra.items()),
            'live-data': None if host_id in unknown_ids else host_id in live_ids,
        }
    out['global_maintenance'] = bool(view.global_maintenance)
    return out
