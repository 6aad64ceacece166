"""The hosted-engine shared storage against a real host agent (hostd over TLS on
loopback) with a real sanlock daemon, qemu-img and a local directory as storage.

prepare_domain runs in a child process: the sanlock client library binds a
process to one sanlock daemon at its first request, and this test's daemon is
not the one of other test modules running in the same pytest process.
"""
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest

from ovirt_hosted_engine_setup.api.errors import ServerError
from ovirt_hosted_engine_setup.ha import metadata
from ovirt_hosted_engine_setup.he_storage import StorageError, domain, layout, volumes
from ovirt_hosted_engine_setup.he_storage.config_volume import ConfigChanged, ConfigVolume

from api.hostd_proc import TOP, Hostd, python

if os.geteuid() != 0:
    pytest.skip('the shared storage tests need root (sanlock, the host agent)',
                allow_module_level=True)

from hostd.daemons import SanlockDaemon  # noqa: E402

VM_SIZE = 96 << 20
IO_TIMEOUT = 1

PREPARE = r'''
import json, sys
from ovirt_hosted_engine_setup.api.client import Client
from ovirt_hosted_engine_setup import he_storage
from ovirt_hosted_engine_setup.he_storage import domain
spec = json.loads(sys.argv[3])
waits = []
def progress(what, elapsed, limit):
    waits.append([what, elapsed, limit])
with Client('127.0.0.1', int(sys.argv[1]), hostd_root=sys.argv[2], timeout=60) as c:
    try:
        conf = domain.prepare_domain(c, spec, progress)
    except he_storage.StorageError as e:
        print(json.dumps({'error': str(e)}))
        sys.exit(1)
print(json.dumps({'conf': conf, 'waits': waits}))
'''


@pytest.fixture(scope='module')
def world():
    base = tempfile.mkdtemp(prefix='ha-storage-')
    daemon = SanlockDaemon(os.path.join(base, 'sanlock'), 'ha-storage-test').start()
    agent = None
    try:
        agent = Hostd(os.path.join(base, 'hostd'), extra=[
            '--sanlock-run-dir', daemon.run_dir, '--sanlock-io-timeout', str(IO_TIMEOUT),
            '--monitor-interval', '0.5'])
        os.makedirs(agent.base)
        agent.start()
        storage = os.path.join(base, 'storage')
        os.makedirs(storage)
        client = agent.client(timeout=60)
        yield {'base': base, 'daemon': daemon, 'agent': agent, 'storage': storage,
               'client': client, 'dc': os.path.join(agent.base, 'dc')}
        client.close()
    finally:
        if agent is not None:
            rc = agent.stop()
            assert rc == 0, agent.read_log()[-3000:]
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def run_prepare(world, spec):
    p = subprocess.run([python(), '-c', PREPARE, str(world['agent'].port), world['agent'].root,
                        json.dumps(spec)], capture_output=True, text=True, timeout=240,
                       cwd=TOP, env=dict(os.environ, SANLOCK_RUN_DIR=world['daemon'].run_dir),
                       stdin=subprocess.DEVNULL)
    assert p.stdout, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1]), p


def test_prepare_domain(world):
    spec = {'storage': world['storage'], 'domain_type': 'localfs', 'vm_disk_size': VM_SIZE,
            'host_id': 1, 'io_timeout': IO_TIMEOUT}
    out, p = run_prepare(world, spec)
    assert 'conf' in out, out
    conf = out['conf']
    world['conf'] = conf
    c = world['client']
    assert conf['domainType'] == 'localfs' and conf['storage'] == world['storage']
    assert conf['host_id'] == '1' and conf['sanlock_io_timeout'] == str(IO_TIMEOUT)
    assert conf['spUUID'] == layout.BLANK_UUID
    for k in ('sdUUID', 'connectionUUID', 'vm_disk_id', 'vm_disk_vol_id', 'metadata_image_UUID',
              'metadata_volume_UUID', 'lockspace_image_UUID', 'lockspace_volume_UUID',
              'conf_image_UUID', 'conf_volume_UUID'):
        assert len(conf[k]) == 36, k
    # Every wait reported progress: what, elapsed, limit.
    waits = {w[0] for w in out['waits']}
    assert any('lockspace of storage domain' in w for w in waits), waits
    assert any('starting the SPM' in w for w in waits) and any('HEMD' in w for w in waits)
    assert all(w[1] >= 0 and w[2] > 0 for w in out['waits'])

    sd = conf['sdUUID']
    paths = layout.volume_paths(conf, world['dc'])
    assert paths['domain'] == os.path.join(
        world['dc'], 'mnt', world['storage'].replace('_', '__').replace('/', '_'), sd)
    assert os.path.realpath(paths['domain']) == os.path.join(world['storage'], sd)
    sizes = {'vm': VM_SIZE, 'metadata': 1 << 20, 'lockspace': 1 << 20, 'conf': 1 << 20}
    disk_types = {'vm': 'HEVD', 'metadata': 'HEMD', 'lockspace': 'HESD', 'conf': 'HECI'}
    for name, size in sizes.items():
        assert os.path.getsize(paths[name]) == size, name
        with open(paths[name] + '.meta') as f:
            meta = dict(line.split('=', 1) for line in f.read().splitlines()[:-1])
        assert meta['DISKTYPE'] == disk_types[name] and meta['LEGALITY'] == 'LEGAL'
    assert os.stat(paths['vm']).st_blocks * 512 < VM_SIZE          # sparse
    assert os.path.isfile(paths['vm_lease'])

    # The hosted-engine lockspace, written with the io timeout asked for.
    leader = subprocess.run(['sanlock', 'direct', 'read_leader', '-s',
                             'hosted-engine:1:%s:0' % paths['lockspace']],
                            capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(' ', 1) for line in leader.splitlines() if ' ' in line)
    assert fields['space_name'] == 'hosted-engine', leader
    assert fields['io_timeout'] == str(IO_TIMEOUT) and fields['sector_size'] == '512', leader
    # The metadata volume is zeroed and bounded to 250 host slots.
    with open(paths['metadata'], 'rb') as f:
        assert f.read() == b'\0' * (1 << 20)
    assert layout.metadata_max_hosts(paths['metadata']) == 250
    view = metadata.parse_area(volumes.read_volume(paths['metadata']), 250)
    assert view.hosts == {} and not view.skipped and not view.global_maintenance

    # The pool was disconnected, the domain stays monitored (its lockspace joined).
    assert c.call('Host.getConnectedStoragePools') == []
    stats = c.call('Host.getStorageRepoStats', domains=[sd])[sd]
    assert stats['acquired'] is True and stats['valid'] is True
    info = c.call('StorageDomain.getInfo', storagedomainID=sd)
    assert info['name'] == 'hosted_storage' and info['type'] == 'LOCALFS'
    assert c.call('Host.getAllTasksStatuses') == {}


def test_second_prepare_is_refused(world):
    assert 'conf' in world, 'prepare_domain did not complete'
    spec = {'storage': world['storage'], 'domain_type': 'localfs', 'vm_disk_size': VM_SIZE}
    before = sorted(os.listdir(world['storage']))
    with pytest.raises(StorageError) as e:
        domain.prepare_domain(world['client'], spec)
    msg = str(e.value)
    assert 'already holds a hosted-engine storage domain (%s)' % world['conf']['sdUUID'] in msg
    assert '\n' not in msg
    assert sorted(os.listdir(world['storage'])) == before


def test_connect_and_disconnect(world):
    conf = dict(world['conf'], host_id='1')
    c = world['client']
    got = domain.connect(c, conf, wait=True)
    expected = layout.volume_paths(conf, world['dc'])
    for name in ('vm', 'metadata', 'lockspace', 'conf'):
        assert os.path.realpath(got[name]) == os.path.realpath(expected[name]), name
    assert got['vm_lease'] == got['vm'] + '.lease' and os.path.isfile(got['vm_lease'])
    domain.disconnect(c, conf)
    assert conf['sdUUID'] not in c.call('Host.getStorageRepoStats')
    assert not os.path.exists(os.path.dirname(expected['domain']))   # the mount link
    # And back, for the tests that follow.
    got = domain.connect(c, conf, wait=True)
    world['paths'] = got

    with pytest.raises(StorageError) as e:
        domain.connect(c, dict(conf, sdUUID=''))
    assert 'hosted-engine.conf has no sdUUID' in str(e.value)


def test_config_volume(world):
    assert 'paths' in world, 'connect did not complete'
    cv = ConfigVolume(world['paths']['conf'])
    assert cv.read() == {}
    first = cv.checksum()
    files = {'version': '2.5.0\n', 'fhanswers.conf': '[environment:default]\n',
             'hosted-engine.conf': 'host_id=1\n', 'broker.conf': '[email]\n',
             'vm.conf': 'vmId=x\n' + 'a' * 5000}
    second = cv.write(files, first)
    assert second != first and second == cv.checksum()
    assert cv.read() == files
    # Another writer in between: refused, nothing written.
    with pytest.raises(ConfigChanged) as e:
        cv.write(dict(files, **{'vm.conf': 'vmId=y\n'}), first)
    assert 'read it again and retry' in str(e.value)
    assert cv.read() == files
    # An uncompressed tar at offset 0, zero padded to the volume's size.
    with tarfile.open(world['paths']['conf'], 'r:') as tar:
        assert tar.getnames() == list(layout.CONF_FILES)
    assert os.path.getsize(world['paths']['conf']) == 1 << 20
    with pytest.raises(ValueError):
        cv.write({'other.conf': ''}, second)
    with pytest.raises(StorageError) as e:
        cv.write({'vm.conf': os.urandom(2 << 20).hex()}, second)
    assert 'does not fit' in str(e.value)
    files2, checksum = cv.read_with_checksum()
    assert files2 == files and checksum == second


def test_write_vm_disk(world, tmp_path):
    assert 'paths' in world, 'connect did not complete'
    vm = world['paths']['vm']
    src = str(tmp_path / 'appliance.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', src, '8M'], check=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0xab 1M 64k', src],
                   check=True, stdout=subprocess.DEVNULL)
    volumes.write_vm_disk(src, vm)
    with open(vm, 'rb') as f:
        f.seek(1 << 20)
        assert f.read(65536) == b'\xab' * 65536
        assert f.read(4096) == b'\0' * 4096
    big = str(tmp_path / 'big.raw')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', big, str(VM_SIZE + (1 << 20))],
                   check=True)
    with pytest.raises(StorageError) as e:
        volumes.write_vm_disk(big, vm)
    assert 'larger than the VM volume' in str(e.value)


class FailOn:
    """The real client, with one verb failing (fault injection)."""

    def __init__(self, client, method, disk_type):
        self.client, self.method, self.disk_type = client, method, disk_type

    def call(self, method, **params):
        if method == self.method and params.get('diskType') == self.disk_type:
            raise ServerError(205, 'Error creating a new volume: injected')
        return self.client.call(method, **params)


def test_failure_undoes_what_was_created(world):
    storage = os.path.join(world['base'], 'storage2')
    os.makedirs(storage)
    c = world['client']
    spec = {'storage': storage, 'domain_type': 'localfs', 'vm_disk_size': VM_SIZE,
            'io_timeout': IO_TIMEOUT, 'host_id': 1}
    with pytest.raises(StorageError) as e:
        domain.prepare_domain(FailOn(c, 'Volume.create', 'HESD'), spec)
    msg = str(e.value)
    assert msg.startswith('creating the HESD volume: Volume.create failed (code 205'), msg
    assert msg.endswith('what was created is removed') and '\n' not in msg
    assert os.listdir(storage) == []
    assert c.call('Host.getConnectedStoragePools') == []
    assert list(c.call('Host.getStorageRepoStats')) == [world['conf']['sdUUID']]
    mnt = layout.mount_point(storage, world['dc'])
    assert not os.path.lexists(mnt)


def test_bad_spec():
    with pytest.raises(StorageError) as e:
        domain.prepare_domain(None, {'storage': '/x', 'domain_type': 'iscsi',
                                             'vm_disk_size': 1})
    assert "storage type 'iscsi'" in str(e.value)
    with pytest.raises(StorageError) as e:
        domain.prepare_domain(None, {'storage': '/x', 'domain_type': 'localfs'})
    assert 'vm_disk_size' in str(e.value)


def test_volume_paths_and_max_hosts(tmp_path):
    conf = {'storage': 'nfs.example:/exports/he_1', 'sdUUID': 'sd', 'vm_disk_id': 'i1',
            'vm_disk_vol_id': 'v1', 'metadata_image_UUID': 'i2', 'metadata_volume_UUID': 'v2',
            'lockspace_image_UUID': 'i3', 'lockspace_volume_UUID': 'v3',
            'conf_image_UUID': 'i4', 'conf_volume_UUID': 'v4'}
    p = layout.volume_paths(conf)
    mnt = '/rhev/data-center/mnt/nfs.example:_exports_he__1'
    assert p == {'domain': mnt + '/sd', 'vm': mnt + '/sd/images/i1/v1',
                 'vm_lease': mnt + '/sd/images/i1/v1.lease',
                 'metadata': mnt + '/sd/images/i2/v2', 'lockspace': mnt + '/sd/images/i3/v3',
                 'conf': mnt + '/sd/images/i4/v4'}
    small = tmp_path / 'md'
    small.write_bytes(b'\0' * (11 * 4096))
    assert layout.metadata_max_hosts(str(small)) == 10
    small.write_bytes(b'\0' * 4096)
    with pytest.raises(StorageError):
        layout.metadata_max_hosts(str(small))
    with pytest.raises(StorageError):
        layout.metadata_max_hosts(str(tmp_path / 'missing'))


def test_hosted_engine_conf_accepts_the_domain_types_the_layout_connects():
    """One list of domain types: each domainType hosted-engine.conf accepts has the API's
    domain type number the storage is connected with, and no other is accepted."""
    from ovirt_hosted_engine_setup.he_storage import heconf
    assert heconf.DOMAIN_TYPES == tuple(layout.DOMAIN_TYPES)
    for name, number in layout.DOMAIN_TYPES.items():
        assert heconf.value_problem('domainType', name) is None
        assert layout.domain_type(name) == number
    assert heconf.value_problem('domainType', 'iscsi') == (
        "domainType must be one of nfs, nfs3, nfs4, glusterfs, posixfs, localfs, not 'iscsi'")
    with pytest.raises(StorageError):
        layout.domain_type('iscsi')
