"""The lab engine appliance: the OVA built from Debian packages, and the VM it makes in a lab host.

The VM boots from the disk of the OVA (copied into a volume on the lab storage the way the
deploy copies it), reads a cloud-init seed ISO, configures its static address, runs the
engine-setup stand-in, which reports over the virtio-serial channel and starts the lab engine;
after a shutdown and a new start the engine state (on the VM's own disk) is still there.
"""
import importlib.util
import os
import re
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from ovirt_hosted_engine_setup.deploy import appliance as ova
from ovirt_hosted_engine_setup.deploy import cloud_init
from ovirt_hosted_engine_setup.lab import appliance, images

from .test_lab import state

BUILD = [sys.executable, '-m', 'ovirt_hosted_engine_setup.lab.appliance']
GUEST_DIR = appliance.GUEST_DIR
VM_IP, GATEWAY, BRIDGE = '192.168.224.2', '192.168.224.1', 'apbr0'
VM_MAC = '52:54:00:3e:a1:02'
FQDN = 'engine.lab.example.com'


@pytest.fixture(scope='module')
def ova_path():
    r = subprocess.run(BUILD, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return appliance.ova_path()


def test_second_build_returns_at_once(ova_path):
    start = time.monotonic()
    r = subprocess.run(BUILD, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert 'up to date' in r.stdout
    assert time.monotonic() - start < 5


def test_ova_carries_the_vm_and_a_qcow2_disk(ova_path):
    app = ova.Appliance.open(ova_path)
    assert app.vcpus == appliance.VCPUS and app.memory_mb == appliance.MEMORY_MIB
    assert app.disk_format == 'qcow2'
    assert app.disk_size_bytes == appliance.DISK_MIB << 20
    out = subprocess.run(['tar', 'tf', ova_path], capture_output=True, text=True,
                         check=True).stdout.split()
    assert sum(1 for n in out if n.endswith('.ovf')) == 1
    assert app.disk_member in out


def _engine_setup_module(tmp_path):
    spec = importlib.util.spec_from_file_location(
        'lab_engine_setup', os.path.join(GUEST_DIR, 'engine_setup.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.LOG_DIR = str(tmp_path / 'log')
    mod.STATE_DIR = str(tmp_path / 'state')
    return mod


@pytest.mark.parametrize('answers, message', [
    ('[environment:default]\nOVESETUP_CONFIG/fqdn=str:%s\n' % FQDN, 'no admin password'),
    ('[environment:default]\nOVESETUP_CONFIG/adminPassword=secret-pw\n',
     'invalid value in answer file'),
    ('[environment:default]\nOVESETUP_CONFIG/adminPassword=str:secret-pw\n'
     'OVESETUP_CONFIG/fqdn=str:engine\n', 'not fully qualified'),
    ('OVESETUP_CONFIG/adminPassword=str:secret-pw\n', 'not an otopi answer file'),
])
def test_engine_setup_refuses_bad_answers(tmp_path, capsys, answers, message):
    mod = _engine_setup_module(tmp_path)
    path = tmp_path / 'answers'
    path.write_text(answers)
    assert mod.main(['--offline', '--config-append=%s' % path]) == 1
    out = capsys.readouterr().out
    errors = [ln for ln in out.splitlines() if ln.startswith('[ ERROR ]')]
    assert len(errors) == 2 and message in errors[0], out
    assert errors[1] == '[ ERROR ] Execution of setup failed'
    assert 'secret-pw' not in out
    for log in (tmp_path / 'log').iterdir():
        assert 'secret-pw' not in log.read_text()
    assert not (tmp_path / 'state').exists()


def test_engine_setup_refuses_unknown_options(tmp_path, capsys):
    mod = _engine_setup_module(tmp_path)
    assert mod.main(['--bogus']) == 1
    assert "[ ERROR ] unknown option '--bogus'" in capsys.readouterr().out


PROBE = r'''
import socket, sys, time, urllib.request
channel, url, marker_timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
out = b''
if channel != '-':
    deadline = time.time() + 30
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(channel)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    s.settimeout(marker_timeout)
    while b'HE_APPLIANCE_ENGINE_SETUP_' not in out or not out.endswith(b'\n'):
        data = s.recv(4096)
        if not data:
            break
        out += data
sys.stdout.write(out.decode('utf-8', 'replace'))
deadline = time.time() + marker_timeout
while True:
    try:
        body = urllib.request.urlopen(url, timeout=3).read().decode()
        if 'DB Up' in body:
            break
    except OSError:
        pass
    if time.time() > deadline:
        body = 'no health page'
        break
    time.sleep(1)
print('HEALTH ' + body)
'''


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


def test_appliance_vm_sets_up_the_engine_and_keeps_its_state(lab, ova_path):
    work = os.path.join(state(lab)['storage'], 'appliance-vm')
    os.makedirs(work)
    # the VM disk: a volume bigger than the appliance's disk, filled as the deploy does
    disk = os.path.join(work, 'vm.raw')
    with open(disk, 'wb') as f:
        f.truncate(2 << 30)
    ova.Appliance.open(ova_path).copy_to_volume(disk, volume_format='raw')
    instance = str(uuid.uuid4())
    spec = cloud_init.SeedSpec(
        instance_id=instance, hostname=FQDN, root_password='root-secret',
        ip='%s/24' % VM_IP, gateway=GATEWAY, dns=[GATEWAY], mac=VM_MAC,
        etc_hosts=[('192.168.222.11', ['host1.lab.example.com'])],
        engine_answers=cloud_init.engine_answers(FQDN, 'admin-secret'))
    seed = cloud_init.build_seed_iso(spec, os.path.join(work, 'seed.iso'))
    channel = os.path.join(work, 'channel.sock')
    console = os.path.join(work, 'console.log')
    name = 'applianceVM'
    xml = images.domain_xml(name, instance, disk_path=disk, memory_mib=appliance.MEMORY_MIB,
                            bridge=BRIDGE, mac=VM_MAC, channel_path=channel,
                            console_log=console)
    root = ET.fromstring(xml)
    cdrom = ET.fromstring("<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
                          "<source file='%s'/><target dev='hdc' bus='ide'/><readonly/></disk>"
                          % seed)
    root.find('devices').insert(2, cdrom)
    xml_path = os.path.join(work, 'domain.xml')
    with open(xml_path, 'wb') as f:
        f.write(ET.tostring(root))
    lab.exec('host1', 'sh', '-c', 'ip link add %s type bridge && ip addr add %s/24 dev %s && '
             'ip link set %s up' % (BRIDGE, GATEWAY, BRIDGE, BRIDGE))
    health = 'http://%s%s' % (VM_IP, images.HEALTH_PATH)
    try:
        _virsh(lab, 'create', xml_path)
        out = lab.exec('host1', 'python3', '-c', PROBE, channel, health, '150',
                       timeout=200).stdout
        lines = out.splitlines()
        # the engine-setup output, then the marker, streamed over the channel
        assert lines[0] == '[ INFO  ] Stage: Initializing', out
        assert '[ INFO  ] Execution of setup completed successfully' in lines, out
        assert 'HE_APPLIANCE_ENGINE_SETUP_SUCCESS' in lines, out
        assert 'admin-secret' not in out and 'root-secret' not in out
        fp = re.search(r'Internal CA ([0-9A-F:]{95})', out).group(1)
        # the engine answers on the VM's static address
        assert lines[-1].startswith('HEALTH DB Up'), out
        assert ' 0% packet loss' in lab.exec('host1', 'ping', '-c', '1', '-W', '3',
                                             VM_IP).stdout
        boot1 = _last_boot(console)
        assert 'cloud-init: instance %s' % instance in boot1
        assert 'cloud-init: host name %s' % FQDN in boot1
        assert 'cloud-init: eth0: static address %s/24 gateway %s' % (VM_IP, GATEWAY) in boot1
        assert 'cloud-init: chpasswd: password of root set' in boot1
        assert 'lab-appliance: engine state on /dev/vda2' in boot1

        # graceful shutdown (ACPI), then a new start from the same disk
        _virsh(lab, 'shutdown', name)
        _wait_gone(lab, name)
        _virsh(lab, 'create', xml_path)
        out2 = lab.exec('host1', 'python3', '-c', PROBE, '-', health, '120',
                        timeout=160).stdout
        assert out2.strip().startswith('HEALTH DB Up'), out2
        boot2 = _last_boot(console)
        assert 'lab-appliance: the engine is set up; starting it' in boot2
        assert 'lab-appliance: engine CA %s' % fp in boot2
        assert 'cloud-init: runcmd: already run for instance %s' % instance in boot2
        assert 'Stage: Initializing' not in boot2
    finally:
        _virsh(lab, 'destroy', name, check=False)
