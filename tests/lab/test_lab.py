"""hosted-engine-lab: two namespaced hosts with their own daemons, one network, one storage."""
import json
import os
import subprocess
import uuid

from ovirt_hosted_engine_setup.he_storage import delta_leases
from ovirt_hosted_engine_setup.lab import faults, images
from ovirt_hosted_engine_setup.lab.lab import DAEMONS, HA_DAEMONS, Lab, proc_start

from .api_helpers import BLANK, LOCALFS, HostClient, wait_acquired
from .conftest import LabRunner, lab_processes, netns_list, outlived


def comm(pid):
    try:
        with open('/proc/%d/comm' % pid) as f:
            return f.read().strip()
    except OSError:
        return ''


def state(lab):
    with open(os.path.join(lab.dir, 'state.json')) as f:
        return json.load(f)


def test_hostnames(lab):
    assert lab.exec('host1', 'hostname').stdout.strip() == 'host1'
    assert lab.exec('host2', 'hostname').stdout.strip() == 'host2'


def test_only_lab_interfaces(lab):
    out = lab.exec('host1', 'ip', '-o', 'link').stdout
    names = sorted(line.split(':')[1].strip().split('@')[0] for line in out.splitlines())
    assert names == ['eth0', 'lo']
    addr = lab.exec('host2', 'ip', '-o', '-4', 'addr', 'show', 'eth0').stdout
    assert '192.168.222.12/24' in addr


def test_ping_between_hosts(lab):
    r = lab.exec('host1', 'ping', '-c', '2', '-W', '3', '192.168.222.12')
    assert ' 0% packet loss' in r.stdout
    r = lab.exec('host2', 'ping', '-c', '1', '-W', '3', 'host1')
    assert ' 0% packet loss' in r.stdout


def test_the_gateway_keeps_its_mac_when_ports_come_and_go(lab):
    # a port with a lower MAC than every other (as the standalone engine's may have) added
    # to the lab bridge and removed: the gateway's MAC, cached by the hosts, must not change
    net = ['nsenter', '-t', str(state(lab)['net']['pid']), '-n', '--']

    def bridge_mac():
        out = subprocess.run(net + ['ip', '-o', 'link', 'show', 'labbr0'], check=True,
                             capture_output=True, text=True).stdout
        return out.split('link/ether ', 1)[1].split()[0]
    lab.exec('host1', 'ping', '-c', '1', '-W', '3', '192.168.222.1')
    before = bridge_mac()
    subprocess.run(net + ['ip', 'link', 'add', 'probe0', 'address', '00:00:00:00:00:01',
                          'type', 'veth', 'peer', 'name', 'probe1'], check=True)
    try:
        subprocess.run(net + ['ip', 'link', 'set', 'probe0', 'master', 'labbr0', 'up'],
                       check=True)
        assert bridge_mac() == before
    finally:
        subprocess.run(net + ['ip', 'link', 'del', 'probe0'], check=True)
    assert bridge_mac() == before
    r = lab.exec('host1', 'ping', '-c', '1', '-W', '1', '192.168.222.1')
    assert ' 0% packet loss' in r.stdout


def test_private_run_and_separate_sanlock(lab):
    pid1 = lab.exec('host1', 'cat', '/run/sanlock/sanlock.pid').stdout.strip()
    pid2 = lab.exec('host2', 'cat', '/run/sanlock/sanlock.pid').stdout.strip()
    assert pid1 and pid2 and pid1 != pid2
    st = state(lab)
    assert int(pid1) == st['hosts']['host1']['daemons']['sanlock']['pid']
    marker = '/run/lab-test-%s' % uuid.uuid4().hex
    lab.exec('host1', 'touch', marker)
    assert lab.exec('host1', 'test', '-e', marker, check=False).returncode == 0
    assert lab.exec('host2', 'test', '-e', marker, check=False).returncode == 1
    assert not os.path.exists(marker)


def test_private_host_directories(lab):
    for host in ('host1', 'host2'):
        lab.exec(host, 'sh', '-c', 'echo %s > /rhev/who; echo %s > /etc/ovirt-hosted-engine/who'
                 % (host, host))
    for host in ('host1', 'host2'):
        out = lab.exec(host, 'cat', '/rhev/who', '/etc/ovirt-hosted-engine/who').stdout
        assert out.split() == [host, host]
    assert not os.path.exists('/rhev/who')


def test_shared_storage(lab):
    storage = state(lab)['storage']
    path = os.path.join(storage, 'written-by-host1')
    lab.exec('host1', 'sh', '-c', 'echo shared > %s' % path)
    assert lab.exec('host2', 'cat', path).stdout.strip() == 'shared'
    with open(path) as f:
        assert f.read().strip() == 'shared'
    # the checkout and /var/tmp are the machine's own
    here = os.path.abspath(__file__)
    assert lab.exec('host2', 'test', '-f', here, check=False).returncode == 0


def test_sanlock_running(lab):
    for host in ('host1', 'host2'):
        out = lab.exec(host, 'sanlock', 'client', 'status').stdout
        assert 'daemon %s' % host in out


def test_libvirtd_answers(lab):
    for host in ('host1', 'host2'):
        r = lab.exec(host, 'virsh', '-c', 'qemu:///system', 'list', '--all')
        assert 'Name' in r.stdout


def test_systemctl_in_a_host_is_the_hosts_service_manager(lab):
    for host in ('host1', 'host2'):
        r = lab.exec(host, 'systemctl', 'is-active', 'ovirt-ha-broker', 'ovirt-ha-agent',
                     check=False)
        assert (r.returncode, r.stdout) == (3, 'inactive\ninactive\n'), r.stderr
    # also through /usr/bin/systemctl, whatever PATH says
    r = lab.exec('host1', 'env', 'PATH=/usr/bin:/bin', 'systemctl', 'status', 'ovirt-ha-agent',
                 check=False)
    assert r.returncode == 3, r.stdout + r.stderr
    assert 'ovirt-ha-agent.service; disabled)' in r.stdout
    assert 'Active: inactive (dead)' in r.stdout
    # programs that ask whether systemd manages the host are told so, inside the hosts only
    assert lab.exec('host2', 'test', '-d', '/run/systemd/system', check=False).returncode == 0
    assert not os.path.exists('/run/systemd/system')
    # the units' condition: no hosted-engine.conf, nothing starts
    r = lab.exec('host1', 'systemctl', 'start', 'ovirt-ha-agent', check=False)
    assert r.returncode == 0
    assert 'ConditionPathExists=/etc/ovirt-hosted-engine/hosted-engine.conf not met' in r.stderr
    assert lab.exec('host1', 'systemctl', 'is-active', 'ovirt-ha-broker',
                    check=False).returncode == 3
    r = lab.exec('host1', 'systemctl', 'start', 'no-such-unit', check=False)
    assert r.returncode == 5 and 'Unit no-such-unit.service not found' in r.stderr
    # the machine's own systemctl is untouched
    if os.path.exists('/usr/bin/systemctl'):
        with open('/usr/bin/systemctl', 'rb') as f:
            assert f.read(4) == b'\x7fELF'


def test_exec_exit_code_stdin_and_path(lab):
    assert lab.exec('host1', 'sh', '-c', 'exit 7', check=False).returncode == 7
    assert lab.exec('host2', 'cat', input='through stdin\n').stdout == 'through stdin\n'
    path = lab.exec('host1', 'sh', '-c', 'echo $PATH').stdout.strip().split(':')
    assert os.path.isfile(os.path.join(path[0], 'hosted-engine-lab'))
    r = lab.cli('exec', 'host9', '--', 'true', check=False)
    assert r.returncode == 1 and 'no lab host' in r.stderr


def test_status(lab):
    r = lab.cli('status')
    lines = r.stdout.splitlines()
    rows = {ln.split()[0]: ln.split() for ln in lines[2:]}
    assert rows['host1'][1] == '192.168.222.11'
    assert rows['host2'][1] == '192.168.222.12'
    for host in ('host1', 'host2'):
        # the HA services are not started by `up` (hosted-engine-lab ha start does)
        ha = len(HA_DAEMONS)
        assert rows[host][2:] == ['up'] * (1 + len(DAEMONS) - ha) + ['-'] * ha
    assert lab.cli('status').returncode == 0


def test_up_twice_refused(lab):
    r = lab.cli('up', '--hosts', '1', check=False)
    assert r.returncode == 1
    assert 'already up' in r.stderr and 'down' in r.stderr


def test_host_agents_trust_each_other(lab):
    r = lab.exec('host1', 'ovirt-hosted-engine-rpc', '--host', 'host2', 'Host', 'ping2')
    assert json.loads(r.stdout) is True
    r = lab.exec('host2', 'ovirt-hosted-engine-rpc', '--host', '192.168.222.11', 'Host', 'ping2')
    assert json.loads(r.stdout) is True


def test_each_host_has_a_hardware_uuid_of_its_own(lab):
    """As real hosts do: the engine tells hosts apart by it (a restore removes the deploying
    host from the restored database by it, and must not remove the others)."""
    uuids = {h: json.loads(lab.exec(h, 'ovirt-hosted-engine-rpc', 'Host',
                                    'getCapabilities').stdout)['uuid']
             for h in ('host1', 'host2')}
    assert uuids['host1'] != uuids['host2'], uuids
    for u in uuids.values():
        assert str(uuid.UUID(u)) == u


LEASE_SETUP = """
import sanlock, sys
ids, lease = sys.argv[1], sys.argv[2]
for path, size in ((ids, 1 << 20), (lease, 1 << 20)):
    with open(path, 'wb') as f:
        f.truncate(size)
sanlock.write_lockspace(b'labls', ids, iotimeout=2)
sanlock.write_resource(b'labls', b'labkey', [(lease, 0)])
sanlock.add_lockspace(b'labls', 1, ids, iotimeout=2)
"""


def test_guest_boots_with_lease_and_serves_health_page(lab):
    """The guest image boots from its own disk under libvirt in a lab host, holding a lease."""
    work = os.path.join(state(lab)['storage'], 'vm')
    os.makedirs(work)
    disk = os.path.join(work, 'disk.raw')
    images.copy_disk(disk)
    ids, lease = os.path.join(work, 'ids'), os.path.join(work, 'disk.lease')
    lab.exec('host1', 'python3', '-c', LEASE_SETUP, ids, lease, timeout=120)
    channel = os.path.join(work, 'channel.sock')
    console = os.path.join(work, 'console.log')
    xml = images.domain_xml('labtest', str(uuid.uuid4()), disk_path=disk, bridge='vmtest0',
                            ip=images.kernel_ip('192.168.223.2', 24, '192.168.223.1', 'labtest'),
                            channel_path=channel, console_log=console,
                            lease={'lockspace': 'labls', 'key': 'labkey', 'path': lease})
    xml_path = os.path.join(work, 'domain.xml')
    with open(xml_path, 'w') as f:
        f.write(xml)
    lab.exec('host1', 'sh', '-c', 'ip link add vmtest0 type bridge && '
             'ip addr add 192.168.223.1/24 dev vmtest0 && ip link set vmtest0 up')
    lab.exec('host1', 'virsh', '-c', 'qemu:///system', 'create', xml_path)
    probe = (
        'import socket, time, urllib.request\n'
        'deadline = time.time() + 90\n'
        'while True:\n'
        '    try:\n'
        '        body = urllib.request.urlopen("http://192.168.223.2%s", timeout=3).read()\n'
        '        break\n'
        '    except OSError:\n'
        '        if time.time() > deadline: raise\n'
        '        time.sleep(1)\n'
        'print(body.decode())\n'
        's = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(%r)\n'
        'buf = b""\n'
        'while not buf.endswith(b"\\n"): buf += s.recv(200) or b"\\n"\n'
        'print(buf.decode().strip())\n' % (images.HEALTH_PATH, channel))
    try:
        out = lab.exec('host1', 'python3', '-c', probe, timeout=180).stdout.splitlines()
        assert out[0] == images.HEALTH_BODY
        assert out[1].startswith('lab-guest: up address=192.168.223.2')
        held = lab.exec('host1', 'sanlock', 'client', 'status').stdout
        assert 'r labls:labkey:%s:0' % lease in held
        # the guest powers off on the ACPI button
        lab.exec('host1', 'virsh', '-c', 'qemu:///system', 'shutdown', 'labtest')
        lab.exec('host1', 'sh', '-c', 'for i in $(seq 60); do '
                 '[ -z "$(virsh -c qemu:///system list --name)" ] && exit 0; sleep 1; done; '
                 'exit 1', timeout=90)
    finally:
        lab.exec('host1', 'virsh', '-c', 'qemu:///system', 'destroy', 'labtest', check=False)
    with open(console, errors='replace') as f:
        assert 'lab-guest: ready' in f.read()


def test_down_leaves_nothing(lab):
    """Runs last: a VM left running is stopped too, and down is safe twice."""
    xml = images.domain_xml('leftover', str(uuid.uuid4()), disk_readonly=True)
    xml_path = os.path.join(lab.dir, 'leftover.xml')
    with open(xml_path, 'w') as f:
        f.write(xml)
    lab.exec('host2', 'virsh', '-c', 'qemu:///system', 'create', xml_path)
    st = state(lab)
    recorded = []
    for h in st['hosts'].values():
        recorded.append(h['holder']['pid'])
        recorded.extend(d['pid'] for d in h['daemons'].values())
    recorded.append(st['net']['pid'])
    before = lab_processes(st)
    assert any(comm(r['pid']).startswith('qemu') for r in before), \
        'the leftover VM runs in a lab host'
    lab.cli('down')
    for pid in recorded:
        assert proc_start(pid) is None, 'pid %d still running' % pid
    assert outlived(before) == []
    with open('/proc/self/mountinfo') as f:
        assert lab.dir not in f.read()
    # no named network namespace refers to the lab's namespaces
    lab_ns = {h['ns']['net'] for h in st['hosts'].values()} | {st['net']['ns']['net']}
    for name in netns_list().split():
        path = os.path.join('/run/netns', name)
        if os.path.exists(path):
            assert 'net:[%d]' % os.stat(path).st_ino not in lab_ns
    assert not os.path.exists(os.path.join(lab.dir, 'state.json'))
    r = lab.cli('down')
    assert 'no lab is up' in r.stdout
    r = lab.cli('status', check=False)
    assert r.returncode == 3


def test_up_refuses_a_bad_sanlock_io_timeout(own_lab_dir):
    """Out of sanlock's range or not a number: one line naming the option, nothing started."""
    runner = LabRunner(own_lab_dir)
    for value in ('0', '61', 'ten', '2.5'):
        r = runner.cli('up', '--hosts', '1', '--sanlock-io-timeout', value, check=False)
        assert r.returncode == 1, (value, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            'hosted-engine-lab: --sanlock-io-timeout must be'), (value, r.stderr)
        assert value in lines[0]
        assert not os.path.exists(os.path.join(own_lab_dir, 'state.json'))


def _host_id_lease(storage, sd):
    return delta_leases.read_delta_leases(os.path.join(storage, sd, 'dom_md', 'ids'), sd)[1]


def _hostd_argv(lab_dir):
    rec = Lab(lab_dir).load()['hosts']['host1']['daemons']['hostd']
    with open('/proc/%d/cmdline' % rec['pid'], 'rb') as f:
        return [a.decode() for a in f.read().split(b'\0') if a]


def test_up_sanlock_io_timeout_reaches_the_storage_domain_lockspace(own_lab_dir):
    """`up --sanlock-io-timeout 3`: the host agent joins a storage domain's lockspace with an
    io_timeout of 3 s (as its delta lease on dom_md/ids carries it); a hostd started again
    (faults.start_daemon) and a restarted host keep it; `status` shows it."""
    runner = LabRunner(own_lab_dir)
    runner.cli('up', '--hosts', '1', '--sanlock-io-timeout', '3', timeout=600)
    header = runner.cli('status').stdout.splitlines()[0]
    assert header.endswith('sanlock io_timeout: 3 s'), header
    storage = Lab(own_lab_dir).load()['storage']
    sd = str(uuid.uuid4())
    conn = [{'id': str(uuid.uuid4()), 'connection': storage}]
    c = HostClient(runner, 'host1')
    try:
        assert c.call('StoragePool.connectStorageServer', storagepoolID=BLANK,
                      domainType=LOCALFS, connectionParams=conn)[0]['status'] == 0
        assert c.call('StorageDomain.create', storagedomainID=sd, domainType=LOCALFS,
                      typeArgs=storage, name='io_timeout_sd', domainClass=1, version=5) is True
        assert c.call('Host.startMonitoringDomain', sdUUID=sd, hostID=1) is True
        wait_acquired(c, sd)
    finally:
        c.close()
    first = _host_id_lease(storage, sd)
    assert first.held and first.io_timeout == 3, first

    # hostd killed and started again as a host's service manager would
    runner.cli('fault', 'host1', 'kill', 'hostd')
    faults.start_daemon(Lab(own_lab_dir), 'host1', 'hostd')
    argv = _hostd_argv(own_lab_dir)
    assert argv[argv.index('--sanlock-io-timeout') + 1] == '3', argv

    # a reboot: a new sanlock daemon, the lockspace joined again by the new hostd
    runner.cli('restart', 'host1', timeout=600)
    c = HostClient(runner, 'host1')
    try:
        wait_acquired(c, sd, timeout=180)
    finally:
        c.close()
    again = _host_id_lease(storage, sd)
    assert again.generation > first.generation, (first, again)
    assert again.held and again.io_timeout == 3, again
    assert runner.cli('status').stdout.splitlines()[0].endswith('sanlock io_timeout: 3 s')
