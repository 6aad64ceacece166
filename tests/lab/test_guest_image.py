"""The guest image and the test VM definition (no lab needed)."""
import gzip
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from ovirt_hosted_engine_setup.lab import images


def test_image_files_exist():
    img = images.guest_image()
    assert os.path.getsize(img.kernel) > 1 << 20
    with open(img.disk, 'rb') as f:
        mbr = f.read(512)
    assert mbr[510:512] == b'\x55\xaa'
    assert mbr[446] == 0x80  # the partition is bootable


def test_initrd_carries_health_page_and_init():
    with open(images.guest_image().initrd, 'rb') as f:
        data = gzip.decompress(f.read())
    assert b'www/ovirt-engine/services/health' in data
    assert images.HEALTH_BODY.encode() in data
    assert b'etc/init.d/rcS' in data and b'virtio_net.ko' in data
    assert images.CHANNEL_NAME.encode() in data


def test_domain_xml_with_lease_channel_and_nic():
    xml = images.domain_xml('vm1', '11111111-2222-3333-4444-555555555555',
                            disk_path='/s/img/vol', bridge='ovirtmgmt',
                            mac='52:54:00:aa:bb:cc', channel_path='/run/ch.sock',
                            lease={'lockspace': 'sd-uuid', 'key': 'vol-uuid',
                                   'path': '/s/img/vol.lease', 'offset': 0},
                            ip=images.kernel_ip('192.168.222.200', 24, '192.168.222.1', 'engine'))
    root = ET.fromstring(xml)
    assert root.get('type') == 'qemu'
    assert root.findtext('name') == 'vm1'
    assert root.find('memory').text == '256' and root.find('memory').get('unit') == 'MiB'
    lease = root.find('devices/lease')
    assert lease.findtext('lockspace') == 'sd-uuid' and lease.findtext('key') == 'vol-uuid'
    assert lease.find('target').get('path') == '/s/img/vol.lease'
    assert root.find('devices/disk/source').get('file') == '/s/img/vol'
    assert root.find('devices/interface/source').get('bridge') == 'ovirtmgmt'
    assert root.find('devices/interface/mac').get('address') == '52:54:00:aa:bb:cc'
    ch = root.find('devices/channel')
    assert ch.find('target').get('name') == 'org.ovirt.hosted-engine-setup.0'
    assert ch.find('source').get('path') == '/run/ch.sock'
    entry = root.find('sysinfo/entry')
    assert entry.get('name') == images.FWCFG_IP
    assert entry.text == '192.168.222.200::192.168.222.1:255.255.255.0:engine:eth0:off'


def test_domain_xml_kernel_boot():
    xml = images.domain_xml('vm2', '11111111-2222-3333-4444-555555555556', boot='kernel',
                            ip=images.kernel_ip('10.0.0.5', 8))
    root = ET.fromstring(xml)
    assert root.findtext('os/kernel') == images.guest_image().kernel
    assert 'ip=10.0.0.5::' in root.findtext('os/cmdline')
    assert root.find('sysinfo') is None


def test_up_without_host_stack_says_run_bootstrap(tmp_path):
    env = dict(os.environ, OVIRT_HE_LAB_DIR=str(tmp_path / 'lab'),
               OVIRT_HE_LAB_CACHE=str(tmp_path / 'empty-cache'))
    r = subprocess.run([sys.executable, '-m', 'ovirt_hosted_engine_setup.lab.cli', 'up',
                        '--hosts', '1'], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'run scripts/bootstrap' in lines[0]
    assert not (tmp_path / 'lab' / 'state.json').exists()


def test_bootstrap_host_stack_is_idempotent_and_fast():
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([os.path.join(top, 'scripts', 'bootstrap-host-stack')],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'up to date' in r.stdout
