"""`hosted-engine --deploy` driven through a real pseudo-terminal, as a person types: the
first questions, before the deploy touches the host. The whole interactive deploy is typed in
the lab: tests/lab/test_deploy_e2e.py."""
import os
import signal
import socket
import sys
import time

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
    child.expect_exact('[ ERROR ] Aborted: Aborted by user')     # typed: the user said No
    child.expect_exact('Hosted Engine deployment aborted')
    assert finished(child)[0] == 1
    assert prefix.answer_files() == []


BOUND = 5.0     # seconds; an interrupted deploy ends well within 1 s on an idle machine


def _interrupted(prefix, how):
    child = spawn(prefix)
    child.expect_exact('(Yes, No)[Yes]: ')
    t0 = time.monotonic()
    if how == 'eof':
        child.sendcontrol('d')
    else:
        child.kill(how)
    code, out = finished(child)
    elapsed = time.monotonic() - t0
    assert 'Traceback' not in out
    # only the log remains: no answer file, no configuration, no temporary file
    files = prefix.all_files()
    assert len(files) == 1 and files[0].endswith('.log'), files
    return code, out, elapsed


def test_ctrl_d_aborts_cleanly(prefix):
    code, out, _ = _interrupted(prefix, 'eof')
    assert code == 1
    assert 'End of input' in out


def test_sigint_at_a_question_ends_at_once(prefix):
    code, out, elapsed = _interrupted(prefix, signal.SIGINT)
    print('SIGINT at a question: ended %.3f s after the signal' % elapsed)
    assert elapsed < BOUND
    assert code == 130
    assert '[ ERROR ] Interrupted by SIGINT: nothing to roll back; log file: ' in out
    assert 'deployment failed' not in out


def test_sigterm_at_a_question_ends_at_once(prefix):
    code, out, elapsed = _interrupted(prefix, signal.SIGTERM)
    print('SIGTERM at a question: ended %.3f s after the signal' % elapsed)
    assert elapsed < BOUND
    assert code == 143
    assert 'Interrupted by SIGTERM' in out


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_signal_in_the_wait_for_the_host_agent(prefix, tmp_path):
    """The deploy waits up to 120 s for the host agent (nothing answers on the port here):
    a signal in that wait ends it at once."""
    answers = tmp_path / 'a.conf'
    answers.write_text('[environment:default]\nOVEHOSTED_CORE/deployProceed=bool:True\n'
                       'OVEHOSTED_CORE/skipTTYCheck=bool:True\n')
    env = dict(prefix.env, OVIRT_HOSTED_ENGINE_HOSTD_PORT=str(_free_port()))
    for signum, expected in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        child = spawn(prefix, '--config-append=%s' % answers, env=env)
        child.expect_exact('Waiting for the host agent')
        time.sleep(1.5)                 # well inside the wait, between two attempts
        t0 = time.monotonic()
        child.kill(signum)
        code, out = finished(child)
        elapsed = time.monotonic() - t0
        name = signal.Signals(signum).name
        print('%s in the wait for the host agent: ended %.3f s after the signal'
              % (name, elapsed))
        assert elapsed < BOUND
        assert code == expected, out
        assert '[ ERROR ] Interrupted by %s: nothing to roll back; log file: ' % name in out
        assert 'Traceback' not in out
        assert [f for f in prefix.all_files() if not f.endswith('.log')] == []


def test_signal_while_the_answer_files_are_read(prefix, tmp_path):
    """Answer files of the allowed size, many of them: the signal arrives while they are
    read; no stage has run."""
    conf = tmp_path / 'a.conf'
    text = '[environment:default]\n' + ''.join(
        'OVEHOSTED_VM/unusedKey%06d=str:value %d\n' % (i, i) for i in range(30000))
    conf.write_text(text[:1 << 20].rsplit('\n', 1)[0] + '\n')
    os.mkdir(str(conf) + '.d')
    for i in range(150):
        os.link(str(conf), os.path.join(str(conf) + '.d', '%03d.conf' % i))
    child = spawn(prefix, '--config-append=%s' % conf)
    child.expect_exact('Log file: ')
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:        # plugins loaded: the answer files come next
        logs = prefix.logs()
        if logs and 'SEQUENCE terminate' in open(logs[0]).read():
            break
        time.sleep(0.01)
    t0 = time.monotonic()
    child.kill(signal.SIGTERM)
    code, out = finished(child)
    elapsed = time.monotonic() - t0
    print('SIGTERM while reading answer files: ended %.3f s after the signal' % elapsed)
    assert elapsed < BOUND
    assert code == 143, out
    assert 'Interrupted by SIGTERM before anything ran: nothing was changed; log file:' in out
    assert 'Stage:' not in out
    assert [f for f in prefix.all_files() if not f.endswith('.log')] == []


def test_ssh_without_tmux_asks_second_confirmation(prefix):
    env = dict(prefix.env, SSH_CONNECTION='127.0.0.1 50000 127.0.0.1 22')
    child = spawn(prefix, env=env)
    child.expect_exact('(Yes, No)[Yes]: ')
    child.sendline('')
    child.expect_exact('Do you want to continue anyway? (Yes, No)[No]: ')
    child.sendline('')
    child.expect_exact('Hosted Engine deployment aborted')
    assert finished(child)[0] == 1
