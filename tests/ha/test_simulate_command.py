"""`hosted-engine-lab simulate` runs the simulator scenarios."""
import os
import subprocess
import sys

LAB = os.path.join(os.path.dirname(sys.executable), 'hosted-engine-lab')


def test_simulate_selected_scenarios():
    r = subprocess.run([LAB, 'simulate', 'host-crash-active-2', 'gateway-loss-all-4'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == '2 passed, 0 failed'
    assert lines[0].startswith('host-crash-active-2') and 'PASS' in lines[0]


def test_simulate_show_and_failure():
    r = subprocess.run([LAB, 'simulate', '--show', 'host-crash-active-2'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and 'EngineUp' in r.stdout
    r = subprocess.run([LAB, 'simulate', 'no-such-scenario'], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and r.stdout.splitlines()[-1] == '0 passed, 1 failed'
