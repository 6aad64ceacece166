"""sshd in the lab engine appliance: host keys from the seed (pinned by the deploy's SSH client)
or generated at first boot and kept, root logins as the seed says.

The guest's cloud-init SSH parts are first checked on their own (in a scratch directory);
then the appliance VM boots in a lab host, the way tests/lab/test_appliance.py boots it, with a
seed from deploy/cloud_init.py, and deploy/engine_vm_ssh.py logs in from the host pinned to the
seed's key.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from ovirt_hosted_engine_setup.deploy import appliance as ova
from ovirt_hosted_engine_setup.deploy import cloud_init, engine_vm_ssh
from ovirt_hosted_engine_setup.lab import appliance, images

from .conftest import module_lab
from .test_lab import state

lab = module_lab(1, prefix='he-lab-ssh-')

BUILD = [sys.executable, '-m', 'ovirt_hosted_engine_setup.lab.appliance']
VM_IP, GATEWAY, BRIDGE = '192.168.225.2', '192.168.225.1', 'apsshbr0'
VM_MAC = '52:54:00:3e:a1:12'
FQDN = 'engine.lab.example.com'
ROOT_PW = 'root-Secret:x y'


# ------------------------------------------------------------ the guest's cloud-init alone

@pytest.fixture
def guest(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        'lab_cloud_init', os.path.join(appliance.GUEST_DIR, 'cloud_init.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.STATE_DIR = str(tmp_path / 'state')
    mod.CI_DIR = str(tmp_path / 'state' / 'cloud-init')
    mod.HOST_KEYS_PREFIX = str(tmp_path / 'state' / 'ssh')
    mod.HOST_KEYS_PREFIX_RUN = str(tmp_path / 'run' / 'ssh-host-keys')
    mod.SSHD_DROPIN_DIR = str(tmp_path / 'etc-ssh' / 'sshd_config.d')
    mod.SSHD_CLOUD_INIT_CONF = os.path.join(mod.SSHD_DROPIN_DIR, '50-cloud-init.conf')
    mod.ROOT_AUTHORIZED_KEYS = str(tmp_path / 'root-ssh' / 'authorized_keys')
    mod.LOG = str(tmp_path / 'cloud-init.log')
    mod.state_mounted = lambda: True
    os.makedirs(mod.STATE_DIR)
    return mod


def _keys_dir(mod):
    return os.path.join(mod.HOST_KEYS_PREFIX, 'etc', 'ssh')


def test_guest_host_keys_from_the_seed_once_per_instance(guest):
    key = cloud_init.generate_host_key()
    guest.host_keys({'ssh_keys': {'ed25519_private': key.private,
                                  'ed25519_public': key.public}}, 'iid-1')
    d = _keys_dir(guest)
    assert sorted(os.listdir(d)) == ['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']
    assert os.stat(os.path.join(d, 'ssh_host_ed25519_key')).st_mode & 0o777 == 0o600
    with open(os.path.join(d, 'ssh_host_ed25519_key')) as f:
        assert f.read() == key.private
    with open(os.path.join(d, 'ssh_host_ed25519_key.pub')) as f:
        assert f.read() == key.public + '\n'
    # the same instance again: kept, even if the seed were different
    other = cloud_init.generate_host_key()
    guest.host_keys({'ssh_keys': {'ed25519_private': other.private}}, 'iid-1')
    with open(os.path.join(d, 'ssh_host_ed25519_key')) as f:
        assert f.read() == key.private
    # a new instance: the old keys deleted (ssh_deletekeys), the new private key written and
    # its public half derived
    guest.host_keys({'ssh_keys': {'ed25519_private': other.private}}, 'iid-2')
    assert sorted(os.listdir(d)) == ['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']
    with open(os.path.join(d, 'ssh_host_ed25519_key.pub')) as f:
        assert f.read().split()[:2] == other.public.split()[:2]


def test_guest_generates_genkeytypes_without_ssh_keys(guest):
    guest.host_keys({'ssh_genkeytypes': ['ed25519']}, 'iid-1')
    assert sorted(os.listdir(_keys_dir(guest))) == ['ssh_host_ed25519_key',
                                                    'ssh_host_ed25519_key.pub']
    guest.host_keys({'ssh_genkeytypes': []}, 'iid-2')
    assert os.listdir(_keys_dir(guest)) == []


def test_guest_unsupported_ssh_keys_entry_is_logged(guest, capsys):
    guest.host_keys({'ssh_keys': {'dsa_private': 'x'}, 'ssh_genkeytypes': []}, 'iid-1')
    assert "ssh_keys: 'dsa_private' is not a supported key" in capsys.readouterr().out
    assert os.listdir(_keys_dir(guest)) == []


@pytest.mark.parametrize('pwauth, line', [(True, 'PasswordAuthentication yes'),
                                          (False, 'PasswordAuthentication no'),
                                          ('unchanged', None), (None, None)])
def test_guest_ssh_pwauth(guest, pwauth, line):
    user = {} if pwauth is None else {'ssh_pwauth': pwauth}
    guest.sshd_settings(user)
    if line is None:
        assert not os.path.exists(guest.SSHD_CLOUD_INIT_CONF)
    else:
        with open(guest.SSHD_CLOUD_INIT_CONF) as f:
            assert line in f.read().splitlines()


def test_guest_disable_root_prefixes_root_keys(guest):
    guest.root_keys({'ssh_authorized_keys': ['ssh-ed25519 AAAA a@b'], 'disable_root': False})
    guest.root_keys({'ssh_authorized_keys': ['ssh-ed25519 BBBB c@d']})   # default: true
    with open(guest.ROOT_AUTHORIZED_KEYS) as f:
        lines = f.read().splitlines()
    assert lines[0] == 'ssh-ed25519 AAAA a@b'
    assert lines[1].startswith('no-port-forwarding,no-agent-forwarding,no-X11-forwarding,'
                               'command="echo \'Please login as the user \\"NONE\\" rather '
                               'than the user \\"root\\".\';echo;sleep 10;exit 142" ')
    assert lines[1].endswith(' ssh-ed25519 BBBB c@d')


def test_guest_sshd_dropins_kept_for_a_boot_without_seed(guest, tmp_path, monkeypatch):
    guest.sshd_settings({'ssh_pwauth': True})
    with open(os.path.join(guest.SSHD_DROPIN_DIR, '50-ovirt-hosted-engine.conf'), 'w') as f:
        f.write('PermitRootLogin yes\n')
    guest._keep_dropins()
    for fn in os.listdir(guest.SSHD_DROPIN_DIR):
        os.unlink(os.path.join(guest.SSHD_DROPIN_DIR, fn))
    guest._restore_dropins()
    assert sorted(os.listdir(guest.SSHD_DROPIN_DIR)) == ['50-cloud-init.conf',
                                                         '50-ovirt-hosted-engine.conf']


# ------------------------------------------------------------ the appliance VM in a lab host

@pytest.fixture(scope='module')
def ova_path():
    r = subprocess.run(BUILD, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return appliance.ova_path()


# Run in host1: log in to the VM with engine_vm_ssh, pinned to the seed's key; the secrets
# come on stdin (JSON), never on a command line.
LOGIN = r'''
import json, sys, time
from ovirt_hosted_engine_setup.deploy import engine_vm_ssh as evs
a = json.loads(sys.stdin.read())
out = {}
try:
    vm = evs.connect(a['address'], a['pinned'], password=a.get('password'), key=a.get('key'),
                     wait=a.get('wait', 120), interval=1)
except evs.EngineVMSSHError as e:
    out['error'] = [type(e).__name__, str(e)]
else:
    with vm:
        lines = []
        out['status'] = vm.run(a.get('command', 'echo ok'),
                               on_line=lambda s, ln: lines.append([s, ln]), timeout=60)
        out['lines'] = lines
        if a.get('upload'):
            vm.write_file('/root/uploaded', 'secret text\n')
            got = []
            vm.run('stat -c %a /root/uploaded; cat /root/uploaded',
                   on_line=lambda s, ln: got.append(ln))
            out['uploaded'] = got
print(json.dumps(out))
'''


def _login(lab, **args):
    r = lab.exec('host1', sys.executable, '-c', LOGIN, input=json.dumps(args), timeout=300)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _virsh(lab, *args, check=True, timeout=60):
    return lab.exec('host1', 'virsh', '-c', 'qemu:///system', *args, check=check,
                    timeout=timeout)


def _wait_gone(lab, name, timeout=90):
    lab.exec('host1', 'sh', '-c', 'for i in $(seq %d); do '
             'virsh -c qemu:///system list --name | grep -qx %s || exit 0; sleep 1; done; '
             'exit 1' % (timeout, name), timeout=timeout + 30)


def _last_boot(console):
    with open(console, errors='replace') as f:
        text = f.read()
    return text[text.rfind('lab-appliance: starting'):]


def _boots(console):
    try:
        with open(console, errors='replace') as f:
            return f.read().count('lab-appliance: starting')
    except FileNotFoundError:
        return 0


def _wait_ready(console, boots, timeout=180):
    """The console of boot number `boots` (the file is removed before each start) once it
    says ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _boots(console) >= boots and 'lab-appliance: ready' in _last_boot(console):
            return _last_boot(console)
        time.sleep(1)
    raise AssertionError('the appliance did not get ready in %d s: %s'
                         % (timeout, _last_boot(console) if os.path.exists(console) else '-'))


def _domain(work, name, instance, disk, seed, console):
    xml = images.domain_xml(name, instance, disk_path=disk, memory_mib=appliance.MEMORY_MIB,
                            bridge=BRIDGE, mac=VM_MAC, console_log=console)
    root = ET.fromstring(xml)
    if seed:
        cdrom = ET.fromstring(
            "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
            "<source file='%s'/><target dev='hdc' bus='ide'/><readonly/></disk>" % seed)
        root.find('devices').insert(2, cdrom)
    path = os.path.join(work, '%s-%s.xml' % (name, 'seed' if seed else 'noseed'))
    with open(path, 'wb') as f:
        f.write(ET.tostring(root))
    return path


def _console_keys(boot):
    return re.findall(r'lab-appliance: SSH host key (\S+) (SHA256:\S+)', boot)


@pytest.fixture(scope='module')
def vm_env(lab, ova_path):
    work = os.path.join(state(lab)['storage'], 'appliance-ssh')
    os.makedirs(work)
    lab.exec('host1', 'sh', '-c', 'ip link add %s type bridge && ip addr add %s/24 dev %s && '
             'ip link set %s up' % (BRIDGE, GATEWAY, BRIDGE, BRIDGE))
    client = os.path.join(work, 'client')
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', client], check=True)
    return {'work': work, 'client': client}


def _new_disk(work, name):
    disk = os.path.join(work, '%s.raw' % name)
    with open(disk, 'wb') as f:
        f.truncate(2 << 30)
    ova.Appliance.open(appliance.ova_path()).copy_to_volume(disk, volume_format='raw')
    return disk


def test_vm_host_key_from_the_seed_pinned_and_kept(lab, vm_env):
    work, name = vm_env['work'], 'sshVM1'
    disk = _new_disk(work, name)
    instance = str(uuid.uuid4())
    host_key = cloud_init.generate_host_key()
    with open(vm_env['client'] + '.pub') as f:
        client_pub = f.read().strip()
    spec = cloud_init.SeedSpec(
        instance_id=instance, hostname=FQDN, root_password=ROOT_PW,
        root_ssh_pubkey=client_pub, root_ssh_access='yes', ip='%s/24' % VM_IP,
        gateway=GATEWAY, dns=[GATEWAY], mac=VM_MAC, run_engine_setup=False,
        ssh_host_key=host_key)
    seed = cloud_init.build_seed_iso(spec, os.path.join(work, 'seed1.iso'))
    console = os.path.join(work, '%s-console.log' % name)
    with_seed = _domain(work, name, instance, disk, seed, console)
    without_seed = _domain(work, name, instance, disk, None, console)
    try:
        _virsh(lab, 'create', with_seed)
        boot1 = _wait_ready(console, 1)
        assert _console_keys(boot1) == [('ED25519', host_key.fingerprint)], boot1
        assert 'cloud-init: ssh_keys: ed25519 host key (private) from the seed' in boot1
        assert 'cloud-init: ssh_pwauth: PasswordAuthentication yes' in boot1
        assert 'lab-appliance: sshd listening on port 22' in boot1
        assert host_key.private.splitlines()[1] not in boot1

        out = _login(lab, address=VM_IP, pinned=host_key.public, password=ROOT_PW,
                     upload=True)
        assert out.get('status') == 0 and out['lines'] == [['stdout', 'ok']], out
        assert out['uploaded'] == ['600', 'secret text'], out
        # root's key from the seed (disable_root is false for root_ssh_access yes)
        with open(vm_env['client']) as f:
            key_text = f.read()
        out = _login(lab, address=VM_IP, pinned=host_key.public, key=key_text,
                     command='echo key; cat /etc/ssh/sshd_config.d/50-ovirt-hosted-engine.conf')
        assert out['lines'] == [['stdout', 'key'], ['stdout', 'PermitRootLogin yes']], out
        # another key pinned: refused, one line
        out = _login(lab, address=VM_IP, pinned=cloud_init.generate_host_key().public,
                     password=ROOT_PW)
        assert out['error'][0] == 'HostKeyChanged' and host_key.fingerprint in out['error'][1]
        assert out['error'][1].startswith('the engine VM %s offers the SSH host key' % VM_IP)
        out = _login(lab, address=VM_IP, pinned=host_key.public, password='wrong')
        assert out['error'][0] == 'AuthRefused', out

        # a restart without the seed (the cdrom is gone after the deploy): the same key, the
        # same password, the same sshd settings
        _virsh(lab, 'shutdown', name)
        _wait_gone(lab, name)
        os.unlink(console)
        _virsh(lab, 'create', without_seed)
        boot2 = _wait_ready(console, 1)
        assert 'cloud-init: no seed' in boot2
        assert _console_keys(boot2) == [('ED25519', host_key.fingerprint)], boot2
        assert 'SSH host keys generated' not in boot2
        out = _login(lab, address=VM_IP, pinned=host_key.public, password=ROOT_PW,
                     command='cat /etc/ssh/sshd_config.d/50-cloud-init.conf')
        assert ['stdout', 'PasswordAuthentication yes'] in out['lines'], out
    finally:
        _virsh(lab, 'destroy', name, check=False)
        _wait_gone(lab, name)


def test_vm_without_seed_keys_generates_and_keeps_them(lab, vm_env):
    """No ssh_keys in the seed: cloud-init generates the host keys at the first boot of the
    instance; the next boot keeps them (the VM offers the same ed25519 key)."""
    from ovirt_hosted_engine_setup.deploy import first_host
    work, name = vm_env['work'], 'sshVM2'
    disk = _new_disk(work, name)
    instance = str(uuid.uuid4())
    spec = cloud_init.SeedSpec(
        instance_id=instance, hostname=FQDN, root_password=ROOT_PW,
        root_ssh_access='no', ip='%s/24' % VM_IP, gateway=GATEWAY, mac=VM_MAC,
        run_engine_setup=False)
    seed = cloud_init.build_seed_iso(spec, os.path.join(work, 'seed2.iso'))
    console = os.path.join(work, '%s-console.log' % name)
    xml = _domain(work, name, instance, disk, seed, console)
    try:
        _virsh(lab, 'create', xml)
        boot1 = _wait_ready(console, 1)
        keys1 = dict(_console_keys(boot1))
        assert sorted(keys1) == ['ECDSA', 'ED25519', 'RSA'], boot1
        assert 'cloud-init: SSH host key ed25519 generated' in boot1
        offered = lab.exec('host1', sys.executable, '-c',
                           'from ovirt_hosted_engine_setup.deploy import first_host as f; '
                           'print(f.host_key(%r)[1])' % VM_IP).stdout.strip()
        assert offered == keys1['ED25519']
        _virsh(lab, 'shutdown', name)
        _wait_gone(lab, name)
        os.unlink(console)
        _virsh(lab, 'create', xml)
        boot2 = _wait_ready(console, 1)
        assert 'SSH host keys of instance %s kept' % instance in boot2
        assert dict(_console_keys(boot2)) == keys1
        # root_ssh_access no: PermitRootLogin no, the password refused
        pub = lab.exec('host1', 'ssh-keyscan', '-t', 'ed25519', VM_IP).stdout.split(None, 1)[1]
        assert first_host.fingerprint_of(engine_vm_ssh.public_key(pub)) == keys1['ED25519']
        out = _login(lab, address=VM_IP, pinned=pub.strip(), password=ROOT_PW)
        assert out['error'][0] == 'AuthRefused', out
    finally:
        _virsh(lab, 'destroy', name, check=False)
        _wait_gone(lab, name)
