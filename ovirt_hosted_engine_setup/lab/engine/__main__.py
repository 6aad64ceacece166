"""Run the lab engine's HTTP and HTTPS servers.

    python3 -m ovirt_hosted_engine_setup.lab.engine --state-dir D \
        [--http-port 80] [--https-port 443] [--address 0.0.0.0] [--log-file F] [--pid-file F]

It serves the health page as "DB Down" until engine-setup
(python3 -m ovirt_hosted_engine_setup.lab.engine.setup) has initialised the
state directory, then everything. SIGTERM or SIGINT stops it.
"""
import argparse
import logging
import os
import signal
import sys
import threading

from .server import Engine, EngineHTTPServer
from .state import StateError

log = logging.getLogger('engine')


def main(argv=None):
    p = argparse.ArgumentParser(prog='python3 -m ovirt_hosted_engine_setup.lab.engine',
                                description='The lab engine: health page, PKI resources, SSO '
                                            'and the part of the oVirt REST API a '
                                            'hosted-engine deploy uses.')
    p.add_argument('--state-dir', required=True)
    p.add_argument('--address', default='0.0.0.0')
    p.add_argument('--http-port', type=int, default=80)
    p.add_argument('--https-port', type=int, default=443)
    p.add_argument('--log-file', help='default: <state-dir>/engine.log')
    p.add_argument('--pid-file', help='written once both ports listen')
    p.add_argument('--monitor-interval', type=float, default=5.0,
                   help='seconds between two polls of each host agent (default 5)')
    p.add_argument('--debug', action='store_true')
    a = p.parse_args(argv)

    try:
        os.makedirs(a.state_dir, mode=0o700, exist_ok=True)
    except OSError as e:
        print('error: cannot create the state directory %s: %s' % (a.state_dir, e.strerror),
              file=sys.stderr)
        return 1
    log_file = a.log_file or os.path.join(a.state_dir, 'engine.log')
    try:
        handler = logging.FileHandler(log_file)
    except OSError as e:
        print('error: cannot open the log file %s: %s' % (log_file, e.strerror), file=sys.stderr)
        return 1
    handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(name)s: %(message)s'))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if a.debug else logging.INFO)

    try:
        engine = Engine(a.state_dir, monitor_interval=a.monitor_interval)
    except StateError as e:
        print('error: %s; fix or remove the file, or run engine-setup again' % e,
              file=sys.stderr)
        return 1
    servers = []
    try:
        servers.append(EngineHTTPServer((a.address, a.http_port), engine, tls=False,
                                        https_port=a.https_port))
        servers.append(EngineHTTPServer((a.address, a.https_port), engine, tls=True,
                                        https_port=a.https_port))
    except OSError as e:
        for s in servers:
            s.server_close()
        print('error: cannot listen on %s (ports %d and %d): %s; choose free ports with '
              '--http-port/--https-port' % (a.address, a.http_port, a.https_port,
                                            e.strerror or e), file=sys.stderr)
        return 1

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threads = [threading.Thread(target=s.serve_forever, kwargs={'poll_interval': 0.2},
                                name='http' if not s.tls else 'https', daemon=True)
               for s in servers]
    for t in threads:
        t.start()
    if engine.refresh():
        engine.start_monitors()
    log.info('lab engine listening on %s: HTTP %d, HTTPS %d (%s)', a.address, a.http_port,
             a.https_port, 'set up as %s' % engine.state.setup['fqdn'] if engine.state.ready
             else 'waiting for engine-setup')
    if a.pid_file:
        tmp = a.pid_file + '.tmp'
        with open(tmp, 'w') as f:
            f.write('%d\n' % os.getpid())
        os.rename(tmp, a.pid_file)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info('stopping')
        for s in servers:
            s.shutdown()
            s.server_close()
        engine.stop()
        if a.pid_file:
            try:
                os.unlink(a.pid_file)
            except OSError:
                pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
