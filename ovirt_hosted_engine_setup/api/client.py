"""Client of the host agent API: JSON-RPC 2.0 over STOMP 1.2 over TLS.

Works against real VDSM and against the embedded host agent
(ovirt-hosted-engine-hostd):

    with Client('localhost') as c:
        c.Host.ping2()
        caps = c.call('Host.getCapabilities')
        c.StoragePool.connectStorageServer(storagepoolID=..., domainType=6, connectionParams=[...])

Errors: ConnectionFailed (cannot connect / connection lost), CallTimeout (no
answer in time), ServerError(code, message) (the server's JSON-RPC error).
A keyword argument named _timeout sets the timeout of one call.
"""
import json
import logging
import os
import socket
import ssl
import threading
import time
import uuid

from . import stomp
from .errors import CallTimeout, ConnectionFailed, ServerError
from .schema import get_schema, redact

log = logging.getLogger(__name__)

DEFAULT_PORT = 54321
REQUEST_QUEUE = 'jms.topic.vdsm_requests'
EVENT_QUEUE = 'jms.queue.events'
DEFAULT_HOSTD_ROOT = '/var/lib/ovirt-hosted-engine-hostd'
HOSTD_ROOT_ENV = 'OVIRT_HOSTED_ENGINE_HOSTD_ROOT'
VDSM_CAFILE = '/etc/pki/vdsm/certs/cacert.pem'
VDSM_CERTFILE = '/etc/pki/vdsm/certs/vdsmcert.pem'
VDSM_KEYFILE = '/etc/pki/vdsm/keys/vdsmkey.pem'
CLIENT_HEARTBEAT_MS = 24000   # what we ask the server to send


def default_credentials(hostd_root=None):
    """(cafile, certfile, keyfile): the local host agent's client certificate
    (<root>/pki, root from $OVIRT_HOSTED_ENGINE_HOSTD_ROOT or the default),
    else VDSM's certificates."""
    root = hostd_root or os.environ.get(HOSTD_ROOT_ENV) or DEFAULT_HOSTD_ROOT
    pki = os.path.join(root, 'pki')
    ours = (os.path.join(pki, 'cacert.pem'), os.path.join(pki, 'clientcert.pem'),
            os.path.join(pki, 'clientkey.pem'))
    if all(os.path.isfile(p) for p in ours):
        return ours
    return VDSM_CAFILE, VDSM_CERTFILE, VDSM_KEYFILE


class _Pending:
    __slots__ = ('event', 'response')

    def __init__(self):
        self.event = threading.Event()
        self.response = None


class _Namespace:
    def __init__(self, client, name):
        self._client = client
        self._name = name

    def __getattr__(self, verb):
        if verb.startswith('__'):
            raise AttributeError(verb)
        method = '%s.%s' % (self._name, verb)

        def call(*args, _timeout=None, **kwargs):
            if args:
                v = get_schema().verb(method)
                if v is None:
                    raise TypeError('%s: positional parameters need the verb in the schema' % method)
                kwargs = v.bind(args, kwargs)
            return self._client.call(method, kwargs, _timeout=_timeout)
        call.__name__ = verb
        return call


class Client:
    """A connection to a host agent; thread-safe, calls may run concurrently."""

    def __init__(self, host='localhost', port=DEFAULT_PORT, cafile=None, certfile=None,
                 keyfile=None, insecure=False, timeout=60.0, connect_timeout=60.0,
                 reconnect_interval=2.0, event_callback=None, hostd_root=None,
                 check_hostname=False, lazy=False):
        self.host = host
        self.port = int(port)
        self.insecure = insecure
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.reconnect_interval = reconnect_interval
        self.check_hostname = check_hostname
        if not insecure and not (cafile and certfile and keyfile):
            dca, dcert, dkey = default_credentials(hostd_root)
            cafile, certfile, keyfile = cafile or dca, certfile or dcert, keyfile or dkey
        self.cafile, self.certfile, self.keyfile = cafile, certfile, keyfile
        self._event_callbacks = [event_callback] if event_callback else []
        self._lock = threading.RLock()
        self._pending = {}
        self._transport = None
        self._reader = None
        self._closed = False
        self._last_attempt = 0.0
        self._reply_dest = 'jms.queue.reply.%s' % uuid.uuid4()
        self._reply_sub = str(uuid.uuid4())
        self._event_sub = str(uuid.uuid4())
        self._server_heartbeat = 0
        self._generation = 0
        if not lazy:
            self.connect()

    # -- connection ------------------------------------------------------

    def _ssl_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = self.check_hostname
        try:
            ctx.load_verify_locations(self.cafile)
            ctx.load_cert_chain(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as e:
            raise ConnectionFailed(
                'cannot load the client certificates (CA %s, certificate %s, key %s): %s; '
                'give --cafile/--certfile/--keyfile or start the host agent once to create them'
                % (self.cafile, self.certfile, self.keyfile, getattr(e, 'strerror', None) or e))
        return ctx

    def connect(self):
        """Connect (or reconnect) now; raises ConnectionFailed."""
        with self._lock:
            if self._closed:
                raise ConnectionFailed('client is closed')
            if self._transport is not None:
                return
            wait = self._last_attempt + self.reconnect_interval - time.monotonic()
            if self._last_attempt and wait > 0:
                time.sleep(wait)
            self._last_attempt = time.monotonic()
            where = '%s:%d' % (self.host, self.port)
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            except OSError as e:
                raise ConnectionFailed('cannot connect to the host agent at %s: %s; is it running?'
                                       % (where, e.strerror or e))
            try:
                if not self.insecure:
                    sock = self._ssl_context().wrap_socket(sock, server_hostname=self.host)
                transport = stomp.Transport(sock, io_timeout=self.connect_timeout)
                transport.send(stomp.Frame('CONNECT', {
                    'accept-version': '1.2', 'host': self.host,
                    'heart-beat': '0,%d' % CLIENT_HEARTBEAT_MS}))
                frame = self._wait_frame(transport, self.connect_timeout)
                if frame.command != 'CONNECTED':
                    raise ConnectionFailed('the host agent at %s refused the session: %s'
                                           % (where, frame.headers.get('message')
                                              or frame.body.decode('utf-8', 'replace')))
                hb = frame.headers.get('heart-beat', '0,0').split(',')
                try:
                    self._server_heartbeat = int(hb[0]) / 1000.0
                except (ValueError, IndexError):
                    self._server_heartbeat = 0
                transport.send(stomp.Frame('SUBSCRIBE', {
                    'destination': self._reply_dest, 'ack': 'auto', 'id': self._reply_sub}))
                if self._event_callbacks:
                    transport.send(stomp.Frame('SUBSCRIBE', {
                        'destination': EVENT_QUEUE, 'ack': 'auto', 'id': self._event_sub}))
            except ConnectionFailed:
                sock.close()
                raise
            except ssl.SSLError as e:
                sock.close()
                raise ConnectionFailed('TLS handshake with the host agent at %s failed: %s; check '
                                       'that the certificates come from the agent\'s CA'
                                       % (where, e.reason or e))
            except (OSError, EOFError, stomp.FrameError) as e:
                sock.close()
                raise ConnectionFailed('connection to the host agent at %s failed: %s; if it uses '
                                       'TLS, check the client certificate' % (where, e or 'closed'))
            self._transport = transport
            self._generation += 1
            self._reader = threading.Thread(target=self._read_loop, args=(transport,),
                                            name='api-client-reader', daemon=True)
            self._reader.start()
            log.debug('connected to %s', where)
        if self._event_callbacks:
            self._sync()

    def _sync(self):
        """One round trip, so the server has handled the subscriptions sent before."""
        try:
            self.call('Host.ping2', _timeout=self.connect_timeout)
        except (ServerError, CallTimeout) as e:
            log.debug('sync after subscribing: %s', e)

    @staticmethod
    def _wait_frame(transport, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectionFailed('no answer to CONNECT within %.0f s' % timeout)
            frames = transport.receive(left)
            if frames:
                return frames[0]

    def _read_loop(self, transport):
        reason = 'connection closed'
        try:
            while not self._closed:
                frames = transport.receive(1.0)
                for f in frames:
                    self._dispatch(f)
                if (self._server_heartbeat and
                        time.monotonic() - transport.last_received > 2.5 * self._server_heartbeat):
                    reason = 'no heart-beat from the host agent'
                    break
        except (EOFError, OSError, stomp.FrameError) as e:
            reason = str(e) or reason
        except Exception:  # keep the client usable whatever a callback did
            if self._closed:
                log.debug('API client reader stopped on close', exc_info=True)
            else:
                log.exception('API client reader failed')
            reason = 'internal error in the reader'
        self._lost(transport, reason)

    def _lost(self, transport, reason):
        with self._lock:
            if self._transport is not transport:
                return
            self._transport = None
            pending, self._pending = self._pending, {}
        transport.close()
        for p in pending.values():
            p.response = ConnectionFailed('connection to the host agent at %s:%d lost: %s'
                                          % (self.host, self.port, reason))
            p.event.set()
        if self._event_callbacks and not self._closed:
            threading.Thread(target=self._reconnect_loop, name='api-client-reconnect',
                             daemon=True).start()

    def _reconnect_loop(self):
        while not self._closed:
            try:
                self.connect()
                return
            except ConnectionFailed as e:
                log.debug('reconnect failed: %s', e)
                time.sleep(self.reconnect_interval)

    def _dispatch(self, frame):
        if frame.command == 'ERROR':
            log.warning('host agent error frame: %s %s', frame.headers.get('message'),
                        frame.body[:200])
            return
        if frame.command != 'MESSAGE':
            return
        try:
            msg = json.loads(frame.body.decode('utf-8'))
        except (ValueError, UnicodeDecodeError):
            log.warning('undecodable message from the host agent')
            return
        for item in (msg if isinstance(msg, list) else [msg]):
            if not isinstance(item, dict):
                continue
            if 'id' in item and item.get('id') is not None and (
                    'result' in item or 'error' in item):
                with self._lock:
                    p = self._pending.pop(item['id'], None)
                if p:
                    p.response = item
                    p.event.set()
            elif 'method' in item:
                for cb in list(self._event_callbacks):
                    try:
                        cb(item['method'], item.get('params'))
                    except Exception:
                        log.exception('event callback failed for %s', item['method'])

    # -- calls -----------------------------------------------------------

    def subscribe_events(self, callback):
        """callback(method, params) for each event (e.g. '|virt|VM_status|<vmId>')."""
        with self._lock:
            first = not self._event_callbacks
            self._event_callbacks.append(callback)
            subscribe = first and self._transport is not None
            if subscribe:
                self._transport.send(stomp.Frame('SUBSCRIBE', {
                    'destination': EVENT_QUEUE, 'ack': 'auto', 'id': self._event_sub}))
        if subscribe:
            self._sync()

    def _send(self, payload, ids, timeout, correlation_id=None):
        if self._transport is None:
            self.connect()
        body = json.dumps(payload).encode('utf-8')
        pend = {i: _Pending() for i in ids}
        headers = {'destination': REQUEST_QUEUE, 'content-type': 'application/json',
                   'reply-to': self._reply_dest}
        if correlation_id:
            headers['ovirtCorrelationId'] = correlation_id
        with self._lock:
            transport = self._transport
            if transport is None:
                raise ConnectionFailed('not connected to the host agent at %s:%d'
                                       % (self.host, self.port))
            self._pending.update(pend)
        try:
            transport.send(stomp.Frame('SEND', headers, body))
        except OSError as e:
            with self._lock:
                for i in ids:
                    self._pending.pop(i, None)
            self._lost(transport, str(e))
            raise ConnectionFailed('sending to the host agent at %s:%d failed: %s'
                                   % (self.host, self.port, e))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = {}
        for i, p in pend.items():
            if not p.event.wait(max(0.0, deadline - time.monotonic())):
                with self._lock:
                    for j in ids:
                        self._pending.pop(j, None)
                raise CallTimeout('no answer from the host agent at %s:%d within %.0f s to %s'
                                  % (self.host, self.port,
                                     self.timeout if timeout is None else timeout,
                                     _methods(payload)))
            if isinstance(p.response, Exception):
                raise p.response
            out[i] = p.response
        return out

    def call(self, _method, _params=None, _timeout=None, _correlation_id=None, **params):
        """Call verb _method ('Namespace.verb') with params; return its result."""
        if _params:
            params = dict(_params, **params)
        req_id = str(uuid.uuid4())
        secrets = get_schema().secret_names
        log.debug('call %s %s', _method, redact(params, secrets))
        resp = self._send({'jsonrpc': '2.0', 'method': _method, 'params': params, 'id': req_id},
                          [req_id], _timeout, _correlation_id)[req_id]
        return _result(resp)

    def batch(self, calls, _timeout=None):
        """Send [(method, params), ...] as one JSON-RPC batch; return a list
        with each call's result, or its ServerError instance."""
        reqs = []
        for method, params in calls:
            reqs.append({'jsonrpc': '2.0', 'method': method, 'params': params or {},
                         'id': str(uuid.uuid4())})
        resps = self._send(reqs, [r['id'] for r in reqs], _timeout)
        out = []
        for r in reqs:
            try:
                out.append(_result(resps[r['id']]))
            except ServerError as e:
                out.append(e)
        return out

    def ping(self, timeout=None):
        """True when the agent answers Host.ping2."""
        return self.call('Host.ping2', _timeout=timeout) is True

    def __getattr__(self, name):
        if name[:1].isupper():
            return _Namespace(self, name)
        raise AttributeError(name)

    @property
    def connected(self):
        return self._transport is not None

    def close(self):
        with self._lock:
            self._closed = True
            transport, self._transport = self._transport, None
            pending, self._pending = self._pending, {}
        for p in pending.values():
            p.response = ConnectionFailed('client closed')
            p.event.set()
        if transport is not None:
            try:
                transport.send(stomp.Frame('DISCONNECT', {}))
            except OSError:
                pass
            transport.close()
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _methods(payload):
    if isinstance(payload, list):
        return 'batch of %d calls' % len(payload)
    return payload.get('method')


def _result(resp):
    if 'error' in resp and resp['error'] is not None:
        err = resp['error']
        if isinstance(err, dict):
            raise ServerError(err.get('code'), err.get('message'))
        raise ServerError(None, str(err))
    return resp.get('result')
