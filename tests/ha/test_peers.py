"""ha/peers.py: who uses which host id of a storage domain (host_ids: known, live, next
free), freeing a metadata slot (free_slot), and the one reader of sanlock's delta leases
(he_storage/delta_leases.py) that peers and the host agent's domain removal share.

Real lockspaces: initialised with `sanlock direct init`, joined and left by other sanlock
daemons (one per host, each with its own sanlock name); metadata slots written with
ha/metadata.py.
"""
import os
import subprocess
import sys
import uuid

import pytest

from ovirt_hosted_engine_setup.ha import metadata, peers
from ovirt_hosted_engine_setup.he_storage import delta_leases, sanlock_util

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# python -c JOIN RUN_DIR OP HOST_ID NAME PATH: join (add) or leave (rem) a lockspace as the
# host of that sanlock daemon does (a child: one sanlock daemon per process)
JOIN = r'''
import sys
from ovirt_hosted_engine_setup.he_storage import sanlock_util
run_dir, op, host_id, name, path = sys.argv[1:6]
sanlock_util.use_run_dir(run_dir)
if op == 'add':
    sanlock_util.add_lockspace(name, int(host_id), path, iotimeout=1, wait=True)
else:
    sanlock_util.rem_lockspace(name, int(host_id), path)
'''


def sanlock_op(host, op, host_id, name, path):
    p = subprocess.run([sys.executable, '-c', JOIN, host.run_dir, op, str(host_id), name,
                        path], capture_output=True, text=True, timeout=120, cwd=TOP)
    assert p.returncode == 0, p.stderr


def init_lockspace(path, name):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.truncate(1 << 20)
    subprocess.run(['sanlock', 'direct', 'init', '-o', '1', '-s', '%s:0:%s:0' % (name, path)],
                   check=True, capture_output=True, timeout=60)


def domain(tmp_path, max_hosts=6):
    """hosted-engine.conf's keys of a localfs domain (read in its directory: not
    connected), with its hosted-engine lockspace, its own lockspace (dom_md/ids) and a
    metadata volume of max_hosts slots."""
    conf = {k: str(uuid.uuid4()) for k in ('sdUUID', 'lockspace_image_UUID',
                                           'lockspace_volume_UUID', 'metadata_image_UUID',
                                           'metadata_volume_UUID')}
    conf.update(storage=str(tmp_path / 'storage'), domainType='localfs', sanlock_io_timeout='1')
    paths = peers.domain_paths(conf, str(tmp_path / 'rhev'))
    init_lockspace(paths['lockspace'], 'hosted-engine')
    init_lockspace(paths['ids'], conf['sdUUID'])
    os.makedirs(os.path.dirname(paths['metadata']))
    with open(paths['metadata'], 'wb') as f:
        f.truncate(metadata.area_size(max_hosts))
    return conf, paths


def write_slot(path, host_id, ts, hostname):
    with open(path, 'r+b') as f:
        f.seek(host_id * metadata.SLOT_SIZE)
        f.write(metadata.serialize_host(host_id, ts, 3400, {'vm': 'down'}, hostname))


def slots(path):
    with open(path, 'rb') as f:
        data = f.read()
    return [data[i:i + metadata.SLOT_SIZE] for i in range(0, len(data), metadata.SLOT_SIZE)]


@pytest.fixture
def sanlock_hosts(tmp_path):
    """start(name): another host's sanlock daemon, named name."""
    if os.geteuid() != 0:
        pytest.skip('needs root (sanlock)')
    sys.path.insert(0, os.path.join(TOP, 'tests'))
    from hostd.daemons import SanlockDaemon
    started = []

    def start(name):
        d = SanlockDaemon(str(tmp_path / ('sanlock-' + name)), name).start()
        started.append(d)
        return d
    yield start
    for d in started:
        d.stop()


# -- the one reader of the delta leases ---------------------------------------------------

def test_uninitialised_lockspace_reads_the_same_everywhere(tmp_path):
    """A lockspace volume of zeros (never initialised) and one overwritten: the delta lease
    reader raises NotInitialised, and peers (the HA verbs, cleanup) and the host agent's
    domain removal (sanlock_util.live_host_ids) say the same; an initialised lockspace
    nobody joined has only free leases, and nothing is watched."""
    zeros = str(tmp_path / 'zeros')
    with open(zeros, 'wb') as f:
        f.truncate(1 << 20)
    why = '%s holds no sanlock lockspace (all zeros: never initialised)' % zeros
    with pytest.raises(delta_leases.NotInitialised) as e:
        delta_leases.read_delta_leases(zeros, 'hosted-engine')
    assert str(e.value) == why
    with pytest.raises(peers.PeerError) as e:
        peers.read_leases(zeros, 'hosted-engine')
    assert str(e.value) == why
    with pytest.raises(OSError) as e:
        sanlock_util.live_host_ids('hosted-engine', zeros)
    assert str(e.value) == why

    garbage = str(tmp_path / 'garbage')
    with open(garbage, 'wb') as f:
        f.write(b'not a lockspace\n' * 65536)
    with pytest.raises(OSError) as e:
        sanlock_util.live_host_ids('hosted-engine', garbage)
    assert str(e.value) == '%s holds no sanlock lockspace (overwritten or not a lockspace)' \
        % garbage

    fresh = str(tmp_path / 'fresh')
    init_lockspace(fresh, 'hosted-engine')
    leases = delta_leases.read_delta_leases(fresh, 'hosted-engine')
    assert sorted(leases) == list(range(1, 251))
    assert not any(lease.ever_held for lease in leases.values())
    assert sanlock_util.live_host_ids('hosted-engine', fresh, sleep=pytest.fail) == []
    with pytest.raises(OSError) as e:
        sanlock_util.live_host_ids('another', fresh)
    assert str(e.value) == "%s is the lockspace 'hosted-engine', not 'another'" % fresh


# -- host_ids ------------------------------------------------------------------------------

def test_host_ids_known_live_and_next_free(tmp_path, sanlock_hosts):
    """1: a metadata slot only; 2: a host renewing its host id (live); 3: a host that joined
    and left (its lease released, its name kept); 4: a slot that cannot be parsed; 5: a host
    that joined the domain's own lockspace and left. Next free: 6 (the metadata has 6 slots),
    then none."""
    conf, paths = domain(tmp_path)
    dc = str(tmp_path / 'rhev')
    write_slot(paths['metadata'], 1, 100, 'host1.lab.test')
    other = sanlock_hosts('other-host')
    sanlock_op(other, 'add', 2, 'hosted-engine', paths['lockspace'])
    write_slot(paths['metadata'], 2, 100, 'host2.lab.test')
    left = sanlock_hosts('left-host')
    sanlock_op(left, 'add', 3, 'hosted-engine', paths['lockspace'])
    sanlock_op(left, 'rem', 3, 'hosted-engine', paths['lockspace'])
    write_slot(paths['metadata'], 4, 100, 'host4.lab.test')
    with open(paths['metadata'], 'r+b') as f:       # a torn write: the CRC no longer matches
        f.seek(4 * metadata.SLOT_SIZE + 30)
        f.write(b'X')
    sanlock_op(left, 'add', 5, conf['sdUUID'], paths['ids'])
    sanlock_op(left, 'rem', 5, conf['sdUUID'], paths['ids'])

    told = []
    ids = peers.host_ids(conf, dc, progress=told.append)
    assert ids.problems == [] and ids.unread == {}
    assert told == ['Checking whether host 2 (host2.lab.test) still uses storage domain %s '
                    '(up to 6 s)' % conf['sdUUID']]
    assert sorted(ids.uses) == [1, 2, 3, 4, 5]
    assert [h for h in range(1, 7) if ids.known(h)] == [1, 2, 3, 4, 5]
    assert [h for h in range(1, 7) if ids.live(h)] == [2]
    u1, u2, u3, u4, u5 = (ids.get(h) for h in range(1, 6))
    assert (u1.hostname, u1.sources, u1.sanlock_names) == ('host1.lab.test',
                                                           ('the HA metadata',), ())
    assert u2.sources == ('the HA metadata', 'the hosted-engine lockspace')
    assert (u2.sanlock_names, u2.held_by) == (('other-host',), ('other-host',))
    assert u2.evidence == ('its host id in the hosted-engine lockspace is renewed',)
    assert (u3.hostname, u3.sanlock_names, u3.held_by) == ('', ('left-host',), ())
    assert str(u3) == 'host 3 (sanlock name left-host)'
    assert u4.hostname == '' and u4.slot_problem.startswith('crc-mismatch')
    assert u5.sources == ('the storage domain lockspace',)
    assert ids.max_host_id == 6 and ids.next_free() == 6
    assert ids.get(6) == peers.HostIdUse(6) and not ids.get(6).known

    # what the additional-host deploy asks
    assert ids.classify(2, 'host9.lab.test') == peers.LIVE_OTHER
    assert ids.classify(2, 'host2.lab.test') == peers.SAME_HOST
    assert ids.classify(1, 'host1.lab.test') == peers.SAME_HOST
    assert ids.classify(3, 'host9.lab.test', sanlock_name='left-host') == peers.SAME_HOST
    assert ids.classify(3, 'host9.lab.test') == peers.KNOWN_OTHER
    assert ids.classify(6, 'host9.lab.test') == peers.FREE
    assert ids.ids_of('host1.lab.test') == [1]
    assert ids.ids_of(sanlock_name='left-host') == [3, 5]
    # used now, seen from host 1: 2 (its lease held) and 4 (its slot), not the hosts that left
    assert [u.host_id for u in ids.others(1)] == [2, 4]
    # this host's own sanlock name: its leases are its own, whatever their host id
    assert [u.host_id for u in ids.others(1, own_owner='other-host')] == [2, 4]

    write_slot(paths['metadata'], 6, 100, 'host6.lab.test')
    assert peers.host_ids(conf, dc, watch=False).next_free() is None
    # not watched: nothing is live, no time spent
    quick = peers.host_ids(conf, dc, watch=False)
    assert quick.watched == 0 and not any(u.live for u in quick.uses.values())

    # the host dies: its lease stays (held, known) but is no longer live
    other.proc.kill()
    other.proc.wait()
    ids = peers.host_ids(conf, dc)
    assert ids.known(2) and not ids.live(2) and ids.get(2).held_by == ('other-host',)
    assert ids.classify(2, 'host9.lab.test') == peers.KNOWN_OTHER


def test_host_ids_unreadable_sources_are_named(tmp_path):
    conf, paths = domain(tmp_path)
    os.unlink(paths['metadata'])
    with open(paths['lockspace'], 'wb') as f:
        f.truncate(1 << 20)
    ids = peers.host_ids(conf, str(tmp_path / 'rhev'))
    assert sorted(ids.unread) == ['lockspace', 'metadata']
    assert 'holds no sanlock lockspace (all zeros: never initialised)' in ids.unread['lockspace']
    assert ids.unread['metadata'].startswith('cannot open the metadata volume')
    assert ids.max_host_id == 250 and ids.next_free() == 1
    ids = peers.host_ids({'sdUUID': conf['sdUUID']}, str(tmp_path / 'rhev'))
    assert sorted(ids.unread) == ['ids', 'lockspace', 'metadata']


# -- free_slot -------------------------------------------------------------------------------

def test_free_slot_zeroes_that_slot_only(tmp_path, sanlock_hosts):
    conf, paths = domain(tmp_path)
    dc = str(tmp_path / 'rhev')
    write_slot(paths['metadata'], 1, 100, 'host1.lab.test')
    write_slot(paths['metadata'], 2, 200, 'host2.lab.test')
    before = slots(paths['metadata'])
    assert peers.free_slot(conf, dc, 2).hostname == 'host2.lab.test'
    after = slots(paths['metadata'])
    assert after[2] == bytes(metadata.SLOT_SIZE)
    assert after[:2] == before[:2] and after[3:] == before[3:]
    assert sorted(peers.read_slots(paths['metadata'])) == [1]
    assert peers.free_slot(conf, dc, 2) is None           # already free: nothing written
    with pytest.raises(peers.PeerError) as e:
        peers.free_slot(conf, dc, 7)
    assert str(e.value).startswith('host id 7 is outside the metadata area')

    # host id 1 renewed by another host (not this one): its slot stays
    other = sanlock_hosts('other-host')
    sanlock_op(other, 'add', 1, 'hosted-engine', paths['lockspace'])
    with pytest.raises(peers.PeerError) as e:
        peers.free_slot(conf, dc, 1, own_owner='this-host')
    assert str(e.value) == ('host id 1 is held in the hosted-engine lockspace by another host '
                            '(sanlock name other-host): its metadata slot is left to it')
    assert slots(paths['metadata'])[1] == before[1]
    # held by this host's own sanlock: freed without watching
    assert peers.free_slot(conf, dc, 1, own_owner='other-host', sleep=pytest.fail).hostname \
        == 'host1.lab.test'


def test_an_id_its_host_left_for_another_is_free():
    """A host that moved to another id (a restored engine's first host takes its SPM id)
    leaves its first id free: released leases, no metadata slot, and its sanlock name live
    under the new id. A held lease (a host powered off) or a slot keeps the id known."""
    U = peers.HostIdUse
    moved = peers.HostIds({1: U(1, sanlock_names=('h1',), sources=('the storage domain '
                                                                   'lockspace',)),
                           3: U(3, sanlock_names=('h1',), held_by=('h1',), live=True,
                                sources=('the storage domain lockspace',))})
    assert moved.abandoned(1) and not moved.abandoned(3)
    assert moved.classify(1, 'host2', 'h2') == peers.FREE
    assert moved.next_free() == 1
    # not watched (live unknown): the lease its name holds under id 3 says it moved
    unwatched = peers.HostIds({1: moved.uses[1], 3: U(3, sanlock_names=('h1',),
                                                         held_by=('h1',), sources=('x',))})
    assert unwatched.abandoned(1)
    for other in (U(1, sanlock_names=('h1',), held_by=('h1',), sources=('x',)),   # powered off
                  U(1, hostname='host1', sanlock_names=('h1',), sources=('x',)),  # its slot
                  U(1, sanlock_names=('h9',), sources=('x',))):       # its host is not live
        ids = peers.HostIds({1: other, 3: moved.uses[3]})
        assert not ids.abandoned(1)
        assert ids.classify(1, 'host2', 'h2') == peers.KNOWN_OTHER
