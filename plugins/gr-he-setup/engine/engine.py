"""Questions of the engine section that need nothing from the host."""
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import adds_host
from ovirt_hosted_engine_setup.deploy import validators
from ovirt_hosted_engine_setup.runner import PluginBase, Priority, Stages, event

SECTION = dict(after=(c.Events.TITLE_S_ENGINE,), before=(c.Events.TITLE_E_ENGINE,))


class Plugin(PluginBase):

    @event(stage=Stages.INIT)
    def _init(self):
        env = self.environment
        env.setdefault(c.EngineEnv.ADMIN_USERNAME, c.DEFAULT_ADMIN_USER)
        env.setdefault(c.EngineEnv.ADMIN_PASSWORD, None)
        env.setdefault(c.NotifEnv.SMTP_SERVER, None)
        env.setdefault(c.NotifEnv.SMTP_PORT, None)
        env.setdefault(c.NotifEnv.SOURCE_EMAIL, None)
        env.setdefault(c.NotifEnv.DEST_EMAIL, None)

    @event(stage=Stages.CUSTOMIZATION, name=c.Events.ENGINE_PASSWORD, condition=adds_host,
           **SECTION)
    def _admin_password(self):
        env = self.environment
        if env[c.EngineEnv.ADMIN_PASSWORD] is None:
            env[c.EngineEnv.ADMIN_PASSWORD] = self.dialog.query_password(
                'ENGINE_ADMIN_PASSWORD', 'Enter engine admin password',
                'Confirm engine admin password')
        elif env[c.EngineEnv.ADMIN_PASSWORD] == '':
            raise ValueError('The engine admin password is empty; give a password')

    def _ask(self, key, name, note, default, validator):
        env = self.environment
        if env[key] is None:
            env[key] = self.dialog.query_string(name, note, default=default, validator=validator)

    @event(stage=Stages.CUSTOMIZATION, name=c.Events.NOTIFICATIONS, priority=Priority.DEFAULT,
           after=(c.Events.ENGINE_PASSWORD, c.Events.TITLE_S_ENGINE),
           before=(c.Events.TITLE_E_ENGINE,))
    def _notifications(self):
        self._ask(c.NotifEnv.SMTP_SERVER, 'DIALOG_SMTP_SERVER',
                  'Please provide the name of the SMTP server through which we will send '
                  'notifications', 'localhost', validators.host_address)
        self._ask(c.NotifEnv.SMTP_PORT, 'DIALOG_SMTP_PORT',
                  'Please provide the TCP port number of the SMTP server', '25',
                  validators.port)
        self.environment[c.NotifEnv.SMTP_PORT] = int(self.environment[c.NotifEnv.SMTP_PORT])
        self._ask(c.NotifEnv.SOURCE_EMAIL, 'DIALOG_SENDER_EMAIL',
                  'Please provide the email address from which notifications will be sent',
                  'root@localhost', validators.email)
        self._ask(c.NotifEnv.DEST_EMAIL, 'DIALOG_DEST_EMAIL',
                  'Please provide a comma-separated list of email addresses which will get '
                  'notifications', 'root@localhost', validators.emails)
