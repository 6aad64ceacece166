"""ovirt-hosted-engine-hostd: the embedded host agent.

Serves the host agent API (VDSM's JSON-RPC over STOMP over TLS) on a plain
Linux host with libvirt, sanlock, qemu-img and iproute2.
"""
import argparse
import importlib
import logging
import logging.handlers
import os
import re
import signal
import socket
import sys
import threading
import time

from ..api.schema import get_schema
from . import pki
from .api_base import HostContext
from .host import HA_CONF, HOSTED_ENGINE_CONF, HostBackend
from .network import NetworkBackend
from .server import Server, SetupError, build_verb_table, server_ssl_context

log = logging.getLogger('ovirt_hosted_engine_setup.hostd')

DEFAULT_ROOT = pki.DEFAULT_ROOT
DEFAULT_LOG = '/var/log/ovirt-hosted-engine-hostd/hostd.log'
OPTIONAL_BACKENDS = (('ovirt_hosted_engine_setup.hostd.storage', 'StorageBackend'),
                     ('ovirt_hosted_engine_setup.hostd.vm', 'VMBackend'))


class SecretFilter(logging.Filter):
    """Masks password values that reach a log record despite the callers' care."""
    _PATTERNS = [re.compile(r'("password"\s*:\s*)"(?:[^"\\]|\\.)*"'),
                 re.compile(r"('password'\s*:\s*)'(?:[^'\\]|\\.)*'"),
                 re.compile(r'(\bpassword=)\S+')]

    def filter(self, record):
        try:
            msg = record.getMessage()
        except Exception:
            return True
        masked = msg
        for p in self._PATTERNS:
            masked = p.sub(lambda m: m.group(1) + ('"********"' if m.group(0)[len(m.group(1)):]
                                                   .startswith('"') else '********'), masked)
        if masked != msg:
            record.msg, record.args = masked, None
        return True


def setup_logging(path, debug=False):
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if path == '-':
        handler = logging.StreamHandler(sys.stderr)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(path)
    handler.setFormatter(logging.Formatter(
        '%(asctime)s %(levelname)s (%(threadName)s) [%(name)s] %(message)s'))
    handler.addFilter(SecretFilter())
    root.handlers[:] = [handler]


def parse_args(argv):
    p = argparse.ArgumentParser(prog='ovirt-hosted-engine-hostd',
                                description='Embedded host agent serving the oVirt host API '
                                            '(JSON-RPC over STOMP over TLS).')
    p.add_argument('--foreground', action='store_true', help='do not detach')
    p.add_argument('--address', default='::', help='address to listen on (default: all)')
    p.add_argument('--port', type=int, default=54321, help='port (default 54321)')
    p.add_argument('--root', default=DEFAULT_ROOT,
                   help='state directory: certificates, recovered state (default %(default)s)')
    p.add_argument('--data-center-dir', default='/rhev/data-center',
                   help='where storage is connected (default %(default)s)')
    p.add_argument('--run-dir', default='/run/ovirt-hosted-engine-hostd',
                   help='runtime files, pid file (default %(default)s)')
    p.add_argument('--libvirt-uri', default='qemu:///system')
    p.add_argument('--sanlock-run-dir', default=os.environ.get('SANLOCK_RUN_DIR'),
                   help="this host's sanlock daemon directory (default $SANLOCK_RUN_DIR)")
    p.add_argument('--sanlock-io-timeout', type=int, default=None,
                   help='sanlock I/O timeout in seconds for lockspaces this agent creates or '
                        'joins (default: sanlock\'s, 10 s)')
    p.add_argument('--monitor-interval', type=float, default=None,
                   help='seconds between storage domain checks (default 10)')
    p.add_argument('--ha-conf', default=HA_CONF,
                   help='HA services configuration written by setHaMaintenanceMode '
                        '(default %(default)s)')
    p.add_argument('--hosted-engine-conf', default=HOSTED_ENGINE_CONF,
                   help='file whose presence means hosted engine is deployed')
    p.add_argument('--hostname', default=None, help='name in the server certificate')
    p.add_argument('--log-file', default=None,
                   help='log file (default %s; "-" for stderr)' % DEFAULT_LOG)
    p.add_argument('--debug', action='store_true', help='log debug messages')
    p.add_argument('--insecure', action='store_true',
                   help='serve plain TCP without TLS (clients must use --insecure too)')
    p.add_argument('--workers', type=int, default=8, help='verb worker threads')
    p.add_argument('--max-frame', type=int, default=16 * 1024 * 1024,
                   help='largest accepted STOMP frame in bytes')
    return p.parse_args(argv)


def load_backends(ctx, last_request):
    """Instantiate the backends: host, network and those that are importable."""
    backends = [HostBackend(ctx, ha_conf=ctx.ha_conf, hosted_engine_conf=ctx.hosted_engine_conf),
                NetworkBackend(ctx, last_request=last_request)]
    for module, cls_name in OPTIONAL_BACKENDS:
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except Exception as e:
            log.warning('%s.%s not available (%s: %s); its verbs answer "not implemented"',
                        module, cls_name, type(e).__name__, e)
            continue
        backends.append(cls(ctx))
    return backends


class Agent:
    """The daemon: context, backends, server. start() then run() in the main thread."""

    def __init__(self, args):
        self.args = args
        self.server = None
        self.backends = []
        self.ctx = None
        self._wrote_pid = False

    def prepare(self):
        """Certificates, backends, recovery, listening socket. Raises SetupError."""
        a = self.args
        for d in (a.root, a.run_dir):
            try:
                os.makedirs(d, exist_ok=True)
            except OSError as e:
                raise SetupError('cannot create %s: %s' % (d, e.strerror or e))
        ssl_ctx = None
        if not a.insecure:
            try:
                paths = pki.ensure_pki(a.root, a.hostname or socket.gethostname())
                ssl_ctx = server_ssl_context(paths.ca_cert, paths.server_cert, paths.server_key)
            except (OSError, RuntimeError, ValueError) as e:
                raise SetupError('cannot set up the certificates under %s/pki: %s'
                                 % (a.root, e))
        schema = get_schema()
        holder = {}
        ctx = HostContext(a.root, data_center_dir=a.data_center_dir, run_dir=a.run_dir,
                          sanlock_run_dir=a.sanlock_run_dir, libvirt_uri=a.libvirt_uri,
                          emit_event=lambda m, p: holder['server'].emit(m, p)
                          if 'server' in holder else None)
        ctx.ha_conf = a.ha_conf
        if a.sanlock_io_timeout is not None:
            ctx.sanlock_io_timeout = a.sanlock_io_timeout
        if a.monitor_interval is not None:
            ctx.monitor_interval = a.monitor_interval
        ctx.hosted_engine_conf = a.hosted_engine_conf
        self.ctx = ctx
        last = {'t': 0.0}
        self.backends = load_backends(ctx, lambda: last['t'])
        ctx.backends = list(self.backends)
        table = build_verb_table(schema, self.backends)
        missing = sorted(set(schema.verbs) - set(table))
        if missing:
            log.warning('verbs not implemented by this host agent: %s', ', '.join(missing))
        self.server = Server(schema, table, address=a.address, port=a.port, ssl_context=ssl_ctx,
                             max_frame=a.max_frame, workers=a.workers)
        self.server.dispatcher.on_request = lambda: last.__setitem__('t', time.monotonic())
        holder['server'] = self.server
        self.server.bind()
        for b in self.backends:
            log.info('recovering %s', type(b).__name__)
            b.recover()

    def run(self):
        self._write_pid()
        try:
            self.server.serve_forever()
        finally:
            self.stop()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
        for b in reversed(self.backends):
            try:
                b.close()
            except Exception:
                log.exception('closing %s failed', type(b).__name__)
        self.backends = []
        if self._wrote_pid:
            try:
                os.unlink(self.pid_path)
            except OSError:
                pass
        log.info('stopped')

    @property
    def pid_path(self):
        return os.path.join(self.args.run_dir, 'hostd.pid')

    def _write_pid(self):
        tmp = self.pid_path + '.tmp'
        with open(tmp, 'w') as f:
            f.write('%d\n' % os.getpid())
        os.rename(tmp, self.pid_path)
        self._wrote_pid = True


def _daemonize():
    """Detach; returns in the daemon with a write end to report readiness to the parent."""
    r, w = os.pipe()
    if os.fork():
        os.close(w)
        msg = b''
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            msg += chunk
        text = msg.decode('utf-8', 'replace').strip()
        if text == 'OK':
            os._exit(0)
        sys.stderr.write((text or 'ovirt-hosted-engine-hostd: failed to start; see its log') + '\n')
        os._exit(1)
    os.close(r)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    return w


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.log_file or DEFAULT_LOG, args.debug)
    ready = None if args.foreground else _daemonize()

    def report(text):
        if ready is not None:
            os.write(ready, text.encode('utf-8'))
            os.close(ready)
        elif text != 'OK':
            sys.stderr.write(text + '\n')

    agent = Agent(args)
    stop = threading.Event()

    def on_signal(signum, frame):
        log.info('signal %d: stopping', signum)
        stop.set()
        if agent.server is not None:
            agent.server.stop()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.prepare()
    except SetupError as e:
        log.error('cannot start: %s', e)
        report('ovirt-hosted-engine-hostd: %s' % e)
        agent.stop()
        return 1
    except Exception as e:
        log.exception('cannot start')
        report('ovirt-hosted-engine-hostd: cannot start: %s: %s; see %s'
               % (type(e).__name__, e, args.log_file or DEFAULT_LOG))
        agent.stop()
        return 1
    if stop.is_set():
        agent.stop()
        return 0
    log.info('host agent ready on port %d (root %s)', agent.server.port, args.root)
    report('OK')
    agent.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
