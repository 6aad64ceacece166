"""The API schema: contents and parameter validation."""
import uuid

import pytest

from ovirt_hosted_engine_setup.api.schema import (InvalidParams, constant, enum, get_schema,
                                                  redact)
from ovirt_hosted_engine_setup.hostd.api_base import Backend, verb
from ovirt_hosted_engine_setup.hostd.server import SetupError, build_verb_table

U = '0f3c8d52-6bb5-4b8e-9c1e-6a1f0f6f7a11'

SPEC_VERBS = {
    'Host': ['getCapabilities', 'getHardwareInfo', 'getStats', 'ping2', 'setupNetworks',
             'setSafeNetworkConfig', 'getStorageDomains', 'getConnectedStoragePools',
             'startMonitoringDomain', 'stopMonitoringDomain', 'getStorageRepoStats', 'getVMList',
             'getAllVmStats', 'getAllTasksStatuses', 'setHaMaintenanceMode'],
    'StoragePool': ['connectStorageServer', 'disconnectStorageServer', 'create', 'connect',
                    'spmStart', 'getSpmStatus', 'spmStop', 'disconnect', 'getInfo', 'destroy'],
    'StorageDomain': ['create', 'getInfo', 'getStats', 'activate', 'attach', 'detach', 'format',
                      'validate', 'getImages', 'getVolumes'],
    'Volume': ['create', 'getInfo', 'getSize', 'delete'],
    'Image': ['prepare', 'teardown'],
    'Task': ['getStatus', 'clear'],
    'VM': ['create', 'destroy', 'shutdown', 'getStats', 'setTicket', 'updateDevice'],
}

SPEC_ERRORS = [-32700, -32600, -32601, -32602, -32603, 1, 4, 99, 100, 201, 212, 309, 313, 316,
               358, 365, 401, 451, 654, 661, 752, 1000]


def test_every_spec_verb_is_in_the_schema():
    s = get_schema()
    for ns, verbs in SPEC_VERBS.items():
        for v in verbs:
            assert s.verb('%s.%s' % (ns, v)) is not None, '%s.%s' % (ns, v)


def test_spec_error_codes():
    s = get_schema()
    for code in SPEC_ERRORS:
        assert s.error_message(code), code


@pytest.mark.parametrize('verb,names', [
    ('StoragePool.connectStorageServer', ['storagepoolID', 'domainType', 'connectionParams']),
    ('StorageDomain.create', ['storagedomainID', 'domainType', 'typeArgs', 'name', 'domainClass',
                              'version', 'blockSize', 'maxHosts']),
    ('Volume.create', ['volumeID', 'storagepoolID', 'storagedomainID', 'imageID', 'size',
                       'volFormat', 'preallocate', 'diskType', 'desc', 'srcImgUUID',
                       'srcVolUUID']),
    ('VM.create', ['vmID', 'vmParams']),
    ('Host.startMonitoringDomain', ['sdUUID', 'hostID']),
    ('StoragePool.connect', ['storagepoolID', 'hostID', 'scsiKey', 'masterSdUUID',
                             'masterVersion', 'domainDict']),
])
def test_parameter_names_are_vdsm_names(verb, names):
    assert get_schema().verb(verb).param_names[:len(names)] == names


def test_defaults_are_filled():
    v = get_schema().verb('StorageDomain.create')
    out = v.validate({'storagedomainID': U, 'domainType': 4, 'typeArgs': '/d', 'name': 'n',
                      'domainClass': 1})
    assert out['blockSize'] == 512 and out['maxHosts'] == 2000
    sp = get_schema().verb('StoragePool.spmStart').validate(
        dict({'storagepoolID': U}, **constant('spmStartNoPrevious')))
    assert sp['prevID'] == -1 and sp['maxHostID'] == 250 and sp['domVersion'] is None


def test_missing_parameter_is_named():
    with pytest.raises(InvalidParams) as e:
        get_schema().verb('Host.startMonitoringDomain').validate({'sdUUID': U})
    assert e.value.param == 'hostID' and 'hostID' in str(e.value)


@pytest.mark.parametrize('value', ['1', True, 1.5, None, [1]])
def test_mistyped_int_is_named(value):
    with pytest.raises(InvalidParams) as e:
        get_schema().verb('Host.startMonitoringDomain').validate({'sdUUID': U, 'hostID': value})
    assert e.value.param == 'hostID'


def test_union_types():
    v = get_schema().verb('Volume.create')
    blank = constant('blankUUID')
    base = {'volumeID': U, 'storagepoolID': U, 'storagedomainID': U, 'imageID': U,
            'volFormat': 5, 'preallocate': 2, 'diskType': 'HEVD', 'desc': '',
            'srcImgUUID': blank, 'srcVolUUID': blank}
    assert v.validate(dict(base, size='1024'))['size'] == '1024'
    assert v.validate(dict(base, size=1024))['size'] == 1024
    with pytest.raises(InvalidParams):
        v.validate(dict(base, size=[1]))


def test_unknown_parameter_is_named():
    with pytest.raises(InvalidParams) as e:
        get_schema().verb('Host.ping2').validate({'bogus': 1})
    assert e.value.param == 'bogus'


def test_positional_params():
    out = get_schema().verb('Host.startMonitoringDomain').validate([U, 3])
    assert out == {'sdUUID': U, 'hostID': 3}


def test_default_is_not_shared_between_calls():
    v = get_schema().verb('Host.getStorageRepoStats')
    a = v.validate({})
    a['domains'].append(U)
    assert v.validate({})['domains'] == []


def test_secrets_are_redacted():
    s = get_schema()
    assert 'password' in s.secret_names
    assert redact({'vmID': 'x', 'params': {'password': 's3cret'},
                   'connectionParams': [{'password': 'p'}]}, s.secret_names) == {
        'vmID': 'x', 'params': {'password': '********'},
        'connectionParams': [{'password': '********'}]}


def _backend_classes():
    """The host agent's backends and the parts a backend split by namespace serves with.
    Imported directly: a backend that does not import fails the tests that use this."""
    from ovirt_hosted_engine_setup.hostd.host import HostBackend
    from ovirt_hosted_engine_setup.hostd.network import NetworkBackend
    from ovirt_hosted_engine_setup.hostd.storage import StorageBackend
    from ovirt_hosted_engine_setup.hostd.vm import VMBackend
    classes = [HostBackend, NetworkBackend, StorageBackend, VMBackend]
    return classes + [part for cls in classes for part in getattr(cls, 'PARTS', ())]


def _served(cls):
    return {getattr(getattr(cls, a), 'api_verb') for a in dir(cls)
            if getattr(getattr(cls, a, None), 'api_verb', None)}


def test_backends_serve_exactly_the_schema_verbs():
    """Every verb a backend serves is in the schema, and every schema verb is served by
    exactly one backend."""
    s = get_schema()
    owners = {}
    for cls in _backend_classes():
        for name in _served(cls):
            assert s.verb(name) is not None, '%s serves %s' % (cls.__name__, name)
            owners.setdefault(name, []).append(cls.__name__)
    assert sorted(owners) == sorted(s.verbs)
    assert {n: o for n, o in owners.items() if len(o) > 1} == {}


class _Part:
    @verb('Host.ping2')
    def ping2(self):
        return True


class _Split(Backend):
    """A backend split in parts, as the storage backend is."""

    def __init__(self):
        super().__init__(None)
        self.parts = (_Part(),)

    @verb('Host.getVMList')
    def vm_list(self):
        return []


class _Stray(Backend):
    @verb('Host.noSuchVerb')
    def stray(self):
        return True


class _AlsoPing(Backend):
    @verb('Host.ping2')
    def ping2(self):
        return 'again'


def test_verb_table_serves_parts_and_refuses_strays_and_doubles():
    s = get_schema()
    split = _Split()
    table = build_verb_table(s, [split])
    assert sorted(table) == ['Host.getVMList', 'Host.ping2']
    assert table['Host.ping2']() is True and table['Host.getVMList']() == []
    assert table['Host.ping2'].__self__ is split.parts[0]
    with pytest.raises(SetupError) as e:
        build_verb_table(s, [_Stray(None)])
    assert str(e.value) == '_Stray serves Host.noSuchVerb, which is not in the API schema'
    with pytest.raises(SetupError) as e:
        build_verb_table(s, [split, _AlsoPing(None)])
    assert str(e.value) == 'Host.ping2 is served by both _Part and _AlsoPing'


# What VDSM's vdsm-api.yml requires (parameters without a defaultvalue), verb by verb.
VDSM_REQUIRED = {
    'Host.getCapabilities': [], 'Host.getHardwareInfo': [], 'Host.getStats': [],
    'Host.ping2': [], 'Host.setSafeNetworkConfig': [], 'Host.getConnectedStoragePools': [],
    'Host.getAllVmStats': [], 'Host.getAllTasksStatuses': [],
    'Host.setupNetworks': ['networks', 'bondings', 'options'],
    'Host.getStorageDomains': [],
    'Host.startMonitoringDomain': ['sdUUID', 'hostID'],
    'Host.stopMonitoringDomain': ['sdUUID'],
    'Host.getStorageRepoStats': [],
    'Host.getVMList': [],
    'Host.setHaMaintenanceMode': ['mode', 'enabled'],
    'StoragePool.connectStorageServer': ['storagepoolID', 'domainType', 'connectionParams'],
    'StoragePool.disconnectStorageServer': ['storagepoolID', 'domainType', 'connectionParams'],
    'StoragePool.create': ['storagepoolID', 'name', 'masterSdUUID', 'masterVersion',
                           'domainList', 'lockRenewalIntervalSec', 'leaseTimeSec',
                           'ioOpTimeoutSec', 'leaseRetries'],
    'StoragePool.connect': ['storagepoolID', 'hostID', 'scsiKey', 'masterSdUUID',
                            'masterVersion'],
    'StoragePool.disconnect': ['storagepoolID', 'hostID', 'scsiKey'],
    'StoragePool.spmStart': ['storagepoolID', 'prevID', 'prevLver', 'enableScsiFencing'],
    'StoragePool.spmStop': ['storagepoolID'],
    'StoragePool.getSpmStatus': ['storagepoolID'],
    'StoragePool.getInfo': ['storagepoolID'],
    'StoragePool.destroy': ['storagepoolID', 'hostID', 'scsiKey'],
    'StorageDomain.create': ['storagedomainID', 'domainType', 'typeArgs', 'name', 'domainClass'],
    'StorageDomain.getInfo': ['storagedomainID'],
    'StorageDomain.getStats': ['storagedomainID'],
    'StorageDomain.activate': ['storagedomainID', 'storagepoolID'],
    'StorageDomain.attach': ['storagedomainID', 'storagepoolID'],
    'StorageDomain.detach': ['storagedomainID', 'storagepoolID'],
    'StorageDomain.format': ['storagedomainID', 'autoDetach'],
    'StorageDomain.validate': ['storagedomainID'],
    'StorageDomain.getImages': ['storagedomainID'],
    'StorageDomain.getVolumes': ['storagedomainID', 'storagepoolID', 'imageID'],
    'Volume.create': ['volumeID', 'storagepoolID', 'storagedomainID', 'imageID', 'size',
                      'volFormat', 'preallocate', 'diskType', 'desc', 'srcImgUUID', 'srcVolUUID'],
    'Volume.getInfo': ['volumeID', 'storagepoolID', 'storagedomainID', 'imageID'],
    'Volume.getSize': ['volumeID', 'storagepoolID', 'storagedomainID', 'imageID'],
    'Volume.delete': ['volumeID', 'storagepoolID', 'storagedomainID', 'imageID', 'postZero',
                      'force'],
    'Image.prepare': ['storagepoolID', 'storagedomainID', 'imageID', 'volumeID'],
    'Image.teardown': ['storagepoolID', 'storagedomainID', 'imageID'],
    'Task.getStatus': ['taskID'], 'Task.clear': ['taskID'],
    'VM.create': ['vmID', 'vmParams'],
    'VM.destroy': ['vmID'],
    'VM.shutdown': ['vmID'],
    'VM.getStats': ['vmID'],
    'VM.setTicket': ['vmID', 'password', 'ttl', 'existingConnAction', 'params'],
    'VM.updateDevice': ['vmID', 'params'],
    # vdsm-api-gluster.yml
    'GlusterVolume.list': [],
}
# Optional parameters VDSM takes beyond the ones above (its defaultvalue ones).
VDSM_OPTIONAL = {
    'Volume.create': ['initialSize', 'addBitmaps', 'legal', 'sequence', 'bitmap'],
    'Volume.delete': ['discard'],
    'StoragePool.spmStart': ['maxHostID', 'domVersion'],
    'StorageDomain.detach': ['masterSdUUID', 'masterVersion', 'force'],
    'GlusterVolume.list': ['volumeName', 'remoteServer'],
}


def test_every_schema_verb_is_checked_against_vdsm():
    assert sorted(get_schema().verbs) == sorted(VDSM_REQUIRED)


@pytest.mark.parametrize('name', sorted(VDSM_REQUIRED))
def test_required_exactly_as_vdsm(name):
    v = get_schema().verb(name)
    assert [p.name for p in v.params if p.required] == VDSM_REQUIRED[name]
    for opt in VDSM_OPTIONAL.get(name, []):
        assert opt in v.param_names and not [p for p in v.params if p.name == opt][0].required


def example(p):
    """A value of parameter p that the schema accepts."""
    if p.allowed:
        return p.allowed[0]
    t = p.types[0]
    return {'uuid': U, 'int': 1, 'number': 1, 'string': 'x', 'bool': False, 'object': {},
            'array': [U] if p.items == ('uuid',) else [{}] if p.items == ('object',) else [],
            'any': 'x'}[t]


@pytest.mark.parametrize('name', sorted(VDSM_REQUIRED))
def test_complete_call_is_accepted(name):
    v = get_schema().verb(name)
    params = {p.name: example(p) for p in v.params if p.required}
    out = v.validate(params)
    assert set(out) >= set(params)


@pytest.mark.parametrize('name,param', [(n, r) for n in sorted(VDSM_REQUIRED)
                                        for r in VDSM_REQUIRED[n]])
def test_missing_required_is_refused(name, param):
    v = get_schema().verb(name)
    params = {p.name: example(p) for p in v.params if p.required and p.name != param}
    with pytest.raises(InvalidParams) as e:
        v.validate(params)
    assert e.value.param == param and param in str(e.value)


@pytest.mark.parametrize('name,param,bad', [
    ('Host.setHaMaintenanceMode', 'mode', 'NONE'),
    ('VM.setTicket', 'existingConnAction', 'drop'),
    ('StoragePool.connectStorageServer', 'domainType', 9),
    ('StorageDomain.create', 'domainClass', 7),
    ('Volume.create', 'volFormat', 3),
    ('Volume.create', 'preallocate', 0),
    ('Volume.create', 'diskType', 'BOGUS'),
    ('Volume.create', 'srcVolUUID', 'not-a-uuid'),
    ('Host.startMonitoringDomain', 'sdUUID', 'x'),
    ('StoragePool.create', 'domainList', ['x']),
    ('Host.getVMList', 'vmList', [1]),
])
def test_enum_and_uuid_checked_from_the_schema(name, param, bad):
    v = get_schema().verb(name)
    params = {p.name: example(p) for p in v.params if p.required}
    params[param] = bad
    with pytest.raises(InvalidParams) as e:
        v.validate(params)
    assert e.value.param == param


def test_enum_names_where_a_string_is_allowed():
    v = get_schema().verb('Host.getStorageDomains')
    assert v.validate({'storageType': 'NFS'})['storageType'] == 'NFS'
    assert v.validate({'storageType': enum('domainType')['NFS']})['storageType'] == 1
    with pytest.raises(InvalidParams):
        v.validate({'storageType': 'NOPE'})
    assert v.validate({'storagepoolID': str(uuid.uuid4())})


def test_constants_are_vdsm_values():
    assert constant('leaseTimings') == {'lockRenewalIntervalSec': 5, 'leaseTimeSec': 60,
                                        'ioOpTimeoutSec': 10, 'leaseRetries': 3}
    assert constant('spmStartNoPrevious') == {'prevID': -1, 'prevLver': -1,
                                              'enableScsiFencing': False}
    assert constant('blankUUID') == '00000000-0000-0000-0000-000000000000'
    assert constant('consoleTicket')['existingConnAction'] in enum('ticketConflictAction')


def test_no_such_vm_is_read_from_the_schema_once():
    """The host agent's noVM code: defined once (api/errors.py, from the schema); the
    agent, the broker, the verbs and cleanup all use that one."""
    import pathlib
    import re

    from ovirt_hosted_engine_setup.api import errors
    from ovirt_hosted_engine_setup.deploy.cleanup import steps
    from ovirt_hosted_engine_setup.ha import agent_vm, cli_common
    from ovirt_hosted_engine_setup.ha.broker import engine_health
    s = get_schema()
    assert s.error_codes['noVM'] == errors.NO_SUCH_VM
    assert s.error_message(errors.NO_SUCH_VM) == 'Virtual machine does not exist'
    for mod in (steps, agent_vm, cli_common, engine_health):
        assert mod.NO_SUCH_VM == errors.NO_SUCH_VM, mod.__name__
    package = pathlib.Path(errors.__file__).parents[1]
    defined = [str(p.relative_to(package)) for p in package.rglob('*.py')
               if re.search(r'^\s*NO_SUCH_VM\s*=', p.read_text(), re.M)]
    assert defined == ['api/errors.py']
