"""The HA verbs of `hosted-engine`, run as the real command with its files relocated
(OVIRT_HOSTED_ENGINE_PREFIX): --vm-status from a metadata volume written with the
real slot format, bad input, --check-liveliness against a loopback HTTP server, the
local and shared configuration. The verbs that need the host agent run against a
real ovirt-hosted-engine-hostd in test_ha_verbs_hostd.py; with the real broker in
test_ha_verbs_broker.py."""
import json
import os

import pytest

from ovirt_hosted_engine_setup import cli
from ovirt_hosted_engine_setup.ha import metadata
from ovirt_hosted_engine_setup.ha.shared_storage import ConfigVolume

from .ha_helpers import DOWN, UP, Deployed, HealthServer, one_line

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
        'Engine status                      : {"vm": "up", "health": "good", "detail": "Up", '
        '"reason": null}\n'
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
    assert 'GLOBAL MAINTENANCE' not in r.stdout


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
