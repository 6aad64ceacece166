"""The storage backend is split as VDSM splits its API: one part per namespace, sharing one
StorageContext; error codes and domain type numbers come from the API schema only."""
import ast
import os

import pytest

from ovirt_hosted_engine_setup.api.schema import enum, get_schema
from ovirt_hosted_engine_setup.hostd import api_base
from ovirt_hosted_engine_setup.hostd.api_base import HostContext, verb, verbs_of
from ovirt_hosted_engine_setup.hostd.storage import StorageBackend
from ovirt_hosted_engine_setup.hostd.storage.connections import (FILE_DOMAIN_TYPES_TEXT,
                                                                 Connections)
from ovirt_hosted_engine_setup.hostd.storage.domains import Domains
from ovirt_hosted_engine_setup.hostd.storage.gluster import GlusterVolumes
from ovirt_hosted_engine_setup.hostd.storage.monitor import Monitoring
from ovirt_hosted_engine_setup.hostd.storage.pools import Pools
from ovirt_hosted_engine_setup.hostd.storage.tasks import Tasks
from ovirt_hosted_engine_setup.hostd.storage.volumes import ImagesVolumes

HOSTD = os.path.dirname(os.path.abspath(api_base.__file__))

# Which part serves which verbs (as VDSM's API: StoragePool's connections apart).
EXPECTED = {
    Connections: {'StoragePool.connectStorageServer', 'StoragePool.disconnectStorageServer'},
    Domains: {'StorageDomain.create', 'StorageDomain.getInfo', 'StorageDomain.getStats',
              'StorageDomain.validate', 'StorageDomain.attach', 'StorageDomain.activate',
              'StorageDomain.detach', 'StorageDomain.format', 'StorageDomain.getImages',
              'StorageDomain.getVolumes', 'Host.getStorageDomains'},
    Pools: {'StoragePool.create', 'StoragePool.connect', 'StoragePool.disconnect',
            'StoragePool.destroy', 'StoragePool.getInfo', 'StoragePool.spmStart',
            'StoragePool.spmStop', 'StoragePool.getSpmStatus', 'Host.getConnectedStoragePools'},
    ImagesVolumes: {'Volume.create', 'Volume.getInfo', 'Volume.getSize', 'Volume.delete',
                    'Image.prepare', 'Image.teardown'},
    Tasks: {'Task.getStatus', 'Task.clear', 'Host.getAllTasksStatuses'},
    Monitoring: {'Host.startMonitoringDomain', 'Host.stopMonitoringDomain',
                 'Host.getStorageRepoStats'},
    GlusterVolumes: {'GlusterVolume.list'},
}


@pytest.fixture
def backend(tmp_path):
    ctx = HostContext(root_dir=str(tmp_path / 'root'), data_center_dir=str(tmp_path / 'dc'),
                      run_dir=str(tmp_path / 'run'))
    return StorageBackend(ctx)


def test_each_part_serves_its_namespace(backend):
    table = verbs_of(backend)
    served = {}
    for name, fn in table.items():
        served.setdefault(type(fn.__self__), set()).add(name)
    assert served == EXPECTED
    schema = get_schema()
    for name in table:
        assert schema.verb(name) is not None, name
    # every namespace of the storage API, whole
    for ns in ('StorageDomain', 'Volume', 'Image', 'Task', 'StoragePool', 'GlusterVolume'):
        assert {v for v in schema.verbs if v.startswith(ns + '.')} <= set(table), ns


def test_parts_share_one_context(backend):
    assert {id(p.sc) for p in backend.parts} == {id(backend.sc)}
    assert backend.pools is backend.sc.pools
    assert backend.monitored is backend.sc.monitored
    assert backend.monitors is backend.sc.monitors


def test_verbs_are_attributes_of_the_backend(backend):
    assert backend.createVolume.__self__ is backend.parts[StorageBackend.PARTS.index(
        ImagesVolumes)]
    assert backend.getConnectedStoragePools() == []
    assert backend.getAllTasksStatuses() == {}


def test_a_verb_served_by_two_parts_is_refused():
    class A:
        @verb('Task.clear')
        def one(self):
            pass

    class B:
        @verb('Task.clear')
        def two(self):
            pass

    class Whole:
        parts = (A(), B())

    with pytest.raises(ValueError, match='Task.clear is served by both A and B'):
        verbs_of(Whole())


def test_file_domain_types_in_messages_are_the_schema_numbers():
    t = enum('domainType')
    assert FILE_DOMAIN_TYPES_TEXT == 'NFS=%d, LOCALFS=%d, POSIXFS=%d, GLUSTERFS=%d' % (
        t['NFS'], t['LOCALFS'], t['POSIXFS'], t['GLUSTERFS'])
    assert FILE_DOMAIN_TYPES_TEXT == 'NFS=1, LOCALFS=4, POSIXFS=6, GLUSTERFS=7'


def _product_files():
    for root, _, files in os.walk(HOSTD):
        for f in files:
            if f.endswith('.py'):
                yield os.path.join(root, f)


def test_host_agent_writes_no_error_code_number():
    """Every VdsmError of the host agent names its error (the schema has the code)."""
    found = []
    for path in _product_files():
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'VdsmError' \
                    and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, int):
                found.append('%s:%d' % (os.path.relpath(path, HOSTD), node.lineno))
    assert found == []


def test_every_error_name_the_host_agent_raises_is_in_the_schema():
    codes = get_schema().error_codes
    for path in _product_files():
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) in (
                    'VdsmError', 'error_code') and node.args and \
                    isinstance(node.args[0], ast.Constant) and \
                    isinstance(node.args[0].value, str):
                assert node.args[0].value in codes, '%s:%d' % (path, node.lineno)
