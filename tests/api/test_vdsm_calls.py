"""Every host agent call the project makes sends what VDSM's API requires, and the
host agent refuses, as VDSM does, a call that lacks a required parameter."""
import ast
import os
import uuid

import pytest

from ovirt_hosted_engine_setup.api.errors import ServerError
from ovirt_hosted_engine_setup.api.schema import INVALID_PARAMS, constant, get_schema
from ovirt_hosted_engine_setup.hostd.server import Dispatcher

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Where the project calls the host agent (the host agent and the API themselves aside).
SOURCES = ['ovirt_hosted_engine_setup', 'plugins', 'bin']
SKIP = [os.path.join('ovirt_hosted_engine_setup', 'hostd'),
        os.path.join('ovirt_hosted_engine_setup', 'api')]


def _source_files():
    for top in SOURCES:
        for d, dirs, files in os.walk(os.path.join(TOP, top)):
            rel = os.path.relpath(d, TOP)
            if any(rel == s or rel.startswith(s + os.sep) for s in SKIP):
                continue
            for f in files:
                path = os.path.join(d, f)
                if f.endswith('.py') or (top == 'bin' and _is_python(path)):
                    yield path


def _is_python(path):
    try:
        with open(path, 'rb') as f:
            return b'python' in f.readline()
    except OSError:
        return False


def _keywords(call):
    """The parameter names a call passes (None: not known statically)."""
    names = set()
    for kw in call.keywords:
        if kw.arg is not None:
            names.add(kw.arg)
            continue
        v = kw.value      # **constant('name'): the keys of that schema constant
        if isinstance(v, ast.Call) and getattr(v.func, 'id', getattr(v.func, 'attr', None)) \
                == 'constant' and v.args and isinstance(v.args[0], ast.Constant):
            names |= set(constant(v.args[0].value))
            continue
        return None
    return names


def host_agent_calls():
    """(file:line, verb, parameter names) of every call naming an API verb."""
    schema = get_schema()
    out = []
    for path in _source_files():
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            verbs = [a.value for a in node.args[:3] if isinstance(a, ast.Constant)
                     and isinstance(a.value, str) and schema.verb(a.value)]
            if verbs:
                out.append(('%s:%d' % (os.path.relpath(path, TOP), node.lineno), verbs[0],
                            _keywords(node)))
    return out


CALLS = host_agent_calls()


def test_the_scan_finds_the_deploy_calls():
    verbs = {v for _, v, _ in CALLS}
    assert {'StoragePool.create', 'StoragePool.spmStart', 'Volume.create', 'VM.setTicket',
            'Host.setupNetworks', 'StorageDomain.format', 'VM.create'} <= verbs


@pytest.mark.parametrize('where,verb,names', CALLS, ids=['%s %s' % (w, v) for w, v, _ in CALLS])
def test_call_sends_what_vdsm_requires(where, verb, names):
    v = get_schema().verb(verb)
    assert names is not None, '%s: %s with parameters not known statically' % (where, verb)
    missing = [p.name for p in v.params if p.required and p.name not in names]
    unknown = sorted(names - set(v.param_names))
    assert not missing and not unknown, '%s: %s lacks %s, has unknown %s' % (
        where, verb, missing, unknown)


# -- the host agent's server refuses what VDSM refuses -------------------------------

def _example(p):
    if p.allowed:
        return p.allowed[0]
    return {'uuid': str(uuid.uuid4()), 'int': 1, 'number': 1, 'string': 'x', 'bool': False,
            'object': {}, 'any': 'x',
            'array': [str(uuid.uuid4())] if p.items == ('uuid',) else []}[p.types[0]]


def _dispatcher():
    calls = []
    schema = get_schema()

    def recorder(name):
        def fn(**kwargs):
            calls.append((name, kwargs))
            return True
        return fn
    return Dispatcher(schema, {n: recorder(n) for n in schema.verbs}), calls


REQUIRED = [(v.name, p.name) for v in get_schema().verbs.values() for p in v.params
            if p.required]


@pytest.mark.parametrize('verb,param', REQUIRED)
def test_server_refuses_a_call_missing_a_required_parameter(verb, param):
    d, calls = _dispatcher()
    v = get_schema().verb(verb)
    full = {p.name: _example(p) for p in v.params if p.required}
    ok = d.run({'jsonrpc': '2.0', 'method': verb, 'params': full, 'id': 1})
    assert ok['result'] is True and calls[0][0] == verb
    params = {k: x for k, x in full.items() if k != param}
    resp = d.run({'jsonrpc': '2.0', 'method': verb, 'params': params, 'id': 2})
    assert resp['error']['code'] == INVALID_PARAMS and param in resp['error']['message']
    assert len(calls) == 1        # the backend never saw the refused call


# Through a real host agent (TLS, STOMP), the verbs the deploy calls with VDSM's full sets.
SD, SP, IMG, VOL = (str(uuid.uuid4()) for _ in range(4))
BLANK = constant('blankUUID')
EXPLICIT = [
    ('StoragePool.create', dict(storagepoolID=SP, name='dc', masterSdUUID=SD, masterVersion=1,
                                domainList=[SD], **constant('leaseTimings')),
     ['lockRenewalIntervalSec', 'leaseTimeSec', 'ioOpTimeoutSec', 'leaseRetries']),
    ('StoragePool.spmStart', dict(storagepoolID=SP, **constant('spmStartNoPrevious')),
     ['prevID', 'prevLver', 'enableScsiFencing']),
    ('VM.setTicket', dict(vmID=VOL, password='pw', ttl=120, **constant('consoleTicket')),
     ['existingConnAction', 'params']),
    ('Host.setupNetworks', dict(networks={}, bondings={}, options={}), ['bondings', 'options']),
    ('Volume.create', dict(volumeID=VOL, storagepoolID=SP, storagedomainID=SD, imageID=IMG,
                           size='1048576', volFormat=5, preallocate=2, diskType='HEVD',
                           desc='d', srcImgUUID=BLANK, srcVolUUID=BLANK),
     ['srcImgUUID', 'srcVolUUID']),
    ('Volume.delete', dict(volumeID=VOL, storagepoolID=SP, storagedomainID=SD, imageID=IMG,
                           postZero=False, force=False), ['postZero', 'force']),
    ('StorageDomain.format', dict(storagedomainID=SD, autoDetach=True), ['autoDetach']),
]


@pytest.mark.parametrize('verb,params,names', EXPLICIT, ids=[e[0] for e in EXPLICIT])
def test_host_agent_refuses_what_vdsm_refuses(client, verb, params, names):
    for name in names:
        with pytest.raises(ServerError) as e:
            client.call(verb, **{k: v for k, v in params.items() if k != name})
        assert e.value.code == INVALID_PARAMS and name in e.value.message
    # the complete call passes the schema (the verb itself may then fail: no such pool here)
    try:
        client.call(verb, **params)
    except ServerError as e:
        assert e.code != INVALID_PARAMS, e


@pytest.mark.parametrize('verb,params', [
    ('Host.setHaMaintenanceMode', dict(mode='NONE', enabled=False)),
    ('VM.setTicket', dict(vmID=VOL, password='pw', ttl=1, existingConnAction='drop', params={})),
    ('StoragePool.connectStorageServer', dict(storagepoolID='nope', domainType=4,
                                              connectionParams=[])),
    ('StoragePool.connectStorageServer', dict(storagepoolID=BLANK, domainType=9,
                                              connectionParams=[])),
])
def test_host_agent_checks_enums_and_uuids(client, verb, params):
    with pytest.raises(ServerError) as e:
        client.call(verb, **params)
    assert e.value.code == INVALID_PARAMS
