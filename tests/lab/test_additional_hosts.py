"""The first-host deploy typed end to end, then additional hosts, in a four-host lab: the
engine deployed on host1 becomes highly available on host2, host3 and host4, then survives
the loss of host1.

- host1: the deploy typed through a pseudo-terminal as a person types it (like the seed
  transcript): every question of the five sections, the preview, then the real work:
  bridge, storage domain, appliance, seed, engine VM, engine-setup in the VM, health page,
  engine CA, host added through ovirt-engine-sdk-python, configuration, hand-over to the HA
  services; `--vm-status` shows the engine up with good health, the engine's API lists
  host1 Up, no password is on disk. (A sanlock I/O timeout of 5 s is given on the command
  line for the hosted-engine lockspace, and the lab's host agents give it to the storage
  domain's lockspace, which holds the engine VM's lease (`up --sanlock-io-timeout 5`), so
  that a dead host's leases free sooner: 100 s instead of 140 s.)
- host4, never deployed but with a storage connection left there:
  `ovirt-hosted-engine-cleanup -q --remove-storage` deletes nothing;
- bad input on an additional host, each a one-line error, exit 1, nothing changed;
- three ways of joining, at once: host2 typed on a pseudo-terminal (the first host's answers
  from the configuration volume), host3 unattended with the answers fetched over SFTP from
  host1 (examples/lab-additional-host-scp-answers.conf), host4 added through the engine's
  API with deploy_hosted_engine=true (the engine deploys it over SSH);
- every host's `--vm-status` shows the four hosts live with their scores; the engine lists
  them Up as hosted-engine hosts, with hosted_storage and the HostedEngine VM; deploying
  host2 again is refused;
- host4 undeployed through the engine (maintenance, reinstall with
  undeploy_hosted_engine=true): its slot is freed, eth0 has its configuration back, the
  others go on; the answers.conf host1's deploy wrote replays there to the preview without
  a question;
- host1 powered off hard (every process of the host killed at once): the engine comes back
  healthy on another host, its inventory intact, and never two engine VMs run.
"""
import json
import os
import re
import subprocess
import threading
import time

import pytest

from ovirt_hosted_engine_setup.lab import appliance
from ovirt_hosted_engine_setup.lab import sshd as lab_sshd

from .conftest import module_lab
from .deploy_helpers import TOP, error_lines, lab_storage, type_deploy, wait_for

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root'),
              pytest.mark.timeout(900)]

ADMIN_PW = 'Typed-Admin-Pa55'
ROOT_PW = 'Typed-Root-Pa55'
CA = '/var/lib/ovirt-hosted-engine-hostd/pki/trusted-cas/engine-engine.lab.test.pem'
EXAMPLES = os.path.join(TOP, 'examples')
IO_TIMEOUT = 5
IO_TIMEOUT_ARGS = ['--otopi-environment=OVEHOSTED_STORAGE/sanlockIoTimeout=int:%d' % IO_TIMEOUT]
WRITTEN = []     # the answers.conf the typed first-host deploy wrote
HOSTS = ('host1', 'host2', 'host3', 'host4')


lab = module_lab(4, 'he-additional-test-', sanlock_io_timeout=IO_TIMEOUT)


def example(lab, name, path, extra=()):
    """An example answer file for this lab's storage, with extra lines."""
    text = open(os.path.join(EXAMPLES, name)).read().replace(
        '/var/lib/ovirt-hosted-engine-lab/lab/storage', lab_storage(lab))
    with open(path, 'w') as f:
        f.write(text + ''.join(line + '\n' for line in extra))
    os.chmod(path, 0o600)
    return str(path)


def he_deploy(lab, host, *answers, timeout=900, **kw):
    return lab.exec(host, 'hosted-engine', '--deploy',
                    *['--config-append=%s' % a for a in answers], check=False,
                    timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def vm_status(lab, host):
    r = lab.exec(host, 'hosted-engine', '--vm-status', '--json', check=False, timeout=120)
    if r.returncode != 0:
        return {}
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {}


def live_hosts(status):
    return {int(k): v for k, v in status.items() if k.isdigit() and v.get('live-data')}


def engine_vms(lab, hosts):
    """{host: number of engine VMs (HostedEngine) running there} of the hosts that answer.
    Running: its CPUs run. A VM that libvirt is starting stays paused until its sanlock
    lease is acquired, and is stopped when another host holds the lease: not counted."""
    out = {}
    for h in hosts:
        r = lab.exec(h, 'virsh', '-c', 'qemu:///system', 'list', '--state-running', '--name',
                     check=False, timeout=60)
        if r.returncode == 0:
            out[h] = r.stdout.split().count('HostedEngine')
    return out


SDK = r'''
import json, sys, time
import ovirtsdk4 as sdk
import ovirtsdk4.types as types
args = json.loads(sys.argv[1])
c = sdk.Connection(url="https://engine.lab.test/ovirt-engine/api", username="admin@internal",
                   password=sys.stdin.readline().strip(), ca_file=%r, timeout=120)
hosts = c.system_service().hosts_service()
def find(name):
    return next(h for h in hosts.list() if h.name == name)
out = {}
if args["op"] == "list":
    out["hosts"] = []
    for h in hosts.list(all_content=True):
        he = h.hosted_engine
        out["hosts"].append({"name": h.name, "status": h.status.value,
                             "configured": he.configured if he else None,
                             "score": he.score if he else None})
    out["domains"] = [d.name for d in c.system_service().storage_domains_service().list()]
    out["vms"] = [(v.name, v.status.value) for v in c.system_service().vms_service().list()]
elif args["op"] == "add":
    h = hosts.add(types.Host(name=args["name"], address=args["address"],
                             root_password=sys.stdin.readline().strip(),
                             cluster=types.Cluster(name="Default")),
                  deploy_hosted_engine=True)
    out["id"] = h.id
elif args["op"] == "deactivate":
    hosts.host_service(find(args["name"]).id).deactivate()
elif args["op"] == "undeploy":
    hosts.host_service(find(args["name"]).id).install(
        root_password=sys.stdin.readline().strip(), undeploy_hosted_engine=True)
print(json.dumps(out))
c.close()
''' % CA


def sdk(lab, op, via='host1', **args):
    """An engine API call through ovirt-engine-sdk-python, run inside a lab host."""
    args['op'] = op
    r = lab.exec(via, 'python3', '-c', SDK, json.dumps(args), check=False, timeout=180,
                 input='%s\n%s\n' % (ADMIN_PW, lab_sshd.ROOT_PASSWORD))
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def rules(storage):
    """(text of a question, what a person types); the first found in the output wins."""
    return [
        ('Are you sure you want to continue?', 'Yes'),
        ('Please specify the storage you would like to use', 'localfs'),
        ('directory shared by the hosts', storage),
        ('specify additional mount options', ''),
        ('Please provide storage domain name', ''),
        ('datacenter name', ''),
        ('disk size of the VM in GB', ''),
        ('do you wish setup to configure it?', 'Yes'),     # the firewall (nftables)
        ('nic to set', ''),
        ('pingable gateway IP address', ''),
        ('network connectivity should be checked', 'ping'),
        ('Host address', 'host1.lab.test'),
        ('OVF archive you would like to use', appliance.ova_path()),
        ('CPU type to be used by the VM', 'model_Nehalem'),
        ('number of virtual CPUs', ''),
        ('memory size of the VM in MB', ''),
        ('Do you want to continue anyway?', 'Yes'),
        ('unicast MAC address for the VM', ''),
        ('console type you would like to use', ''),
        ('emulated machine type', ''),
        ('use cloud-init to customize the appliance', ''),
        ('generate on-fly a cloud-init', ''),
        ('Engine VM FQDN', 'engine.lab.test'),
        ('Automatically execute engine-setup', ''),
        ('Enter root password that will be used', ROOT_PW),
        ('Confirm appliance root password', ROOT_PW),
        ('ssh public key for the root user', ''),
        ('ssh access for the root user', ''),
        ('How should the engine VM network be configured', 'Static'),
        ('IP address to be used for the engine VM', '192.168.222.200/24'),
        ('Engine VM DNS', '192.168.222.1'),
        ('is still up to you', 'Yes'),          # add engine and host to /etc/hosts
        ('time zone of the engine VM', 'UTC'),
        ('name of the data center where', ''),
        ('name of the cluster where', ''),
        ('identify this host inside the', 'host1'),
        ('Enter engine admin password', ADMIN_PW),
        ('Confirm engine admin password', ADMIN_PW),
        ('name of the SMTP server', ''),
        ('TCP port number of the SMTP server', ''),
        ('from which notifications will be sent', ''),
        ('which will get notifications', ''),
        ('Please confirm installation settings', 'Yes'),
    ]


def in_host(lab, *cmd, **kw):
    return lab.exec('host1', *cmd, **kw)


def engine_hosts(lab):
    code = ('import ovirtsdk4 as sdk\n'
            'c = sdk.Connection(url="https://engine.lab.test/ovirt-engine/api", '
            'username="admin@internal", password=open(0).read(), ca_file=%r)\n'
            'for h in c.system_service().hosts_service().list():\n'
            '    print(h.name, h.address, h.status.value)\n'
            'c.close()\n' % CA)
    r = in_host(lab, 'python3', '-c', code, input=ADMIN_PW, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split()


def test_typed_first_host_deploy_ends_with_the_engine_up_under_ha(lab, tmp_path):
    transcript = open(tmp_path / 'transcript.txt', 'w')
    ok, code, asked = type_deploy(lab, 'host1', rules(lab_storage(lab)), transcript,
                                  args=IO_TIMEOUT_ARGS)
    transcript.close()
    out = open(tmp_path / 'transcript.txt').read()
    assert ok and code == 0, out[-6000:]
    # every section was asked, in order, and the typed passwords never echoed
    titles = [m.group(1) for m in re.finditer(r'--== ([A-Z ]+) ==--', out)]
    assert titles[:5] == ['STORAGE CONFIGURATION', 'NETWORK CONFIGURATION', 'VM CONFIGURATION',
                          'HOSTED ENGINE CONFIGURATION', 'CONFIGURATION PREVIEW'], titles
    assert ADMIN_PW not in out and ROOT_PW not in out
    assert 'engine-setup: ' in out and 'SHA-256 fingerprint' in out
    assert not [a for a in asked if a.startswith('default:')], asked

    # the firewall: host1's own table, recorded; the machine's ruleset has no such table
    table = in_host(lab, 'nft', 'list', 'table', 'inet', 'ovirt_hosted_engine').stdout
    assert 'policy drop;' in table and 'tcp dport 54321 accept' in table, table
    assert os.path.isfile(os.path.join(lab.dir, 'hosts', 'host1',
                                       'var-lib-ovirt-hosted-engine-setup', 'firewall.json'))
    assert 'ovirt_hosted_engine' not in subprocess.run(
        ['nft', 'list', 'tables'], capture_output=True, text=True).stdout

    # the HA services report the engine up with good health
    deadline = time.monotonic() + 300
    while True:
        r = in_host(lab, 'hosted-engine', '--vm-status', check=False)
        if '"health": "good"' in r.stdout and '"vm": "up"' in r.stdout:
            break
        assert time.monotonic() < deadline, r.stdout + r.stderr
        time.sleep(5)
    assert 'Engine status' in r.stdout
    # 3400 on an idle machine; only the CPU-load penalty (at most 1000) depends on what else
    # the machine running the test is doing
    score = int(re.search(r'^Score\s+: (\d+)$', r.stdout, re.M).group(1))
    assert 2400 <= score <= 3400, r.stdout

    # the engine lists this host Up (it reached the host agent through the firewall)
    assert engine_hosts(lab)[:3] == ['host1', 'host1.lab.test', 'up']

    # the written files: mode 0600 answers, no password anywhere on the host's disk
    hd = os.path.join(lab.dir, 'hosts', 'host1')
    answers = os.path.join(hd, 'etc-ovirt-hosted-engine', 'answers.conf')
    assert oct(os.stat(answers).st_mode & 0o777) == '0o600'
    text = open(answers).read()
    assert 'OVEHOSTED_STORAGE/domainType=str:localfs' in text
    assert 'adminPassword' not in text and 'cloudinitRootPwd' not in text
    for d, _, files in os.walk(hd):
        for f in files:
            p = os.path.join(d, f)
            if os.path.isfile(p) and os.path.getsize(p) < 50 << 20:
                data = open(p, 'rb').read()
                assert ADMIN_PW.encode() not in data and ROOT_PW.encode() not in data, p
    with open(answers) as f:
        WRITTEN.append(f.read())


@pytest.fixture
def deployed(lab):
    if not WRITTEN:
        pytest.skip('the first host\'s deploy did not finish')
    return lab


def test_cleanup_on_a_host_never_deployed_deletes_nothing(deployed):
    lab = deployed
    storage = lab_storage(lab)
    sd = [d for d in os.listdir(storage) if len(d) == 36][0]
    lab.exec('host4', 'ovirt-hosted-engine-rpc', 'StoragePool', 'connectStorageServer',
             'storagepoolID=00000000-0000-0000-0000-000000000000', 'domainType=4',
             'connectionParams=[{"id":"11111111-2222-3333-4444-555555555555",'
             '"connection":"%s"}]' % storage)
    assert sd in lab.exec('host4', 'ovirt-hosted-engine-rpc', 'Host',
                          'getStorageDomains').stdout
    r = lab.exec('host4', 'ovirt-hosted-engine-cleanup', '-q', '--remove-storage', check=False,
                 timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'Storage domain: no hosted-engine storage domain found: nothing to delete' \
        in r.stdout, r.stdout
    assert os.path.isdir(os.path.join(storage, sd))
    assert engine_vms(lab, ['host1']) == {'host1': 1}


BAD = {
    # name: (extra answer lines, the error's expected words)
    'host-id-of-a-live-host': (['OVEHOSTED_STORAGE/hostID=int:1'],
                               'host id 1 is used by the live host 1 (host1)'),
    'host-id-out-of-range': (['OVEHOSTED_STORAGE/hostID=int:251'], 'out of range 1-250'),
    'first-host-unreachable': (['OVEHOSTED_FIRST_HOST/fetchAnswer=bool:True',
                                'OVEHOSTED_FIRST_HOST/fqdn=str:192.168.222.99',
                                'OVEHOSTED_FIRST_HOST/rootPassword=str:x'],
                               'cannot reach the first host 192.168.222.99'),
    'wrong-root-password': (['OVEHOSTED_FIRST_HOST/fetchAnswer=bool:True',
                             'OVEHOSTED_FIRST_HOST/fqdn=str:host1.lab.test',
                             'OVEHOSTED_FIRST_HOST/rootPassword=str:not-the-password'],
                            'refused the root password'),
    'changed-ssh-host-key': (['OVEHOSTED_FIRST_HOST/fetchAnswer=bool:True',
                              'OVEHOSTED_FIRST_HOST/fqdn=str:host1.lab.test',
                              'OVEHOSTED_FIRST_HOST/rootPassword=str:x',
                              'OVEHOSTED_FIRST_HOST/sshKeyFingerprint=str:SHA256:'
                              'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
                             'The SSH host key of host1.lab.test changed'),
    'answers-of-another-domain': (['OVEHOSTED_FIRST_HOST/fetchAnswer=bool:True',
                                   'OVEHOSTED_FIRST_HOST/fqdn=str:host4.lab.test'],
                                  'are from a deploy of another storage domain'),
    'wrong-admin-password': (['OVEHOSTED_ENGINE/adminPassword=str:wrong'],
                             'refused the login of admin@internal'),
    'bridge-nic-missing': (['OVEHOSTED_NETWORK/bridgeIf=str:eth9'],
                           "'eth9' is not a NIC of this host"),
}


def test_bad_input_on_an_additional_host(deployed, tmp_path):
    """Each: one error line naming the problem and the fix, exit 1, nothing changed."""
    lab = deployed
    # host4 offers SFTP answers of another deploy (other image UUIDs)
    other = open(os.path.join(EXAMPLES, 'lab-answers.conf')).read() + \
        'OVEHOSTED_STORAGE/confImageUUID=str:00000000-1111-2222-3333-444444444444\n'
    lab.exec('host4', 'sh', '-c', 'cat > /etc/ovirt-hosted-engine/answers.conf', input=other)
    fingerprints = {h: lab.cli('ssh-fingerprint', h).stdout.strip() for h in ('host1', 'host4')}
    failures = []
    for name, (extra, words) in BAD.items():
        lines = ['OVEHOSTED_STORAGE/hostID=int:3', 'OVEHOSTED_NETWORK/host_name=str:host3.lab.test',
                 'OVEHOSTED_ENGINE/appHostName=str:host3',
                 'OVEHOSTED_ENGINE/adminPassword=str:%s' % ADMIN_PW] + list(extra)
        if name == 'answers-of-another-domain':
            lines += ['OVEHOSTED_FIRST_HOST/rootPassword=str:%s' % lab_sshd.ROOT_PASSWORD,
                      'OVEHOSTED_FIRST_HOST/sshKeyFingerprint=str:%s' % fingerprints['host4']]
        if name == 'wrong-root-password':
            lines += ['OVEHOSTED_FIRST_HOST/sshKeyFingerprint=str:%s' % fingerprints['host1']]
        answers = example(lab, 'lab-additional-host-answers.conf', tmp_path / name, lines)
        r = he_deploy(lab, 'host3', answers, timeout=300)
        errors = error_lines(r)
        # an answer-file value is refused as the file is read (one line); the others after
        # the runner started, with the line that says nothing was changed
        if not (r.returncode == 1 and words in errors[0] and len(errors) <= 2
                and (len(errors) == 1 or 'nothing was changed on this host' in errors[1])):
            failures.append('%s: rc %s, %s' % (name, r.returncode, errors or r.stdout[-800:]))
    assert not failures, '\n'.join(failures)
    assert lab.exec('host3', 'ip', 'link', 'show', 'ovirtmgmt', check=False).returncode != 0
    assert lab.exec('host3', 'test', '-e', '/etc/ovirt-hosted-engine/hosted-engine.conf',
                    check=False).returncode != 0
    lab.exec('host4', 'rm', '-f', '/etc/ovirt-hosted-engine/answers.conf')


def additional_host_questions(lab, host, host_name):
    """The questions of an additional host typed on a pseudo-terminal, and their answers."""
    return [
        ('Are you sure you want to continue?', 'Yes'),
        ('Please specify the storage you would like to use', 'localfs'),
        ('directory shared by the hosts', lab_storage(lab)),
        ('Is this an additional host setup?', 'Yes'),
        ('Enter the Host ID for this host', '4'),
        ('Host address', host_name),
        ('identify this host inside the', host),
        ('Enter engine admin password', ADMIN_PW),
        ('Confirm engine admin password', ADMIN_PW),
        ('Please confirm installation settings', 'Yes'),
    ]


def test_three_hosts_join_at_once(deployed, tmp_path):
    lab = deployed
    results = {}
    fingerprint = lab.cli('ssh-fingerprint', 'host1').stdout.strip()
    scp = example(lab, 'lab-additional-host-scp-answers.conf', tmp_path / 'scp.conf',
                  ['OVEHOSTED_FIRST_HOST/sshKeyFingerprint=str:%s' % fingerprint,
                   'OVEHOSTED_ENGINE/adminPassword=str:%s' % ADMIN_PW])

    def host3():
        results['host3'] = he_deploy(lab, 'host3', scp, timeout=900)
    t3 = threading.Thread(target=host3)
    t3.start()
    # host4 through the engine (its SSH host-deploy), meanwhile: the engine gives it the
    # first host id none of its hosts has (2); host2 types 4 (host3's answers say 3)
    added = sdk(lab, 'add', name='host4', address='host4.lab.test')
    assert added['id']
    log = open(tmp_path / 'typed.log', 'w')
    ok, code, asked = type_deploy(lab, 'host2',
                                  additional_host_questions(lab, 'host2', 'host2.lab.test'), log)
    log.close()
    t3.join(timeout=900)
    typed = open(tmp_path / 'typed.log').read()
    assert ok and code == 0, typed[-4000:]
    assert not [a for a in asked if a.startswith('default: ')], asked
    assert asked.count('Is this an additional host setup?') == 1
    assert 'with host id 4' in typed
    r = results['host3']
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert 'answers.conf of host1.lab.test' in r.stdout
    assert 'lab-host-Pa55' not in lab.exec('host3', 'cat',
                                           '/etc/ovirt-hosted-engine/answers.conf').stdout

    def engine_hosts():
        listed = sdk(lab, 'list')
        st = {h['name']: (h['status'], h['configured'], h['score']) for h in listed['hosts']}
        ok = all(st.get(h, ('',))[0] == 'up' and st[h][1] and st[h][2] for h in HOSTS)
        return ok, listed
    listed = wait_for('the engine lists the four hosts Up as hosted-engine hosts',
                      engine_hosts, 400, 5)
    assert 'hosted_storage' in listed['domains']
    assert ('HostedEngine', 'up') in [tuple(v) for v in listed['vms']]

    def everyone_sees_everyone():
        seen = {h: sorted(live_hosts(vm_status(lab, h))) for h in HOSTS}
        return all(ids == [1, 2, 3, 4] for ids in seen.values()), seen
    wait_for('every host\'s --vm-status shows the four hosts live', everyone_sees_everyone, 180)
    status = vm_status(lab, 'host2')
    assert all(status[str(i)]['score'] > 0 for i in (1, 2, 3, 4)), status
    assert sum(engine_vms(lab, HOSTS).values()) == 1

    # host2 is part of the cluster now: deploying it again is refused before anything
    again = example(lab, 'lab-additional-host-answers.conf', tmp_path / 'again.conf',
                    ['OVEHOSTED_STORAGE/hostID=int:4'])
    r = he_deploy(lab, 'host2', again, timeout=300)
    errors = error_lines(r)
    assert r.returncode == 1 and 'This host is already a hosted-engine host' in errors[0] \
        and 'run ovirt-hosted-engine-cleanup first' in errors[0], errors or r.stdout[-2000:]
    assert 'nothing was changed on this host' in errors[1]
    assert sorted(live_hosts(vm_status(lab, 'host2'))) == [1, 2, 3, 4]


def test_undeploy_through_the_engine(deployed):
    lab = deployed
    sdk(lab, 'deactivate', name='host4')

    def maintenance():
        st = {h['name']: h['status'] for h in sdk(lab, 'list')['hosts']}
        return st.get('host4') == 'maintenance', st
    wait_for('host4 in maintenance', maintenance, 120)
    sdk(lab, 'undeploy', name='host4')

    def gone():
        ids = sorted(live_hosts(vm_status(lab, 'host2')))
        conf = lab.exec('host4', 'test', '-e', '/etc/ovirt-hosted-engine/hosted-engine.conf',
                        check=False).returncode
        st = {h['name']: (h['status'], h['configured']) for h in sdk(lab, 'list')['hosts']}
        # still a host of the engine, Up again, no longer a hosted-engine host
        return ids == [1, 3, 4] and conf != 0 and st.get('host4') == ('up', None), (ids, st)
    wait_for('host4 undeployed (slot freed, configuration removed, Up in the engine)',
             gone, 300)
    assert sum(engine_vms(lab, HOSTS).values()) == 1
    # the cleanup gave eth0 back what it had: its address, the default route, no ovirtmgmt
    addrs = json.loads(lab.exec('host4', 'ip', '-j', '-4', 'addr', 'show', 'dev',
                                'eth0').stdout)
    assert ['%s/%s' % (a['local'], a['prefixlen']) for link in addrs
            for a in link.get('addr_info', [])] == ['192.168.222.14/24']
    assert lab.exec('host4', 'ip', '-4', 'route', 'show', 'default').stdout.strip() == \
        'default via 192.168.222.1 dev eth0'
    assert lab.exec('host4', 'ip', 'link', 'show', 'ovirtmgmt', check=False).returncode != 0
    assert 'ovirt_hosted_engine' not in lab.exec('host4', 'nft', 'list', 'tables').stdout


def test_written_answers_replay_without_questions(deployed, tmp_path):
    """The answers.conf the typed first-host deploy wrote, given to a host with the
    passwords, this host's own address and a clean storage: the preview, nothing asked."""
    lab = deployed
    written = tmp_path / 'written.conf'
    written.write_text(WRITTEN[0])
    storage = os.path.join(lab.dir, 'replay-storage')
    os.makedirs(storage)
    own = tmp_path / 'own.conf'
    own.write_text('[environment:default]\n'
                   'OVEHOSTED_ENGINE/adminPassword=str:%s\n'
                   'OVEHOSTED_VM/cloudinitRootPwd=str:%s\n'
                   'OVEHOSTED_STORAGE/storageDomainConnection=str:%s\n'
                   'OVEHOSTED_NETWORK/host_name=str:host4.lab.test\n'
                   'OVEHOSTED_CORE/confirmSettings=bool:False\n' % (ADMIN_PW, ROOT_PW, storage))
    os.chmod(own, 0o600)
    r = he_deploy(lab, 'host4', str(written), str(own), timeout=300)
    out = r.stdout + r.stderr
    assert '--== CONFIGURATION PREVIEW ==--' in out, out
    assert ']: ' not in out, out           # nothing asked
    assert 'declined the deploy: OVEHOSTED_CORE/confirmSettings=bool:False' in out
    assert r.returncode == 1
    assert os.listdir(storage) == []


def test_host1_powered_off_the_engine_comes_back_elsewhere(deployed):
    lab = deployed
    before = {h['name'] for h in sdk(lab, 'list', via='host2')['hosts']}
    counts = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            counts.append(sum(engine_vms(lab, ('host2', 'host3')).values()))
            stop.wait(2)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        t0 = time.monotonic()
        lab.cli('fault', 'host1', 'crash', timeout=120)

        def healthy_elsewhere():
            for h in ('host2', 'host3'):
                st = vm_status(lab, h)
                for k, v in live_hosts(st).items():
                    if k != 1 and v['engine-status'].get('health') == 'good':
                        return True, 'host %d' % k
            return False, 'not yet'
        where = wait_for('the engine healthy on host2 or host3', healthy_elsewhere, 420, 5)
        took = time.monotonic() - t0
    finally:
        stop.set()
        watcher.join()
    assert max(counts) <= 1, counts
    after = {h['name'] for h in sdk(lab, 'list', via='host2')['hosts']}
    assert after == before, (before, after)
    print('engine healthy on %s %.0f s after host1 was powered off' % (where, took))
