"""Defaults of the core keys and the final line.

Secret keys need no registration here: the runner filters every key flagged secret in
constants.py from the first log record on."""
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.runner import BaseEnv, PluginBase, Priority, Stages, event


class Plugin(PluginBase):

    @event(stage=Stages.INIT, priority=Priority.FIRST)
    def _init(self):
        env = self.environment
        env.setdefault(c.CoreEnv.DEPLOY_PROCEED, None)
        env.setdefault(c.CoreEnv.SCREEN_PROCEED, None)
        env.setdefault(c.CoreEnv.CONFIRM_SETTINGS, None)
        env.setdefault(c.CoreEnv.USER_ANSWER_FILE, None)
        env.setdefault(c.CoreEnv.ETC_ANSWER_FILE, paths.ETC_ANSWER_FILE)
        env.setdefault(c.CoreEnv.ANSWER_FILE_DIR, paths.ANSWERS_DIR)
        env.setdefault(c.CoreEnv.RESTORE_FROM_FILE, None)
        env.setdefault(c.CoreEnv.CHECK_REQUIREMENTS, True)
        env.setdefault(c.CoreEnv.TEMPDIR, '/var/tmp')
        env.setdefault(c.CoreEnv.SKIP_TTY_CHECK, False)

    @event(stage=Stages.TERMINATE, priority=Priority.LAST)
    def _terminate(self):
        env = self.environment
        if env.get(BaseEnv.INTERRUPTED):
            # the runner's own line says it: signal, what was rolled back, log; after the
            # commit, nothing is rolled back and the cleanup is needed
            if self.context.main_transaction.committed:
                self.logger.error('Hosted Engine deployment interrupted: %s',
                                  self.failure_advice())
            return
        if env[BaseEnv.ABORTED]:
            self.logger.error('Hosted Engine deployment aborted')
        elif env[BaseEnv.ERROR]:
            self.logger.error('Hosted Engine deployment failed: %s', self.failure_advice())
        else:
            self.logger.info('Hosted Engine successfully set up')

    def failure_advice(self):
        """What a failed deploy left on this host, and what to do. Changes are made in misc
        through the main transaction: rolled back on a failure before its commit; after the
        commit (closeup) they stay and ovirt-hosted-engine-cleanup removes them."""
        transaction = self.context.main_transaction
        if transaction.committed:
            return ('this host was changed: run ovirt-hosted-engine-cleanup, then '
                    'hosted-engine --deploy again (details in the log)')
        if transaction.rolled_back:
            return ('what this run created was rolled back (%s), so nothing was changed on '
                    'this host: fix the problem named above and run the deploy again'
                    % ', '.join(transaction.rolled_back))
        return ('nothing was changed on this host: fix the value or problem named above and '
                'run the deploy again')
