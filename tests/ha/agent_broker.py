"""A small broker for the agent tests: the JSON-lines socket API of docs/ha-services.md.

It keeps a metadata area in memory: ``put_host`` writes the caller's slot with
metadata.serialize_host (the real slot format, its own monotonic timestamp) and
``read_area`` returns the area, so the agent reads back what it published. The
test sets the other answers (monitor values, engine health, lockspace, lease
owner) and reads the calls it received.
"""
import base64
import json
import os
import socket
import threading
import time

from ovirt_hosted_engine_setup.ha import metadata


class ScriptedBroker:
    def __init__(self, path, host_id=1, max_hosts=4, hostname='host1'):
        self.path = path
        self.host_id = host_id
        self.max_hosts = max_hosts
        self.hostname = hostname
        self.lock = threading.Lock()
        self.calls = []
        self.area = bytearray(metadata.area_size(max_hosts))
        self.area[0:metadata.SLOT_SIZE] = metadata.serialize_global(False)
        self.held = True
        self.live_ids = [host_id]
        self.storage_connected = True
        self.lease_owner = None
        self.engine_health = None      # callable -> engine status dict, or a dict
        self.monitor_values = {'network': 1.0, 'bridge_up': True, 'mem_free_mb': 16384,
                               'cpu_load': 0.05, 'storage_valid': True, 'storage_delay': 0.01}
        self.fail = {}                 # method -> (code, message)
        self._sock = None
        self._threads = []
        self._stop = threading.Event()

    # -- server ------------------------------------------------------------------
    def start(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(self.path):
            os.unlink(self.path)
        s.bind(self.path)
        os.chmod(self.path, 0o600)
        s.listen(8)
        s.settimeout(0.2)
        self._sock = s
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(5)
        if self._sock:
            self._sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn):
        conn.settimeout(0.2)
        buf = b''
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b'\n' in buf:
                    line, buf = buf.split(b'\n', 1)
                    req = json.loads(line)
                    reply = {'id': req.get('id')}
                    try:
                        reply['result'] = self.handle(req['method'], req.get('params') or {})
                    except BrokerFault as e:
                        reply['error'] = {'code': e.code, 'message': e.message}
                    conn.sendall(json.dumps(reply).encode() + b'\n')

    # -- API ----------------------------------------------------------------------
    def handle(self, method, params):
        with self.lock:
            self.calls.append((method, params))
            if method in self.fail:
                raise BrokerFault(*self.fail[method])
        if method == 'ping':
            return True
        if method == 'status':
            if not self.storage_connected:      # a starting broker, as broker.status()
                return {'host_id': self.host_id, 'hostname': self.hostname, 'max_hosts': None,
                        'storage': {'connected': False, 'error': 'not connected yet'},
                        'lockspace': {'held': False, 'live_ids': None,
                                      'error': 'storage not connected'}}
            return {'host_id': self.host_id, 'hostname': self.hostname,
                    'max_hosts': self.max_hosts,
                    'storage': {'connected': True, 'error': None},
                    'lockspace': {'held': self.held, 'live_ids': self.live_ids, 'error': None}}
        if method == 'monitors':
            health = self.engine_health() if callable(self.engine_health) else self.engine_health
            out = dict(self.monitor_values, engine_health=health)
            out['age'] = {k: 0.0 for k in out}
            return out
        if method == 'read_area':
            with self.lock:
                area = bytes(self.area)
            return {'area': base64.b64encode(area).decode(), 'max_hosts': self.max_hosts,
                    'read_delay': 0.001, 'liveness': {}, 'sanlock_live': self.live_ids}
        if method == 'vm_lease_owner':
            return self.lease_owner
        if method == 'notify':
            return {'sent': False, 'reason': 'no mail configured in the test broker'}
        if method == 'put_host':
            if not self.held:
                raise BrokerFault('lockspace-not-held', 'host id %d not held' % self.host_id)
            slot = metadata.serialize_host(
                self.host_id, int(time.monotonic()), params['score'], params['engine_status'],
                self.hostname, local_maintenance=params['local_maintenance'],
                stopped=params['stopped'], state=params['state'], timeout=params['timeout'],
                vm_conf_refresh_time=params['vm_conf_refresh_time'])
            off = self.host_id * metadata.SLOT_SIZE
            with self.lock:
                self.area[off:off + metadata.SLOT_SIZE] = slot
            return True
        if method == 'set_global_maintenance':
            with self.lock:
                self.area[0:metadata.SLOT_SIZE] = metadata.serialize_global(params['enabled'])
            return True
        raise BrokerFault('unknown-method', 'no method %s' % method)

    # -- for the test -------------------------------------------------------------
    def published(self):
        """The put_host calls received, in order."""
        with self.lock:
            return [p for m, p in self.calls if m == 'put_host']

    def methods(self):
        with self.lock:
            return [m for m, _ in self.calls]


class BrokerFault(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message
