"""The human and machine dialogs (in-process; the real terminal is tested in tests/cli)."""
import io

import pytest

from ovirt_hosted_engine_setup.runner.dialog import HumanDialog, MachineDialog
from ovirt_hosted_engine_setup.runner.errors import DialogEOF, RunnerError
from ovirt_hosted_engine_setup.runner.log import SecretFilter


def dialog(cls, answers, env=None):
    out = io.StringIO()
    d = cls(env if env is not None else {}, SecretFilter(), io.StringIO(answers), out)
    return d, out


def test_human_prompt_format_and_default():
    d, out = dialog(HumanDialog, '\n')
    assert d.query_string('Q', 'Are you sure?', valid_values=('Yes', 'No'), default='No') == 'No'
    assert out.getvalue() == '         Are you sure? (Yes, No)[No]: '


def test_human_prompt_without_valid_values():
    d, out = dialog(HumanDialog, 'x\n')
    d.query_string('Q', 'SMTP server', default='localhost')
    assert out.getvalue() == '         SMTP server [localhost]: '


def test_human_multiline_note_prompt_is_last_line():
    d, out = dialog(HumanDialog, 'yes\n')
    assert d.query_string('Q', 'Some context.\nContinue?', valid_values=('Yes', 'No'),
                          case_sensitive=False) == 'Yes'
    assert out.getvalue().startswith('         Some context.\n         Continue? (Yes, No): ')


def test_human_invalid_answer_reasked_with_reason():
    d, out = dialog(HumanDialog, 'maybe\nno\n')
    assert d.query_string('Q', 'Go?', valid_values=('Yes', 'No'), case_sensitive=False) == 'No'
    text = out.getvalue()
    assert text.count('Go? (Yes, No): ') == 2
    assert "[ ERROR ] Invalid value: 'maybe' is not one of Yes, No" in text


def test_human_validator_reason():
    def even(v):
        if int(v) % 2:
            raise ValueError('%s is odd' % v)
        return int(v)
    d, out = dialog(HumanDialog, '3\n4\n')
    assert d.query_string('N', 'Number', validator=even) == 4
    assert '3 is odd' in out.getvalue()


def test_human_empty_without_default_is_reasked():
    d, out = dialog(HumanDialog, '\nvalue\n')
    assert d.query_string('Q', 'Name') == 'value'
    assert 'a value is required' in out.getvalue()


def test_ctrl_d_raises():
    d, _ = dialog(HumanDialog, '')
    with pytest.raises(DialogEOF):
        d.query_string('Q', 'Name')


def test_password_twice_and_mismatch():
    env = {}
    d, out = dialog(HumanDialog, 'one\ntwo\nsecret\nsecret\n', env)
    assert d.query_password('PW', 'Enter password', 'Confirm password') == 'secret'
    assert 'Passwords do not match' in out.getvalue()
    for value in ('one', 'two', 'secret'):
        assert value not in out.getvalue()
        assert value in env['CORE/logFilter']      # hidden answers are filtered from logs


def test_auto_accept_default():
    d, out = dialog(HumanDialog, '', {'DIALOG/autoAcceptDefault': True})
    assert d.query_string('Q', 'Go?', valid_values=('Yes', 'No'), default='Yes') == 'Yes'
    assert out.getvalue() == ''
    # no default: still asked
    with pytest.raises(DialogEOF):
        d.query_string('Q2', 'Name')


def test_log_line_format():
    d, out = dialog(HumanDialog, '')
    d.write_log_line('INFO', 'a')
    d.write_log_line('WARNING', 'b')
    d.write_log_line('ERROR', 'c')
    assert out.getvalue() == '[ INFO  ] a\n[WARNING] b\n[ ERROR ] c\n'


def test_note_indented_and_wrapped():
    d, out = dialog(HumanDialog, '')
    d.note('word ' * 60)
    lines = out.getvalue().splitlines()
    assert len(lines) > 1 and all(line.startswith(' ' * 9 + 'word') for line in lines)


def test_machine_query_framing():
    d, out = dialog(MachineDialog, 'b|c\n')
    assert d.query_string('NAME', 'Pick one', valid_values=('a', 'b|c', 'd\\e'),
                          default='a') == 'b|c'
    assert out.getvalue() == (
        '**%QStart: NAME\n### Pick one\n**%QDefault: a\n'
        '**%QValidValues: a|b\\|c|d\\\\e\n**%QHidden: FALSE\n***Q:STRING NAME\n'
        '**%QEnd: NAME\n')


def test_machine_hidden_and_no_default():
    d, out = dialog(MachineDialog, 'pw\n')
    d.query_string('PW', 'Password', hidden=True)
    assert '**%QHidden: TRUE' in out.getvalue() and 'QDefault' not in out.getvalue()


def test_machine_invalid_is_error_without_retry():
    d, _ = dialog(MachineDialog, 'maybe\nYes\n')
    with pytest.raises(RunnerError, match='Invalid value for GO'):
        d.query_string('GO', 'Go?', valid_values=('Yes', 'No'))


def test_machine_confirm():
    d, out = dialog(MachineDialog, 'CONFIRM DEL=yes\nCONFIRM DEL=no\nbogus\n')
    assert d.confirm('DEL', 'Delete everything') is True
    assert out.getvalue() == '***CONFIRM DEL Delete everything\n'
    assert d.confirm('DEL', 'Delete everything') is False
    with pytest.raises(RunnerError, match='expected CONFIRM DEL=yes'):
        d.confirm('DEL', 'Delete everything')


def test_machine_notes_logs_terminate():
    d, out = dialog(MachineDialog, '')
    d.note('one\ntwo')
    d.write_log_line('INFO', 'hello')
    d.terminate()
    assert out.getvalue() == '### one\n### two\n***L:INFO hello\n***TERMINATE\n'
