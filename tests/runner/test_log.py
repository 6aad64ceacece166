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


def test_secrets_set_late_substrings_and_removed(tmp_path):
    """A secret set in a late stage is filtered from then on; a secret containing another is
    replaced whole; a secret whose key is removed or changed stays filtered."""
    src = '''
class Plugin(PluginBase):
    @event(stage=Stages.MISC)
    def late(self):
        self.logger.debug('before: %s', 'LateSecret1')
        self.environment['TEST/pw'] = 'LateSecret1'
        self.logger.debug('after: %s', 'LateSecret1')
        self.environment['CORE/logFilterKeys'].append('TEST/short')
        self.environment['TEST/short'] = 'abc'
        self.environment['TEST/pw'] = 'xxabcdefxx'
        self.logger.debug('nested: [xxabcdefxx] [abc] [LateSecret1]')
        del self.environment['TEST/pw']
        self.environment['TEST/short'] = None
        self.logger.debug('removed: [xxabcdefxx] [abc]')
'''
    r = run(tmp_path, {'p': src}, keys=[EnvKey('TEST/pw', secret=True)])
    assert r.code == 0, r.output
    assert 'before: LateSecret1' in r.log          # not a secret yet
    assert 'after: **FILTERED**' in r.log
    assert 'nested: [**FILTERED**] [**FILTERED**] [**FILTERED**]' in r.log
    assert 'removed: [**FILTERED**] [**FILTERED**]' in r.log
    assert r.log.count('LateSecret1') == 1


def test_secret_filter_does_not_scan_the_environment():
    """Filtering a line reads the secret keys only, never the whole environment (a large
    answer file made every log line cost the size of the environment)."""
    import logging

    from ovirt_hosted_engine_setup.runner import log as runlog
    from ovirt_hosted_engine_setup.runner.context import Context
    from ovirt_hosted_engine_setup.runner.environment import Environment

    class NoScan(Environment):
        def _scan(self, *args):
            raise AssertionError('the environment was scanned')
        items = keys = values = __iter__ = _scan

    ctx = Context(groups=[], plugin_path=[], keys=[EnvKey('TEST/pw', secret=True)])
    ctx._defaults()
    env = NoScan(on_set=ctx._on_env_set)
    for key, value in dict.items(ctx.environment):
        env[key] = value
    ctx.environment = env
    for i in range(1000):
        env['OVEHOSTED_X/key%d' % i] = 'value %d' % i
    env['TEST/pw'] = 'S3cret'
    env['QUESTION/1/ROOT_PASSWORD'] = 'Typ3d'
    env['CORE/logFilterKeys'].append('TEST/listed')
    env['TEST/listed'] = 'L1sted'
    ctx.secret_filter.set_source(ctx._secret_values)
    formatter = runlog.FilteringFormatter(ctx.secret_filter)
    record = logging.LogRecord('x', logging.DEBUG, __file__, 1, 'a %s b %s c %s d %s',
                               ('S3cret', 'Typ3d', 'L1sted', 'value 7'), None)
    line = formatter.format(record)
    assert 'a **FILTERED** b **FILTERED** c **FILTERED** d value 7' in line
