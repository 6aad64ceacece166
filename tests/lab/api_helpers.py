"""Calls to the host agent of a lab host, made from inside that host.

The lab's addresses are reachable only from inside the lab's namespaces, so a small
Python process runs in the host (`hosted-engine-lab exec hostK -- python ...`), keeps
one API connection (JSON-RPC over STOMP/TLS, the host's client certificate) and
relays calls given as JSON lines on its stdin; the answers come back on its stdout.
"""
import json
import subprocess
import time

from ovirt_hosted_engine_setup.api.errors import ServerError

from .conftest import LAB_CLI

LOCALFS, POSIXFS, NFS = 4, 6, 1
COW, RAW = 4, 5
PREALLOCATED, SPARSE = 1, 2
BLANK = '00000000-0000-0000-0000-000000000000'

RELAY = r'''
import json, sys
from ovirt_hosted_engine_setup.api.client import Client
from ovirt_hosted_engine_setup.api.errors import ServerError
client = Client(sys.argv[1], hostd_root='/var/lib/ovirt-hosted-engine-hostd', timeout=120)
print(json.dumps({'ready': True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req.get('raw'):
            out = {'ok': client.call(req['method'], req['params'])}
        else:
            out = {'ok': client.call(req['method'], **req['params'])}
    except ServerError as e:
        out = {'err': [e.code, e.message]}
    except Exception as e:
        out = {'fail': '%s: %s' % (type(e).__name__, e)}
    print(json.dumps(out), flush=True)
client.close()
'''


class HostClient:
    """An API client living inside a lab host (see the module docstring)."""

    def __init__(self, lab, host, target=None):
        self.host = host
        target = target or host
        self.proc = subprocess.Popen(
            LAB_CLI + ['exec', host, '--', 'python', '-u', '-c', RELAY, target],
            env=lab.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline()
        if not first:
            self.proc.wait(10)
            raise AssertionError('the API relay in %s did not start (exit %s)'
                                 % (host, self.proc.returncode))
        assert json.loads(first) == {'ready': True}, first

    def call(self, method, _raw=False, **params):
        self.proc.stdin.write(json.dumps({'method': method, 'params': params, 'raw': _raw})
                              + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError('the API relay in %s exited during %s' % (self.host, method))
        out = json.loads(line)
        if 'err' in out:
            raise ServerError(*out['err'])
        if 'fail' in out:
            raise AssertionError('%s on %s: %s' % (method, self.host, out['fail']))
        return out['ok']

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(15)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()


def wait_task(c, task, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        st = c.call('Task.getStatus', taskID=task)
        if st['taskState'] == 'finished':
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.3)


def wait_acquired(c, sd, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        stats = c.call('Host.getStorageRepoStats', domains=[sd])
        if stats.get(sd, {}).get('acquired'):
            return stats[sd]
        assert time.monotonic() < deadline, stats
        time.sleep(0.5)


def wait_vm(c, vm_id, want, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        st = c.call('VM.getStats', vmID=vm_id)[0]
        if st['status'] == want:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.3)
