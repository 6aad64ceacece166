"""GlusterVolume.list and the GLUSTERFS connections of the host agent: the gluster CLI's XML
(real output of glusterfs 10, tests/hostd/data) read as VDSM reads it, and the verb and the
connections against a real glusterd (tests/hostd/gluster_ns.py, in namespaces of its own):
volumes of replica 1, 2 and 3, a volume that does not exist, a server that cannot be reached,
the mount point under mnt/glusterSD and the backup-volfile-servers of the mount."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from ovirt_hosted_engine_setup.api.schema import error_code
from ovirt_hosted_engine_setup.hostd.api_base import VdsmError
from ovirt_hosted_engine_setup.hostd.storage import connections, gluster

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SERVERS = ('10.99.0.1', '10.99.0.2', '10.99.0.3')


def xml(name):
    with open(os.path.join(HERE, 'data', 'gluster-volume-info-%s.xml' % name)) as f:
        return f.read()


def test_the_command_is_vdsm_s():
    assert gluster.volume_info_command('engine', 'host1') == [
        'gluster', '--mode=script', 'volume', 'info', 'engine', '--remote-host=host1', '--xml']
    assert gluster.volume_info_command() == ['gluster', '--mode=script', 'volume', 'info',
                                             '--xml']


def test_a_replica_1_volume():
    info = gluster.parse_volume_info(xml('one'))['one']
    assert info['replicaCount'] == '1' and info['brickCount'] == '1'
    assert info['volumeType'] == 'DISTRIBUTE' and info['volumeStatus'] == 'ONLINE'
    assert info['bricks'] == ['10.99.0.1:/tmp/glx/w/bricks/one']
    assert info['bricksInfo'] == [{'name': '10.99.0.1:/tmp/glx/w/bricks/one',
                                   'hostUuid': 'b3b0a5b6-aa0e-4b68-b49f-2cf73f22ac4e',
                                   'isArbiter': False}]
    assert info['uuid'] == '63f19193-3543-4160-b7c3-90edd33d359e'
    assert info['transportType'] == ['TCP'] and info['isArbiter'] is False
    assert info['options']['nfs.disable'] == 'on'
    assert gluster.backup_volfile_servers(info, '10.99.0.1') == ''


def test_a_replica_3_volume_and_its_backup_servers():
    info = gluster.parse_volume_info(xml('three'))['three']
    assert (info['replicaCount'], info['volumeType'], info['volumeStatus']) == (
        '3', 'REPLICATE', 'ONLINE')
    assert gluster.brick_servers(info) == list(SERVERS)
    assert gluster.backup_volfile_servers(info, '10.99.0.1') == \
        'backup-volfile-servers=10.99.0.2:10.99.0.3'
    assert gluster.backup_volfile_servers(info, '10.99.0.2') == \
        'backup-volfile-servers=10.99.0.1:10.99.0.3'
    # a server that holds no brick (a name of the same host, say): every brick server
    assert gluster.backup_volfile_servers(info, 'gluster.example.com') == \
        'backup-volfile-servers=10.99.0.1:10.99.0.2:10.99.0.3'


def test_a_replica_2_volume_not_started():
    info = gluster.parse_volume_info(xml('two'))['two']
    assert (info['replicaCount'], info['volumeType'], info['volumeStatus']) == (
        '2', 'REPLICATE', 'OFFLINE')


def test_errors_are_vdsm_s_gluster_errors():
    with pytest.raises(VdsmError) as e:
        gluster.parse_volume_info(xml('nosuch'), 'gluster volume info nosuch')
    assert e.value.code == error_code('GlusterVolumesListFailedException') == 4149
    assert e.value.message == ('gluster volume info nosuch failed: Volume does not exist '
                               '(gluster error 30806)')
    for garbage in ('Connection failed. Please check if gluster daemon is operational.',
                    '<cliOutput><volInfo/></cliOutput>', ''):
        with pytest.raises(VdsmError) as e:
            gluster.parse_volume_info(garbage)
        assert e.value.code == error_code('GlusterXmlErrorException') == 4106
    # a volume the XML describes without its replica count is not taken for replica 1
    broken = xml('one').replace('<replicaCount>1</replicaCount>', '')
    with pytest.raises(VdsmError) as e:
        gluster.parse_volume_info(broken)
    assert e.value.code == 4106 and 'without name or replicaCount' in e.value.message


def test_without_the_gluster_command(monkeypatch):
    monkeypatch.setattr(gluster, 'GLUSTER', 'gluster-not-installed-here')
    with pytest.raises(VdsmError) as e:
        gluster.volume_info('engine', 'host1')
    assert e.value.code == error_code('GlusterCmdExecFailedException') == 4105
    assert e.value.message == ('the gluster command is not installed on this host: install '
                               'the gluster CLI (package glusterfs-cli)')
    # a connection still mounts, without backup servers (as VDSM does without the CLI)
    assert connections.gluster_mount_options('host1:/engine', 'log-level=WARNING') == \
        'log-level=WARNING'


def test_a_gluster_server_that_does_not_answer_in_time(monkeypatch, tmp_path):
    slow = tmp_path / 'gluster'
    slow.write_text('#!/bin/sh\nexec sleep 30\n')
    slow.chmod(0o755)
    monkeypatch.setattr(gluster, 'GLUSTER', str(slow))
    with pytest.raises(VdsmError) as e:
        gluster.volume_info('engine', 'host1', timeout=1)
    assert e.value.code == 4105
    assert e.value.message == ('gluster volume info engine --remote-host=host1 gave no answer '
                               'within 1 s: check that glusterd runs on host1 and that this '
                               'host reaches it')


def test_the_admin_s_backup_servers_are_kept_as_given(monkeypatch):
    monkeypatch.setattr(gluster, 'GLUSTER', 'gluster-not-installed-here')
    opts = 'backup-volfile-servers=g2:g3,log-level=WARNING'
    assert connections.gluster_mount_options('g1:/engine', opts) == opts


# ----------------------------------------------------------------- a real glusterd

@pytest.fixture(scope='module')
def real_gluster(tmp_path_factory):
    """What tests/hostd/gluster_ns.py saw (one run for the module)."""
    for tool in ('unshare', 'glusterd', 'gluster', 'mount.glusterfs', 'ip'):
        if shutil.which(tool) is None:
            pytest.skip('%s is not installed' % tool)
    if not os.path.exists('/dev/fuse'):
        pytest.skip('no /dev/fuse for the gluster mount')
    work = str(tmp_path_factory.mktemp('gluster'))
    env = dict(os.environ, PYTHONPATH=TOP)
    p = subprocess.run(['unshare', '--net', '--mount', '--pid', '--fork', '--mount-proc',
                        '--propagation', 'private', sys.executable,
                        os.path.join(HERE, 'gluster_ns.py'), work],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=env, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout), work


def test_the_verb_against_a_real_glusterd(real_gluster):
    seen, work = real_gluster
    lists = seen['lists']
    one = lists['one']['result']['volumes']['one']
    assert (one['replicaCount'], one['volumeStatus']) == ('1', 'ONLINE')
    assert one['bricks'] == ['10.99.0.1:%s/bricks/one' % work]
    three = lists['three']['result']['volumes']['three']
    assert (three['replicaCount'], three['volumeType'], three['brickCount']) == (
        '3', 'REPLICATE', '3')
    assert gluster.brick_servers(three) == list(SERVERS)
    two = lists['two']['result']['volumes']['two']
    assert (two['replicaCount'], two['volumeStatus']) == ('2', 'OFFLINE')
    assert lists['nosuch'] == {
        'code': 4149, 'message': 'gluster volume info nosuch --remote-host=10.99.0.1 failed: '
                                 'Volume does not exist (gluster error 30806)'}
    assert lists['unreachable']['code'] == 4105
    assert lists['unreachable']['message'].startswith(
        'gluster volume info one --remote-host=10.99.0.9 failed (exit 1): Connection failed.')
    assert sorted(lists['local-all']['result']['volumes']) == ['one', 'three', 'two']


def test_gluster_connections_mount_under_glusterSD_with_backup_servers(real_gluster):
    seen, work = real_gluster
    dc = os.path.join(work, 'dc')
    for name, volume, servers in (
            ('three', 'three', SERVERS),                          # from the volume's bricks
            ('three-own-backup', 'three', (SERVERS[0], SERVERS[2])),   # the admin's, as given
            ('one', 'one', SERVERS[:1])):                         # one brick: no backup server
        c = seen['connections'][name]
        mnt = os.path.join(dc, 'mnt', 'glusterSD', '10.99.0.1:_%s' % volume)
        assert c['status']['status'] == 0, c
        assert c['mount_point'] == mnt and c['mounted'], c
        assert [a for a in c['client'] if a.startswith('--volfile-server=')] == \
            ['--volfile-server=%s' % s for s in servers], c['client']
        # the host agent finds a domain on a gluster mount (StorageDomain.*, Image.prepare)
        sd = '3f1a1a6c-5d4e-4b1e-9c7d-0a1b2c3d4e5f'
        assert c['domain_dirs'] == {sd: os.path.join(mnt, sd)}
        assert c['disconnect']['status'] == 0
        assert not c['mounted_after'] and not c['left_after']
    # a server that does not answer (and a volume this host's glusterd does not have): the
    # connection fails with VDSM's code and leaves no mount point
    c = seen['connections']['unreachable']
    assert c['status']['status'] == error_code('StorageServerConnectionError') == 451
    assert c['status']['message'].startswith(
        'cannot mount 10.99.0.9:/nosuch at %s/mnt/glusterSD/10.99.0.9:_nosuch: ' % dc)
    assert not c['mounted'] and not c['left'] and c['client'] == []
