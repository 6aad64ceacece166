"""A host agent's backends (storage + VMs) in their own process, driven over a pipe.

One process talks to one sanlock daemon (the client library reads
SANLOCK_RUN_DIR once), so each test host runs its backends in a process of its
own. Requests: JSON lines {"verb": "Namespace.verb", "params": {...}} or
{"op": "close"}; answers: {"result": ...} or {"error": [code, message]}.
Events emitted by the backends are collected and returned by {"op": "events"}.

Usage: python -m tests.hostd.hostproc BASE SANLOCK_RUN_DIR LIBVIRT_URI IO_TIMEOUT
"""
import json
import os
import subprocess
import sys
import threading


def main():
    base, sanlock_run_dir, uri, io_timeout = sys.argv[1:5]
    # tests/ on the path, as pytest has it: the test helpers import daemon_proc from there
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from ovirt_hosted_engine_setup.api.schema import INVALID_PARAMS, InvalidParams, get_schema
    from ovirt_hosted_engine_setup.hostd.api_base import VdsmError, verbs_of
    from ovirt_hosted_engine_setup.hostd.storage import StorageBackend
    from ovirt_hosted_engine_setup.hostd.vm import VMBackend
    from tests.hostd.conftest import make_ctx
    events = []
    lock = threading.Lock()

    def emit(method, params):
        with lock:
            events.append([method, params])
    ctx = make_ctx(base, sanlock_run_dir, libvirt_uri=uri, emit_event=emit)
    ctx.sanlock_io_timeout = int(io_timeout)
    backends = [StorageBackend(ctx), VMBackend(ctx)]
    ctx.backends = backends
    verbs = {}
    for b in backends:
        b.recover()
        verbs.update(verbs_of(b))
    out = sys.stdout
    out.write(json.dumps({'ready': True}) + '\n')
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        if req.get('op') == 'close':
            for b in reversed(backends):
                b.close()
            out.write(json.dumps({'result': True}) + '\n')
            out.flush()
            return
        if req.get('op') == 'events':
            with lock:
                ev, events[:] = list(events), []
            out.write(json.dumps({'result': ev}) + '\n')
            out.flush()
            continue
        try:
            # validated and completed from the API schema, as the host agent's server does
            params = get_schema().verb(req['verb']).validate(req.get('params', {}))
            res = {'result': verbs[req['verb']](**params)}
        except InvalidParams as e:
            res = {'error': [INVALID_PARAMS, 'Invalid params: %s' % e]}
        except VdsmError as e:
            res = {'error': [e.code, e.message]}
        out.write(json.dumps(res) + '\n')
        out.flush()


class HostProcess:
    """Client side of hostproc: call(verb, **params) -> result or VdsmError."""

    def __init__(self, base, sanlock_run_dir, uri, io_timeout, cwd):
        self.args = [sys.executable, '-m', 'tests.hostd.hostproc', base, sanlock_run_dir, uri,
                     str(io_timeout)]
        self.cwd = cwd
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, universal_newlines=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError('host agent process failed to start')
        return self

    def _request(self, req):
        self.proc.stdin.write(json.dumps(req) + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError('host agent process died')
        return json.loads(line)

    def call(self, verb, **params):
        from ovirt_hosted_engine_setup.hostd.api_base import VdsmError
        res = self._request({'verb': verb, 'params': params})
        if 'error' in res:
            raise VdsmError(*res['error'])
        return res['result']

    def events(self):
        return self._request({'op': 'events'})['result']

    def close(self):
        """Stop the process as the daemon stops: backends closed, VMs left running."""
        if self.proc and self.proc.poll() is None:
            self._request({'op': 'close'})
            self.proc.stdin.close()
            self.proc.wait(30)
        self.proc = None


if __name__ == '__main__':
    main()
