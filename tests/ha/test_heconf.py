"""hosted-engine.conf and vm.conf: load, render, required keys, the domain XML."""
import base64
import os

import pytest

from ovirt_hosted_engine_setup.he_storage import heconf
from ovirt_hosted_engine_setup.he_storage.heconf import ConfError

VM_ID = '4f0a8ad2-3c0e-4bb4-9d7a-0f5b8b7c2a11'
XML = ("<domain type='qemu'><name>HostedEngine</name><uuid>%s</uuid>"
       "<memory unit='MiB'>256</memory><devices/></domain>" % VM_ID)

HE_TEXT = """\
# written by deploy
fqdn=engine.lab.test
host_id=2
storage=/srv/he
domainType=localfs
sdUUID=11111111-2222-3333-4444-555555555555
network_test=ping
conf=/run/ovirt-hosted-engine-ha/vm.conf
mnt_options=
ca_subject="C=EN, L=Test, O=Test, CN=Test"

sanlock_io_timeout=2
"""


def write(tmp_path, text, name='hosted-engine.conf'):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_load_and_render_round_trip(tmp_path):
    path = write(tmp_path, HE_TEXT)
    conf = heconf.load(path)
    assert conf['fqdn'] == 'engine.lab.test' and conf['host_id'] == '2'
    assert conf['mnt_options'] == '' and conf['ca_subject'] == '"C=EN, L=Test, O=Test, CN=Test"'
    assert conf.path == path and conf.lines['sanlock_io_timeout'] == 12
    assert heconf.io_timeout(conf) == 2
    text = heconf.render(conf)
    lines = text.splitlines()
    assert lines == sorted(lines) and len(lines) == 10
    again = heconf.parse(text)
    assert dict(again) == dict(conf)
    assert heconf.render({'b': True, 'a': None, 'c': 3}) == 'a=\nb=true\nc=3\n'


def test_required(tmp_path):
    conf = heconf.load(write(tmp_path, HE_TEXT))
    assert heconf.required(conf, 'sdUUID', 'host_id') == [
        '11111111-2222-3333-4444-555555555555', '2']
    with pytest.raises(ConfError) as e:
        heconf.required(conf, 'fqdn', 'vmid', 'mnt_options')
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / 'hosted-engine.conf') + ': missing vmid, mnt_options')
    assert '\n' not in msg and 'deploy' in msg
    assert heconf.io_timeout({}) == 10


@pytest.mark.parametrize('text,line,words', [
    ('fqdn=a\nthis is not a pair\n', 2, 'expected key=value'),
    ('fqdn=a\nfqdn=b\n', 2, 'given twice (first on line 1)'),
    ('bad key=1\n', 1, 'bad key'),
    ('host_id=0\n', 1, 'host_id must be a number from 1 to 250'),
    ('host_id=abc\n', 1, 'host_id must be'),
    ('\n\ndomainType=iscsi\n', 3, 'domainType'),
    ('network_test=icmp\n', 1, 'network_test'),
    ('sanlock_io_timeout=0\n', 1, 'sanlock_io_timeout'),
])
def test_errors_name_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfError) as e:
        heconf.load(path)
    assert e.value.path == path and e.value.line == line
    assert str(e.value).startswith('%s:%d: ' % (path, line)) and words in str(e.value)
    assert '\n' not in str(e.value)


def test_missing_and_unreadable_file(tmp_path):
    with pytest.raises(ConfError) as e:
        heconf.load(str(tmp_path / 'nope.conf'))
    assert 'no such file' in str(e.value) and 'hosted-engine --deploy' in str(e.value)
    p = tmp_path / 'binary.conf'
    p.write_bytes(b'fqdn=\xff\xfe\n')
    with pytest.raises(ConfError) as e:
        heconf.load(str(p))
    assert 'not UTF-8' in str(e.value)


def test_render_refuses_line_breaks():
    with pytest.raises(ValueError):
        heconf.render({'fqdn': 'a\nhost_id=3'})
    with pytest.raises(ValueError):
        heconf.render({'bad key': 'x'})


def test_write_is_atomic_and_readable(tmp_path):
    path = str(tmp_path / 'etc' / 'hosted-engine.conf')
    heconf.write(path, heconf.render({'fqdn': 'e', 'host_id': 1}))
    assert heconf.load(path) == {'fqdn': 'e', 'host_id': '1'}
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
    assert os.listdir(os.path.dirname(path)) == ['hosted-engine.conf']


def test_vm_conf_round_trip(tmp_path):
    vmconf = heconf.make_vm_conf(VM_ID, XML, mem_mb=256, vcpus=2, max_vcpus=4,
                                 spiceSecureChannels='smain,sdisplay')
    assert vmconf['vmId'] == VM_ID and vmconf['vmName'] == 'HostedEngine'
    assert vmconf['memSize'] == '256' and vmconf['smp'] == '2' and vmconf['maxVCpus'] == '4'
    assert vmconf['display'] == 'vnc' and vmconf['spiceSecureChannels'] == 'smain,sdisplay'
    assert base64.b64decode(vmconf['xmlBase64']).decode() == XML
    text = heconf.render_vm_conf(vmconf)
    assert text.startswith('vmId=%s\n' % VM_ID)
    path = write(tmp_path, text, 'vm.conf')
    loaded = heconf.load_vm_conf(path)
    assert dict(loaded) == vmconf
    assert heconf.vm_xml(loaded) == XML
    assert heconf.parse_vm_conf(text) == vmconf


def test_vm_conf_errors(tmp_path):
    with pytest.raises(ValueError):
        heconf.make_vm_conf('00000000-0000-0000-0000-000000000001', XML, 256, 1)
    path = write(tmp_path, 'memSize=256\n', 'vm.conf')
    with pytest.raises(ConfError) as e:
        heconf.load_vm_conf(path)
    assert 'missing vmId' in str(e.value)
    path = write(tmp_path, 'vmId=%s\nxmlBase64=***\n' % VM_ID, 'vm.conf')
    with pytest.raises(ConfError) as e:
        heconf.load_vm_conf(path)
    assert str(e.value).startswith(path + ':2: xmlBase64 is not base64')
    bad = base64.b64encode(b'<domain><name>x</name>').decode()
    with pytest.raises(ConfError) as e:
        heconf.vm_xml(heconf.parse('vmId=%s\nxmlBase64=%s\n' % (VM_ID, bad), 'vm.conf'))
    assert 'not valid XML' in str(e.value)
    other = XML.replace(VM_ID, '00000000-0000-0000-0000-000000000002')
    with pytest.raises(ConfError) as e:
        heconf.vm_xml({'vmId': VM_ID, 'xmlBase64': heconf.encode_xml(other)})
    assert 'make them the same' in str(e.value)
    with pytest.raises(ConfError) as e:
        heconf.vm_xml({'vmId': VM_ID})
    assert 'no xmlBase64' in str(e.value)


def test_no_ha_service_reads_the_engine_ca_keys():
    """The deploy starts ovirt-ha-broker from a hosted-engine.conf without the engine CA
    (known only after engine-setup) and does not restart it when the CA keys are added."""
    import ovirt_hosted_engine_setup.ha as ha
    top = os.path.dirname(ha.__file__)
    found = []
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            if name.endswith('.py'):
                with open(os.path.join(dirpath, name), encoding='utf-8') as f:
                    text = f.read()
                found += ['%s: %s' % (name, k) for k in heconf.ENGINE_CA_KEYS if k in text]
    assert found == []
