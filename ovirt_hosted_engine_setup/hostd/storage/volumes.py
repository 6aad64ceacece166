"""Images and volumes: Image.prepare / Image.teardown and Volume.*.

A volume of a file domain is images/<imgUUID>/<volUUID> (the data, raw or
qcow2), <volUUID>.meta (its metadata, see metadata.py) and <volUUID>.lease
(its sanlock lease). Volume.create and Volume.delete are tasks run by the
pool's SPM. Formats and allocations are the API schema's (enums volFormat and
preallocate).

Image.prepare gives the paths a VM uses: through the pool's links when the pool
is connected here, else through a run link <run_dir>/storage/<sdUUID>/<imgUUID>.
"""
import json
import logging
import os
import time

from ...api.schema import enum
from ...he_storage import sanlock_util
from ..api_base import VdsmError, verb
from . import metadata as md
from .context import int_param, run
from .domains import list_volumes
from .fileutil import BLANK_UUID, FILE_MODE, makedirs, make_sparse, write_atomic
from .pools import link_pool

log = logging.getLogger(__name__)

MiB = 1 << 20
COW, RAW = enum('volFormat')['COW'], enum('volFormat')['RAW']
PREALLOCATED = enum('preallocate')['PREALLOCATED']


def _invalid(message):
    return VdsmError('InvalidParameterException', message)


class ImagesVolumes:
    """The images and volumes of the domains on the connected storage."""

    def __init__(self, sc):
        self.sc = sc

    def _volume_paths(self, sd_dir, img, vol):
        base = os.path.join(sd_dir, 'images', img, vol)
        return base, base + '.meta', base + '.lease'

    def _read_volume_md(self, sd_uuid, img, vol):
        sd_dir = self.sc.find_domain(sd_uuid)
        path, meta, lease = self._volume_paths(sd_dir, img, vol)
        if not os.path.exists(meta):
            raise VdsmError('VolumeDoesNotExist', 'volume %s does not exist in image %s of '
                            'domain %s' % (vol, img, sd_uuid))
        with open(meta, 'rb') as f:
            return path, meta, lease, md.parse_volume(f.read())

    @verb('Volume.create')
    def createVolume(self, volumeID, storagepoolID, storagedomainID, imageID, size, volFormat,
                     preallocate, diskType, desc, srcImgUUID, srcVolUUID, initialSize=None,
                     addBitmaps=False, legal=True, sequence=0, bitmap=None):
        vol, img = volumeID, imageID
        capacity = int_param(size, 'size')
        fmt, alloc = volFormat, preallocate
        if capacity <= 0:
            raise _invalid('volume size must be a positive number of bytes, got %s' % size)
        if initialSize not in (None, ''):
            # As VDSM: only a preallocated RAW volume on a file domain takes an initial size.
            if fmt != RAW or alloc != PREALLOCATED:
                raise _invalid('initialSize is allowed only for a preallocated RAW volume')
            if not 0 < int_param(initialSize, 'initialSize') <= capacity:
                raise _invalid('initialSize %s must be between 1 and the size %d'
                               % (initialSize, capacity))
        if sequence < 0:
            raise _invalid('sequence must not be negative, got %d' % sequence)
        if bitmap is not None and fmt != COW:
            raise _invalid('a bitmap can be added to a COW volume only (volFormat %d)' % COW)
        if addBitmaps and srcVolUUID == BLANK_UUID:
            raise _invalid('addBitmaps needs a parent volume (srcVolUUID)')
        with self.sc.lock:
            self.sc.require_spm(storagepoolID)
            sd_dir = self.sc.find_domain(storagedomainID)
            self.sc.read_domain_md(storagedomainID, sd_dir)
            path, meta, lease = self._volume_paths(sd_dir, img, vol)
            if os.path.exists(meta) or os.path.exists(path):
                raise VdsmError('VolumeAlreadyExists',
                                'volume %s already exists in image %s' % (vol, img))
            parent = None
            if srcVolUUID != BLANK_UUID:
                src_img = srcImgUUID if srcImgUUID != BLANK_UUID else img
                parent = self._read_volume_md(storagedomainID, src_img, srcVolUUID)
                if fmt != COW:
                    raise _invalid('a volume with a parent must be COW (volFormat %d)' % COW)
                if addBitmaps and parent[3].get('FORMAT') != 'COW':
                    raise _invalid('addBitmaps needs a COW parent volume')
            # Reserve the name now so that a second create of the same volume gets
            # VolumeAlreadyExists.
            makedirs(os.path.dirname(path))
            fields = {
                'CAP': str(capacity), 'CTIME': str(int(time.time())),
                'DESCRIPTION': desc, 'DISKTYPE': str(diskType), 'DOMAIN': storagedomainID,
                'FORMAT': md.VOLUME_FORMATS[fmt], 'GEN': '0', 'IMAGE': img,
                'LEGALITY': 'ILLEGAL', 'PUUID': srcVolUUID if parent else BLANK_UUID,
                'SEQ': str(sequence), 'TYPE': md.ALLOCATIONS[alloc], 'VOLTYPE': 'LEAF',
            }
            data = md.format_volume(fields)
            fd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            os.write(fd, data)
            os.close(fd)
            os.chmod(meta, FILE_MODE)

        def create():
            try:
                self._make_volume(storagedomainID, sd_dir, img, vol, capacity, fmt, alloc,
                                  parent, fields, legal=legal, add_bitmaps=addBitmaps,
                                  bitmap=bitmap, initial_size=initialSize)
            except Exception:
                for p in (path, lease, meta):
                    try:
                        os.unlink(p)
                    except FileNotFoundError:
                        pass
                raise
        return self.sc.tasks.start('Volume.create', create)

    def _make_volume(self, sd_uuid, sd_dir, img, vol, capacity, fmt, alloc, parent, fields,
                     legal=True, add_bitmaps=False, bitmap=None, initial_size=None):
        path, meta, lease = self._volume_paths(sd_dir, img, vol)
        if fmt == RAW:
            cmd = ['qemu-img', 'create', '-f', 'raw']
            if alloc == PREALLOCATED and initial_size in (None, ''):
                cmd += ['-o', 'preallocation=falloc']
            cmd += [path, str(capacity)]
        else:
            opts = ['compat=1.1']
            if alloc == PREALLOCATED:
                opts.append('preallocation=falloc')
            cmd = ['qemu-img', 'create', '-f', 'qcow2', '-o', ','.join(opts)]
            if parent:
                ppath, _, _, pfields = parent
                cmd += ['-b', os.path.relpath(ppath, os.path.dirname(path)), '-F',
                        'qcow2' if pfields.get('FORMAT') == 'COW' else 'raw']
            cmd += [path, str(capacity)]
        try:
            run(cmd, 'qemu-img create of volume %s' % vol)
        except VdsmError as e:
            raise VdsmError('VolumeCreationError', e.message)
        os.chmod(path, FILE_MODE)
        if initial_size not in (None, ''):
            # the first initialSize bytes allocated, the rest sparse
            run(['fallocate', '-l', str(int(initial_size)), path],
                'allocating the initial size of volume %s' % vol)
        names = []
        if add_bitmaps:
            names = self._bitmaps(parent[0])
        if bitmap is not None:
            names.append(bitmap)
        for name in names:
            run(['qemu-img', 'bitmap', '--add', path, name],
                'adding bitmap %s to volume %s' % (name, vol))
        make_sparse(lease, MiB)
        try:
            sanlock_util.write_resource(sd_uuid, vol, lease, 0)
        except sanlock_util.SanlockException as e:
            raise VdsmError('VolumeCreationError', 'cannot initialise the lease of volume %s: %s'
                            % (vol, sanlock_util.describe(e)))
        if parent:
            ppath, pmeta, _, pfields = parent
            pfields['VOLTYPE'] = 'INTERNAL'
            write_atomic(pmeta, md.format_volume(pfields))
        if legal:
            fields = dict(fields, LEGALITY='LEGAL')
            write_atomic(meta, md.format_volume(fields))
        log.info('created volume %s/%s/%s (%s %s, %d bytes)', sd_uuid, img, vol,
                 fields['FORMAT'], fields['TYPE'], capacity)

    @staticmethod
    def _bitmaps(path):
        """Names of the persistent dirty bitmaps of a qcow2 image."""
        info = json.loads(run(['qemu-img', 'info', '--output', 'json', '-U', path],
                              'reading the bitmaps of %s' % path))
        data = (info.get('format-specific') or {}).get('data') or {}
        return [b['name'] for b in data.get('bitmaps') or []]

    @staticmethod
    def _sizes(path):
        st = os.stat(path)
        return st.st_size, st.st_blocks * 512

    @verb('Volume.getInfo')
    def getVolumeInfo(self, volumeID, storagepoolID, storagedomainID, imageID):
        path, meta, lease, f = self._read_volume_md(storagedomainID, imageID, volumeID)
        apparent, true = self._sizes(path) if os.path.exists(path) else (0, 0)
        try:
            owners = [o.get('host_id') for o in sanlock_util.read_resource_owners(
                storagedomainID, volumeID, lease, 0)]
        except (sanlock_util.SanlockException, OSError):
            owners = []
        return {
            'uuid': volumeID, 'domain': f.get('DOMAIN', storagedomainID),
            'image': f.get('IMAGE', imageID), 'parent': f.get('PUUID', BLANK_UUID),
            'format': f.get('FORMAT'), 'type': f.get('TYPE'), 'voltype': f.get('VOLTYPE'),
            'disktype': f.get('DISKTYPE'), 'description': f.get('DESCRIPTION', ''),
            'legality': f.get('LEGALITY'), 'capacity': f.get('CAP'),
            'apparentsize': str(apparent), 'truesize': str(true),
            'ctime': f.get('CTIME'), 'mtime': '0', 'generation': int(f.get('GEN', 0)),
            'status': 'OK' if f.get('LEGALITY') == 'LEGAL' else 'ILLEGAL',
            'pool': '', 'children': [],
            'lease': {'path': lease, 'offset': 0, 'owners': owners, 'version': None},
        }

    @verb('Volume.getSize')
    def getVolumeSize(self, volumeID, storagepoolID, storagedomainID, imageID):
        path, _, _, _ = self._read_volume_md(storagedomainID, imageID, volumeID)
        apparent, true = self._sizes(path)
        return {'apparentsize': str(apparent), 'truesize': str(true)}

    @verb('Volume.delete')
    def deleteVolume(self, volumeID, storagepoolID, storagedomainID, imageID, postZero, force,
                     discard=False):
        with self.sc.lock:
            self.sc.require_spm(storagepoolID)
            path, meta, lease, f = self._read_volume_md(storagedomainID, imageID, volumeID)
            if f.get('VOLTYPE') in ('INTERNAL', 'SHARED') and not force:
                raise VdsmError('general', 'volume %s is %s (it has children or is shared): '
                                'delete them first or pass force=true'
                                % (volumeID, f.get('VOLTYPE')))

        def delete():
            size = os.path.getsize(path) if os.path.exists(path) else 0
            if size and postZero:
                run(['fallocate', '--zero-range', '-o', '0', '-l', str(size), path],
                    'zeroing volume %s' % volumeID)
            if size and discard:
                run(['fallocate', '--punch-hole', '-o', '0', '-l', str(size), path],
                    'discarding volume %s' % volumeID)
            for p in (path, lease, meta):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            self._parent_leaf_again(os.path.dirname(path), f.get('PUUID', BLANK_UUID))
            try:
                os.rmdir(os.path.dirname(path))
            except OSError:
                pass
        return self.sc.tasks.start('Volume.delete', delete)

    @staticmethod
    def _parent_leaf_again(img_dir, parent):
        """As VDSM: a parent volume whose last child is deleted is a LEAF again."""
        pmeta = os.path.join(img_dir, parent + '.meta')
        if parent == BLANK_UUID or not os.path.exists(pmeta):
            return
        for name in os.listdir(img_dir):
            if name.endswith('.meta') and name != parent + '.meta':
                with open(os.path.join(img_dir, name), 'rb') as fh:
                    if md.parse_volume(fh.read()).get('PUUID') == parent:
                        return
        with open(pmeta, 'rb') as fh:
            pfields = md.parse_volume(fh.read())
        if pfields.get('VOLTYPE') == 'INTERNAL':
            pfields['VOLTYPE'] = 'LEAF'
            write_atomic(pmeta, md.format_volume(pfields))

    # ----------------------------------------------------------------- images
    def _run_link(self, sd_uuid, img):
        return os.path.join(self.sc.ctx.run_dir, 'storage', sd_uuid, img)

    @verb('Image.prepare')
    def prepareImage(self, storagepoolID, storagedomainID, imageID, volumeID,
                     allowIllegal=False):
        path, meta, lease, f = self._read_volume_md(storagedomainID, imageID, volumeID)
        if f.get('LEGALITY') != 'LEGAL' and not allowIllegal:
            raise VdsmError('general', 'volume %s is ILLEGAL (its creation did not finish): '
                            'pass allowIllegal=true or recreate it' % volumeID)
        with self.sc.lock:
            pool = self.sc.pools.get(storagepoolID) if storagepoolID != BLANK_UUID else None
            if pool:
                img_dir = os.path.join(self.sc.ctx.data_center_dir, storagepoolID,
                                       storagedomainID, 'images', imageID)
                if not os.path.isdir(img_dir):
                    link_pool(self.sc, storagepoolID, pool)
            else:
                img_dir = self._run_link(storagedomainID, imageID)
                makedirs(os.path.dirname(img_dir), 0o755)
                target = os.path.dirname(path)
                if os.path.islink(img_dir) and os.readlink(img_dir) != target:
                    os.unlink(img_dir)
                if not os.path.islink(img_dir):
                    os.symlink(target, img_dir)
                self.sc.prepared.add((storagedomainID, imageID))
        vol_path = os.path.join(img_dir, volumeID)
        vols = []
        for v in list_volumes(self.sc, storagedomainID, imageID):
            vols.append({'domainID': storagedomainID, 'imageID': imageID, 'volumeID': v,
                         'path': os.path.join(img_dir, v),
                         'leasePath': os.path.join(img_dir, v + '.lease'), 'leaseOffset': 0})
        return {'path': vol_path, 'info': {'type': 'file', 'path': vol_path},
                'imgVolumesInfo': vols}

    @verb('Image.teardown')
    def teardownImage(self, storagepoolID, storagedomainID, imageID, volumeID=None):
        self.sc.find_domain(storagedomainID)
        link = self._run_link(storagedomainID, imageID)
        with self.sc.lock:
            if os.path.islink(link):
                os.unlink(link)
            self.sc.prepared.discard((storagedomainID, imageID))
        return True
