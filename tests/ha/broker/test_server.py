"""The broker's socket server: JSON lines, errors as answers, mode 0600, in order."""
import json
import os
import socket
import stat
import threading

import pytest

from ovirt_hosted_engine_setup.ha.broker_client import BrokerClient, BrokerError, BrokerUnavailable
from ovirt_hosted_engine_setup.ha.broker.server import ApiError, Server


@pytest.fixture
def server(tmp_path):
    gate = threading.Event()

    def slow():
        gate.wait(10)
        return 'slow done'

    def refuse(host_id, force=False):
        raise ApiError('host-live', 'host %d is live' % host_id)

    def boom():
        raise RuntimeError('disk on fire\nsecond line')
    methods = {'ping': lambda: True, 'echo': lambda value=None: value, 'slow': slow,
               'clean_slot': refuse, 'boom': boom}
    path = str(tmp_path / 'run' / 'broker.socket')
    srv = Server(path, methods).start()
    srv.gate = gate
    yield srv
    gate.set()
    srv.stop()
    assert not os.path.exists(path)


def raw(path, *lines):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    f = s.makefile('rwb')
    out = []
    for line in lines:
        f.write(line + b'\n')
        f.flush()
        out.append(json.loads(f.readline()))
    s.close()
    return out


def test_mode_and_calls(server):
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
    with BrokerClient(server.path, timeout=10) as c:
        assert c.call('ping') is True
        assert c.call('echo', value={'a': [1, 2]}) == {'a': [1, 2]}
        with pytest.raises(BrokerError) as e:
            c.call('clean_slot', host_id=2)
        assert e.value.code == 'host-live'
        with pytest.raises(BrokerError) as e:
            c.call('nope')
        assert e.value.code == 'unknown-method'
        with pytest.raises(BrokerError) as e:
            c.call('echo', other=1)
        assert e.value.code == 'bad-params'
        with pytest.raises(BrokerError) as e:
            c.call('boom')
        assert e.value.code == 'internal-error' and '\n' not in e.value.message
        assert c.call('ping') is True      # the connection survived every error


def test_bad_json_and_requests(server):
    replies = raw(server.path, b'{not json', b'[1, 2]', b'{"id": 7, "method": "echo", '
                  b'"params": [1]}', b'{"id": 8, "method": "ping"}')
    assert replies[0]['error']['code'] == 'bad-request' and replies[0]['id'] is None
    assert replies[1]['error']['code'] == 'bad-request'
    assert replies[2] == {'id': 7, 'error': replies[2]['error']}
    assert replies[2]['error']['code'] == 'bad-params'
    assert replies[3] == {'id': 8, 'result': True}


def test_slow_call_does_not_block_other_connections(server):
    done = []
    t = threading.Thread(target=lambda: done.append(
        BrokerClient(server.path, timeout=20).call('slow')))
    t.start()
    with BrokerClient(server.path, timeout=2) as c:
        assert c.call('ping') is True
    assert not done
    server.gate.set()
    t.join(10)
    assert done == ['slow done']


def test_stopped_server_is_unavailable(tmp_path):
    path = str(tmp_path / 'broker.socket')
    srv = Server(path, {'ping': lambda: True}).start()
    srv.stop()
    with pytest.raises(BrokerUnavailable):
        BrokerClient(path, timeout=2).call('ping')
