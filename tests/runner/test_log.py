"""Secret filtering in the log."""
from ovirt_hosted_engine_setup.runner.keys import EnvKey

from .helpers import run

LEAKY = '''
class Plugin(PluginBase):
    @event(stage=Stages.MISC)
    def leak(self):
        self.logger.debug('value of secret: %s', self.environment.get('TEST/pw'))
        self.logger.debug('registered: %s', self.environment.get('TEST/other'))
        self.logger.debug('key:\\n-----BEGIN RSA PRIVATE KEY-----\\nMIIEabc\\n'
                          '-----END RSA PRIVATE KEY-----\\nend')
        pw = self.dialog.query_string('PW', 'Password', hidden=True)
        self.logger.info('typed %s', pw)
'''


def test_secrets_filtered(tmp_path):
    r = run(tmp_path, {'p': LEAKY}, keys=[EnvKey('TEST/pw', secret=True)],
            assignments=['TEST/pw=str:Sup3rSecret', 'TEST/other=str:An0ther',
                         'CORE/logFilterKeys=multi-str:TEST/other'], stdin='Typ3dSecret\n')
    assert r.code == 0, r.output
    for secret in ('Sup3rSecret', 'An0ther', 'Typ3dSecret', 'MIIEabc'):
        assert secret not in r.log
        assert secret not in r.output
    assert r.log.count('**FILTERED**') >= 4


def test_preseeded_password_answers_filtered(tmp_path):
    src = '''
class Plugin(PluginBase):
    @event(stage=Stages.CUSTOMIZATION)
    def ask(self):
        self.environment['TEST/x'] = self.dialog.query_string('ROOT_PASSWORD', 'Pw', hidden=True)
'''
    r = run(tmp_path, {'p': src}, assignments=['QUESTION/1/ROOT_PASSWORD=str:Pre5eeded'])
    assert r.code == 0
    assert 'Pre5eeded' not in r.log and 'Pre5eeded' not in r.output
