"""engine_api against the lab engine run as a process on 127.0.0.1, with a real host agent
(ovirt-hosted-engine-hostd) on loopback, through the real ovirt-engine-sdk-python; and the
engine-setup channel reader against a unix socket served here."""
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from api.hostd_proc import Hostd, free_port
from lab.engine.engine_proc import ADMIN_PASSWORD, FQDN, EngineProc, engine_setup
from ovirt_hosted_engine_setup.deploy import cloud_init, engine_api
from ovirt_hosted_engine_setup import progress

ovirtsdk4 = pytest.importorskip('ovirtsdk4')


@pytest.fixture(scope='module')
def engine():
    base = tempfile.mkdtemp(prefix='engine-api-')
    state = os.path.join(base, 'state')
    r = engine_setup(state)
    assert r.returncode == 0, r.stderr
    proc = EngineProc(state).start()
    proc.base = base
    yield proc
    rc = proc.stop()
    assert rc == 0, 'engine exit status %s; log:\n%s' % (rc, proc.read_log()[-3000:])
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope='module')
def ca_file(engine):
    pem = engine_api.fetch_ca(engine.http)
    path = os.path.join(engine.base, 'ca.pem')
    with open(path, 'w') as f:
        f.write(pem)
    return path


@pytest.fixture
def conn(engine, ca_file):
    c = engine_api.connect(engine.api_url, 'admin@internal', ADMIN_PASSWORD, ca_file)
    yield c
    engine_api.close(c)


@pytest.fixture
def agent(tmp_path):
    (tmp_path / 'hostd').mkdir()
    a = Hostd(str(tmp_path / 'hostd')).start()
    yield a
    rc = a.stop()
    assert rc == 0, 'hostd exit status %s:\n%s' % (rc, a.read_log()[-2000:])


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def reporter():
    h = Lines()
    log = logging.getLogger('test.engine_api.progress')
    log.addHandler(h)
    log.setLevel(logging.INFO)
    rep = progress.Reporter(log, every=0)
    rep.lines = h.lines
    yield rep
    log.removeHandler(h)


# -- the health page -------------------------------------------------------

def test_health_poll_succeeds(engine, reporter):
    reply = engine_api.wait_healthy(engine.http, 20, 0.5, reporter)
    assert reply == 'DB Up!Welcome to Health Status!'


def test_health_timeout_names_the_last_reply_and_where_to_look(tmp_path, reporter):
    state = str(tmp_path / 'state')
    eng = EngineProc(state).start()      # never set up: answers "DB Down"
    try:
        t0 = time.monotonic()
        with pytest.raises(engine_api.EngineError) as e:
            engine_api.wait_healthy(eng.http, 2, 0.5, reporter)
        assert time.monotonic() - t0 < 10
    finally:
        assert eng.stop() == 0
    msg = str(e.value)
    assert '\n' not in msg
    assert 'timed out after 2 s' in msg
    assert 'HTTP 503: DB Down' in msg
    assert 'hosted-engine --console' in msg and '/var/log/ovirt-engine/' in msg
    # the user saw what is awaited, the elapsed time and the limit
    assert any('Waiting for the engine health page' in line and '(limit 2 s)' in line
               and 'HTTP 503' in line for line in reporter.lines)


def test_health_timeout_with_nothing_listening(reporter):
    base = 'http://127.0.0.1:%d' % free_port()
    with pytest.raises(engine_api.EngineError) as e:
        engine_api.wait_healthy(base, 1, 0.5, reporter)
    assert '\n' not in str(e.value)
    assert 'no answer from %s/ovirt-engine/services/health' % base in str(e.value)
    assert 'refused' in str(e.value).lower()


# -- the engine CA -----------------------------------------------------------

def test_ca_fetch_fingerprint_and_subject(engine, ca_file):
    with open(os.path.join(engine.state_dir, 'pki', 'ca.pem')) as f:
        served = f.read()
    pem = open(ca_file).read()
    assert pem.strip() == served.strip()
    out = subprocess.run(['openssl', 'x509', '-noout', '-fingerprint', '-sha256'],
                         input=pem, capture_output=True, text=True, check=True).stdout
    assert engine_api.fingerprint(pem) == out.strip().split('=', 1)[1]
    subject = engine_api.subject(pem)
    assert subject.startswith('CN=%s.' % FQDN) or 'CN=%s.' % FQDN in subject
    assert '\n' not in subject


def test_ca_fetch_errors_are_one_line(engine):
    base = 'http://127.0.0.1:%d' % free_port()
    with pytest.raises(engine_api.EngineError) as e:
        engine_api.fetch_ca(base)
    assert '\n' not in str(e.value) and 'Cannot fetch the engine CA' in str(e.value)
    # the engine's HTTPS certificate is not a CA certificate
    orig = engine_api.CA_PATH
    try:
        engine_api.CA_PATH = ('/ovirt-engine/services/pki-resource?resource=engine-certificate'
                              '&format=X509-PEM')
        with pytest.raises(engine_api.EngineError) as e:
            engine_api.fetch_ca(engine.http)
    finally:
        engine_api.CA_PATH = orig
    assert 'not a CA certificate' in str(e.value) and '\n' not in str(e.value)


# -- login, data center and cluster ----------------------------------------------

def test_wrong_password_is_one_line(engine, ca_file):
    with pytest.raises(engine_api.EngineError) as e:
        engine_api.connect(engine.api_url, 'admin@internal', 'Wrong-pass-123', ca_file)
    msg = str(e.value)
    assert '\n' not in msg
    assert 'refused the login of admin@internal' in msg
    assert 'OVEHOSTED_ENGINE/adminPassword' in msg
    assert 'Wrong-pass-123' not in msg


def test_unknown_cluster_and_data_center_list_the_existing(conn):
    dc, cluster = engine_api.check_cluster(conn, 'Default', 'Default')
    assert dc.name == 'Default' and cluster.name == 'Default'
    with pytest.raises(engine_api.EngineError) as e:
        engine_api.check_cluster(conn, 'Default', 'Prod')
    assert '\n' not in str(e.value)
    assert "cluster 'Prod' does not exist" in str(e.value)
    assert '(existing: Default)' in str(e.value)
    with pytest.raises(engine_api.EngineError) as e:
        engine_api.check_cluster(conn, 'Elsewhere', 'Default')
    assert "data center 'Elsewhere' does not exist" in str(e.value)
    assert '(existing: Default)' in str(e.value) and '\n' not in str(e.value)


# -- adding this host ------------------------------------------------------------

def test_add_host_reaches_up(engine, conn, ca_file, agent, reporter):
    # the deploy installs the engine CA where the agent trusts client certificates
    trusted = os.path.join(agent.pki, 'trusted-cas')
    os.makedirs(trusted, exist_ok=True)
    shutil.copy(ca_file, os.path.join(trusted, 'engine-%s.pem' % FQDN))
    with open(os.path.join(agent.pki, 'cacert.pem')) as f:
        agent_ca = f.read()
    _dc, cluster = engine_api.check_cluster(conn, 'Default', 'Default')
    host = engine_api.add_host(conn, 'hosted_engine_1', '127.0.0.1', cluster,
                               ca_pem=agent_ca, port=agent.port)
    try:
        assert host.name == 'hosted_engine_1'
        text = engine_api.wait_host_up(conn, host.id, 60, 0.5, reporter,
                                       name='hosted_engine_1')
        assert text == 'status up'
        assert any('Waiting for host hosted_engine_1 to be Up in the engine' in line
                   for line in reporter.lines)
        # the same name or the same address again: refused before asking the engine
        for name, address in (('hosted_engine_1', 'localhost'), ('other', '127.0.0.1')):
            with pytest.raises(engine_api.EngineError) as e:
                engine_api.add_host(conn, name, address, cluster, port=agent.port)
            assert "already has a host 'hosted_engine_1' at 127.0.0.1 (status up)" \
                in str(e.value)
            assert '\n' not in str(e.value)
    finally:
        # as in oVirt, an up host is removed once in maintenance
        svc = conn.system_service().hosts_service().host_service(host.id)
        svc.deactivate()
        svc.remove()


def test_unreachable_host_ends_the_wait_with_its_status_detail(conn, reporter):
    host = engine_api.add_host(conn, 'nowhere', '127.0.0.1', 'Default', port=free_port())
    try:
        with pytest.raises(engine_api.EngineError) as e:
            engine_api.wait_host_up(conn, host.id, 60, 0.3, reporter, name='nowhere',
                                    bad_grace=1, hint='check the host agent')
        msg = str(e.value)
        assert '\n' not in msg
        assert msg.startswith('The host nowhere is non_responsive in the engine: ')
        assert 'Connection refused' in msg and msg.endswith('; check the host agent')
    finally:
        conn.system_service().hosts_service().host_service(host.id).remove()


def test_host_up_timeout(conn, reporter):
    host = engine_api.add_host(conn, 'slow', '127.0.0.1', 'Default', port=free_port())
    try:
        with pytest.raises(engine_api.EngineError) as e:
            engine_api.wait_host_up(conn, host.id, 1, 0.3, reporter, name='slow',
                                    bad_grace=600)
        assert 'timed out after 1 s waiting for host slow to be Up' in str(e.value)
        assert '(last: status ' in str(e.value)
    finally:
        conn.system_service().hosts_service().host_service(host.id).remove()


# -- the engine-setup channel ------------------------------------------------------

class Channel:
    """The host side of the VM's setup channel: a listening unix socket that, once
    connected, sends the given chunks (with pauses) and closes or stays open."""

    def __init__(self, path, chunks, delay=0.0, close=True, start_after=0.0):
        self.path = path
        self.chunks = chunks
        self.delay = delay
        self.close = close
        self.start_after = start_after
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.stop = threading.Event()
        self.thread.start()

    def _serve(self):
        time.sleep(self.start_after)
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(self.path)
        srv.listen(1)
        srv.settimeout(10)
        try:
            c, _ = srv.accept()
        except socket.timeout:
            srv.close()
            return
        for chunk in self.chunks:
            c.sendall(chunk)
            time.sleep(self.delay)
        if not self.close:
            self.stop.wait(10)
        c.close()
        srv.close()


def test_channel_streams_lines_until_success(tmp_path, reporter):
    path = str(tmp_path / 'ch.sock')
    Channel(path, [b'[ INFO  ] Stage: Initializing\r\n', b'[ INFO  ] Configuring the ',
                   b'engine\n\n', ('%s\n' % cloud_init.SUCCESS_STRING).encode()],
            delay=0.1, start_after=0.5)
    got = []
    assert engine_api.stream_setup_channel(path, got.append, 20, reporter) is True
    assert got == ['[ INFO  ] Stage: Initializing', '[ INFO  ] Configuring the engine']
    assert any('Waiting for the engine VM setup channel' in line for line in reporter.lines)


def test_channel_fail_line_is_an_error(tmp_path):
    path = str(tmp_path / 'ch.sock')
    Channel(path, [b'[ ERROR ] Failed to execute stage Misc\n',
                   ('%s\n' % cloud_init.FAIL_STRING).encode()])
    got = []
    with pytest.raises(engine_api.EngineSetupFailed) as e:
        engine_api.stream_setup_channel(path, got.append, 20)
    assert got == ['[ ERROR ] Failed to execute stage Misc']
    assert str(e.value) == ('engine-setup failed inside the engine VM: see the output above '
                            'and /var/log/ovirt-engine/setup/ in the VM')


def test_channel_silence_times_out_with_progress(tmp_path, reporter):
    path = str(tmp_path / 'ch.sock')
    ch = Channel(path, [b'starting\n'], close=False)
    got = []
    with pytest.raises(engine_api.EngineError) as e:
        engine_api.stream_setup_channel(path, got.append, 2.5, reporter)
    ch.stop.set()
    assert got == ['starting']
    assert 'did not finish within 2 s (1 lines received' in str(e.value)
    assert 'engineSetupTimeout' in str(e.value) and '\n' not in str(e.value)
    assert any('Waiting for engine-setup in the engine VM' in line and 'last output' in line
               for line in reporter.lines)


def test_channel_closed_by_a_stopped_vm(tmp_path):
    path = str(tmp_path / 'ch.sock')
    Channel(path, [b'half way\n'])
    with pytest.raises(engine_api.EngineError) as e:
        engine_api.stream_setup_channel(path, lambda line: None, 20,
                                        alive=lambda: (False, 'status Down, exit Crashed'))
    assert 'The engine VM stopped before engine-setup finished (status Down, exit ' \
        'Crashed)' in str(e.value)


def test_channel_silent_but_engine_healthy_goes_on(tmp_path, engine):
    # the verdict was written while nobody listened: the health page says the engine is up
    path = str(tmp_path / 'ch.sock')
    ch = Channel(path, [b'some output\n'], close=False)
    got = []

    def healthy():
        ok, reply = engine_api.read_health(engine.http)
        return ok, reply
    t0 = time.monotonic()
    assert engine_api.stream_setup_channel(path, got.append, 30, finished=healthy,
                                           finished_after=1) is False
    ch.stop.set()
    assert got == ['some output'] and time.monotonic() - t0 < 10
