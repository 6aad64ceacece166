"""Stages, error semantics, abort, signals, exit codes."""
import os
import signal

from ovirt_hosted_engine_setup.runner.constants import STAGES

from .helpers import run

RECORDER = '''
TRACE = []

class Plugin(PluginBase):
    def _rec(self, what):
        self.environment.setdefault('TEST/trace', []).append(what)
'''


def recorder_for_all_stages(fail_in=None, exc='RuntimeError("boom")'):
    src = RECORDER
    for st in STAGES:
        body = 'raise %s' % exc if st.id == fail_in else 'pass'
        src += '''
    @event(stage=%r)
    def m_%s(self):
        self._rec(%r)
        %s
''' % (st.id, st.id.replace('-', '_'), st.id, body)
    return src


def test_all_stages_run_in_order(tmp_path):
    r = run(tmp_path, {'p': recorder_for_all_stages()})
    assert r.code == 0
    assert r.env['TEST/trace'] == [s.id for s in STAGES]
    for s in STAGES[1:]:
        assert 'Stage: %s' % s.description in r.output


def test_failure_skips_to_always_stages(tmp_path):
    r = run(tmp_path, {'p': recorder_for_all_stages(fail_in='customization')})
    assert r.code == 1
    assert r.env['TEST/trace'] == ['boot', 'init', 'setup', 'internal_packages', 'programs',
                                   'late_setup', 'customization', 'cleanup', 'pre-terminate',
                                   'terminate']
    assert r.env['BASE/error'] is True
    assert "Failed to execute stage 'Environment customization': boom" in r.output
    assert 'RuntimeError: boom' in r.log          # traceback in the log
    assert 'Traceback' not in r.output            # never on screen


def test_remaining_methods_of_failed_stage_are_skipped(tmp_path):
    src = RECORDER + '''
    @event(stage=Stages.MISC, priority=Priority.HIGH)
    def first(self):
        raise RuntimeError('first fails')

    @event(stage=Stages.MISC, priority=Priority.LOW)
    def second(self):
        self._rec('second')

    @event(stage=Stages.CLEANUP, priority=Priority.HIGH)
    def c1(self):
        raise RuntimeError('cleanup fails')

    @event(stage=Stages.CLEANUP, priority=Priority.LOW)
    def c2(self):
        self._rec('c2')
'''
    r = run(tmp_path, {'p': src})
    assert r.code == 1
    assert r.env['TEST/trace'] == ['c2']        # always-stages keep running their methods


def test_abort_sets_aborted(tmp_path):
    r = run(tmp_path, {'p': recorder_for_all_stages(fail_in='setup',
                                                    exc='AbortError("Aborted by user")')})
    assert r.code == 1
    assert r.env['BASE/aborted'] is True
    assert 'Aborted' in r.output
    assert 'Failed to execute stage' not in r.output


def test_signal_is_a_failure(tmp_path):
    src = RECORDER + '''
    @event(stage=Stages.MISC)
    def kill(self):
        import os, signal, time
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        self._rec('not reached')

    @event(stage=Stages.CLOSEUP)
    def later(self):
        self._rec('closeup')

    @event(stage=Stages.TERMINATE)
    def term(self):
        self._rec('terminate')
'''
    old = signal.getsignal(signal.SIGTERM)
    r = run(tmp_path, {'p': src})
    assert signal.getsignal(signal.SIGTERM) == old     # handlers restored
    assert r.code == 143                               # 128 + SIGTERM
    assert r.env['TEST/trace'] == ['terminate']
    errors = [line for line in r.output.splitlines() if '[ ERROR ]' in line]
    assert errors == ['[ ERROR ] Interrupted by SIGTERM: nothing to roll back; log file: %s'
                      % r.log_file], r.output
    assert 'Failed to execute stage' not in r.output


def test_condition_false_skips(tmp_path):
    src = RECORDER + '''
    @event(stage=Stages.MISC, condition=lambda self: False)
    def skipped(self):
        self._rec('skipped')

    @event(stage=Stages.MISC, condition=lambda self: True)
    def taken(self):
        self._rec('taken')
'''
    r = run(tmp_path, {'p': src})
    assert r.env['TEST/trace'] == ['taken']


def test_requested_exit_code_by_priority(tmp_path):
    src = RECORDER + '''
    @event(stage=Stages.CLOSEUP)
    def codes(self):
        self.context.request_exit_code(5, priority=1)
        self.context.request_exit_code(7, priority=10)
'''
    r = run(tmp_path, {'p': src})
    assert r.code == 7


def test_log_records_sequence_and_env_changes(tmp_path):
    src = RECORDER + '''
    @event(stage=Stages.MISC, name='test.misc.one')
    def one(self):
        self.environment['TEST/value'] = 42
'''
    r = run(tmp_path, {'p': src})
    assert r.log_file.startswith(str(tmp_path / 'log' / 'test-'))
    assert oct(os.stat(r.log_file).st_mode & 0o777) == '0o600'
    assert 'SEQUENCE misc' in r.log and '(test.misc.one)' in r.log
    assert "ENV TEST/value=int:'42'" in r.log
    assert 'STAGE misc METHOD' in r.log
    # log path printed at start and at end
    assert r.output.count(r.log_file) == 2
    assert r.output.splitlines()[-1].strip() == 'Log file is located at %s' % r.log_file
    assert r.output.splitlines()[0].strip() == 'Log file: %s' % r.log_file
