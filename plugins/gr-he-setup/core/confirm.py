"""The deploy's first questions: are you sure, and are you safe from a dropped SSH session.

A "No" typed at a question is "Aborted by user"; a False given in an answer file or on the
command line is reported as such, naming the key and where it was set."""
import os

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.runner import AbortError, PluginBase, Priority, Stages, event

PROCEED_NOTE = ('Continuing will configure this host for serving as hypervisor and create a VM '
                'where the Engine will be installed afterwards.\n'
                'Are you sure you want to continue?')
SCREEN_NOTE = ('It has been detected that this program is executed through an SSH connection '
               'without using tmux or screen.\n'
               'Continuing with the installation may lead to broken installation if the '
               'network connection fails.\n'
               'It is highly recommended to abort the installation and run it inside a tmux '
               'or screen session using the command "tmux".\n'
               'Do you want to continue anyway?')


class Plugin(PluginBase):

    @event(stage=Stages.SETUP, priority=Priority.FIRST)
    def _confirm_deploy(self):
        env = self.environment
        if env[c.CoreEnv.DEPLOY_PROCEED] is None:
            env[c.CoreEnv.DEPLOY_PROCEED] = self.dialog.query_yes_no(
                'DEPLOY_PROCEED', PROCEED_NOTE, default=True)
            if not env[c.CoreEnv.DEPLOY_PROCEED]:
                raise AbortError('Aborted by user')
        if not env[c.CoreEnv.DEPLOY_PROCEED]:
            raise self.declined(c.CoreEnv.DEPLOY_PROCEED)

    @staticmethod
    def over_ssh_without_multiplexer():
        over_ssh = bool(os.environ.get('SSH_CONNECTION') or os.environ.get('SSH_CLIENT'))
        multiplexed = bool(os.environ.get('TMUX') or os.environ.get('STY'))
        return over_ssh and not multiplexed

    @event(stage=Stages.SETUP, priority=Priority.FIRST + 1,
           condition=lambda self: (not self.environment[c.CoreEnv.SKIP_TTY_CHECK]
                                   and self.over_ssh_without_multiplexer()))
    def _confirm_screen(self):
        env = self.environment
        if env[c.CoreEnv.SCREEN_PROCEED] is None:
            env[c.CoreEnv.SCREEN_PROCEED] = self.dialog.query_yes_no(
                'SCREEN_PROCEED', SCREEN_NOTE, default=False)
            if not env[c.CoreEnv.SCREEN_PROCEED]:
                raise AbortError('Aborted by user: run the deploy inside tmux or screen')
        if not env[c.CoreEnv.SCREEN_PROCEED]:
            raise self.declined(c.CoreEnv.SCREEN_PROCEED,
                                hint='run the deploy inside tmux or screen, or ')
