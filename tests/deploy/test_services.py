"""services.py: which command starts the HA services (systemd, the lab, neither), run for
real against executable scripts in a temporary bin directory that record their argv."""
import os

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
    argv = services.start_ha_services(env_for(tmp_path, fake), systemd_dir=str(systemd),
                                      bin_dir=str(tmp_path / 'empty'))
    assert argv[0] == str(fake / 'systemctl')
    assert recorded(tmp_path) == ['systemctl', 'enable', '--now', 'ovirt-ha-broker',
                                  'ovirt-ha-agent']
    services.stop_ha_services(env_for(tmp_path, fake), systemd_dir=str(systemd),
                              bin_dir=str(tmp_path / 'empty'))
    assert recorded(tmp_path) == ['systemctl', 'stop', 'ovirt-ha-agent', 'ovirt-ha-broker']


def test_lab_host_uses_the_lab_command_next_to_the_interpreter(tmp_path):
    venv_bin = make_bin(tmp_path, 'hosted-engine-lab', dirname='venv-bin')
    path_bin = make_bin(tmp_path, 'systemctl')
    systemd = tmp_path / 'run-systemd'
    systemd.mkdir()      # even with systemd on the machine, a lab host uses the lab
    env = env_for(tmp_path, path_bin, OVIRT_HE_LAB_HOST='host2')
    argv = services.start_ha_services(env, systemd_dir=str(systemd), bin_dir=str(venv_bin))
    assert argv == [str(venv_bin / 'hosted-engine-lab'), 'ha', 'start', 'host2']
    assert recorded(tmp_path) == ['hosted-engine-lab', 'ha', 'start', 'host2']
    services.stop_ha_services(env, systemd_dir=str(systemd), bin_dir=str(venv_bin))
    assert recorded(tmp_path) == ['hosted-engine-lab', 'ha', 'stop', 'host2']


def test_lab_command_found_on_path(tmp_path):
    path_bin = make_bin(tmp_path, 'hosted-engine-lab')
    (tmp_path / 'empty').mkdir()
    env = env_for(tmp_path, path_bin, OVIRT_HE_LAB_HOST='host1')
    services.start_ha_services(env, systemd_dir=str(tmp_path / 'none'),
                               bin_dir=str(tmp_path / 'empty'))
    assert recorded(tmp_path) == ['hosted-engine-lab', 'ha', 'start', 'host1']


def test_lab_host_without_the_lab_command(tmp_path):
    (tmp_path / 'empty').mkdir()
    env = env_for(tmp_path, tmp_path / 'empty', OVIRT_HE_LAB_HOST='host1')
    with pytest.raises(services.ServiceError) as e:
        services.start_ha_services(env, systemd_dir=str(tmp_path / 'none'),
                                   bin_dir=str(tmp_path / 'empty'))
    assert '\n' not in str(e.value)
    assert 'hosted-engine-lab is not installed' in str(e.value)


def test_neither_systemd_nor_lab_says_what_to_start(tmp_path):
    fake = make_bin(tmp_path, 'systemctl')
    with pytest.raises(services.ServiceError) as e:
        services.start_ha_services(env_for(tmp_path, fake),
                                   systemd_dir=str(tmp_path / 'no-systemd'),
                                   bin_dir=str(tmp_path / 'empty'))
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
        services.start_ha_services(env_for(tmp_path, fake), systemd_dir=str(systemd),
                                   bin_dir=str(tmp_path / 'empty'))
    msg = str(e.value)
    assert '\n' not in msg
    assert 'exit 5: Unit ovirt-ha-agent.service not found.' in msg
    assert 'by hand' in msg


def test_the_real_lab_command_is_next_to_the_interpreter():
    # what a deploy inside a lab host runs: the virtualenv's hosted-engine-lab
    import sys
    argv = services.command('start', {'OVIRT_HE_LAB_HOST': 'host1', 'PATH': ''})
    assert argv[1:] == ['ha', 'start', 'host1']
    assert os.path.dirname(argv[0]) == os.path.dirname(sys.executable)
