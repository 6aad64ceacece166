"""Signals end a run at once, wherever they arrive, with the main transaction rolled back.

The runner runs in a child process (signals go to a real process); each test measures how long
the run takes to end after the signal, prints it, and asserts a generous bound.
"""
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from .helpers import make_group

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOUND = 5.0      # seconds; an interrupted run ends well within 1 s on an idle machine

SCRIPT = '''
import sys
sys.path.insert(0, %(top)r)
from ovirt_hosted_engine_setup.runner.context import Context
ctx = Context(groups=[%(group)r], plugin_path=[%(path)r], assignments=sys.argv[1:],
              log_dir=%(log_dir)r, log_prefix='test')
sys.exit(ctx.run())
'''

WAITING_PLUGIN = '''
import os
import time
from ovirt_hosted_engine_setup.runner import TransactionElement

class Element(TransactionElement):
    def __str__(self):
        return 'test element'

    def abort(self):
        self_note('ABORTING')
        time.sleep(%(abort_delay)r)            # a second signal now must not cut the rollback
        with open(%(marker)r, 'w') as f:
            f.write('rolled back')

def self_note(text):
    print(text, flush=True)

class Plugin(PluginBase):
    @event(stage=Stages.MISC)
    def wait(self):
        self.context.main_transaction.append(FileTransaction(%(target)r, 'data'))
        self.context.main_transaction.append(Element())
        self_note('WAITING')
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                time.sleep(0.5)
            except Exception:        # a plugin swallowing errors cannot swallow a signal
                pass
        self.environment['TEST/waited'] = True

    @event(stage=Stages.CLOSEUP)
    def closeup(self):
        self_note('CLOSEUP RAN')
'''


class Child:
    def __init__(self, tmp_path, plugin_source, args=()):
        group, path = make_group(tmp_path, {'p': plugin_source})
        script = tmp_path / 'run.py'
        script.write_text(SCRIPT % {'top': TOP, 'group': group, 'path': path,
                                    'log_dir': str(tmp_path / 'log')})
        self.proc = subprocess.Popen([sys.executable, str(script)] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True)
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip('\n'))
        self._queue.put(None)

    def expect(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError('%r not seen; output:\n%s' % (text, '\n'.join(self.lines)))

    def interrupt(self, signum):
        """Send the signal; return (exit code, seconds until the process ended)."""
        t0 = time.monotonic()
        self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return code, time.monotonic() - t0

    def output(self):
        while True:
            line = self._queue.get(timeout=10)
            if line is None:
                return '\n'.join(self.lines)
            self.lines.append(line)


def _waiting_run(tmp_path, abort_delay=0.0):
    target = tmp_path / 'out' / 'file.conf'
    marker = tmp_path / 'rolled-back'
    child = Child(tmp_path, WAITING_PLUGIN % {'target': str(target), 'marker': str(marker),
                                               'abort_delay': abort_delay})
    child.expect('WAITING')
    return child, target, marker


def test_sigterm_in_a_plugin_wait_rolls_back_and_ends_at_once(tmp_path):
    child, target, marker = _waiting_run(tmp_path)
    code, elapsed = child.interrupt(signal.SIGTERM)
    print('SIGTERM in a plugin wait: ended %.3f s after the signal' % elapsed)
    out = child.output()
    assert elapsed < BOUND
    assert code == 143, out
    assert marker.read_text() == 'rolled back'
    assert not (tmp_path / 'out').exists()           # the file transaction left nothing
    assert 'CLOSEUP RAN' not in out
    errors = [line for line in out.splitlines() if '[ ERROR ]' in line]
    assert len(errors) == 1, out
    assert errors[0].startswith('[ ERROR ] Interrupted by SIGTERM: rolled back: test element, '
                                'file %s; log file: ' % target), out
    assert 'Traceback' not in out


def test_sigint_in_a_plugin_wait_exits_130(tmp_path):
    child, _target, marker = _waiting_run(tmp_path)
    code, elapsed = child.interrupt(signal.SIGINT)
    print('SIGINT in a plugin wait: ended %.3f s after the signal' % elapsed)
    out = child.output()
    assert elapsed < BOUND
    assert code == 130, out
    assert marker.exists()
    assert 'Interrupted by SIGINT: rolled back: test element' in out


def test_second_signal_does_not_cut_the_rollback(tmp_path):
    child, target, marker = _waiting_run(tmp_path, abort_delay=1.0)
    t0 = time.monotonic()
    child.proc.send_signal(signal.SIGTERM)
    child.expect('ABORTING')
    child.proc.send_signal(signal.SIGINT)
    code = child.proc.wait(timeout=60)
    elapsed = time.monotonic() - t0
    print('SIGTERM then SIGINT during the rollback: ended %.3f s after the first signal '
          '(the rollback takes 1 s)' % elapsed)
    out = child.output()
    assert code == 143, out
    assert marker.read_text() == 'rolled back'
    assert not (tmp_path / 'out').exists()
    assert elapsed < 1.0 + BOUND


def test_signal_while_reading_answer_files(tmp_path):
    """Answer files of the allowed size, many of them: the signal arrives while they are
    parsed; nothing has run, nothing is changed."""
    conf = tmp_path / 'answers.conf'
    text = '[environment:default]\n' + ''.join('TEST/key%06d=str:value %d\n' % (i, i)
                                               for i in range(30000))
    conf.write_text(text[:1 << 20].rsplit('\n', 1)[0] + '\n')
    dot_d = tmp_path / 'answers.conf.d'
    dot_d.mkdir()
    for i in range(150):
        os.link(conf, dot_d / ('%03d.conf' % i))
    child = Child(tmp_path, WAITING_PLUGIN % {'target': str(tmp_path / 'never'),
                                               'marker': str(tmp_path / 'never-marker'),
                                               'abort_delay': 0},
                  args=['CORE/configFileAppend=str:%s' % conf])
    child.expect('Log file:')
    log_dir = tmp_path / 'log'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:      # plugins loaded: the answer files come next
        logs = list(log_dir.iterdir())
        if logs and 'SEQUENCE closeup' in logs[0].read_text():
            break
        time.sleep(0.01)
    code, elapsed = child.interrupt(signal.SIGTERM)
    print('SIGTERM while parsing answer files: ended %.3f s after the signal' % elapsed)
    out = child.output()
    assert elapsed < BOUND
    assert code == 143, out
    assert 'Interrupted by SIGTERM before anything ran: nothing was changed; log file:' in out
    assert 'WAITING' not in out and 'Stage:' not in out
