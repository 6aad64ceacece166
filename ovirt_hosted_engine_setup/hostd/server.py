"""The host agent's server: JSON-RPC 2.0 over STOMP 1.2 over TLS.

One thread per connection reads frames; verbs run in a worker pool so a slow
verb never delays another (Host.ping2 stays quick). Requests are validated
against the API schema before a backend sees them; answers go to the
request's reply-to destination, events to the subscribers of jms.queue.events.
"""
import concurrent.futures
import json
import logging
import os
import socket
import ssl
import threading
import time
import traceback
import uuid

from ..api import stomp
from ..api.schema import (INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
                          InvalidParams, error_code, redact)
from .api_base import VdsmError, verbs_of

log = logging.getLogger(__name__)

REQUEST_QUEUE = 'jms.topic.vdsm_requests'
EVENT_QUEUE = 'jms.queue.events'
SERVER_HEARTBEAT_MS = 24000
GENERAL_ERROR = error_code('general')
HANDSHAKE_TIMEOUT = 20.0


class SetupError(Exception):
    """The server cannot start as configured (a one-line reason)."""


def build_verb_table(schema, backends):
    """{'Namespace.verb': bound method} from backends; refuses verbs the
    schema lacks and verbs two backends both serve."""
    table = {}
    for b in backends:
        for name, fn in verbs_of(b).items():
            if schema.verb(name) is None:
                raise SetupError('%s serves %s, which is not in the API schema'
                                 % (type(b).__name__, name))
            if name in table:
                raise SetupError('%s is served by both %s and %s' % (
                    name, type(table[name].__self__).__name__, type(b).__name__))
            table[name] = fn
    return table


def _error(code, message, req_id):
    return {'jsonrpc': '2.0', 'error': {'code': code, 'message': message}, 'id': req_id}


class Dispatcher:
    """Runs JSON-RPC requests against the verb table."""

    def __init__(self, schema, table):
        self.schema = schema
        self.table = table
        self.on_request = None      # called when a request arrives (connectivity checks)

    def run(self, req):
        """The response dict for one request (dict), or None for a notification."""
        if self.on_request is not None:
            self.on_request()
        if not isinstance(req, dict) or req.get('jsonrpc') != '2.0' \
                or not isinstance(req.get('method'), str) \
                or not isinstance(req.get('params', {}), (dict, list, type(None))) \
                or not isinstance(req.get('id'), (str, int, type(None))) \
                or isinstance(req.get('id'), bool):
            rid = req.get('id') if isinstance(req, dict) and isinstance(
                req.get('id'), (str, int)) else None
            return _error(INVALID_REQUEST, 'Invalid request: a JSON-RPC 2.0 request needs '
                          '"jsonrpc": "2.0", a string "method", object "params" and an id', rid)
        notification = 'id' not in req
        rid = req.get('id')
        method = req['method']
        resp = self._call(method, req.get('params'), rid)
        return None if notification else resp

    def _call(self, method, params, rid):
        verb = self.schema.verb(method)
        if verb is None:
            return _error(METHOD_NOT_FOUND, 'Method not found: %s' % method, rid)
        fn = self.table.get(method)
        if fn is None:
            return _error(METHOD_NOT_FOUND,
                          '%s is not implemented by this host agent' % method, rid)
        try:
            kwargs = verb.validate(params)
        except InvalidParams as e:
            return _error(INVALID_PARAMS, 'Invalid params: %s' % e, rid)
        secrets = self.schema.secret_names
        log.info('call %s %s (id %s)', method, json.dumps(redact(kwargs, secrets)), rid)
        start = time.monotonic()
        try:
            result = fn(**kwargs)
        except VdsmError as e:
            log.info('%s failed: %s (code %d)', method, e.message, e.code)
            return _error(e.code, e.message, rid)
        except Exception as e:
            log.error('%s failed unexpectedly: %s\n%s', method, e, traceback.format_exc())
            return _error(GENERAL_ERROR, 'General Exception: %s failed: %s: %s; see the host '
                          'agent log' % (method, type(e).__name__, e), rid)
        if result is None:
            result = True
        log.debug('%s returned in %.3f s: %s', method, time.monotonic() - start,
                  _short(redact(result, secrets)))
        return {'jsonrpc': '2.0', 'result': result, 'id': rid}


def _short(value, limit=2000):
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


class _Connection:
    def __init__(self, server, sock, peer):
        self.server = server
        self.raw = sock
        self.peer = '%s:%s' % peer[:2] if isinstance(peer, tuple) else str(peer)
        self.transport = None
        self.connected = False
        self.subscriptions = {}        # id -> destination
        self.heartbeat = 0.0           # seconds between our heart-beats (0: none)
        self.last_sent = time.monotonic()
        self.alive = True

    def send(self, frame):
        if not self.alive or self.transport is None:
            return False
        try:
            self.transport.send(frame)
            self.last_sent = time.monotonic()
            return True
        except OSError as e:
            log.info('%s: send failed: %s', self.peer, e)
            self.alive = False
            return False

    def send_error(self, message, detail=''):
        self.send(stomp.Frame('ERROR', {'message': message, 'content-type': 'text/plain'},
                              detail or message))

    def subscription_for(self, destination):
        for sid, dest in self.subscriptions.items():
            if dest == destination:
                return sid
        return None

    def reply(self, destination, payload):
        headers = {'destination': destination, 'content-type': 'application/json'}
        sid = self.subscription_for(destination)
        if sid is not None:
            headers['subscription'] = sid
        headers['message-id'] = str(uuid.uuid4())
        self.send(stomp.Frame('MESSAGE', headers, json.dumps(payload).encode('utf-8')))

    def run(self):
        try:
            self._run()
        except Exception:
            log.exception('%s: connection handler failed', self.peer)
        finally:
            self.alive = False
            self.server._forget(self)
            if self.transport is not None:
                self.transport.close()
            else:
                try:
                    self.raw.close()
                except OSError:
                    pass

    def _run(self):
        sock = self.raw
        if self.server.ssl_context is not None:
            sock.settimeout(HANDSHAKE_TIMEOUT)
            try:
                sock = self.server.ssl_context.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log.warning('%s: TLS handshake refused: %s', self.peer,
                            getattr(e, 'reason', e) or e)
                return
            self.raw = sock
        self.transport = stomp.Transport(sock, max_frame=self.server.max_frame)
        log.debug('%s: connected', self.peer)
        while self.alive and not self.server.stopping:
            try:
                frames = self.transport.receive(1.0)
            except stomp.FrameTooLarge as e:
                log.warning('%s: %s; closing the connection', self.peer, e)
                self.send_error('frame too large', str(e))
                return
            except stomp.FrameError as e:
                log.warning('%s: malformed frame: %s; closing the connection', self.peer, e)
                self.send_error('malformed frame', str(e))
                return
            except EOFError:
                log.debug('%s: closed by peer', self.peer)
                return
            except OSError as e:
                log.info('%s: connection error: %s', self.peer, e)
                return
            for f in frames:
                if not self._handle(f):
                    return
            if self.heartbeat and time.monotonic() - self.last_sent >= self.heartbeat:
                self.send(stomp.HEARTBEAT)

    def _handle(self, f):
        """Handle one frame; False closes the connection."""
        if f.command in ('CONNECT', 'STOMP'):
            versions = f.headers.get('accept-version', '1.0').split(',')
            if '1.2' not in [v.strip() for v in versions]:
                self.send_error('unsupported protocol version',
                                'supported STOMP version: 1.2 (client offered %s)'
                                % ','.join(versions))
                return False
            hb = f.headers.get('heart-beat', '0,0').split(',')
            try:
                wanted = int(hb[1]) if len(hb) > 1 else 0
            except ValueError:
                wanted = 0
            self.heartbeat = max(wanted, SERVER_HEARTBEAT_MS) / 1000.0 if wanted > 0 else 0.0
            self.connected = True
            self.send(stomp.Frame('CONNECTED', {'version': '1.2',
                                                'heart-beat': '%d,0' % SERVER_HEARTBEAT_MS}))
            return True
        if not self.connected:
            self.send_error('not connected', 'send CONNECT first')
            return False
        if f.command == 'SUBSCRIBE':
            dest, sid = f.headers.get('destination'), f.headers.get('id')
            if not dest or sid is None:
                self.send_error('invalid SUBSCRIBE', 'SUBSCRIBE needs destination and id')
                return False
            self.subscriptions[sid] = dest
            if dest == EVENT_QUEUE:
                self.server._add_event_subscriber(self)
        elif f.command == 'UNSUBSCRIBE':
            dest = self.subscriptions.pop(f.headers.get('id'), None)
            if dest == EVENT_QUEUE and not self.subscription_for(EVENT_QUEUE):
                self.server._remove_event_subscriber(self)
        elif f.command == 'SEND':
            self._on_send(f)
        elif f.command == 'DISCONNECT':
            receipt = f.headers.get('receipt')
            if receipt:
                self.send(stomp.Frame('RECEIPT', {'receipt-id': receipt}))
            return False
        elif f.command in ('ACK', 'NACK', 'BEGIN', 'COMMIT', 'ABORT'):
            pass
        else:
            self.send_error('unknown command', 'unknown STOMP command %s' % f.command)
            return False
        receipt = f.headers.get('receipt')
        if receipt and f.command != 'DISCONNECT':
            self.send(stomp.Frame('RECEIPT', {'receipt-id': receipt}))
        return True

    def _on_send(self, f):
        reply_to = f.headers.get('reply-to')
        if not reply_to:
            # Without reply-to, answer on the client's only subscription if any.
            subs = [d for d in self.subscriptions.values() if d != EVENT_QUEUE]
            reply_to = subs[0] if subs else None
        try:
            msg = json.loads(f.body.decode('utf-8'))
        except (ValueError, UnicodeDecodeError) as e:
            log.info('%s: unparsable request: %s', self.peer, e)
            if reply_to:
                self.reply(reply_to, _error(PARSE_ERROR, 'Parse error: %s' % e, None))
            return
        corr = f.headers.get('ovirtCorrelationId')
        if corr:
            log.info('%s: correlation id %s', self.peer, corr)
        if isinstance(msg, list):
            if not msg:
                if reply_to:
                    self.reply(reply_to, _error(INVALID_REQUEST,
                                                'Invalid request: empty batch', None))
                return
            futures = [self.server.submit(r) for r in msg]

            def batch_done(_f, futures=futures, remaining=[len(futures)],
                           lock=threading.Lock()):
                with lock:
                    remaining[0] -= 1
                    if remaining[0]:
                        return
                out = [fu.result() for fu in futures]
                out = [r for r in out if r is not None]
                if out and reply_to:
                    self.reply(reply_to, out)
            for fu in futures:
                fu.add_done_callback(batch_done)
        else:
            fu = self.server.submit(msg)

            def done(fu):
                resp = fu.result()
                if resp is not None and reply_to:
                    self.reply(reply_to, resp)
            fu.add_done_callback(done)


class Server:
    """Serves the verb table on address:port; ssl_context None means plain TCP."""

    def __init__(self, schema, table, address='::', port=54321, ssl_context=None,
                 max_frame=stomp.DEFAULT_MAX_FRAME, workers=8):
        self.schema = schema
        self.dispatcher = Dispatcher(schema, table)
        self.address = address
        self.port = port
        self.ssl_context = ssl_context
        self.max_frame = max_frame
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                          thread_name_prefix='verb')
        self.stopping = False
        self._lock = threading.Lock()
        self._connections = set()
        self._event_subscribers = set()
        self._sock = None

    def submit(self, req):
        def run():
            try:
                return self.dispatcher.run(req)
            except Exception as e:   # never lose an answer
                log.error('request failed: %s\n%s', e, traceback.format_exc())
                rid = req.get('id') if isinstance(req, dict) else None
                return _error(GENERAL_ERROR, 'General Exception: %s' % e, rid)
        return self.pool.submit(run)

    def bind(self):
        family = socket.AF_INET6 if ':' in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        try:
            sock.bind((self.address, self.port))
        except OSError as e:
            sock.close()
            raise SetupError('cannot listen on %s port %d: %s' % (self.address, self.port,
                                                                  e.strerror or e))
        sock.listen(64)
        sock.settimeout(0.5)
        self._sock = sock
        self.port = sock.getsockname()[1]
        return self.port

    def serve_forever(self):
        if self._sock is None:
            self.bind()
        log.info('serving on %s port %d (%s)', self.address, self.port,
                 'TLS' if self.ssl_context else 'plain TCP')
        while not self.stopping:
            try:
                conn, peer = self._sock.accept()
            except socket.timeout:
                continue
            except OSError as e:
                if self.stopping:
                    break
                log.warning('accept failed: %s', e)
                time.sleep(0.1)
                continue
            c = _Connection(self, conn, peer)
            with self._lock:
                self._connections.add(c)
            threading.Thread(target=c.run, name='conn-%s' % c.peer, daemon=True).start()
        self._sock.close()

    def stop(self):
        self.stopping = True

    def shutdown(self, timeout=10):
        """Stop accepting, close connections, wait for running verbs."""
        self.stopping = True
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            c.alive = False
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _forget(self, conn):
        with self._lock:
            self._connections.discard(conn)
            self._event_subscribers.discard(conn)

    def _add_event_subscriber(self, conn):
        with self._lock:
            self._event_subscribers.add(conn)

    def _remove_event_subscriber(self, conn):
        with self._lock:
            self._event_subscribers.discard(conn)

    def emit(self, method, params):
        """Send a JSON-RPC notification to every events subscriber."""
        with self._lock:
            subs = list(self._event_subscribers)
        log.debug('event %s to %d subscribers', method, len(subs))
        payload = {'jsonrpc': '2.0', 'method': method, 'params': params}
        for c in subs:
            c.reply(EVENT_QUEUE, payload)


def server_ssl_context(cafile, certfile, keyfile, trusted_dir=None):
    """TLS server context requiring client certificates signed by cafile or by
    a CA certificate in trusted_dir (default: trusted-cas/ next to cafile)."""
    if trusted_dir is None:
        trusted_dir = os.path.join(os.path.dirname(os.path.abspath(cafile)), TRUSTED_CAS_DIR)
    return ServerContext(cafile, certfile, keyfile, trusted_dir)


TRUSTED_CAS_DIR = 'trusted-cas'


class ServerContext:
    """The agent's TLS server context and its trust store.

    Client certificates must chain to the agent's own CA or to one of the CA
    certificates in trusted_dir/*.pem (where a deploy installs the engine's
    CA, as oVirt's host-deploy does on a VDSM host). The directory is looked at
    on each new connection: when its *.pem files change, the context is built
    again, so a CA added or removed there counts from the next connection on,
    without restarting the agent. A file that is not a PEM CA certificate is
    skipped with a warning."""

    def __init__(self, cafile, certfile, keyfile, trusted_dir):
        self.cafile, self.certfile, self.keyfile = cafile, certfile, keyfile
        self.trusted_dir = trusted_dir
        self._lock = threading.Lock()
        self._ctx = None
        self._signature = None
        self.current()

    def _trusted_files(self):
        try:
            names = sorted(n for n in os.listdir(self.trusted_dir) if n.endswith('.pem'))
        except FileNotFoundError:
            return ()
        except OSError as e:
            log.warning('cannot read the trusted CA directory %s: %s', self.trusted_dir,
                        e.strerror or e)
            return ()
        out = []
        for n in names:
            path = os.path.join(self.trusted_dir, n)
            try:
                st = os.stat(path)
            except OSError:
                continue
            out.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def current(self):
        """The SSLContext for a new connection."""
        files = self._trusted_files()
        with self._lock:
            if self._ctx is not None and files == self._signature:
                return self._ctx
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.cafile)
            ctx.load_cert_chain(self.certfile, self.keyfile)
            for path, _, _, _ in files:
                try:
                    ctx.load_verify_locations(path)
                except (ssl.SSLError, OSError, ValueError) as e:
                    log.warning('trusted CA file %s skipped: %s; put a PEM CA certificate '
                                'there', path, getattr(e, 'reason', None) or e)
                    continue
                log.info('trusting client certificates from the CA in %s', path)
            self._ctx = ctx
            self._signature = files
            return ctx

    def wrap_socket(self, sock, server_side=True):
        return self.current().wrap_socket(sock, server_side=server_side)
