"""A real hostd over TLS on loopback, driven by the API client."""
import json
import os
import socket
import ssl
import threading
import time
import uuid

import pytest

from ovirt_hosted_engine_setup.api import stomp
from ovirt_hosted_engine_setup.api.client import Client
from ovirt_hosted_engine_setup.api.errors import CallTimeout, ConnectionFailed, ServerError
from ovirt_hosted_engine_setup.hostd import pki


def raw_tls(hostd, cert=True):
    """A TLS socket to the agent using its client certificate (or none)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(os.path.join(hostd.pki, 'cacert.pem'))
    if cert:
        ctx.load_cert_chain(os.path.join(hostd.pki, 'clientcert.pem'),
                            os.path.join(hostd.pki, 'clientkey.pem'))
    s = socket.create_connection(('127.0.0.1', hostd.port), timeout=10)
    return ctx.wrap_socket(s)


def read_frames(sock, timeout=10):
    p = stomp.Parser()
    sock.settimeout(timeout)
    frames = []
    deadline = time.monotonic() + timeout
    while not frames and time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        frames += p.feed(data)
    return frames


def test_ping2(client):
    assert client.Host.ping2() is True
    assert client.call('Host.ping2') is True
    assert client.ping()


def test_capabilities(client):
    caps = client.Host.getCapabilities()
    for key in ('cpuModel', 'cpuFlags', 'cpuCores', 'cpuSockets', 'memSize', 'kvmEnabled',
                'software_version', 'uuid', 'hostedEngineDeployed', 'supported_block_size',
                'networks', 'nics', 'bridges'):
        assert key in caps, key
    assert int(caps['memSize']) > 0 and int(caps['cpuCores']) >= 1
    assert caps['kvmEnabled'] == ('true' if os.path.exists('/dev/kvm') else 'false')
    assert caps['hostedEngineDeployed'] is False
    assert caps['supported_block_size']['NFS'] == [512]
    with open('/proc/cpuinfo') as f:
        assert caps['cpuModel'] in f.read()


def test_hardware_info_and_stats(client):
    hw = client.Host.getHardwareInfo()
    assert hw['systemUUID']
    stats = client.Host.getStats()
    assert stats['memFree'] > 0
    total = stats['cpuUser'] + stats['cpuSys'] + stats['cpuIdle']
    assert 90 <= total <= 101
    assert 'storageDomains' in stats and isinstance(stats['network'], dict)


def test_unknown_verb(client):
    with pytest.raises(ServerError) as e:
        client.call('Host.noSuchVerb')
    assert e.value.code == -32601 and 'Host.noSuchVerb' in e.value.message


def test_missing_param_named(client):
    with pytest.raises(ServerError) as e:
        client.call('Host.startMonitoringDomain', sdUUID=str(uuid.uuid4()))
    assert e.value.code == -32602 and 'hostID' in e.value.message


def test_mistyped_param_named(client):
    with pytest.raises(ServerError) as e:
        client.call('Host.setHaMaintenanceMode', mode='LOCAL', enabled='yes')
    assert e.value.code == -32602 and 'enabled' in e.value.message


def test_positional_call(client):
    with pytest.raises(ServerError) as e:
        client.Host.setHaMaintenanceMode('BOGUS', True)
    assert e.value.code == -32602 and 'mode' in e.value.message


@pytest.mark.parametrize('mode', ['NONE', 'local', 'BOGUS'])
def test_maintenance_mode_is_vdsm_enum(client, mode):
    """VDSM's HaMaintenanceMode is GLOBAL or LOCAL: anything else is refused from the schema."""
    with pytest.raises(ServerError) as e:
        client.Host.setHaMaintenanceMode(mode=mode, enabled=False)
    assert e.value.code == -32602 and 'mode' in e.value.message and 'GLOBAL, LOCAL' in \
        e.value.message


def test_batch(client):
    out = client.batch([('Host.ping2', {}), ('Host.nope', {}),
                        ('Host.startMonitoringDomain', {'sdUUID': str(uuid.uuid4())})])
    assert out[0] is True
    assert isinstance(out[1], ServerError) and out[1].code == -32601
    assert isinstance(out[2], ServerError) and out[2].code == -32602


def test_raw_protocol_errors(hostd):
    """Parse error, invalid request, empty batch, notification without answer."""
    s = raw_tls(hostd)
    s.sendall(stomp.Frame('CONNECT', {'accept-version': '1.2', 'heart-beat': '0,24000'}).encode())
    (f,) = read_frames(s)
    assert f.command == 'CONNECTED' and f.headers['version'] == '1.2'
    assert f.headers['heart-beat'] == '24000,0'
    s.sendall(stomp.Frame('SUBSCRIBE', {'destination': 'r1', 'id': 's1', 'ack': 'auto'}).encode())

    def ask(body):
        s.sendall(stomp.Frame('SEND', {'destination': 'jms.topic.vdsm_requests',
                                       'reply-to': 'r1'}, body).encode())
        (m,) = read_frames(s)
        assert m.command == 'MESSAGE' and m.headers['subscription'] == 's1'
        return json.loads(m.body)
    assert ask(b'{not json')['error']['code'] == -32700
    assert ask(b'{"jsonrpc": "2.0", "id": "1"}')['error']['code'] == -32600
    assert ask(b'{"jsonrpc": "1.0", "method": "Host.ping2", "id": "1"}')['error']['code'] == -32600
    assert ask(b'[]')['error']['code'] == -32600
    # A notification (no id) gets no answer; the next call's answer comes first.
    r = ask(b'[{"jsonrpc": "2.0", "method": "Host.ping2"},'
            b' {"jsonrpc": "2.0", "method": "Host.ping2", "id": 7}]')
    assert r == [{'jsonrpc': '2.0', 'result': True, 'id': 7}]
    s.close()


def test_wrong_stomp_version(hostd):
    s = raw_tls(hostd)
    s.sendall(stomp.Frame('CONNECT', {'accept-version': '1.0'}).encode())
    (f,) = read_frames(s)
    assert f.command == 'ERROR'
    s.close()


def test_client_without_certificate_is_rejected(hostd, client):
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        s = raw_tls(hostd, cert=False)
        s.sendall(stomp.Frame('CONNECT', {'accept-version': '1.2'}).encode())
        if not s.recv(100):
            raise ConnectionResetError('closed')
    assert client.Host.ping2() is True


def test_client_with_certificate_of_another_ca_is_rejected(hostd, client, tmpdir_path):
    other = pki.ensure_pki(tmpdir_path, 'intruder')
    c = Client('127.0.0.1', hostd.port, cafile=os.path.join(hostd.pki, 'cacert.pem'),
               certfile=other.client_cert, keyfile=other.client_key, connect_timeout=10,
               lazy=True)
    with pytest.raises(ConnectionFailed):
        c.connect()
    c.close()
    assert client.Host.ping2() is True
    assert 'TLS handshake refused' in hostd.read_log()


def test_client_refuses_server_of_another_ca(hostd, tmpdir_path):
    other = pki.ensure_pki(tmpdir_path, 'other')
    c = Client('127.0.0.1', hostd.port, cafile=other.ca_cert,
               certfile=os.path.join(hostd.pki, 'clientcert.pem'),
               keyfile=os.path.join(hostd.pki, 'clientkey.pem'), connect_timeout=10, lazy=True)
    with pytest.raises(ConnectionFailed):
        c.connect()
    c.close()


def test_malformed_frame_closes_only_that_connection(hostd, client):
    s = raw_tls(hostd)
    s.sendall(stomp.Frame('CONNECT', {'accept-version': '1.2'}).encode())
    read_frames(s)
    s.sendall(b'SEND\nbad\\xescape:1\n\n\0')
    frames = read_frames(s)
    assert frames and frames[0].command == 'ERROR'
    assert s.recv(100) == b''
    s.close()
    assert client.Host.ping2() is True


def test_oversized_frame(hostd, client):
    s = raw_tls(hostd)
    s.sendall(stomp.Frame('CONNECT', {'accept-version': '1.2'}).encode())
    read_frames(s)
    s.sendall(b'SEND\ndestination:jms.topic.vdsm_requests\ncontent-length:%d\n\n'
              % (10 * 1024 * 1024))
    frames = read_frames(s)
    assert frames[0].command == 'ERROR' and 'too large' in frames[0].headers['message']
    s.close()
    # A frame just over the limit without content-length.
    s = raw_tls(hostd)
    s.sendall(stomp.Frame('CONNECT', {'accept-version': '1.2'}).encode())
    read_frames(s)
    try:
        s.sendall(b'SEND\ndestination:x\n\n' + b'x' * (300 * 1024))
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
    s.close()
    assert client.Host.ping2() is True


def test_frames_before_connect_are_refused(hostd, client):
    s = raw_tls(hostd)
    s.sendall(stomp.Frame('SEND', {'destination': 'jms.topic.vdsm_requests'}, b'{}').encode())
    (f,) = read_frames(s)
    assert f.command == 'ERROR'
    s.close()
    assert client.Host.ping2() is True


def test_events_and_maintenance_flags(hostd, client):
    got = []
    seen = threading.Event()

    def on_event(method, params):
        got.append((method, params))
        seen.set()
    watcher = hostd.client(event_callback=on_event)
    try:
        assert client.Host.setHaMaintenanceMode(mode='LOCAL', enabled=True) is True
        assert seen.wait(10)
        assert got[0] == ('|hosted-engine|maintenance|', {'mode': 'LOCAL', 'enabled': True})
        with open(hostd.ha_conf) as f:
            assert 'local_maintenance=True' in f.read().splitlines()
        client.Host.setHaMaintenanceMode(mode='GLOBAL', enabled=True)
        client.Host.setHaMaintenanceMode(mode='LOCAL', enabled=False)
        with open(hostd.ha_conf) as f:
            lines = f.read().splitlines()
        assert 'local_maintenance=False' in lines and 'global_maintenance=True' in lines
        ha = client.Host.getStats()['haStats']
        assert ha['globalMaintenance'] is True and ha['localMaintenance'] is False
    finally:
        watcher.close()
        client.Host.setHaMaintenanceMode(mode='LOCAL', enabled=False)
        client.Host.setHaMaintenanceMode(mode='GLOBAL', enabled=False)


def test_concurrent_calls_from_threads(client):
    errors = []

    def work():
        try:
            for _ in range(20):
                assert client.Host.ping2() is True
        except Exception as e:   # collected for the assertion below
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


def test_password_never_logged(hostd, client, caplog):
    caplog.set_level('DEBUG')
    try:
        client.call('VM.setTicket', vmID='00000000-0000-0000-0000-00000000abcd',
                    password='TopSecret-42', ttl=120, existingConnAction='keep', params={})
    except ServerError:
        pass
    try:   # valid parameters: the call is logged (iSCSI needs no real target to be refused)
        client.call('StoragePool.connectStorageServer',
                    storagepoolID='00000000-0000-0000-0000-000000000000', domainType=3,
                    connectionParams=[{'id': '1', 'connection': '127.0.0.1', 'iqn': 'iqn.x:y',
                                       'user': 'u', 'password': 'TopSecret-42'}])
    except ServerError:
        pass
    log = hostd.read_log()
    assert 'StoragePool.connectStorageServer' in log
    assert 'TopSecret-42' not in log
    assert 'TopSecret-42' not in caplog.text


def test_connection_refused_is_connection_failed(tmpdir_path):
    from .hostd_proc import free_port
    with pytest.raises(ConnectionFailed) as e:
        Client('127.0.0.1', free_port(), hostd_root=tmpdir_path, insecure=True,
               connect_timeout=5)
    assert 'cannot connect' in str(e.value)


def test_call_timeout_and_reconnect(tmpdir_path):
    """A server that accepts but never answers gives CallTimeout; after the
    agent restarts on the same port the client reconnects."""
    from .hostd_proc import Hostd
    agent = Hostd(tmpdir_path).start()
    try:
        c = agent.client(timeout=5)
        assert c.Host.ping2() is True
        agent.proc.send_signal(19)   # SIGSTOP: connected but silent
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:   # the stop is asynchronous
            with open('/proc/%d/stat' % agent.proc.pid) as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'T':
                    break
            time.sleep(0.01)
        try:
            with pytest.raises(CallTimeout):
                c.call('Host.ping2', _timeout=1)
        finally:
            agent.proc.send_signal(18)   # SIGCONT
        assert agent.stop() == 0
        with pytest.raises(ConnectionFailed):
            c.call('Host.ping2')
        agent.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                assert c.Host.ping2() is True
                break
            except ConnectionFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        c.close()
    finally:
        agent.stop()


def test_sigterm_exit_status(tmpdir_path):
    from .hostd_proc import Hostd
    agent = Hostd(tmpdir_path).start()
    c = agent.client()
    assert c.Host.ping2() is True
    assert agent.stop() == 0
    c.close()
    assert not os.path.exists(os.path.join(agent.run_dir, 'hostd.pid'))


def test_shared_ca_is_used(tmpdir_path):
    """A root whose pki already holds a CA gets certificates from that CA."""
    from .hostd_proc import Hostd
    first = pki.ensure_pki(os.path.join(tmpdir_path, 'a'), 'a')
    base_b = os.path.join(tmpdir_path, 'b')
    os.makedirs(os.path.join(base_b, 'root', 'pki'))
    for name in ('cacert.pem', 'cakey.pem'):
        with open(os.path.join(first.dir, name), 'rb') as src, \
                open(os.path.join(base_b, 'root', 'pki', name), 'wb') as dst:
            dst.write(src.read())
    agent = Hostd(base_b).start()
    try:
        # The client certificate of root a is accepted by the agent of root b, and the
        # client, trusting only CA a, accepts b's server certificate.
        c = Client('127.0.0.1', agent.port, cafile=first.ca_cert, certfile=first.client_cert,
                   keyfile=first.client_key, connect_timeout=10)
        assert c.Host.ping2() is True
        c.close()
    finally:
        assert agent.stop() == 0
