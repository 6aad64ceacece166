"""The backup archive: checked at setup (before any question and any change), checked
against the chosen appliance's engine version and the engine FQDN at validation, and the
restore's own questions (renew the engine CA, pause after adding this host)."""
import os

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup import health_page
from ovirt_hosted_engine_setup.deploy import engine_api, restore_backup
from ovirt_hosted_engine_setup.deploy.restore_engine import restoring
from ovirt_hosted_engine_setup.runner import PluginBase, Priority, Stages, event

OLD_ENGINE_TIMEOUT = 5      # seconds a still-running old engine has to answer its health page


def _bool(plugin, key, name, note):
    env = plugin.environment
    if env.get(key) is None:
        env[key] = plugin.dialog.query_yes_no(name, note, default=False)
    elif not isinstance(env[key], bool):
        raise ValueError('Invalid %s=%s: give bool:True or bool:False' % (key, env[key]))


class Plugin(PluginBase):

    @event(stage=Stages.INIT)
    def _init(self):
        env = self.environment
        for key in (c.CoreEnv.RESTORE_FROM_FILE, c.CoreEnv.RENEW_PKI_ON_RESTORE,
                    c.CoreEnv.PAUSE_ON_RESTORE, c.CoreEnv.BACKUP_INFO):
            env.setdefault(key, None)

    # before the deploy's first question: a bad archive is refused before anything is asked
    @event(stage=Stages.SETUP, priority=Priority.FIRST - 10, condition=restoring)
    def _check_archive(self):
        env = self.environment
        path = os.path.abspath(os.path.expanduser(str(env[c.CoreEnv.RESTORE_FROM_FILE])))
        env[c.CoreEnv.RESTORE_FROM_FILE] = path
        self.logger.info('Checking the engine backup %s', path)
        try:
            info = restore_backup.check_archive(path)
        except restore_backup.RestoreError as e:
            raise ValueError(str(e))
        env[c.CoreEnv.BACKUP_INFO] = info
        self.logger.info('The backup is of the engine %s, version %s: the new engine VM '
                         'will have that FQDN', info.fqdn, info.version_text)

    @event(stage=Stages.CUSTOMIZATION, condition=restoring,
           after=(c.Events.ENGINE_NAMES, c.Events.TITLE_S_ENGINE),
           before=(c.Events.ENGINE_PASSWORD, c.Events.TITLE_E_ENGINE))
    def _questions(self):
        _bool(self, c.CoreEnv.RENEW_PKI_ON_RESTORE, 'OVEHOSTED_RENEW_PKI',
              'Renew the PKI of the restored engine (engine-setup issues its certificates '
              'again; its CA is kept, so the hosts it manages keep trusting it)?')
        _bool(self, c.CoreEnv.PAUSE_ON_RESTORE, 'OVEHOSTED_PAUSE_ON_RESTORE',
              'Pause once this host is Up in the restored engine, to review the restored '
              'environment in the engine before the deploy goes on?')

    @event(stage=Stages.VALIDATION, condition=restoring)
    def _validate(self):
        env = self.environment
        info = env[c.CoreEnv.BACKUP_INFO]
        if env.get(c.CoreEnv.IS_ADDITIONAL_HOST):
            raise ValueError('--restore-from-file makes a new hosted engine from a backup, and '
                             'this host would join the hosted engine already deployed on the '
                             'storage: deploy without --restore-from-file, or give a new '
                             'storage domain for the restored engine')
        try:
            restore_backup.check_fqdn(info.fqdn, env.get(c.NetworkEnv.FQDN))
        except restore_backup.RestoreError as e:
            raise ValueError(str(e))
        try:
            checked = restore_backup.check_version(
                info, (env.get(c.VMEnv.OVF_INFO) or {}).get('engine_version'))
        except restore_backup.RestoreError as e:
            raise ValueError(str(e))
        if not checked:
            self.logger.warning('The appliance does not say which engine version it holds: '
                                'engine-backup in the engine VM checks the backup\'s version '
                                '%s when it restores it', info.version_text)
        reply = health_page.fetch(engine_api.http_base(info.fqdn), OLD_ENGINE_TIMEOUT)
        if reply.error is None:
            # a server answers at the engine's address: the old engine (or anything else
            # there) would clash with the new engine VM, which takes that address
            raise ValueError('The engine %s still answers at its address (its health page: '
                             'HTTP %s): stop the old engine first (systemctl stop ovirt-engine '
                             'on its server) and free its address, then deploy again'
                             % (info.fqdn, reply.status))
