"""Client of the broker's local socket API (docs/ha-services.md).

One JSON document per line each way:
    {"id": N, "method": "...", "params": {...}}  ->  {"id": N, "result": ...}
                                                 or {"id": N, "error": {"code": ..., "message": ...}}
Used by ovirt-ha-agent and by the HA verbs of hosted-engine.
"""
import itertools
import json
import os
import socket

from .. import paths

DEFAULT_SOCKET = os.path.join(paths.HA_RUN_DIR, 'broker.socket')
DEFAULT_TIMEOUT = 30.0


class BrokerUnavailable(Exception):
    """The broker cannot be reached (not running, socket missing, connection lost)."""


class BrokerError(Exception):
    """The broker answered with an error."""

    def __init__(self, code, message):
        super().__init__('%s: %s' % (code, message))
        self.code = code
        self.message = message


class BrokerClient:
    def __init__(self, socket_path=None, timeout=DEFAULT_TIMEOUT):
        self.socket_path = socket_path or DEFAULT_SOCKET
        self.timeout = timeout
        self._sock = None
        self._file = None
        self._ids = itertools.count(1)

    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.socket_path)
        except OSError as e:
            s.close()
            raise BrokerUnavailable('the HA broker is not reachable at %s (%s): is '
                                    'ovirt-ha-broker running?'
                                    % (self.socket_path, e.strerror or e))
        self._sock = s
        self._file = s.makefile('rwb')

    def close(self):
        for obj in (self._file, self._sock):
            if obj is not None:
                try:
                    obj.close()
                except OSError:
                    pass
        self._sock = self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method, **params):
        """Send one request; return its result or raise BrokerError/BrokerUnavailable."""
        if self._sock is None:
            self._connect()
        req_id = next(self._ids)
        data = json.dumps({'id': req_id, 'method': method, 'params': params}).encode() + b'\n'
        try:
            self._file.write(data)
            self._file.flush()
            line = self._file.readline()
        except (OSError, socket.timeout) as e:
            self.close()
            raise BrokerUnavailable('the HA broker did not answer %s: %s' % (method, e))
        if not line:
            self.close()
            raise BrokerUnavailable('the HA broker closed the connection during %s' % method)
        try:
            reply = json.loads(line)
        except ValueError:
            self.close()
            raise BrokerUnavailable('the HA broker sent a malformed reply to %s' % method)
        if reply.get('id') != req_id:
            self.close()
            raise BrokerUnavailable('the HA broker answered another request (%r, expected %r)'
                                    % (reply.get('id'), req_id))
        if 'error' in reply:
            err = reply['error'] or {}
            raise BrokerError(err.get('code', 'error'), err.get('message', ''))
        return reply.get('result')
