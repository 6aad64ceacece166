"""Event ordering and the load-time errors."""
from .helpers import run

TRACE = '''
class Plugin(PluginBase):
    def _rec(self, what):
        self.environment.setdefault('TEST/trace', []).append(what)
'''


def method(fn, stage='misc', **kw):
    args = ', '.join('%s=%s' % (k, v) for k, v in kw.items())
    return '''
    @event(stage=%r%s)
    def %s(self):
        self._rec(%r)
''' % (stage, (', ' + args) if args else '', fn, fn)


def test_priority_order_and_arithmetic(tmp_path):
    src = TRACE + method('late', priority='Priority.LOW') + method(
        'early', priority='Priority.HIGH') + method('earlier', priority='Priority.HIGH-10') + \
        method('default')
    r = run(tmp_path, {'p': src})
    assert r.env['TEST/trace'] == ['earlier', 'early', 'default', 'late']


def test_before_after_within_priority(tmp_path):
    src = TRACE + method('a', name="'ev.a'", after="('ev.c',)") + method(
        'b', name="'ev.b'", before="('ev.c',)") + method('c', name="'ev.c'")
    r = run(tmp_path, {'p': src})
    assert r.env['TEST/trace'] == ['b', 'c', 'a']


def test_ties_broken_by_dotted_path_deterministic(tmp_path):
    a = TRACE + method('zeta') + method('alpha')
    r1 = run(tmp_path / '1', {'p2': a, 'p1': a.replace('_rec(\'', '_rec(\'1')})
    assert r1.env['TEST/trace'] == ['1alpha', '1zeta', 'alpha', 'zeta']


def test_references_to_absent_events_are_ignored(tmp_path):
    src = TRACE + method('a', after="('not.loaded',)")
    assert run(tmp_path, {'p': src}).env['TEST/trace'] == ['a']


def test_after_event_of_earlier_stage_is_fine(tmp_path):
    src = TRACE + method('a', stage='setup', name="'ev.a'") + method('b', after="('ev.a',)")
    assert run(tmp_path, {'p': src}).env['TEST/trace'] == ['a', 'b']


def _load_error(tmp_path, src):
    r = run(tmp_path, {'p': src})
    assert r.code == 2
    errors = [line for line in r.output.splitlines() if 'ERROR' in line]
    assert len(errors) == 1
    assert 'Traceback' not in r.output
    assert 'TEST/trace' not in r.env          # no stage ran
    return errors[0]


def test_duplicate_name(tmp_path):
    line = _load_error(tmp_path, TRACE + method('a', name="'dup'") + method('b', name="'dup'"))
    assert "Duplicate event name 'dup'" in line


def test_cycle(tmp_path):
    line = _load_error(tmp_path, TRACE + method('a', name="'x'", after="('y',)") + method(
        'b', name="'y'", after="('x',)"))
    assert 'Cycle' in line and '(x)' in line and '(y)' in line


def test_contradiction_with_priority(tmp_path):
    line = _load_error(tmp_path, TRACE + method('a', name="'x'", priority='Priority.LOW',
                                                before="('y',)") + method('b', name="'y'"))
    assert 'priority' in line and "'y'" in line


def test_dependency_in_later_stage(tmp_path):
    line = _load_error(tmp_path, TRACE + method('a', stage='setup', name="'x'",
                                                after="('y',)") + method('b', name="'y'"))
    assert 'stage' in line and "'y'" in line


def test_plugin_import_error_is_one_line(tmp_path):
    line = _load_error(tmp_path, 'import no_such_module_here\n')
    assert 'no_such_module_here' in line


def test_missing_group(tmp_path):
    r = run(tmp_path, {'p': TRACE}, groups=['gr-does-not-exist'])
    assert r.code == 2
    assert 'Plugin group gr-does-not-exist not found' in r.output
