"""ovirt-hosted-engine-cleanup in a two-host lab.

First a real deploy on host1 (examples/lab-answers.conf): on host2, which was never
deployed but sees the domain through a storage connection left there,
`ovirt-hosted-engine-cleanup -q --remove-storage` deletes nothing; on host1 it removes the
deploy and gives eth0 back what it had (address, default route, no ovirtmgmt bridge, no
image links left in the host agent's run directory).

Then the hosted-engine storage and VM definition of `hosted-engine-lab ha-prepare` on both
hosts, the HA services started on host1 and the engine VM (the lab guest) running there:
host2's `--remove-storage` is refused while host1 is alive in the domain; inside host1,
`-q --remove-storage` leaves no VM, no HA daemon, no hosted-engine or VM-lease lockspace in
host1's sanlock, no configuration file and no storage domain; a second run exits 0.
"""
import json
import os

import daemon_proc
import pytest

from .conftest import lab  # noqa: F401 (the module's lab fixture)
from .deploy_helpers import deploy, lab_storage, write_answers

GATEWAY = '192.168.222.1'
HOST1 = '192.168.222.11'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')


def wait_for(what, predicate, timeout, interval=2.0):
    return daemon_proc.wait_for(what, predicate, timeout, interval)


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(')') + 2:].split()[0] != 'Z'


def read_conf(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.strip().partition('=')
            if sep:
                out[key] = value
    return out


def cleanup_lines(result):
    return [x for x in result.stdout.splitlines() if x.startswith('[ ')]


def eth0(lab):  # noqa: F811
    """(IPv4 addresses of host1's eth0, its default route, whether ovirtmgmt exists)."""
    addrs = json.loads(lab.exec('host1', 'ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0').stdout)
    routes = lab.exec('host1', 'ip', '-4', 'route', 'show', 'default').stdout
    bridge = lab.exec('host1', 'ip', 'link', 'show', 'ovirtmgmt', check=False).returncode == 0
    return (['%s/%s' % (a['local'], a['prefixlen']) for link in addrs
             for a in link.get('addr_info', [])], routes.strip(), bridge)


def run_links(lab, host):  # noqa: F811
    return lab.exec(host, 'find', '/run/ovirt-hosted-engine-hostd/storage', '-type', 'l',
                    check=False).stdout.split()


def test_deploy_then_cleanup_on_host2_deletes_nothing_and_on_host1_returns_eth0(
        lab, tmp_path):  # noqa: F811
    before = eth0(lab)
    assert before == (['%s/24' % HOST1], 'default via %s dev eth0' % GATEWAY, False), before
    answers = write_answers(lab, tmp_path / 'answers.conf')
    r = deploy(lab, answers, timeout=1200)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    storage = lab_storage(lab)
    conf = read_conf(os.path.join(lab.dir, 'hosts', 'host1', 'etc-ovirt-hosted-engine',
                                  'hosted-engine.conf'))
    sd_dir = os.path.join(storage, conf['sdUUID'])
    assert os.path.isdir(sd_dir)
    # what eth0 had, recorded before the bridge (mode 0600)
    record = os.path.join(lab.dir, 'hosts', 'host1', 'var-lib-ovirt-hosted-engine-setup',
                          'network-before-bridge.json')
    assert oct(os.stat(record).st_mode & 0o777) == '0o600'
    rec = json.load(open(record))
    assert (rec['bridge'], rec['nic']) == ('ovirtmgmt', 'eth0')
    assert rec['nic_before']['ipv4addrs'] == ['%s/24' % HOST1]
    assert rec['nic_before']['gateway'] == GATEWAY and rec['nic_before']['mtu'] == '1500'
    assert eth0(lab)[2] and run_links(lab, 'host1')

    # host2 was never deployed; a storage connection left there shows it the domain
    r = lab.exec('host2', 'ovirt-hosted-engine-rpc', 'StoragePool', 'connectStorageServer',
                 'storagepoolID=00000000-0000-0000-0000-000000000000', 'domainType=4',
                 'connectionParams=[{"id":"11111111-2222-3333-4444-555555555555",'
                 '"connection":"%s"}]' % storage)
    assert conf['sdUUID'] in lab.exec('host2', 'ovirt-hosted-engine-rpc', 'Host',
                                      'getStorageDomains').stdout
    r = lab.exec('host2', 'ovirt-hosted-engine-cleanup', '-q', '--remove-storage', check=False,
                 timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '[ INFO  ] 4/6 Storage domain: no hosted-engine storage domain found: nothing to ' \
           'delete' in cleanup_lines(r), r.stdout
    assert os.path.isdir(sd_dir)
    assert 'HostedEngine' in lab.exec('host1', 'virsh', '-c', 'qemu:///system', 'list',
                                      '--name').stdout.split()

    r = lab.exec('host1', 'ovirt-hosted-engine-cleanup', '-q', '--remove-storage', check=False,
                 timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = cleanup_lines(r)
    assert '[ INFO  ] 7/8 Management network: bridge ovirtmgmt removed; eth0 has its ' \
           'configuration back (%s/24, default route via %s, MTU 1500)' % (HOST1, GATEWAY) \
        in lines, r.stdout
    assert eth0(lab) == before
    assert run_links(lab, 'host1') == []
    assert not os.path.exists(record)
    assert not os.path.exists(sd_dir)


@pytest.fixture(scope='module')
def prepared(lab):  # noqa: F811
    lab.cli('ha-prepare', '--io-timeout', '2', timeout=900)
    lab.cli('ha', 'start', 'host1', timeout=180)
    yield lab
    lab.cli('ha', 'stop', check=False, timeout=180)


def test_cleanup_removes_the_deploy_from_host1(prepared):
    lab = prepared  # noqa: F811
    host_dir = os.path.join(lab.dir, 'hosts', 'host1')
    etc = os.path.join(host_dir, 'etc-ovirt-hosted-engine')
    etc_ha = os.path.join(host_dir, 'etc-ovirt-hosted-engine-ha')
    conf = read_conf(os.path.join(etc, 'hosted-engine.conf'))
    with open(os.path.join(lab.dir, 'state.json')) as f:
        state = json.load(f)
    storage = state['storage']
    ha_pids = [lab.service('host1', u)['pid'] for u in ('ovirt-ha-agent', 'ovirt-ha-broker')]
    assert all(alive(p) for p in ha_pids)
    assert os.path.isdir(os.path.join(storage, conf['sdUUID']))

    def vm_running():
        out = lab.exec('host1', 'virsh', '-c', 'qemu:///system', 'list', '--name').stdout
        return 'HostedEngine' in out.split()
    wait_for('the HA agent starts the engine VM on host1', vm_running, 240)
    status = lab.exec('host1', 'sanlock', 'client', 'status').stdout
    assert 's hosted-engine:1:' in status and conf['sdUUID'] in status, status

    # host2 (its own hosted-engine.conf names the same domain) may not delete it while
    # host1 is alive in it
    r = lab.exec('host2', 'ovirt-hosted-engine-cleanup', '-q', '--remove-storage', check=False,
                 timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith('[ ERROR ] Refusing to delete storage domain %s on %s: host 1 ('
                          % (conf['sdUUID'], storage)), err
    assert 'is alive in it' in err and err.endswith('--fenced-host=1'), err
    assert vm_running() and all(alive(p) for p in ha_pids)
    assert os.path.isdir(os.path.join(storage, conf['sdUUID']))

    r = lab.exec('host1', 'ovirt-hosted-engine-cleanup', '-q', '--remove-storage', check=False,
                 timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [x for x in r.stdout.splitlines() if x.startswith('[ ')]
    assert lines[0].startswith('[ INFO  ] 1/6 HA services: ovirt-ha-agent and ovirt-ha-broker '
                               'stopped (systemctl stop; units disabled)'), r.stdout
    assert lines[1].startswith('[ INFO  ] 2/6 Engine VM: powered off and removed from this '
                               'host: HostedEngine (%s' % conf['vmid']), r.stdout
    assert lines[3] == '[ INFO  ] 4/6 Storage domain: %s on %s deleted' % (conf['sdUUID'],
                                                                          storage), r.stdout
    assert lines[4] == '[ INFO  ] 5/6 Storage connection: %s disconnected' % storage

    assert not vm_running()
    assert not [p for p in ha_pids if alive(p)]

    def no_lockspaces():
        status = lab.exec('host1', 'sanlock', 'client', 'status').stdout
        return 'hosted-engine' not in status and conf['sdUUID'] not in status
    wait_for('host1 out of the hosted-engine and VM lease lockspaces', no_lockspaces, 30, 1)
    for path in (os.path.join(etc, 'hosted-engine.conf'), os.path.join(etc, 'vm.conf'),
                 os.path.join(etc_ha, 'broker.conf')):
        assert not os.path.exists(path), path
    assert not os.path.exists(os.path.join(storage, conf['sdUUID']))

    r = lab.exec('host1', 'ovirt-hosted-engine-cleanup', '-q', '--remove-storage', check=False,
                 timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '[ INFO  ] 6/6 Configuration files: nothing to remove' in r.stdout
