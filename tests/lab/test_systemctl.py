"""The lab host's service manager (lab/systemctl.py) on its own, in scratch directories:
units with real processes (sleep), their order, dependencies, conditions, stop, status
and exit codes; and the units the project ships load and order as systemd orders them."""
import io
import os
import signal
import time
from pathlib import Path

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

    def add(self, name, text, program=None, script=None):
        (self.units / (name + '.service')).write_text(text)
        if program:
            (Path(self.venv) / program).write_text(script)
            (Path(self.venv) / program).chmod(0o755)

    def cleanup(self):
        # the supervisors first, so that nothing is restarted, then the main processes
        recs = [systemctl.read_record(self.state, fn[:-len('.json')])
                for fn in os.listdir(self.state) if fn.endswith('.json')] \
            if os.path.isdir(self.state) else []
        for key in ('supervisor', None):
            for rec in recs:
                r = rec.get(key) if key else rec
                if systemctl.record_alive(r):
                    os.kill(r['pid'], signal.SIGKILL)


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
    assert 'Restart:' not in out          # Restart=no (the default) is not shown
    open(box.root + '/etc/b.conf', 'w').close()
    box.run('start', 'b')
    assert '    Restart: on-failure (RestartSec=0.1s)\n' in box.run('status', 'b')[1]


def test_a_daemon_that_died_is_failed(box):
    box.run('start', 'a')
    pid = box.pid('a')
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Restart= not set (no): nothing starts it again
    time.sleep(0.5)
    assert box.run('is-active', 'a') == (3, 'failed\n', '')
    rc, out, _ = box.run('status', 'a')
    assert rc == 3 and 'Active: failed (Result: signal) since' in out, out
    assert 'Main PID: %d (code=killed, signal=KILL)' % pid in out, out
    assert 'a.service: Main process exited, code=killed, status=9/KILL' in out, out
    assert "a.service: Failed with result 'signal'." in out, out
    assert box.run('start', 'a')[0] == 0 and box.pid('a') != pid and alive(box.pid('a'))


SVC_EXIT = '#!/bin/sh\necho "exiting $1"\nexit $1\n'


def restart_unit(restart, start='/usr/bin/svc-r', sec='300ms', extra=''):
    return ('[Unit]\nDescription=unit r\n%s[Service]\nExecStart=%s\nRestart=%s\n'
            'RestartSec=%s\nTimeoutStopSec=5\n' % (extra, start, restart, sec))


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.02)


def starts(box, unit):
    with open(os.path.join(box.logs, unit + '.log')) as f:
        return f.read().count(' starting ')


def test_restart_on_failure_starts_a_killed_unit_again_after_restart_sec(box):
    box.add('r', restart_unit('on-failure'), 'svc-r', '#!/bin/sh\nexec sleep 1002\n')
    assert box.run('start', 'r') == (0, '', '')
    pid = box.pid('r')
    sup = systemctl.read_record(box.state, 'r.service')['supervisor']
    assert alive(sup['pid']) and sup['pid'] != pid
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    # auto-restart: activating (not active), RestartSec=300ms before it starts again
    assert wait_for(lambda: box.run('is-active', 'r')[1] == 'activating\n', 1)
    rc, out, _ = box.run('status', 'r')
    assert rc == 3 and 'Active: activating (auto-restart) (Result: signal) since' in out, out
    assert 'Main PID: %d (code=killed, signal=KILL)' % pid in out, out
    assert wait_for(lambda: box.pid('r') != pid and alive(box.pid('r')))
    assert time.monotonic() - killed >= 0.3
    assert box.run('is-active', 'r') == (0, 'active\n', '')
    rc, out, _ = box.run('status', 'r')
    assert rc == 0 and 'Main PID: %d (svc-r)' % box.pid('r') in out, out
    assert 'Restarts: 1 (restart counter; the last main process, %d, ended with ' \
        'code=killed, signal=KILL)' % pid in out, out
    assert 'r.service: Scheduled restart job, restart counter is at 1.' in out, out
    # a second kill: a second restart, by the same supervisor
    pid2 = box.pid('r')
    os.kill(pid2, signal.SIGKILL)
    assert wait_for(lambda: box.pid('r') not in (pid, pid2) and alive(box.pid('r')))
    assert systemctl.read_record(box.state, 'r.service')['restarts'] == 2
    assert systemctl.read_record(box.state, 'r.service')['supervisor'] == sup


def test_restart_on_failure_leaves_a_clean_exit_alone(box):
    box.add('r', restart_unit('on-failure', '/usr/bin/svc-exit 0', '100ms'), 'svc-exit',
            SVC_EXIT)
    assert box.run('start', 'r')[0] == 0
    pid = box.pid('r')
    assert wait_for(lambda: 'result' in (systemctl.read_record(box.state, 'r.service') or {}))
    time.sleep(0.5)
    assert box.pid('r') == pid and starts(box, 'r') == 1
    assert box.run('is-active', 'r') == (3, 'inactive\n', '')
    rc, out, _ = box.run('status', 'r')
    assert rc == 3 and 'Active: inactive (dead) since' in out, out
    assert 'Main PID: %d (code=exited, status=0/SUCCESS)' % pid in out, out
    assert 'r.service: Deactivated successfully.' in out, out
    # SIGTERM is a clean signal: a main process killed by it is not restarted either
    box.add('t', restart_unit('on-failure'), 'svc-r', '#!/bin/sh\nexec sleep 1003\n')
    box.run('start', 't')
    pid = box.pid('t')
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: box.run('is-active', 't')[1] == 'inactive\n')
    time.sleep(0.6)
    assert box.pid('t') == pid and box.run('is-active', 't')[1] == 'inactive\n'
    # a non-zero exit is a failure: restarted
    box.add('f', restart_unit('on-failure', '/usr/bin/svc-exit 3', '1'), 'svc-exit', SVC_EXIT)
    box.run('start', 'f')
    assert wait_for(lambda: box.run('is-active', 'f')[1] == 'activating\n')
    rc, out, _ = box.run('status', 'f')
    assert 'Active: activating (auto-restart) (Result: exit-code)' in out, out
    assert 'code=exited, status=3/NOTIMPLEMENTED' in out, out
    assert box.run('stop', 'f') == (0, '', '')


def test_restart_always_restarts_a_clean_exit(box, tmp_path):
    count = tmp_path / 'count'
    box.add('r', restart_unit('always', sec='200ms'), 'svc-r',
            '#!/bin/sh\necho run >> %s\n[ $(wc -l < %s) -ge 2 ] && exec sleep 1004\nexit 0\n'
            % (count, count))
    assert box.run('start', 'r')[0] == 0
    first = box.pid('r')
    assert wait_for(lambda: box.pid('r') != first and alive(box.pid('r')))
    assert box.run('is-active', 'r') == (0, 'active\n', '')
    rec = systemctl.read_record(box.state, 'r.service')
    assert rec['restarts'] == 1 and rec['last'] == {'pid': first, 'code': 'exited', 'status': 0}


def test_stop_never_restarts(box):
    box.add('r', restart_unit('always', sec='100ms'), 'svc-r', '#!/bin/sh\nexec sleep 1005\n')
    box.run('start', 'r')
    pid = box.pid('r')
    sup = systemctl.read_record(box.state, 'r.service')['supervisor']['pid']
    assert box.run('stop', 'r') == (0, '', '')
    assert not alive(pid) and not alive(sup)
    time.sleep(0.5)
    assert box.pid('r') is None and box.run('is-active', 'r') == (3, 'inactive\n', '')
    assert starts(box, 'r') == 1
    # a stop while the restart is pending (auto-restart) cancels it
    box.add('s', restart_unit('on-failure', sec='600ms'), 'svc-r', '#!/bin/sh\nexec sleep 1005\n')
    box.run('start', 's')
    pid = box.pid('s')
    sup = systemctl.read_record(box.state, 's.service')['supervisor']['pid']
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: box.run('is-active', 's')[1] == 'activating\n')
    assert box.run('stop', 's') == (0, '', '')
    assert not alive(sup)
    time.sleep(0.8)
    assert box.pid('s') is None and starts(box, 's') == 1
    # a start while the restart is pending starts it at once, under a new supervisor
    box.run('start', 's')
    pid = box.pid('s')
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: box.run('is-active', 's')[1] == 'activating\n')
    assert box.run('start', 's') == (0, '', '')
    assert box.pid('s') != pid and alive(box.pid('s'))
    time.sleep(0.8)
    assert starts(box, 's') == 3


def test_restart_no_stays_failed(box):
    box.add('r', restart_unit('no', sec='100ms'), 'svc-r', '#!/bin/sh\nexec sleep 1006\n')
    box.run('start', 'r')
    pid = box.pid('r')
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: box.run('is-active', 'r')[1] == 'failed\n')
    time.sleep(0.5)
    assert box.pid('r') == pid and box.run('is-active', 'r') == (3, 'failed\n', '')
    assert starts(box, 'r') == 1


def test_start_limit_stops_a_unit_that_keeps_failing(box):
    """systemd's default start limit (5 starts within 10 s): a main process that fails at
    once is started 5 times, then the unit is failed with start-limit-hit."""
    box.add('r', restart_unit('on-failure', '/usr/bin/svc-exit 1', '100ms'), 'svc-exit',
            SVC_EXIT)
    box.run('start', 'r')
    assert wait_for(lambda: box.run('is-active', 'r')[1] == 'failed\n', 5)
    rc, out, _ = box.run('status', 'r')
    assert 'Active: failed (Result: start-limit-hit)' in out, out
    assert 'r.service: Start request repeated too quickly.' in out, out
    time.sleep(0.3)
    assert starts(box, 'r') == systemctl.START_LIMIT_BURST


def test_an_automatic_restart_restarts_what_requires_the_unit(box):
    box.add('base', restart_unit('on-failure', sec='200ms'), 'svc-r',
            '#!/bin/sh\nexec sleep 1007\n')
    box.add('dep', '[Unit]\nRequires=base.service\nAfter=base.service\n[Service]\n'
            'ExecStart=/bin/sleep 1008\nTimeoutStopSec=5\n')
    box.run('start', 'dep')
    base, dep = box.pid('base'), box.pid('dep')
    os.kill(base, signal.SIGKILL)
    assert wait_for(lambda: box.pid('base') not in (None, base) and alive(box.pid('base')))
    assert wait_for(lambda: box.pid('dep') not in (None, dep) and alive(box.pid('dep')))
    assert not alive(dep)
    assert box.run('is-active', 'base', 'dep') == (0, 'active\nactive\n', '')


def test_what_the_main_process_leaves_in_its_group_goes_with_it(box, tmp_path):
    child = tmp_path / 'child'
    box.add('r', restart_unit('on-failure', sec='200ms'), 'svc-r',
            '#!/bin/sh\nsleep 1009 &\necho $! > %s\nexec sleep 1010\n' % child)
    box.run('start', 'r')
    assert wait_for(lambda: child.exists() and child.read_text().strip())
    left = int(child.read_text())
    assert alive(left)
    child.unlink()
    os.kill(box.pid('r'), signal.SIGKILL)
    assert wait_for(lambda: not alive(left), 2)
    assert wait_for(lambda: child.exists() and child.read_text().strip())
    assert box.run('stop', 'r')[0] == 0
    assert wait_for(lambda: not alive(int(child.read_text())), 2)


def test_a_program_that_cannot_run_fails_the_start(box):
    box.add('r', restart_unit('always', '/nonexistent/svc-none'))
    rc, out, err = box.run('start', 'r')
    assert (rc, out) == (1, '')
    assert err == ('Failed to start: r.service: cannot run /nonexistent/svc-none: '
                   'No such file or directory\n')
    assert box.pid('r') is None and box.run('is-active', 'r')[1] == 'inactive\n'


def test_restart_values_and_times(box):
    box.add('x', restart_unit('on-abnormal'))
    rc, _, err = box.run('start', 'x')
    assert rc == 1 and 'Restart=on-abnormal is not supported in a lab host' in err
    box.add('y', restart_unit('always', sec='soon'))
    rc, _, err = box.run('start', 'y')
    assert rc == 1 and "'soon' is not a time span" in err
    m = systemctl.Manager(unit_dir=str(box.units), state_dir=box.state)
    assert m.unit('a').restart_sec() == 0.1            # systemd's default: 100ms
    assert m.unit('a').restart_policy() == 'no'
    box.add('z', restart_unit('always', sec='1min'))
    assert m.unit('z').restart_sec() == 60


@pytest.mark.parametrize('wstatus,expected', [
    (0, ('exited', 0, 'success')), (1 << 8, ('exited', 1, 'exit-code')),
    (signal.SIGKILL, ('killed', 9, 'signal')), (signal.SIGTERM, ('killed', 15, 'success')),
    (signal.SIGHUP, ('killed', 1, 'success')), (signal.SIGINT, ('killed', 2, 'success')),
    (signal.SIGPIPE, ('killed', 13, 'success')),
    (signal.SIGSEGV | 0x80, ('dumped', 11, 'core-dump'))])
def test_exit_results_as_systemd_names_them(wstatus, expected):
    assert systemctl.exit_result(wstatus) == expected
    policy = {r: systemctl.restarts_after('on-failure', expected[2]) for r in ('on-failure',)}
    assert policy['on-failure'] == (expected[2] != 'success')
    assert systemctl.restarts_after('always', expected[2])
    assert not systemctl.restarts_after('no', expected[2])


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
    # what the service manager applies of their Restart=
    assert (agent.restart_policy(), agent.restart_sec()) == ('on-failure', 10)
    assert (broker.restart_policy(), broker.restart_sec()) == ('on-failure', 5)


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
