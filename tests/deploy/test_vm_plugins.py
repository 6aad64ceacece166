"""The deploy VM section's pieces without a host: CPU models, KVM use, FQDN and address
checks, and the misc steps (appliance copy, seed ISO, domain XML) on local files."""
import logging
import os
import shutil
import subprocess
import uuid

import pytest
import yaml

from ovirt_hosted_engine_setup.deploy import appliance as applib
from ovirt_hosted_engine_setup.deploy import cloud_init
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import engine_vm
from ovirt_hosted_engine_setup.runner import Transaction

from .plugin_packages import load

vm = load('gr-he-setup', 'vm')

INTEL_HASWELL = ('fpu,sse2,ssse3,sse4_1,sse4_2,popcnt,aes,pclmulqdq,avx,xsave,f16c,rdrand,'
                 'fsgsbase,avx2,bmi1,bmi2,fma,movbe')


# ------------------------------------------------------------------ host CPU

def test_cpu_models_of_an_intel_kvm_host_newest_first():
    caps = {'cpuFlags': INTEL_HASWELL + ',vmx', 'kvmEnabled': 'true',
            'cpuModel': 'Intel(R) Core(TM) i7-4770'}
    names = [n for n, _d in engine_vm.supported_cpu_models(caps)]
    assert names[0] == 'model_Haswell-noTSX'
    assert 'model_Broadwell-noTSX' not in names
    assert 'model_EPYC' not in names and 'model_Opteron_G4' not in names
    assert names[-1] == 'model_Conroe'


def test_cpu_models_listed_by_vdsm_are_used_as_given():
    caps = {'cpuFlags': 'sse2,model_Conroe,model_Nehalem,model_Penryn,vmx',
            'kvmEnabled': 'true'}
    assert [n for n, _d in engine_vm.supported_cpu_models(caps)] == [
        'model_Nehalem', 'model_Penryn', 'model_Conroe']


def test_without_hardware_virtualization_the_vm_runs_under_tcg():
    # /dev/kvm present but no vmx/svm: the lab's case
    caps = {'cpuFlags': INTEL_HASWELL + ',hypervisor', 'kvmEnabled': 'true'}
    assert not engine_vm.kvm_usable(caps)
    assert engine_vm.kvm_usable(dict(caps, cpuFlags=INTEL_HASWELL + ',svm'))
    assert not engine_vm.kvm_usable(dict(caps, cpuFlags=INTEL_HASWELL + ',vmx',
                                         kvmEnabled='false'))
    names = [n for n, _d in engine_vm.supported_cpu_models(caps)]
    assert names == ['model_Westmere', 'model_Nehalem', 'model_Penryn', 'model_Conroe']


def test_check_cpu_model():
    supported = [('model_Nehalem', 'Intel Nehalem Family'), ('model_Conroe', 'x')]
    assert engine_vm.check_cpu_model('model_Nehalem', supported) == 'model_Nehalem'
    assert engine_vm.check_cpu_model('Conroe', supported) == 'model_Conroe'
    with pytest.raises(engine_vm.VMConfigError) as e:
        engine_vm.check_cpu_model('model_EPYC', supported)
    assert str(e.value) == ('the CPU type model_EPYC is not supported by this host; use one '
                            'of: model_Nehalem, model_Conroe')


def test_host_cores():
    assert engine_vm.host_cores({'cpuCores': '4', 'cpuThreads': '8'}) == 8
    assert engine_vm.host_cores({'cpuCores': '6'}) == 6
    assert engine_vm.host_cores({}) == os.cpu_count()


# ------------------------------------------------------------------ engine FQDN

def resolver(table):
    import socket

    def resolve(name):
        if name not in table:
            raise socket.gaierror(-2, 'Name or service not known')
        return table[name]
    return resolve


NAMES = resolver({'engine.example.test': ['192.0.2.200'], 'host.example.test': ['192.0.2.10'],
                  'loop.example.test': ['127.0.1.1']})
LOCAL = {'192.0.2.10', '127.0.0.1'}


@pytest.mark.parametrize('fqdn, needle', [
    ('localhost', 'localhost cannot be the engine FQDN'),
    ('localhost.localdomain', 'cannot be the engine FQDN'),
    ('engine', 'not a valid fully qualified domain name'),
    ('bad_name.example.test', 'not a valid fully qualified domain name'),
    ('192.0.2.200', 'is an IP address'),
    ('missing.example.test', 'does not resolve (Name or service not known): add it to DNS'),
    ('host.example.test', 'resolves to 192.0.2.10, an address of this host'),
    ('loop.example.test', 'resolves to 127.0.1.1, an address of this host'),
])
def test_bad_engine_fqdns(fqdn, needle):
    with pytest.raises(engine_vm.VMConfigError) as e:
        engine_vm.check_engine_fqdn(fqdn, LOCAL, resolver=NAMES)
    assert needle in str(e.value)
    assert '\n' not in str(e.value)


def test_good_engine_fqdn_returns_its_addresses():
    assert engine_vm.check_engine_fqdn('engine.example.test.', LOCAL,
                                       resolver=NAMES) == ['192.0.2.200']


def test_local_addresses_from_caps():
    caps = {'bridges': {'ovirtmgmt': {'addr': '192.0.2.10', 'ipv4addrs': ['192.0.2.10/24'],
                                      'ipv6addrs': ['2001:db8::10/64']}},
            'nics': {'eth1': {'addr': '', 'ipv4addrs': ['198.51.100.7/24']}}}
    addrs = engine_vm.local_addresses(caps)
    assert {'192.0.2.10', '2001:db8::10', '198.51.100.7', '127.0.0.1'} <= addrs


# ------------------------------------------------------------------ cloud-init values

def test_static_cidr_checks():
    check = vm.cloudinit.check_static_cidr
    assert check('192.0.2.200/24', ['192.0.2.200'], LOCAL, '192.0.2.1') == '192.0.2.200/24'
    for value, fqdn_addrs, gateway, needle in [
        ('192.0.2.200', [], None, 'no prefix length'),
        ('192.0.2.300/24', [], None, 'not an IPv4 address with prefix length'),
        ('192.0.2.0/24', [], None, 'network or broadcast address'),
        ('192.0.2.10/24', [], None, 'an address of this host'),
        ('192.0.2.201/24', ['192.0.2.200'], None, 'resolves to 192.0.2.200, not to'),
        ('192.0.2.200/28', [], '192.0.2.100', 'the gateway 192.0.2.100 is outside'),
    ]:
        with pytest.raises(ValueError) as e:
            check(value, fqdn_addrs, LOCAL, gateway)
        assert needle in str(e.value), value


def test_default_cidr_takes_the_prefix_of_the_host_network():
    caps = {'bridges': {'ovirtmgmt': {'ipv4addrs': ['192.0.2.10/25']}}}
    assert vm.cloudinit.default_cidr(['192.0.2.100'], caps) == '192.0.2.100/25'
    assert vm.cloudinit.default_cidr(['198.51.100.5'], caps) == '198.51.100.5/24'
    assert vm.cloudinit.default_cidr([], caps) is None


def test_dns_and_other_values():
    assert vm.cloudinit.check_dns('192.0.2.1, 192.0.2.2') == '192.0.2.1,192.0.2.2'
    assert vm.cloudinit.check_dns('') == ''
    with pytest.raises(ValueError):
        vm.cloudinit.check_dns('192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4')
    with pytest.raises(ValueError):
        vm.cloudinit.check_dns('dns.example.test')
    with pytest.raises(ValueError):
        vm.cloudinit.check_pubkey('not a key')
    assert vm.cloudinit.check_ssh_access('Without-Password') == 'without-password'
    with pytest.raises(ValueError):
        vm.cloudinit.check_timezone('Europe/Rome; rm -rf /')


def test_host_dns_servers_skip_loopback(tmp_path):
    path = tmp_path / 'resolv.conf'
    path.write_text('# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n'
                    'nameserver 2001:db8::53\nsearch example.test\nnameserver 192.0.2.54\n')
    assert vm.cloudinit.host_dns_servers(str(path)) == ['192.0.2.53', '192.0.2.54']


def test_machine_and_console_checks():
    assert vm.sizing.check_machine('pc') == 'pc'
    assert vm.sizing.check_machine('pc-i440fx-7.2') == 'pc-i440fx-7.2'
    with pytest.raises(ValueError):
        vm.sizing.check_machine('virt')
    assert vm.sizing.check_console('SPICE') == 'spice'
    with pytest.raises(ValueError):
        vm.sizing.check_console('rdp')


# ------------------------------------------------------------------ warnings

class FakeDialog:
    def __init__(self, answers):
        self.answers = list(answers)
        self.asked = []

    def query_yes_no(self, name, note, default=True):
        self.asked.append(name)
        return self.answers.pop(0)


class FakePlugin:
    def __init__(self, env, answers=()):
        self.environment = env
        self.dialog = FakeDialog(answers)
        self.logger = logging.getLogger('test')


def test_accepted_warning_is_not_asked():
    p = FakePlugin({c.CoreEnv.ACCEPTED_WARNINGS: ['low-memory']})
    assert vm.common.confirm_warning(p, 'low-memory', 'low')
    assert p.dialog.asked == []


def test_warning_accepted_when_asked_is_recorded():
    p = FakePlugin({c.CoreEnv.ACCEPTED_WARNINGS: None}, answers=[True])
    assert vm.common.confirm_warning(p, 'low-vcpus', 'few')
    assert p.dialog.asked == ['OVEHOSTED_ACCEPT_LOW_VCPUS']
    assert p.environment[c.CoreEnv.ACCEPTED_WARNINGS] == ['low-vcpus']
    p = FakePlugin({}, answers=[False])
    assert not vm.common.confirm_warning(p, 'low-vcpus', 'few')
    assert not p.environment.get(c.CoreEnv.ACCEPTED_WARNINGS)


# ------------------------------------------------------------------ misc steps

@pytest.fixture
def domain(tmp_path, monkeypatch):
    """A DOMAIN_CONF whose volumes live under tmp_path."""
    conf = {'sdUUID': str(uuid.uuid4()), 'storage': '/srv/he', 'vm_disk_id': str(uuid.uuid4()),
            'vm_disk_vol_id': str(uuid.uuid4())}
    for k in ('metadata_image_UUID', 'metadata_volume_UUID', 'lockspace_image_UUID',
              'lockspace_volume_UUID', 'conf_image_UUID', 'conf_volume_UUID'):
        conf[k] = str(uuid.uuid4())
    from ovirt_hosted_engine_setup.he_storage import layout
    real = layout.volume_paths
    monkeypatch.setattr(layout, 'volume_paths',
                        lambda cf, data_center_dir=None: real(cf, str(tmp_path / 'dc')))
    return conf


def env_of(domain, tmp_path, **extra):
    env = {
        c.StorageEnv.DOMAIN_CONF: domain, c.VMEnv.VM_UUID: str(uuid.uuid4()),
        c.VMEnv.MEM_SIZE_MB: 1024, c.VMEnv.VCPUS: 1, c.VMEnv.MAC_ADDR: '00:16:3e:5a:00:c8',
        c.VMEnv.EMULATED_MACHINE: 'pc', c.VDSMEnv.CPU: 'model_Nehalem',
        c.VDSMEnv.CONSOLE_TYPE: 'vnc', c.VDSMEnv.CAPS: {'kvmEnabled': 'true',
                                                        'cpuFlags': 'sse2'},
        c.NetworkEnv.BRIDGE_NAME: 'ovirtmgmt', c.NetworkEnv.FQDN: 'engine.example.test',
        c.NetworkEnv.GATEWAY: '192.0.2.1', c.NetworkEnv.HOST_NAME: '192.0.2.10',
        c.VMEnv.CLOUD_INIT_ISO: 'generate', c.VMEnv.CLOUDINIT_EXECUTE_ESETUP: True,
        c.VMEnv.CLOUDINIT_VM_NETWORK: 'static', c.VMEnv.CLOUDINIT_VM_STATIC_CIDR:
            '192.0.2.200/24', c.VMEnv.CLOUDINIT_VM_DNS: '192.0.2.53',
        c.VMEnv.CLOUDINIT_VM_ETC_HOSTS: True, c.VMEnv.CLOUDINIT_VM_TZ: 'UTC',
        c.VMEnv.CLOUDINIT_ROOTPWD: 'root-Pa55', c.VMEnv.ROOT_SSH_ACCESS: 'without-password',
        c.VMEnv.ROOT_SSH_PUBKEY: '', c.EngineEnv.ADMIN_PASSWORD: 'admin-Pa55',
        c.VMEnv.SEED_ISO_PATH: None, c.CoreEnv.TEMPDIR: str(tmp_path),
    }
    env.update(extra)
    return env


def test_seed_iso_from_the_answers(domain, tmp_path):
    env = env_of(domain, tmp_path)
    path = str(tmp_path / 'seed.iso')
    cloud_init.build_seed_iso(vm.seed.seed_spec(env), path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    files = cloud_init.read_seed_iso(path)
    assert files[None] == 'cidata'
    user = files['user-data'].decode()
    assert 'root-Pa55' not in user
    doc = yaml.safe_load(user)
    pw = doc['chpasswd']['users'][0]['password']
    assert cloud_init.verify_password('root-Pa55', pw)
    answers = [f for f in doc['write_files'] if f['path'] == cloud_init.ANSWERS_PATH][0]
    assert 'OVESETUP_CONFIG/adminPassword=str:admin-Pa55' in answers['content']
    assert 'OVESETUP_CONFIG/fqdn=str:engine.example.test' in answers['content']
    hosts = [f for f in doc['write_files'] if f['path'] == '/etc/hosts'][0]['content']
    assert '192.0.2.200 engine.example.test engine' in hosts
    assert '192.0.2.10 192.0.2.10' in hosts
    assert doc['timezone'] == 'UTC'
    net = yaml.safe_load(files['network-config'])
    subnet = net['config'][0]['subnets'][0]
    assert subnet == {'type': 'static', 'address': '192.0.2.200/24', 'gateway': '192.0.2.1',
                      'dns_nameservers': ['192.0.2.53'], 'dns_search': ['example.test']}
    assert net['config'][0]['mac_address'] == '00:16:3e:5a:00:c8'
    meta = yaml.safe_load(files['meta-data'])
    assert meta['instance-id'] == env[c.VMEnv.VM_UUID]


def test_seed_with_dhcp_and_without_engine_setup(domain, tmp_path):
    env = env_of(domain, tmp_path, **{c.VMEnv.CLOUDINIT_VM_NETWORK: 'dhcp',
                                      c.VMEnv.CLOUDINIT_VM_STATIC_CIDR: None,
                                      c.VMEnv.CLOUDINIT_EXECUTE_ESETUP: False})
    spec = vm.seed.seed_spec(env)
    assert spec.ip is None and spec.gateway is None and spec.dns == []
    assert not spec.run_engine_setup and spec.engine_answers == {}
    files = cloud_init.seed_files(spec)
    assert yaml.safe_load(files['network-config'])['config'][0]['subnets'] == [
        {'type': 'dhcp'}]
    assert b'admin-Pa55' not in files['user-data']


class FakeContext:
    def __init__(self, env):
        self.environment = env
        self.main_transaction = Transaction()
        self.dialog = None


def test_seed_event_writes_0600_and_rollback_and_cleanup_remove_it(domain, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(vm.seed, 'SEED_DIR', str(tmp_path / 'state' / 'seed'))
    env = env_of(domain, tmp_path)
    ctx = FakeContext(env)
    plugin = vm.seed.Plugin(ctx)
    ctx.main_transaction.prepare()
    plugin._seed()
    path = env[c.VMEnv.SEED_ISO_PATH]
    assert path == str(tmp_path / 'state' / 'seed' / ('%s-seed.iso' % env[c.VMEnv.VM_UUID]))
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o711
    ctx.main_transaction.abort()
    assert not os.path.exists(path)
    plugin._seed()
    assert os.path.exists(path)
    plugin._remove_seed()
    assert not os.path.exists(path)


def test_seed_event_with_an_existing_iso_keeps_it(domain, tmp_path):
    env = env_of(domain, tmp_path, **{c.VMEnv.CLOUD_INIT_ISO: 'existing',
                                      c.VMEnv.CDROM: '/srv/my-seed.iso'})
    plugin = vm.seed.Plugin(FakeContext(env))
    plugin._seed()
    assert env[c.VMEnv.SEED_ISO_PATH] == '/srv/my-seed.iso'
    assert plugin.generated is None


def test_seed_check_before_the_preview(domain, tmp_path):
    env = env_of(domain, tmp_path, **{c.EngineEnv.ADMIN_PASSWORD: None})
    with pytest.raises(ValueError, match='no engine admin password'):
        vm.seed.Plugin(FakeContext(env))._check_seed()
    env = env_of(domain, tmp_path, **{c.NetworkEnv.GATEWAY: '198.51.100.1'})
    with pytest.raises(ValueError, match='gateway 198.51.100.1 is outside'):
        vm.seed.Plugin(FakeContext(env))._check_seed()


def test_vm_definition_is_valid_libvirt_xml(domain, tmp_path):
    env = env_of(domain, tmp_path, **{c.VMEnv.SEED_ISO_PATH: '/var/lib/x/seed.iso'})
    plugin = vm.vmconf.Plugin(FakeContext(env))
    plugin._vm_conf()
    xml = env[c.VMEnv.DOMAIN_XML]
    vm_uuid = env[c.VMEnv.VM_UUID]
    assert env[c.VMEnv.CHANNEL_PATH] == (
        '/var/lib/libvirt/qemu/channels/%s.org.ovirt.hosted-engine-setup.0' % vm_uuid)
    import xml.etree.ElementTree as ET
    root = ET.fromstring(xml)
    assert root.get('type') == 'qemu'           # no vmx/svm in the caps: TCG
    assert root.find('cpu/model').text == 'Nehalem'
    cdrom = root.find("devices/disk[@device='cdrom']/source")
    assert cdrom.get('file') == '/var/lib/x/seed.iso'
    assert root.find('devices/lease/lockspace').text == domain['sdUUID']
    assert root.find('devices/lease/key').text == domain['vm_disk_vol_id']
    assert root.find('devices/interface/mac').get('address') == '00:16:3e:5a:00:c8'
    assert root.find('devices/interface/source').get('bridge') == 'ovirtmgmt'
    channel = root.find("devices/channel/target[@name='org.ovirt.hosted-engine-setup.0']/..")
    assert channel.find('source').get('path') == env[c.VMEnv.CHANNEL_PATH]
    conf = env[c.VMEnv.VM_CONF]
    assert conf['vmId'] == vm_uuid and conf['memSize'] == '1024' and conf['smp'] == '1'
    assert conf['cpuType'] == 'Nehalem' and conf['display'] == 'vnc'
    if shutil.which('virt-xml-validate') is None or shutil.which('xmllint') is None:
        pytest.skip('virt-xml-validate (libvirt-clients) or xmllint (libxml2-utils) missing')
    path = tmp_path / 'domain.xml'
    path.write_text(xml)
    r = subprocess.run(['virt-xml-validate', str(path), 'domain'], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_copy_event_puts_the_appliance_into_the_vm_volume(domain, tmp_path, caplog):
    from ovirt_hosted_engine_setup.he_storage import layout
    from ovirt_hosted_engine_setup.lab import appliance as lab_appliance
    ova = lab_appliance.ova_path()
    if not os.path.exists(ova):
        pytest.skip('no lab appliance: python -m ovirt_hosted_engine_setup.lab.appliance')
    volume = layout.volume_paths(domain)['vm']
    os.makedirs(os.path.dirname(volume))
    app = applib.Appliance.open(ova)
    with open(volume, 'wb') as f:
        f.truncate(app.disk_size_bytes)
    env = env_of(domain, tmp_path, **{c.VMEnv.OVF_ARCHIVE: ova})
    plugin = vm.appliance.Plugin(FakeContext(env))
    with caplog.at_level(logging.INFO):
        plugin._copy_image()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith('Waiting for the appliance disk to be copied into the VM volume')
               and '%' in m for m in messages), messages
    source = 'json:' + applib.Appliance.open(ova)._source_spec()[len('json:'):]
    r = subprocess.run(['qemu-img', 'compare', '-f', 'raw', volume, source],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_copy_event_failure_is_one_line(domain, tmp_path):
    from ovirt_hosted_engine_setup.lab import appliance as lab_appliance
    ova = lab_appliance.ova_path()
    if not os.path.exists(ova):
        pytest.skip('no lab appliance')
    env = env_of(domain, tmp_path, **{c.VMEnv.OVF_ARCHIVE: ova})
    plugin = vm.appliance.Plugin(FakeContext(env))
    with pytest.raises(RuntimeError) as e:
        plugin._copy_image()     # the VM volume was never created
    assert 'does not exist' in str(e.value) and '\n' not in str(e.value)


def test_disk_fit_and_tempdir(tmp_path):
    info = {'disk_size': 30 * applib.GiB}
    with pytest.raises(ValueError) as e:
        vm.appliance.check_disk_fit(25, info)
    assert str(e.value).startswith('disk smaller than the appliance: at least 30 GiB')
    vm.appliance.check_disk_fit(30, info)
    vm.appliance.check_disk_fit(None, info)

    class Gz:
        compressed = True
        disk_member_size = 1 << 60
    with pytest.raises(ValueError, match='not enough free space in'):
        vm.appliance.check_tempdir(Gz(), str(tmp_path))
    with pytest.raises(ValueError, match='is not usable'):
        vm.appliance.check_tempdir(Gz(), str(tmp_path / 'missing'))
