"""Print `--== SECTION ==--` before the questions of each customization section.

Every section is bracketed by a start and an end event (constants.SECTIONS); a title is
printed only when some event is declared inside its section.
"""
from ovirt_hosted_engine_setup.deploy.constants import SECTIONS
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event


class Plugin(PluginBase):

    def _has_questions(self, start):
        return any(start in ev.after and ev.plugin is not self
                   for ev in self.context.sequence.get(Stages.CUSTOMIZATION, ()))

    def _title(self, title):
        self.dialog.note('\n--== %s ==--\n' % title)


def _make(title, start, end, previous_end):
    @event(stage=Stages.CUSTOMIZATION, name=start,
           after=(previous_end,) if previous_end else (),
           condition=lambda self: self._has_questions(start))
    def section_start(self):
        self._title(title)

    @event(stage=Stages.CUSTOMIZATION, name=end, after=(start,))
    def section_end(self):
        self.logger.debug('end of section %s', title)

    return section_start, section_end


_previous = None
for _index, (_title, _start, _end) in enumerate(SECTIONS):
    _s, _e = _make(_title, _start, _end, _previous)
    _s.__name__ = 'section%d_start' % _index
    _e.__name__ = 'section%d_end' % _index
    setattr(Plugin, _s.__name__, _s)
    setattr(Plugin, _e.__name__, _e)
    _previous = _end
