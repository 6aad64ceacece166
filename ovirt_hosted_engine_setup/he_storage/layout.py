"""Where the hosted-engine storage puts things: names, sizes and paths (pure, no I/O but
a file's size and the listing of the mount points).

The storage domain is a file domain laid out as VDSM lays it out: <mount point>/<sdUUID>/
with dom_md/ (metadata, ids, leases) and images/<image>/<volume> (plus .meta and .lease).
Its four images: HEVD (the engine VM disk), HEMD (the HA metadata area), HESD (the
``hosted-engine`` lockspace) and HECI (the configuration volume).

    paths = volume_paths(conf)          # vm, vm_lease, metadata, lockspace, conf, domain
    mnt = mount_point(conf['storage'], domain_type=conf['domainType'])   # VDSM's mount point
    params = connection_params(conf, conf['connectionUUID'])
"""
import os

from ..api.schema import constant, enum
from . import StorageError

BLANK_UUID = constant('blankUUID')
DATA_CENTER_DIR = '/rhev/data-center'
# where connections are mounted under the data center directory, and gluster volumes under it
MNT_DIR = 'mnt'
GLUSTERFS_DIR = 'glusterSD'
MiB = 1 << 20

# domainType names of hosted-engine.conf -> the API's domain type numbers
_TYPE_IDS = enum('domainType')
# (in the order messages list them; heconf.py checks domainType against these names)
DOMAIN_TYPES = {'nfs': _TYPE_IDS['NFS'], 'nfs3': _TYPE_IDS['NFS'], 'nfs4': _TYPE_IDS['NFS'],
                'glusterfs': _TYPE_IDS['GLUSTERFS'], 'posixfs': _TYPE_IDS['POSIXFS'],
                'localfs': _TYPE_IDS['LOCALFS']}
NFS_VERSIONS = {'nfs3': '3', 'nfs4': '4'}
RAW, COW = enum('volFormat')['RAW'], enum('volFormat')['COW']
PREALLOCATED, SPARSE = enum('preallocate')['PREALLOCATED'], enum('preallocate')['SPARSE']
DATA_CLASS = enum('domainClass')['Data']
DOMAIN_VERSION = 5
MAX_HOSTS = 250

LOCKSPACE_NAME = 'hosted-engine'

# sanlock's timing, from the I/O timeout a lockspace was written with (VDSM's default 10 s).
# A host renews its delta lease every 2 x io_timeout; one that could not renew for
# 8 x io_timeout kills the holders of its leases; the others may take its leases once its
# watchdog has also had time to reset it: 8 x io_timeout + 60 s after its last renewal.
# That is the floor of any failover after a host crash or hang.
DEFAULT_IO_TIMEOUT = 10
MIN_IO_TIMEOUT, MAX_IO_TIMEOUT = 1, 60
# below this, a remote storage's ordinary latency spikes can make a host lose its id
REMOTE_IO_TIMEOUT_WARNING = 5
WATCHDOG_FIRE_TIMEOUT = 60


def renewal_interval(io_timeout):
    return 2 * io_timeout


def renewal_fail(io_timeout):
    """Seconds without a renewal after which a host kills the holders of its leases."""
    return 8 * io_timeout


def failover_floor(io_timeout):
    """Seconds after a host's last renewal before another host may take its leases: the
    worst-case wait before a crashed host's engine VM can start elsewhere."""
    return renewal_fail(io_timeout) + WATCHDOG_FIRE_TIMEOUT

# The HA metadata area: 4096-byte slots, slot 0 the global block, slot N host id N.
METADATA_SLOT_SIZE = 4096
# The metadata volume holds MAX_HOSTS host slots plus the global block:
# 251 x 4096 = 1028096 bytes, in 1 MiB.
METADATA_SIZE = MiB
# A sanlock lockspace with 512-byte sectors and 1 MiB alignment: 1 MiB.
LOCKSPACE_SIZE = MiB
# The configuration tar: five small files, a vm.conf with its base64 domain
# XML of a few KiB; under 64 KiB in practice. 1 MiB leaves room.
CONF_SIZE = MiB

DEFAULT_SD_NAME = 'hosted_storage'
DEFAULT_SP_NAME = 'hosted_datacenter'

# Volume descriptions oVirt uses.
VM_DESC = 'hosted-engine'
METADATA_DESC = 'hosted-engine.metadata'
LOCKSPACE_DESC = 'hosted-engine.lockspace'
CONF_DESC = 'HostedEngineConfigurationImage'

CONF_FILES = ('version', 'fhanswers.conf', 'hosted-engine.conf', 'broker.conf', 'vm.conf')


def connection_params(conf_or_spec, conn_id):
    """The connectionParams entry of the storage connection."""
    storage = conf_or_spec['storage']
    dtype = conf_or_spec.get('domainType') or conf_or_spec.get('domain_type') or 'nfs'
    p = {'id': conn_id, 'connection': storage}
    options = conf_or_spec.get('mnt_options') or ''
    if options:
        p['mnt_options'] = options
    if dtype in NFS_VERSIONS:
        p['protocol_version'] = NFS_VERSIONS[dtype]
    if dtype == 'posixfs':
        p['vfs_type'] = conf_or_spec.get('vfs_type') or ''
    if dtype == 'glusterfs':
        p['vfs_type'] = 'glusterfs'
    return p


def domain_type(name):
    """The API's domain type number of a domainType name of hosted-engine.conf."""
    try:
        return DOMAIN_TYPES[name]
    except KeyError:
        raise StorageError('storage type %r is not one of %s: fix domainType'
                           % (name, ', '.join(sorted(DOMAIN_TYPES))))


def mangle(storage):
    """VDSM's name of a connection's mount point: "_" doubled, then "/" -> "_"
    ("server:/exports/he_1" -> "server:_exports_he__1")."""
    return storage.replace('_', '__').replace('/', '_')


def mount_point(storage, data_center_dir=DATA_CENTER_DIR, domain_type=None):
    """VDSM's mount point of a storage connection: <data_center_dir>/mnt/<mangled>, and for
    glusterfs <data_center_dir>/mnt/glusterSD/<mangled> (as VDSM mounts gluster volumes).

    domain_type: a domainType name of hosted-engine.conf ('glusterfs', 'nfs', ...) or the
    API's number (GLUSTERFS=7 ...); None for a type that is not glusterfs. The one place
    the deploy, the HA services, cleanup and the host agent find a connection's mount point.
    """
    parent = os.path.join(data_center_dir, MNT_DIR)
    if domain_type in ('glusterfs', _TYPE_IDS['GLUSTERFS']):
        parent = os.path.join(parent, GLUSTERFS_DIR)
    return os.path.join(parent, mangle(storage))


def mount_points(data_center_dir=DATA_CENTER_DIR):
    """Every mount point (or local link) under <data_center_dir>/mnt, the gluster ones under
    glusterSD/ included, sorted: where the connected storage domains are looked for."""
    parent = os.path.join(data_center_dir, MNT_DIR)
    out = []
    for sub in (parent, os.path.join(parent, GLUSTERFS_DIR)):
        try:
            names = os.listdir(sub)
        except OSError:
            continue
        out += [os.path.join(sub, n) for n in names
                if not (sub == parent and n == GLUSTERFS_DIR)]
    return sorted(out)


def domain_dir(conf, data_center_dir=DATA_CENTER_DIR):
    """The storage domain's directory under its connection's mount point (pure): conf has
    hosted-engine.conf's storage, domainType and sdUUID."""
    return os.path.join(mount_point(conf['storage'], data_center_dir, conf.get('domainType')),
                        conf['sdUUID'])


def gluster_volume(storage):
    """(server, volume name) of a glusterfs connection "server:/volume" (as VDSM splits it:
    at the first colon, the slashes around the volume name dropped)."""
    server, sep, volume = storage.partition(':')
    if not sep or not server or not volume.strip('/'):
        raise StorageError('%r is not a gluster volume connection: give server:/volume'
                           % storage)
    return server, volume.strip('/')


def volume_paths(conf, data_center_dir=DATA_CENTER_DIR):
    """Paths of the four volumes and of the VM lease under the mount point (pure).

    Keys: vm, vm_lease, metadata, lockspace, conf, domain (the domain's directory).
    """
    dom = domain_dir(conf, data_center_dir)

    def vol(img, vol_id):
        return os.path.join(dom, 'images', conf[img], conf[vol_id])
    vm = vol('vm_disk_id', 'vm_disk_vol_id')
    return {'domain': dom,
            'vm': vm,
            'vm_lease': vm + '.lease',
            'metadata': vol('metadata_image_UUID', 'metadata_volume_UUID'),
            'lockspace': vol('lockspace_image_UUID', 'lockspace_volume_UUID'),
            'conf': vol('conf_image_UUID', 'conf_volume_UUID')}


def domain_ids_path(volume_path):
    """The domain's lockspace (dom_md/ids, the lockspace named after the domain, where its
    volume leases live) from the path of one of its volumes or volume leases (pure)."""
    dom = os.path.dirname(os.path.dirname(os.path.dirname(volume_path)))
    return os.path.join(dom, 'dom_md', 'ids')


IMAGES = (  # (name, image key, volume key) of the four images
    ('vm', 'vm_disk_id', 'vm_disk_vol_id'),
    ('metadata', 'metadata_image_UUID', 'metadata_volume_UUID'),
    ('lockspace', 'lockspace_image_UUID', 'lockspace_volume_UUID'),
    ('conf', 'conf_image_UUID', 'conf_volume_UUID'),
)


def size_of(path):
    """The size of a file or block device (its end offset)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def metadata_max_hosts(path):
    """Host slots of the metadata volume: min(250, size // 4096 - 1)."""
    try:
        size = size_of(path)
    except OSError as e:
        raise StorageError('cannot open the metadata volume %s (%s): connect the storage '
                           '(hosted-engine --connect-storage)' % (path, e.strerror or e))
    n = min(MAX_HOSTS, size // METADATA_SLOT_SIZE - 1)
    if n < 1:
        raise StorageError('the metadata volume %s is %d bytes, too small for one host slot: '
                           'deploy again' % (path, size))
    return n
