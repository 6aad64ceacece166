"""The deploy's glusterfs connection: the host agent is asked for the volume (GlusterVolume.list)
once the connection "server:/volume" is valid; replica 3 is taken, replica 1 only when the
user confirms it (asked, default No; OVEHOSTED_STORAGE/glusterReplica1Confirmed in an answer
file), any other replica count is refused, as are a volume that does not exist or is not
started and a server that does not answer, each in one line naming the server and the
volume. A typed connection that is refused is asked again; one from an answer file fails.

The host agent here answers with what the real verb answered against a real glusterd
(tests/hostd/test_gluster.py): the volumes of tests/hostd/data read by the host agent's
parser, and its error texts."""
import logging
import os

import pytest

from ovirt_hosted_engine_setup.api.errors import ServerError
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.hostd.storage import gluster

from .plugin_packages import Context, load

storage = load('gr-he-setup', 'storage').storage

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'hostd',
                    'data')
SERVER = '10.99.0.1'
KEY = 'OVEHOSTED_STORAGE/glusterReplica1Confirmed'


class HostAgent:
    """GlusterVolume.list of the gluster server 10.99.0.1 (volumes one, two, three)."""

    def __init__(self):
        self.calls = []

    def call(self, method, **params):
        self.calls.append((method, params))
        assert method == 'GlusterVolume.list'
        volume, server = params['volumeName'], params['remoteServer']
        if server != SERVER:
            raise ServerError(4105, 'gluster volume info %s --remote-host=%s failed (exit 1): '
                                    'Connection failed. Please check if gluster daemon is '
                                    'operational.' % (volume, server))
        path = os.path.join(DATA, 'gluster-volume-info-%s.xml' % volume)
        if not os.path.exists(path):
            path = os.path.join(DATA, 'gluster-volume-info-nosuch.xml')
        with open(path) as f:
            try:
                return {'volumes': gluster.parse_volume_info(
                    f.read(), 'gluster volume info %s --remote-host=%s' % (volume, server))}
            except gluster.VdsmError as e:
                raise ServerError(e.code, e.message)


def plugin(connection=None, answers=(), confirmed=None, dtype='glusterfs'):
    env = {c.StorageEnv.DOMAIN_TYPE: dtype, c.StorageEnv.STORAGE_DOMAIN_CONNECTION: connection,
           c.StorageEnv.MNT_OPTIONS: '', c.StorageEnv.GLUSTER_REPLICA_1_CONFIRMED: confirmed,
           c.VDSMEnv.CLIENT: HostAgent()}
    p = storage.Plugin(Context(env, answers))
    p.logger = logging.getLogger('test.gluster')
    return p


def asked(p):
    return [name for name, _note, _default in p.dialog.asked]


def refused(p):
    with pytest.raises(storage.StorageCheckError) as e:
        p._connection()
    return str(e.value)


def test_the_key_is_an_answer_file_bool_of_the_storage_section():
    key = c.StorageEnv.GLUSTER_REPLICA_1_CONFIRMED
    assert key == KEY and key.answer_file and key.kind == 'bool' and not key.secret


def test_replica_3_is_taken(caplog):
    p = plugin(answers=['10.99.0.1:/three'])
    with caplog.at_level(logging.INFO):
        p._connection()
    env = p.environment
    assert env[c.StorageEnv.STORAGE_DOMAIN_CONNECTION] == '10.99.0.1:/three'
    assert asked(p) == ['STORAGE_CONNECTION']
    assert env[c.VDSMEnv.CLIENT].calls == [
        ('GlusterVolume.list', {'volumeName': 'three', 'remoteServer': SERVER})]
    assert 'GlusterFS replica 3 volume three detected on 10.99.0.1' in caplog.messages
    assert 'Please note that replica 3 support is required for the shared storage.' in \
        caplog.messages
    # its three bricks are on one glusterd (one host UUID): oVirt's warning
    assert any('three distinct hosts are required' in m for m in caplog.messages)
    assert env[KEY] is None


def test_replica_1_typed_and_confirmed():
    p = plugin(answers=['10.99.0.1:/one', True])
    p._connection()
    assert p.environment[c.StorageEnv.STORAGE_DOMAIN_CONNECTION] == '10.99.0.1:/one'
    assert p.dialog.asked[1] == ('STORAGE_GLUSTER_REPLICA_1',
                                 'Continue with a replica 1 gluster volume?', False)
    assert p.environment[KEY] is True


def test_replica_1_typed_and_declined_asks_the_connection_again(caplog):
    p = plugin(answers=['10.99.0.1:/one', False, '10.99.0.1:/three'])
    with caplog.at_level(logging.WARNING):
        p._connection()
    assert asked(p) == ['STORAGE_CONNECTION', 'STORAGE_GLUSTER_REPLICA_1', 'STORAGE_CONNECTION']
    assert p.environment[c.StorageEnv.STORAGE_DOMAIN_CONNECTION] == '10.99.0.1:/three'
    assert p.environment[KEY] is None
    assert ('The gluster volume one on 10.99.0.1 has replica 1: its data has a single copy, '
            'which the loss of its brick loses; oVirt supports replica 3 for the hosted-engine '
            'storage') in caplog.messages


def test_replica_1_from_an_answer_file():
    # asked (default No): No fails the deploy in one line with the fix
    p = plugin('10.99.0.1:/one', answers=[False])
    assert refused(p) == (
        'The gluster volume one on 10.99.0.1 has replica 1, which was not confirmed: give a '
        'replica 3 volume, or confirm replica 1 with '
        'OVEHOSTED_STORAGE/glusterReplica1Confirmed=bool:True')
    assert asked(p) == ['STORAGE_GLUSTER_REPLICA_1']
    # confirmed in the answer file: not asked
    p = plugin('10.99.0.1:/one', confirmed=True)
    p._connection()
    assert asked(p) == [] and p.environment[KEY] is True
    # declined in the answer file: not asked, refused
    p = plugin('10.99.0.1:/one', confirmed=False)
    assert refused(p).startswith('The gluster volume one on 10.99.0.1 has replica 1, which '
                                 'was not confirmed')
    assert asked(p) == []
    p = plugin('10.99.0.1:/one', confirmed='maybe')
    assert refused(p) == ("OVEHOSTED_STORAGE/glusterReplica1Confirmed='maybe': give bool:True "
                          "or bool:False")


def test_replica_2_is_refused():
    msg = ('The gluster volume two on 10.99.0.1 has replica 2: the hosted-engine storage '
           'needs a replica 3 volume (replica 1 only when confirmed); give a replica 3 volume '
           '(gluster volume create NAME replica 3 SERVER1:BRICK SERVER2:BRICK SERVER3:BRICK)')
    p = plugin('10.99.0.1:/two')
    # the real volume "two" is not started: that is said first
    assert refused(p) == ('The gluster volume two on 10.99.0.1 is not started: start it '
                          '(gluster volume start two) and give it again')
    # started, it is refused for its replica count, even when replica 1 is confirmed
    agent = HostAgent()
    real_call = agent.call

    def started(method, **params):
        result = real_call(method, **params)
        for info in result['volumes'].values():
            info['volumeStatus'] = 'ONLINE'
        return result
    agent.call = started
    p = plugin('10.99.0.1:/two', confirmed=True)
    p.environment[c.VDSMEnv.CLIENT] = agent
    assert refused(p) == msg and asked(p) == []


def test_a_refused_typed_volume_is_asked_again(caplog):
    p = plugin(answers=['10.99.0.1:/two', '10.99.0.1:/three'])
    with caplog.at_level(logging.ERROR):
        p._connection()
    assert asked(p) == ['STORAGE_CONNECTION', 'STORAGE_CONNECTION']
    assert p.environment[c.StorageEnv.STORAGE_DOMAIN_CONNECTION] == '10.99.0.1:/three'
    assert caplog.messages == ['The gluster volume two on 10.99.0.1 is not started: start it '
                               '(gluster volume start two) and give it again']


def test_a_volume_that_does_not_exist():
    assert refused(plugin('10.99.0.1:/engine')) == (
        'The gluster volume engine was not found on 10.99.0.1: the host agent reports: gluster '
        'volume info engine --remote-host=10.99.0.1 failed: Volume does not exist (gluster '
        'error 30806) (code 4149): give an existing volume as 10.99.0.1:/volume (gluster '
        'volume list on 10.99.0.1 shows them)')


def test_a_server_that_does_not_answer():
    assert refused(plugin('10.99.0.9:/three')) == (
        'Cannot read the gluster volume three from 10.99.0.9: the host agent reports: gluster '
        'volume info three --remote-host=10.99.0.9 failed (exit 1): Connection failed. Please '
        'check if gluster daemon is operational. (code 4105): check that 10.99.0.9 is a gluster '
        'server this host reaches, with glusterd running')


def test_a_host_agent_without_the_gluster_verb():
    class NoGluster:
        def call(self, method, **params):
            raise ServerError(-32601, 'Method not found: GlusterVolume.list')
    p = plugin('10.99.0.1:/three')
    p.environment[c.VDSMEnv.CLIENT] = NoGluster()
    assert refused(p) == (
        'The host agent cannot read the gluster volume three from 10.99.0.1: it does not '
        'serve GlusterVolume.list; install its gluster support (vdsm-gluster for VDSM)')


def test_other_storage_types_do_not_ask_gluster():
    p = plugin('nfs.example.com:/exports/he', dtype='nfs')
    p._connection()
    assert p.environment[c.VDSMEnv.CLIENT].calls == []


def test_backup_volfile_servers_in_the_mount_options():
    from ovirt_hosted_engine_setup.deploy import storage_checks as sc
    assert sc.mount_options('glusterfs', None, 'backup-volfile-servers=g2:g3') == \
        'backup-volfile-servers=g2:g3'
    for bad, why in (('backup-volfile-servers=', 'names no server'),
                     ('backup-volfile-servers=g2::g3', 'names no server'),
                     ('backup-volfile-servers=g2:bad_name!', 'is neither an IP address')):
        with pytest.raises(ValueError, match=why):
            sc.mount_options('glusterfs', None, bad)
    # other types are not checked for it
    assert sc.mount_options('posixfs', None, 'backup-volfile-servers=') == \
        'backup-volfile-servers='


def test_the_lab_gluster_answer_file():
    from ovirt_hosted_engine_setup.deploy import storage_checks as sc
    from ovirt_hosted_engine_setup.he_storage import layout
    from ovirt_hosted_engine_setup.runner import config
    top = os.path.dirname(os.path.dirname(os.path.dirname(DATA)))     # the checkout

    def answers(name):
        return {key: value for _s, key, value, _w, _warn in config.parse_file(
            os.path.join(top, 'examples', name))}
    gluster_lab, lab = answers('lab-gluster-answers.conf'), answers('lab-answers.conf')
    storage_keys = {c.StorageEnv.DOMAIN_TYPE, c.StorageEnv.STORAGE_DOMAIN_CONNECTION,
                    c.StorageEnv.MNT_OPTIONS}
    # the lab's answers but the storage
    assert {k: v for k, v in gluster_lab.items() if k not in storage_keys} == \
        {k: v for k, v in lab.items() if k not in storage_keys}
    assert gluster_lab[c.StorageEnv.DOMAIN_TYPE] == 'glusterfs'
    connection = sc.connection('glusterfs', gluster_lab[c.StorageEnv.STORAGE_DOMAIN_CONNECTION])
    assert connection == 'host1:/engine'
    assert layout.gluster_volume(connection) == ('host1', 'engine')
    assert sc.mount_options('glusterfs', None, gluster_lab[c.StorageEnv.MNT_OPTIONS]) == ''
