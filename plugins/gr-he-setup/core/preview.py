"""`--== CONFIGURATION PREVIEW ==--`: every preview-flagged key with a value, then a final
confirmation before anything on the host is changed. Every preview-flagged key is read by a
plugin (tests/cli/test_cli.py checks it): the preview shows only values the deploy uses."""
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.runner import AbortError, PluginBase, Priority, Stages, event


def show(value):
    if isinstance(value, bool):
        return 'True' if value else 'False'
    if isinstance(value, (list, tuple)):
        return ', '.join(str(v) for v in value)
    return str(value)


class Plugin(PluginBase):

    @event(stage=Stages.VALIDATION, name=c.Events.PREVIEW, priority=Priority.LAST)
    def _preview(self):
        env = self.environment
        lines = ['', '--== CONFIGURATION PREVIEW ==--', '']
        for key in c.ALL_KEYS:
            if key.preview and env.get(key) is not None:
                text = (key.preview_text or show)(env[key])
                lines.append('%-35s: %s' % (key.preview, text))
        self.dialog.note('\n'.join(lines) + '\n')
        if env[c.CoreEnv.CONFIRM_SETTINGS] is None:
            env[c.CoreEnv.CONFIRM_SETTINGS] = self.dialog.query_yes_no(
                'CONFIRM_SETTINGS', 'Please confirm installation settings', default=True)
            if not env[c.CoreEnv.CONFIRM_SETTINGS]:
                raise AbortError('Aborted by user')
        if not env[c.CoreEnv.CONFIRM_SETTINGS]:
            raise self.declined(c.CoreEnv.CONFIRM_SETTINGS)
