"""Storage server connections: StoragePool.connectStorageServer / disconnectStorageServer.

- NFS: ``mount -t nfs`` of "server:/export" at <data_center_dir>/mnt/<mangled>.
- GLUSTERFS: ``mount -t glusterfs`` of "server:/volume" at
  <data_center_dir>/mnt/glusterSD/<mangled>, as VDSM mounts it: unless the mount options
  name backup-volfile-servers, the other servers of the volume's bricks are added as
  backup-volfile-servers (from the volume's info, gluster.py), so that the mount does not
  depend on the one server named in the connection.
- POSIXFS: ``mount -t <vfs_type>``. A POSIXFS connection that is a local directory with an
  empty vfs_type (or "none") is bind-mounted.
- LOCALFS: a local directory, linked (symlink) as <data_center_dir>/mnt/<mangled>
  ("/srv/data" -> "_srv_data"), as VDSM does.
Mount points are he_storage/layout.py's (mount_point: "_" doubled, then "/" -> "_"). The
domain type numbers are the API schema's (enum domainType).
"""
import logging
import os
import subprocess

from ...api.schema import enum
from ...he_storage import StorageError, layout
from ..api_base import VdsmError, verb
from . import gluster
from .fileutil import BLANK_UUID, is_mounted, makedirs, probe_dir

log = logging.getLogger(__name__)

DOMAIN_TYPE = enum('domainType')
NFS, LOCALFS, POSIXFS, GLUSTERFS = (DOMAIN_TYPE[n] for n in
                                    ('NFS', 'LOCALFS', 'POSIXFS', 'GLUSTERFS'))
FILE_DOMAIN_TYPES = (NFS, LOCALFS, POSIXFS, GLUSTERFS)
# "NFS=1, LOCALFS=4, POSIXFS=6, GLUSTERFS=7", for messages
FILE_DOMAIN_TYPES_TEXT = ', '.join('%s=%d' % (n, DOMAIN_TYPE[n]) for n in
                                   ('NFS', 'LOCALFS', 'POSIXFS', 'GLUSTERFS'))
NFS_DEFAULT_OPTIONS = 'soft,nosharecache,timeo=600,retrans=6'
# the replica counts VDSM accepts for a gluster storage domain without a warning (its
# [gluster] allowed_replica_counts)
GLUSTER_REPLICA_COUNTS = ('1', '3')


def _connection_error(message):
    return VdsmError('StorageServerConnectionError', message)


def gluster_mount_options(connection, options):
    """The mount options of a GLUSTERFS connection "server:/volume", as VDSM mounts it: the
    given options, plus (unless they name backup-volfile-servers) the other servers of the
    volume's bricks as backup-volfile-servers. The volume's info is asked of the server, then
    of this host's glusterd; without it the volume is mounted without backup servers, as
    VDSM does. A volume VDSM would warn about (disperse, replica count not 1 or 3) is
    mounted with a warning in the log."""
    if 'backup-volfile-servers' in options:
        log.info('gluster connection %s: using the backup-volfile-servers of its mount '
                 'options', connection)
        return options
    try:
        server, volume = layout.gluster_volume(connection)
    except StorageError as e:
        raise _connection_error(str(e))
    info = None
    for remote in (server, None):
        try:
            info = gluster.volume_info(volume, remote).get(volume)
        except VdsmError as e:
            log.warning('gluster connection %s: no volume info from %s: %s', connection,
                        remote or 'this host\'s glusterd', e.message)
            continue
        if info:
            break
    if not info:
        log.warning('gluster connection %s: mounting without backup-volfile-servers (the '
                    'volume\'s bricks are unknown)', connection)
        return options
    if 'DISPERSE' in info.get('volumeType', ''):
        log.warning('gluster volume %s is a %s volume, which oVirt does not support for storage '
                    'domains: use a replicate volume', volume, info['volumeType'])
    elif info.get('replicaCount') not in GLUSTER_REPLICA_COUNTS:
        log.warning('gluster volume %s has the unsupported replica count %s: upgrade it to '
                    'replica 3', volume, info.get('replicaCount'))
    backup = gluster.backup_volfile_servers(info, server)
    log.info('gluster connection %s: bricks on %s%s', connection,
             ', '.join(gluster.brick_servers(info)) or 'no server',
             ', mounted with ' + backup if backup else '')
    return ','.join(o for o in (options, backup) if o)


class Connections:
    """The storage server connections of this host (state: sc.connections)."""

    def __init__(self, sc):
        self.sc = sc

    def restore(self, state):
        """Connect again what the saved state had connected; sc.lock held."""
        for mnt, conn in state.get('connections', {}).items():
            try:
                self.connect_one(conn['domainType'], conn)
            except VdsmError as e:
                log.warning('restoring connection %s: %s', conn.get('connection'), e.message)
            self.sc.connections[mnt] = conn

    def connect_one(self, domain_type, conn):
        """Mount (or link) one connection; its mount point. VdsmError on failure."""
        connection = conn.get('connection') or ''
        if not connection:
            raise _connection_error('connection %s has no "connection" value' % conn.get('id'))
        mnt = self.sc.mountpoint(connection, domain_type)
        makedirs(self.sc.mnt_dir, 0o755)
        if domain_type == LOCALFS:
            return self._link_local(connection, mnt)
        if domain_type not in (NFS, POSIXFS, GLUSTERFS):
            raise _connection_error('storage type %s is not supported by this host agent (file '
                                    'domains only: %s)' % (domain_type, FILE_DOMAIN_TYPES_TEXT))
        if is_mounted(mnt):
            reason = probe_dir(mnt)
            if reason:
                raise _connection_error(reason)
            return mnt
        cmd = self._mount_command(domain_type, conn, connection, mnt)
        makedirs(mnt, 0o755)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        if p.returncode != 0:
            try:
                os.rmdir(mnt)
            except OSError:
                pass
            raise _connection_error('cannot mount %s at %s: %s' % (
                connection, mnt, (p.stderr or p.stdout).strip() or 'mount failed'))
        reason = probe_dir(mnt)
        if reason:
            subprocess.run(['umount', mnt])
            try:
                os.rmdir(mnt)
            except OSError:
                pass
            raise _connection_error(reason)
        return mnt

    @staticmethod
    def _link_local(connection, mnt):
        if not connection.startswith('/'):
            raise _connection_error('local storage path %r must be absolute' % connection)
        reason = probe_dir(connection)
        if reason:
            raise _connection_error(reason)
        if os.path.islink(mnt):
            if os.readlink(mnt) == connection:
                return mnt
            os.unlink(mnt)
        elif os.path.exists(mnt):
            raise _connection_error('%s exists and is not a link: remove it' % mnt)
        os.symlink(connection, mnt)
        return mnt

    @staticmethod
    def _mount_command(domain_type, conn, connection, mnt):
        vfs_type = conn.get('vfs_type') or ''
        options = conn.get('mnt_options') or ''
        if domain_type == NFS:
            opts = [NFS_DEFAULT_OPTIONS] + ([options] if options else [])
            version = str(conn.get('protocol_version') or 'auto')
            if version not in ('auto', ''):
                opts.append('nfsvers=3' if version == '3' else 'vers=%s' % version)
            return ['mount', '-t', 'nfs', '-o', ','.join(opts), connection, mnt]
        if domain_type == GLUSTERFS:
            options = gluster_mount_options(connection, options)
            return ['mount', '-t', 'glusterfs'] + (['-o', options] if options else []) + \
                [connection, mnt]
        if vfs_type in ('', 'none') and connection.startswith('/'):
            reason = probe_dir(connection)
            if reason:
                raise _connection_error(reason)
            return ['mount', '--bind'] + (['-o', options] if options else []) + [connection, mnt]
        if not vfs_type:
            raise _connection_error('POSIXFS connection %s needs a vfs_type (or a local '
                                    'directory as connection)' % connection)
        return ['mount', '-t', vfs_type] + (['-o', options] if options else []) + \
            [connection, mnt]

    def disconnect_one(self, domain_type, conn):
        mnt = self.sc.mountpoint(conn.get('connection') or '', domain_type)
        if domain_type == LOCALFS:
            if os.path.islink(mnt):
                os.unlink(mnt)
            return
        if is_mounted(mnt):
            p = subprocess.run(['umount', mnt], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
            if p.returncode != 0:
                raise _connection_error('cannot unmount %s: %s' % (mnt, p.stderr.strip()))
        try:
            os.rmdir(mnt)
        except OSError:
            pass

    @staticmethod
    def _public_conn(domain_type, conn):
        keep = {k: v for k, v in conn.items() if k != 'password'}
        keep['domainType'] = domain_type
        return keep

    @verb('StoragePool.connectStorageServer')
    def connectStorageServer(self, storagepoolID, domainType, connectionParams):
        domain_type = domainType
        result = []
        with self.sc.lock:
            for conn in connectionParams:
                if not isinstance(conn, dict):
                    raise VdsmError('InvalidParameterException',
                                    'connectionParams entries must be objects')
                try:
                    mnt = self.connect_one(domain_type, conn)
                except VdsmError as e:
                    log.warning('connectStorageServer %s: %s', conn.get('connection'), e.message)
                    result.append({'id': conn.get('id', BLANK_UUID), 'status': e.code,
                                   'message': e.message})
                    continue
                self.sc.connections[mnt] = self._public_conn(domain_type, conn)
                result.append({'id': conn.get('id', BLANK_UUID), 'status': 0})
            self.sc.save()
        return result

    @verb('StoragePool.disconnectStorageServer')
    def disconnectStorageServer(self, storagepoolID, domainType, connectionParams):
        domain_type = domainType
        result = []
        with self.sc.lock:
            for conn in connectionParams:
                mnt = self.sc.mountpoint(conn.get('connection') or '', domain_type)
                try:
                    self.disconnect_one(domain_type, conn)
                except VdsmError as e:
                    result.append({'id': conn.get('id', BLANK_UUID), 'status': e.code,
                                   'message': e.message})
                    continue
                self.sc.connections.pop(mnt, None)
                result.append({'id': conn.get('id', BLANK_UUID), 'status': 0})
            self.sc.save()
        return result
