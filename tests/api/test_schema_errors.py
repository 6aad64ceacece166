"""The schema's error section: every error has a name and a message, and the code of a
name is read from it (no code written a second time in the product)."""
import pytest

from ovirt_hosted_engine_setup.api import schema
from ovirt_hosted_engine_setup.api.schema import Schema, SchemaError, error_code, get_schema
from ovirt_hosted_engine_setup.hostd.api_base import VdsmError


def test_every_error_has_exactly_a_name_and_a_message():
    s = get_schema()
    for code, e in s.errors.items():
        assert set(e) == {'name', 'message'}, code
        assert isinstance(e['message'], str) and e['message'], code


def test_messages_with_a_comma_are_whole():
    # Unquoted in a YAML flow mapping, the part after the comma became a key of its own.
    s = get_schema()
    assert s.error_message(309) == 'Unknown pool id, pool not connected'
    assert s.error_message(316) == 'Error creating a storage pool, pool exists'
    assert s.error_message(10) == 'Connectivity check failed, network change rolled back'


def test_error_codes_by_vdsm_name():
    assert error_code('general') == 100
    assert error_code('StorageDomainDoesNotExist') == 358
    assert error_code('InvalidParameterException') == 1000
    assert error_code('noVM') == 1
    assert (schema.PARSE_ERROR, schema.INVALID_REQUEST, schema.METHOD_NOT_FOUND,
            schema.INVALID_PARAMS, schema.INTERNAL_ERROR) == (-32700, -32600, -32601, -32602,
                                                              -32603)
    with pytest.raises(KeyError):
        error_code('NoSuchError')


def _data(errors):
    return {'namespaces': {'Host': {'ping2': {}}}, 'errors': {'vdsm': errors}}


def test_an_error_without_a_message_is_a_schema_error():
    with pytest.raises(SchemaError, match='error 7 must have exactly a name and a message'):
        Schema(_data({7: {'name': 'x'}}))
    with pytest.raises(SchemaError, match='error 7'):
        Schema(_data({7: {'name': 'x', 'message': 'a', 'b': None}}))


def test_two_errors_with_one_name_is_a_schema_error():
    with pytest.raises(SchemaError, match='same name'):
        Schema(_data({7: {'name': 'x', 'message': 'a'}, 8: {'name': 'x', 'message': 'b'}}))


def test_host_agent_error_by_name_carries_the_schema_code():
    e = VdsmError('StorageDomainDoesNotExist', 'storage domain x does not exist')
    assert e.code == 358
    assert str(e) == 'storage domain x does not exist (code 358)'
    assert VdsmError(100, 'm').code == 100
    with pytest.raises(KeyError):
        VdsmError('NoSuchError', 'm')
