"""ovirt-hosted-engine-cleanup in a two-host lab.

(After a real deploy: a host that was never deployed deletes nothing,
tests/lab/test_additional_hosts.py; the first host's cleanup gives eth0 back what it had,
tests/lab/test_deploy_e2e.py.)

The hosted-engine storage and VM definition of `hosted-engine-lab ha-prepare` on both
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
