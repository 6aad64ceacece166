"""The HA verbs of `hosted-engine`, run as the real command with its files relocated
(OVIRT_HOSTED_ENGINE_PREFIX).

- Without any daemon: --vm-status from a metadata volume written with the real slot
  format (text layout, JSON, a corrupted slot, global maintenance, the bounded area),
  bad input, --check-liveliness against a loopback HTTP server, the local and shared
  configuration, one-line errors when the host agent or the broker is down.
- With a real stack (sanlock, ovirt-hosted-engine-hostd on loopback, the storage domain
  made by domain.prepare_domain, ovirt-ha-broker and ovirt-ha-agent): storage
  connection, maintenance modes, live status from the broker and from sanlock, metadata
  cleaning, the VM verbs against libvirt, lockspace reinitialization.
"""
import json
import os

import pytest

from ovirt_hosted_engine_setup import cli
from ovirt_hosted_engine_setup.ha import metadata
from ovirt_hosted_engine_setup.he_storage.config_volume import ConfigVolume

from .ha_helpers import DOWN, PREPARE, UP, Deployed, HealthServer, one_line

HA_VERBS = ['--vm-status', '--set-maintenance', '--vm-start', '--vm-start-paused',
            '--vm-shutdown', '--vm-poweroff', '--add-console-password', '--console',
            '--check-liveliness', '--connect-storage', '--disconnect-storage',
            '--reinitialize-lockspace', '--clean-metadata', '--set-shared-config',
            '--get-shared-config']


@pytest.fixture
def env(prefix, tmp_path):
    """The command's environment: no sanlock daemon, no broker, no host agent."""
    return dict(prefix.env, SANLOCK_RUN_DIR=str(tmp_path / 'no-sanlock'),
                OVIRT_HOSTED_ENGINE_HOSTD_PORT='1')


@pytest.fixture
def deployed(prefix, tmp_path):
    d = Deployed(prefix, str(tmp_path / 'storage'))
    d.create_volumes(max_hosts=4)
    return d


def test_every_ha_verb_in_help_and_its_own_help(prefix):
    r = prefix.run('--help')
    assert r.returncode == 0
    options = [v.option for v in cli.VERBS]
    for verb in HA_VERBS:
        assert verb in options
        assert '\n        %s' % verb in r.stdout, verb
        h = prefix.run(verb, '--help')
        assert h.returncode == 0, (verb, h.stderr)
        assert h.stdout.startswith('Usage: hosted-engine %s' % verb), h.stdout


def test_vm_shutdown_help_documents_wait(prefix):
    h = prefix.run('--vm-shutdown', '--help').stdout
    assert '--wait' in h and '--timeout=SECONDS' in h and '120 seconds' in h
    assert 'exit 1 when it' in ' '.join(h.split())
    assert 'already down' in prefix.run('--vm-poweroff', '--help').stdout


def test_not_deployed(prefix, env):
    for verb in HA_VERBS:
        args = {'--set-maintenance': ['--mode=global'],
                '--set-shared-config': ['fqdn', 'x', '--type=he_shared'],
                '--get-shared-config': ['fqdn', '--type=he_local']}.get(verb, [])
        r = prefix.run(verb, *args, env=env)
        line = one_line(r)
        if verb == '--check-liveliness':
            assert r.returncode == 2 and 'not configured' in line, line
        else:
            assert r.returncode == 1, (verb, r.stderr)
            assert 'You must run deploy first' in line, line


@pytest.mark.parametrize('args,words', [
    (['--vm-status', '--bogus'], 'unknown option --bogus'),
    (['--vm-status', 'extra'], "unexpected argument 'extra'"),
    (['--vm-status', '--json=1'], '--json takes no value'),
    (['--set-maintenance'], '--mode=global'),
    (['--set-maintenance', '--mode'], '--mode needs a value'),
    (['--set-maintenance', '--mode='], '--mode needs a value'),
    (['--set-maintenance', '--mode=bogus'], "unknown maintenance mode 'bogus'"),
    (['--clean-metadata', '--host-id=abc'], "not 'abc'"),
    (['--clean-metadata', '--host-id=0'], 'between 1 and 250, not 0'),
    (['--clean-metadata', '--host-id=251'], 'between 1 and 250, not 251'),
    (['--reinitialize-lockspace', '--force-cleanup'], 'unknown option --force-cleanup'),
    (['--set-shared-config', 'fqdn', '--type=he_local'], 'needs VALUE'),
    (['--set-shared-config', 'fqdn', 'x'], '--type=he_local, he_shared, ha or broker'),
    (['--get-shared-config', 'fqdn', '--type=bogus'], "unknown configuration type 'bogus'"),
    (['--get-shared-config', 'nokey', '--type=he_local'], "unknown key 'nokey'"),
    (['--vm-poweroff', '-x'], 'unknown option -x'),
    (['--vm-shutdown', '--timeout=5'], '--timeout is the limit of --wait'),
    (['--vm-shutdown', '--wait', '--timeout=0'], '--timeout needs a number of seconds'),
])
def test_bad_input_one_line(prefix, deployed, env, args, words):
    r = prefix.run(*args, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert words in one_line(r)


# -- --vm-status ------------------------------------------------------------------------

def populate(d):
    d.write_host(1, 1000, 3400, UP, 'host1.example', local_conf_timestamp=1000,
                 state='EngineUp', vm_conf_refresh_time=990)
    d.write_host(2, 2000, 0, DOWN, 'host2.example', local_maintenance=True,
                 local_conf_timestamp=2000, state='LocalMaintenance')
    broken = bytearray(metadata.serialize_host(3, 3000, 3400, DOWN, 'host3.example'))
    at = broken.index(b'|3400|')
    broken[at:at + 6] = b'|3401|'   # a changed score: CRC mismatch
    d.write_slot(3, bytes(broken))


def test_vm_status_text_exact(prefix, deployed, env):
    populate(deployed)
    deployed.write_global(True)
    r = prefix.run('--vm-status', env=env)
    assert r.returncode == 0, r.stderr
    crc1 = metadata.parse_host_slot(1, metadata.serialize_host(
        1, 1000, 3400, UP, 'host1.example', local_conf_timestamp=1000, state='EngineUp',
        vm_conf_refresh_time=990)).crc32
    expected_host1 = (
        '\n\n--== Host host1.example (id: 1) status ==--\n\n'
        'Host ID                            : 1\n'
        'Host timestamp                     : 1000\n'
        'Score                              : 3400\n'
        'Engine status                      : unknown stale-data\n'
        'Hostname                           : host1.example\n'
        'Local maintenance                  : False\n'
        'stopped                            : False\n'
        'crc32                              : %s\n'
        'conf_on_shared_storage             : True\n'
        'local_conf_timestamp               : 1000\n'
        'Status up-to-date                  : False\n'
        'Extra metadata (valid at timestamp):\n'
        '\tmetadata_parse_version=1\n'
        '\tmetadata_feature_version=1\n'
        '\ttimestamp=1000 (%s)\n'
        '\thost-id=1\n'
        '\tscore=3400\n'
        '\tvm_conf_refresh_time=990\n'
        '\tconf_on_shared_storage=True\n'
        '\tmaintenance=False\n'
        '\tstate=EngineUp\n'
        '\tstopped=False\n') % (crc1, crc1)
    assert r.stdout.startswith('\n\n!! Cluster is in GLOBAL MAINTENANCE mode !!\n\n'), r.stdout
    assert expected_host1 in r.stdout, r.stdout
    assert '--== Host host2.example (id: 2) status ==--' in r.stdout
    assert 'Local maintenance                  : True' in r.stdout
    assert 'host3' not in r.stdout
    # this host (id 1) holds no host id (no sanlock): its data is not up to date; for
    # host 2 that cannot be known without the broker: said so, and why
    assert 'Status up-to-date                  : unknown\n' in r.stdout.split('(id: 2)')[1]
    assert 'Engine status                      : {"vm": "down"' in r.stdout.split('(id: 2)')[1]
    # the broken slot is skipped with a warning; staleness unknown, and why
    assert 'metadata slot 3 skipped (crc-mismatch)' in r.stderr
    assert 'up to date is unknown' in r.stderr and 'HA broker' in r.stderr
    assert 'sanlock' in r.stderr
    assert 'Traceback' not in r.stderr


def test_vm_status_json(prefix, deployed, env):
    populate(deployed)
    r = prefix.run('--vm-status', '--json', env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert sorted(doc) == ['1', '2', 'global_maintenance']
    assert doc['global_maintenance'] is False
    h1 = doc['1']
    assert set(h1) == {'host-id', 'host-ts', 'score', 'engine-status', 'hostname', 'maintenance',
                       'stopped', 'crc32', 'conf_on_shared_storage', 'local_conf_timestamp',
                       'extra', 'live-data'}
    assert h1['engine-status'] == UP and h1['score'] == 3400 and h1['host-ts'] == 1000
    assert h1['live-data'] is False and 'state=EngineUp\n' in h1['extra']
    assert doc['2']['maintenance'] is True and doc['2']['score'] == 0
    assert doc['2']['live-data'] is None      # unknown without the broker
    assert 'GLOBAL MAINTENANCE' not in r.stdout


def test_vm_status_shows_an_ovirt_written_slot_next_to_ours(prefix, deployed, env):
    """A mixed cluster: host 2's slot written by oVirt's agent (its layout and checksum)."""
    from ha.test_metadata import ovirt_slot
    deployed.write_host(1, 1000, 3400, UP, 'host1.example', state='EngineUp')
    deployed.write_slot(2, ovirt_slot(2, 5127, 2400, hostname='ovirt-host2.example',
                                      local_conf_timestamp=5090, state='EngineDown',
                                      status={'vm': 'down', 'health': 'bad', 'detail': 'unknown',
                                              'reason': 'vm not running on this host'}))
    deployed.write_global(False)
    r = prefix.run('--vm-status', '--json', env=env)
    assert r.returncode == 0, r.stderr
    assert 'skipped' not in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    assert sorted(doc) == ['1', '2', 'global_maintenance']
    h2 = doc['2']
    assert (h2['host-id'], h2['host-ts'], h2['score'], h2['hostname']) == \
        (2, 5127, 2400, 'ovirt-host2.example')
    assert h2['engine-status']['reason'] == 'vm not running on this host'
    assert h2['local_conf_timestamp'] == 5090 and 'state=EngineDown\n' in h2['extra']
    r = prefix.run('--vm-status', env=env)
    assert r.returncode == 0, r.stderr
    assert '--== Host host1.example (id: 1) status ==--' in r.stdout
    text = r.stdout.split('--== Host ovirt-host2.example (id: 2) status ==--')[1]
    assert 'Score                              : 2400\n' in text
    assert 'Hostname                           : ovirt-host2.example\n' in text
    assert '\tvm_conf_refresh_time=5090 (' in text


def test_vm_status_empty_area(prefix, deployed, env):
    deployed.write_global(False)
    r = prefix.run('--vm-status', '--json', env=env)
    assert r.returncode == 0 and json.loads(r.stdout) == {'global_maintenance': False}


def test_vm_status_reads_only_the_initialised_area(prefix, tmp_path, env):
    """Garbage beyond the slots deploy initialised is never read."""
    d = Deployed(prefix, str(tmp_path / 'storage'))
    d.create_volumes(max_hosts=2)
    d.write_host(1, 5, 3400, UP, 'host1')
    with open(d.volumes()['metadata'], 'ab') as f:
        f.write(b'\xff' * 4096 * 8)   # a bigger volume: slots 3.. hold garbage
    r = prefix.run('--vm-status', '--json', env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(json.loads(r.stdout)) == ['1', 'global_maintenance']


def test_vm_status_storage_not_connected(prefix, tmp_path, env):
    Deployed(prefix, str(tmp_path / 'nowhere'))
    r = prefix.run('--vm-status', env=env)
    assert r.returncode == 1
    line = one_line(r)
    assert 'metadata volume' in line and 'run hosted-engine --connect-storage' in line


def test_bad_conf_names_file_and_line(prefix, deployed, env):
    with open(deployed.conf_path, 'a') as f:
        f.write('this line is wrong\n')
    r = prefix.run('--vm-status', env=env)
    assert r.returncode == 1
    assert 'hosted-engine.conf:%d' % (len(deployed.conf) + 1) in one_line(r)


# -- --check-liveliness -----------------------------------------------------------------

def test_check_liveliness(prefix, tmp_path, env):
    d = Deployed(prefix, str(tmp_path / 'storage'))
    with HealthServer() as srv:
        d.conf['fqdn'] = '127.0.0.1:%d' % srv.port
        d.write_conf()
        r = prefix.run('--check-liveliness', env=env)
        assert (r.returncode, r.stdout) == (0, 'Hosted Engine is up!\n'), r.stderr
        assert srv.requests == ['/ovirt-engine/services/health']
        srv.body = 'DB Down'
        r = prefix.run('--check-liveliness', env=env)
        assert (r.returncode, r.stdout) == (1, 'Hosted Engine is not up!\n')
        srv.body, srv.status = 'DB Up!', 500
        assert prefix.run('--check-liveliness', env=env).returncode == 1
    # nothing listens there any more
    r = prefix.run('--check-liveliness', env=env)
    assert (r.returncode, r.stdout) == (1, 'Hosted Engine is not up!\n')
    del d.conf['fqdn']
    d.write_conf()
    r = prefix.run('--check-liveliness', env=env)
    assert r.returncode == 2 and 'has no fqdn' in one_line(r)


# -- configuration ----------------------------------------------------------------------

def test_local_config_he_local_and_ha(prefix, deployed, env):
    r = prefix.run('--get-shared-config', 'fqdn', '--type=he_local', env=env)
    assert (r.returncode, r.stdout) == (0, 'fqdn : engine.lab.test, type : he_local\n')
    r = prefix.run('--set-shared-config', 'gateway', '192.168.222.1', '--type=he_local', env=env)
    assert r.returncode == 0, r.stderr
    text = open(deployed.conf_path).read()
    assert 'gateway=192.168.222.1\n' in text and 'fqdn=engine.lab.test\n' in text
    r = prefix.run('--get-shared-config', 'gateway', '--type=he_local', env=env)
    assert r.stdout == 'gateway : 192.168.222.1, type : he_local\n'
    r = prefix.run('--get-shared-config', 'local_maintenance', '--type=ha', env=env)
    assert r.returncode == 1 and 'local_maintenance is not set' in one_line(r)
    r = prefix.run('--set-shared-config', 'local_maintenance', 'True', '--type=ha', env=env)
    assert r.returncode == 0, r.stderr
    assert 'local_maintenance=True' in open(
        prefix.path('/var/lib/ovirt-hosted-engine-ha/ha.conf')).read()
    r = prefix.run('--get-shared-config', 'local_maintenance', '--type=ha', env=env)
    assert r.stdout == 'local_maintenance : True, type : ha\n'


def test_shared_config_he_shared_and_broker(prefix, deployed, env):
    cv = ConfigVolume(deployed.volumes()['conf'])
    files = {'version': '2.4\n', 'fhanswers.conf': '[environment:default]\n',
             'hosted-engine.conf': 'fqdn=engine.lab.test\nhost_id=1\n',
             'broker.conf': '[email]\nsmtp-server = localhost\nsmtp-port = 25\n'
                            'destination-emails = root@localhost\n\n'
                            '[notify]\nstate_transition = maintenance|start|stop\n',
             'vm.conf': 'vmId=%s\n' % deployed.conf['vmid']}
    cv.write(files, cv.checksum())
    r = prefix.run('--get-shared-config', 'fqdn', '--type=he_shared', env=env)
    assert (r.returncode, r.stdout) == (0, 'fqdn : engine.lab.test, type : he_shared\n'), r.stderr
    r = prefix.run('--set-shared-config', 'fqdn', 'engine2.lab.test', '--type=he_shared', env=env)
    assert r.returncode == 0, r.stderr
    now = cv.read()
    assert 'fqdn=engine2.lab.test\n' in now['hosted-engine.conf']
    assert now['vm.conf'] == files['vm.conf'] and now['version'] == '2.4\n'
    # the local file is not the shared one
    assert 'fqdn=engine.lab.test' in open(deployed.conf_path).read()
    r = prefix.run('--get-shared-config', 'destination-emails', '--type=broker', env=env)
    assert r.stdout == 'destination-emails : root@localhost, type : broker\n', r.stderr
    r = prefix.run('--set-shared-config', 'destination-emails', 'a@example.test,b@example.test',
                   '--type=broker', env=env)
    assert r.returncode == 0, r.stderr
    local = open(prefix.path('/etc/ovirt-hosted-engine-ha/broker.conf')).read()
    for text in (cv.read()['broker.conf'], local):
        assert 'destination-emails = a@example.test,b@example.test' in text
    assert 'state_transition = maintenance|start|stop' in cv.read()['broker.conf']
    r = prefix.run('--set-shared-config', 'smtp-password', 'S3cret-Pw', '--type=broker', env=env)
    assert r.returncode == 0 and 'S3cret-Pw' not in r.stdout
    log = open(prefix.path('/var/log/ovirt-hosted-engine-ha/hosted-engine-cli.log')).read()
    assert 'S3cret-Pw' not in log


@pytest.mark.parametrize('key,value,accepted', [
    ('host_id', 'abc', 'a number from 1 to 250'),
    ('host_id', '0', 'a number from 1 to 250'),
    ('domainType', 'iscsi', 'one of nfs, nfs3, nfs4, glusterfs, posixfs, localfs'),
    ('network_test', 'icmp', 'one of dns, ping, tcp, none'),
    ('sanlock_io_timeout', '0', 'seconds from 1 to 300'),
    ('tcp_t_port', '70000', 'a port number from 1 to 65535'),
    ('vdsm_use_ssl', 'maybe', 'one of true, false'),
])
def test_set_shared_config_refuses_what_the_readers_refuse(prefix, deployed, env, key, value,
                                                           accepted):
    """he_local and he_shared are checked with the readers' own table (heconf.load)."""
    cv = ConfigVolume(deployed.volumes()['conf'])
    files = {'version': '2.4\n', 'hosted-engine.conf': 'fqdn=engine.lab.test\nhost_id=1\n',
             'broker.conf': '', 'vm.conf': 'vmId=%s\n' % deployed.conf['vmid']}
    cv.write(files, cv.checksum())
    before_local = open(deployed.conf_path).read()
    for ctype in ('he_local', 'he_shared'):
        r = prefix.run('--set-shared-config', key, value, '--type=%s' % ctype, env=env)
        assert r.returncode == 1, (ctype, r.stdout)
        line = one_line(r)
        assert key in line and repr(value) in line and accepted in line, line
        assert 'was not changed' in line
    assert open(deployed.conf_path).read() == before_local
    assert cv.read()['hosted-engine.conf'] == files['hosted-engine.conf']
    # and the verbs still work
    assert prefix.run('--vm-status', env=env).returncode == 0


def test_set_shared_config_ha_flags_as_both_readers_read_them(prefix, deployed, env):
    """ha.conf flags: the host agent reads exactly 'True', the HA agent any case: only
    True and False are written."""
    path = prefix.path('/var/lib/ovirt-hosted-engine-ha/ha.conf')
    for value in ('true', 'yes', '1', ''):
        r = prefix.run('--set-shared-config', 'local_maintenance', value, '--type=ha', env=env)
        assert r.returncode == 1, (value, r.stdout)
        line = one_line(r)
        assert 'local_maintenance' in line and repr(value) in line and 'True, False' in line
        assert not os.path.exists(path)
    r = prefix.run('--set-shared-config', 'local_maintenance', 'False', '--type=ha', env=env)
    assert r.returncode == 0, r.stderr
    assert 'local_maintenance=False' in open(path).read()


def test_set_shared_config_fixes_a_bad_value_on_disk(prefix, deployed, env):
    text = open(deployed.conf_path).read()
    with open(deployed.conf_path, 'w') as f:
        f.write(text.replace('host_id=1\n', 'host_id=abc\n'))
    r = prefix.run('--vm-status', env=env)
    assert r.returncode == 1 and 'host_id must be a number from 1 to 250' in one_line(r)
    r = prefix.run('--set-shared-config', 'host_id', '1', '--type=he_local', env=env)
    assert r.returncode == 0, r.stderr
    assert 'host_id=1\n' in open(deployed.conf_path).read()
    assert prefix.run('--vm-status', env=env).returncode == 0


def test_set_shared_config_broker_checked_like_the_broker_reads_it(prefix, deployed, env):
    cv = ConfigVolume(deployed.volumes()['conf'])
    broker = ('[email]\nsmtp-server = localhost\nsmtp-port = 25\n'
              'destination-emails = root@localhost\n\n[notify]\nstate_transition = up|down\n')
    files = {'version': '2.4\n', 'hosted-engine.conf': 'fqdn=engine.lab.test\nhost_id=1\n',
             'broker.conf': broker, 'vm.conf': 'vmId=%s\n' % deployed.conf['vmid']}
    cv.write(files, cv.checksum())
    for key, value, words in (('smtp-port', 'abc', 'is not a port number'),
                              ('destination-emails', 'nobody', 'is not an email address'),
                              ('state_transition', 'up|(', 'state_transition')):
        r = prefix.run('--set-shared-config', key, value, '--type=broker', env=env)
        assert r.returncode == 1, r.stdout
        line = one_line(r)
        assert key in line and value in line and words in line, line
        assert cv.read()['broker.conf'] == broker
    assert not os.path.exists(prefix.path('/etc/ovirt-hosted-engine-ha/broker.conf'))
    # a bad value on disk is overwritten by a good one
    files['broker.conf'] = broker.replace('smtp-port = 25', 'smtp-port = abc')
    cv.write(files, cv.checksum())
    r = prefix.run('--set-shared-config', 'smtp-port', '2525', '--type=broker', env=env)
    assert r.returncode == 0, r.stderr
    assert 'smtp-port = 2525' in cv.read()['broker.conf']


def test_shared_config_volume_unreachable(prefix, tmp_path, env):
    Deployed(prefix, str(tmp_path / 'nowhere'))
    r = prefix.run('--get-shared-config', 'fqdn', '--type=he_shared', env=env)
    assert r.returncode == 1 and '--connect-storage' in one_line(r)


def test_host_agent_down_is_one_line(prefix, deployed, env):
    for verb in ('--vm-poweroff', '--vm-shutdown', '--connect-storage'):
        r = prefix.run(verb, env=env)
        assert r.returncode == 1
        line = one_line(r)
        assert 'ovirt-hosted-engine-hostd or vdsmd' in line, line
    log = prefix.path('/var/log/ovirt-hosted-engine-ha/hosted-engine-cli.log')
    assert os.path.exists(log)


def test_broker_down_is_one_line(prefix, deployed, env):
    r = prefix.run('--set-maintenance', '--mode=global', env=env)
    assert r.returncode == 1 and 'ovirt-ha-broker' in one_line(r)
    r = prefix.run('--clean-metadata', '--host-id=2', env=env)
    assert r.returncode == 1 and 'ovirt-ha-broker' in one_line(r)


def test_console_password_needs_a_source(prefix, deployed, env):
    r = prefix.run('--add-console-password', env=env)
    assert r.returncode == 1
    assert 'OVIRT_HOSTED_ENGINE_CONSOLE_PASSWORD' in one_line(r)


# -- with a real host agent, sanlock and broker -----------------------------------------
#
# One stack for the tests below, in order: a sanlock daemon, ovirt-hosted-engine-hostd on
# loopback (its storage mounts under the prefix's /rhev/data-center), the hosted-engine
# storage domain made by domain.prepare_domain, ovirt-ha-broker holding host id 1
# in the hosted-engine lockspace, and the HA agent.

IO_TIMEOUT = 1


VM_XML = """<domain type='qemu'><name>HostedEngine</name><uuid>%s</uuid>
<memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/></devices>
</domain>"""


def _root():
    if os.geteuid() != 0:
        pytest.skip('needs root (sanlock, the host agent)')


class Stack:
    def __init__(self, base):
        from .conftest import Prefix
        self.base = base
        self.prefix = Prefix(os.path.join(base, 'root'))
        self.procs = {}

    def env(self, **extra):
        env = dict(self.prefix.env, SANLOCK_RUN_DIR=self.sanlock.run_dir,
                   OVIRT_HOSTED_ENGINE_HOSTD_PORT=str(self.hostd.port),
                   OVIRT_HOSTED_ENGINE_HOSTD_ROOT=self.hostd.root)
        env.update(extra)
        return env

    def run(self, *args, **env):
        return self.prefix.run(*args, env=self.env(**env))

    def daemon(self, name, cmd):
        import subprocess
        from api.hostd_proc import TOP
        err = open(os.path.join(self.base, name + '.stderr'), 'wb')
        self.procs[name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err,
                                            stderr=err, cwd=TOP, env=self.env(),
                                            start_new_session=True)

    def stop(self, name, timeout=60):
        import signal
        import subprocess
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return 'killed'

    def broker_status(self):
        from ovirt_hosted_engine_setup.ha.broker_client import BrokerClient, BrokerUnavailable
        try:
            with BrokerClient(self.socket, timeout=5) as b:
                return b.call('status')
        except BrokerUnavailable:
            return None

    def status(self):
        r = self.run('--vm-status', '--json')
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout), r.stderr


def wait_until(what, predicate, timeout=60, interval=0.3):
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, 'not within %d s: %s' % (timeout, what)
        time.sleep(interval)


@pytest.fixture(scope='module')
def stack():
    import shutil
    import subprocess
    import tempfile
    _root()
    from api.hostd_proc import TOP, Hostd, python
    from hostd.daemons import SanlockDaemon
    from ovirt_hosted_engine_setup.he_storage import heconf
    base = tempfile.mkdtemp(prefix='ha-verbs-', dir='/var/tmp')
    s = Stack(base)
    s.sanlock = SanlockDaemon(os.path.join(base, 'sanlock'), 'ha-verbs-host').start()
    s.hostd = None
    try:
        s.hostd = Hostd(os.path.join(base, 'hostd'), extra=[
            '--sanlock-run-dir', s.sanlock.run_dir, '--sanlock-io-timeout', str(IO_TIMEOUT),
            '--monitor-interval', '0.5',
            '--data-center-dir', s.prefix.path('/rhev/data-center'),
            '--ha-conf', s.prefix.path('/var/lib/ovirt-hosted-engine-ha/ha.conf')])
        os.makedirs(s.hostd.base)
        s.hostd.start()
        storage = os.path.join(base, 'storage')
        os.makedirs(storage)
        spec = {'storage': storage, 'domain_type': 'localfs', 'vm_disk_size': 8 << 20,
                'host_id': 1, 'io_timeout': IO_TIMEOUT}
        p = subprocess.run([python(), '-c', PREPARE, str(s.hostd.port), s.hostd.root,
                            json.dumps(spec)], capture_output=True, text=True, timeout=240,
                           cwd=TOP, env=s.env(), stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr[-3000:]
        conf = json.loads(p.stdout.strip().splitlines()[-1])
        vm_id = '3b2a3c1e-5d6f-4e7a-8b9c-0d1e2f3a4b5c'
        conf.update(vmid=vm_id, fqdn='127.0.0.1:1', hostname='ha-verbs-host',
                    conf=s.prefix.path('/run/ovirt-hosted-engine-ha/vm.conf'))
        os.makedirs(s.prefix.path('/etc/ovirt-hosted-engine'))
        with open(s.prefix.path('/etc/ovirt-hosted-engine/hosted-engine.conf'), 'w') as f:
            f.write(heconf.render(conf))
        s.conf = conf
        # the VM definition in the configuration volume, as deploy leaves it
        from ovirt_hosted_engine_setup.he_storage import config_volume, layout
        cv = config_volume.ConfigVolume(layout.volume_paths(
            conf, s.prefix.path('/rhev/data-center'))['conf'])
        s.vm_conf = heconf.render_vm_conf(heconf.make_vm_conf(vm_id, VM_XML % vm_id, 64, 1))
        cv.write({'version': '2.4\n', 'hosted-engine.conf': heconf.render(conf),
                  'vm.conf': s.vm_conf}, cv.checksum())
        s.socket = s.prefix.path('/run/ovirt-hosted-engine-ha/broker.socket')
        yield s
    finally:
        for name in list(s.procs):
            s.stop(name)
        if s.hostd is not None:
            s.hostd.stop()
        s.sanlock.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_stack_connect_storage(stack):
    r = stack.run('--connect-storage')
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'The hosted-engine storage is connected\n'
    # read directly from the storage the host agent prepared: nobody published yet
    doc, _ = stack.status()
    assert doc == {'global_maintenance': False}


def test_stack_broker_global_maintenance(stack):
    from api.hostd_proc import python
    stack.daemon('broker', [python(), '-m', 'ovirt_hosted_engine_setup.ha.broker.daemon',
                            '--socket', stack.socket, '--interval', '1',
                            '--host-agent', '127.0.0.1:%d' % stack.hostd.port,
                            '--hostd-root', stack.hostd.root])
    wait_until('the broker holds host id 1', lambda: (stack.broker_status() or {}).get(
        'lockspace', {}).get('held'), 60)
    r = stack.run('--set-maintenance', '--mode=global')
    assert r.returncode == 0, r.stderr
    r = stack.run('--vm-status')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('\n\n!! Cluster is in GLOBAL MAINTENANCE mode !!\n'), r.stdout
    # the broker answers: no note about unknown staleness
    assert 'unknown' not in r.stderr


def test_stack_agent_publishes_live_status(stack):
    from api.hostd_proc import python
    stack.daemon('agent', [python(), '-m', 'ovirt_hosted_engine_setup.ha.agent',
                           '--socket', stack.socket, '--interval', '1',
                           '--host-agent', '127.0.0.1:%d' % stack.hostd.port,
                           '--hostd-root', stack.hostd.root,
                           '--data-center-dir', stack.prefix.path('/rhev/data-center')])

    def live():
        doc, _ = stack.status()
        return doc.get('1', {}).get('live-data') and doc['1']
    host = wait_until('host 1 published live data', live, 90)
    assert host['hostname'] and 'state=GlobalMaintenance' in host['extra'], host
    r = stack.run('--vm-status')
    assert 'Status up-to-date                  : True' in r.stdout, r.stdout
    assert '--== Host %s (id: 1) status ==--' % host['hostname'] in r.stdout


def test_stack_clean_metadata(stack):
    from ovirt_hosted_engine_setup.he_storage import layout
    # an old slot of host 2, which is not live: cleaned
    path = layout.volume_paths(stack.conf, stack.prefix.path('/rhev/data-center'))
    with open(path['metadata'], 'r+b') as f:
        f.seek(2 * metadata.SLOT_SIZE)
        f.write(metadata.serialize_host(2, 77, 3400, DOWN, 'gone-host'))
    assert '2' in stack.status()[0]
    r = stack.run('--clean-metadata', '--host-id=2')
    assert r.returncode == 0, r.stderr
    assert '2' not in stack.status()[0]
    # this host's agent runs: refused
    r = stack.run('--clean-metadata')
    assert r.returncode == 1 and 'stop ovirt-ha-agent first' in one_line(r)
    assert '1' in stack.status()[0]


def test_stack_local_maintenance(stack):
    ha_conf = stack.prefix.path('/var/lib/ovirt-hosted-engine-ha/ha.conf')
    r = stack.run('--set-maintenance', '--mode=local')
    assert r.returncode == 0, r.stderr
    assert 'local_maintenance=True' in open(ha_conf).read()
    r = stack.run('--set-maintenance', '--mode=none')
    assert r.returncode == 0, r.stderr
    assert 'local_maintenance=False' in open(ha_conf).read()
    assert stack.status()[0]['global_maintenance'] is False
    # back to global maintenance: the agent leaves the VM to the tests that follow
    assert stack.run('--set-maintenance', '--mode=global').returncode == 0
    wait_until('the agent in GlobalMaintenance', lambda: 'state=GlobalMaintenance' in
               stack.status()[0]['1']['extra'], 30)


def test_stack_vm_verbs_without_a_vm(stack):
    for verb, words in (('--vm-poweroff', 'nothing to power off'),
                        ('--vm-shutdown', 'nothing to shut down'),
                        ('--console', 'not running on this host')):
        r = stack.run(verb)
        assert r.returncode == 1, (verb, r.stdout)
        assert words in one_line(r)
    r = stack.run('--add-console-password', OVIRT_HOSTED_ENGINE_CONSOLE_PASSWORD='Pw-1234')
    assert r.returncode == 1 and 'not running on this host' in one_line(r)


def test_stack_vm_start_reports_the_failure(stack):
    """The host agent of this stack has no libvirt: the start fails, said in one line,
    with the VM definition read from the configuration volume."""
    for _ in range(2):
        r = stack.run('--vm-start')
        assert r.returncode == 1, r.stdout
        line = one_line(r)
        assert 'start the engine VM' in line and 'libvirtd running?' in line, line


SANLOCK_JOIN = r'''
import sys
from ovirt_hosted_engine_setup.he_storage import sanlock_util
if sys.argv[1] == 'add':
    sanlock_util.add_lockspace('hosted-engine', 1, sys.argv[2], iotimeout=1, wait=True)
else:
    sanlock_util.rem_lockspace('hosted-engine', 1, sys.argv[2])
'''


def test_stack_vm_status_from_sanlock_while_the_broker_is_down(stack):
    """The broker is down: whether the data is current comes from sanlock's view of the
    hosted-engine lockspace (this host still in it)."""
    import subprocess
    from api.hostd_proc import TOP, python
    from ovirt_hosted_engine_setup.he_storage import layout
    lockspace = layout.volume_paths(
        stack.conf, stack.prefix.path('/rhev/data-center'))['lockspace']
    assert stack.stop('broker') == 0

    def sanlock(op):
        p = subprocess.run([python(), '-c', SANLOCK_JOIN, op, lockspace], cwd=TOP, env=stack.env(),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
    sanlock('add')
    try:
        doc, err = stack.status()
        if 'too recently' in err:     # sanlock has not renewed its host id once yet
            doc, err = wait_until('sanlock knows the hosts', lambda: (
                lambda d, e: 'too recently' not in e and (d, e))(*stack.status()), 30, 1)
        assert "comes from sanlock's view of the hosted-engine lockspace" in err, err
        assert 'is not reachable' in err          # and why the broker did not answer
        assert doc['1']['live-data'] is True
    finally:
        sanlock('rem')
    doc, err = stack.status()
    assert 'up to date is unknown' in err and 'not in the hosted-engine sanlock lockspace' in err
    assert doc['1']['live-data'] is False
    test_stack_broker_global_maintenance(stack)    # the broker back, for the tests that follow


def test_stack_vm_status_after_the_broker_was_killed(stack):
    """SIGKILL of the broker: sanlock keeps host id 1 live (the lockspace stays joined) but
    the metadata stops moving. Once the slot's timestamp is older than the liveness window
    (here: the slot as it is 90 s after the kill), --vm-status must not call it up to date."""
    import signal
    import time
    from ovirt_hosted_engine_setup.he_storage import layout
    from ovirt_hosted_engine_setup.ha.broker.store import MetadataStore
    wait_until('host 1 live', lambda: stack.status()[0].get('1', {}).get('live-data'), 60)
    p = stack.procs.pop('broker')
    p.send_signal(signal.SIGKILL)
    p.wait()
    try:
        doc, err = stack.status()
        assert "comes from sanlock's view of the hosted-engine lockspace" in err, err
        assert doc['1']['live-data'] is True          # written less than 60 s ago
        store = MetadataStore(layout.volume_paths(
            stack.conf, stack.prefix.path('/rhev/data-center'))['metadata'])
        rec = metadata.parse_area(store.read_area()[0], store.max_hosts).hosts[1]
        store.write_slot(1, metadata.serialize_host(
            1, int(time.monotonic()) - 90, rec.score, rec.engine_status, rec.hostname,
            local_maintenance=rec.local_maintenance, state=rec.state,
            local_conf_timestamp=rec.local_conf_timestamp))
        doc, err = stack.status()
        assert doc['1']['live-data'] is False, err
        r = stack.run('--vm-status')
        assert r.returncode == 0, r.stderr
        assert 'Status up-to-date                  : False' in r.stdout, r.stdout
        assert 'Engine status                      : unknown stale-data' in r.stdout
    finally:
        test_stack_broker_global_maintenance(stack)    # the broker back


def test_stack_agent_stopped_then_clean_own_slot(stack):
    assert stack.stop('agent') == 0

    def stopped():
        h = stack.status()[0].get('1')
        return h and h['stopped']
    wait_until('host 1 published AgentStopped', stopped, 30)
    r = stack.run('--clean-metadata')
    assert r.returncode == 0, r.stderr
    assert '1' not in stack.status()[0]


def test_stack_vm_verbs_with_libvirt(stack):
    """A host agent with libvirtd (sanlock lock driver): start paused, console password,
    shutdown, power off and start, with the VM definition of the local vm.conf."""
    import shutil
    import libvirt
    from api.hostd_proc import Hostd
    from hostd.daemons import LibvirtHost
    if not shutil.which('libvirtd') or not os.path.exists('/usr/bin/qemu-system-x86_64'):
        pytest.skip('libvirtd and qemu-system-x86 are needed')
    assert 'agent' not in stack.procs
    base = os.path.join(stack.base, 'vmhost')
    lv = LibvirtHost(os.path.join(base, 'libvirt'), stack.sanlock.run_dir)
    hostd = Hostd(os.path.join(base, 'hostd'), extra=[
        '--sanlock-run-dir', stack.sanlock.run_dir, '--libvirt-uri', lv.uri,
        '--ha-conf', stack.prefix.path('/var/lib/ovirt-hosted-engine-ha/ha.conf')])
    os.makedirs(hostd.base)
    vm_conf = stack.conf['conf']
    os.makedirs(os.path.dirname(vm_conf), exist_ok=True)
    with open(vm_conf, 'w') as f:
        f.write(stack.vm_conf)
    try:
        lv.start()
        hostd.start()
        env = {'OVIRT_HOSTED_ENGINE_HOSTD_PORT': str(hostd.port),
               'OVIRT_HOSTED_ENGINE_HOSTD_ROOT': hostd.root}

        def status():
            with hostd.client() as c:
                try:
                    return c.call('VM.getStats', vmID=stack.conf['vmid'])[0]['status']
                except Exception:
                    return None

        r = stack.run('--vm-start-paused', **env)
        assert r.returncode == 0, r.stderr
        assert r.stdout == 'The engine VM HostedEngine (%s) is Paused on this host\n' \
            % stack.conf['vmid']
        conn = libvirt.open(lv.uri)
        dom = conn.lookupByUUIDString(stack.conf['vmid'])
        assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
        r = stack.run('--vm-start', **env)
        assert r.returncode == 1 and 'already running on this host (status Paused)' in one_line(r)
        r = stack.run('--set-maintenance', '--mode=local', **env)
        assert r.returncode == 1 and 'the engine VM is running on this host' in one_line(r)
        r = stack.run('--add-console-password', **dict(
            env, OVIRT_HOSTED_ENGINE_CONSOLE_PASSWORD='Cons-Pw1'))
        assert r.returncode == 0, r.stderr
        graphics = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
        assert "passwd='Cons-Pw1'" in graphics and 'passwdValidTo' in graphics
        r = stack.run('--add-console-password', '--password=Cons-Pw2', **env)
        assert r.returncode == 0 and "passwd='Cons-Pw2'" in dom.XMLDesc(
            libvirt.VIR_DOMAIN_XML_SECURE)
        requested = ('Shutdown of the engine VM requested: the guest has 120 seconds before '
                     'it is asked to power down, then up to 180 seconds to finish\n')
        r = stack.run('--vm-shutdown', **env)
        assert r.returncode == 0, r.stderr
        assert r.stdout == requested         # returns at once
        assert status() in ('Powering down', 'Paused')     # the guest gets its 120 s
        # --wait: still up at the limit -> exit 1 and what to do
        r = stack.run('--vm-shutdown', '--wait', '--timeout=2', **env)
        assert r.returncode == 1, r.stdout
        assert r.stdout.startswith(requested), r.stdout
        assert 'Waiting for the engine VM to be down on this host: 0 s elapsed (limit 2 s)' \
            in r.stdout
        line = one_line(r)
        assert 'still up on this host after 2 s' in line and '--vm-poweroff' in line, line
        r = stack.run('--vm-poweroff', **env)
        assert r.returncode == 0 and r.stdout == 'The engine VM was powered off\n', r.stderr
        wait_until('the domain gone', lambda: not conn.listAllDomains(), 30)
        # a plain start: the CPUs run
        r = stack.run('--vm-start', **env)
        assert r.returncode == 0 and 'is Up on this host' in r.stdout, r.stderr
        dom = conn.lookupByUUIDString(stack.conf['vmid'])
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        # --wait until down: this guest has no OS to act on ACPI, so it goes down from libvirt
        import subprocess
        import sys
        from .conftest import HOSTED_ENGINE
        waiter = subprocess.Popen([sys.executable, HOSTED_ENGINE, '--vm-shutdown', '--wait',
                                   '--timeout=60'], env=stack.env(**env), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_until('the shutdown requested', lambda: status() == 'Powering down', 30)
            dom.destroy()
            stdout, stderr = waiter.communicate(timeout=60)
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.wait()
        assert waiter.returncode == 0, stderr
        assert stdout.startswith(requested) and stdout.endswith('The engine VM is down\n'), stdout
        assert 'limit 60 s' in stdout
        # the VM is already down (a Down record on this host): said so, exit 0
        assert status() == 'Down'
        r = stack.run('--vm-shutdown', **env)
        assert r.returncode == 0 and r.stdout.startswith(
            'The engine VM was already down on this host'), r.stdout + r.stderr
        r = stack.run('--vm-poweroff', **env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith('The engine VM was already down on this host')
        assert r.stdout.endswith(': nothing was powered off\n')
        assert 'The engine VM was powered off' not in r.stdout
        r = stack.run('--vm-start', **env)
        assert r.returncode == 0 and 'is Up on this host' in r.stdout, r.stderr
        r = stack.run('--vm-poweroff', **env)
        assert r.returncode == 0 and r.stdout == 'The engine VM was powered off\n'
        conn.close()
        for log in (hostd.read_log(), open(stack.prefix.path(
                '/var/log/ovirt-hosted-engine-ha/hosted-engine-cli.log')).read()):
            assert 'Cons-Pw' not in log
    finally:
        hostd.stop()
        try:
            c = libvirt.open(lv.uri)
            for d in c.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                d.destroy()
            c.close()
        except libvirt.libvirtError:
            pass
        lv.stop()
        os.unlink(vm_conf)


def test_stack_reinitialize_lockspace(stack):
    from ovirt_hosted_engine_setup.he_storage import layout
    assert stack.run('--set-maintenance', '--mode=none').returncode == 0
    r = stack.run('--reinitialize-lockspace')
    assert r.returncode == 1 and 'requires global maintenance' in one_line(r)
    assert stack.run('--set-maintenance', '--mode=global').returncode == 0
    assert stack.stop('broker') == 0
    lockspace = layout.volume_paths(
        stack.conf, stack.prefix.path('/rhev/data-center'))['lockspace']
    with open(lockspace, 'r+b') as f:
        f.write(b'\0' * (1 << 20))     # a lost lockspace
    # global maintenance, no agent running: no --force needed
    r = stack.run('--reinitialize-lockspace')
    assert r.returncode == 0, r.stderr
    with open(lockspace, 'rb') as f:
        assert b'hosted-engine' in f.read(4096)


def test_stack_disconnect_storage(stack):
    r = stack.run('--disconnect-storage')
    assert r.returncode == 0, r.stderr
    r = stack.run('--vm-status')
    assert r.returncode == 1 and '--connect-storage' in one_line(r)
