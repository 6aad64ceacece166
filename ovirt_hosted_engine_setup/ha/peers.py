"""Which hosts are alive in a hosted-engine storage domain, read from the shared storage.

The destructive operations (``ovirt-hosted-engine-cleanup --remove-storage``, ``hosted-engine
--reinitialize-lockspace`` and ``--clean-metadata``) ask this before they change anything
(find_alive). An additional host asks which host ids are used and which one is free
(host_ids); cleanup on one of several hosts frees its metadata slot (free_slot).
Nothing of this host has to run: the storage is read directly (direct I/O; the delta
leases through he_storage/delta_leases.py).

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
import time
from dataclasses import dataclass, field

from . import liveness, metadata
from ..he_storage import delta_leases, layout

LOCKSPACE = layout.LOCKSPACE_NAME
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


# a delta lease: host_id, timestamp, generation, owner (its holder's sanlock name), io_timeout
Lease = delta_leases.DeltaLease


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
        return delta_leases.read_delta_leases(path, name)
    except delta_leases.LockspaceError as e:
        raise PeerError(str(e))


def read_area(path):
    """(AreaView, max_hosts, MetadataStore) of the metadata volume (the broker's reader)."""
    from .broker.store import MetadataStore, StoreError
    try:
        store = MetadataStore(path)
        data, _delay = store.read_area()
    except StoreError as e:
        raise PeerError(str(e))
    return metadata.parse_area(data, store.max_hosts), store.max_hosts, store


def read_slots(path):
    """{host id: HostRecord} of the metadata volume (the metadata reader of the broker)."""
    return read_area(path)[0].hosts


def domain_paths(conf, data_center_dir):
    """{'ids': ..., 'lockspace': ..., 'metadata': ...} of the domain of conf (the keys of
    hosted-engine.conf), the ones conf allows; the domain's directory under the mount point
    of its storage, or for localfs the directory itself when it is not connected."""
    sd = conf.get('sdUUID')
    storage = conf.get('storage')
    if not sd or not storage:
        return {}
    dom = layout.domain_dir(conf, data_center_dir)
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


# -- which host ids are used (an additional host chooses its own) ----------------------------

SOURCE_NAMES = {'lockspace': 'the hosted-engine lockspace', 'ids': 'the storage domain lockspace',
                'metadata': 'the HA metadata'}
# HostIds.classify
FREE = 'free'              # neither known nor live: this host may take it
SAME_HOST = 'same-host'    # known with this host's hostname or sanlock name: a re-deployment
LIVE_OTHER = 'live-other'  # a live host of another name holds it: refused
KNOWN_OTHER = 'known-other'    # known by another name, not live now (a host that is gone)


@dataclass(frozen=True)
class HostIdUse:
    """What the storage domain tells of one host id.

    host_id: 1..250;
    hostname: the hostname of its HA metadata slot ('' without a readable slot);
    slot_problem: why its metadata slot cannot be read ('' when readable or empty);
    sanlock_names: the sanlock names of the hosts that ever wrote its delta lease in the
      hosted-engine lockspace or in the domain's lockspace (dom_md/ids);
    held_by: of those, the ones whose lease carries a timestamp now (held, or left behind
      by a host that died; never released);
    sources: where it is known, in words ('the HA metadata', 'the hosted-engine lockspace',
      'the storage domain lockspace'); empty when the host id was never used;
    live: find_alive's judgement: its lease is renewed or its slot written while watched
      (False when not watched);
    evidence: why it is live, in words (find_alive's evidence)."""
    host_id: int
    hostname: str = ''
    slot_problem: str = ''
    sanlock_names: tuple = ()
    held_by: tuple = ()
    sources: tuple = ()
    live: bool = False
    evidence: tuple = ()

    @property
    def known(self):
        """A metadata slot (readable or not) or a delta lease ever written."""
        return bool(self.sources)

    @property
    def in_use(self):
        """Used now: a metadata slot, or a lease not released (its host did not leave)."""
        return bool(self.hostname or self.slot_problem or self.held_by or self.live)

    def is_host(self, hostname=None, sanlock_name=None):
        """Known with this hostname (its metadata slot) or this sanlock name (its leases)."""
        return bool((hostname and self.hostname == hostname)
                    or (sanlock_name and sanlock_name in self.sanlock_names))

    def __str__(self):
        if self.hostname:
            return 'host %d (%s)' % (self.host_id, self.hostname)
        if self.sanlock_names:
            return 'host %d (sanlock name %s)' % (self.host_id, ', '.join(self.sanlock_names))
        return 'host %d' % self.host_id


@dataclass
class HostIds:
    """Who uses which host id in a hosted-engine storage domain (host_ids()).

    uses: {host id: HostIdUse} of the host ids known or live (get() answers for any id);
    max_host_id: the highest host id a host can take: the metadata volume's slots, at most
      250 (250 when the metadata cannot be read);
    problems: one line per source that could not be read (the answer may then be
      incomplete: a host id seen nowhere may still be used);
    unread: {source: why} of the sources among 'lockspace' (hosted-engine), 'ids' (the
      domain's) and 'metadata' that could not be read (or that hosted-engine.conf does not
      name);
    watched: seconds spent watching the leases and slots for liveness (0 when nothing
      had to be watched, or watch=False)."""
    uses: dict
    max_host_id: int = MAX_HOSTS
    problems: list = field(default_factory=list)
    unread: dict = field(default_factory=dict)
    watched: float = 0.0

    def get(self, host_id):
        return self.uses.get(host_id) or HostIdUse(host_id)

    def known(self, host_id):
        return self.get(host_id).known

    def live(self, host_id):
        return self.get(host_id).live

    def abandoned(self, host_id):
        """True when host_id was left by its host for another id: no metadata slot, its
        delta leases released (the host left the lockspace), and every sanlock name that
        wrote them holds another host id's lease now (not released; live when watched): a
        host holds one id per lockspace, and a restored engine's first host moves to its
        SPM id this way."""
        u = self.get(host_id)
        if u.live or u.hostname or u.slot_problem or u.held_by or not u.sanlock_names:
            return False
        return all(any(name in o.held_by or (o.live and name in o.sanlock_names)
                       for h, o in self.uses.items() if h != host_id)
                   for name in u.sanlock_names)

    def next_free(self):
        """The lowest host id (1..max_host_id) neither known nor live (or abandoned), None
        when all are."""
        for h in range(1, self.max_host_id + 1):
            u = self.get(h)
            if (not u.known and not u.live) or self.abandoned(h):
                return h
        return None

    def ids_of(self, hostname=None, sanlock_name=None):
        """The host ids known with this hostname or sanlock name."""
        return sorted(h for h, u in self.uses.items() if u.is_host(hostname, sanlock_name))

    def classify(self, host_id, hostname, sanlock_name=None):
        """FREE, SAME_HOST, LIVE_OTHER or KNOWN_OTHER for this host (its hostname, and its
        sanlock name when known) taking host_id."""
        u = self.get(host_id)
        if not u.known and not u.live:
            return FREE
        if self.abandoned(host_id) and not u.is_host(hostname, sanlock_name):
            return FREE
        if u.is_host(hostname, sanlock_name):
            return SAME_HOST
        return LIVE_OTHER if u.live else KNOWN_OTHER

    def others(self, host_id, own_owner=None):
        """[HostIdUse] of the other hosts that use the domain now (in_use), host_id and the
        leases this host's sanlock (own_owner) holds left out."""
        out = []
        for h, u in sorted(self.uses.items()):
            if h == host_id or not u.in_use:
                continue
            if own_owner and not (u.hostname or u.slot_problem or u.live) \
                    and set(u.held_by) <= {own_owner}:
                continue
            out.append(u)
        return out


def host_ids(conf, data_center_dir, progress=None, watch=True, clock=time.monotonic,
             sleep=time.sleep, interval=0.5):
    """HostIds of the storage domain of conf (hosted-engine.conf's keys, with this host's
    connection: layout.domain_dir, under data_center_dir/mnt, gluster volumes under
    mnt/glusterSD).

    A host id is known when its HA metadata slot holds something (a hostname, or data that
    cannot be parsed) or when its delta lease in the hosted-engine lockspace or in the
    domain's lockspace was ever written; it is live as find_alive() judges (every source,
    nothing excluded; progress(text) is told when watching is needed, up to 4 x
    sanlock_io_timeout + 2 s). watch=False: no watching, live stays False."""
    paths = domain_paths(conf, data_center_dir)
    unread = {}
    for key, keys in (('ids', 'sdUUID, storage'),
                      ('lockspace', 'lockspace_image_UUID, lockspace_volume_UUID'),
                      ('metadata', 'metadata_image_UUID, metadata_volume_UUID')):
        if key not in paths:
            unread[key] = 'hosted-engine.conf does not name %s (%s)' % (
                SOURCE_NAMES[key], keys)
    found = {}

    def use(h):
        return found.setdefault(h, {'hostname': '', 'slot_problem': '', 'names': [],
                                    'held': [], 'sources': []})
    for key, name in (('lockspace', LOCKSPACE), ('ids', conf.get('sdUUID'))):
        if key not in paths:
            continue
        try:
            leases = read_leases(paths[key], name)
        except PeerError as e:
            unread[key] = str(e)
            continue
        for h, lease in leases.items():
            if not lease.ever_held:
                continue
            u = use(h)
            u['sources'].append(SOURCE_NAMES[key])
            if lease.owner and lease.owner not in u['names']:
                u['names'].append(lease.owner)
            if lease.held and lease.owner not in u['held']:
                u['held'].append(lease.owner)
    max_host_id = MAX_HOSTS
    if 'metadata' in paths:
        try:
            view, max_host_id, _store = read_area(paths['metadata'])
        except PeerError as e:
            unread['metadata'] = str(e)
        else:
            for h, rec in view.hosts.items():
                u = use(h)
                u['hostname'] = rec.hostname
                u['sources'].insert(0, SOURCE_NAMES['metadata'])
            for skipped in view.skipped:
                if skipped.slot:
                    u = use(skipped.slot)
                    u['slot_problem'] = '%s%s' % (skipped.reason, ': ' + skipped.detail
                                                  if skipped.detail else '')
                    u['sources'].insert(0, SOURCE_NAMES['metadata'])
    live, watched = {}, 0.0
    if watch and paths:
        verdict = find_alive(conf, data_center_dir, progress=progress, clock=clock,
                             sleep=sleep, interval=interval)
        live = {h.host_id: tuple(h.evidence) for h in verdict.alive}
        watched = verdict.watched
    uses = {}
    for h in sorted(set(found) | set(live)):
        u = found.get(h) or use(h)
        uses[h] = HostIdUse(h, u['hostname'], u['slot_problem'], tuple(u['names']),
                            tuple(u['held']), tuple(dict.fromkeys(u['sources'])), h in live,
                            live.get(h, ()))
    problems = list(dict.fromkeys(unread.values()))
    return HostIds(uses, max_host_id, problems, unread, watched)


def free_slot(conf, data_center_dir, host_id, own_owner=None, progress=None,
              clock=time.monotonic, sleep=time.sleep):
    """Free host_id's HA metadata slot, as oVirt's --clean-metadata frees the local one: the
    4096 bytes of the slot written as zeros (an empty slot, which every reader skips), with
    direct I/O; the other slots and the lockspaces are not touched.

    Refused (PeerError) when another host now renews host_id in the hosted-engine lockspace
    (a lease held with another sanlock name than own_owner is watched first): the slot is
    that host's. Returns what the slot held (a metadata.HostRecord, or metadata.Skipped for
    data that could not be parsed), None when it was already empty (nothing written)."""
    paths = domain_paths(conf, data_center_dir)
    if 'metadata' not in paths:
        raise PeerError('hosted-engine.conf does not name the HA metadata volume '
                        '(metadata_image_UUID, metadata_volume_UUID)')
    view, max_hosts, store = read_area(paths['metadata'])
    if not 1 <= host_id <= max_hosts:
        raise PeerError('host id %d is outside the metadata area of %s (1..%d)'
                        % (host_id, paths['metadata'], max_hosts))
    rec = view.hosts.get(host_id)
    broken = [s for s in view.skipped if s.slot == host_id]
    if rec is None and not broken:
        return None
    if 'lockspace' in paths:
        try:
            lease = read_leases(paths['lockspace'], LOCKSPACE).get(host_id)
        except PeerError:
            lease = None        # lost or overwritten: no host can hold host_id in it
        if lease is not None and lease.held and lease.owner != own_owner:
            verdict = find_alive(conf, data_center_dir, only={host_id}, own_owner=own_owner,
                                 progress=progress, sources=('lockspace',), clock=clock,
                                 sleep=sleep)
            if verdict.alive:
                raise PeerError('host id %d is held in the %s lockspace by another host '
                                '(sanlock name %s): its metadata slot is left to it'
                                % (host_id, LOCKSPACE, lease.owner))
    from .broker.store import StoreError
    try:
        store.write_slot(host_id, bytes(metadata.SLOT_SIZE))
        data, _delay = store.read_area()
    except StoreError as e:
        raise PeerError(str(e))
    start = host_id * metadata.SLOT_SIZE
    if data[start:start + metadata.SLOT_SIZE].strip(b'\0'):
        raise PeerError('the metadata slot of host %d on %s is still written after freeing '
                        'it: is its HA agent still running?' % (host_id, paths['metadata']))
    return rec if rec is not None else broken[0]
