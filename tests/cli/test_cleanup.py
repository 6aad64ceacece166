"""ovirt-hosted-engine-cleanup, run as the real command with its files relocated
(OVIRT_HOSTED_ENGINE_PREFIX).

- Without a host agent: the confirmation (end of input, no, an unclear answer), the
  files removed and the ones kept, the steps that need the host agent skipped with exit
  status 1, a second run.
- With a real stack (a sanlock daemon, ovirt-hosted-engine-hostd on loopback with
  libvirtd, the storage domain made by domain.prepare_domain on a directory,
  ovirt-ha-broker holding its host id in the hosted-engine lockspace, ovirt-ha-agent, a
  HostedEngine VM): aborting changes nothing; -q stops the daemons, destroys the VM, leaves
  the lockspaces, disconnects the storage and removes the files; a second run exits 0;
  --remove-storage without hosted-engine.conf finds the domain through the host agent and
  deletes it.
- With another host (a second sanlock daemon) holding host id 2 in that domain:
  --remove-storage, hosted-engine --clean-metadata and --reinitialize-lockspace refuse,
  naming it; --fenced-host=2 overrides; a host that was never deployed and only sees the
  domain through a leftover storage connection deletes nothing; the HA services step says
  stopped only for the daemon that ran; no image link is left in the host agent's run dir.
- Cleanup on one of several hosts (undeploy): this host's metadata slot is freed, the
  other slots stay byte-identical, the domain and the other hosts' leases stay; --vm-status
  on the first host no longer lists it (a stack whose host is host id 2); on the last host
  the slot stays; metadata that cannot be read is said.
- ha/peers.py on its own: a renewed lease is alive, a killed host's lease is not, a left
  host and a stopped agent take no watching, metadata still tells when the lockspace is lost
  (host ids and freeing a slot: tests/ha/test_peers.py).
- The deploy's record of the management NIC (network/bridge.py) and cleanup's check of it.
"""
import json
import os
import subprocess
import sys

import pytest

from ovirt_hosted_engine_setup.deploy.cleanup import StepFailed
from ovirt_hosted_engine_setup.deploy.cleanup.leftovers import (is_seed_iso, latest_answers,
                                                                read_network_record)
from ovirt_hosted_engine_setup.deploy.cleanup.lockspace import lockspaces_of_status
from ovirt_hosted_engine_setup.deploy.cleanup.steps import Cleanup
from ovirt_hosted_engine_setup.he_storage import heconf

from .ha_helpers import PREPARE

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMAND = os.path.join(TOP, 'bin', 'ovirt-hosted-engine-cleanup')
VM_ID = '6f1e0c5a-2b1d-4c8e-9a57-3d0f4b2e1c11'


def run(env, *args, stdin=''):
    return subprocess.run([sys.executable, COMMAND] + list(args), input=stdin,
                          capture_output=True, text=True, env=env, timeout=300)


def make_iso(path, volume_id):
    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident=volume_id, rock_ridge='1.09')
    data = b'instance-id: test\n'
    import io
    iso.add_fp(io.BytesIO(data), len(data), '/METADATA.;1', rr_name='meta-data')
    iso.write(path)
    iso.close()


class Files:
    """What a deploy leaves on a host, under a prefix (tests/cli/conftest.py Prefix)."""

    def __init__(self, prefix, hostd_root, conf):
        self.prefix = prefix
        p = prefix.path
        self.conf_path = p('/etc/ovirt-hosted-engine/hosted-engine.conf')
        self.generated = [
            self.conf_path,
            p('/etc/ovirt-hosted-engine/vm.conf'),
            p('/etc/ovirt-hosted-engine/answers.conf'),
            p('/etc/ovirt-hosted-engine-ha/broker.conf'),
            p('/run/ovirt-hosted-engine-ha/vm.conf'),
            p('/var/lib/ovirt-hosted-engine-ha/ha.conf'),
            os.path.join(hostd_root, 'pki', 'trusted-cas', 'engine-engine.lab.test.pem'),
            p('/var/lib/ovirt-hosted-engine-setup/seed/seed.iso'),
        ]
        self.kept = [
            p('/var/lib/ovirt-hosted-engine-setup/answers/answers-20260101000000.conf'),
            p('/etc/ovirt-hosted-engine-ha/agent.conf'),
            p('/var/lib/ovirt-hosted-engine-setup/other.iso'),
            os.path.join(hostd_root, 'pki', 'trusted-cas', 'lab-ca.pem'),
        ]
        for path in self.generated + self.kept:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if path.endswith('.iso'):
                make_iso(path, 'cidata' if 'seed' in path else 'OTHER')
            else:
                with open(path, 'w') as f:
                    f.write('x=1\n')
        with open(self.conf_path, 'w') as f:
            f.write(heconf.render(conf))
        with open(self.generated[1], 'w') as f:
            f.write('vmId=%s\nvmName=HostedEngine\n' % conf['vmid'])

    def existing(self):
        return [p for p in self.generated + self.kept if os.path.exists(p)]


def step_lines(result):
    return [line for line in (result.stdout + result.stderr).splitlines()
            if line.startswith('[ ')]


# -- without a host agent ------------------------------------------------------------

@pytest.fixture
def offline(prefix, tmp_path):
    hostd_root = str(tmp_path / 'hostd')
    conf = {'vmid': VM_ID, 'sdUUID': '0b5c8f3e-7a4d-4f0e-8c61-2d9e5a7b3f40',
            'storage': str(tmp_path / 'storage'), 'domainType': 'localfs', 'host_id': '1',
            'connectionUUID': 'e3a1f7c2-5b8d-4e6a-9f03-1c2d4b6a8e57'}
    files = Files(prefix, hostd_root, conf)
    env = dict(prefix.env, OVIRT_HOSTED_ENGINE_HOSTD_PORT='1',
               OVIRT_HOSTED_ENGINE_HOSTD_ROOT=hostd_root,
               SANLOCK_RUN_DIR=str(tmp_path / 'no-sanlock'))
    return files, env


@pytest.mark.parametrize('stdin', ['', 'n\n', '\n', 'no\n'])
def test_not_confirmed_changes_nothing(offline, stdin):
    files, env = offline
    before = files.existing()
    r = run(env, stdin=stdin)
    assert r.returncode == 1
    assert 'Are you sure you want to continue? [y/N]' in r.stdout
    # the warning lists what is going to be removed
    for path in files.generated:
        assert '      %s\n' % path in r.stdout, path
    for path in files.kept:
        assert path not in r.stdout
    assert 'does not answer on localhost:1' in r.stdout
    assert r.stderr.strip().splitlines() == [
        '[ ERROR ] Aborted: nothing was changed (run ovirt-hosted-engine-cleanup -q to clean '
        'up without questions)']
    assert files.existing() == before


def test_unclear_answer_is_asked_again(offline):
    files, env = offline
    r = run(env, stdin='maybe\ny\n')
    assert r.stdout.count('Are you sure you want to continue?') == 2
    assert 'Please answer y or n.' in r.stdout
    assert 'Configuration files: 8 removed' in r.stdout
    assert files.existing() == files.kept


def test_host_agent_down_skips_its_steps_and_removes_files(offline):
    files, env = offline
    r = run(env, '-q')
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'Are you sure' not in r.stdout
    lines = step_lines(r)
    assert lines[0] == '[ INFO  ] 1/5 HA services: ovirt-ha-agent and ovirt-ha-broker are not ' \
                       'running'
    for n, title in ((2, 'Engine VM'), (3, 'Sanlock and storage monitoring'),
                     (4, 'Storage connection')):
        line = [x for x in lines if ' %d/5 %s: ' % (n, title) in x]
        assert len(line) == 1 and line[0].startswith('[ WARN  ]'), lines
        assert 'skipped' in line[0] and 'does not answer on localhost:1' in line[0]
        assert line[0].endswith('start it and run ovirt-hosted-engine-cleanup again')
    assert '[ INFO  ] 5/5 Configuration files: 8 removed' in lines
    for path in files.generated:
        assert '            - %s\n' % path in r.stdout
    assert files.existing() == files.kept
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('[ ERROR ] Hosted engine cleanup incomplete (skipped: Engine VM, '
                           'Sanlock and storage monitoring, Storage connection)')
    assert 'Traceback' not in r.stdout + r.stderr
    log = last.rpartition('log: ')[2]
    assert log.startswith(files.prefix.path('/var/log/ovirt-hosted-engine-setup/'))
    assert os.path.isfile(log)
    # again: nothing left to remove, the same steps skipped
    r = run(env, '-q')
    assert r.returncode == 1
    assert '[ INFO  ] 5/5 Configuration files: nothing to remove' in step_lines(r)


@pytest.mark.parametrize('case', ['last-host', 'additional-host', 'unreadable'])
def test_metadata_slot_freed_only_when_other_hosts_use_the_domain(prefix, tmp_path, case):
    """Host id 2, its slot in the domain's metadata, without a host agent (the storage read
    directly): the last host keeps its slot (no step for it); with host 1's slot there, slot
    2 is freed and slot 1 stays byte-identical; metadata that cannot be read is said, with
    what to run on another host."""
    conf, paths = small_domain(tmp_path)
    init_lockspace(paths['lockspace'], 'hosted-engine')
    if case == 'unreadable':
        os.unlink(paths['metadata'])
    else:
        write_slot(paths['metadata'], 2, 50, 'this-host.lab.test', stopped=True)
    if case == 'additional-host':
        write_slot(paths['metadata'], 1, 90, 'first-host.lab.test')
    conf.update(vmid=VM_ID, host_id='2', connectionUUID='e3a1f7c2-5b8d-4e6a-9f03-1c2d4b6a8e57')
    hostd_root = str(tmp_path / 'hostd')
    files = Files(prefix, hostd_root, conf)
    env = dict(prefix.env, OVIRT_HOSTED_ENGINE_HOSTD_PORT='1',
               OVIRT_HOSTED_ENGINE_HOSTD_ROOT=hostd_root,
               SANLOCK_RUN_DIR=str(tmp_path / 'no-sanlock'))
    before = None if case == 'unreadable' else read_slots_raw(paths['metadata'])
    r = run(env, '-q')
    assert r.returncode == 1, r.stdout + r.stderr       # the host agent's steps skipped
    lines = step_lines(r)
    assert files.existing() == files.kept
    if case == 'last-host':
        assert lines[0].startswith('[ INFO  ] 1/5 HA services')
        assert not [x for x in lines if 'Metadata slot' in x], lines
        assert read_slots_raw(paths['metadata']) == before
        return
    step = [x for x in lines if ' 4/6 Metadata slot: ' in x]
    assert len(step) == 1, lines
    if case == 'unreadable':
        assert step[0] == (
            '[ WARN  ] 4/6 Metadata slot: skipped: cannot read the HA metadata of storage '
            'domain %s (cannot open the metadata volume %s: No such file or directory); if '
            'other hosts use it, free it from another host of the domain: hosted-engine '
            '--clean-metadata --host-id=2' % (conf['sdUUID'], paths['metadata']))
        assert 'skipped: Engine VM, Sanlock and storage monitoring, Metadata slot, Storage ' \
               'connection' in r.stderr
        return
    assert step[0] == ('[ INFO  ] 4/6 Metadata slot: host id 2 freed; the storage domain '
                       'stays with the other hosts: host 1 (first-host.lab.test)')
    after = read_slots_raw(paths['metadata'])
    assert after[2] == bytes(len(after[2]))
    assert after[:2] == before[:2] and after[3:] == before[3:]


def test_bad_option_is_one_line(offline):
    _, env = offline
    r = run(env, '--remove-everything')
    assert r.returncode == 1
    assert r.stdout == ''
    assert r.stderr.strip().splitlines() == [
        'ovirt-hosted-engine-cleanup: unrecognized arguments: --remove-everything; see '
        'ovirt-hosted-engine-cleanup --help']


def test_help_names_the_options(offline):
    _, env = offline
    r = run(env, '--help')
    assert r.returncode == 0
    assert '-q' in r.stdout and '--remove-storage' in r.stdout


def test_sanlock_status_parsing():
    text = ('daemon 7d0c-host\np -1 helper\n'
            's hosted-engine:2:/rhev/data-center/mnt/a\\:b/sd/images/i/v:0\n'
            's 0b5c8f3e:2:/rhev/data-center/mnt/x/0b5c8f3e/dom_md/ids:0 ADD\n'
            'r 0b5c8f3e:vol:/path.lease:0:1 p 42\n')
    assert lockspaces_of_status(text) == [
        (2, '/rhev/data-center/mnt/a:b/sd/images/i/v', 0,
         'hosted-engine:2:/rhev/data-center/mnt/a\\:b/sd/images/i/v:0')]


def test_seed_iso_recognised_by_volume_id(tmp_path):
    make_iso(str(tmp_path / 'a.iso'), 'cidata')
    make_iso(str(tmp_path / 'b.iso'), 'CIDATA2')
    (tmp_path / 'c.iso').write_bytes(b'\0' * 40000)
    assert is_seed_iso(str(tmp_path / 'a.iso'))
    assert not is_seed_iso(str(tmp_path / 'b.iso'))
    assert not is_seed_iso(str(tmp_path / 'c.iso'))


# -- with a real host agent, sanlock, libvirtd and the HA daemons -----------------------

IO_TIMEOUT = 1
VM_XML = """<domain type='qemu'><name>HostedEngine</name><uuid>%s</uuid>
<memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices/></domain>"""


def wait_until(what, predicate, timeout=60, interval=0.3):
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, 'not within %d s: %s' % (timeout, what)
        time.sleep(interval)


class Stack:
    def __init__(self, base):
        from .conftest import Prefix
        self.base = base
        self.prefix = Prefix(os.path.join(base, 'root'))
        self.procs = {}
        self.sanlock = self.hostd = self.libvirt = None

    def env(self):
        return dict(self.prefix.env, SANLOCK_RUN_DIR=self.sanlock.run_dir,
                    OVIRT_HOSTED_ENGINE_HOSTD_PORT=str(self.hostd.port),
                    OVIRT_HOSTED_ENGINE_HOSTD_ROOT=self.hostd.root)

    def run(self, *args, stdin=''):
        return run(self.env(), *args, stdin=stdin)

    def daemon(self, name, cmd):
        err = open(os.path.join(self.base, name + '.stderr'), 'wb')
        self.procs[name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err,
                                            stderr=err, cwd=TOP, env=self.env(),
                                            start_new_session=True)

    def stop_daemons(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()

    def call(self, method, **params):
        with self.hostd.client() as c:
            return c.call(method, **params)

    def sanlock_status(self):
        return subprocess.run(['sanlock', 'client', 'status'], capture_output=True, text=True,
                              env=self.env(), timeout=30).stdout

    def broker_status(self):
        from ovirt_hosted_engine_setup.ha.broker_client import BrokerClient, BrokerUnavailable
        try:
            with BrokerClient(self.prefix.path('/run/ovirt-hosted-engine-ha/broker.socket'),
                              timeout=5) as b:
                return b.call('status')
        except BrokerUnavailable:
            return None

    def vm_ids(self):
        return [v['vmId'] for v in self.call('Host.getAllVmStats')]

    def hosted_engine(self, *args):
        return subprocess.run([sys.executable, os.path.join(TOP, 'bin', 'hosted-engine')]
                              + list(args), capture_output=True, text=True, env=self.env(),
                              timeout=120)

    def volumes(self):
        from ovirt_hosted_engine_setup.he_storage import layout
        return layout.volume_paths(self.conf, self.prefix.path('/rhev/data-center'))

    def storage_volumes(self):
        """volumes(), read in the storage directory itself (they outlive the connection)."""
        from ovirt_hosted_engine_setup.he_storage import layout
        mnt = layout.mount_point(self.conf['storage'], self.prefix.path('/rhev/data-center'))
        return {k: os.path.join(self.storage, os.path.relpath(v, mnt))
                for k, v in self.volumes().items()}

    def run_links(self):
        out = []
        for root, dirs, files in os.walk(os.path.join(self.hostd.run_dir, 'storage')):
            out += [os.path.join(root, n) for n in dirs + files
                    if os.path.islink(os.path.join(root, n))]
        return out


@pytest.fixture(scope='module')
def stack():
    yield from make_stack(1, 'cleanup-host')


def make_stack(host_id, sanlock_name):
    """A host of the domain with host id ``host_id`` (its sanlock daemon named
    ``sanlock_name``): the domain prepared through its host agent, its broker holding the
    host id, its agent writing its metadata slot, a paused HostedEngine VM."""
    import shutil
    import tempfile
    if os.geteuid() != 0:
        pytest.skip('needs root (sanlock, the host agent, libvirtd)')
    if not shutil.which('libvirtd') or not os.path.exists('/usr/bin/qemu-system-x86_64'):
        pytest.skip('libvirtd and qemu-system-x86 are needed')
    from api.hostd_proc import Hostd, python
    from hostd.daemons import LibvirtHost, SanlockDaemon
    base = tempfile.mkdtemp(prefix='he-cleanup-', dir='/var/tmp')
    s = Stack(base)
    try:
        s.sanlock = SanlockDaemon(os.path.join(base, 'sanlock'), sanlock_name).start()
        s.libvirt = LibvirtHost(os.path.join(base, 'libvirt'), s.sanlock.run_dir).start()
        s.hostd = Hostd(os.path.join(base, 'hostd'), extra=[
            '--sanlock-run-dir', s.sanlock.run_dir, '--sanlock-io-timeout', str(IO_TIMEOUT),
            '--monitor-interval', '0.5', '--libvirt-uri', s.libvirt.uri,
            '--data-center-dir', s.prefix.path('/rhev/data-center'),
            '--ha-conf', s.prefix.path('/var/lib/ovirt-hosted-engine-ha/ha.conf')])
        os.makedirs(s.hostd.base)
        s.hostd.start()
        s.storage = os.path.join(base, 'storage')
        os.makedirs(s.storage)
        spec = {'storage': s.storage, 'domain_type': 'localfs', 'vm_disk_size': 8 << 20,
                'host_id': host_id, 'io_timeout': IO_TIMEOUT}
        p = subprocess.run([python(), '-c', PREPARE, str(s.hostd.port), s.hostd.root,
                            json.dumps(spec)], capture_output=True, text=True, timeout=240,
                           cwd=TOP, env=s.env(), stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr[-3000:]
        conf = json.loads(p.stdout.strip().splitlines()[-1])
        conf.update(vmid=VM_ID, fqdn='127.0.0.1:1', vdsm_use_ssl='true',
                    conf=s.prefix.path('/run/ovirt-hosted-engine-ha/vm.conf'))
        s.conf = conf
        s.files = Files(s.prefix, s.hostd.root, conf)
        with open(conf['conf'], 'w') as f:
            f.write(heconf.render_vm_conf(heconf.make_vm_conf(VM_ID, VM_XML % VM_ID, 64, 1)))
        s.daemon('broker', [python(), '-m', 'ovirt_hosted_engine_setup.ha.broker.daemon',
                            '--interval', '1', '--host-agent', '127.0.0.1:%d' % s.hostd.port,
                            '--hostd-root', s.hostd.root])
        wait_until('the broker holds host id %d' % host_id, lambda: (
            s.broker_status() or {}).get('lockspace', {}).get('held'), 90)
        # global maintenance: the agent leaves the VM to the test
        r = subprocess.run([python(), os.path.join(TOP, 'bin', 'hosted-engine'),
                            '--set-maintenance', '--mode=global'], capture_output=True,
                           text=True, env=s.env(), timeout=60)
        assert r.returncode == 0, r.stderr
        s.daemon('agent', [python(), '-m', 'ovirt_hosted_engine_setup.ha.agent',
                           '--interval', '1', '--host-agent', '127.0.0.1:%d' % s.hostd.port,
                           '--hostd-root', s.hostd.root,
                           '--data-center-dir', s.prefix.path('/rhev/data-center')])
        s.call('VM.create', vmID=VM_ID, vmParams={'vmId': VM_ID, 'xml': VM_XML % VM_ID,
                                                  'launchPaused': 'true'})
        wait_until('the VM paused', lambda: [v for v in s.call('Host.getAllVmStats')
                                             if v['status'] == 'Paused'], 60)
        yield s
    finally:
        s.stop_daemons()
        if getattr(s, 'other', None) is not None:
            s.other.stop()
        if s.hostd is not None:
            s.hostd.stop()
        if s.libvirt is not None:
            try:
                import libvirt
                c = libvirt.open(s.libvirt.uri)
                for d in c.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                    d.destroy()
                c.close()
            except Exception:
                pass
            s.libvirt.stop()
        if s.sanlock is not None:
            s.sanlock.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_stack_declined_second_question_changes_nothing(stack):
    r = stack.run('--remove-storage', stdin='y\nn\n')
    assert r.returncode == 1
    assert 'the engine VM HostedEngine (%s, Paused) is powered off' % VM_ID in r.stdout
    assert 'THE STORAGE DOMAIN %s on %s IS DELETED' % (stack.conf['sdUUID'],
                                                      stack.storage) in r.stdout
    assert 'Delete the hosted-engine storage domain %s on %s? This cannot be undone. [y/N]' % (
        stack.conf['sdUUID'], stack.storage) in r.stdout
    assert 'Aborted: nothing was changed' in r.stderr
    assert all(p.poll() is None for p in stack.procs.values())
    assert stack.vm_ids() == [VM_ID]
    assert len(stack.files.existing()) == len(stack.files.generated + stack.files.kept)


def test_stack_destructive_verbs_refused_while_another_host_is_alive(stack):
    """Host 2 (another sanlock daemon) holds its host id in the hosted-engine lockspace and
    has a metadata slot: --remove-storage, --clean-metadata of host 2 and
    --reinitialize-lockspace refuse, naming it; nothing changes."""
    sys.path.insert(0, os.path.join(TOP, 'tests'))
    from hostd.daemons import SanlockDaemon
    stack.other = SanlockDaemon(os.path.join(stack.base, 'other-sanlock'), 'other-host').start()
    lockspace = stack.volumes()['lockspace']
    sanlock_op(stack.other.run_dir, 'add', 2, 'hosted-engine', lockspace)
    write_slot(stack.volumes()['metadata'], 2, 500, 'other-host.lab.test')
    sd = stack.conf['sdUUID']

    r = stack.run('-q', '--remove-storage')
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        '[ INFO  ] Checking whether host 2 (other-host.lab.test) still uses storage domain %s '
        '(up to 6 s)' % sd]
    assert r.stderr.strip().splitlines() == [
        '[ ERROR ] Refusing to delete storage domain %s on %s: host 2 (other-host.lab.test) is '
        'alive in it (host 2 (other-host.lab.test): its host id in the hosted-engine lockspace '
        'is renewed); nothing was changed. Run ovirt-hosted-engine-cleanup without '
        '--remove-storage to clean up this host only; if it is really gone, fence it (power '
        'off) and run again with --fenced-host=2' % (sd, stack.storage)]
    # the confirmation names it too, and nothing is asked
    r = stack.run('--remove-storage', stdin='y\ny\n')
    assert r.returncode == 1
    assert '  - host 2 (other-host.lab.test) IS ALIVE in storage domain %s (its host id in the ' \
           'hosted-engine lockspace is renewed): the storage domain is not deleted' % sd \
        in r.stdout, r.stdout
    assert 'Are you sure' not in r.stdout
    assert 'Refusing to delete storage domain' in r.stderr
    # a host id that is not the live one does not override
    r = stack.run('-q', '--remove-storage', '--fenced-host=3')
    assert r.returncode == 1 and 'host 2 (other-host.lab.test) is alive' in r.stderr
    r = stack.run('-q', '--fenced-host=2')
    assert r.returncode == 1 and '--fenced-host is only for --remove-storage' in r.stderr

    r = stack.hosted_engine('--clean-metadata', '--host-id=2')
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        'hosted-engine: host 2 (other-host.lab.test) is alive (its host id in the '
        'hosted-engine lockspace is renewed): stop ovirt-ha-agent and ovirt-ha-broker there '
        'first; if it is really gone, fence it (power it off) and use --force-cleanup')
    r = stack.hosted_engine('--clean-metadata', '--host-id=3')
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'Host 3 has no metadata slot: nothing was removed\n'
    r = stack.hosted_engine('--reinitialize-lockspace')
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('hosted-engine: Refusing to reinitialize the hosted-engine '
                           'lockspace: host 1 (') and 'host 2 (other-host.lab.test) are alive ' \
        'in storage domain %s' % sd in last, last
    assert last.endswith('if a host is really gone, fence it (power it off) and use --force')

    assert all(p.poll() is None for p in stack.procs.values())
    assert stack.vm_ids() == [VM_ID]
    assert len(stack.files.existing()) == len(stack.files.generated + stack.files.kept)
    assert os.path.isdir(os.path.join(stack.storage, sd))
    from ovirt_hosted_engine_setup.ha import peers
    assert peers.read_leases(lockspace, 'hosted-engine')[2].owner == 'other-host'


def test_stack_cleanup(stack):
    """This host (id 1) is cleaned up while host 2 (the previous test's other host) has its
    slot and lease in the domain: an undeploy, which frees slot 1 only."""
    from ovirt_hosted_engine_setup.ha import metadata
    status = stack.sanlock_status()
    held = lockspaces_of_status(status)
    assert [h[0] for h in held] == [1], status       # the broker's host id, parsed
    assert stack.conf['sdUUID'] in status            # the VM lease lockspace (monitoring)
    mount = os.path.join(stack.prefix.path('/rhev/data-center/mnt'),
                         stack.storage.replace('_', '__').replace('/', '_'))
    assert os.path.islink(mount)
    # the links of the images the HA agent prepared
    assert len(stack.run_links()) == 4, stack.run_links()
    # the agent exits first: only the broker is said stopped
    stack.procs['agent'].terminate()
    assert stack.procs['agent'].wait(30) is not None
    md = stack.storage_volumes()['metadata']
    before = read_slots_raw(md)
    assert before[1].strip(b'\0') and before[2].strip(b'\0')

    r = stack.run('-q')
    assert r.returncode == 0, r.stdout + r.stderr
    lines = step_lines(r)
    assert lines[0] == '[ INFO  ] 1/6 HA services: ovirt-ha-agent was not running, ' \
                       'ovirt-ha-broker stopped (pid %d)' % stack.procs['broker'].pid, lines
    assert lines[1] == '[ INFO  ] 2/6 Engine VM: powered off and removed from this host: ' \
                       'HostedEngine (%s, was Paused)' % VM_ID
    # the broker may have left its lockspace itself when it stopped
    monitoring = '[ INFO  ] 3/6 Sanlock and storage monitoring: 4 images of storage domain %s ' \
                 'torn down; storage domain %s no longer monitored; ' % (
                     stack.conf['sdUUID'], stack.conf['sdUUID'])
    assert lines[2] in (monitoring + 'not in the hosted-engine lockspace',
                        monitoring + 'left the hosted-engine lockspace (host id 1)'), lines
    assert lines[3] == '[ INFO  ] 4/6 Metadata slot: host id 1 freed; the storage domain ' \
                       'stays with the other hosts: host 2 (other-host.lab.test)', lines
    assert lines[4] == '[ INFO  ] 5/6 Storage connection: %s disconnected' % stack.storage
    # 8, and the broker's socket when the broker left it behind
    assert lines[5] in ('[ INFO  ] 6/6 Configuration files: 8 removed',
                        '[ INFO  ] 6/6 Configuration files: 9 removed'), lines
    assert lines[6].startswith('[ INFO  ] Hosted engine cleanup finished: this host can be '
                               'deployed again')
    assert r.stderr == ''
    after = read_slots_raw(md)
    assert after[1] == bytes(metadata.SLOT_SIZE)
    assert after[0] == before[0] and after[2:] == before[2:]

    assert stack.procs['agent'].wait(5) is not None
    assert stack.procs['broker'].wait(5) is not None
    assert stack.vm_ids() == []
    import libvirt
    conn = libvirt.open(stack.libvirt.uri)
    assert conn.listAllDomains() == []
    conn.close()
    wait_until('sanlock without the lockspaces', lambda: stack.conf['sdUUID'] not in
               stack.sanlock_status() and 'hosted-engine' not in stack.sanlock_status(), 30)
    assert stack.call('Host.getStorageRepoStats') == {}
    assert not os.path.lexists(mount)
    assert stack.run_links() == []
    assert stack.files.existing() == stack.files.kept
    assert not os.path.exists(stack.prefix.path('/run/ovirt-hosted-engine-ha/broker.socket'))
    # the storage domain stays without --remove-storage
    assert os.path.isdir(os.path.join(stack.storage, stack.conf['sdUUID']))

    r = stack.run('-q')
    assert r.returncode == 0, r.stdout + r.stderr
    assert step_lines(r)[:5] == [
        '[ INFO  ] 1/5 HA services: ovirt-ha-agent and ovirt-ha-broker are not running',
        '[ INFO  ] 2/5 Engine VM: no engine VM on this host',
        '[ INFO  ] 3/5 Sanlock and storage monitoring: no hosted-engine storage domain '
        'monitored; not in the hosted-engine lockspace',
        '[ INFO  ] 4/5 Storage connection: no hosted-engine storage connection known: nothing '
        'to disconnect',
        '[ INFO  ] 5/5 Configuration files: nothing to remove']


def connect_leftover(stack):
    """A storage connection left on this host (as `ovirt-hosted-engine-rpc StoragePool
    connectStorageServer ...` leaves one): the host agent sees the domain through it."""
    from ovirt_hosted_engine_setup.he_storage import layout
    conf = stack.conf
    res = stack.call('StoragePool.connectStorageServer', storagepoolID=layout.BLANK_UUID,
                     domainType=4, connectionParams=[layout.connection_params(
                         conf, '11111111-2222-3333-4444-555555555555')])
    assert res[0]['status'] == 0
    assert conf['sdUUID'] in stack.call('Host.getStorageDomains')


def test_stack_remove_storage_on_a_host_never_deployed_deletes_nothing(stack):
    """No hosted-engine.conf, no answer file of a deploy naming a domain: the hosted-engine
    domain the host agent sees (named hosted_storage, like every host's) is not this host's
    to delete."""
    connect_leftover(stack)
    assert not os.path.exists(stack.files.conf_path)
    r = stack.run('-q', '--remove-storage')
    assert r.returncode == 0, r.stdout + r.stderr
    assert '[ INFO  ] 4/6 Storage domain: no hosted-engine storage domain found: nothing to ' \
           'delete' in step_lines(r), r.stdout
    assert os.path.isdir(os.path.join(stack.storage, stack.conf['sdUUID']))
    assert stack.conf['sdUUID'] in stack.call('Host.getStorageDomains')
    from ovirt_hosted_engine_setup.he_storage import layout
    stack.call('StoragePool.disconnectStorageServer', storagepoolID=layout.BLANK_UUID,
               domainType=4, connectionParams=[layout.connection_params(
                   stack.conf, '11111111-2222-3333-4444-555555555555')])


def test_stack_remove_storage_without_conf(stack):
    """A deploy that failed before writing hosted-engine.conf: its answer file names the
    storage and the metadata and lockspace images it created; that domain is found through
    the host agent, refused while another host is alive in it, and deleted with
    --fenced-host for that host."""
    from ovirt_hosted_engine_setup.he_storage import layout
    conf = stack.conf
    answers = stack.prefix.path('/var/lib/ovirt-hosted-engine-setup/answers/'
                                'answers-20270101000000.conf')
    with open(answers, 'w') as f:
        f.write('[environment:default]\n' + ''.join(
            'OVEHOSTED_STORAGE/%s=str:%s\n' % kv for kv in (
                ('storageDomainConnection', conf['storage']), ('domainType', 'localfs'),
                ('metadataImageUUID', conf['metadata_image_UUID']),
                ('metadataVolumeUUID', conf['metadata_volume_UUID']),
                ('lockspaceImageUUID', conf['lockspace_image_UUID']),
                ('lockspaceVolumeUUID', conf['lockspace_volume_UUID']),
                ('sanlockIoTimeout', str(IO_TIMEOUT)))))
    res = stack.call('StoragePool.connectStorageServer', storagepoolID=layout.BLANK_UUID,
                     domainType=4, connectionParams=[layout.connection_params(
                         conf, conf['connectionUUID'])])
    assert res[0]['status'] == 0
    stack.call('Host.startMonitoringDomain', sdUUID=conf['sdUUID'], hostID=1)
    wait_until('host id acquired', lambda: stack.call('Host.getStorageRepoStats').get(
        conf['sdUUID'], {}).get('acquired'), 60)
    assert not os.path.exists(stack.files.conf_path)

    # host 2 still renews its host id: refused, nothing changed
    r = stack.run('-q', '--remove-storage')
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        '[ ERROR ] Refusing to delete storage domain %s on %s: host 2 (other-host.lab.test) '
        'is alive in it' % (conf['sdUUID'], stack.storage)), r.stderr
    assert os.path.isdir(os.path.join(stack.storage, conf['sdUUID']))
    assert conf['sdUUID'] in stack.call('Host.getStorageRepoStats')

    r = stack.run('-q', '--remove-storage', '--fenced-host=2')
    assert r.returncode == 0, r.stdout + r.stderr
    lines = step_lines(r)
    assert lines[0].startswith('[ INFO  ] Checking whether host 2 (other-host.lab.test) still '
                               'uses storage domain %s' % conf['sdUUID']), lines
    assert lines[1] == '[ WARN  ] host 2 (other-host.lab.test) looks alive in storage domain %s ' \
                       '(its host id in the hosted-engine lockspace is renewed), declared ' \
                       'fenced with --fenced-host=2: the domain is deleted anyway' \
                       % conf['sdUUID']
    lines = lines[2:]
    assert lines[2] == '[ INFO  ] 3/6 Sanlock and storage monitoring: 4 images of storage ' \
                       'domain %s torn down; storage domain %s no longer monitored; not in ' \
                       'the hosted-engine lockspace' % (conf['sdUUID'], conf['sdUUID'])
    assert lines[3] == '[ INFO  ] 4/6 Storage domain: %s on %s deleted' % (conf['sdUUID'],
                                                                          stack.storage)
    assert lines[4] == '[ INFO  ] 5/6 Storage connection: %s disconnected' % stack.storage
    assert os.listdir(stack.storage) == []
    assert stack.call('Host.getStorageRepoStats') == {}

    r = stack.run('-q', '--remove-storage')
    assert r.returncode == 0, r.stdout + r.stderr
    assert '[ INFO  ] 4/6 Storage domain: no hosted-engine storage domain found: nothing to ' \
           'delete' in step_lines(r)


@pytest.fixture
def additional_host():
    """This host joined a deployed domain as host id 2 (an additional host), with its own
    sanlock, host agent, libvirtd, broker and agent."""
    yield from make_stack(2, 'additional-host')


def test_stack_cleanup_of_an_additional_host_frees_its_slot_only(additional_host):
    """The first host (host id 1: another sanlock daemon renewing its host id, and its
    metadata slot) stays; cleanup on host id 2 frees slot 2 only and leaves the domain, slot
    1 (byte-identical) and host 1's lease as they were; --vm-status on host 1 no longer
    lists host 2."""
    from ovirt_hosted_engine_setup.ha import peers
    from ovirt_hosted_engine_setup.he_storage import layout
    from hostd.daemons import SanlockDaemon
    from .conftest import Prefix
    s = additional_host
    sd = s.conf['sdUUID']
    vols = s.storage_volumes()
    s.other = SanlockDaemon(os.path.join(s.base, 'first-sanlock'), 'first-host').start()
    sanlock_op(s.other.run_dir, 'add', 1, 'hosted-engine', vols['lockspace'])
    write_slot(vols['metadata'], 1, 700, 'first-host.lab.test')
    slot2 = wait_until('the agent of host 2 writes its slot',
                       lambda: peers.read_slots(vols['metadata']).get(2), 60)

    # asked first: what will happen is said, and "no" changes nothing
    r = s.run(stdin='n\n')
    assert r.returncode == 1
    assert '  - its metadata slot (host id 2) is freed; storage domain %s stays with the other ' \
           'hosts (host 1 (first-host.lab.test)), their slots and leases untouched' % sd \
        in r.stdout, r.stdout
    assert peers.read_slots(vols['metadata']).get(2) is not None

    s.procs['agent'].terminate()
    s.procs['agent'].wait(30)
    before = read_slots_raw(vols['metadata'])
    lease1 = peers.read_leases(vols['lockspace'], 'hosted-engine')[1]
    assert lease1.owner == 'first-host' and lease1.held
    r = s.run('-q')
    assert r.returncode == 0, r.stdout + r.stderr
    lines = step_lines(r)
    assert lines[3] == '[ INFO  ] 4/6 Metadata slot: host id 2 freed; the storage domain ' \
                       'stays with the other hosts: host 1 (first-host.lab.test)', lines
    assert lines[4] == '[ INFO  ] 5/6 Storage connection: %s disconnected' % s.storage
    assert lines[-1].startswith('[ INFO  ] Hosted engine cleanup finished')
    after = read_slots_raw(vols['metadata'])
    assert after[2] == bytes(len(after[2]))
    assert after[:2] == before[:2] and after[3:] == before[3:]
    assert slot2.hostname and slot2.hostname != 'first-host.lab.test'
    # the domain and host 1's lease stay; host 1 still renews it
    assert os.path.isdir(os.path.join(s.storage, sd))
    lease = peers.read_leases(vols['lockspace'], 'hosted-engine')[1]
    assert (lease.owner, lease.generation) == (lease1.owner, lease1.generation)
    wait_until('host 1 renews its lease', lambda: peers.read_leases(
        vols['lockspace'], 'hosted-engine')[1].timestamp != lease1.timestamp, 10)
    assert not peers.read_leases(vols['lockspace'], 'hosted-engine')[2].held

    # hosted-engine --vm-status on host 1 (its own hosted-engine.conf and connection)
    first = Prefix(os.path.join(s.base, 'first-root'))
    conf_path = first.path('/etc/ovirt-hosted-engine/hosted-engine.conf')
    os.makedirs(os.path.dirname(conf_path))
    with open(conf_path, 'w') as f:
        f.write(heconf.render(dict(s.conf, host_id='1')))
    mnt = layout.mount_point(s.storage, first.path('/rhev/data-center'))
    os.makedirs(os.path.dirname(mnt))
    os.symlink(s.storage, mnt)
    r = first.run('--vm-status', '--json', env=dict(first.env,
                                                   SANLOCK_RUN_DIR=s.other.run_dir))
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert sorted(status) == ['1', 'global_maintenance'], status
    assert status['1']['hostname'] == 'first-host.lab.test'


# -- which other hosts are alive in the domain (ha/peers.py) -----------------------------

# Run in a child process (one sanlock daemon per process): python -c JOIN RUN_DIR OP HOST_ID
# LOCKSPACE_NAME PATH -- join or leave a lockspace as another host would.
JOIN = r'''
import sys
from ovirt_hosted_engine_setup.he_storage import sanlock_util
run_dir, op, host_id, name, path = sys.argv[1:6]
sanlock_util.use_run_dir(run_dir)
if op == 'write':
    sanlock_util.write_lockspace(name, path, iotimeout=1)
elif op == 'add':
    sanlock_util.add_lockspace(name, int(host_id), path, iotimeout=1, wait=True)
else:
    sanlock_util.rem_lockspace(name, int(host_id), path)
'''


def sanlock_op(run_dir, op, host_id, name, path):
    p = subprocess.run([sys.executable, '-c', JOIN, run_dir, op, str(host_id), name, path],
                       capture_output=True, text=True, timeout=120, cwd=TOP)
    assert p.returncode == 0, p.stderr


@pytest.fixture
def other_host(tmp_path):
    """A second sanlock daemon: another host, with its own sanlock name."""
    if os.geteuid() != 0:
        pytest.skip('needs root (sanlock)')
    sys.path.insert(0, os.path.join(TOP, 'tests'))
    from hostd.daemons import SanlockDaemon
    d = SanlockDaemon(str(tmp_path / 'other-sanlock'), 'other-host').start()
    yield d
    d.stop()


def small_domain(tmp_path):
    """A domain's hosted-engine lockspace and metadata volumes as hosted-engine.conf names
    them, on a localfs directory (not connected: its directory is read directly)."""
    import uuid
    from ovirt_hosted_engine_setup.ha import metadata
    conf = {k: str(uuid.uuid4()) for k in ('sdUUID', 'lockspace_image_UUID',
                                           'lockspace_volume_UUID', 'metadata_image_UUID',
                                           'metadata_volume_UUID')}
    conf.update(storage=str(tmp_path / 'storage'), domainType='localfs', sanlock_io_timeout='1')
    from ovirt_hosted_engine_setup.ha import peers
    paths = peers.domain_paths(conf, str(tmp_path / 'rhev'))
    for name, size in (('lockspace', 1 << 20), ('metadata', metadata.area_size(4))):
        os.makedirs(os.path.dirname(paths[name]))
        with open(paths[name], 'wb') as f:
            f.truncate(size)
    return conf, paths


def write_slot(path, host_id, ts, hostname, stopped=False):
    from ovirt_hosted_engine_setup.ha import metadata
    with open(path, 'r+b') as f:
        f.seek(host_id * metadata.SLOT_SIZE)
        f.write(metadata.serialize_host(host_id, ts, 3400, {'vm': 'down'}, hostname,
                                        stopped=stopped))


def init_lockspace(path, name):
    """A lockspace as sanlock initialises it (no daemon needed): every lease free."""
    subprocess.run(['sanlock', 'direct', 'init', '-o', '1', '-s', '%s:0:%s:0' % (name, path)],
                   check=True, capture_output=True, timeout=60)


def read_slots_raw(path):
    """The slots of a metadata volume as bytes (slot 0 the global block)."""
    from ovirt_hosted_engine_setup.ha import metadata
    with open(path, 'rb') as f:
        data = f.read()
    return [data[i:i + metadata.SLOT_SIZE] for i in range(0, len(data), metadata.SLOT_SIZE)]


def test_peers_a_host_renewing_its_lease_is_alive_a_killed_one_is_not(tmp_path, other_host):
    from ovirt_hosted_engine_setup.ha import peers
    conf, paths = small_domain(tmp_path)
    ls = paths['lockspace']
    sanlock_op(other_host.run_dir, 'write', 0, 'hosted-engine', ls)
    sanlock_op(other_host.run_dir, 'add', 2, 'hosted-engine', ls)
    write_slot(paths['metadata'], 2, 100, 'other-host.lab.test')     # written once
    write_slot(paths['metadata'], 3, 100, 'gone-host.lab.test')      # no lease: cannot write
    leases = peers.read_leases(ls, 'hosted-engine')
    assert leases[2].owner == 'other-host' and leases[2].timestamp > 0
    assert leases[1].timestamp == 0
    told = []
    v = peers.find_alive(conf, str(tmp_path / 'rhev'), progress=told.append)
    assert [(h.host_id, h.hostname) for h in v.alive] == [(2, 'other-host.lab.test')]
    assert v.alive[0].evidence == ['its host id in the hosted-engine lockspace is renewed']
    assert str(v.alive[0]) == 'host 2 (other-host.lab.test)'
    assert told == ['Checking whether host 2 (other-host.lab.test) still uses storage domain '
                    '%s (up to 6 s)' % conf['sdUUID']]
    # its lease, when this host's sanlock name is the writer's: this host, not another one
    # (its unmoving slot is watched, and not alive either)
    v = peers.find_alive(conf, str(tmp_path / 'rhev'), own_owner='other-host')
    assert v.alive == []
    # the host dies (its sanlock killed): the lease stays, its timestamp stops moving
    other_host.proc.kill()
    other_host.proc.wait()
    assert peers.read_leases(ls, 'hosted-engine')[2].timestamp > 0
    v = peers.find_alive(conf, str(tmp_path / 'rhev'))
    assert v.alive == [] and 5 <= v.watched < 10


def test_peers_left_host_and_stopped_agent_take_no_time(tmp_path, other_host):
    from ovirt_hosted_engine_setup.ha import peers
    conf, paths = small_domain(tmp_path)
    ls = paths['lockspace']
    sanlock_op(other_host.run_dir, 'write', 0, 'hosted-engine', ls)
    sanlock_op(other_host.run_dir, 'add', 2, 'hosted-engine', ls)
    sanlock_op(other_host.run_dir, 'rem', 2, 'hosted-engine', ls)
    write_slot(paths['metadata'], 2, 100, 'other-host.lab.test', stopped=True)
    v = peers.find_alive(conf, str(tmp_path / 'rhev'))
    assert v.alive == [] and v.watched == 0 and v.read_any


def test_peers_metadata_moving_counts_when_the_lockspace_is_lost(tmp_path):
    """The lockspace overwritten (the reason to reinitialize it): an agent writing its slot
    is still seen."""
    import threading
    from ovirt_hosted_engine_setup.ha import peers
    conf, paths = small_domain(tmp_path)
    write_slot(paths['metadata'], 3, 1, 'busy-host.lab.test')
    stop = threading.Event()

    def agent():
        ts = 1
        while not stop.wait(0.3):
            ts += 1
            write_slot(paths['metadata'], 3, ts, 'busy-host.lab.test')
    t = threading.Thread(target=agent)
    t.start()
    try:
        v = peers.find_alive(conf, str(tmp_path / 'rhev'))
    finally:
        stop.set()
        t.join()
    assert [(h.host_id, h.evidence) for h in v.alive] == [
        (3, ['its HA metadata slot is being written'])]
    assert not v.read_any and 'holds no sanlock lockspace' in v.unknown[0]
    assert v.watched < 5


# -- the management network (the deploy's record of the NIC) -----------------------------

class FakeAgent:
    """Host.getCapabilities, Host.setupNetworks and Host.setSafeNetworkConfig of a host agent
    that removes the bridge and gives the NIC ``after`` (VDSM leaves it unconfigured)."""

    def __init__(self, after):
        self.after = after
        self.calls = []
        self.bridge = True

    def call(self, method, **params):
        self.calls.append((method, params))
        if method == 'Host.getCapabilities':
            nic = {'ipv4addrs': ['192.0.2.10/24'], 'gateway': '', 'mtu': '1500'} \
                if self.bridge else self.after
            return {'nics': {'eth0': nic},
                    'bridges': {'ovirtmgmt': {}} if self.bridge else {}}
        if method == 'Host.setupNetworks':
            self.bridge = False
        return True


def bridge_plugin():
    """plugins/gr-he-setup/network/bridge.py, loaded as the runner loads it."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'bridge_plugin', os.path.join(TOP, 'plugins', 'gr-he-setup', 'network', 'bridge.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def network_cleanup(prefix, monkeypatch, after):
    """A Cleanup with the deploy's record of eth0 (192.0.2.10/24 via 192.0.2.1) written by
    network/bridge.py's own functions, talking to a FakeAgent."""
    import io
    from ovirt_hosted_engine_setup import paths
    monkeypatch.setattr(paths, 'NETWORK_RECORD', prefix.path(
        '/var/lib/ovirt-hosted-engine-setup/network-before-bridge.json'))
    bridge = bridge_plugin()
    caps = {'nics': {'eth0': {'ipv4addrs': ['192.0.2.10/24'], 'addr': '192.0.2.10',
                              'netmask': '255.255.255.0', 'gateway': '192.0.2.1',
                              'mtu': '1500', 'hwaddr': '52:54:00:00:00:01'}}}
    path = bridge.write_network_record(bridge.network_record(
        caps, 'ovirtmgmt', 'eth0', {'nic': 'eth0', 'bridged': True}))
    assert path == paths.NETWORK_RECORD
    assert oct(os.stat(path).st_mode & 0o777) == '0o600'
    c = Cleanup(quiet=True, out=io.StringIO(), err=io.StringIO())
    c.network_record = read_network_record()
    assert c.network_record['nic_before']['gateway'] == '192.0.2.1'
    c.client = FakeAgent(after)
    c.call = c.client.call
    return c, path


def test_network_restored_by_the_host_agent_removes_the_record(prefix, monkeypatch):
    c, path = network_cleanup(prefix, monkeypatch, {
        'ipv4addrs': ['192.0.2.10/24'], 'gateway': '192.0.2.1', 'mtu': '1500'})
    assert c.restore_network() == ('bridge ovirtmgmt removed; eth0 has its configuration back '
                                   '(192.0.2.10/24, default route via 192.0.2.1, MTU 1500)')
    assert ('Host.setupNetworks', {'networks': {'ovirtmgmt': {'remove': True}}, 'bondings': {},
                                   'options': {'connectivityCheck': False}}) in c.client.calls
    assert ('Host.setSafeNetworkConfig', {}) in c.client.calls
    assert not os.path.exists(path)


def test_network_not_restored_says_what_to_do_and_keeps_the_record(prefix, monkeypatch):
    c, path = network_cleanup(prefix, monkeypatch, {'ipv4addrs': [], 'gateway': '',
                                                    'mtu': '1500'})
    with pytest.raises(StepFailed) as e:
        c.restore_network()
    assert str(e.value) == (
        'bridge ovirtmgmt removed; but eth0 lacks what it had before the deploy: address '
        '192.0.2.10/24, default route via 192.0.2.1; put it back (ip addr add 192.0.2.10/24 dev '
        'eth0; ip route replace default via 192.0.2.1 dev eth0), then run '
        'ovirt-hosted-engine-cleanup again')
    assert os.path.exists(path)
    # run again once it is back: the bridge is gone already, the record goes
    c.client.after = {'ipv4addrs': ['192.0.2.10/24'], 'gateway': '192.0.2.1', 'mtu': '1500'}
    assert c.restore_network().startswith('bridge ovirtmgmt was not there; eth0 has its '
                                          'configuration back')
    assert not os.path.exists(path)


def test_bridge_rollback_removes_the_record_only_with_the_bridge(prefix, monkeypatch):
    """A deploy that fails after the bridge removes it again and, with it, the record;
    when the removal fails the record stays for cleanup."""
    import logging
    _c, path = network_cleanup(prefix, monkeypatch, {})
    bridge = bridge_plugin()

    class Refusing(FakeAgent):
        def call(self, method, **params):
            raise RuntimeError('no such network')
    bridge.BridgeRollback(Refusing({}), 'ovirtmgmt', 'eth0', logging.getLogger('t')).abort()
    assert os.path.exists(path)
    agent = FakeAgent({})
    bridge.BridgeRollback(agent, 'ovirtmgmt', 'eth0', logging.getLogger('t')).abort()
    assert [m for m, _ in agent.calls] == ['Host.setupNetworks', 'Host.setSafeNetworkConfig']
    assert not os.path.exists(path)


# -- the deploy's answers are read bounded ------------------------------------------------

@pytest.mark.parametrize('kind', ['fifo', 'large'])
def test_answers_not_a_regular_file_or_too_large_are_not_read(tmp_path, monkeypatch, kind):
    from ovirt_hosted_engine_setup import paths
    answers_dir = tmp_path / 'answers'
    answers_dir.mkdir()
    monkeypatch.setattr(paths, 'ANSWERS_DIR', str(answers_dir))
    monkeypatch.setattr(paths, 'ETC_ANSWER_FILE', str(tmp_path / 'none.conf'))
    path = str(answers_dir / 'answers-20260101000000.conf')
    if kind == 'fifo':
        os.mkfifo(path)        # opened without a writer: would block a plain read forever
    else:
        with open(path, 'w') as f:
            f.write('[environment:default]\nOVEHOSTED_STORAGE/sdUUID=str:x\n')
            f.write('#' * (2 << 20))
    assert latest_answers() == {}
    good = str(answers_dir / 'answers-20260102000000.conf')
    with open(good, 'w') as f:
        f.write('[environment:default]\nOVEHOSTED_STORAGE/sdUUID=str:abc\n')
    os.utime(good, (2e9, 2e9))
    assert latest_answers()['OVEHOSTED_STORAGE/sdUUID'] == 'abc'
