"""Every part of the product that finds a storage connection's mount point agrees with the
host agent, which mounts it (as VDSM: <data-center>/mnt/<mangled>, gluster volumes under
mnt/glusterSD/): he_storage's layout (the volumes the deploy, the HA agent and the CLI
open), the HA services' domain paths (peers.domain_paths: liveness, --vm-status, cleanup's
checks), cleanup's disconnect step, the additional host's connection and the host agent's
own StorageContext (connect, disconnect, StorageDomain.create, the domain lookup)."""
import logging
import os

import pytest

from ovirt_hosted_engine_setup.api.schema import enum
from ovirt_hosted_engine_setup.deploy import additional_host
from ovirt_hosted_engine_setup.deploy.cleanup import leftovers, steps
from ovirt_hosted_engine_setup.ha import cli_common, peers
from ovirt_hosted_engine_setup.he_storage import StorageError, layout
from ovirt_hosted_engine_setup.hostd.api_base import HostContext
from ovirt_hosted_engine_setup.hostd.storage.context import StorageContext

GLUSTERFS = enum('domainType')['GLUSTERFS']
SD = '8e1b9c4e-0d7a-4c86-9f3a-5b2f7f1d2c3a'


def conf(storage, dtype):
    return {'storage': storage, 'domainType': dtype, 'sdUUID': SD,
            'vm_disk_id': 'a', 'vm_disk_vol_id': 'b', 'metadata_image_UUID': 'c',
            'metadata_volume_UUID': 'd', 'lockspace_image_UUID': 'e',
            'lockspace_volume_UUID': 'f', 'conf_image_UUID': 'g', 'conf_volume_UUID': 'h'}


@pytest.mark.parametrize('storage,dtype,expected', [
    ('host1:/engine', 'glusterfs', 'mnt/glusterSD/host1:_engine'),
    ('gl.example.com:/he_vol', 'glusterfs', 'mnt/glusterSD/gl.example.com:_he__vol'),
    ('nfs.example.com:/exports/he', 'nfs', 'mnt/nfs.example.com:_exports_he'),
    ('nfs.example.com:/exports/he', 'nfs4', 'mnt/nfs.example.com:_exports_he'),
    ('/srv/he_storage', 'localfs', 'mnt/_srv_he__storage'),
    ('/srv/he', 'posixfs', 'mnt/_srv_he'),
])
def test_every_path_finder_agrees(tmp_path, storage, dtype, expected):
    dc = str(tmp_path / 'dc')
    mnt = os.path.join(dc, expected)
    type_id = layout.DOMAIN_TYPES[dtype]
    assert layout.mount_point(storage, dc, dtype) == mnt
    assert layout.mount_point(storage, dc, type_id) == mnt
    c = conf(storage, dtype)
    assert layout.domain_dir(c, dc) == os.path.join(mnt, SD)
    paths = layout.volume_paths(c, dc)
    assert paths['domain'] == os.path.join(mnt, SD)
    assert paths['metadata'] == os.path.join(mnt, SD, 'images', 'c', 'd')
    os.makedirs(os.path.join(mnt, SD))    # connected (a localfs one is read in place if not)
    assert peers.domain_paths(c, dc) == {
        'ids': os.path.join(mnt, SD, 'dom_md', 'ids'),
        'lockspace': os.path.join(mnt, SD, 'images', 'e', 'f'),
        'metadata': os.path.join(mnt, SD, 'images', 'c', 'd')}
    sc = StorageContext(HostContext(root_dir=str(tmp_path / 'root'), data_center_dir=dc,
                                    run_dir=str(tmp_path / 'run')))
    assert sc.mountpoint(storage, type_id) == mnt


def test_the_host_agent_finds_domains_under_every_mount_point(tmp_path):
    dc = str(tmp_path / 'dc')
    sc = StorageContext(HostContext(root_dir=str(tmp_path / 'root'), data_center_dir=dc,
                                    run_dir=str(tmp_path / 'run')))
    assert layout.mount_points(dc) == [] and sc.domain_dirs() == {}
    other = '0b5b1a64-3f0e-4f5e-8a39-2c5d4c0f6a11'
    where = {SD: layout.mount_point('host1:/engine', dc, 'glusterfs'),
             other: layout.mount_point('nfs:/exports/he', dc, 'nfs')}
    for sd, mnt in where.items():
        os.makedirs(os.path.join(mnt, sd, 'dom_md'))
        open(os.path.join(mnt, sd, 'dom_md', 'metadata'), 'w').close()
    assert layout.mount_points(dc) == sorted(where.values())
    assert sc.domain_dirs() == {sd: os.path.join(mnt, sd) for sd, mnt in where.items()}
    assert sc.find_domain(SD) == os.path.join(where[SD], SD)


def test_a_gluster_connection_names_its_server_and_volume():
    assert layout.gluster_volume('host1:/engine') == ('host1', 'engine')
    assert layout.gluster_volume('host1:/engine/') == ('host1', 'engine')
    assert layout.gluster_volume('10.0.0.5:engine') == ('10.0.0.5', 'engine')
    for bad in ('host1', 'host1:/', ':/engine'):
        with pytest.raises(StorageError, match='give server:/volume'):
            layout.gluster_volume(bad)


class Agent:
    def __init__(self):
        self.calls = []

    def call(self, method, _timeout=None, **params):
        self.calls.append((method, params))
        return [{'id': params['connectionParams'][0]['id'], 'status': 0}]


def test_cleanup_disconnects_the_gluster_mount_point(tmp_path, monkeypatch):
    dc = str(tmp_path / 'dc')
    monkeypatch.setattr(cli_common, 'DATA_CENTER_DIR', dc)
    cleanup = steps.Cleanup(quiet=True)
    cleanup.client = Agent()
    cleanup.domains = [leftovers.Domain(SD, 'host1:/engine', 'glusterfs')]
    # not mounted: nothing there
    assert cleanup.disconnect() == 'host1:/engine was not connected'
    os.makedirs(layout.mount_point('host1:/engine', dc, 'glusterfs'))
    assert cleanup.disconnect() == 'host1:/engine disconnected'
    (method, params), _ = cleanup.client.calls
    assert method == 'StoragePool.disconnectStorageServer' and \
        params['domainType'] == GLUSTERFS


def test_an_additional_host_checks_the_gluster_mount_point(tmp_path, monkeypatch):
    dc = str(tmp_path / 'dc')
    monkeypatch.setattr(additional_host.paths, 'DATA_CENTER_DIR', dc)
    asked = []
    real_ismount = os.path.ismount

    def ismount(path):
        asked.append(path)
        return real_ismount(path)
    monkeypatch.setattr(os.path, 'ismount', ismount)
    agent = Agent()
    with additional_host.connected(agent, {'storage': 'host1:/engine',
                                           'domainType': 'glusterfs'},
                                   logging.getLogger('test')):
        pass
    assert asked == [os.path.join(dc, 'mnt', 'glusterSD', 'host1:_engine')]
    # it was not connected before: connected, then disconnected again
    assert [m for m, _p in agent.calls] == ['StoragePool.connectStorageServer',
                                            'StoragePool.disconnectStorageServer']
