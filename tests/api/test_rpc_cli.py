"""ovirt-hosted-engine-rpc against a real hostd."""
import json

from ovirt_hosted_engine_setup.api.rpc_cli import parse_params

from .hostd_proc import free_port


def test_value_convention():
    assert parse_params(['a=1', 'b=true', 'c=abc', 'd={"x": [1]}', 'e="1"', 'f=', 'g=a=b']) == {
        'a': 1, 'b': True, 'c': 'abc', 'd': {'x': [1]}, 'e': '1', 'f': '', 'g': 'a=b'}


def test_ping_and_capabilities(hostd):
    r = hostd.rpc('Host', 'ping2')
    assert r.returncode == 0 and json.loads(r.stdout) is True
    r = hostd.rpc('Host', 'getCapabilities')
    assert r.returncode == 0, r.stderr
    assert 'cpuModel' in json.loads(r.stdout)


def test_json_arguments_reach_the_verb(hostd):
    r = hostd.rpc('Host', 'setHaMaintenanceMode', 'mode=LOCAL', 'enabled=false')
    assert r.returncode == 0, r.stderr
    with open(hostd.ha_conf) as f:
        assert 'local_maintenance=False' in f.read()


def test_server_error_exit_1(hostd):
    r = hostd.rpc('Host', 'noSuchVerb')
    assert r.returncode == 1
    assert r.stderr.startswith('code -32601: ') and r.stdout == ''
    r = hostd.rpc('Host', 'setHaMaintenanceMode', 'mode=7', 'enabled=true')
    assert r.returncode == 1 and r.stderr.startswith('code -32602: ') and 'mode' in r.stderr


def test_connection_error_is_one_line(hostd):
    r = hostd.rpc('--port', str(free_port()), 'Host', 'ping2')
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and 'cannot connect' in r.stderr


def test_bad_argument_syntax(hostd):
    r = hostd.rpc('Host', 'ping2', 'novalue')
    assert r.returncode == 2 and 'name=value' in r.stderr
