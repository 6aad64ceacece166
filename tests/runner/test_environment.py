"""Environment precedence, answer-file sections, typed values, command-line assignments."""
import os
import time

import pytest

from ovirt_hosted_engine_setup.runner import typed
from ovirt_hosted_engine_setup.runner.errors import ConfigError
from ovirt_hosted_engine_setup.runner.keys import EnvKey

from .helpers import run

DEFAULTS = '''
class Plugin(PluginBase):
    @event(stage=Stages.INIT)
    def init(self):
        self.environment.setdefault('TEST/a', 'plugin')
        self.environment.setdefault('TEST/b', 'plugin')
        self.environment.setdefault('TEST/c', 'plugin')

    @event(stage=Stages.INIT, priority=Priority.LAST)
    def seen_at_init(self):
        self.environment['TEST/at_init'] = self.environment.get('TEST/i')

    @event(stage=Stages.CUSTOMIZATION, priority=Priority.FIRST)
    def seen_before_questions(self):
        self.environment['TEST/o_before_q'] = self.environment.get('TEST/o')
        self.environment['TEST/e_before_q'] = self.environment.get('TEST/e')

    @event(stage=Stages.CUSTOMIZATION)
    def question(self):
        self.environment['TEST/e'] = 'asked'

    @event(stage=Stages.VALIDATION)
    def seen_after_questions(self):
        self.environment['TEST/e_after_q'] = self.environment.get('TEST/e')
'''


def write(path, text):
    path.write_text(text)
    return str(path)


def test_precedence_cmdline_over_answer_file_over_plugin(tmp_path):
    f = write(tmp_path / 'a.conf', '[environment:default]\nTEST/a=str:file\nTEST/b=str:file\n')
    r = run(tmp_path, {'p': DEFAULTS},
            assignments=['TEST/a=str:cmdline', 'APPEND:CORE/configFileAppend=str:' + f])
    assert r.code == 0, r.output
    assert (r.env['TEST/a'], r.env['TEST/b'], r.env['TEST/c']) == ('cmdline', 'file', 'plugin')


def test_init_override_enforce_sections(tmp_path):
    f = write(tmp_path / 'a.conf', '[environment:init]\nTEST/i=str:init\n'
              '[environment:override]\nTEST/o=str:override\n'
              '[environment:enforce]\nTEST/e=str:enforced\n')
    r = run(tmp_path, {'p': DEFAULTS}, assignments=['CORE/configFileAppend=str:' + f])
    assert r.env['TEST/at_init'] == 'init'
    assert r.env['TEST/o_before_q'] == 'override'
    assert r.env['TEST/e_before_q'] is None
    assert r.env['TEST/e_after_q'] == 'enforced'


def test_dot_d_files_sorted_and_later_wins(tmp_path):
    f = write(tmp_path / 'a.conf', '[environment:default]\nTEST/a=str:main\n')
    (tmp_path / 'a.conf.d').mkdir()
    write(tmp_path / 'a.conf.d' / '20-b.conf', '[environment:default]\nTEST/a=str:20\n')
    write(tmp_path / 'a.conf.d' / '10-a.conf', '[environment:default]\nTEST/a=str:10\n'
          'TEST/b=str:10\n')
    write(tmp_path / 'a.conf.d' / 'ignored.txt', 'garbage')
    r = run(tmp_path, {'p': DEFAULTS}, assignments=['CORE/configFileAppend=str:' + f])
    assert r.env['TEST/a'] == '20' and r.env['TEST/b'] == '10'


def test_several_config_files_in_order(tmp_path):
    f1 = write(tmp_path / '1.conf', '[environment:default]\nTEST/a=str:one\n')
    f2 = write(tmp_path / '2.conf', '[environment:default]\nTEST/a=str:two\n')
    r = run(tmp_path, {'p': DEFAULTS}, assignments=[
        'APPEND:CORE/configFileAppend=str:' + f1, 'APPEND:CORE/configFileAppend=str:' + f2])
    assert r.env['TEST/a'] == 'two'


def test_typed_values_in_files(tmp_path):
    f = write(tmp_path / 'a.conf', '[environment:default]\n# comment\n; other comment\n'
              'TEST/n=none:whatever\nTEST/t=bool:True\nTEST/f=bool:False\nTEST/i=int:42\n'
              'TEST/s=str:a=b:c\nTEST/m=multi-str:\n    line one\n    line two\n'
              'Case/Key=str:x\n')
    r = run(tmp_path, {'p': DEFAULTS}, assignments=['CORE/configFileAppend=str:' + f])
    env = r.env
    assert env['TEST/n'] is None and env['TEST/t'] is True and env['TEST/f'] is False
    assert env['TEST/i'] == 42 and env['TEST/s'] == 'a=b:c'
    assert env['TEST/m'] == ['line one', 'line two']
    assert env['Case/Key'] == 'x'


@pytest.mark.parametrize('word,value', [
    ('0', False), ('f', False), ('F', False), ('false', False), ('False', False),
    ('FALSE', False), ('no', False), ('No', False), (' no ', False), ('n', False),
    ('1', True), ('t', True), ('True', True), ('TRUE', True), ('yes', True), ('Yes', True),
    ('Y', True)])
def test_bool_spellings(word, value):
    parsed, warning = typed.parse('bool:' + word)
    assert parsed is value and warning is None


@pytest.mark.parametrize('word', ['Flase', 'ture', '', 'ye', '2', 'None', 'off'])
def test_bool_misspelt_is_an_error(word):
    with pytest.raises(ConfigError) as e:
        typed.parse('bool:' + word, where='a.conf line 3: TEST/x')
    text = str(e.value)
    assert 'a.conf line 3: TEST/x' in text and repr(word) in text
    assert typed.BOOL_SPELLINGS in text


@pytest.mark.parametrize('word', ['1_000', '٣', '1.5', '', '0x10'])
def test_int_strict(word):
    with pytest.raises(ConfigError):
        typed.parse('int:' + word)
    assert typed.parse('int: -12 ')[0] == -12


def test_misspelt_bool_in_answer_file_fails_before_anything_runs(tmp_path):
    line = _bad(tmp_path, '[environment:default]\nTEST/proceed=bool:Flase\n')
    assert 'line 2' in line and 'TEST/proceed' in line and "'Flase'" in line
    assert 'True, False, yes, no' in line


def test_misspelt_bool_on_command_line_fails_before_anything_runs(tmp_path):
    line = _bad(tmp_path, assignments=['TEST/proceed=bool:Flase'])
    assert 'command line: TEST/proceed' in line and "'Flase'" in line


def test_value_of_the_wrong_type_for_a_typed_key(tmp_path):
    key = EnvKey('TEST/proceed', kind='bool')
    line = _bad(tmp_path, '[environment:default]\nTEST/proceed=str:No\n', keys=[key])
    assert 'line 2' in line and 'TEST/proceed' in line and 'takes a bool' in line
    line = _bad(tmp_path / 'b', assignments=['TEST/proceed=int:0'], keys=[key])
    assert 'takes a bool' in line
    r = run(tmp_path / 'c', {'p': DEFAULTS}, assignments=['TEST/proceed=bool:no'], keys=[key])
    assert r.code == 0 and r.env['TEST/proceed'] is False


def test_unknown_key_of_a_known_group_is_warned_with_the_nearest_key(tmp_path):
    keys = [EnvKey('OVEHOSTED_STORAGE/storageDomainConnection'),
            EnvKey('OVEHOSTED_STORAGE/domainType')]
    f = write(tmp_path / 'a.conf', '[environment:default]\n'
              'OVEHOSTED_STORAGE/storageDomainConection=str:nfs:/x\n'
              'OVEHOSTED_STORAGE/domainType=str:nfs\n'
              'OTHER_GROUP/whatever=str:x\n')
    r = run(tmp_path, {'p': DEFAULTS}, keys=keys,
            assignments=['CORE/configFileAppend=str:' + f, 'OVEHOSTED_STORAGE/zzz=str:1'])
    assert r.code == 0, r.output
    warnings = [line for line in r.output.splitlines() if '[WARNING]' in line]
    assert len(warnings) == 2, r.output
    assert ('a.conf line 2: OVEHOSTED_STORAGE/storageDomainConection: unknown key, nothing '
            'reads it; did you mean OVEHOSTED_STORAGE/storageDomainConnection?') in warnings[1]
    assert 'command line: OVEHOSTED_STORAGE/zzz: unknown key' in warnings[0]


def test_unknown_key_warnings_are_bounded(tmp_path):
    keys = [EnvKey('OVEHOSTED_VM/vmVCpus')]
    text = '[environment:default]\n' + ''.join(
        'OVEHOSTED_VM/unknown%d=str:x\n' % i for i in range(500))
    f = write(tmp_path / 'a.conf', text)
    r = run(tmp_path, {'p': DEFAULTS}, keys=keys, assignments=['CORE/configFileAppend=str:' + f])
    warnings = [line for line in r.output.splitlines() if '[WARNING]' in line]
    assert len(warnings) == 11 and '490 more unknown keys' in warnings[-1], r.output


def test_typed_round_trip():
    for value in (None, True, False, 0, 17, 'text', 'a:b=c', ['x', 'y z']):
        text = typed.format(value)
        assert typed.parse(text)[0] == value


def test_append_prepend_on_command_line(tmp_path):
    r = run(tmp_path, {'p': DEFAULTS}, assignments=[
        'TEST/p=str:mid', 'APPEND:TEST/p=str:end', 'PREPEND:TEST/p=str:start',
        'APPEND:TEST/new=str:only'])
    assert r.env['TEST/p'] == 'start:mid:end'
    assert r.env['TEST/new'] == 'only'


QUESTIONS = '''
class Plugin(PluginBase):
    @event(stage=Stages.CUSTOMIZATION)
    def ask(self):
        self.environment['TEST/q1'] = self.dialog.query_string('NAME', 'First?')
        self.environment['TEST/q2'] = self.dialog.query_string('NAME', 'Second?')
        self.environment['TEST/q3'] = self.dialog.query_string(
            'COLOR', 'Color?', valid_values=('red', 'blue'))
'''


def test_question_preseeding(tmp_path):
    r = run(tmp_path, {'p': QUESTIONS}, assignments=[
        'QUESTION/1/NAME=str:one', 'QUESTION/2/NAME=str:two', 'QUESTION/1/COLOR=str:blue'])
    assert r.code == 0, r.output
    assert (r.env['TEST/q1'], r.env['TEST/q2'], r.env['TEST/q3']) == ('one', 'two', 'blue')
    assert '?' not in r.output.replace('Log file', '')


def test_invalid_preseed_is_an_error(tmp_path):
    r = run(tmp_path, {'p': QUESTIONS}, assignments=[
        'QUESTION/1/NAME=str:one', 'QUESTION/2/NAME=str:two', 'QUESTION/1/COLOR=str:green'])
    assert r.code == 1
    assert 'QUESTION/1/COLOR' in r.output and 'green' in r.output


# -- bad input: each one clear line, non-zero exit, no stage runs ----------------------

def _bad(tmp_path, text=None, assignments=None, keys=()):
    if text is not None:
        f = write(tmp_path / 'bad.conf', text)
        assignments = ['CORE/configFileAppend=str:' + f]
    r = run(tmp_path, {'p': DEFAULTS}, assignments=assignments, keys=keys)
    assert r.code == 1
    errors = [line for line in r.output.splitlines() if '[ ERROR ]' in line]
    assert len(errors) == 1, r.output
    assert 'Traceback' not in r.output
    assert 'TEST/c' not in r.env        # init never ran
    return errors[0]


def test_missing_type(tmp_path):
    line = _bad(tmp_path, '[environment:default]\nTEST/x=novalue\n')
    assert 'line 2' in line and 'TEST/x' in line and 'missing type' in line


def test_unknown_type(tmp_path):
    line = _bad(tmp_path, '[environment:default]\n\nTEST/x=float:1.5\n')
    assert 'line 3' in line and 'unknown type' in line and 'float' in line


def test_malformed_line(tmp_path):
    line = _bad(tmp_path, '[environment:default]\nthis is not an assignment\n')
    assert 'line 2' in line and 'malformed' in line


def test_bad_int(tmp_path):
    line = _bad(tmp_path, '[environment:default]\nTEST/x=int:twelve\n')
    assert 'not an integer' in line and 'TEST/x' in line


def test_unknown_section(tmp_path):
    line = _bad(tmp_path, '[environment:defaults]\nTEST/x=str:y\n')
    assert 'unknown section [environment:defaults]' in line and 'line 1' in line


def test_value_before_section(tmp_path):
    line = _bad(tmp_path, 'TEST/x=str:y\n')
    assert 'before any section' in line


def test_missing_file(tmp_path):
    line = _bad(tmp_path, assignments=['CORE/configFileAppend=str:/nonexistent/a.conf'])
    assert '/nonexistent/a.conf does not exist' in line


def test_unreadable_file(tmp_path):
    line = _bad(tmp_path, assignments=['CORE/configFileAppend=str:%s' % tmp_path])
    assert 'is a directory' in line


def _port(value):
    if not 0 < int(value) < 65536:
        raise ValueError('bad port')


def test_validator_rejects_answer_file_value(tmp_path):
    key = EnvKey('TEST/port', validator=_port)
    line = _bad(tmp_path, '[environment:default]\nTEST/port=int:70000\n', keys=[key])
    assert 'TEST/port' in line and 'bad port' in line and 'line 2' in line


def test_malformed_command_line_assignment(tmp_path):
    line = _bad(tmp_path, assignments=['TEST/x'])
    assert "'TEST/x' is not KEY=type:value" in line
    line = _bad(tmp_path / 'b', assignments=['TEST/x=nonsense:1'])
    assert 'unknown type' in line


def test_config_error_raised_by_parser():
    with pytest.raises(ConfigError):
        typed.parse('str', where='x')


# -- bounded input: answer files that are not regular files or are too large -----------

@pytest.mark.parametrize('special,kind', [('/dev/zero', 'a device'),
                                          ('/dev/urandom', 'a device'),
                                          ('fifo', 'a FIFO'), ('dir', 'a directory')])
def test_answer_file_that_is_not_a_regular_file_is_refused(tmp_path, special, kind):
    if special == 'fifo':
        special = str(tmp_path / 'fifo')
        os.mkfifo(special)            # nobody writes: reading it would wait forever
    elif special == 'dir':
        special = str(tmp_path / 'dir')
        os.mkdir(special)
    t0 = time.monotonic()
    line = _bad(tmp_path / 'run', assignments=['CORE/configFileAppend=str:' + special])
    assert time.monotonic() - t0 < 10
    assert '%s is %s, not a regular file' % (special, kind) in line


def test_answer_file_larger_than_the_limit_is_refused(tmp_path):
    from ovirt_hosted_engine_setup.runner import config
    big = tmp_path / 'big.conf'
    big.write_text('[environment:default]\n' + '#' * config.MAX_ANSWER_FILE_SIZE)
    line = _bad(tmp_path / 'run', assignments=['CORE/configFileAppend=str:%s' % big])
    assert 'is %d bytes' % big.stat().st_size in line and '(1 MiB)' in line
    # exactly at the limit is fine
    ok = tmp_path / 'ok.conf'
    head = '[environment:default]\nTEST/a=str:x\n'
    ok.write_text(head + '#' * (config.MAX_ANSWER_FILE_SIZE - len(head)))
    r = run(tmp_path / 'ok', {'p': DEFAULTS}, assignments=['CORE/configFileAppend=str:%s' % ok])
    assert r.code == 0 and r.env['TEST/a'] == 'x', r.output


def test_large_file_in_dot_d_is_refused(tmp_path):
    f = write(tmp_path / 'a.conf', '[environment:default]\nTEST/a=str:x\n')
    (tmp_path / 'a.conf.d').mkdir()
    os.symlink('/dev/zero', str(tmp_path / 'a.conf.d' / 'zero.conf'))
    line = _bad(tmp_path / 'run', assignments=['CORE/configFileAppend=str:' + f])
    assert 'zero.conf is a device, not a regular file' in line


def test_answer_without_line_end_is_bounded(tmp_path):
    r = run(tmp_path, {'p': QUESTIONS}, stdin='x' * 200000)
    assert r.code == 1
    assert 'The answer to NAME is longer than 65536 characters' in r.output
