"""`hosted-engine --deploy` driven through a real pseudo-terminal, as a person types."""
import os
import signal
import sys

import pexpect

from .conftest import HOSTED_ENGINE

PASSWORD = 'Typed-Pa55word'


def spawn(prefix, *args, env=None):
    child = pexpect.spawn(sys.executable, [HOSTED_ENGINE, '--deploy'] + list(args),
                          env=env or prefix.env, encoding='utf-8', timeout=30,
                          dimensions=(50, 200))
    return child


def at_password_prompt(prefix):
    """A deploy that confirmed the first question and now asks for the admin password."""
    child = spawn(prefix)
    child.expect_exact('(Yes, No)[Yes]: ')
    child.sendline('')
    child.expect_exact('Enter engine admin password: ')
    return child


def finished(child):
    """Wait for the end; return (exit status, what it printed last)."""
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before


def answer_core_questions(child, password=PASSWORD):
    child.expect_exact('Are you sure you want to continue? (Yes, No)[Yes]: ')
    child.sendline('')
    child.expect_exact('--== HOSTED ENGINE CONFIGURATION ==--')
    child.expect_exact('Enter engine admin password: ')
    child.sendline(password)
    child.expect_exact('Confirm engine admin password: ')
    child.sendline(password)
    child.expect_exact('notifications [localhost]: ')
    child.sendline('')
    child.expect_exact('SMTP server [25]: ')
    child.sendline('2525')
    child.expect_exact('will be sent [root@localhost]: ')
    child.sendline('')
    child.expect_exact('get notifications [root@localhost]: ')
    child.sendline('ops@example.com, admin@example.com')


def test_interactive_deploy_and_replay(prefix, tmp_path):
    child = spawn(prefix, '--generate-answer=%s' % (tmp_path / 'mine.conf'))
    child.expect(r'Log file: (\S+)')
    log = child.match.group(1)
    answer_core_questions(child)
    child.expect_exact('--== CONFIGURATION PREVIEW ==--')
    child.expect_exact('SMTP port                          : 2525')
    child.expect_exact('Please confirm installation settings (Yes, No)[Yes]: ')
    child.sendline('yes')
    child.expect_exact('Hosted Engine successfully set up')
    child.expect_exact('Log file is located at %s' % log)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    transcript = child.before

    written = [str(tmp_path / 'mine.conf'), prefix.path('/etc/ovirt-hosted-engine/answers.conf')]
    written += prefix.answer_files()
    assert len(written) == 3
    for path in written:
        assert oct(os.stat(path).st_mode & 0o777) == '0o600'
        text = open(path).read()
        assert 'OVEHOSTED_NOTIF/smtpPort=int:2525' in text
        assert 'OVEHOSTED_NOTIF/destEmail=str:ops@example.com,admin@example.com' in text
        assert 'OVEHOSTED_CORE/deployProceed=bool:True' in text
        lines = [line for line in text.splitlines() if '=' in line and not line.startswith('#')]
        assert lines == sorted(lines)
    # the typed password reached no file and was never echoed
    for path in prefix.all_files() + written:
        assert PASSWORD not in open(path, errors='replace').read(), path
    assert PASSWORD not in transcript

    # replay: the answer file asks nothing but the password, which is never written
    child = spawn(prefix, '--config-append=%s' % (tmp_path / 'mine.conf'))
    child.expect_exact('Enter engine admin password: ')
    child.sendline('Another-Pa55')
    child.expect_exact('Confirm engine admin password: ')
    child.sendline('Another-Pa55')
    index = child.expect_exact(['Hosted Engine successfully set up', '? ', ']: '])
    assert index == 0, child.before
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_password_mismatch_is_asked_again(prefix):
    child = at_password_prompt(prefix)
    child.sendline('first-one')
    child.expect_exact('Confirm engine admin password: ')
    child.sendline('second-one')
    child.expect_exact('Passwords do not match')
    child.expect_exact('Enter engine admin password: ')
    child.sendcontrol('d')
    assert finished(child)[0] == 1


def test_hidden_input_is_not_echoed(prefix):
    child = at_password_prompt(prefix)
    child.sendline('NoEcho-Secret')
    child.expect_exact('Confirm engine admin password: ')
    assert 'NoEcho-Secret' not in child.before
    child.sendcontrol('c')
    assert finished(child)[0] == 1


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
    child = at_password_prompt(prefix)
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
