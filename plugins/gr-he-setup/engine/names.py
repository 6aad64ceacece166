"""HOSTED ENGINE CONFIGURATION: the data center and cluster this host joins in the engine,
the name of this host in the Administration Portal, and the closeup time limits.

Asked before the admin password, as the otopi-era deploy did. The time limits are not
asked: OVEHOSTED_ENGINE/engineSetupTimeout (engine-setup in the VM, 1800 s),
healthTimeout (the health page, 300 s) and hostUpTimeout (this host Up, 600 s) may be
given in an answer file or with --otopi-environment.
"""
import re

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import validators
from ovirt_hosted_engine_setup.deploy.additional_host import adds_host
from ovirt_hosted_engine_setup.deploy.restore_engine import restoring
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event

DEFAULT_ENGINE_SETUP_TIMEOUT = 1800
DEFAULT_HEALTH_TIMEOUT = 300
DEFAULT_HOST_UP_TIMEOUT = 600
RESTORE_NOTE = (' (the restored engine has the data centers and clusters of the backup: give '
                'the one this host belongs to, or a new name to create it)')
_HOST_NAME = re.compile(r'^[A-Za-z0-9_.-]{1,255}$')


def app_host_name(value):
    """This host's name in the engine: letters, digits, "_", "-" and "." (oVirt's rule)."""
    if not _HOST_NAME.match(str(value)):
        raise ValueError('%r is not a valid host name for the engine: use 1 to 255 letters, '
                         'digits, "_", "-" or "."' % (value,))


class Plugin(PluginBase):

    @event(stage=Stages.INIT)
    def _init(self):
        env = self.environment
        env.setdefault(c.EngineEnv.DATACENTER_NAME, None)
        env.setdefault(c.EngineEnv.CLUSTER_NAME, None)
        env.setdefault(c.EngineEnv.APP_HOST_NAME, None)
        env.setdefault(c.EngineEnv.ENGINE_SETUP_TIMEOUT, DEFAULT_ENGINE_SETUP_TIMEOUT)
        env.setdefault(c.EngineEnv.HEALTH_TIMEOUT, DEFAULT_HEALTH_TIMEOUT)
        env.setdefault(c.EngineEnv.HOST_UP_TIMEOUT, DEFAULT_HOST_UP_TIMEOUT)

    def _ask(self, key, name, note, default, validator):
        env = self.environment
        if env[key] is None:
            env[key] = self.dialog.query_string(name, note, default=default,
                                                validator=validator)
        else:
            # a value from an answer file or the command line: the same rule as typed
            try:
                validator(env[key])
            except ValueError as e:
                raise ValueError('Invalid value of %s: %s; fix it in the answer file'
                                 % (key, e))

    @event(stage=Stages.CUSTOMIZATION, name=c.Events.ENGINE_NAMES,
           after=(c.Events.TITLE_S_ENGINE,),
           before=(c.Events.ENGINE_PASSWORD, c.Events.TITLE_E_ENGINE))
    def _names(self):
        env = self.environment
        # a restored engine has the data centers and clusters of its backup: no default,
        # a name it does not have is created when this host is added
        restore = restoring(self)
        self._ask(c.EngineEnv.DATACENTER_NAME, 'OVEHOSTED_ENGINE_DATACENTER_NAME',
                  'Please enter the name of the data center where you want to deploy this '
                  'hosted-engine host%s' % (RESTORE_NOTE if restore else ''),
                  None if restore else c.DEFAULT_DATACENTER, validators.name)
        self._ask(c.EngineEnv.CLUSTER_NAME, 'OVEHOSTED_ENGINE_CLUSTER_NAME',
                  'Please enter the name of the cluster where you want to deploy this '
                  'hosted-engine host%s' % (RESTORE_NOTE if restore else ''),
                  None if restore else c.DEFAULT_CLUSTER, validators.name)
        host_id = env.get(c.StorageEnv.HOST_ID) or 1
        if adds_host(self):     # the engine names a host it adds itself
            self._ask(c.EngineEnv.APP_HOST_NAME, 'OVEHOSTED_APP_HOST_NAME',
                      'Enter the name which will be used to identify this host inside the '
                      'Administrator Portal', 'hosted_engine_%s' % host_id, app_host_name)
        for key in (c.EngineEnv.ENGINE_SETUP_TIMEOUT, c.EngineEnv.HEALTH_TIMEOUT,
                    c.EngineEnv.HOST_UP_TIMEOUT):
            try:
                env[key] = validators.positive_int(env[key])
            except ValueError as e:
                raise ValueError('Invalid value of %s: %s; give a number of seconds'
                                 % (key, e))
