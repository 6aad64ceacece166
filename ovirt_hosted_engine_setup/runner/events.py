"""The event decorator and the ordering of events inside the stages."""
import collections

from .constants import STAGE_BY_ID, Priority
from .errors import PluginLoadError


def event(stage, name=None, before=(), after=(), priority=Priority.DEFAULT, condition=None):
    """Declare a plugin method as an event of ``stage``.

    name: unique name others may refer to in before/after.
    before, after: tuples of event names this one must run before/after.
    priority: lower runs earlier (Priority.FIRST ... Priority.LAST, arithmetic allowed).
    condition: callable(self) evaluated just before running; false skips the event.
    """
    if stage not in STAGE_BY_ID:
        raise ValueError('unknown stage %r' % (stage,))

    def mark(fn):
        fn.runner_event = {
            'stage': stage, 'name': name, 'before': tuple(before), 'after': tuple(after),
            'priority': int(priority), 'condition': condition,
        }
        return fn
    return mark


class Event:
    """One bound event method of a loaded plugin."""

    def __init__(self, plugin, method, meta):
        self.plugin = plugin
        self.method = method
        self.stage = meta['stage']
        self.name = meta['name']
        self.before = meta['before']
        self.after = meta['after']
        self.priority = meta['priority']
        self.condition = meta['condition']
        cls = type(plugin)
        self.path = '%s.%s.%s' % (cls.__module__, cls.__name__, method.__name__)

    @property
    def label(self):
        return '%s (%s)' % (self.path, self.name) if self.name else self.path

    def __repr__(self):
        return '<Event %s>' % self.label


def collect(plugins):
    """All events of the given plugin instances."""
    events = []
    for plugin in plugins:
        for attr in sorted(dir(type(plugin))):
            fn = getattr(type(plugin), attr, None)
            meta = getattr(fn, 'runner_event', None)
            if meta is not None:
                events.append(Event(plugin, getattr(plugin, attr), meta))
    return events


def order(events):
    """{stage id: [events in run order]}; raises PluginLoadError on bad declarations."""
    by_name = {}
    for ev in events:
        if ev.name is None:
            continue
        if ev.name in by_name:
            raise PluginLoadError('Duplicate event name %r: declared by %s and %s'
                                  % (ev.name, by_name[ev.name].path, ev.path))
        by_name[ev.name] = ev

    edges = collections.defaultdict(set)   # a -> b : a runs before b
    for ev in events:
        for ref, first_is_ev in [(r, True) for r in ev.before] + [(r, False) for r in ev.after]:
            other = by_name.get(ref)
            if other is None:
                continue   # refers to a plugin not loaded in this run
            first, second = (ev, other) if first_is_ev else (other, ev)
            rel = 'before' if first_is_ev else 'after'
            s1 = STAGE_BY_ID[first.stage].index
            s2 = STAGE_BY_ID[second.stage].index
            if s1 > s2:
                raise PluginLoadError(
                    'Event %s (stage %s) is declared to run %s %r of the %s stage, which '
                    'the stage order makes impossible'
                    % (ev.label, ev.stage, rel, ref, other.stage))
            if s1 < s2:
                continue
            if first.priority > second.priority:
                raise PluginLoadError(
                    'Event %s is declared %s %r, but its priority %d contradicts %d of %s'
                    % (ev.label, rel, ref, ev.priority, other.priority, other.label))
            edges[first].add(second)

    result = {}
    for stage in STAGE_BY_ID:
        stage_events = [e for e in events if e.stage == stage]
        result[stage] = _toposort(stage_events, edges)
    return result


def _toposort(stage_events, edges):
    key = (lambda e: (e.priority, e.path))
    incoming = {e: 0 for e in stage_events}
    for a in stage_events:
        for b in edges.get(a, ()):
            if b in incoming:
                incoming[b] += 1
    ready = sorted((e for e in stage_events if incoming[e] == 0), key=key)
    out = []
    while ready:
        ev = ready.pop(0)
        out.append(ev)
        for b in sorted(edges.get(ev, ()), key=key):
            if b in incoming:
                incoming[b] -= 1
                if incoming[b] == 0:
                    ready.append(b)
        ready.sort(key=key)
    if len(out) != len(stage_events):
        stuck = sorted((e for e in stage_events if e not in out), key=key)
        raise PluginLoadError('Cycle in before/after declarations between: %s'
                              % ', '.join(e.label for e in stuck))
    return out
