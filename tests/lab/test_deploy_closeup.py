"""The closeup hand-over files: the HE_CONF_WRITTEN event of plugins/gr-he-setup/ha run for
real (in a subprocess, every path relocated under OVIRT_HOSTED_ENGINE_PREFIX) on a
configuration volume file; and the HA vm.conf without the seed cdrom.

These tests need no lab: the closeup steps that need a running engine VM are exercised by
the end-to-end deploy in the lab."""
import base64
import json
import os
import subprocess
import uuid
import xml.etree.ElementTree as ET

from ovirt_hosted_engine_setup.deploy import engine_vm
from ovirt_hosted_engine_setup.he_storage import config_volume, heconf, layout

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = os.path.join(TOP, '.venv', 'bin', 'python')

RUN_EVENT = r'''
import json, sys
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.runner import context, loader
ctx = context.Context(['gr-he-setup'], [sys.argv[1]], keys=c.ALL_KEYS)
plugins = loader.load_groups(ctx.groups, ctx.plugin_path, ctx)
ctx.environment.update(json.load(sys.stdin))
[p for p in plugins if type(p).__module__.endswith('.ha.conf')][0]._write()
'''


def ha_conf_module():
    """plugins/gr-he-setup/ha/conf.py (its imports are absolute)."""
    import importlib.util
    path = os.path.join(TOP, 'plugins', 'gr-he-setup', 'ha', 'conf.py')
    sp = importlib.util.spec_from_file_location('he_setup_ha_conf', path)
    module = importlib.util.module_from_spec(sp)
    sp.loader.exec_module(module)
    return module


def spec(tmp_path, seed):
    return engine_vm.EngineVMSpec(
        vm_uuid=str(uuid.uuid4()), memory_mb=1024, vcpus=1, disk_path=str(tmp_path / 'disk'),
        sd_uuid=str(uuid.uuid4()), volume_uuid=str(uuid.uuid4()), domain_type='qemu',
        seed_iso=seed, mac='00:16:3e:11:22:33', channel_path=str(tmp_path / 'ch.sock'))


def test_ha_vm_conf_has_no_seed_cdrom(tmp_path):
    mod = ha_conf_module()
    ha_vm_conf, xml_without_cdrom = mod.ha_vm_conf, mod.xml_without_cdrom
    with_seed = spec(tmp_path, str(tmp_path / 'seed.iso'))
    xml = engine_vm.domain_xml(with_seed)
    assert "device='cdrom'" in xml
    without = engine_vm.EngineVMSpec(**dict(vars(with_seed), seed_iso=None))
    assert xml_without_cdrom(xml) == ET.tostring(ET.fromstring(engine_vm.domain_xml(without)),
                                                 encoding='unicode')
    conf = ha_vm_conf(engine_vm.vm_conf(with_seed, xml), xml)
    text = base64.b64decode(conf['xmlBase64']).decode()
    assert 'seed.iso' not in text and '<lease>' in text
    assert conf['vmId'] == with_seed.vm_uuid and conf['memSize'] == '1024'


def test_conf_event_writes_files_and_configuration_volume(tmp_path):
    prefix = tmp_path / 'root'
    plugins = tmp_path / 'plugins' / 'gr-he-setup'
    plugins.mkdir(parents=True)
    os.symlink(os.path.join(TOP, 'plugins', 'gr-he-setup', 'ha'), str(plugins / 'ha'))
    storage = str(tmp_path / 'storage')
    ids = {k: str(uuid.uuid4()) for k in (
        'sdUUID', 'connectionUUID', 'vm_disk_id', 'vm_disk_vol_id', 'metadata_image_UUID',
        'metadata_volume_UUID', 'lockspace_image_UUID', 'lockspace_volume_UUID',
        'conf_image_UUID', 'conf_volume_UUID')}
    domain = dict(ids, storage=storage, domainType='localfs', mnt_options='', host_id='1',
                  sanlock_io_timeout='10', spUUID=layout.BLANK_UUID)
    vols = layout.volume_paths(domain, str(prefix) + '/rhev/data-center')
    os.makedirs(os.path.dirname(vols['conf']))
    with open(vols['conf'], 'wb') as f:
        f.write(b'\0' * (1 << 20))
    s = spec(tmp_path, str(tmp_path / 'seed.iso'))
    xml = engine_vm.domain_xml(s)
    env = {
        'OVEHOSTED_STORAGE/domainConf': domain,
        'OVEHOSTED_NETWORK/fqdn': 'engine.lab.test',
        'OVEHOSTED_VM/vmUUID': s.vm_uuid,
        'OVEHOSTED_STORAGE/hostID': 1,
        'OVEHOSTED_VDSM/consoleType': 'vnc',
        'OVEHOSTED_ENGINE/caFile': '/var/lib/ovirt-hosted-engine-hostd/pki/trusted-cas/'
                                   'engine-engine.lab.test.pem',
        'OVEHOSTED_ENGINE/caSubject': 'CN=engine.lab.test.12345',
        'OVEHOSTED_NETWORK/gateway': '192.168.222.1',
        'OVEHOSTED_NETWORK/bridgeName': 'ovirtmgmt',
        'OVEHOSTED_NETWORK/network_test': 'ping',
        'OVEHOSTED_VM/vmConf': engine_vm.vm_conf(s, xml),
        'OVEHOSTED_VM/domainXML': xml,
        'OVEHOSTED_NOTIF/smtpServer': 'smtp.lab.test',
        'OVEHOSTED_NOTIF/smtpPort': 2525,
        'OVEHOSTED_NOTIF/sourceEmail': 'he@lab.test',
        'OVEHOSTED_NOTIF/destEmail': 'ops@lab.test,root@localhost',
        'OVEHOSTED_ENGINE/adminPassword': 'Secret-admin-1',
        'OVEHOSTED_ENGINE/datacenterName': 'Default',
    }
    r = subprocess.run([PYTHON, '-c', RUN_EVENT, str(tmp_path / 'plugins')],
                       input=json.dumps(env), capture_output=True, text=True, cwd=TOP,
                       env=dict(os.environ, OVIRT_HOSTED_ENGINE_PREFIX=str(prefix)),
                       timeout=60)
    assert r.returncode == 0, r.stderr

    he = heconf.load(str(prefix) + '/etc/ovirt-hosted-engine/hosted-engine.conf')
    assert set(he) == set(heconf.HE_KEYS)
    assert he['fqdn'] == 'engine.lab.test' and he['vmid'] == s.vm_uuid
    assert he['conf'] == str(prefix) + '/run/ovirt-hosted-engine-ha/vm.conf'
    assert he['host_id'] == '1' and he['gateway'] == '192.168.222.1'
    assert he['ca_subject'] == '"CN=engine.lab.test.12345"'
    assert he['sdUUID'] == ids['sdUUID'] and he['storage'] == storage
    assert he['vdsm_use_ssl'] == 'true' and he['tcp_t_port'] == ''

    vm = heconf.load_vm_conf(str(prefix) + '/etc/ovirt-hosted-engine/vm.conf')
    assert 'seed.iso' not in heconf.vm_xml(vm) and vm['vmId'] == s.vm_uuid

    broker = open(str(prefix) + '/etc/ovirt-hosted-engine-ha/broker.conf').read()
    assert 'smtp-server = smtp.lab.test\nsmtp-port = 2525\n' in broker
    assert 'destination-emails = ops@lab.test,root@localhost\n' in broker
    assert '[notify]\nstate_transition = maintenance|start|stop|migrate|up|down\n' in broker

    files = config_volume.ConfigVolume(vols['conf']).read()
    assert sorted(files) == sorted(layout.CONF_FILES)
    assert files['hosted-engine.conf'] == open(
        str(prefix) + '/etc/ovirt-hosted-engine/hosted-engine.conf').read()
    assert files['vm.conf'] == open(str(prefix) + '/etc/ovirt-hosted-engine/vm.conf').read()
    assert files['broker.conf'] == broker
    assert 'OVEHOSTED_NETWORK/fqdn=str:engine.lab.test' in files['fhanswers.conf']
    assert 'OVEHOSTED_ENGINE/datacenterName=str:Default' in files['fhanswers.conf']
    for text in files.values():
        assert 'Secret-admin-1' not in text
