"""The broker's local socket API: JSON lines over a UNIX stream socket.

Request ``{"id": N, "method": "...", "params": {...}}``, answer
``{"id": N, "result": ...}`` or ``{"id": N, "error": {"code", "message"}}``.
One thread per connection; requests of a connection are answered in order.
Bad JSON, an unknown method or bad parameters give an error answer, never a
crash. The socket is created with mode 0600 (bound under a temporary name,
chmod, then renamed into place).
"""
import inspect
import json
import logging
import os
import socket
import threading

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20


class ApiError(Exception):
    """An error answer: code (a short name) and a one-line message."""

    def __init__(self, code, message):
        super().__init__('%s: %s' % (code, message))
        self.code = code
        self.message = message


class Server:
    """Serves ``methods`` (name -> callable taking the params as keywords) on ``path``."""

    def __init__(self, path, methods):
        self.path = path
        self.methods = dict(methods)
        self._sock = None
        self._thread = None
        self._stopping = threading.Event()
        self._conns = set()
        self._lock = threading.Lock()

    def start(self):
        directory = os.path.dirname(self.path) or '.'
        os.makedirs(directory, mode=0o755, exist_ok=True)
        tmp = '%s.%d.tmp' % (self.path, os.getpid())
        if os.path.exists(tmp):
            os.unlink(tmp)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(tmp)
            os.chmod(tmp, 0o600)
            sock.listen(16)
            os.rename(tmp, self.path)
        except OSError:
            sock.close()
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name='api-accept', daemon=True)
        self._thread.start()
        log.info('broker API listening on %s', self.path)
        return self

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name='api-conn',
                             daemon=True).start()

    def _serve(self, conn):
        try:
            f = conn.makefile('rwb')
            while not self._stopping.is_set():
                line = f.readline(MAX_LINE + 1)
                if not line:
                    return
                if not line.strip():
                    continue
                if len(line) > MAX_LINE and not line.endswith(b'\n'):
                    f.write(self._encode({'id': None, 'error': {
                        'code': 'bad-request', 'message': 'request longer than %d bytes'
                        % MAX_LINE}}))
                    f.flush()
                    return
                f.write(self._encode(self.handle(line)))
                f.flush()
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _encode(reply):
        return json.dumps(reply).encode('utf-8') + b'\n'

    def handle(self, line):
        """The answer (a dict) to one request line."""
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError) as e:
            return {'id': None, 'error': {'code': 'bad-request',
                                          'message': 'not a JSON document: %s' % e}}
        if not isinstance(req, dict):
            return {'id': None, 'error': {'code': 'bad-request',
                                          'message': 'a request is a JSON object'}}
        req_id = req.get('id')
        method = req.get('method')
        params = req.get('params') or {}
        if not isinstance(method, str) or method not in self.methods:
            known = ', '.join(sorted(self.methods))
            return {'id': req_id, 'error': {'code': 'unknown-method',
                                            'message': 'no method %r; known: %s' % (method, known)}}
        if not isinstance(params, dict):
            return {'id': req_id, 'error': {'code': 'bad-params',
                                            'message': 'params must be a JSON object'}}
        func = self.methods[method]
        try:
            inspect.signature(func).bind(**params)
        except TypeError as e:
            return {'id': req_id, 'error': {'code': 'bad-params',
                                            'message': '%s: %s' % (method, e)}}
        try:
            result = func(**params)
        except ApiError as e:
            return {'id': req_id, 'error': {'code': e.code, 'message': e.message}}
        except (TypeError, ValueError) as e:
            return {'id': req_id, 'error': {'code': 'bad-params',
                                            'message': '%s: %s' % (method, e)}}
        except Exception as e:
            log.exception('broker method %s failed', method)
            text = ' '.join(str(e).split()) or type(e).__name__
            return {'id': req_id, 'error': {'code': 'internal-error',
                                            'message': '%s failed: %s; see the broker log'
                                            % (method, text)}}
        return {'id': req_id, 'result': result}

    def stop(self):
        self._stopping.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self._thread is not None:
            self._thread.join(5)
