"""The engine's health page: the one check that the deploy, the broker's engine health
monitor and `hosted-engine --check-liveliness` make.

    reply = health_page.fetch('http://engine.example.com', timeout=20)
    reply.ok        # the page answered 2xx and its body contains "DB Up"
    reply.url, reply.status, reply.body, reply.error

GET http://<fqdn>/ovirt-engine/services/health, never through a proxy (the engine is
reached directly, as the hosts see it); connecting waits at most CONNECT_TIMEOUT seconds
of the timeout. The engine answers
``DB Up!Welcome to Health Status!`` when it and its database are up.
"""
import http.client
import socket
import urllib.error
import urllib.request

HEALTH_PATH = '/ovirt-engine/services/health'
GOOD_MARK = 'DB Up'
MAX_BODY = 65536

# Connecting gets at most CONNECT_TIMEOUT of the caller's timeout: an engine VM still
# booting, without its address yet, is known not to answer within seconds, not after the
# whole read timeout (which stays for an engine that accepts and is slow to answer).
CONNECT_TIMEOUT = 3.0


class _ConnectTimeout:
    """An http.client connection whose connect() waits at most CONNECT_TIMEOUT."""

    def connect(self):
        whole = self.timeout
        if isinstance(whole, (int, float)):
            self.timeout = min(whole, CONNECT_TIMEOUT)
        try:
            super().connect()
        finally:
            self.timeout = whole
        self.sock.settimeout(whole)


class _HTTPConnection(_ConnectTimeout, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_ConnectTimeout, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_HTTPSConnection, req, context=self._context)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _HTTPHandler,
                                      _HTTPSHandler)


class Reply:
    """What the page said: ``status`` (None when nothing answered), ``body`` (text, at most
    MAX_BODY bytes of it), ``error`` (why nothing answered, else None)."""

    def __init__(self, url, status=None, body='', error=None):
        self.url = url
        self.status = status
        self.body = body
        self.error = error

    @property
    def ok(self):
        return (self.error is None and self.status is not None and 200 <= self.status < 300
                and GOOD_MARK in self.body)

    def __repr__(self):
        return 'Reply(%r, status=%r, body=%r, error=%r)' % (self.url, self.status,
                                                            self.body[:60], self.error)


def url(base):
    """The page's URL under base: 'http://<fqdn>[:port]' or a bare '<fqdn>[:port]'."""
    if '://' not in base:
        base = 'http://' + base
    return base.rstrip('/') + HEALTH_PATH


def fetch(base, timeout):
    """GET the health page under base (see url()); a Reply, never an exception for what
    the network or the server may do."""
    page = url(base)
    try:
        with _OPENER.open(page, timeout=timeout) as r:
            return Reply(page, r.status, r.read(MAX_BODY).decode('utf-8', 'replace'))
    except urllib.error.HTTPError as e:
        try:
            body = e.read(MAX_BODY).decode('utf-8', 'replace')
        except (OSError, http.client.HTTPException):
            body = ''
        return Reply(page, e.code, body)
    except urllib.error.URLError as e:
        reason = e.reason
        return Reply(page, error=str(getattr(reason, 'strerror', None) or reason))
    except (OSError, socket.timeout, http.client.HTTPException, ValueError) as e:
        return Reply(page, error=str(e) or type(e).__name__)
