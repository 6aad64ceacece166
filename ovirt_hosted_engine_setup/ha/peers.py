"""Which hosts are alive in a hosted-engine storage domain, read from the shared storage.

The destructive operations (``ovirt-hosted-engine-cleanup --remove-storage``, ``hosted-engine
--reinitialize-lockspace`` and ``--clean-metadata``) ask this before they change anything.
Nothing of this host has to run: the storage is read directly (direct I/O).

Sources:
- sanlock's delta leases: the domain's ``hosted-engine`` lockspace and the domain's own
  lockspace (``dom_md/ids``, joined by every host that monitors the domain). Each host id
  has one lease; a host holding its host id renews it every 2 x io_timeout seconds (its
  timestamp moves), a host that left wrote 0 (free), a host that died stopped renewing;
- the HA metadata (ha/metadata.py): a slot whose timestamp moves is written by a running
  HA agent; a slot flagged ``stopped`` was left by an agent that exited.

A host is alive when one of its leases or its metadata slot changes while it is watched
(ha/liveness.py's ``observe``/``judge``: a timestamp is only compared with its own earlier
values, never with a clock). Watching takes no time when no host holds a lease (other than
the ones excluded), and stops as soon as every host that may be alive was seen moving. A
metadata slot whose host id holds no lease in a readable ``hosted-engine`` lockspace is not
watched: a host writes its slot only while it holds its host id there.
"""
import os
import struct
import time
from dataclasses import dataclass, field

from . import liveness, metadata
from ..he_storage import layout, volumes

LOCKSPACE = layout.LOCKSPACE_NAME
DELTA_MAGIC = 0x12212010
# sanlock's leader record, little endian: magic, version, flags, sector_size, num_hosts,
# max_hosts, owner_id, owner_generation, lver, space_name[48], resource_name[48], timestamp
LEADER = struct.Struct('<IIIIQQQQQ48s48sQ')
SECTOR_SIZES = (512, 4096)
MAX_HOSTS = layout.MAX_HOSTS
# A host renews its delta lease every 2 x io_timeout; one renewal may take io_timeout more.
# Watching 4 x io_timeout + 2 s sees at least one renewal of every host that holds its id.
RENEWAL_FACTOR = 4
RENEWAL_MARGIN = 2.0
# Without a readable lockspace only the metadata tells: an agent writes its slot every
# loop (10 s, 30 s while its host agent is unreachable); the HA agents' own window.
METADATA_WINDOW = liveness.WINDOW
DEFAULT_IO_TIMEOUT = layout.DEFAULT_IO_TIMEOUT


class PeerError(Exception):
    """A source cannot be read; str() says which and why."""


@dataclass(frozen=True)
class Lease:
    host_id: int
    timestamp: int
    owner: str          # sanlock's name of the host that wrote it


@dataclass
class LiveHost:
    host_id: int
    hostname: str = ''
    evidence: list = field(default_factory=list)   # 'hosted-engine lockspace', ...

    def __str__(self):
        return 'host %d (%s)' % (self.host_id, self.hostname) if self.hostname \
            else 'host %d' % self.host_id


@dataclass
class Verdict:
    alive: list          # [LiveHost], by host id
    unknown: list        # why a source could not be read
    watched: float       # seconds spent watching
    read_any: bool       # at least one sanlock lockspace was read
    unread: set = field(default_factory=set)    # the sources that could not be read

    def names(self):
        return describe(self.alive)


def describe(hosts):
    return ', '.join(str(h) for h in hosts)


def read_leases(path, name):
    """{host id: Lease} of the delta leases of lockspace ``name`` on ``path`` (free ones
    included, timestamp 0). PeerError when it is not readable or not that lockspace."""
    try:
        size = min(os.stat(path).st_size, MAX_HOSTS * 4096)
        data = volumes.read_volume(path, size)
    except OSError as e:
        raise PeerError('cannot read the %s lockspace %s (%s)' % (name, path, e.strerror or e))
    if len(data) < LEADER.size:
        raise PeerError('the %s lockspace %s is empty' % (name, path))
    first = LEADER.unpack_from(data, 0)
    sector = first[3]
    if first[0] != DELTA_MAGIC or sector not in SECTOR_SIZES:
        raise PeerError('%s holds no sanlock lockspace (not initialised or overwritten)' % path)
    out = {}
    for n in range(min(MAX_HOSTS, len(data) // sector)):
        f = LEADER.unpack_from(data, n * sector)
        if f[0] != DELTA_MAGIC:
            continue
        if f[9].rstrip(b'\0').decode('utf-8', 'replace') != name:
            raise PeerError('%s is the lockspace %r, not %r' % (
                path, f[9].rstrip(b'\0').decode('utf-8', 'replace'), name))
        out[n + 1] = Lease(n + 1, f[11], f[10].rstrip(b'\0').decode('utf-8', 'replace'))
    return out


def read_slots(path):
    """{host id: HostRecord} of the metadata volume (the metadata reader of the broker)."""
    from .broker.store import MetadataStore, StoreError
    try:
        store = MetadataStore(path)
        data, _delay = store.read_area()
    except StoreError as e:
        raise PeerError(str(e))
    return metadata.parse_area(data, store.max_hosts).hosts


def domain_paths(conf, data_center_dir):
    """{'ids': ..., 'lockspace': ..., 'metadata': ...} of the domain of conf (the keys of
    hosted-engine.conf), the ones conf allows; the domain's directory under the mount point
    of its storage, or for localfs the directory itself when it is not connected."""
    sd = conf.get('sdUUID')
    storage = conf.get('storage')
    if not sd or not storage:
        return {}
    dom = os.path.join(layout.mount_point(storage, data_center_dir), sd)
    if not os.path.isdir(dom) and conf.get('domainType') == 'localfs':
        dom = os.path.join(storage, sd)
    out = {'ids': os.path.join(dom, 'dom_md', 'ids')}
    for name, img, vol in (('lockspace', 'lockspace_image_UUID', 'lockspace_volume_UUID'),
                           ('metadata', 'metadata_image_UUID', 'metadata_volume_UUID')):
        if conf.get(img) and conf.get(vol):
            out[name] = os.path.join(dom, 'images', conf[img], conf[vol])
    return out


def io_timeout_of(conf):
    try:
        return max(1, int(conf.get('sanlock_io_timeout') or DEFAULT_IO_TIMEOUT))
    except (TypeError, ValueError):
        return DEFAULT_IO_TIMEOUT


class _Sources:
    """One read of every source; what could not be read is remembered once."""

    def __init__(self, paths, sd_uuid):
        self.paths = paths
        self.sd_uuid = sd_uuid
        self.unknown = {}

    def read(self):
        leases, slots = {}, {}
        for key, name in (('lockspace', LOCKSPACE), ('ids', self.sd_uuid)):
            path = self.paths.get(key)
            if not path:
                continue
            try:
                leases[key] = read_leases(path, name)
            except PeerError as e:
                self.unknown.setdefault(key, str(e))
        if self.paths.get('metadata'):
            try:
                slots = read_slots(self.paths['metadata'])
            except PeerError as e:
                self.unknown.setdefault('metadata', str(e))
        return leases, slots


EVIDENCE = {'lockspace': 'its host id in the hosted-engine lockspace is renewed',
            'ids': 'its host id in the storage domain lockspace is renewed',
            'metadata': 'its HA metadata slot is being written'}


ALL_SOURCES = ('lockspace', 'ids', 'metadata')
# the HA verbs: only what the HA services use (the hosted-engine lockspace and the
# metadata); the domain's own lockspace is held by every host that monitors the domain
HA_SOURCES = ('lockspace', 'metadata')


def find_alive(conf, data_center_dir, exclude=(), own_owner=None, only=None, progress=None,
               sources=ALL_SOURCES, clock=time.monotonic, sleep=time.sleep, interval=0.5):
    """Verdict on the hosts of conf's storage domain: which are alive.

    sources: which of ALL_SOURCES to read;

    exclude: host ids never reported (this host's, when its own use is expected);
    own_owner: this host's sanlock name (local_sanlock_name()): the leases it wrote are
    this host's, whatever their host id;
    only: when given, the host ids to judge (the others are not read as candidates);
    progress(text): told once when watching is needed, with how long it may take.
    """
    paths = {k: v for k, v in domain_paths(conf, data_center_dir).items() if k in sources}
    src = _Sources(paths, conf.get('sdUUID'))
    leases, slots = src.read()
    names = {h: r.hostname for h, r in slots.items()}

    def wanted(h):
        return h not in exclude and (only is None or h in only)

    def mine(lease):
        return bool(own_owner) and lease.owner == own_owner

    he_readable = 'lockspace' in leases
    he_held = {h for h, lease in leases.get('lockspace', {}).items() if lease.timestamp}
    # candidates per source: held leases (not this host's); unstopped slots whose host id
    # may write (it holds its host id, or the lockspace cannot be read)
    cand = {}
    for key, ls in leases.items():
        cand[key] = {h for h, lease in ls.items()
                     if lease.timestamp and wanted(h) and not mine(lease)}
    cand['metadata'] = {h for h, r in slots.items() if wanted(h) and not r.stopped
                        and (not he_readable or h in he_held)}
    pending = set().union(*cand.values())
    read_any = bool(leases)
    if not pending:
        return Verdict([], sorted(src.unknown.values()), 0.0, read_any, set(src.unknown))
    window = RENEWAL_FACTOR * io_timeout_of(conf) + RENEWAL_MARGIN
    if cand['metadata'] and not he_readable:
        # only the agents' writes tell about these: give them the HA agents' own window
        window = max(window, METADATA_WINDOW)
    if progress:
        progress('Checking whether %s still use%s storage domain %s (up to %d s)' % (
            describe([LiveHost(h, names.get(h, '')) for h in sorted(pending)]),
            's' if len(pending) == 1 else '', conf.get('sdUUID'), round(window)))
    start = clock()
    seen = {}
    for key in cand:
        seen[key] = liveness.observe({}, _records(key, leases, slots), start)
    alive = {}
    while True:
        sleep(interval)
        now = clock()
        leases, slots = src.read()
        for h, r in slots.items():
            names.setdefault(h, r.hostname)
        for key in cand:
            seen[key] = liveness.observe(seen[key], _records(key, leases, slots), now)
            for h in cand[key]:
                if liveness.judge(seen[key], h, now, window=now - start) == liveness.LIVE \
                        and key not in alive.get(h, []):
                    alive.setdefault(h, []).append(key)
        if set(alive) >= pending or now - start >= window:
            break
    hosts = [LiveHost(h, names.get(h, ''), [EVIDENCE[k] for k in alive[h]])
             for h in sorted(alive)]
    return Verdict(hosts, sorted(src.unknown.values()), now - start, read_any,
                   set(src.unknown))


class _Stamp:
    __slots__ = ('timestamp',)

    def __init__(self, timestamp):
        self.timestamp = timestamp


def _records(key, leases, slots):
    if key == 'metadata':
        return slots
    # a lease freed meanwhile (its host left) is not a sign of life
    return {h: _Stamp(lease.timestamp) for h, lease in leases.get(key, {}).items()
            if lease.timestamp}


def local_sanlock_name():
    """The name this host's sanlock daemon writes into the delta leases it holds (the
    ``daemon`` line of `sanlock client status`), or None when no daemon answers."""
    import subprocess
    try:
        p = subprocess.run(['sanlock', 'client', 'status'], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if p.returncode != 0:
        return None
    for line in p.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == 'daemon':
            return fields[1]
    return None
