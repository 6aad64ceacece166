"""sanlock's delta leases, read from a lockspace on the storage: the one reader of them.

Read with direct I/O (volumes.read_volume): no sanlock daemon is needed and the lockspace
need not be joined, so a host can look at the leases of the others (the HA verbs, cleanup,
the host agent's domain removal, the choice of a host id for an additional host).

A lockspace holds one delta lease per host id: host id N in sector N - 1 (sectors of 512 or
4096 bytes, as the first sector says). Each is a sanlock leader record, little endian:

    magic (0x12212010), version, flags, sector_size, num_hosts, max_hosts, owner_id (the
    host id), owner_generation (+1 at every acquisition), lver, space_name[48] (the
    lockspace name), resource_name[48] (the sanlock name of the host that last held it),
    timestamp, unused1, checksum, unused2, io_timeout

A host that holds its host id renews the timestamp every 2 x io_timeout seconds (its own
monotonic clock: only compare a timestamp with its own earlier values); a host that left
wrote timestamp 0 and kept its name and generation; a lease never acquired has generation
0, no name and timestamp 0.

A lockspace that was never initialised (all zeros: sanlock cannot join it, so no host holds
an id in it) and one that was overwritten both raise NotInitialised: callers that judge
whether other hosts use the storage treat the source as unknown, never as empty.
"""
import struct
from dataclasses import dataclass

from .layout import MAX_HOSTS
from .volumes import read_volume

DELTA_MAGIC = 0x12212010
# magic, version, flags, sector_size, num_hosts, max_hosts, owner_id, owner_generation, lver,
# space_name[48], resource_name[48], timestamp, unused1, checksum, unused2, io_timeout
LEADER = struct.Struct('<IIIIQQQQQ48s48sQQIHH')
SECTOR_SIZES = (512, 4096)


class LockspaceError(OSError):
    """The lockspace cannot be read, or is another one; str() says which and why."""


class NotInitialised(LockspaceError):
    """The file holds no sanlock lockspace: never initialised (zeros) or overwritten."""


@dataclass(frozen=True)
class DeltaLease:
    """The delta lease of one host id.

    host_id; timestamp (0: free); generation (how many times it was acquired); owner (the
    sanlock name of the host that last held it, '' when never held); io_timeout (the one
    its holder uses, seconds)."""
    host_id: int
    timestamp: int
    generation: int
    owner: str
    io_timeout: int

    @property
    def held(self):
        """Its host holds it (or held it until it stopped renewing: a dead host's lease
        keeps its last timestamp)."""
        return self.timestamp != 0

    @property
    def ever_held(self):
        """A host acquired it once (it may have left since)."""
        return bool(self.timestamp or self.generation or self.owner)


def _text(raw):
    return raw.rstrip(b'\0').decode('utf-8', 'replace')


def read_delta_leases(path, name=None, max_hosts=MAX_HOSTS):
    """{host id: DeltaLease} of every initialised delta lease of the lockspace on ``path``
    (host ids 1..max_hosts, free ones included).

    name: the lockspace name expected (LockspaceError when the file holds another one);
    raises LockspaceError when the file cannot be read, NotInitialised when it holds no
    lockspace."""
    try:
        data = read_volume(path, max_hosts * SECTOR_SIZES[-1])
    except OSError as e:
        raise LockspaceError('cannot read the lockspace %s (%s)' % (path, e.strerror or e))
    if len(data) < LEADER.size:
        raise NotInitialised('%s holds no sanlock lockspace (%d bytes)' % (path, len(data)))
    first = LEADER.unpack_from(data, 0)
    sector = first[3]
    if first[0] != DELTA_MAGIC or sector not in SECTOR_SIZES:
        why = ('all zeros: never initialised' if not data[:SECTOR_SIZES[0]].strip(b'\0')
               else 'overwritten or not a lockspace')
        raise NotInitialised('%s holds no sanlock lockspace (%s)' % (path, why))
    out = {}
    for n in range(min(max_hosts, len(data) // sector)):
        f = LEADER.unpack_from(data, n * sector)
        if f[0] != DELTA_MAGIC:
            continue
        space = _text(f[9])
        if name is not None and space != name:
            raise LockspaceError('%s is the lockspace %r, not %r' % (path, space, name))
        out[n + 1] = DeltaLease(n + 1, f[11], f[7], _text(f[10]), f[15])
    return out
