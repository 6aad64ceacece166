"""Answer files written at cleanup: always a timestamped copy under the setup's state
directory, the --generate-answer file when given, /etc/ovirt-hosted-engine/answers.conf
only on success. Nothing is written when the run ended before all questions were answered.
"""
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.runner import BaseEnv, PluginBase, Priority, Stages, event
from ovirt_hosted_engine_setup.runner import answerfile


class Plugin(PluginBase):

    def __init__(self, context):
        super().__init__(context)
        self._answered = False

    @event(stage=Stages.VALIDATION, name=c.Events.ANSWERS_READY, priority=Priority.FIRST)
    def _answers_ready(self):
        self._answered = True

    @event(stage=Stages.CLEANUP, name=c.Events.ANSWER_FILES, priority=Priority.LAST,
           condition=lambda self: self._answered)
    def _write_answer_files(self):
        env = self.environment
        text = answerfile.render(env, self.context.keys.values(), 'hosted-engine --deploy')
        targets = [answerfile.timestamped_path(env[c.CoreEnv.ANSWER_FILE_DIR])]
        if env.get(c.CoreEnv.USER_ANSWER_FILE):
            targets.append(env[c.CoreEnv.USER_ANSWER_FILE])
        if not env[BaseEnv.ERROR] and env.get(c.CoreEnv.ETC_ANSWER_FILE):
            targets.append(env[c.CoreEnv.ETC_ANSWER_FILE])
        for path in targets:
            self.logger.info("Generating answer file '%s'", path)
            answerfile.write(path, text)
