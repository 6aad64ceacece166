"""health_page.py, the one engine health-page check, against real servers on loopback, and
the three users of it (the deploy, the broker's engine health monitor, --check-liveliness)
reaching it."""
import inspect
import socket
import threading
import time

from ovirt_hosted_engine_setup import health_page
from ovirt_hosted_engine_setup.deploy import engine_api
from ovirt_hosted_engine_setup.ha import cli_verbs
from ovirt_hosted_engine_setup.ha.broker import engine_health

from .broker.httpd import HealthServer


class GarbageServer:
    """Answers every connection with a line that is not HTTP."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(4)
        self.fqdn = '127.0.0.1:%d' % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b'garbage\r\n\r\n')

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_good_page():
    with HealthServer() as srv:
        for base in (srv.fqdn, 'http://' + srv.fqdn, 'http://%s/' % srv.fqdn):
            r = health_page.fetch(base, 5)
            assert r.ok and r.status == 200 and r.error is None
            assert r.url == 'http://%s/ovirt-engine/services/health' % srv.fqdn
            assert r.body == 'DB Up!Welcome to Health Status!'


def test_bad_pages():
    with HealthServer(body=b'DB Down') as srv:
        r = health_page.fetch(srv.fqdn, 5)
        assert not r.ok and r.status == 200 and r.body == 'DB Down'
    with HealthServer(code=503, body=b'DB Up') as srv:
        r = health_page.fetch(srv.fqdn, 5)
        assert not r.ok and r.status == 503 and r.body == 'DB Up'


def test_no_answer_is_a_reply_not_an_exception():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    r = health_page.fetch('127.0.0.1:%d' % port, 2)
    assert not r.ok and r.status is None and 'refused' in r.error.lower()
    with GarbageServer() as srv:
        r = health_page.fetch(srv.fqdn, 2)
        assert not r.ok and r.status is None and r.error


def test_connecting_waits_less_than_the_whole_timeout(monkeypatch):
    """A server whose accept queue is full drops the SYN (as an engine VM without its address
    yet never answers it): the fetch gives up after CONNECT_TIMEOUT, not the read timeout."""
    monkeypatch.setattr(health_page, 'CONNECT_TIMEOUT', 0.5)
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen(0)
    fillers = []
    try:
        for _ in range(4):      # fill the accept queue (never accepted)
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(srv.getsockname())
            fillers.append(c)
        time.sleep(0.2)
        t0 = time.monotonic()
        r = health_page.fetch('127.0.0.1:%d' % srv.getsockname()[1], 30)
        took = time.monotonic() - t0
    finally:
        for c in fillers:
            c.close()
        srv.close()
    assert not r.ok and r.status is None and 'timed out' in r.error
    assert took < 10, took


def test_a_slow_answer_gets_the_whole_timeout(monkeypatch):
    """Once connected, the page has the caller's whole timeout to answer."""
    monkeypatch.setattr(health_page, 'CONNECT_TIMEOUT', 0.2)
    with HealthServer(delay=1.0) as srv:
        r = health_page.fetch(srv.fqdn, 5)
    assert r.ok, r


def test_the_deploy_survives_a_reply_that_is_not_http():
    # before the check was shared, the deploy's own copy let http.client's BadStatusLine out
    with GarbageServer() as srv:
        ok, why = engine_api.read_health('http://' + srv.fqdn, timeout=2)
    assert not ok and why.startswith('no answer from http://%s/ovirt-engine/services/health: '
                                     % srv.fqdn)


def test_the_three_checks_agree():
    for body, code, good in ((b'DB Up!Welcome to Health Status!', 200, True),
                             (b'DB Down', 200, False), (b'DB Up', 500, False)):
        with HealthServer(body=body, code=code) as srv:
            assert engine_api.read_health('http://' + srv.fqdn)[0] is good
            assert engine_health.fetch_health(srv.fqdn)[0] is good
            assert health_page.fetch(srv.fqdn, 5).ok is good


def test_one_piece_of_code():
    for mod in (engine_api, engine_health, cli_verbs):
        src = inspect.getsource(mod)
        assert 'health_page.fetch(' in src, mod.__name__
        assert "'/ovirt-engine/services/health'" not in src, mod.__name__
        assert "'DB Up'" not in src and "b'DB Up'" not in src, mod.__name__
