"""Checks of the hosted-engine storage answers (pure helpers of the deploy's storage plugin).

Each check raises ValueError whose text is one line naming the problem and the fix, so a
typed answer can be asked again with it and an answer-file value fails with it.
"""
import os
import re
import tempfile
import uuid as uuidlib

from . import validators
from ..he_storage import layout

MiB = 1 << 20
GiB = 1 << 30

# storage types the host agent serves (file domains), in the order they are offered
SUPPORTED_TYPES = ('nfs', 'glusterfs', 'posixfs', 'localfs')
# older answer files name the NFS version in the type
LEGACY_NFS_TYPES = ('nfs3', 'nfs4')
BLOCK_TYPES = ('iscsi', 'fc')
REMOTE_TYPES = ('nfs', 'nfs3', 'nfs4', 'glusterfs')       # connection "host:/path"
MOUNT_OPTION_TYPES = ('nfs', 'nfs3', 'nfs4', 'glusterfs', 'posixfs')
NFS_VERSIONS = ('auto', 'v3', 'v4', 'v4_0', 'v4_1', 'v4_2')
DEFAULT_NFS_VERSION = 'auto'
# a shared (nfs/glusterfs) hosted-engine storage domain must offer at least this much
MIN_SHARED_DOMAIN_BYTES = 20 * GiB
RECOMMENDED_DISK_GB = 25
# what the domain holds besides the VM disk: the metadata, lockspace and configuration volumes
EXTRA_VOLUMES_BYTES = (layout.METADATA_SIZE + layout.LOCKSPACE_SIZE +
                       layout.CONF_SIZE)

_UUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')


def domain_type(value):
    """The storage type answer, lower-cased; block storage is refused with the reason."""
    text = str(value).strip().lower()
    if text in BLOCK_TYPES:
        raise ValueError('%s storage is block storage, which this host agent '
                         '(ovirt-hosted-engine-hostd) does not support: use one of %s'
                         % ('iSCSI' if text == 'iscsi' else 'Fibre Channel',
                            ', '.join(SUPPORTED_TYPES)))
    if text not in SUPPORTED_TYPES + LEGACY_NFS_TYPES:
        raise ValueError('%r is not a storage type: use one of %s'
                         % (str(value), ', '.join(SUPPORTED_TYPES)))
    return text


def nfs_version(value):
    text = str(value).strip().lower()
    if text not in NFS_VERSIONS:
        raise ValueError('%r is not an NFS version: use one of %s'
                         % (str(value), ', '.join(NFS_VERSIONS)))
    return text


def is_remote(dtype):
    return dtype in REMOTE_TYPES


def connection(dtype, value):
    """The storage connection for a storage type: "host:/path" (nfs, glusterfs; not the
    server's root) or an absolute directory (localfs, posixfs). Returns it normalised
    (trailing slashes removed)."""
    text = str(value).strip()
    if not text:
        raise ValueError('the storage connection is empty: give %s'
                         % ('host:/path' if is_remote(dtype) else 'an absolute directory'))
    if is_remote(dtype):
        if text.startswith('/'):
            raise ValueError('%r is a local path: %s storage needs a server, give host:/path '
                             '(like nfs.example.com:/exports/he)' % (text, dtype))
        example = '(like nfs.example.com:/exports/he)'
        if ':' not in text:
            raise ValueError('%r is not host:/path: give the server and its exported '
                             'directory %s' % (text, example))
        if text.startswith('[') and ']:' in text:        # [IPv6]:/path
            host, path = text[1:].split(']:', 1)
        else:
            host, path = text.split(':', 1)
        try:
            validators.host_address(host)
        except ValueError as e:
            raise ValueError('the server in %r: %s; give host:/path %s' % (text, e, example))
        if not path.startswith('/'):
            raise ValueError('the path in %r is not absolute: give host:/path %s'
                             % (text, example))
        if path.rstrip('/') == '':
            raise ValueError('%r is the root of the server: give an exported directory of it '
                             '(host:/path) %s' % (text, example))
        return '%s:%s' % (text[:len(text) - len(path) - 1], path.rstrip('/'))
    if not text.startswith('/'):
        raise ValueError('%r is not an absolute directory: give the directory shared by the '
                         'hosts for %s storage (like /srv/hosted-engine)' % (text, dtype))
    norm = os.path.normpath(text)
    if norm == '/':
        raise ValueError('"/" cannot be the storage: give a directory shared by the hosts '
                         '(like /srv/hosted-engine)')
    return norm


def mount_options(dtype, version, options):
    """The mount options handed to the host agent: the user's options plus the NFS
    version (auto: none; v3: nfsvers=3; v4: vers=4; v4_1: vers=4.1 ...)."""
    parts = [o for o in (options or '').split(',') if o.strip()]
    if dtype == 'glusterfs':
        for o in parts:
            key, _, value = o.strip().partition('=')
            if key not in ('backup-volfile-servers', 'backupvolfile-server'):
                continue
            servers = value.split(':')
            if not value or not all(servers):
                raise ValueError('the mount option %r names no server: give '
                                 'backup-volfile-servers=server2:server3' % o.strip())
            for server in servers:
                try:
                    validators.host_address(server)
                except ValueError as e:
                    raise ValueError('the mount option %r: %s; give '
                                     'backup-volfile-servers=server2:server3' % (o.strip(), e))
    if dtype == 'nfs' and version and version != 'auto':
        if any(re.match(r'^(nfs)?vers=', o.strip()) for o in parts):
            raise ValueError('the mount options %r already set an NFS version: remove it or '
                             'answer auto for the NFS version' % options)
        parts.append('nfsvers=3' if version == 'v3' else
                     'vers=%s' % version[1:].replace('_', '.'))
    return ','.join(p.strip() for p in parts)


def needed_bytes(img_size_gb):
    """Bytes the hosted-engine domain needs: the VM disk and the three small volumes."""
    return int(img_size_gb) * GiB + EXTRA_VOLUMES_BYTES


def size_text(n):
    if n >= GiB:
        return '%.1f GiB' % (n / GiB)
    return '%.1f MiB' % (n / MiB)


def minimum_domain_bytes(dtype):
    return MIN_SHARED_DOMAIN_BYTES if is_remote(dtype) else 0


def check_space(dtype, storage, free, img_size_gb):
    """Refuse a storage with less free space than the domain needs (and, for nfs and
    glusterfs, less than 20 GiB)."""
    need = needed_bytes(img_size_gb)
    minimum = minimum_domain_bytes(dtype)
    if free < minimum:
        raise ValueError('The storage %s has %s free, less than the %s a hosted-engine '
                         'storage domain on %s needs: give a larger export'
                         % (storage, size_text(free), size_text(minimum), dtype))
    if free < need:
        raise ValueError('The storage %s has %s free, less than the %s needed for a %d GB VM '
                         'disk with the metadata, lockspace and configuration volumes: free '
                         'space on it, give a larger storage, or a smaller disk size'
                         % (storage, size_text(free), size_text(need), int(img_size_gb)))


def free_bytes(path):
    """Bytes available to unprivileged writers on the file system of path."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def probe_writable(path):
    """None if a file can be created in path, else the reason."""
    try:
        fd, probe = tempfile.mkstemp(prefix='.hosted-engine-setup-write-test-', dir=path)
    except OSError as e:
        return '%s is not writable (%s)' % (path, e.strerror or e)
    os.close(fd)
    os.unlink(probe)
    return None


def read_domain_metadata(path):
    """KEY=VALUE fields of a dom_md/metadata file ({} when unreadable)."""
    try:
        with open(path, 'rb') as f:
            text = f.read().rstrip(b'\0').decode('utf-8', 'replace')
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition('=')
        if sep:
            fields[key] = value
    return fields


def find_domains(directory):
    """[(sdUUID, name)] of the storage domains in a mounted storage directory: entries
    named by a UUID with a dom_md/metadata file."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    out = []
    for name in names:
        if not _UUID.match(name):
            continue
        md = os.path.join(directory, name, 'dom_md', 'metadata')
        if os.path.isfile(md):
            out.append((name, read_domain_metadata(md).get('DESCRIPTION', '')))
    return out


def preset_uuid(value):
    """A UUID preset in the environment, or None (blank UUIDs are not presets)."""
    if not value or value == layout.BLANK_UUID:
        return None
    return str(uuidlib.UUID(str(value)))


# -- glusterfs: the volume behind a "server:/volume" connection --------------------------
# the replica count oVirt supports for the hosted-engine storage; replica 1 only when the
# user confirms it (no copy survives the loss of its brick)
GLUSTER_REPLICA = 3
GLUSTER_REPLICA_CONFIRMED = 1


def gluster_volume(result, server, volume):
    """The info of volume in GlusterVolume.list's result ({volumes: {name: info}}): ValueError
    (one line naming the server and the volume) when it is missing, not a replicate volume,
    or not started."""
    info = ((result or {}).get('volumes') or {}).get(volume)
    if not info:
        raise ValueError('The gluster volume %s was not found on %s: give an existing volume as '
                         '%s:/volume (gluster volume list on %s shows them)'
                         % (volume, server, server, server))
    vtype = str(info.get('volumeType') or '')
    if 'DISPERSE' in vtype.upper():
        raise ValueError('The gluster volume %s on %s is a %s volume: the hosted-engine storage '
                         'needs a replicate volume of replica %d; give another volume'
                         % (volume, server, vtype.lower(), GLUSTER_REPLICA))
    if str(info.get('volumeStatus') or '').upper() != 'ONLINE':
        raise ValueError('The gluster volume %s on %s is not started: start it (gluster volume '
                         'start %s) and give it again' % (volume, server, volume))
    gluster_replica(info, server, volume)
    return info


def gluster_replica(info, server, volume):
    """A volume's replica count (VDSM gives it as a string), as a number."""
    try:
        return int(str(info.get('replicaCount')).strip())
    except ValueError:
        raise ValueError('The gluster volume %s on %s has no readable replica count (%r): check '
                         'the volume (gluster volume info %s)'
                         % (volume, server, info.get('replicaCount'), volume))


def gluster_replica_refusal(replica, server, volume):
    """The one-line refusal of a replica count neither 3 nor (confirmed) 1."""
    return ('The gluster volume %s on %s has replica %d: the hosted-engine storage needs a '
            'replica %d volume (replica %d only when confirmed); give a replica %d volume '
            '(gluster volume create NAME replica %d SERVER1:BRICK SERVER2:BRICK SERVER3:BRICK)'
            % (volume, server, replica, GLUSTER_REPLICA, GLUSTER_REPLICA_CONFIRMED,
               GLUSTER_REPLICA, GLUSTER_REPLICA))


def gluster_distinct_hosts(info):
    """How many gluster hosts hold the volume's bricks (their host UUIDs when the volume's
    info gives them, else the servers named in the bricks)."""
    uuids = {b.get('hostUuid') for b in info.get('bricksInfo') or () if b.get('hostUuid')}
    if uuids:
        return len(uuids)
    return len({str(b).rsplit(':', 1)[0] for b in info.get('bricks') or ()})
