"""The base class of plugins."""
import logging

from .errors import AbortError


class PluginBase:
    """A plugin: a short class whose @event methods say when they run."""

    def __init__(self, context):
        self.context = context
        self.logger = logging.getLogger('otopi.plugins.%s' % type(self).__module__)

    @property
    def environment(self):
        return self.context.environment

    @property
    def dialog(self):
        return self.context.dialog

    def declined(self, key, what='the deploy', consequence='nothing was changed on this host',
                 hint=''):
        """The AbortError for a confirmation declined by a preset value rather than a typed
        "No": it names the key and where it was set (answer file and line, or command line)."""
        where = self.context.origin(key)
        return AbortError('%s declined %s: %s=bool:False; %s (%sset it to True, or remove it '
                          'to be asked)' % ('The %s' % where if where else 'A preset value',
                                            what, key, consequence, hint))

    def ask_or_check(self, key, check, ask, error=ValueError):
        """environment[key]: asked when unset (``ask()`` validates what is typed), else the
        given value passed through ``check`` (returns the normalised value or raises
        ValueError), whose failure becomes ``error('KEY=value: reason')``."""
        env = self.environment
        if env.get(key) is None:
            env[key] = ask()
        else:
            try:
                env[key] = check(env[key])
            except ValueError as e:
                raise error('%s=%r: %s' % (key, env[key], e))
        return env[key]
