"""The engine VM's domain XML, vm.conf and the checks of the VM questions."""
import base64
import random
import uuid
import xml.etree.ElementTree as ET

import pytest

from ovirt_hosted_engine_setup.deploy import engine_vm as ev
from ovirt_hosted_engine_setup.deploy.engine_vm import EngineVMSpec, VMConfigError
from ovirt_hosted_engine_setup.he_storage import heconf

SD, IMG, VOL, VM = (str(uuid.uuid4()) for _ in range(4))
DISK = '/rhev/data-center/mnt/_var_lib_he/%s/images/%s/%s' % (SD, IMG, VOL)


def _spec(**kw):
    values = dict(vm_uuid=VM, memory_mb=4096, vcpus=2, max_vcpus=4, disk_path=DISK,
                  sd_uuid=SD, volume_uuid=VOL, image_uuid=IMG,
                  seed_iso='/var/tmp/he-seed.iso', bridge='ovirtmgmt',
                  mac='00:16:3e:11:22:33', channel_path='/run/he/%s.setup.sock' % VM,
                  guest_agent_path='/run/he/%s.ga.sock' % VM, domain_type='qemu')
    values.update(kw)
    return EngineVMSpec(**values)


def _root(**kw):
    return ET.fromstring(ev.domain_xml(_spec(**kw)))


def test_domain_basics():
    root = _root()
    assert root.get('type') == 'qemu'
    assert root.findtext('name') == 'HostedEngine'
    assert root.findtext('uuid') == VM
    assert root.find('memory').get('unit') == 'MiB' and root.findtext('memory') == '4096'
    vcpu = root.find('vcpu')
    assert (vcpu.text, vcpu.get('current')) == ('4', '2')
    assert root.find('cpu/topology').get('sockets') == '4'
    assert root.find('cpu').get('mode') is None          # TCG: QEMU's own CPU model
    assert root.find('os/type').get('machine') == 'pc'
    assert root.findtext('iothreads') == '1'


def test_cpu_choices():
    assert _root(domain_type='kvm').find('cpu').get('mode') == 'host-model'
    cpu = _root(domain_type='kvm', cpu_model='model_SandyBridge').find('cpu')
    assert cpu.get('mode') == 'custom' and cpu.findtext('model') == 'SandyBridge'
    assert _root(cpu_model='host-passthrough').find('cpu').get('mode') == 'host-passthrough'


def test_vm_disk_and_lease():
    root = _root()
    (disk,) = [d for d in root.findall('devices/disk') if d.get('device') == 'disk']
    assert disk.find('source').get('file') == DISK
    assert disk.find('target').attrib == {'dev': 'vda', 'bus': 'virtio'}
    drv = disk.find('driver')
    assert (drv.get('type'), drv.get('cache'), drv.get('iothread')) == ('raw', 'none', '1')
    assert disk.find('shareable') is None                 # exclusive
    assert disk.findtext('serial') == IMG
    lease = root.find('devices/lease')
    assert lease.findtext('lockspace') == SD and lease.findtext('key') == VOL
    assert lease.find('target').attrib == {'path': DISK + '.lease', 'offset': '0'}


def test_seed_cdrom_readonly_ide_or_sata():
    (cd,) = [d for d in _root().findall('devices/disk') if d.get('device') == 'cdrom']
    assert cd.find('source').get('file') == '/var/tmp/he-seed.iso'
    assert cd.find('readonly') is not None
    assert cd.find('target').get('bus') == 'ide'
    (cd,) = [d for d in _root(emulated_machine='q35').findall('devices/disk')
             if d.get('device') == 'cdrom']
    assert cd.find('target').get('bus') == 'sata'
    assert not [d for d in _root(seed_iso=None).findall('devices/disk')
                if d.get('device') == 'cdrom']


def test_nic_channels_console_graphics():
    root = _root()
    nic = root.find('devices/interface')
    assert nic.get('type') == 'bridge' and nic.find('source').get('bridge') == 'ovirtmgmt'
    assert nic.find('mac').get('address') == '00:16:3e:11:22:33'
    assert nic.find('model').get('type') == 'virtio'
    chans = {c.find('target').get('name'): c for c in root.findall('devices/channel')}
    assert chans['org.ovirt.hosted-engine-setup.0'].find('source').get('path') == \
        '/run/he/%s.setup.sock' % VM
    assert chans['org.qemu.guest_agent.0'].find('source').get('mode') == 'bind'
    assert root.find('devices/serial').get('type') == 'pty'
    assert root.find('devices/console').get('type') == 'pty'
    gr = root.find('devices/graphics')
    assert gr.get('type') == 'vnc' and gr.find('listen').get('address') == '0'
    # no usable password until VM.setTicket
    assert gr.get('passwdValidTo') == '1970-01-01T00:00:01'
    assert root.find('devices/rng').get('model') == 'virtio'
    assert root.find('devices/memballoon').get('model') == 'virtio'
    assert _root(console='spice').find('devices/graphics').get('type') == 'spice'


def test_escaping():
    root = _root(disk_path="/rhev/data-center/mnt/a&b'c/x", bridge='br<0>')
    (disk,) = [d for d in root.findall('devices/disk') if d.get('device') == 'disk']
    assert disk.find('source').get('file') == "/rhev/data-center/mnt/a&b'c/x"
    assert root.find('devices/interface/source').get('bridge') == 'br<0>'


def test_vm_conf():
    spec = _spec(cpu_model='model_SandyBridge')
    xml = ev.domain_xml(spec)
    conf = ev.vm_conf(spec, xml)
    assert conf['vmId'] == VM and conf['vmName'] == 'HostedEngine'
    assert (conf['memSize'], conf['smp'], conf['maxVCpus']) == ('4096', '2', '4')
    assert conf['cpuType'] == 'SandyBridge' and conf['emulatedMachine'] == 'pc'
    assert conf['display'] == 'vnc'
    assert base64.b64decode(conf['xmlBase64']).decode() == xml
    back = heconf.parse_vm_conf(heconf.render_vm_conf(conf))
    assert heconf.vm_xml(back) == xml


try:
    import libvirt
except ImportError:
    libvirt = None
needs_libvirt = pytest.mark.skipif(libvirt is None, reason='python3-libvirt is not installed '
                                   '(scripts/bootstrap installs it)')


@needs_libvirt
@pytest.mark.parametrize('kw', [{}, dict(domain_type='kvm'), dict(emulated_machine='q35'),
                                dict(console='spice', cpu_model='model_SandyBridge',
                                     domain_type='kvm', disk_format='qcow2')])
def test_libvirt_schema_accepts_it(kw):
    conn = libvirt.open('test:///default')
    try:
        dom = conn.defineXMLFlags(ev.domain_xml(_spec(**kw)), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        assert dom.UUIDString() == VM
        dom.undefine()
    finally:
        conn.close()


@needs_libvirt
def test_libvirt_schema_validation_is_active():
    bad = ev.domain_xml(_spec()).replace('<iothreads>1</iothreads>', '<iothreads>x</iothreads>')
    conn = libvirt.open('test:///default')
    try:
        with pytest.raises(libvirt.libvirtError):
            conn.defineXMLFlags(bad, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    finally:
        conn.close()


# ------------------------------------------------------------------ checks

def test_random_mac_in_ovirt_range():
    rng = random.Random(5)
    for _ in range(200):
        mac = ev.random_mac(rng)
        assert mac.startswith('00:16:3e:')
        assert int(mac.split(':')[3], 16) <= 0x7f
        assert ev.check_mac(mac) == mac


@pytest.mark.parametrize('mac,words', [
    ('00:16:3e:12:34', 'malformed'), ('00:16:3e:12:34:zz', 'malformed'), ('', 'malformed'),
    ('00163e123456', 'malformed'), ('01:00:5e:00:00:01', 'multicast'),
    ('ff:ff:ff:ff:ff:ff', 'multicast'), ('00:00:00:00:00:00', 'all zeros')])
def test_bad_macs(mac, words):
    with pytest.raises(VMConfigError) as e:
        ev.check_mac(mac)
    text = str(e.value)
    assert words in text and '\n' not in text
    if words == 'multicast':
        assert text.startswith('the MAC address %s is multicast; use a unicast address such '
                               'as 00:16:3e:' % mac)


def test_mac_normalised():
    assert ev.check_mac('00-16-3E-AA-BB-CC') == '00:16:3e:aa:bb:cc'


def test_domain_xml_refuses_a_multicast_mac():
    with pytest.raises(VMConfigError):
        ev.domain_xml(_spec(mac='03:00:00:00:00:01'))


def test_memory():
    assert ev.check_memory(4096, host_free_mb=8000) is None
    warning = ev.check_memory(2048, host_free_mb=8000)
    assert '2048 MB' in warning and '4096' in warning
    with pytest.raises(VMConfigError) as e:
        ev.check_memory(16384, host_free_mb=8000)
    assert str(e.value) == ('16384 MB of memory is more than the 8000 MB free on this host: '
                            'give at most 8000 MB or free memory on the host')
    for bad in ('lots', 0, -5, '4.5'):
        with pytest.raises(VMConfigError):
            ev.check_memory(bad)


def test_vcpus():
    assert ev.check_vcpus(2, host_cores=4) is None
    assert 'minimum requirement of 2' in ev.check_vcpus(1, host_cores=4)
    with pytest.raises(VMConfigError) as e:
        ev.check_vcpus(8, host_cores=4)
    assert '8 vCPUs are more than the 4 CPU cores' in str(e.value)
    with pytest.raises(VMConfigError):
        ev.check_vcpus('two')


def test_disk_size():
    gib = 1 << 30
    assert ev.check_disk_size(50, appliance_size_bytes=50 * gib) is None
    assert 'below the minimum requirement of 25 GiB' in ev.check_disk_size(
        10, appliance_size_bytes=5 * gib)
    with pytest.raises(VMConfigError) as e:
        ev.check_disk_size(20, appliance_size_bytes=50 * gib)
    assert str(e.value) == 'disk smaller than the appliance: at least 50 GiB'
    with pytest.raises(VMConfigError):
        ev.check_disk_size('big')


@pytest.mark.parametrize('kw', [dict(vm_uuid='nope'), dict(domain_type='xen'),
                                dict(disk_format='vmdk'), dict(console='rdp'),
                                dict(max_vcpus=1), dict(sd_uuid='')])
def test_bad_spec(kw):
    with pytest.raises(VMConfigError) as e:
        ev.domain_xml(_spec(**kw))
    assert '\n' not in str(e.value)
