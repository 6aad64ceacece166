"""The appliance OVA: open, validate, extract and copy into a volume with real qemu-img."""
import gzip
import io
import os
import subprocess
import tarfile
import time
import uuid

import pytest

from ovirt_hosted_engine_setup.deploy import appliance
from ovirt_hosted_engine_setup.deploy.appliance import Appliance, ApplianceError, GiB, MiB

VM, IMG, VOL = (str(uuid.uuid4()) for _ in range(3))
PATTERN_AT = 5 * MiB


def _qemu_img(*args):
    subprocess.run(('qemu-img',) + args, check=True, capture_output=True)


@pytest.fixture(scope='module')
def disk(tmp_path_factory):
    """A 64 MiB qcow2 with a recognisable pattern written at 5 MiB."""
    d = tmp_path_factory.mktemp('disk')
    path = str(d / 'disk.qcow2')
    _qemu_img('create', '-q', '-f', 'qcow2', path, '64M')
    subprocess.run(['qemu-io', '-c', 'write -P 0x5a %d 1M' % PATTERN_AT, path], check=True,
                   capture_output=True)
    return path


def _ovf(fmt='qcow2', vcpus=2, memory_mb=4096, virtual=64 * MiB, actual=3 * MiB):
    return appliance.make_ovf(VM, IMG, VOL, vcpus, memory_mb, virtual, actual, fmt)


@pytest.fixture(scope='module')
def ova(disk, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ova') / 'appliance.ova')
    appliance.write_ova(path, _ovf(), disk)
    return path


def _raw_volume(path, size):
    with open(path, 'wb') as f:
        f.truncate(size)
    return str(path)


def _pattern_ok(volume, fmt='raw'):
    with open(volume, 'rb') as f:
        if fmt == 'raw':
            f.seek(PATTERN_AT)
            data = f.read(MiB)
            return data == b'\x5a' * MiB
    raise AssertionError('raw only')


def test_layout_and_attributes(ova):
    with tarfile.open(ova) as tar:
        names = tar.getnames()
    assert 'master/vms/%s/%s.ovf' % (VM, VM) in names
    assert 'images/%s/%s' % (IMG, VOL) in names
    app = Appliance.open(ova)
    assert (app.vcpus, app.memory_mb) == (2, 4096)
    assert app.disk_size_bytes == 1 * GiB          # ovf:size is whole GiB
    assert app.disk_format == 'qcow2'
    assert app.disk_member == 'images/%s/%s' % (IMG, VOL)
    assert (app.vm_uuid, app.image_uuid, app.volume_uuid) == (VM, IMG, VOL)
    assert app.image_info()['virtual-size'] == 64 * MiB


def test_copy_plain_tar_in_place_with_progress(ova, disk, tmp_path):
    vol = _raw_volume(tmp_path / 'vol', 1 * GiB)
    seen = []
    Appliance.open(ova).copy_to_volume(vol, progress=lambda d, t, e: seen.append((d, t, e)))
    assert _pattern_ok(vol)
    assert seen and seen[-1][0] == seen[-1][1] == 64 * MiB
    assert all(e >= 0 for _, _, e in seen)
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert os.path.getsize(vol) == 1 * GiB          # the volume keeps its size
    # same guest-visible content (the volume's extra space reads as zeros)
    r = subprocess.run(['qemu-img', 'compare', '-q', '-f', 'raw', '-F', 'qcow2', vol, disk])
    assert r.returncode == 0


def test_copy_gzip_ova_extracts_first(disk, tmp_path):
    path = str(tmp_path / 'appliance.ova')
    appliance.write_ova(path, _ovf(), disk, compress=True)
    with open(path, 'rb') as f:
        assert f.read(2) == b'\x1f\x8b'
    app = Appliance.open(path)
    assert app.compressed and app.vcpus == 2
    vol = _raw_volume(tmp_path / 'vol', 1 * GiB)
    work = tmp_path / 'work'
    work.mkdir()
    seen = []
    app.copy_to_volume(vol, tmpdir=str(work), progress=lambda *a: seen.append(a))
    assert _pattern_ok(vol)
    assert seen[-1][0] == seen[-1][1] == 64 * MiB
    assert os.listdir(work) == []                    # the extracted copy is removed


def test_copy_into_qcow2_volume(ova, tmp_path):
    vol = str(tmp_path / 'vol.qcow2')
    _qemu_img('create', '-q', '-f', 'qcow2', vol, '1G')
    Appliance.open(ova).copy_to_volume(vol)
    raw = str(tmp_path / 'back.raw')
    _qemu_img('convert', '-O', 'raw', vol, raw)
    assert _pattern_ok(raw)


def test_raw_disk_appliance(tmp_path):
    raw = str(tmp_path / 'disk.raw')
    _qemu_img('create', '-q', '-f', 'raw', raw, '16M')
    with open(raw, 'r+b') as f:
        f.seek(PATTERN_AT)
        f.write(b'\x5a' * MiB)
    path = str(tmp_path / 'raw.ova')
    appliance.write_ova(path, _ovf('raw', virtual=16 * MiB, actual=16 * MiB), raw)
    app = Appliance.open(path)
    assert app.disk_format == 'raw'
    vol = _raw_volume(tmp_path / 'vol', 1 * GiB)
    app.copy_to_volume(vol)
    assert _pattern_ok(vol)


def test_extract_disk_is_the_disk(ova, disk, tmp_path):
    seen = []
    out = Appliance.open(ova).extract_disk(str(tmp_path), progress=lambda *a: seen.append(a))
    with open(out, 'rb') as a, open(disk, 'rb') as b:
        assert a.read() == b.read()
    assert seen[-1][0] == seen[-1][1] == os.path.getsize(disk)


def test_build_ova_helper(disk, tmp_path):
    path, ovf = appliance.build_ova(str(tmp_path / 'b.ova'), disk, vcpus=4, memory_mb=8192)
    app = Appliance.open(path)
    assert (app.vcpus, app.memory_mb, app.disk_format) == (4, 8192, 'qcow2')
    assert app.ovf_xml == ovf


def test_dot_slash_member_names(disk, tmp_path):
    """An archive made with `tar -C dir -cf x.ova .` has ./-prefixed names."""
    path = str(tmp_path / 'dot.ova')
    with tarfile.open(path, 'w') as tar:
        data = _ovf().encode()
        info = tarfile.TarInfo('./master/vms/%s/%s.ovf' % (VM, VM))
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(disk, arcname='./images/%s/%s' % (IMG, VOL))
    app = Appliance.open(path)
    assert app.disk_member == './images/%s/%s' % (IMG, VOL)
    vol = _raw_volume(tmp_path / 'vol', 1 * GiB)
    app.copy_to_volume(vol)
    assert _pattern_ok(vol)


# ------------------------------------------------------------------ bad input

def _one_line(exc):
    text = str(exc.value)
    assert '\n' not in text and text
    return text


def test_missing(tmp_path):
    with pytest.raises(ApplianceError) as e:
        Appliance.open(str(tmp_path / 'nope.ova'))
    assert _one_line(e) == ('the appliance OVA %s does not exist: give the path of an oVirt '
                            'engine appliance OVA' % (tmp_path / 'nope.ova'))


def test_not_a_tar(tmp_path):
    p = tmp_path / 'x.ova'
    p.write_bytes(b'this is not an archive\n' * 100)
    with pytest.raises(ApplianceError) as e:
        Appliance.open(str(p))
    assert 'is not a tar archive' in _one_line(e)


def test_gzip_but_not_a_tar(tmp_path):
    p = tmp_path / 'x.ova'
    p.write_bytes(gzip.compress(b'hello world\n' * 100))
    with pytest.raises(ApplianceError) as e:
        Appliance.open(str(p))
    assert 'is not a tar archive' in _one_line(e)


def _tar(path, members):
    with tarfile.open(path, 'w') as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_no_ovf(tmp_path):
    p = _tar(tmp_path / 'x.ova', [('images/a/b', b'x' * 1024)])
    with pytest.raises(ApplianceError) as e:
        Appliance.open(p)
    assert 'holds no .ovf file' in _one_line(e)


def test_two_ovfs(tmp_path):
    ovf = _ovf().encode()
    p = _tar(tmp_path / 'x.ova', [('master/vms/a/a.ovf', ovf), ('master/vms/b/b.ovf', ovf),
                                  ('images/%s/%s' % (IMG, VOL), b'x')])
    with pytest.raises(ApplianceError) as e:
        Appliance.open(p)
    assert 'holds 2 .ovf files' in _one_line(e)


def test_disk_missing(tmp_path):
    p = _tar(tmp_path / 'x.ova', [('master/vms/a/a.ovf', _ovf().encode())])
    with pytest.raises(ApplianceError) as e:
        Appliance.open(p)
    assert 'lacks the disk images/%s/%s' % (IMG, VOL) in _one_line(e)


@pytest.mark.parametrize('mutate,element', [
    (lambda s: s.replace('<Item>', '<Item', 1), 'not XML'),
    (lambda s: s.replace('ovf:Envelope', 'ovf:Nothing'), 'is not <Envelope>'),
    (lambda s: s.replace('ovf:size="1"', 'ovf:size="big"'), 'Disk ovf:size'),
    (lambda s: s.replace('ovf:volume-format="COW"', '').replace(
        appliance.FORMAT_QCOW2, 'vhdx'), 'Disk ovf:format'),
    (lambda s: s.replace('<rasd:ResourceType>3<', '<rasd:ResourceType>99<'),
     'rasd:ResourceType 3, CPU'),
    (lambda s: s.replace('<rasd:ResourceType>4<', '<rasd:ResourceType>99<'),
     'rasd:ResourceType 4, memory'),
    (lambda s: s.replace('<rasd:ResourceType>17<', '<rasd:ResourceType>99<'),
     'rasd:ResourceType 17, disk'),
    (lambda s: s.replace('<rasd:cpu_per_socket>1<', '<rasd:cpu_per_socket>zero<'),
     'rasd:cpu_per_socket'),
    (lambda s: s.replace('<rasd:VirtualQuantity>4096<', '<rasd:VirtualQuantity>lots<'),
     'rasd:VirtualQuantity'),
    (lambda s: s.replace('<rasd:AllocationUnits>MegaBytes<', '<rasd:AllocationUnits>KB<'),
     'rasd:AllocationUnits'),
])
def test_malformed_ovf_names_the_element(tmp_path, mutate, element):
    ovf = mutate(_ovf())
    p = _tar(tmp_path / 'x.ova', [('master/vms/%s/%s.ovf' % (VM, VM), ovf.encode()),
                                  ('images/%s/%s' % (IMG, VOL), b'x' * 512)])
    with pytest.raises(ApplianceError) as e:
        Appliance.open(p)
    text = _one_line(e)
    assert text.startswith('malformed OVF master/vms/%s/%s.ovf in ' % (VM, VM))
    assert element in text


def test_volume_smaller_than_appliance(ova, tmp_path):
    vol = _raw_volume(tmp_path / 'vol', 512 * MiB)
    with pytest.raises(ApplianceError) as e:
        Appliance.open(ova).copy_to_volume(vol)
    assert _one_line(e) == 'disk smaller than the appliance: at least 1 GiB'


def test_volume_missing(ova, tmp_path):
    with pytest.raises(ApplianceError) as e:
        Appliance.open(ova).copy_to_volume(str(tmp_path / 'none'))
    assert 'does not exist' in _one_line(e)


def test_disk_that_fails_to_convert(tmp_path):
    """The OVF says qcow2 but the member is garbage: qemu-img's last stderr line is shown."""
    p = _tar(tmp_path / 'x.ova', [('master/vms/%s/%s.ovf' % (VM, VM), _ovf().encode()),
                                  ('images/%s/%s' % (IMG, VOL), os.urandom(256 * 1024))])
    app = Appliance.open(p)
    vol = _raw_volume(tmp_path / 'vol', 1 * GiB)
    with pytest.raises(ApplianceError) as e:
        app.copy_to_volume(vol)
    text = _one_line(e)
    assert text.startswith('the appliance disk images/%s/%s is not a valid qcow2 image ('
                           % (IMG, VOL))
    assert 'qcow' in text.lower() or 'image' in text.lower()


def test_convert_failure_reports_qemu_img_stderr(ova, tmp_path):
    """qemu-img convert itself fails (the volume is said to be qcow2 but is raw):
    the message is one line with qemu-img's last stderr line."""
    vol = _raw_volume(tmp_path / 'vol', 1 * GiB)
    with pytest.raises(ApplianceError) as e:
        Appliance.open(ova).copy_to_volume(vol, volume_size=GiB, volume_format='qcow2')
    text = _one_line(e)
    assert text.startswith('copying the appliance disk into the VM volume %s failed: ' % vol)
    assert 'qcow2' in text.split('failed: ', 1)[1].lower()


def test_truncated_gzip(disk, tmp_path):
    path = str(tmp_path / 'a.ova')
    appliance.write_ova(path, _ovf(), disk, compress=True)
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(ApplianceError) as e:
        app = Appliance.open(path)
        app.copy_to_volume(_raw_volume(tmp_path / 'vol', GiB), tmpdir=str(tmp_path))
    assert _one_line(e)


def test_not_enough_space_for_extraction(ova, tmp_path, monkeypatch):
    real = os.statvfs

    class Small:
        def __init__(self, st):
            self.f_frsize = st.f_frsize
            self.f_bavail = 1
    monkeypatch.setattr(appliance.os, 'statvfs', lambda p: Small(real(p)))
    with pytest.raises(ApplianceError) as e:
        Appliance.open(ova).extract_disk(str(tmp_path))
    text = _one_line(e)
    assert text.startswith('not enough free space in %s to extract the appliance disk: ' %
                           tmp_path)
    assert 'needed' in text


# ------------------------------------------------------------------ a real guest

def test_copied_appliance_boots(tmp_path):
    """An OVA made from the lab guest's bootable disk (as qcow2), copied into a raw volume,
    boots under QEMU from that volume and reports on the hosted-engine setup channel."""
    from ovirt_hosted_engine_setup.lab import images
    try:
        img = images.guest_image()
    except images.ImageMissing as e:
        pytest.skip(str(e))
    qemu = '/usr/bin/qemu-system-x86_64'
    if not os.path.exists(qemu):
        pytest.skip('qemu-system-x86 is not installed (scripts/bootstrap installs it)')
    qcow = str(tmp_path / 'disk.qcow2')
    _qemu_img('convert', '-f', 'raw', '-O', 'qcow2', img.disk, qcow)
    ova, _ = appliance.build_ova(str(tmp_path / 'lab.ova'), qcow, vcpus=1, memory_mb=256)
    app = Appliance.open(ova)
    vol = _raw_volume(tmp_path / 'vol', 1 * GiB)
    app.copy_to_volume(vol)
    channel = tmp_path / 'channel'
    console = tmp_path / 'console'
    argv = [qemu, '-machine', 'pc,accel=tcg', '-m', '256', '-nodefaults', '-display', 'none',
            '-no-user-config', '-serial', 'file:%s' % console,
            '-drive', 'file=%s,format=raw,if=virtio,cache=none' % vol,
            '-chardev', 'file,id=he,path=%s' % channel,
            '-device', 'virtio-serial', '-device',
            'virtserialport,chardev=he,name=org.ovirt.hosted-engine-setup.0']
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if channel.exists() and b'lab-guest: up' in channel.read_bytes():
                break
            if proc.poll() is not None:
                raise AssertionError('qemu exited: %s' % proc.stderr.read().decode()[-500:])
            time.sleep(0.5)
        else:
            tail = console.read_bytes()[-800:].decode('utf-8', 'replace') \
                if console.exists() else ''
            raise AssertionError('the guest did not report in 120 s; console: %s' % tail)
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- the engine version

def _product_sections(ovf_xml):
    root = appliance.ET.fromstring(ovf_xml)
    xsi_type = '{%s}type' % appliance.NS_XSI
    return [s for s in root.iter('Section') if s.get(xsi_type) == 'ovf:ProductSection_Type']


def test_engine_version_written_in_a_product_section_and_read_back(disk, tmp_path):
    ovf = appliance.make_ovf(VM, IMG, VOL, 2, 4096, 64 * MiB, 3 * MiB, 'qcow2',
                             engine_version='4.5.6')
    sections = _product_sections(ovf)
    assert len(sections) == 1
    assert sections[0].findtext('Product') == 'oVirt Engine Appliance'
    assert sections[0].findtext('Version') == '4.5.6'
    assert sections[0].findtext('Info')
    path = str(tmp_path / 'versioned.ova')
    appliance.write_ova(path, ovf, disk)
    app = Appliance.open(path)
    assert app.engine_version == '4.5.6' and app.engine_version_tuple == (4, 5, 6)


def test_engine_version_as_a_tuple(disk, tmp_path):
    path, ovf = appliance.build_ova(str(tmp_path / 'b.ova'), disk, vcpus=2, memory_mb=4096,
                                    engine_version=(4, 5, 7))
    assert _product_sections(ovf)[0].findtext('Version') == '4.5.7'
    assert Appliance.open(path).engine_version_tuple == (4, 5, 7)


def test_ova_without_product_section_reads_unknown(ova):
    assert not _product_sections(Appliance.open(ova).ovf_xml)
    app = Appliance.open(ova)
    assert app.engine_version == 'unknown' and app.engine_version_tuple is None


def test_product_section_of_another_product_first(disk, tmp_path):
    """Several ProductSections: the one whose Product names the engine gives the version."""
    ovf = appliance.make_ovf(VM, IMG, VOL, 2, 4096, 64 * MiB, 3 * MiB, 'qcow2',
                             engine_version='4.5.6')
    other = ('<Section xsi:type="ovf:ProductSection_Type"><Info>OS</Info>'
             '<Product>Debian</Product><Version>12</Version></Section>')
    ovf = ovf.replace('<Description>', other + '<Description>', 1)
    assert len(_product_sections(ovf)) == 2
    path = str(tmp_path / 'two.ova')
    appliance.write_ova(path, ovf, disk)
    assert Appliance.open(path).engine_version == '4.5.6'


def test_product_section_with_a_bad_version(disk, tmp_path):
    ovf = appliance.make_ovf(VM, IMG, VOL, 2, 4096, 64 * MiB, 3 * MiB, 'qcow2',
                             engine_version='4.5.6')
    path = str(tmp_path / 'bad.ova')
    appliance.write_ova(path, ovf.replace('<Version>4.5.6<', '<Version>latest<'), disk)
    with pytest.raises(ApplianceError) as e:
        Appliance.open(path)
    assert "ProductSection Version 'latest' is not an engine version" in str(e.value)


def test_make_ovf_refuses_a_bad_engine_version():
    with pytest.raises(ValueError, match='engine_version'):
        appliance.make_ovf(VM, IMG, VOL, 2, 4096, 64 * MiB, 3 * MiB, 'qcow2',
                           engine_version='latest')


def test_lab_appliance_ova_carries_the_lab_engine_version(tmp_path):
    from ovirt_hosted_engine_setup.lab import appliance as lab_appliance
    from ovirt_hosted_engine_setup.lab.engine import state
    disk = tmp_path / 'disk.qcow2'
    _qemu_img('create', '-q', '-f', 'qcow2', str(disk), '16M')
    out = str(tmp_path / 'lab.ova')
    lab_appliance.write_appliance_ova(str(disk), out, 'ab' * 20)
    app = Appliance.open(out)
    assert app.engine_version_tuple == state.ENGINE_VERSION
    assert app.engine_version == '.'.join(map(str, state.ENGINE_VERSION))


def test_backup_checked_against_the_appliance_engine_version(disk, tmp_path):
    from ovirt_hosted_engine_setup.deploy import restore_backup
    from .restore_helpers import make_backup
    path, _ = appliance.build_ova(str(tmp_path / 'v.ova'), disk, vcpus=2, memory_mb=4096,
                                  engine_version='4.5.6')
    app = Appliance.open(path)
    ok = restore_backup.check_archive(make_backup(tmp_path, version='4.5.6'),
                                      app.engine_version)
    assert ok.version_checked
    with pytest.raises(restore_backup.RestoreError, match='use an appliance with engine 4.6.0'):
        restore_backup.check_archive(make_backup(tmp_path, version='4.6.0', name='new.backup'),
                                     app.engine_version)
    unknown = Appliance.open(appliance.build_ova(str(tmp_path / 'u.ova'), disk, vcpus=2,
                                                 memory_mb=4096)[0])
    assert not restore_backup.check_archive(make_backup(tmp_path, version='4.6.0',
                                                        name='any.backup'),
                                            unknown.engine_version).version_checked
