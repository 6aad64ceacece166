"""The host agent's verbs take exactly the schema's parameters, and a default written in a
verb's Python signature (for direct callers) is the schema's default, so the two cannot drift
apart (None or () stand for the schema's empty list, the Python idiom for a mutable default)."""
import inspect

import pytest

from ovirt_hosted_engine_setup.api.schema import get_schema
from ovirt_hosted_engine_setup.hostd import host, network, vm
from ovirt_hosted_engine_setup.hostd.storage import StorageBackend

CLASSES = list(StorageBackend.PARTS) + [host.HostBackend, network.NetworkBackend, vm.VMBackend]


def verbs():
    for cls in CLASSES:
        for attr in sorted(dir(cls)):
            fn = getattr(cls, attr)
            name = getattr(fn, 'api_verb', None)
            if name:
                yield pytest.param(name, fn, id=name)


def mismatches(verb, fn):
    """What differs between a verb's Python signature and its schema entry."""
    out = []
    schema = {p.name: p for p in verb.params}
    params = list(inspect.signature(fn).parameters.values())[1:]   # without self
    for p in params:
        q = schema.get(p.name)
        if q is None:
            out.append('%s is not a parameter of the schema' % p.name)
        elif p.default is not inspect.Parameter.empty:
            if not q.has_default:
                out.append('%s has a default but the schema requires it' % p.name)
            elif p.default != q.default and not (p.default in (None, ()) and q.default == []):
                out.append('%s defaults to %r, the schema to %r' % (p.name, p.default,
                                                                    q.default))
        elif q.has_default:
            out.append('%s has no default but the schema gives %r' % (p.name, q.default))
    names = {p.name for p in params}
    out += ['%s of the schema is not taken' % n for n in schema if n not in names]
    return out


@pytest.mark.parametrize('name,fn', list(verbs()))
def test_signature_is_the_schema(name, fn):
    assert mismatches(get_schema().verb(name), fn) == []


def test_a_drifted_default_is_found():
    verb = get_schema().verb('StoragePool.spmStart')

    def spmStart(self, storagepoolID, prevID, prevLver, enableScsiFencing, maxHostID=100,
                 domVersion=None):
        pass

    def spmStart2(self, storagepoolID, prevID, prevLver, enableScsiFencing=False,
                  maxHostID=250):
        pass
    assert mismatches(verb, spmStart) == ['maxHostID defaults to 100, the schema to 250']
    assert mismatches(verb, spmStart2) == [
        'enableScsiFencing has a default but the schema requires it',
        'domVersion of the schema is not taken']
