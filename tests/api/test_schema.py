"""The API schema: contents and parameter validation."""
import pytest

from ovirt_hosted_engine_setup.api.schema import InvalidParams, get_schema, redact

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
    out = v.validate({'storagedomainID': 'u', 'domainType': 4, 'typeArgs': '/d', 'name': 'n',
                      'domainClass': 1})
    assert out['blockSize'] == 512 and out['maxHosts'] == 2000
    sp = get_schema().verb('StoragePool.spmStart').validate({'storagepoolID': 'p'})
    assert sp['prevID'] == -1 and sp['maxHostID'] == 250 and 'domVersion' not in sp


def test_missing_parameter_is_named():
    with pytest.raises(InvalidParams) as e:
        get_schema().verb('Host.startMonitoringDomain').validate({'sdUUID': 'x'})
    assert e.value.param == 'hostID' and 'hostID' in str(e.value)


@pytest.mark.parametrize('value', ['1', True, 1.5, None, [1]])
def test_mistyped_int_is_named(value):
    with pytest.raises(InvalidParams) as e:
        get_schema().verb('Host.startMonitoringDomain').validate({'sdUUID': 'x', 'hostID': value})
    assert e.value.param == 'hostID'


def test_union_types():
    v = get_schema().verb('Volume.create')
    base = {'volumeID': 'v', 'storagepoolID': 'p', 'storagedomainID': 'd', 'imageID': 'i',
            'volFormat': 5, 'preallocate': 2, 'diskType': 'HEVD', 'desc': ''}
    assert v.validate(dict(base, size='1024'))['size'] == '1024'
    assert v.validate(dict(base, size=1024))['size'] == 1024
    with pytest.raises(InvalidParams):
        v.validate(dict(base, size=[1]))


def test_unknown_parameter_is_named():
    with pytest.raises(InvalidParams) as e:
        get_schema().verb('Host.ping2').validate({'bogus': 1})
    assert e.value.param == 'bogus'


def test_positional_params():
    out = get_schema().verb('Host.startMonitoringDomain').validate(['sd', 3])
    assert out == {'sdUUID': 'sd', 'hostID': 3}


def test_default_is_not_shared_between_calls():
    v = get_schema().verb('Host.setupNetworks')
    a = v.validate({'networks': {}})
    a['options']['x'] = 1
    assert v.validate({'networks': {}})['options'] == {}


def test_secrets_are_redacted():
    s = get_schema()
    assert 'password' in s.secret_names
    assert redact({'vmID': 'x', 'params': {'password': 's3cret'},
                   'connectionParams': [{'password': 'p'}]}, s.secret_names) == {
        'vmID': 'x', 'params': {'password': '********'},
        'connectionParams': [{'password': '********'}]}


def test_backends_serve_only_schema_verbs():
    """Every @verb of every importable backend is in the schema."""
    import importlib

    from ovirt_hosted_engine_setup.hostd import host, network
    from ovirt_hosted_engine_setup.hostd.api_base import verbs_of
    classes = [host.HostBackend, network.NetworkBackend]
    for mod, name in (('ovirt_hosted_engine_setup.hostd.storage', 'StorageBackend'),
                      ('ovirt_hosted_engine_setup.hostd.vm', 'VMBackend')):
        try:
            classes.append(getattr(importlib.import_module(mod), name))
        except ImportError:
            pass
    s = get_schema()
    for cls in classes:
        for attr in dir(cls):
            name = getattr(getattr(cls, attr, None), 'api_verb', None)
            if name:
                assert s.verb(name) is not None, '%s serves %s' % (cls.__name__, name)
    assert verbs_of  # the server builds its table with it
