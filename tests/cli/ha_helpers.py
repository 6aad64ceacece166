"""Helpers of the HA verb tests: a deployed host under a relocated prefix
(hosted-engine.conf, the storage domain's volumes as files at the paths the
host agent would prepare), metadata written with the real slot format, and a
loopback HTTP server for the engine's health page."""
import http.server
import os
import threading
import uuid

from ovirt_hosted_engine_setup.ha import metadata
from ovirt_hosted_engine_setup.he_storage import layout

UP = {'vm': 'up', 'health': 'good', 'detail': 'Up', 'reason': None}
DOWN = {'vm': 'down', 'health': 'bad', 'detail': 'unknown',
        'reason': 'vm not running on this host'}


def one_line(result):
    """The single stderr line of a failed command (no traceback)."""
    text = result.stdout + result.stderr
    assert 'Traceback' not in text, text
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith('hosted-engine: '), text
    return lines[0]


def base_conf(storage, **extra):
    conf = {k: str(uuid.uuid4()) for k in (
        'vmid', 'sdUUID', 'connectionUUID', 'vm_disk_id', 'vm_disk_vol_id',
        'metadata_image_UUID', 'metadata_volume_UUID', 'lockspace_image_UUID',
        'lockspace_volume_UUID', 'conf_image_UUID', 'conf_volume_UUID')}
    conf.update(fqdn='engine.lab.test', storage=storage, domainType='localfs', host_id='1',
                spUUID=layout.BLANK_UUID, sanlock_io_timeout='1', vdsm_use_ssl='true')
    conf.update({k: str(v) for k, v in extra.items()})
    return conf


class Deployed:
    """A deployed host under ``prefix`` (tests/cli/conftest.py Prefix)."""

    def __init__(self, prefix, storage, **extra):
        self.prefix = prefix
        self.conf = base_conf(storage, **extra)
        self.conf.setdefault('conf', prefix.path('/run/ovirt-hosted-engine-ha/vm.conf'))
        self.write_conf()

    @property
    def data_center_dir(self):
        return self.prefix.path('/rhev/data-center')

    @property
    def conf_path(self):
        return self.prefix.path('/etc/ovirt-hosted-engine/hosted-engine.conf')

    def write_conf(self):
        os.makedirs(os.path.dirname(self.conf_path), exist_ok=True)
        with open(self.conf_path, 'w') as f:
            f.write(''.join('%s=%s\n' % kv for kv in sorted(self.conf.items())))

    def volumes(self):
        return layout.volume_paths(self.conf, self.data_center_dir)

    def create_volumes(self, max_hosts=4, conf_size=1 << 20):
        """The metadata (max_hosts slots), lockspace and configuration volumes as files."""
        v = self.volumes()
        for name, size in (('metadata', metadata.area_size(max_hosts)), ('lockspace', 1 << 20),
                           ('conf', conf_size)):
            os.makedirs(os.path.dirname(v[name]), exist_ok=True)
            with open(v[name], 'wb') as f:
                f.truncate(size)
        return v

    def write_slot(self, slot, data):
        with open(self.volumes()['metadata'], 'r+b') as f:
            f.seek(slot * metadata.SLOT_SIZE)
            f.write(data)

    def write_host(self, host_id, ts, score, status, hostname, **kw):
        self.write_slot(host_id, metadata.serialize_host(host_id, ts, score, status, hostname,
                                                         **kw))

    def write_global(self, maintenance):
        self.write_slot(0, metadata.serialize_global(maintenance))


class HealthServer:
    """http://127.0.0.1:<port>/ovirt-engine/services/health answering ``body``."""

    def __init__(self, body='DB Up!Welcome to Health Status!', status=200):
        self.body = body
        self.status = status
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                data = outer.body.encode()
                self.send_response(outer.status if self.path.endswith('/services/health')
                                   else 404)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# Run in a child process (python -c PREPARE PORT HOSTD_ROOT SPEC_JSON): prepares the
# hosted-engine storage domain through a host agent and prints the conf as JSON. A child,
# because sanlock's client library binds to one daemon per process.
PREPARE = r'''
import json, sys
from ovirt_hosted_engine_setup.api.client import Client
from ovirt_hosted_engine_setup.he_storage import domain, layout
with Client('127.0.0.1', int(sys.argv[1]), hostd_root=sys.argv[2], timeout=60) as c:
    conf = domain.prepare_domain(c, json.loads(sys.argv[3]))
print(json.dumps(conf))
'''
