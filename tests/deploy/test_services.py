"""services.py: which command starts the HA services (systemd, or none), run for real
against executable scripts in a temporary bin directory that record their argv."""
import pytest

from ovirt_hosted_engine_setup.deploy import services

RECORDER = '''#!/bin/sh
printf '%%s\\n' "${0##*/}" "$@" > "$RECORD"
%s
'''


def make_bin(tmp_path, name, body='exit 0', dirname='bin'):
    d = tmp_path / dirname
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(RECORDER % body)
    p.chmod(0o755)
    return d


def recorded(tmp_path):
    return (tmp_path / 'argv').read_text().splitlines()


def env_for(tmp_path, path, **extra):
    env = {'PATH': str(path), 'RECORD': str(tmp_path / 'argv')}
    env.update(extra)
    return env


def test_systemd_enables_and_starts_both_services(tmp_path):
    fake = make_bin(tmp_path, 'systemctl')
    systemd = tmp_path / 'run-systemd'
    systemd.mkdir()
    argv = services.start_ha_services(env_for(tmp_path, fake), systemd_dir=str(systemd))
    assert argv[0] == str(fake / 'systemctl')
    assert recorded(tmp_path) == ['systemctl', 'enable', '--now', 'ovirt-ha-broker',
                                  'ovirt-ha-agent']
    services.stop_ha_services(env_for(tmp_path, fake), systemd_dir=str(systemd))
    assert recorded(tmp_path) == ['systemctl', 'stop', 'ovirt-ha-agent', 'ovirt-ha-broker']


def test_the_broker_alone_starts_and_restarts(tmp_path):
    fake = make_bin(tmp_path, 'systemctl')
    systemd = tmp_path / 'run-systemd'
    systemd.mkdir()
    services.start_broker(env_for(tmp_path, fake), systemd_dir=str(systemd))
    assert recorded(tmp_path) == ['systemctl', 'enable', '--now', 'ovirt-ha-broker']
    services.restart_broker(env_for(tmp_path, fake), systemd_dir=str(systemd))
    assert recorded(tmp_path) == ['systemctl', 'restart', 'ovirt-ha-broker']
    with pytest.raises(services.ServiceError, match='does not run systemd'):
        services.restart_broker(env_for(tmp_path, fake), systemd_dir=str(tmp_path / 'none'))


def test_the_same_systemctl_calls_whatever_the_environment_names(tmp_path):
    # no lab branch: an environment naming a lab host is served by systemctl as any host
    # (a lab host's systemctl is its own service manager, docs/lab.md)
    path_bin = make_bin(tmp_path, 'systemctl')
    make_bin(tmp_path, 'hosted-engine-lab')
    systemd = tmp_path / 'run-systemd'
    systemd.mkdir()
    env = env_for(tmp_path, path_bin, OVIRT_HE_LAB_HOST='host2')
    argv = services.start_ha_services(env, systemd_dir=str(systemd))
    assert argv == [str(path_bin / 'systemctl'), 'enable', '--now', 'ovirt-ha-broker',
                    'ovirt-ha-agent']
    assert recorded(tmp_path) == ['systemctl', 'enable', '--now', 'ovirt-ha-broker',
                                  'ovirt-ha-agent']
    services.stop_ha_services(env, systemd_dir=str(systemd))
    assert recorded(tmp_path) == ['systemctl', 'stop', 'ovirt-ha-agent', 'ovirt-ha-broker']


def test_no_lab_check_in_the_module():
    import inspect
    assert 'OVIRT_HE_LAB' not in inspect.getsource(services)
    assert 'hosted-engine-lab' not in inspect.getsource(services)


def test_without_systemd_says_what_to_start(tmp_path):
    fake = make_bin(tmp_path, 'systemctl')
    with pytest.raises(services.ServiceError) as e:
        services.start_ha_services(env_for(tmp_path, fake),
                                   systemd_dir=str(tmp_path / 'no-systemd'))
    msg = str(e.value)
    assert '\n' not in msg
    assert 'does not run systemd' in msg
    assert 'ovirt-ha-broker' in msg and 'ovirt-ha-agent' in msg
    assert not (tmp_path / 'argv').exists()      # nothing was run


def test_failing_command_is_one_line_with_its_last_output(tmp_path):
    fake = make_bin(tmp_path, 'systemctl',
                    body='echo "some detail" >&2\necho "Unit ovirt-ha-agent.service not '
                         'found." >&2\nexit 5')
    systemd = tmp_path / 'run-systemd'
    systemd.mkdir()
    with pytest.raises(services.ServiceError) as e:
        services.start_ha_services(env_for(tmp_path, fake), systemd_dir=str(systemd))
    msg = str(e.value)
    assert '\n' not in msg
    assert 'exit 5: Unit ovirt-ha-agent.service not found.' in msg
    assert 'by hand' in msg
