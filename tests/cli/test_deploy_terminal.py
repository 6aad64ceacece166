"""`hosted-engine --deploy` driven through a real pseudo-terminal, as a person types: the
first questions, before the deploy touches the host. The whole interactive deploy is typed in
the lab: tests/lab/test_deploy_e2e.py."""
import signal
import sys

import pexpect

from .conftest import HOSTED_ENGINE


def spawn(prefix, *args, env=None):
    child = pexpect.spawn(sys.executable, [HOSTED_ENGINE, '--deploy'] + list(args),
                          env=env or prefix.env, encoding='utf-8', timeout=30,
                          dimensions=(50, 200))
    return child


def finished(child):
    """Wait for the end; return (exit status, what it printed last)."""
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before


def test_invalid_answer_reasked_with_reason(prefix):
    child = spawn(prefix)
    child.expect_exact('(Yes, No)[Yes]: ')
    child.sendline('perhaps')
    child.expect_exact("[ ERROR ] Invalid value: 'perhaps' is not one of Yes, No")
    child.expect_exact('(Yes, No)[Yes]: ')
    child.sendline('No')
    child.expect_exact('Hosted Engine deployment aborted')
    assert finished(child)[0] == 1
    assert prefix.answer_files() == []


def _interrupted(prefix, how):
    child = spawn(prefix)
    child.expect_exact('(Yes, No)[Yes]: ')
    if how == 'eof':
        child.sendcontrol('d')
    else:
        child.kill(signal.SIGINT)
    code, out = finished(child)
    assert code == 1
    assert 'Traceback' not in out
    # only the log remains: no answer file, no configuration, no temporary file
    files = prefix.all_files()
    assert len(files) == 1 and files[0].endswith('.log'), files
    return out


def test_ctrl_d_aborts_cleanly(prefix):
    out = _interrupted(prefix, 'eof')
    assert 'End of input' in out


def test_sigint_aborts_cleanly(prefix):
    out = _interrupted(prefix, 'sigint')
    assert 'SIGINT' in out


def test_ssh_without_tmux_asks_second_confirmation(prefix):
    env = dict(prefix.env, SSH_CONNECTION='127.0.0.1 50000 127.0.0.1 22')
    child = spawn(prefix, env=env)
    child.expect_exact('(Yes, No)[Yes]: ')
    child.sendline('')
    child.expect_exact('Do you want to continue anyway? (Yes, No)[No]: ')
    child.sendline('')
    child.expect_exact('Hosted Engine deployment aborted')
    assert finished(child)[0] == 1
