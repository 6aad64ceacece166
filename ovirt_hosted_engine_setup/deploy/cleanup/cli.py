"""The ovirt-hosted-engine-cleanup command line: options, the log file, main()."""
import argparse
import datetime
import logging
import os
import sys

from ... import logsetup, paths
from ...ha import peers
from . import PROG
from .steps import Cleanup

log = logging.getLogger('ovirt_hosted_engine_setup.deploy.cleanup')


def setup_logging():
    """A new log file under the setup log directory; returns its path (None if impossible)."""
    stamp = datetime.datetime.now().strftime('%Y%m%d%H%M%S')
    path = os.path.join(paths.SETUP_LOG_DIR, '%s-%s-%d.log' % (PROG, stamp, os.getpid()))
    return logsetup.command_log(path, logging.DEBUG)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(1, '%s: %s; see %s --help\n' % (self.prog, message, self.prog))


def parse_args(argv):
    p = _Parser(prog=PROG, description=(
        'Remove what hosted-engine --deploy configured on this host (engine VM, HA services, '
        'sanlock lockspace, storage connection, generated configuration) so that a failed '
        'deploy can be retried.'))
    p.add_argument('-q', '--quiet', action='store_true',
                   help='do not ask for confirmation')
    p.add_argument('--remove-storage', action='store_true',
                   help='also delete the hosted-engine storage domain (the engine VM disk) '
                        'from the shared storage; refused while other hosts are alive in it')
    p.add_argument('--fenced-host', metavar='ID[,ID...]', action='append', default=[],
                   type=_host_ids,
                   help='with --remove-storage: these host ids were fenced (powered off) and '
                        'are really gone; delete the storage domain even though their lease or '
                        'metadata still looks alive')
    args = p.parse_args(argv)
    args.fenced_host = sorted({h for ids in args.fenced_host for h in ids})
    if args.fenced_host and not args.remove_storage:
        p.error('--fenced-host is only for --remove-storage')
    return args


def _host_ids(text):
    try:
        ids = [int(x) for x in text.split(',') if x.strip()]
    except ValueError:
        ids = []
    if not ids or not all(1 <= h <= peers.MAX_HOSTS for h in ids):
        raise argparse.ArgumentTypeError('%r is not a list of host ids (1..%d)'
                                         % (text, peers.MAX_HOSTS))
    return ids


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0 and not paths.PREFIX:
        sys.stderr.write('%s: must be run as root: run it again with sudo\n' % PROG)
        return 1
    cleanup = Cleanup(quiet=args.quiet, remove_storage=args.remove_storage,
                      fenced=args.fenced_host)
    cleanup.log_path = setup_logging()
    log.info('%s %s', PROG, ' '.join(sys.argv[1:] if argv is None else argv))
    try:
        return cleanup.run()
    except KeyboardInterrupt:
        cleanup.error('Interrupted: run %s again to finish the cleanup' % PROG)
        return 1
    except Exception as e:
        log.exception('cleanup failed')
        cleanup.error('%s: %s (details in %s)' % (type(e).__name__, e, cleanup.log_path))
        return 1
    finally:
        cleanup.close_agent()


if __name__ == '__main__':
    sys.exit(main())
