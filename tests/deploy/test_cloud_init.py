"""The cloud-init NoCloud seed ISO: built with pycdlib, read back, parsed, its secrets checked."""
import os
import shutil
import stat
import subprocess

import pycdlib
import pytest
import yaml

from ovirt_hosted_engine_setup.deploy import cloud_init as ci
from ovirt_hosted_engine_setup.deploy.cloud_init import SeedError, SeedSpec

ROOT_PW = 'r00t-Secret!x'
ADMIN_PW = 'Adm1n:pa ss%word'
FQDN = 'engine.lab.example'


def _spec(**kw):
    values = dict(
        instance_id='6f1a3c2e-0d4b-4b8e-9a51-2f7d9c0e1a11', hostname=FQDN,
        root_password=ROOT_PW, root_ssh_pubkey='ssh-ed25519 AAAAC3Nza root@host1',
        root_ssh_access='without-password', ip='192.168.222.200/24',
        gateway='192.168.222.1', dns=['192.168.222.1', '192.168.222.2'],
        mac='00:16:3e:12:34:56',
        etc_hosts=[('192.168.222.10', ['host1.lab.example', 'host1']),
                   ('192.168.222.200', [FQDN])],
        engine_answers=ci.engine_answers(FQDN, ADMIN_PW), run_engine_setup=True,
        timezone='Europe/Rome')
    values.update(kw)
    return SeedSpec(**values)


@pytest.fixture
def iso(tmp_path):
    return ci.build_seed_iso(_spec(), str(tmp_path / 'seed.iso'))


def _read(path):
    files = {}
    iso = pycdlib.PyCdlib()
    iso.open(path)
    try:
        vol = iso.pvd.volume_identifier.decode().strip()
        assert iso.has_rock_ridge() and iso.has_joliet()
        for name in ('meta-data', 'user-data', 'network-config'):
            import io
            a, b = io.BytesIO(), io.BytesIO()
            iso.get_file_from_iso_fp(a, rr_path='/' + name)
            iso.get_file_from_iso_fp(b, joliet_path='/' + name)
            assert a.getvalue() == b.getvalue()
            files[name] = a.getvalue().decode()
    finally:
        iso.close()
    return vol, files


def test_iso_volume_id_mode_and_files(iso):
    vol, files = _read(iso)
    assert vol == 'cidata'
    assert stat.S_IMODE(os.stat(iso).st_mode) == 0o600
    assert ci.read_seed_iso(iso)[None] == 'cidata'
    assert set(files) == {'meta-data', 'user-data', 'network-config'}


def test_blkid_finds_the_label(iso):
    """cloud-init's NoCloud source finds the seed by its file system label."""
    blkid = shutil.which('blkid') or '/sbin/blkid'
    if not os.path.exists(blkid):
        pytest.skip('blkid (util-linux) is not installed')
    p = subprocess.run([blkid, '-p', '-o', 'export', iso], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    fields = dict(line.split('=', 1) for line in p.stdout.splitlines() if '=' in line)
    assert fields['LABEL'] == 'cidata' and fields['TYPE'] == 'iso9660'


def test_meta_data(iso):
    meta = yaml.safe_load(_read(iso)[1]['meta-data'])
    assert meta == {'instance-id': '6f1a3c2e-0d4b-4b8e-9a51-2f7d9c0e1a11',
                    'local-hostname': FQDN}


def test_network_config_static(iso):
    net = yaml.safe_load(_read(iso)[1]['network-config'])
    assert net['version'] == 1
    (nic,) = net['config']
    assert nic['type'] == 'physical' and nic['mac_address'] == '00:16:3e:12:34:56'
    (subnet,) = nic['subnets']
    assert subnet['type'] == 'static'
    assert subnet['address'] == '192.168.222.200/24'
    assert subnet['gateway'] == '192.168.222.1'
    assert subnet['dns_nameservers'] == ['192.168.222.1', '192.168.222.2']


def test_network_config_dhcp():
    net = yaml.safe_load(ci.network_config(_spec(ip=None, gateway=None)))
    assert net['config'][0]['subnets'] == [{'type': 'dhcp'}]


def test_mac_that_looks_like_a_number_stays_a_string():
    net = yaml.safe_load(ci.network_config(_spec(mac='12:34:56:12:34:56')))
    assert net['config'][0]['mac_address'] == '12:34:56:12:34:56'


def test_user_data(iso):
    text = _read(iso)[1]['user-data']
    assert text.startswith('#cloud-config\n')
    doc = yaml.safe_load(text)
    assert doc['fqdn'] == FQDN and doc['hostname'] == 'engine'
    assert doc['ssh_pwauth'] is False and doc['disable_root'] is False
    assert doc['timezone'] == 'Europe/Rome'
    assert doc['ssh_authorized_keys'] == ['ssh-ed25519 AAAAC3Nza root@host1']
    cp = doc['chpasswd']
    assert cp['expire'] is False
    (user,) = cp['users']
    assert user['name'] == 'root' and user['type'] == 'hash'
    assert user['password'].startswith('$6$')
    assert ci.verify_password(ROOT_PW, user['password'])
    assert not ci.verify_password(ROOT_PW + 'x', user['password'])
    files = {f['path']: f for f in doc['write_files']}
    hosts = files['/etc/hosts']
    assert hosts['append'] is True
    assert hosts['content'] == ('192.168.222.10 host1.lab.example host1\n'
                                '192.168.222.200 %s\n' % FQDN)
    answers = files['/root/ovirt-engine-answers']
    assert answers['permissions'] == '0600'
    lines = answers['content'].splitlines()
    assert '[environment:default]' in lines
    assert 'OVESETUP_CONFIG/adminPassword=str:%s' % ADMIN_PW in lines
    assert 'OVESETUP_CONFIG/fqdn=str:%s' % FQDN in lines
    assert 'OVESETUP_CONFIG/applicationMode=str:both' in lines
    assert files[ci.SSHD_DROPIN]['content'] == 'PermitRootLogin without-password\n'
    (script,) = doc['runcmd']
    assert ('engine-setup --offline --config-append=/root/ovirt-engine-answers' in script)
    assert ci.SUCCESS_STRING in script and ci.FAIL_STRING in script
    assert '/dev/virtio-ports/org.ovirt.hosted-engine-setup.0' in script


def test_secrets(iso):
    with open(iso, 'rb') as f:
        data = f.read()
    assert ROOT_PW.encode() not in data
    # the admin password appears once: in the answers file inside user-data
    assert data.count(ADMIN_PW.encode()) == 1
    user_data = _read(iso)[1]['user-data']
    doc = yaml.safe_load(user_data)
    answers = [f for f in doc['write_files'] if f['path'] == ci.ANSWERS_PATH][0]['content']
    assert user_data.count(ADMIN_PW) == 1 and ADMIN_PW in answers


def test_without_engine_setup_no_answers():
    text = ci.user_data(_spec(run_engine_setup=False, engine_answers={}))
    doc = yaml.safe_load(text)
    assert 'runcmd' not in doc
    assert ADMIN_PW not in text
    assert ci.ANSWERS_PATH not in [f['path'] for f in doc['write_files']]


def test_without_root_password_or_key():
    doc = yaml.safe_load(ci.user_data(_spec(root_password=None, root_ssh_pubkey=None,
                                            root_ssh_access='no')))
    assert 'chpasswd' not in doc and 'ssh_authorized_keys' not in doc
    assert doc['disable_root'] is True and doc['ssh_pwauth'] is False


def test_iso_replaced_atomically_and_stays_private(tmp_path):
    path = str(tmp_path / 'seed.iso')
    with open(path, 'w') as f:
        f.write('old')
    os.chmod(path, 0o644)
    ci.build_seed_iso(_spec(), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _read(path)[0] == 'cidata'
    assert os.listdir(tmp_path) == ['seed.iso']


@pytest.fixture
def busybox():
    path = shutil.which('busybox') or '/bin/busybox'
    if not os.path.exists(path):
        pytest.skip('busybox is not installed (scripts/bootstrap installs busybox-static)')
    return path


@pytest.mark.parametrize('exit_code,expected', [(0, ci.SUCCESS_STRING), (3, ci.FAIL_STRING)])
def test_engine_setup_script_under_busybox_sh(tmp_path, busybox, exit_code, expected):
    """The runcmd script runs under busybox sh: engine-setup's output then the verdict reach
    the channel, and the answers file is removed."""
    port = tmp_path / 'port'
    answers = tmp_path / 'answers'
    answers.write_text('[environment:default]\n')
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    fake = bindir / 'engine-setup'
    fake.write_text('#!%s sh\necho "engine-setup $*"\necho "to stderr" >&2\nexit %d\n'
                    % (busybox, exit_code))
    fake.chmod(0o755)
    for tool in ('mktemp', 'tee', 'cat', 'rm'):
        os.symlink(busybox, str(bindir / tool))
    script = ci.engine_setup_script().replace(ci.CHANNEL_DEVICE, str(port)).replace(
        ci.ANSWERS_PATH, str(answers))
    p = subprocess.run([busybox, 'sh', '-c', script], env={'PATH': str(bindir),
                                                            'TMPDIR': str(tmp_path)},
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = port.read_text().splitlines()
    assert lines == ['engine-setup --offline --config-append=%s' % answers, 'to stderr',
                     expected]
    assert not answers.exists()
    assert sorted(os.listdir(tmp_path)) == ['bin', 'port']


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize('kw,words', [
    (dict(hostname='engine'), 'not a fully qualified name'),
    (dict(hostname='bad_name.example.com'), 'not a valid host name'),
    (dict(ip='192.168.222.200'), 'has no prefix length'),
    (dict(ip='192.168.300.1/24'), 'is not A.B.C.D/N'),
    (dict(ip='192.168.222.0/24'), 'network or broadcast'),
    (dict(gateway='10.0.0.1'), 'outside the engine VM network'),
    (dict(gateway='gw'), 'the gateway'),
    (dict(dns=['8.8.8.x']), 'the DNS server'),
    (dict(mac='00:16:3e:12:34'), 'MAC address'),
    (dict(root_ssh_access='maybe'), 'root SSH access'),
    (dict(root_ssh_pubkey='a\nb'), 'public key'),
    (dict(etc_hosts=[('host1', ['x'])]), '/etc/hosts address'),
    (dict(etc_hosts=[('192.168.222.10', [])]), 'has no names'),
    (dict(engine_answers={'OVESETUP_CONFIG/adminPassword': 'a\nb'}), 'line break'),
    (dict(engine_answers={}), 'no engine-setup answers'),
    (dict(timezone='Europe Rome'), 'time zone'),
    (dict(instance_id=''), 'instance id'),
])
def test_bad_values(tmp_path, kw, words):
    path = tmp_path / 'seed.iso'
    with pytest.raises(SeedError) as e:
        ci.build_seed_iso(_spec(**kw), str(path))
    assert words in str(e.value) and '\n' not in str(e.value)
    assert not path.exists() and os.listdir(tmp_path) == []


def test_empty_root_password_refused():
    with pytest.raises(SeedError):
        ci.hash_password('')


# ------------------------------------------------------------------ the VM's SSH host key

def _keygen_fingerprint(tmp_path, public):
    path = tmp_path / 'key.pub'
    path.write_text(public + '\n')
    out = subprocess.run(['ssh-keygen', '-l', '-E', 'sha256', '-f', str(path)],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def test_generated_host_key_is_a_valid_ed25519_pair(tmp_path):
    key = ci.generate_host_key()
    assert key.key_type == 'ed25519' and key.public.startswith('ssh-ed25519 AAAA')
    assert key.public.endswith(' root@engine')
    assert key.private.startswith('-----BEGIN OPENSSH PRIVATE KEY-----\n')
    # OpenSSH derives the same public key from the private one, and prints the same
    # fingerprint
    priv = tmp_path / 'key'
    priv.write_text(key.private)
    os.chmod(priv, 0o600)
    derived = subprocess.run(['ssh-keygen', '-y', '-f', str(priv)], capture_output=True,
                             text=True, check=True).stdout.split()
    assert derived[:2] == key.public.split()[:2]
    assert key.fingerprint == _keygen_fingerprint(tmp_path, key.public)
    # never in a repr (a spec or a key that reaches a log)
    assert key.private not in repr(key) and 'OPENSSH PRIVATE' not in repr(key)
    spec = _spec(ssh_host_key=key)
    assert 'OPENSSH PRIVATE' not in repr(spec)
    assert ci.generate_host_key().public != key.public


def test_seed_carries_the_host_key_as_cloud_init_spells_it(tmp_path, caplog):
    key = ci.generate_host_key()
    caplog.set_level('DEBUG')
    path = ci.build_seed_iso(_spec(ssh_host_key=key), str(tmp_path / 'seed.iso'))
    doc = yaml.safe_load(_read(path)[1]['user-data'])
    assert doc['ssh_keys'] == {'ed25519_private': key.private, 'ed25519_public': key.public}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # the fingerprint goes to the log, the private key never
    assert 'The engine VM SSH host key (in the seed): ssh-ed25519 %s' % key.fingerprint \
        in caplog.text
    body = ''.join(key.private.splitlines()[1:-1])
    assert body[:30] not in caplog.text and 'PRIVATE KEY' not in caplog.text


def test_seed_without_host_key_lets_the_vm_make_its_own():
    doc = yaml.safe_load(ci.user_data(_spec(), root_password_hash='$6$x$y'))
    assert 'ssh_keys' not in doc


def test_mismatched_or_bad_host_key_refused(tmp_path):
    a, b = ci.generate_host_key(), ci.generate_host_key()
    cases = [(ci.SshHostKey(private=a.private, public=b.public), 'does not match'),
             (ci.SshHostKey(private='not a key', public=a.public), 'not an unencrypted'),
             (ci.SshHostKey(private=a.private, public='ssh-ed25519'), 'must be one line'),
             (ci.SshHostKey(private=a.private, public='ssh-dss AAAA x'), 'must be one line')]
    for key, words in cases:
        path = tmp_path / 'seed.iso'
        with pytest.raises(SeedError) as e:
            ci.build_seed_iso(_spec(ssh_host_key=key), str(path))
        assert words in str(e.value) and '\n' not in str(e.value)
        assert a.private.splitlines()[1] not in str(e.value)
        assert not path.exists()
