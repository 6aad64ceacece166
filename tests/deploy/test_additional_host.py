"""What an additional host takes from the first host: its answers (this host's own win; host
specific keys never taken), the check that they come from this storage domain, and the
configuration volume read through the host agent API."""
import os

import pytest

from ovirt_hosted_engine_setup.deploy import additional_host as ah
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.he_storage import config_volume, heconf, layout

from . import plugin_packages

SD = '11111111-2222-3333-4444-555555555555'
CONF_IMG = 'aaaaaaaa-0000-0000-0000-000000000001'
CONF_VOL = 'aaaaaaaa-0000-0000-0000-000000000002'
OTHER_IMG = 'bbbbbbbb-0000-0000-0000-000000000001'
OTHER_VOL = 'bbbbbbbb-0000-0000-0000-000000000002'

FIRST_ANSWERS = """# written by the first host
[environment:default]
OVEHOSTED_CORE/deployProceed=bool:True
OVEHOSTED_CORE/isAdditionalHost=bool:False
OVEHOSTED_STORAGE/hostID=int:1
OVEHOSTED_STORAGE/storageDomainConnection=str:10.0.0.1:/first
OVEHOSTED_STORAGE/confImageUUID=str:%s
OVEHOSTED_NETWORK/fqdn=str:engine.example.test
OVEHOSTED_NETWORK/bridgeIf=str:eth0
OVEHOSTED_NETWORK/host_name=str:host1.example.test
OVEHOSTED_ENGINE/appHostName=str:host1
OVEHOSTED_ENGINE/clusterName=str:Default
OVEHOSTED_NOTIF/smtpPort=int:25
OVEHOSTED_VM/vmMemSizeMB=int:4096
""" % CONF_IMG


class FakeContext:
    def __init__(self, env=None, given=()):
        self.environment = dict(env or {})
        self.keys = {str(k): k for k in c.ALL_KEYS}
        self.given = set(given)

    def origin(self, key):
        return 'answer file x' if key in self.given else None


def test_merge_takes_shared_answers_and_leaves_host_specific_ones():
    ctx = FakeContext({c.NetworkEnv.BRIDGE_IF: 'eth7', c.VMEnv.MEM_SIZE_MB: 1024},
                      given={c.NetworkEnv.BRIDGE_IF})
    took = ah.merge_answers(ctx, FIRST_ANSWERS, 'fhanswers.conf')
    env = ctx.environment
    assert env[c.NetworkEnv.FQDN] == 'engine.example.test'
    assert env[c.EngineEnv.CLUSTER_NAME] == 'Default'
    assert env[c.NotifEnv.SMTP_PORT] == 25
    assert env[c.VMEnv.MEM_SIZE_MB] == 4096          # a plugin default: the first host's wins
    assert env[c.NetworkEnv.BRIDGE_IF] == 'eth7'     # this host's answer file wins
    for key in (c.StorageEnv.HOST_ID, c.NetworkEnv.HOST_NAME, c.EngineEnv.APP_HOST_NAME,
                c.StorageEnv.STORAGE_DOMAIN_CONNECTION, c.CoreEnv.DEPLOY_PROCEED,
                c.CoreEnv.IS_ADDITIONAL_HOST):
        assert key not in env, key
        assert key not in took
    assert c.NetworkEnv.FQDN in took


def test_merge_refuses_a_bad_value_naming_it():
    text = FIRST_ANSWERS.replace('int:25', 'int:99999')
    with pytest.raises(ah.AdditionalHostError, match='smtpPort.*99999.*first host'):
        ah.merge_answers(FakeContext(), text, 'fhanswers.conf')


def test_merge_refuses_text_that_is_not_an_answer_file():
    with pytest.raises(ah.AdditionalHostError, match='cannot be read'):
        ah.merge_answers(FakeContext(), 'OVEHOSTED_NETWORK/fqdn=str:x\n', 'fhanswers.conf')


def test_answers_of_another_storage_domain_are_refused():
    ctx = FakeContext()
    ah.merge_answers(ctx, FIRST_ANSWERS, 'answers.conf of host1')
    same = {'sdUUID': SD, 'storage': '/srv/he', 'conf_image_UUID': CONF_IMG}
    ah.check_same_domain(ctx.environment, same, 'answers.conf of host1')
    other = dict(same, conf_image_UUID=OTHER_IMG)
    with pytest.raises(ah.AdditionalHostError, match='another storage domain'):
        ah.check_same_domain(ctx.environment, other, 'answers.conf of host1')


class FakeAgent:
    """The host agent calls find_conf_volume makes, over a directory of images."""

    def __init__(self, images):
        self.images = images        # {img: {vol: description}}

    def call(self, method, **params):
        if method == 'StorageDomain.getImages':
            return list(self.images)
        if method == 'StorageDomain.getVolumes':
            return list(self.images[params['imageID']])
        if method == 'Volume.getInfo':
            return {'description': self.images[params['imageID']][params['volumeID']]}
        raise AssertionError(method)


def he_conf_text(sd=SD, vol=CONF_VOL):
    return heconf.render({'sdUUID': sd, 'storage': '/srv/he', 'domainType': 'localfs',
                          'conf_image_UUID': CONF_IMG, 'conf_volume_UUID': vol,
                          'host_id': '1', 'fqdn': 'engine.example.test'})


def write_volume(dc_dir, files):
    mnt = layout.mount_point('/srv/he', dc_dir)
    path = os.path.join(mnt, SD, 'images', CONF_IMG, CONF_VOL)
    os.makedirs(os.path.dirname(path))
    with open(path, 'wb') as f:
        f.write(bytes(layout.CONF_SIZE))
    cv = config_volume.ConfigVolume(path)
    cv.write(files, cv.checksum())


STORAGE = {'storage': '/srv/he', 'domainType': 'localfs'}


def test_configuration_volume_found_by_its_description_and_read(tmp_path):
    files = {'version': '1\n', 'fhanswers.conf': FIRST_ANSWERS, 'hosted-engine.conf':
             he_conf_text(), 'vm.conf': 'vmId=x\n', 'broker.conf': '[email]\n'}
    write_volume(str(tmp_path), files)
    agent = FakeAgent({OTHER_IMG: {OTHER_VOL: layout.METADATA_DESC},
                       CONF_IMG: {CONF_VOL: layout.CONF_DESC}})
    got = ah.read_configuration(agent, SD, STORAGE, str(tmp_path))
    assert got['fhanswers.conf'] == FIRST_ANSWERS
    assert got['vm.conf'] == 'vmId=x\n'


def test_no_configuration_volume(tmp_path):
    agent = FakeAgent({OTHER_IMG: {OTHER_VOL: layout.METADATA_DESC}})
    with pytest.raises(ah.AdditionalHostError, match='has no configuration volume'):
        ah.read_configuration(agent, SD, STORAGE, str(tmp_path))


def test_configuration_volume_without_vm_conf(tmp_path):
    write_volume(str(tmp_path), {'hosted-engine.conf': he_conf_text(), 'broker.conf': 'x\n'})
    agent = FakeAgent({CONF_IMG: {CONF_VOL: layout.CONF_DESC}})
    with pytest.raises(ah.AdditionalHostError, match='has no vm.conf'):
        ah.read_configuration(agent, SD, STORAGE, str(tmp_path))


def test_configuration_volume_copied_from_another_deploy(tmp_path):
    other_sd = '99999999-2222-3333-4444-555555555555'
    write_volume(str(tmp_path), {'hosted-engine.conf': he_conf_text(sd=other_sd),
                                 'vm.conf': 'x\n', 'broker.conf': 'x\n'})
    agent = FakeAgent({CONF_IMG: {CONF_VOL: layout.CONF_DESC}})
    with pytest.raises(ah.AdditionalHostError, match='describes storage domain %s' % other_sd):
        ah.read_configuration(agent, SD, STORAGE, str(tmp_path))


def test_host_conf_is_the_first_hosts_with_this_hosts_id_and_connection():
    first = {'sdUUID': SD, 'storage': '10.0.0.1:/he', 'host_id': '1', 'mnt_options': '',
             'ca_cert': '/a.pem', 'fqdn': 'engine.example.test'}
    conf = ah.host_conf(first, 3, {'storage': 'nfs.example.test:/he', 'mnt_options': 'vers=4'},
                        ca_file='/b.pem')
    assert conf == dict(first, host_id='3', storage='nfs.example.test:/he',
                        mnt_options='vers=4', ca_cert='/b.pem')
    assert first['host_id'] == '1'


def _load_additional_plugins():
    return plugin_packages.load('gr-he-setup', 'additional')


def validation_env(**extra):
    env = {c.CoreEnv.IS_ADDITIONAL_HOST: True, c.VDSMEnv.CPU: None, c.VDSMEnv.CAPS: {},
           c.NetworkEnv.FQDN: 'engine.example.test', c.EngineEnv.HOST_ADDED_BY_ENGINE: None}
    env.update(extra)
    return env


def test_engine_unreachable_from_this_host_is_refused_before_anything(monkeypatch):
    plugins = _load_additional_plugins()
    from ovirt_hosted_engine_setup.deploy import engine_api
    monkeypatch.setattr(engine_api, 'read_health', lambda base: (
        False, 'no answer from http://engine.example.test/ovirt-engine/services/health: '
               'timed out'))
    plugin = plugins.validate.Plugin(FakeContext(validation_env()))
    with pytest.raises(ah.AdditionalHostError) as e:
        plugin._validate()
    assert str(e.value).startswith(
        'The engine at engine.example.test does not answer its health page from this host '
        '(no answer from http://engine.example.test/ovirt-engine/services/health: timed out): '
        'check that this host resolves engine.example.test')


def test_a_cpu_type_this_host_cannot_run_is_refused(monkeypatch):
    plugins = _load_additional_plugins()
    from ovirt_hosted_engine_setup.deploy import engine_vm
    monkeypatch.setattr(engine_vm, 'supported_cpu_models', lambda caps: [('model_Nehalem', 'x')])
    plugin = plugins.validate.Plugin(FakeContext(validation_env(
        **{c.VDSMEnv.CPU: 'model_Skylake-Server'})))
    with pytest.raises(ah.AdditionalHostError, match='CPU type model_Skylake-Server'):
        plugin._validate()
