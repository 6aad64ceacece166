"""ovirt-hosted-engine-cleanup stops the HA services through deploy/services.py, the code the
deploy starts them with: run for real against a systemctl script that logs its calls."""
import pytest

from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.deploy import services
from ovirt_hosted_engine_setup.deploy.cleanup import StepFailed, processes

SYSTEMCTL = '''#!/bin/sh
echo "$*" >> "$CALLS"
case "$1" in
is-active) for u in $ACTIVE; do [ "$u" = "$3" ] && exit 0; done; exit 3 ;;
stop) exit ${STOP_EXIT:-0} ;;
disable) exit ${DISABLE_EXIT:-0} ;;
esac
exit 1
'''


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A host with systemd (its run directory) and a systemctl on PATH; no HA daemon runs
    (their log files do not exist)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'systemctl').write_text(SYSTEMCTL)
    (bin_dir / 'systemctl').chmod(0o755)
    systemd = tmp_path / 'run-systemd'
    systemd.mkdir()
    monkeypatch.setattr(paths, 'PREFIX', '')
    monkeypatch.setattr(processes, 'HA_DAEMONS', tuple(
        (program, module, str(tmp_path / ('%s.log' % program)))
        for program, module, _log in processes.HA_DAEMONS))
    calls = tmp_path / 'calls'

    def stop(**env):
        environ = {'PATH': str(bin_dir), 'CALLS': str(calls), 'ACTIVE': ''}
        environ.update(env)
        return processes.stop_ha_daemons(environ, str(systemd))

    def called():
        return calls.read_text().splitlines()
    return stop, called


def test_cleanup_stops_with_the_deploys_service_calls(host):
    stop, called = host
    assert stop(ACTIVE='ovirt-ha-agent') == (
        'ovirt-ha-agent stopped (systemctl stop), ovirt-ha-broker was not running; '
        'units disabled')
    assert called() == ['is-active --quiet ovirt-ha-agent', 'is-active --quiet ovirt-ha-broker',
                        'stop ovirt-ha-agent ovirt-ha-broker',
                        'disable ovirt-ha-agent ovirt-ha-broker']
    # the stop is the deploy's own command line for it
    assert called()[2].split() == services.command('stop', {'PATH': '/nonexistent'},
                                                   systemd_dir='/')[1:]


def test_both_running_both_stopped(host):
    stop, _called = host
    assert stop(ACTIVE='ovirt-ha-agent ovirt-ha-broker') == (
        'ovirt-ha-agent and ovirt-ha-broker stopped (systemctl stop; units disabled)')


def test_services_not_installed_are_not_an_error(host):
    stop, _called = host
    assert stop(STOP_EXIT='5', DISABLE_EXIT='1') == (
        'ovirt-ha-agent and ovirt-ha-broker are not running')


def test_a_failed_stop_is_one_line_saying_what_to_do(host):
    stop, called = host
    with pytest.raises(StepFailed) as e:
        stop(ACTIVE='ovirt-ha-agent', STOP_EXIT='1')
    text = str(e.value)
    assert '\n' not in text
    assert 'stop ovirt-ha-agent ovirt-ha-broker failed (exit 1' in text
    assert text.endswith('then run ovirt-hosted-engine-cleanup again')
    assert not any(c.startswith('disable') for c in called())
