"""The base class of plugins."""
import logging


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
