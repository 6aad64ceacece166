"""STORAGE CONFIGURATION of an additional host: its host id (1..250).

The default is the next free id: neither in a metadata slot nor ever written in the
domain's sanlock lockspaces. An id a live host of another name uses is refused. An id
already known (a slot with this host's name, or of a host that is gone) is a re-deployment,
confirmed by the user (OVEHOSTED_CORE/additionalHostReDeployment in an answer file).
"""
import socket

from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.deploy import additional_host as ah
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import validators
from ovirt_hosted_engine_setup.ha import peers
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event

from .answers import ANSWERS

HOST_ID = 'ohosted.additional.hostid'
HOST_ID_NOTE = 'Enter the Host ID for this host (1-%d)' % validators.MAX_HOSTS
REDEPLOY_NOTE = ('The Host ID is already known (%s). Is this a re-deployment on the same '
                 'host?')


class Plugin(PluginBase):

    @event(stage=Stages.CUSTOMIZATION, name=HOST_ID, after=(ANSWERS,),
           before=(c.Events.TITLE_E_STORAGE,), condition=ah.additional_host)
    def _host_id(self):
        env = self.environment
        storage = ah.storage_conf(env)
        first = ah.first_host_conf(env[c.StorageEnv.SHARED_CONFIG])
        conf = ah.host_conf(first, 1, storage)
        with ah.connected(env[c.VDSMEnv.CLIENT], storage, self.logger):
            self._choose(conf)

    def _choose(self, conf):
        env = self.environment
        usage = peers.host_ids(conf, paths.DATA_CENTER_DIR, watch=False)
        for problem in usage.problems:
            self.logger.warning('Host ids: %s', problem)
        me = socket.gethostname()
        sanlock_name = peers.local_sanlock_name()
        self.logger.debug('host ids in use: %s', usage)

        judged = {}

        def live(hid):
            """Whether another host renews hid now (watched only for a known id)."""
            if hid not in judged:
                verdict = peers.find_alive(
                    conf, paths.DATA_CENTER_DIR, only={hid}, own_owner=sanlock_name,
                    progress=lambda text: self.logger.info('%s', text))
                judged[hid] = bool(verdict.alive)
            return judged[hid]

        def check(value):
            hid = validators.host_id(value)
            if hid > usage.max_host_id:
                raise ValueError('host id %d is beyond the %d slots of the metadata volume'
                                 % (hid, usage.max_host_id))
            if usage.classify(hid, me, sanlock_name) == peers.KNOWN_OTHER and live(hid):
                raise ValueError('host id %d is used by the live %s: choose another (the next '
                                 'free one is %s)' % (hid, usage.get(hid), usage.next_free()))
            return hid
        while True:
            typed = env.get(c.StorageEnv.HOST_ID) is None
            hid = self.ask_or_check(
                c.StorageEnv.HOST_ID, check,
                lambda: int(self.dialog.query_string('STORAGE_HOST_ID', HOST_ID_NOTE,
                                                     default=usage.next_free(),
                                                     validator=check)),
                ah.AdditionalHostError)
            kind = usage.classify(hid, me, sanlock_name)
            if kind == peers.FREE:
                break
            what = '%s, %s' % (usage.get(hid), 'this host' if kind == peers.SAME_HOST
                               else 'not live now')
            confirmed = env.get(c.CoreEnv.ADDITIONAL_HOST_REDEPLOYMENT)
            if confirmed is None and typed:
                confirmed = self.dialog.query_yes_no('STORAGE_REDEPLOYMENT',
                                                     REDEPLOY_NOTE % what, default=False)
            if confirmed:
                env[c.CoreEnv.ADDITIONAL_HOST_REDEPLOYMENT] = True
                self.logger.warning('Re-deploying this host with the known %s', what)
                break
            if not typed:
                raise ah.AdditionalHostError(
                    'The Host ID %d is already known (%s): give a free one (%s=int:%s), or '
                    'confirm a re-deployment on the same host with %s=bool:True'
                    % (hid, what, c.StorageEnv.HOST_ID, usage.next_free(),
                       c.CoreEnv.ADDITIONAL_HOST_REDEPLOYMENT))
            env[c.StorageEnv.HOST_ID] = None
        self.logger.info('This host joins storage domain %s with host id %d',
                         env[c.StorageEnv.SD_UUID], hid)
