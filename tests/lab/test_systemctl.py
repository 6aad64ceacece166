"""The lab host's service manager (lab/systemctl.py) on its own, in scratch directories:
units with real processes (sleep), their order, dependencies, conditions, stop, status
and exit codes; and the units the project ships load and order as systemd orders them."""
import io
import os
import signal
import time

import pytest

from ovirt_hosted_engine_setup.lab import systemctl

UNIT_A = """[Unit]
Description=unit a
[Service]
Type=simple
ExecStart=/bin/sleep 1000
RuntimeDirectory=unit-a
TimeoutStopSec=5
KillMode=mixed
[Install]
WantedBy=multi-user.target
"""

UNIT_B = """[Unit]
Description=unit b
Requires=a.service
After=a.service
ConditionPathExists=/etc/b.conf
[Service]
ExecStart=/usr/bin/svc-b --flag
LogsDirectory=unit-b
StateDirectory=unit-b
Restart=on-failure
TimeoutStopSec=5
"""

SVC_B = '#!/bin/sh\necho "b started with $*"\nexec sleep 1001\n'


class Box:
    def __init__(self, tmp_path):
        self.root = str(tmp_path / 'root')
        self.units = tmp_path / 'units'
        self.units.mkdir()
        (self.units / 'a.service').write_text(UNIT_A)
        (self.units / 'b.service').write_text(UNIT_B)
        venv = tmp_path / 'venv-bin'
        venv.mkdir()
        (venv / 'svc-b').write_text(SVC_B)
        (venv / 'svc-b').chmod(0o755)
        os.makedirs(self.root + '/etc')
        self.state = str(tmp_path / 'state')
        self.logs = str(tmp_path / 'logs')
        self.venv = str(venv)

    def run(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        m = systemctl.Manager(unit_dir=str(self.units), state_dir=self.state,
                              log_dir=self.logs, venv_bin=self.venv, out=out, err=err,
                              root=self.root)
        rc = systemctl.main(list(argv), manager=m)
        return rc, out.getvalue(), err.getvalue()

    def pid(self, unit):
        rec = systemctl.read_record(self.state, unit + '.service')
        return rec and rec['pid']

    def cleanup(self):
        for u in ('b', 'a'):
            rec = systemctl.read_record(self.state, u + '.service')
            if systemctl.record_alive(rec):
                os.kill(rec['pid'], signal.SIGKILL)


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    yield b
    b.cleanup()


def alive(pid):
    return systemctl.proc_start(pid) is not None


def wait_log(path, text, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and text in open(path).read():
            return True
        time.sleep(0.05)
    return False


def test_start_pulls_in_what_the_unit_requires_in_order(box):
    open(box.root + '/etc/b.conf', 'w').close()
    assert box.run('start', 'b') == (0, '', '')
    a, b = box.pid('a'), box.pid('b')
    assert alive(a) and alive(b)
    ra = systemctl.read_record(box.state, 'a.service')
    rb = systemctl.read_record(box.state, 'b.service')
    assert ra['since'] <= rb['since']
    # the program comes from the project's virtualenv, the arguments from the unit
    assert rb['argv'] == [os.path.join(box.venv, 'svc-b'), '--flag']
    assert wait_log(os.path.join(box.logs, 'b.log'), 'b started with --flag')
    for d in ('/run/unit-a', '/var/log/unit-b', '/var/lib/unit-b'):
        assert os.path.isdir(box.root + d), d
    assert box.run('is-active', 'a', 'b.service') == (0, 'active\nactive\n', '')
    # starting again leaves the running processes alone
    assert box.run('start', 'a', 'b')[0] == 0
    assert (box.pid('a'), box.pid('b')) == (a, b)


def test_stopping_a_required_unit_stops_its_dependents_first(box):
    open(box.root + '/etc/b.conf', 'w').close()
    box.run('start', 'b')
    a, b = box.pid('a'), box.pid('b')
    assert box.run('stop', 'a') == (0, '', '')
    assert not alive(a) and not alive(b)
    assert box.run('is-active', 'a', 'b') == (3, 'inactive\ninactive\n', '')
    assert box.run('is-active', '--quiet', 'a') == (3, '', '')
    # RuntimeDirectoryPreserve defaults to no: the runtime directory goes
    assert not os.path.exists(box.root + '/run/unit-a')
    assert box.run('stop', 'a') == (0, '', '')     # stopping a stopped unit is fine


def test_unmet_condition_leaves_the_unit_inactive(box):
    rc, out, err = box.run('start', 'b')
    assert rc == 0
    assert 'ConditionPathExists=/etc/b.conf not met' in err
    assert box.pid('b') is None
    assert box.run('is-active', 'a')[0] == 0       # what it requires was started


def test_restart_restarts_the_dependents_that_ran(box):
    open(box.root + '/etc/b.conf', 'w').close()
    box.run('start', 'b')
    a, b = box.pid('a'), box.pid('b')
    assert box.run('restart', 'a')[0] == 0
    assert box.pid('a') != a and box.pid('b') != b
    assert alive(box.pid('a')) and alive(box.pid('b'))


def test_enable_now_and_disable_now(box):
    assert box.run('enable', '--now', 'a') == (0, '', '')
    assert alive(box.pid('a'))
    assert 'Loaded: loaded (%s; enabled)' % (box.units / 'a.service') in box.run('status', 'a')[1]
    pid = box.pid('a')
    assert box.run('disable', '--now', 'a') == (0, '', '')
    assert not alive(pid)
    assert '; disabled)' in box.run('status', 'a')[1]
    assert box.run('enable', 'a') == (0, '', '')
    assert box.pid('a') is None                      # enable alone starts nothing


def test_status(box):
    rc, out, _ = box.run('status', 'a')
    assert rc == 3 and 'Active: inactive (dead)' in out and out.startswith('o a.service - unit a')
    box.run('start', 'a')
    rc, out, _ = box.run('status', 'a')
    assert rc == 0 and 'Active: active (running) since' in out
    assert 'Main PID: %d (sleep)' % box.pid('a') in out
    open(box.root + '/etc/b.conf', 'w').close()
    box.run('start', 'b')
    assert 'Restart: on-failure (not applied in a lab host)' in box.run('status', 'b')[1]


def test_a_daemon_that_died_is_failed(box):
    box.run('start', 'a')
    pid = box.pid('a')
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert box.run('is-active', 'a') == (3, 'failed\n', '')
    rc, out, _ = box.run('status', 'a')
    assert rc == 3 and 'Active: failed (main process %d exited)' % pid in out
    assert box.run('start', 'a')[0] == 0 and box.pid('a') != pid and alive(box.pid('a'))


def test_unknown_units_verbs_and_options(box):
    assert box.run('start', 'nosuch') == (
        5, '', 'Failed to start nosuch.service: Unit nosuch.service not found.\n')
    assert box.run('stop', 'nosuch')[0] == 5
    assert box.run('status', 'nosuch') == (4, '', 'Unit nosuch.service could not be found.\n')
    assert box.run('is-active', 'nosuch') == (3, 'inactive\n', '')
    assert box.run('enable', 'nosuch')[0] == 1
    rc, _, err = box.run('reload', 'a')
    assert rc == 1 and 'Unknown command verb reload' in err
    rc, _, err = box.run('start', '--force', 'a')
    assert rc == 1 and "unrecognized option '--force'" in err
    rc, _, err = box.run('start', '--now', 'a')
    assert rc == 1 and 'option --now does not apply' in err
    assert box.run('start')[0] == 1
    assert box.pid('a') is None


def test_an_unsupported_directive_fails_to_load(box):
    (box.units / 'c.service').write_text('[Service]\nExecStart=/bin/true\nUser=nobody\n')
    rc, _, err = box.run('start', 'c')
    assert rc == 1
    assert '[Service] User= is not supported in a lab host' in err
    (box.units / 'd.service').write_text('[Service]\nType=forking\nExecStart=/bin/true\n')
    rc, _, err = box.run('start', 'd')
    assert rc == 1 and 'only Type=simple' in err


def test_the_shipped_units_load_and_order_as_systemd_orders_them(tmp_path):
    m = systemctl.Manager(state_dir=str(tmp_path))
    agent, broker = m.unit('ovirt-ha-agent'), m.unit('ovirt-ha-broker.service')
    assert agent.argv(m.venv_bin)[0].endswith('/ovirt-ha-agent')
    assert os.path.isfile(agent.argv(m.venv_bin)[0])
    assert [u.name for u in m._closure([agent])] == ['ovirt-ha-broker.service',
                                                      'ovirt-ha-agent.service']
    assert [u.name for u in m._dependents([broker])] == ['ovirt-ha-agent.service',
                                                         'ovirt-ha-broker.service']
    assert agent.stop_timeout() == 120


def test_the_wrapper_runs_the_manager(tmp_path):
    import subprocess
    import sys
    exe = tmp_path / 'systemctl'
    exe.write_text(systemctl.wrapper(sys.executable))
    exe.chmod(0o755)
    r = subprocess.run([str(exe), 'frobnicate', 'x'], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and 'Unknown command verb frobnicate' in r.stderr


def test_product_code_never_asks_whether_it_runs_in_the_lab():
    """Outside ovirt_hosted_engine_setup/lab/, no module, plugin or script names the lab's
    environment or command: a lab host is served as any host (docs/lab.md)."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    found = []
    for base in ('ovirt_hosted_engine_setup', 'plugins', 'bin'):
        for d, dirs, files in os.walk(os.path.join(top, base)):
            dirs[:] = [x for x in dirs if x not in ('lab', '__pycache__')]
            for f in files:
                p = os.path.join(d, f)
                with open(p, 'rb') as fh:
                    data = fh.read()
                for word in (b'OVIRT_HE_LAB', b'hosted-engine-lab'):
                    if word in data:
                        found.append('%s: %s' % (os.path.relpath(p, top), word.decode()))
    assert found == []
