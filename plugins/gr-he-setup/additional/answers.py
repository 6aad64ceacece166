"""STORAGE CONFIGURATION, right after the storage check found the deployed storage domain:
the first host's hosted-engine configuration and answers.

The configuration volume of the domain gives hosted-engine.conf, vm.conf, broker.conf and
the first host's answers (fhanswers.conf). The answers come from there (oVirt 3.6 and
later) unless OVEHOSTED_FIRST_HOST/fetchAnswer or skipSharedStorageAF says otherwise or the
volume has none: then from the first host's /etc/ovirt-hosted-engine/answers.conf over SFTP
(first host address, SSH port, its host key fingerprint confirmed, its root password).
This host's own answers always win over the first host's.
"""
from ovirt_hosted_engine_setup.deploy import additional_host as ah
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import first_host, validators
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event

STORAGE_CHECK = 'ohosted.storage.check'
ANSWERS = 'ohosted.additional.answers'

FETCH_NOTE = ('The configuration volume on the shared storage has no answers of the first '
              'host. Do you want to fetch them from the first host over SSH?')
FIRST_HOST_NOTE = 'Please provide the FQDN or IP address of the first host'
PORT_NOTE = 'Please provide the SSH port of the first host'
KEY_NOTE = ('The SSH host key of %s:%d is %s %s.\nIs this the key of the first host '
            '(compare with ssh-keygen -lf /etc/ssh/ssh_host_*.pub there)?')
PASSWORD_NOTE = 'Enter the root password of the first host %s'


class Plugin(PluginBase):

    @event(stage=Stages.INIT)
    def _init(self):
        env = self.environment
        for key in (c.CoreEnv.IS_ADDITIONAL_HOST, c.CoreEnv.ADDITIONAL_HOST_REDEPLOYMENT,
                    c.FirstHostEnv.FETCH_ANSWER, c.FirstHostEnv.SKIP_SHARED_STORAGE_AF,
                    c.FirstHostEnv.FQDN, c.FirstHostEnv.ROOT_PASSWORD,
                    c.FirstHostEnv.SSH_FINGERPRINT, c.FirstHostEnv.ANSWERS_SOURCE,
                    c.StorageEnv.SHARED_CONFIG, c.EngineEnv.HOST_ADDED_BY_ENGINE):
            env.setdefault(key, None)
        env.setdefault(c.FirstHostEnv.SSHD_PORT, 22)

    @event(stage=Stages.CUSTOMIZATION, name=ANSWERS, after=(STORAGE_CHECK,),
           before=(c.Events.TITLE_E_STORAGE,), condition=ah.additional_host)
    def _answers(self):
        env = self.environment
        sd = env[c.StorageEnv.SD_UUID]
        storage = ah.storage_conf(env)
        self.logger.info('Reading the hosted-engine configuration of storage domain %s', sd)
        with ah.connected(env[c.VDSMEnv.CLIENT], storage, self.logger):
            files = ah.read_configuration(env[c.VDSMEnv.CLIENT], sd, storage)
        env[c.StorageEnv.SHARED_CONFIG] = files
        first = ah.host_conf(ah.first_host_conf(files), 1, storage)
        use_sftp = bool(env[c.FirstHostEnv.FETCH_ANSWER] or
                        env[c.FirstHostEnv.SKIP_SHARED_STORAGE_AF])
        if not use_sftp and not files.get('fhanswers.conf'):
            if env[c.FirstHostEnv.FETCH_ANSWER] is False or not self.dialog.query_yes_no(
                    'FIRST_HOST_FETCH', FETCH_NOTE, default=True):
                raise ah.AdditionalHostError(
                    'The configuration volume of storage domain %s has no answers of the first '
                    'host (fhanswers.conf): fetch them over SSH from the first host (%s=bool:True '
                    'and %s)' % (sd, c.FirstHostEnv.FETCH_ANSWER, c.FirstHostEnv.FQDN))
            use_sftp = True
        if use_sftp:
            text = self._fetch()
            source = 'answers.conf of %s' % env[c.FirstHostEnv.FQDN]
        else:
            text = files['fhanswers.conf']
            source = 'fhanswers.conf on storage domain %s' % sd
        took = ah.merge_answers(self.context, text, source)
        ah.check_same_domain(env, first, source)
        env[c.FirstHostEnv.ANSWERS_SOURCE] = source
        self.logger.info('The first host\'s answers (%s): %d values taken', source, len(took))
        self.logger.debug('taken from the first host: %s', ', '.join(sorted(took)))

    def _fetch(self):
        env = self.environment

        def address(value):
            validators.host_address(str(value).strip())
            return str(value).strip()

        def port(value):
            validators.port(value)
            return int(value)
        host = self.ask_or_check(c.FirstHostEnv.FQDN, address, lambda: self.dialog.query_string(
            'FIRST_HOST_FQDN', FIRST_HOST_NOTE, validator=address), ah.AdditionalHostError)
        sshd_port = self.ask_or_check(c.FirstHostEnv.SSHD_PORT, port,
                                      lambda: int(self.dialog.query_string(
                                          'FIRST_HOST_SSHD_PORT', PORT_NOTE, default='22',
                                          validator=port)), ah.AdditionalHostError)
        try:
            key_type, offered = first_host.host_key(host, sshd_port)
        except first_host.FirstHostError as e:
            raise ah.AdditionalHostError(str(e))
        expected = env[c.FirstHostEnv.SSH_FINGERPRINT]
        if expected is None:
            if not self.dialog.query_yes_no('FIRST_HOST_SSH_KEY',
                                            KEY_NOTE % (host, sshd_port, key_type, offered),
                                            default=False):
                raise ah.AdditionalHostError(
                    'The SSH host key %s of %s was not confirmed: check it on the first host '
                    '(ssh-keygen -lf /etc/ssh/ssh_host_*.pub) and deploy again' % (offered,
                                                                                   host))
            env[c.FirstHostEnv.SSH_FINGERPRINT] = offered
        elif expected != offered:
            raise ah.AdditionalHostError(
                'The SSH host key of %s changed: %s expects %s, the host offers %s: if the '
                'first host was reinstalled, give its new fingerprint; otherwise do not '
                'continue' % (host, c.FirstHostEnv.SSH_FINGERPRINT, expected, offered))
        self.logger.info('The SSH host key of %s is %s %s', host, key_type, offered)
        while True:
            typed = env[c.FirstHostEnv.ROOT_PASSWORD] is None
            if typed:
                env[c.FirstHostEnv.ROOT_PASSWORD] = self.dialog.query_string(
                    'FIRST_HOST_ROOT_PASSWORD', PASSWORD_NOTE % host, hidden=True)
            try:
                return first_host.fetch_answers(host, sshd_port,
                                                env[c.FirstHostEnv.ROOT_PASSWORD],
                                                env[c.FirstHostEnv.SSH_FINGERPRINT])
            except first_host.PasswordRefused as e:
                if typed:
                    self.logger.error('%s', e)
                    env[c.FirstHostEnv.ROOT_PASSWORD] = None
                    continue
                raise ah.AdditionalHostError('%s (%s)' % (str(e).replace(': type it again', ''),
                                                          c.FirstHostEnv.ROOT_PASSWORD)
                                             + ': give the right one, or leave it out to type it')
            except first_host.FirstHostError as e:
                raise ah.AdditionalHostError(str(e))
