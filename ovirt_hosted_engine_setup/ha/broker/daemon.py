"""ovirt-ha-broker: the broker daemon (docs/ha-services.md).

    ovirt-ha-broker [--conf F] [--broker-conf F] [--socket P] [--log-file F] [--interval S]
                    [--debug] [--host-agent HOST[:PORT]] [--hostd-root DIR]

--host-agent and --hostd-root (the embedded host agent's root, for its client
certificate) let tests and development runs reach a host agent on another port.

Runs in the foreground (systemd Type=simple), logs to --log-file and stderr,
stops cleanly on SIGTERM (exit 0). A missing or invalid hosted-engine.conf
gives one line on stderr and exit 1.
"""
import argparse
import logging
import os
import signal
import sys
import threading

from ... import local_ha_state, logsetup, paths
from ...he_storage import heconf
from .. import notifications
from ..broker_client import DEFAULT_SOCKET
from .broker import REQUIRED, Broker
from .monitors import HostAgent
from .server import Server

log = logging.getLogger('ovirt_hosted_engine_setup.ha.broker')

DEFAULT_LOG = os.path.join(paths.HA_LOG_DIR, 'broker.log')
LOG_FORMAT = '%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s'


def parse_args(argv):
    p = argparse.ArgumentParser(prog='ovirt-ha-broker',
                                description='hosted-engine HA broker: storage, lockspace, '
                                            'monitors and notifications for ovirt-ha-agent')
    p.add_argument('--conf', default=paths.HOSTED_ENGINE_CONF, help='hosted-engine.conf')
    p.add_argument('--broker-conf', default=paths.BROKER_CONF, help='broker.conf (notifications)')
    p.add_argument('--socket', default=DEFAULT_SOCKET, help='the API socket to create')
    p.add_argument('--log-file', default=DEFAULT_LOG, help='log file')
    p.add_argument('--interval', type=float, default=10.0, help='monitor period in seconds')
    p.add_argument('--debug', action='store_true', help='log debug messages')
    p.add_argument('--host-agent', default='localhost:54321', metavar='HOST[:PORT]',
                   help='the host agent API (default localhost:54321)')
    p.add_argument('--hostd-root', default=None,
                   help='the embedded host agent\'s root (its client certificate); default: '
                        '$OVIRT_HOSTED_ENGINE_HOSTD_ROOT, else VDSM\'s certificates')
    args = p.parse_args(argv)
    if args.interval <= 0:
        p.error('--interval must be positive')
    return args


def split_address(text):
    text = text.strip()
    if text.startswith('['):
        host, _, rest = text[1:].partition(']')
        port = rest.lstrip(':') or '54321'
    elif text.count(':') == 1:
        host, port = text.split(':')
    else:
        host, port = text, '54321'
    if not port.isdigit():
        raise ValueError('--host-agent %s: the port must be a number' % text)
    return host or 'localhost', int(port)


def setup_logging(log_file, debug):
    logsetup.daemon_log(log_file, debug, fmt=LOG_FORMAT,
                        filters=[notifications.install_log_filter])


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        conf = heconf.load(args.conf)
        heconf.required(conf, *REQUIRED)
        address, port = split_address(args.host_agent)
    except (heconf.ConfError, ValueError) as e:
        print('ovirt-ha-broker: %s' % e, file=sys.stderr)
        return 1
    try:
        setup_logging(args.log_file, args.debug)
    except OSError as e:
        print('ovirt-ha-broker: cannot write the log file %s (%s); give a writable --log-file'
              % (args.log_file, e.strerror or e), file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info('signal %d: stopping', signum)
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    agent = HostAgent(address, port, hostd_root=args.hostd_root)
    broker = Broker(conf, args.broker_conf, interval=args.interval, agent=agent,
                    local_state_path=os.path.join(os.path.dirname(os.path.abspath(args.socket)),
                                                  os.path.basename(local_ha_state.PATH)))
    server = Server(args.socket, broker.methods())
    try:
        server.start()
    except OSError as e:
        print('ovirt-ha-broker: cannot create the socket %s (%s); is another broker running?'
              % (args.socket, e.strerror or e), file=sys.stderr)
        log.debug('socket failure', exc_info=True)
        return 1
    log.info('ovirt-ha-broker started: host id %s, storage domain %s, interval %.0f s',
             broker.host_id, broker.sd_uuid, broker.interval)
    try:
        broker.start()
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        broker.stop()
        log.info('ovirt-ha-broker stopped')
    return 0


if __name__ == '__main__':
    sys.exit(main())
