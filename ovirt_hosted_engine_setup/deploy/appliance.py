"""The engine appliance: an OVA (a tar, plain or gzip) in oVirt's layout.

    master/vms/<vm uuid>/<vm uuid>.ovf      the VM's OVF (exactly one .ovf in the archive)
    images/<image uuid>/<volume uuid>      the disk (qcow2 or raw), named by the OVF's ovf:fileRef

    app = Appliance.open('/usr/share/ovirt-engine-appliance/ovirt-engine-appliance.ova')
    app.vcpus, app.memory_mb, app.disk_size_bytes, app.disk_format, app.disk_member
    app.engine_version                              # '4.5.6', or 'unknown'
    app.copy_to_volume(volume_path, progress=cb)   # qemu-img convert into the VM volume
    path = app.extract_disk('/var/tmp')             # or stream the disk out to a file

Every failure is an ApplianceError whose str() is one line naming the problem
and what to do. The contract the appliance builders follow is
docs/appliance-and-seed.md.

write_ova() and make_ovf() build an OVA in the same layout (the lab appliance
builder and the tests use them).

Over 600 lines on purpose: the reader and the builder of one archive layout stay in one
module, so that what is written is exactly what is read.
"""
import io
import json
import math
import os
import re
import subprocess
import tarfile
import tempfile
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET

from ..api.schema import constant
from .restore_backup import UNKNOWN_VERSION, parse_version, version_text

GiB = 1 << 30
MiB = 1 << 20

NS_OVF = 'http://schemas.dmtf.org/ovf/envelope/1/'
NS_RASD = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData'
NS_VSSD = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData'
NS_XSI = 'http://www.w3.org/2001/XMLSchema-instance'

# ovf:format values written by make_ovf (read: any URI containing "qcow" is
# qcow2, "RAW" is raw; ovf:volume-format COW/RAW takes precedence when present).
FORMAT_QCOW2 = 'http://www.gnome.org/~markmc/qcow-image-format.html'
FORMAT_RAW = 'RAW'
VMDK_SPARSE = 'http://www.vmware.com/specifications/vmdk.html#sparse'

RESOURCE_CPU = '3'
RESOURCE_MEMORY = '4'
RESOURCE_DISK = '17'

# the OVF ProductSection naming the engine the appliance holds
APPLIANCE_PRODUCT = 'oVirt Engine Appliance'

_UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                      r'[0-9a-fA-F]{12}$')
_PROGRESS_RE = re.compile(rb'\((\d+(?:\.\d+)?)/100%\)')


class ApplianceError(Exception):
    """A bad appliance OVA or a failed copy; str() is one line."""


def _o(name):
    return '{%s}%s' % (NS_OVF, name)


def _r(name):
    return '{%s}%s' % (NS_RASD, name)


def _gib(n):
    return int(math.ceil(n / GiB))


def _human(n):
    if n >= GiB:
        return '%.1f GiB' % (n / GiB)
    return '%d MiB' % int(math.ceil(n / MiB))


def _stderr_tail(text):
    lines = [ln.strip() for ln in (text or '').splitlines() if ln.strip()]
    return lines[-1] if lines else 'no message'


def _qemu_img_info(target):
    p = subprocess.run(['qemu-img', 'info', '--output=json', target],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise ApplianceError('qemu-img cannot read %s: %s' % (
            target if not target.startswith('json:') else 'the appliance disk',
            _stderr_tail(p.stderr)))
    return json.loads(p.stdout)


class Appliance:
    """An opened, validated appliance OVA.

    Attributes: path, ovf_member, ovf_xml (text), vm_uuid, vm_name, vcpus,
    memory_mb, disk_size_bytes (the disk's virtual size from ovf:size),
    disk_actual_size (bytes, from ovf:actual_size, may be None), disk_member
    (tar member name), disk_member_size (bytes in the archive), disk_format
    ('qcow2' or 'raw'), image_uuid, volume_uuid, compressed (gzip),
    engine_version (the engine version of the OVF's ProductSection as text, e.g. '4.5.6',
    or 'unknown' when the OVF has none) and engine_version_tuple ((4, 5, 6) or None).
    """

    def __init__(self, path):
        self.path = path
        self.ovf_member = None
        self.ovf_xml = None
        self.vm_uuid = None
        self.vm_name = None
        self.vcpus = None
        self.memory_mb = None
        self.disk_size_bytes = None
        self.disk_actual_size = None
        self.disk_member = None
        self.disk_member_size = None
        self.disk_format = None
        self.image_uuid = None
        self.volume_uuid = None
        self.compressed = False
        self.engine_version = UNKNOWN_VERSION
        self.engine_version_tuple = None
        self._disk_offset = None
        self._disk_sparse = False

    def __repr__(self):
        return ('Appliance(%r, vcpus=%s, memory_mb=%s, disk=%s %s)'
                % (self.path, self.vcpus, self.memory_mb, _human(self.disk_size_bytes or 0),
                   self.disk_format))

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, path):
        """Validate the OVA at path and read its OVF; return an Appliance."""
        if not path or not os.path.exists(path):
            raise ApplianceError('the appliance OVA %s does not exist: give the path of an '
                                 'oVirt engine appliance OVA' % (path or '(empty path)'))
        if os.path.isdir(path):
            raise ApplianceError('the appliance OVA %s is a directory: give the path of an '
                                 'oVirt engine appliance OVA file' % path)
        app = cls(path)
        try:
            with open(path, 'rb') as f:
                app.compressed = f.read(2) == b'\x1f\x8b'
        except OSError as e:
            raise ApplianceError('cannot read the appliance OVA %s (%s): check its permissions'
                                 % (path, e.strerror or e))
        try:
            with tarfile.open(path, 'r:*') as tar:
                members = tar.getmembers()
                app._read_members(tar, members)
        except ApplianceError:
            raise
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise ApplianceError('the appliance OVA %s is not a tar archive (plain or gzip) '
                                 'or is truncated (%s): give an oVirt engine appliance OVA'
                                 % (path, str(e).splitlines()[0].rstrip(': ') or
                                    type(e).__name__))
        return app

    def _read_members(self, tar, members):
        ovfs = [m for m in members if m.isfile() and m.name.lower().endswith('.ovf')]
        if not ovfs:
            raise ApplianceError('the appliance OVA %s holds no .ovf file: an oVirt appliance '
                                 'has master/vms/<uuid>/<uuid>.ovf' % self.path)
        if len(ovfs) > 1:
            raise ApplianceError('the appliance OVA %s holds %d .ovf files (%s): an appliance '
                                 'holds exactly one VM' % (
                                     self.path, len(ovfs), ', '.join(m.name for m in ovfs[:3])))
        self.ovf_member = ovfs[0].name
        data = tar.extractfile(ovfs[0]).read()
        try:
            self.ovf_xml = data.decode('utf-8')
        except UnicodeDecodeError:
            raise ApplianceError('the OVF %s in %s is not UTF-8 text: the appliance is damaged'
                                 % (self.ovf_member, self.path))
        self._parse_ovf(self.ovf_xml)
        by_name = {m.name.lstrip('./'): m for m in members}
        disk = by_name.get(self.disk_member)
        if disk is None or not disk.isfile():
            raise ApplianceError('the appliance OVA %s lacks the disk %s named by its OVF: the '
                                 'archive is incomplete, download it again'
                                 % (self.path, self.disk_member))
        self.disk_member = disk.name
        self.disk_member_size = disk.size
        self._disk_offset = disk.offset_data
        self._disk_sparse = disk.issparse()

    def _parse_ovf(self, text):
        where = '%s in %s' % (self.ovf_member, self.path)

        def bad(element, problem):
            raise ApplianceError('malformed OVF %s: %s %s; the appliance is damaged or not an '
                                 'oVirt appliance' % (where, element, problem))

        try:
            root = ET.fromstring(text)
        except ET.ParseError as e:
            raise ApplianceError('malformed OVF %s: not XML (%s); the appliance is damaged'
                                 % (where, e))
        if root.tag.rpartition('}')[2] != 'Envelope':
            bad('root <%s>' % root.tag.rpartition('}')[2], 'is not <Envelope>')

        def local(el):
            return el.tag.rpartition('}')[2]

        def attr(el, name):
            for k, v in el.attrib.items():
                if k.rpartition('}')[2] == name:
                    return v
            return None

        # References/File: href -> size
        files = {}
        for el in root.iter():
            if local(el) == 'File' and attr(el, 'href'):
                files[attr(el, 'href')] = attr(el, 'size')
        disks = [el for el in root.iter() if local(el) == 'Disk']
        if not disks:
            bad('Section/Disk', 'is missing')
        if len(disks) > 1:
            bad('Section/Disk', 'appears %d times (an appliance has one disk)' % len(disks))
        disk = disks[0]
        file_ref = attr(disk, 'fileRef')
        if not file_ref:
            if len(files) == 1:
                file_ref = next(iter(files))
            else:
                bad('Disk ovf:fileRef', 'is missing')
        file_ref = file_ref.strip().lstrip('/')
        parts = file_ref.split('/')
        if len(parts) == 2 and all(parts):
            self.image_uuid, self.volume_uuid = parts
        elif len(parts) == 1 and parts[0]:
            self.volume_uuid = parts[0]
        else:
            bad('Disk ovf:fileRef', '%r is not <image uuid>/<volume uuid>' % file_ref)
        self.disk_member = 'images/' + file_ref
        size = attr(disk, 'size')
        try:
            gib = float(size)
            if gib <= 0:
                raise ValueError
        except (TypeError, ValueError):
            bad('Disk ovf:size', '%r is not a size in GiB' % size)
        self.disk_size_bytes = int(math.ceil(gib * GiB))
        actual = attr(disk, 'actual_size')
        if actual not in (None, ''):
            try:
                self.disk_actual_size = int(math.ceil(float(actual) * GiB))
            except ValueError:
                bad('Disk ovf:actual_size', '%r is not a size in GiB' % actual)
        vol_format = (attr(disk, 'volume-format') or '').strip().upper()
        fmt = (attr(disk, 'format') or '').strip()
        if vol_format == 'COW':
            self.disk_format = 'qcow2'
        elif vol_format == 'RAW':
            self.disk_format = 'raw'
        elif 'qcow' in fmt.lower() or fmt == VMDK_SPARSE:
            self.disk_format = 'qcow2'
        elif fmt.upper() == 'RAW':
            self.disk_format = 'raw'
        else:
            bad('Disk ovf:format', '%r is neither a qcow2 URI nor RAW' % (fmt or None))
        # VirtualHardwareSection items
        items = [el for el in root.iter() if local(el) == 'Item']

        def rasd(item, name):
            for child in item:
                if local(child) == name:
                    return (child.text or '').strip()
            return None

        cpu = [i for i in items if rasd(i, 'ResourceType') == RESOURCE_CPU]
        mem = [i for i in items if rasd(i, 'ResourceType') == RESOURCE_MEMORY]
        if not cpu:
            bad('VirtualHardwareSection Item (rasd:ResourceType 3, CPU)', 'is missing')
        if not mem:
            bad('VirtualHardwareSection Item (rasd:ResourceType 4, memory)', 'is missing')
        counts = []
        for name in ('num_of_sockets', 'cpu_per_socket', 'threads_per_cpu'):
            value = rasd(cpu[0], name)
            if value is None and name == 'threads_per_cpu':
                value = '1'
            if value is None:
                bad('CPU Item rasd:%s' % name, 'is missing')
            try:
                counts.append(int(value))
                if counts[-1] < 1:
                    raise ValueError
            except ValueError:
                bad('CPU Item rasd:%s' % name, '%r is not a positive number' % value)
        self.vcpus = counts[0] * counts[1] * counts[2]
        unit = rasd(mem[0], 'AllocationUnits')
        if unit not in (None, '', 'MegaBytes', 'MB', 'byte * 2^20'):
            bad('memory Item rasd:AllocationUnits', '%r is not MegaBytes' % unit)
        quantity = rasd(mem[0], 'VirtualQuantity')
        try:
            self.memory_mb = int(quantity)
            if self.memory_mb < 1:
                raise ValueError
        except (TypeError, ValueError):
            bad('memory Item rasd:VirtualQuantity', '%r is not a size in MB' % quantity)
        if not [i for i in items if rasd(i, 'ResourceType') == RESOURCE_DISK]:
            bad('VirtualHardwareSection Item (rasd:ResourceType 17, disk)', 'is missing')
        # the VM: Content ovf:id when it is a UUID, else the directory of the .ovf
        content = [el for el in root.iter() if local(el) == 'Content']
        cid = attr(content[0], 'id') if content else None
        base = os.path.splitext(os.path.basename(self.ovf_member))[0]
        self.vm_uuid = cid if cid and _UUID_RE.match(cid) else (
            base if _UUID_RE.match(base) else None)
        if content:
            for child in content[0]:
                if local(child) == 'Name' and child.text:
                    self.vm_name = child.text.strip()
        self._parse_product(root, local, attr, bad)

    def _parse_product(self, root, local, attr, bad):
        """The engine version from a ProductSection (the one whose Product names the engine
        first), else 'unknown'."""
        sections = []
        for el in root.iter():
            if local(el) == 'Section' and \
                    (attr(el, 'type') or '').rpartition(':')[2] == 'ProductSection_Type':
                fields = {local(child): (child.text or '').strip() for child in el}
                sections.append(fields)
        sections.sort(key=lambda f: 'engine' not in f.get('Product', '').lower())
        for fields in sections:
            text = fields.get('Version')
            if not text:
                continue
            version = parse_version(text)
            if version is None:
                bad('ProductSection Version', '%r is not an engine version such as 4.5.6'
                    % text)
            self.engine_version = text
            self.engine_version_tuple = version
            return

    # ------------------------------------------------------------ the disk

    def _streamable(self):
        """True when qemu-img can read the disk in place (plain tar, regular member)."""
        return not self.compressed and not self._disk_sparse and self._disk_offset is not None

    def _source_spec(self):
        """A qemu json: filename reading the disk member inside the plain tar."""
        inner = {'driver': 'raw', 'offset': self._disk_offset, 'size': self.disk_member_size,
                 'file': {'driver': 'file', 'filename': os.path.abspath(self.path)}}
        if self.disk_format == 'raw':
            spec = inner
        else:
            spec = {'driver': self.disk_format, 'file': inner}
        return 'json:' + json.dumps(spec)

    def extract_disk(self, tmpdir, progress=None):
        """Stream the disk out of the archive into a new file under tmpdir; return its path.

        Checks first that tmpdir has room for it. progress(done, total, elapsed) is
        called as the bytes arrive. Zero blocks are skipped (the file is sparse).
        """
        try:
            st = os.statvfs(tmpdir)
        except OSError as e:
            raise ApplianceError('cannot use the temporary directory %s (%s): give an '
                                 'existing writable directory' % (tmpdir, e.strerror or e))
        free = st.f_bavail * st.f_frsize
        need = self.disk_member_size
        if free < need:
            raise ApplianceError('not enough free space in %s to extract the appliance disk: '
                                 '%s needed, %s free; free space there or use another '
                                 'temporary directory' % (tmpdir, _human(need), _human(free)))
        fd, dest = tempfile.mkstemp(prefix='appliance-disk-', suffix='.' + self.disk_format,
                                    dir=tmpdir)
        start = time.monotonic()
        done = 0
        block = 4 * MiB
        zero = bytes(block)
        try:
            with os.fdopen(fd, 'wb') as out, tarfile.open(self.path, 'r:*') as tar:
                src = tar.extractfile(self.disk_member)
                while True:
                    chunk = src.read(block)
                    if not chunk:
                        break
                    if chunk == zero[:len(chunk)]:
                        out.seek(len(chunk), io.SEEK_CUR)
                    else:
                        out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, need, time.monotonic() - start)
                out.truncate(done)
            if done != need:
                raise ApplianceError('the appliance disk %s in %s is truncated (%d of %d '
                                     'bytes): download the appliance again'
                                     % (self.disk_member, self.path, done, need))
        except ApplianceError:
            _unlink(dest)
            raise
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            _unlink(dest)
            if isinstance(e, OSError) and e.errno is not None and e.filename is None and \
                    e.strerror:
                reason = e.strerror
            else:
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ApplianceError('extracting the appliance disk from %s into %s failed (%s): '
                                 'check the archive and the free space there'
                                 % (self.path, tmpdir, reason))
        return dest

    def image_info(self):
        """qemu-img info (a dict) of the disk, read in place (plain tar only)."""
        if not self._streamable():
            raise ApplianceError('the disk of the compressed appliance %s cannot be read in '
                                 'place: extract it first (extract_disk)' % self.path)
        return self._info(self._source_spec(), None)

    def copy_to_volume(self, volume_path, volume_size=None, volume_format=None, tmpdir=None,
                       progress=None):
        """Convert the appliance disk into the VM volume with qemu-img convert.

        volume_path: the existing volume (created by the host agent).
        volume_size: its size in bytes (default: its virtual size by qemu-img info).
        volume_format: 'raw' or 'qcow2' (default: detected).
        tmpdir: where a gzip OVA's disk is extracted first (default /var/tmp);
          a plain tar is read in place.
        progress(done_bytes, total_bytes, elapsed_seconds): the conversion, in bytes of
          the disk's virtual size; for a gzip OVA the extraction comes first, reported
          in bytes of the archived disk file.
        """
        if not os.path.exists(volume_path):
            raise ApplianceError('the VM volume %s does not exist: create the VM disk first'
                                 % volume_path)
        if volume_size is None or volume_format is None:
            info = _qemu_img_info(volume_path)
            if volume_size is None:
                volume_size = int(info['virtual-size'])
            if volume_format is None:
                volume_format = info['format']
        if volume_format not in ('raw', 'qcow2'):
            raise ApplianceError('the VM volume %s is %s: only raw and qcow2 volumes are '
                                 'supported' % (volume_path, volume_format))
        check_disk_size(volume_size, self.disk_size_bytes)
        extracted = None
        try:
            if self._streamable():
                source, src_fmt = self._source_spec(), None
                info = self._info(source, None)
            else:
                extracted = self.extract_disk(tmpdir or '/var/tmp', progress=progress)
                source, src_fmt = extracted, self.disk_format
                info = self._info(source, src_fmt)
            virtual = int(info['virtual-size'])
            check_disk_size(volume_size, virtual)
            self._convert(source, src_fmt, volume_path, volume_format, virtual, progress)
        finally:
            if extracted:
                _unlink(extracted)
        return volume_path

    def _info(self, source, fmt):
        argv = ['qemu-img', 'info', '--output=json'] + (['-f', fmt] if fmt else []) + [source]
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode != 0:
            raise ApplianceError('the appliance disk %s is not a valid %s image (%s): the '
                                 'appliance is damaged' % (self.disk_member, self.disk_format,
                                                           _stderr_tail(p.stderr)))
        return json.loads(p.stdout)

    def _convert(self, source, src_fmt, dest, dest_fmt, total, progress):
        base = ['qemu-img', 'convert', '-p', '-n']
        if src_fmt:
            base += ['-f', src_fmt]
        tail = ['-O', dest_fmt, source, dest]
        err = self._run_convert(base + ['-t', 'none'] + tail, total, progress)
        if err is not None and ('O_DIRECT' in err or 'cache' in err.lower()
                                or 'Invalid argument' in err):
            # the destination's file system lacks O_DIRECT (tmpfs): copy through the page cache
            err = self._run_convert(base + tail, total, progress)
        if err is not None:
            raise ApplianceError('copying the appliance disk into the VM volume %s failed: %s'
                                 % (dest, err))

    @staticmethod
    def _run_convert(argv, total, progress):
        start = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        buf = b''
        last = -1.0
        while True:
            chunk = p.stdout.read1(4096) if hasattr(p.stdout, 'read1') else p.stdout.read(4096)
            if not chunk:
                break
            buf = (buf + chunk)[-256:]
            found = _PROGRESS_RE.findall(buf)
            if found and progress:
                pct = float(found[-1])
                if pct != last:
                    last = pct
                    progress(int(total * pct / 100), total, time.monotonic() - start)
        stderr = p.stderr.read().decode('utf-8', 'replace')
        rc = p.wait()
        if rc != 0:
            return _stderr_tail(stderr)
        if progress and last < 100:
            progress(total, total, time.monotonic() - start)
        return None


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def check_disk_size(volume_size, appliance_size):
    """Refuse a VM volume smaller than the appliance disk's virtual size."""
    if int(volume_size) < int(appliance_size):
        raise ApplianceError('disk smaller than the appliance: at least %d GiB'
                             % _gib(appliance_size))


# ---------------------------------------------------------------- building OVAs

def make_ovf(vm_uuid, image_uuid, volume_uuid, vcpus, memory_mb, disk_virtual_size,
             disk_actual_size, disk_format, name='HostedEngine', description=None,
             engine_version=None):
    """The OVF (text) of an appliance VM in oVirt's dialect.

    disk_virtual_size and disk_actual_size are bytes (written as GiB, rounded up:
    ovf:size, ovf:actual_size); disk_format is 'qcow2' or 'raw'. engine_version (text
    such as '4.5.6' or a tuple of ints) is written in a ProductSection of the VM; without
    it the appliance's engine version reads as 'unknown'.
    """
    if disk_format not in ('qcow2', 'raw'):
        raise ValueError('disk_format must be qcow2 or raw, not %r' % (disk_format,))
    for what, value in (('vm_uuid', vm_uuid), ('image_uuid', image_uuid),
                        ('volume_uuid', volume_uuid)):
        if not _UUID_RE.match(str(value)):
            raise ValueError('%s %r is not a UUID' % (what, value))
    vcpus = int(vcpus)
    if vcpus < 1 or int(memory_mb) < 1:
        raise ValueError('vcpus and memory_mb must be positive')
    if engine_version is not None:
        if parse_version(engine_version) is None:
            raise ValueError('engine_version %r is not an engine version such as 4.5.6'
                             % (engine_version,))
        if not isinstance(engine_version, str):
            engine_version = version_text(engine_version)
    ET.register_namespace('ovf', NS_OVF)
    ET.register_namespace('rasd', NS_RASD)
    ET.register_namespace('vssd', NS_VSSD)
    ET.register_namespace('xsi', NS_XSI)
    xsi_type = '{%s}type' % NS_XSI
    ref = '%s/%s' % (image_uuid, volume_uuid)
    env = ET.Element(_o('Envelope'), {_o('version'): '4.4.0.0'})
    refs = ET.SubElement(env, 'References')
    ET.SubElement(refs, 'File', {_o('href'): ref, _o('id'): str(volume_uuid),
                                 _o('size'): str(int(disk_actual_size)),
                                 _o('description'): name})
    sec = ET.SubElement(env, 'Section', {xsi_type: 'ovf:DiskSection_Type'})
    ET.SubElement(sec, 'Info').text = 'List of Virtual Disks'
    ET.SubElement(sec, 'Disk', {
        _o('diskId'): str(volume_uuid),
        _o('size'): str(_gib(disk_virtual_size)),
        _o('actual_size'): str(max(1, _gib(disk_actual_size))),
        _o('fileRef'): ref,
        _o('parentRef'): '',
        _o('format'): FORMAT_QCOW2 if disk_format == 'qcow2' else FORMAT_RAW,
        _o('volume-format'): 'COW' if disk_format == 'qcow2' else 'RAW',
        _o('volume-type'): 'Sparse',
        _o('disk-interface'): 'VirtIO',
        _o('boot'): 'true',
        _o('disk-alias'): '%s_Disk1' % name,
    })
    content = ET.SubElement(env, 'Content', {_o('id'): str(vm_uuid),
                                             xsi_type: 'ovf:VirtualSystem_Type'})
    ET.SubElement(content, 'Name').text = name
    ET.SubElement(content, 'Description').text = description or name
    if engine_version is not None:
        product = ET.SubElement(content, 'Section', {xsi_type: 'ovf:ProductSection_Type'})
        ET.SubElement(product, 'Info').text = 'The engine the appliance holds'
        ET.SubElement(product, 'Product').text = APPLIANCE_PRODUCT
        ET.SubElement(product, 'Version').text = engine_version
    hw = ET.SubElement(content, 'Section', {xsi_type: 'ovf:VirtualHardwareSection_Type'})
    ET.SubElement(hw, 'Info').text = '%d CPU, %d Memory' % (vcpus, int(memory_mb))
    system = ET.SubElement(hw, 'System')
    ET.SubElement(system, '{%s}VirtualSystemType' % NS_VSSD).text = 'ENGINE 4.4.0.0'

    def item(fields):
        el = ET.SubElement(hw, 'Item')
        for k, v in fields:
            ET.SubElement(el, _r(k)).text = str(v)

    item([('Caption', '%d virtual cpu' % vcpus), ('Description', 'Number of virtual CPU'),
          ('InstanceId', 1), ('ResourceType', RESOURCE_CPU), ('num_of_sockets', vcpus),
          ('cpu_per_socket', 1), ('threads_per_cpu', 1)])
    item([('Caption', '%d MB of memory' % int(memory_mb)), ('Description', 'Memory Size'),
          ('InstanceId', 2), ('ResourceType', RESOURCE_MEMORY),
          ('AllocationUnits', 'MegaBytes'), ('VirtualQuantity', int(memory_mb))])
    item([('Caption', 'Drive 1'), ('InstanceId', volume_uuid), ('ResourceType', RESOURCE_DISK),
          ('HostResource', ref), ('Parent', constant('blankUUID'))])
    return ET.tostring(env, encoding='unicode', xml_declaration=True) + '\n'


def write_ova(path, ovf_xml, disk_path, vm_uuid=None, compress=False):
    """Write an OVA in oVirt's layout: master/vms/<vm>/<vm>.ovf and images/<fileRef>.

    The disk member's name comes from the OVF's Disk ovf:fileRef; vm_uuid (the
    directory of the .ovf) defaults to the OVF's Content ovf:id. compress=True
    writes a gzip tar (as oVirt ships it); the default plain tar can be read in
    place by qemu-img. The archive is written to a temporary name, then renamed.
    """
    root = ET.fromstring(ovf_xml)
    disk = root.find('.//Disk')
    ref = disk.get(_o('fileRef')) if disk is not None else None
    if not ref:
        raise ValueError('the OVF has no Disk ovf:fileRef')
    if vm_uuid is None:
        content = root.find('Content')
        vm_uuid = content.get(_o('id')) if content is not None else None
        if not vm_uuid or not _UUID_RE.match(vm_uuid):
            vm_uuid = str(uuidlib.uuid4())
    data = ovf_xml.encode('utf-8')
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=d)
    os.close(fd)
    try:
        with tarfile.open(tmp, 'w:gz' if compress else 'w', format=tarfile.GNU_FORMAT) as tar:
            mtime = int(time.time())
            for dname in ('master', 'master/vms', 'master/vms/%s' % vm_uuid, 'images',
                          'images/%s' % ref.split('/')[0]):
                info = tarfile.TarInfo(dname)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.mtime = mtime
                tar.addfile(info)
            info = tarfile.TarInfo('master/vms/%s/%s.ovf' % (vm_uuid, vm_uuid))
            info.size = len(data)
            info.mode = 0o644
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
            info = tar.gettarinfo(disk_path, arcname='images/%s' % ref)
            info.uid = info.gid = 0
            info.uname = info.gname = 'root'
            info.mode = 0o644
            with open(disk_path, 'rb') as f:
                tar.addfile(info, f)
        os.rename(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    return path


def build_ova(path, disk_path, vcpus, memory_mb, disk_format=None, vm_uuid=None,
              compress=False, name='HostedEngine', engine_version=None):
    """make_ovf + write_ova for an existing disk image; returns (path, ovf_xml)."""
    info = _qemu_img_info(disk_path)
    fmt = disk_format or info['format']
    vm_uuid = vm_uuid or str(uuidlib.uuid4())
    ovf = make_ovf(vm_uuid, str(uuidlib.uuid4()), str(uuidlib.uuid4()), vcpus, memory_mb,
                   int(info['virtual-size']), os.path.getsize(disk_path), fmt, name=name,
                   engine_version=engine_version)
    write_ova(path, ovf, disk_path, vm_uuid=vm_uuid, compress=compress)
    return path, ovf
