"""Every simulator scenario under tests/ha/scenarios matches its golden log and keeps the invariants."""
import os

import pytest

from ovirt_hosted_engine_setup.ha.simulator import cli, scenario

BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'scenarios')
NAMES = sorted(n for n in os.listdir(BASE) if os.path.isfile(os.path.join(BASE, n, 'cmdlist')))


def test_there_are_at_least_150_scenarios():
    assert len(NAMES) >= 150


@pytest.mark.parametrize('name', NAMES)
def test_scenario(name):
    ok, msg, _ = cli.check(os.path.join(BASE, name))
    assert ok, msg


def test_cli_summary_and_exit_code(tmp_path, capsys):
    good = tmp_path / 'good'
    good.mkdir()
    (good / 'cmdlist').write_text('hosts 2\nduration 120\nbound 0\n')
    res = scenario.run(scenario.load(str(good)))
    (good / 'log.expect').write_text('\n'.join(res.log) + '\n')
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'cmdlist').write_text('hosts 2\nduration 120\nbound 0\n')
    (bad / 'log.expect').write_text('    0 host1: something else\n')
    assert cli.main(['--dir', str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == '1 passed, 1 failed'
    assert any(line.startswith('bad ') and 'FAIL' in line for line in out)
    assert cli.main(['--dir', str(tmp_path), 'good']) == 0
    assert capsys.readouterr().out.splitlines()[-1] == '1 passed, 0 failed'
    assert cli.main(['--dir', str(tmp_path), '--show', 'good']) == 0
    assert 'host1: StartState -> ReinitializeFSM' in capsys.readouterr().out


def test_bound_violation_fails(tmp_path):
    d = tmp_path / 'tight'
    d.mkdir()
    (d / 'cmdlist').write_text('hosts 2\nduration 400\nbound 30\n100 crash 1\n')
    ok, msg, _ = cli.check(str(d))
    assert not ok and 'bound 30s' in msg


def test_missing_bound_is_an_error(tmp_path):
    d = tmp_path / 'nobound'
    d.mkdir()
    (d / 'cmdlist').write_text('hosts 2\n')
    ok, msg, _ = cli.check(str(d))
    assert not ok and 'bound' in msg


def test_crash_failover_waits_for_sanlock_not_longer():
    """The restart happens right after the crashed host's id expires (8N + W after its last
    renewal), within one agent loop, and never before."""
    sc = scenario.parse_cmdlist('x', 'hosts 4\nduration 500\nbound 240\n100 crash 1\n')
    res = scenario.run(sc)
    started = [line for line in res.log if line.endswith(': VM started')]
    assert len(started) == 1
    t = int(started[0].split()[0])
    # host1 last renewed at 83 (phase 3, every 20 s); dead for others after 83 + 140
    assert 223 < t <= 233
    assert not res.violations


def test_invariant_checks_catch_violations():
    from ovirt_hosted_engine_setup.ha.simulator import world
    c = world.Cluster(2)
    for h in c.hosts:
        h.vm_running = True
        h.vm_started_at = 0
    c.check_invariants()
    assert c.violations and 'two engine VMs running' in c.violations[0]
    c = world.Cluster(2)
    c.score_moves = [100, 300]
    c.finish()
    assert c.violations and 'twice' in c.violations[0]


def test_only_one_vm_ever_starts_in_lease_only_races():
    for n in (2, 8, 64):
        res = scenario.run(scenario.parse_cmdlist(
            'race', 'hosts %d\nduration 200\nbound 150\nvm-on none\nlease-read off\n' % n))
        assert sum(line.endswith(': VM started') for line in res.log) == 1
        assert sum('(-243)' in line for line in res.log) == n - 1
        assert not res.violations
