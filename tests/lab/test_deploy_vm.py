"""The VM CONFIGURATION section of a deploy run inside lab host1.

Each run uses an answer file presetting every section and ends at the configuration
preview (confirmSettings=False aborts there, before anything changes on the host), or
earlier with a one-line error. The key under test is changed by a second answer file, or
removed (none:None) and typed through stdin like a user at the prompt.
"""
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from ovirt_hosted_engine_setup.deploy import appliance as applib
from ovirt_hosted_engine_setup.lab import appliance as lab_appliance

from .conftest import LAB_CLI

PREVIEW = '--== CONFIGURATION PREVIEW ==--'
# confirmSettings=bool:False in the answer file stops the deploy at the preview
ABORTED = 'declined the deploy: OVEHOSTED_CORE/confirmSettings=bool:False'
MAC = '00:16:3e:5a:00:c8'


def base_answers(storage):
    return """[environment:default]
OVEHOSTED_CORE/deployProceed=bool:True
OVEHOSTED_CORE/confirmSettings=bool:False
OVEHOSTED_CORE/skipTTYCheck=bool:True
OVEHOSTED_CORE/acceptedWarnings=multi-str:
    low-memory
    low-vcpus
OVEHOSTED_STORAGE/domainType=str:localfs
OVEHOSTED_STORAGE/storageDomainConnection=str:%(storage)s
OVEHOSTED_STORAGE/storageDomainName=str:hosted_storage
OVEHOSTED_STORAGE/storageDatacenterName=str:hosted_datacenter
OVEHOSTED_STORAGE/imgSizeGB=int:25
OVEHOSTED_STORAGE/sanlockIoTimeout=int:10
OVEHOSTED_NETWORK/firewallManager=str:none
OVEHOSTED_NETWORK/bridgeIf=str:eth0
OVEHOSTED_NETWORK/bridgeName=str:ovirtmgmt
OVEHOSTED_NETWORK/gateway=str:192.168.222.1
OVEHOSTED_NETWORK/network_test=str:ping
OVEHOSTED_NETWORK/host_name=str:host1.lab.test
OVEHOSTED_VM/ovfArchive=str:%(ova)s
OVEHOSTED_VDSM/cpu=str:model_Nehalem
OVEHOSTED_VM/vmVCpus=int:1
OVEHOSTED_VM/vmMemSizeMB=int:1024
OVEHOSTED_VM/vmMACAddr=str:%(mac)s
OVEHOSTED_VDSM/consoleType=str:vnc
OVEHOSTED_VM/cloudInitISO=str:generate
OVEHOSTED_NETWORK/fqdn=str:engine.lab.test
OVEHOSTED_VM/cloudinitExecuteEngineSetup=bool:True
OVEHOSTED_VM/cloudinitVMStaticCIDR=str:192.168.222.200/24
OVEHOSTED_VM/cloudinitVMDNS=str:192.168.222.1
OVEHOSTED_VM/cloudinitVMETCHOSTS=bool:True
OVEHOSTED_VM/cloudinitVMTZ=str:UTC
OVEHOSTED_VM/cloudinitRootPwd=str:lab-root-Pa55
OVEHOSTED_VM/rootSshAccess=str:yes
OVEHOSTED_VM/rootSshPubkey=str:
OVEHOSTED_ENGINE/datacenterName=str:Default
OVEHOSTED_ENGINE/clusterName=str:Default
OVEHOSTED_ENGINE/appHostName=str:host1
OVEHOSTED_ENGINE/adminPassword=str:lab-admin-Pa55
OVEHOSTED_NOTIF/smtpServer=str:localhost
OVEHOSTED_NOTIF/smtpPort=int:25
OVEHOSTED_NOTIF/sourceEmail=str:root@localhost
OVEHOSTED_NOTIF/destEmail=str:root@localhost
""" % {'storage': storage, 'ova': lab_appliance.ova_path(), 'mac': MAC}


class Deploy:
    """hosted-engine --deploy inside host1 with the base answers plus overrides."""

    def __init__(self, lab, work):
        self.lab = lab
        self.work = work
        self.base = os.path.join(work, 'base.conf')
        storage = os.path.join(lab.dir, 'storage')
        with open(self.base, 'w') as f:
            f.write(base_answers(storage))

    def argv(self, override):
        path = os.path.join(self.work, 'override-%s.conf' % uuid.uuid4().hex[:8])
        with open(path, 'w') as f:
            f.write('[environment:default]\n' + override + '\n')
        return LAB_CLI + ['exec', 'host1', '--', 'hosted-engine', '--deploy',
                          '--config-append=%s' % self.base, '--config-append=%s' % path]

    def run(self, override=''):
        """Unattended: stdin is empty, so any question not preset ends the run."""
        r = subprocess.run(self.argv(override), env=dict(self.lab.env, TERM='dumb'),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=300)
        return r.returncode, r.stdout + r.stderr

    def interact(self, override, rules, timeout=300):
        """Answer prompts like a user: rules is an ordered list of (prompt text, answer);
        each prompt (a line ending in ': ' awaiting input) takes the next rule whose text
        it contains. A prompt no rule matches gets end of input."""
        proc = subprocess.Popen(self.argv(override), env=dict(self.lab.env, TERM='dumb'),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        out = b''
        pending = list(rules)
        answered = []
        deadline = time.monotonic() + timeout
        fd = proc.stdout.fileno()
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    out += chunk
                    continue
                last = out.decode('utf-8', 'replace').rsplit('\n', 1)[-1]
                if not last.endswith(': ') or proc.stdin.closed:
                    continue
                if pending and pending[0][0] in last:
                    text, answer = pending.pop(0)
                    answered.append(text)
                    proc.stdin.write((answer + '\n').encode())
                    proc.stdin.flush()
                    out += b'\n'
                else:
                    proc.stdin.close()
            proc.wait(timeout=max(1, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, out.decode('utf-8', 'replace'), answered, pending


@pytest.fixture(scope='module')
def deploy(lab):
    work = tempfile.mkdtemp(prefix='he-deploy-vm-', dir='/var/tmp')
    try:
        yield Deploy(lab, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def preview(text):
    assert PREVIEW in text, text
    lines = text.split(PREVIEW, 1)[1].splitlines()
    out = {}
    for line in lines:
        m = re.match(r'^\s+(\S.*?)\s*: (.*)$', line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def error_lines(text):
    return [line for line in text.splitlines() if line.startswith('[ ERROR ]')]


def assert_one_line_error(code, text, *needles):
    assert code == 1, text
    assert PREVIEW not in text, text
    errors = error_lines(text)
    assert errors, text
    first = errors[0]
    for needle in needles:
        assert needle in first, text
    return first


# ------------------------------------------------------------------ good values

def test_good_values_reach_the_preview(deploy):
    code, text = deploy.run()
    assert code == 1 and ABORTED in text, text
    p = preview(text)
    assert p['Memory size MB'] == '1024'
    assert p['Number of CPUs'] == '1'
    assert p['CPU Type'] == 'model_Nehalem'
    assert p['MAC address'] == MAC
    assert p['Console type'] == 'vnc'
    assert p['Engine FQDN'] == 'engine.lab.test'
    assert p['Engine VM IP address'] == '192.168.222.200/24'
    assert p['OVF archive'] == lab_appliance.ova_path()
    assert 'Appliance ovirt-engine-appliance-lab.ova: 1 vCPU, 1024 MB of memory' in text
    # the accepted warnings are shown, not asked
    assert '(accepted: low-memory)' in text and '(accepted: low-vcpus)' in text
    assert 'continue anyway' not in text
    assert 'lab-root-Pa55' not in text and 'lab-admin-Pa55' not in text


# ------------------------------------------------------------------ sizes

def test_low_memory_not_accepted_unattended_asks_and_eof_aborts(deploy):
    code, text = deploy.run('OVEHOSTED_CORE/acceptedWarnings=multi-str:\n    low-vcpus')
    assert code == 1, text
    assert '1024 MB of memory is below the minimum requirement of 4096 MB' in text
    assert 'Do you want to continue anyway? (Yes, No)[No]' in text
    assert PREVIEW not in text
    assert 'End of input while asking OVEHOSTED_ACCEPT_LOW_MEMORY' in text


def test_low_vcpus_not_accepted_unattended_asks_and_eof_aborts(deploy):
    code, text = deploy.run('OVEHOSTED_CORE/acceptedWarnings=multi-str:\n    low-memory')
    assert code == 1, text
    assert '1 vCPU is below the minimum requirement of 2' in text
    assert 'Do you want to continue anyway? (Yes, No)[No]' in text
    assert 'End of input while asking OVEHOSTED_ACCEPT_LOW_VCPUS' in text
    assert PREVIEW not in text


def test_memory_above_the_host_is_an_error(deploy):
    assert_one_line_error(*deploy.run('OVEHOSTED_VM/vmMemSizeMB=int:99999999'),
                          'OVEHOSTED_VM/vmMemSizeMB', 'free on this host', 'give at most')


def test_vcpus_above_the_host_is_an_error(deploy):
    cores = os.cpu_count()
    assert_one_line_error(*deploy.run('OVEHOSTED_VM/vmVCpus=int:%d' % (cores + 1)),
                          'OVEHOSTED_VM/vmVCpus', 'CPU cores of this host',
                          'give at most %d' % cores)


def test_unsupported_cpu_type_is_an_error_listing_the_supported(deploy):
    assert_one_line_error(*deploy.run('OVEHOSTED_VDSM/cpu=str:model_NoSuchCPU'),
                          'model_NoSuchCPU is not supported by this host', 'model_Nehalem')


@pytest.fixture(scope='module')
def big_disk_ova(deploy):
    """An OVA whose OVF declares a 30 GiB virtual disk."""
    work = deploy.work
    disk = os.path.join(work, 'tiny.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, '30G'], check=True)
    path = os.path.join(work, 'big.ova')
    applib.build_ova(path, disk, vcpus=2, memory_mb=4096)
    return path


def test_disk_smaller_than_the_appliance_is_an_error(deploy, big_disk_ova):
    first = assert_one_line_error(*deploy.run(
        'OVEHOSTED_VM/ovfArchive=str:%s\nOVEHOSTED_VM/vmVCpus=int:1\n'
        'OVEHOSTED_STORAGE/imgSizeGB=int:25' % big_disk_ova),
        'disk smaller than the appliance: at least 30 GiB', 'OVEHOSTED_STORAGE/imgSizeGB')
    assert '25 GiB' in first


# ------------------------------------------------------------------ MAC

@pytest.mark.parametrize('mac, needle', [
    ('00:16:3e:00:00', 'is not a MAC address'),
    ('01:16:3e:00:00:01', 'multicast'),
])
def test_bad_mac_is_an_error(deploy, mac, needle):
    assert_one_line_error(*deploy.run('OVEHOSTED_VM/vmMACAddr=str:%s' % mac),
                          'OVEHOSTED_VM/vmMACAddr', needle)


def test_typed_bad_macs_are_asked_again(deploy):
    code, text, answered, pending = deploy.interact(
        'OVEHOSTED_VM/vmMACAddr=none:None', [
            ('unicast MAC address', '01:00:5e:00:00:01'),
            ('unicast MAC address', 'zz:zz'),
            ('unicast MAC address', '00:16:3E:12:34:56'),
        ])
    assert not pending, text
    assert 'multicast; use a unicast address' in text
    assert 'malformed' in text
    assert preview(text)['MAC address'] == '00:16:3e:12:34:56'


# ------------------------------------------------------------------ OVA

@pytest.fixture(scope='module')
def bad_ovas(deploy):
    work = deploy.work
    not_tar = os.path.join(work, 'not-a-tar.ova')
    with open(not_tar, 'wb') as f:
        f.write(b'this is not an archive\n' * 100)
    no_ovf = os.path.join(work, 'no-ovf.ova')
    payload = os.path.join(work, 'payload.txt')
    with open(payload, 'w') as f:
        f.write('disk\n')
    subprocess.run(['tar', '-cf', no_ovf, '-C', work, 'payload.txt'], check=True)
    return {'missing': os.path.join(work, 'missing.ova'), 'not_tar': not_tar,
            'no_ovf': no_ovf}


@pytest.mark.parametrize('kind, needle', [
    ('missing', 'does not exist'),
    ('not_tar', 'is not a tar archive'),
    ('no_ovf', 'holds no .ovf file'),
])
def test_bad_ova_is_an_error(deploy, bad_ovas, kind, needle):
    first = assert_one_line_error(*deploy.run('OVEHOSTED_VM/ovfArchive=str:%s'
                                              % bad_ovas[kind]),
                                  'OVEHOSTED_VM/ovfArchive', needle)
    assert bad_ovas[kind] in first


# ------------------------------------------------------------------ FQDN

@pytest.mark.parametrize('fqdn, needle', [
    ('bad_name.lab.test', 'not a valid host name'),
    ('localhost', 'not a fully qualified domain name'),
])
def test_bad_fqdn_in_answer_file_is_an_error(deploy, fqdn, needle):
    assert_one_line_error(*deploy.run('OVEHOSTED_NETWORK/fqdn=str:%s' % fqdn),
                          'OVEHOSTED_NETWORK/fqdn', needle)


def test_fqdn_resolving_to_this_host_is_an_error(deploy):
    assert_one_line_error(*deploy.run('OVEHOSTED_NETWORK/fqdn=str:host1.lab.test'),
                          'resolves to 192.168.222.11, an address of this host')


def test_typed_fqdns_are_validated_the_same_way(deploy):
    code, text, answered, pending = deploy.interact(
        'OVEHOSTED_NETWORK/fqdn=none:None', [
            ('Engine VM FQDN', 'localhost'),
            ('Engine VM FQDN', 'host1.lab.test'),
            ('Engine VM FQDN', 'engine.lab.test'),
        ])
    assert not pending, text
    assert 'localhost cannot be the engine FQDN' in text
    assert 'resolves to 192.168.222.11, an address of this host' in text
    assert preview(text)['Engine FQDN'] == 'engine.lab.test'


def test_static_address_other_than_the_fqdn_is_an_error(deploy):
    assert_one_line_error(*deploy.run(
        'OVEHOSTED_VM/cloudinitVMStaticCIDR=str:192.168.222.201/24'),
        'OVEHOSTED_VM/cloudinitVMStaticCIDR', 'resolves to 192.168.222.200')


# ------------------------------------------------------------------ passwords

def test_root_passwords_not_matching_are_asked_again(deploy):
    code, text, answered, pending = deploy.interact(
        'OVEHOSTED_VM/cloudinitRootPwd=none:None', [
            ('Enter root password', 'first-Pa55'),
            ('Confirm appliance root password', 'other-Pa55'),
            ('Enter root password', 'good-Pa55'),
            ('Confirm appliance root password', 'good-Pa55'),
        ])
    assert not pending, text
    assert 'Passwords do not match' in text
    assert code == 1 and ABORTED in text
    preview(text)
    for secret in ('first-Pa55', 'other-Pa55', 'good-Pa55'):
        assert secret not in text


def test_empty_root_password_in_answer_file_is_an_error(deploy):
    assert_one_line_error(*deploy.run('OVEHOSTED_VM/cloudinitRootPwd=str:'),
                          'root password of the engine VM is empty')


# ------------------------------------------------------------------ typed section

def test_whole_section_typed_with_defaults(deploy):
    """Every VM question removed from the answers: defaults from the OVF and the host."""
    keys = ['OVEHOSTED_VM/ovfArchive', 'OVEHOSTED_VDSM/cpu', 'OVEHOSTED_VM/vmVCpus',
            'OVEHOSTED_VM/vmMemSizeMB', 'OVEHOSTED_VM/vmMACAddr', 'OVEHOSTED_VDSM/consoleType',
            'OVEHOSTED_VM/cloudInitISO', 'OVEHOSTED_NETWORK/fqdn',
            'OVEHOSTED_VM/cloudinitExecuteEngineSetup', 'OVEHOSTED_VM/cloudinitVMStaticCIDR',
            'OVEHOSTED_VM/cloudinitVMDNS', 'OVEHOSTED_VM/cloudinitVMETCHOSTS',
            'OVEHOSTED_VM/cloudinitVMTZ', 'OVEHOSTED_VM/cloudinitRootPwd',
            'OVEHOSTED_VM/rootSshAccess', 'OVEHOSTED_VM/rootSshPubkey',
            'OVEHOSTED_CORE/acceptedWarnings']
    code, text, answered, pending = deploy.interact(
        '\n'.join('%s=none:None' % k for k in keys), [
            ('Please specify path to OVF archive', lab_appliance.ova_path()),
            ('Please specify the CPU type', ''),
            ('number of virtual CPUs', ''),
            ('continue anyway', 'yes'),
            ('memory size of the VM in MB', ''),
            ('continue anyway', 'no'),
            ('memory size of the VM in MB', '2048'),
            ('continue anyway', 'yes'),
            ('unicast MAC address', ''),
            ('console type', ''),
            ('use cloud-init', ''),
            ('generate on-fly', ''),
            ('Engine VM FQDN', 'engine.lab.test'),
            ('execute engine-setup', ''),
            ('Enter root password', 'typed-Pa55'),
            ('Confirm appliance root password', 'typed-Pa55'),
            ('ssh public key', ''),
            ('ssh access for the root user', ''),
            ('How should the engine VM network be configured', 'static'),
            ('IP address to be used for the engine VM', ''),
            ('Engine VM DNS', '192.168.222.1'),
            ('could resolve the engine VM hostname', ''),
            ('time zone', 'UTC'),
        ])
    assert not pending, text
    assert code == 1 and ABORTED in text, text
    assert 'The following CPU types are supported by this host:' in text
    assert '(Defaults to appliance OVF value) [1]' in text
    assert '(Defaults to appliance OVF value) [1024]' in text
    p = preview(text)
    assert p['Number of CPUs'] == '1'
    assert p['Memory size MB'] == '2048'
    assert p['CPU Type'].startswith('model_')
    assert re.match(r'^00:16:3e:[0-7][0-9a-f]:[0-9a-f]{2}:[0-9a-f]{2}$', p['MAC address'])
    assert p['Engine VM IP address'] == '192.168.222.200/24'   # the FQDN's, /24 of eth0
    assert p['Root SSH access'] == 'yes'
    assert p['Add engine and host to /etc/hosts'] == 'False'
    assert 'typed-Pa55' not in text
