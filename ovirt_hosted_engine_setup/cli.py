"""`hosted-engine`: the command users run, and `ovirt-hosted-engine-setup` (deploy alone)."""
import os
import shlex
import sys

from .deploy import constants
from . import paths
from .runner.context import Context

DEPLOY_GROUPS = ('gr-he-common', 'gr-he-setup')
PROG = 'hosted-engine'


class UsageError(Exception):
    """Bad command line: one line, exit 1."""


class Verb:
    def __init__(self, option, args, help, run, long_help=None):
        self.option = option
        self.args = args
        self.help = help
        self.run = run
        self.long_help = long_help   # `hosted-engine <verb> --help`; None: the verb handles it


def usage():
    lines = ['Usage: %s [--help] <command> [<command-args>]' % PROG,
             '    --help',
             '        show this help message.',
             '',
             '    The available commands are:']
    for verb in VERBS:
        lines.append('        %s%s' % (verb.option, (' ' + verb.args) if verb.args else ''))
        for h in verb.help.splitlines():
            lines.append('            %s' % h)
    lines += ['', '    For more information about a command use:',
              '        %s <command> --help' % PROG]
    return '\n'.join(lines) + '\n'


# -- deploy --------------------------------------------------------------------------

DEPLOY_HELP = """\
Usage: hosted-engine --deploy [args]
    Run the hosted engine deployment: configure this host and create the engine VM.

    --config-append=FILE
        Load an answer file (repeatable; FILE.d/*.conf are loaded too). A file written by a
        previous run replays it without questions. An answer file must be a regular file
        of at most 1 MiB.
    --generate-answer=FILE
        Also write the answers of this run to FILE (mode 0600).
    --restore-from-file=FILE
        Migrate a standalone engine: restore FILE, an engine-backup --mode=backup archive
        of it, into the new engine VM (same FQDN), then go on as a first-host deploy. The
        archive is checked before anything changes; stop the old engine first.
    --otopi-environment="KEY=type:value ..."
        Set environment values directly (types: none, bool, int, str, multi-str;
        APPEND:KEY=... and PREPEND:KEY=... join with ':'). A bool is one of True, False,
        yes, no, y, n, t, f, 1, 0 (any case); any other value is an error.

    Exit status: 0 success, 1 error, 2 plugins could not be loaded, 128 + the signal
    number when interrupted (130 Ctrl-C/SIGINT, 143 SIGTERM); an interrupted deploy rolls
    back what it created.
"""


def parse_deploy_args(args):
    """Deploy options -> runner assignments."""
    assignments = []
    for arg in args:
        if '=' in arg and arg.startswith('--'):
            option, value = arg.split('=', 1)
        elif arg.startswith('--'):
            option, value = arg, None
        else:
            option, value = None, arg
        if option is None:
            # ovirt-hosted-engine-setup style: a bare KEY=type:value
            assignments.append(value)
            continue
        if option not in ('--config-append', '--generate-answer', '--restore-from-file',
                          '--otopi-environment'):
            raise UsageError('Unknown option %s for --deploy; see %s --deploy --help'
                             % (option, PROG))
        if not value:
            raise UsageError('%s needs a value: %s=VALUE' % (option, option))
        if option == '--config-append':
            assignments.append('APPEND:CORE/configFileAppend=str:%s' % os.path.abspath(value))
        elif option == '--restore-from-file':
            assignments.append('%s=str:%s' % (constants.CoreEnv.RESTORE_FROM_FILE,
                                              os.path.abspath(value)))
        elif option == '--generate-answer':
            assignments.append('%s=str:%s' % (constants.CoreEnv.USER_ANSWER_FILE,
                                              os.path.abspath(value)))
        else:
            try:
                assignments.extend(shlex.split(value))
            except ValueError as e:
                raise UsageError('--otopi-environment: %s' % e)
    return assignments


def run_deploy(args):
    if '--help' in args or '-h' in args:
        sys.stdout.write(DEPLOY_HELP)
        return 0
    try:
        assignments = parse_deploy_args(args)
        context = Context(
            groups=DEPLOY_GROUPS,
            plugin_path=[paths.PLUGIN_DIR],
            assignments=assignments,
            keys=constants.ALL_KEYS,
            log_dir=paths.SETUP_LOG_DIR,
            log_prefix='ovirt-hosted-engine-setup',
        )
        return context.run()
    except KeyboardInterrupt:
        # Ctrl-C in the instant before the runner handles signals itself
        sys.stderr.write('%s --deploy: interrupted\n' % PROG)
        return 130


# -- other verbs ----------------------------------------------------------------------

def is_deployed():
    """A deployed host has hosted-engine.conf naming its engine VM."""
    try:
        with open(paths.HOSTED_ENGINE_CONF, encoding='utf-8') as f:
            return any(line.strip().startswith('vmid=') and line.split('=', 1)[1].strip()
                       for line in f)
    except OSError:
        return False


def run_check_deployed(args):
    if args:
        raise UsageError('--check-deployed takes no arguments')
    return 0 if is_deployed() else 1


def _ha(name):
    """The HA verb ``name`` of ha/cli_verbs.py, imported when it runs."""
    def run(args):
        from .ha import cli_common, cli_verbs
        log_file = cli_common.setup_logging()
        cli_common.log.info('%s %s', PROG, ' '.join(cli_common.masked_args(args)))
        try:
            return getattr(cli_verbs, name)(args)
        except cli_common.UsageError as e:
            raise UsageError(str(e))
        except cli_common.CliError as e:
            cli_common.log.info('%s: %s', PROG, e)
            sys.stderr.write('%s: %s\n' % (PROG, e))
            return e.code
        except KeyboardInterrupt:
            sys.stderr.write('\n%s: aborted by the user\n' % PROG)
            return 1
        except Exception as e:
            cli_common.log.exception('unexpected error')
            sys.stderr.write('%s: unexpected error: %s: %s%s\n' % (
                PROG, type(e).__name__, e, (' (details in %s)' % log_file) if log_file else ''))
            return 1
    return run


def _ha_help(name):
    from .ha import cli_verbs
    return getattr(cli_verbs, name)


VERBS = [
    Verb('--deploy', '[options]',
         'run the hosted engine deployment (see --deploy --help)', run_deploy),
    Verb('--check-deployed', '',
         'exit 0 if hosted engine is deployed on this host, 1 otherwise', run_check_deployed),
    Verb('--vm-status', '[--json]',
         'show the status of the engine VM and of every HA host', _ha('run_vm_status'),
         'VM_STATUS_HELP'),
    Verb('--set-maintenance', '--mode=<mode>',
         'set the maintenance mode: global (no HA action on the engine VM),\n'
         'local (this host leaves the HA cluster) or none', _ha('run_set_maintenance'),
         'SET_MAINTENANCE_HELP'),
    Verb('--vm-start', '', 'start the engine VM on this host', _ha('run_vm_start'),
         'VM_START_HELP'),
    Verb('--vm-start-paused', '', 'start the engine VM on this host, paused',
         _ha('run_vm_start_paused'), 'VM_START_PAUSED_HELP'),
    Verb('--vm-shutdown', '[--wait [--timeout=<seconds>]]',
         'gracefully shut down the engine VM on this host (--wait: until it is down)',
         _ha('run_vm_shutdown'), 'VM_SHUTDOWN_HELP'),
    Verb('--vm-poweroff', '', 'power off the engine VM on this host at once',
         _ha('run_vm_poweroff'), 'VM_POWEROFF_HELP'),
    Verb('--add-console-password', '[--password=<password>]',
         'set a temporary password on the engine VM console', _ha('run_add_console_password'),
         'ADD_CONSOLE_PASSWORD_HELP'),
    Verb('--console', '', 'open the serial console of the engine VM running on this host',
         _ha('run_console'), 'CONSOLE_HELP'),
    Verb('--check-liveliness', '', "check the engine's health page",
         _ha('run_check_liveliness'), 'CHECK_LIVELINESS_HELP'),
    Verb('--connect-storage', '', 'connect the hosted-engine storage domain to this host',
         _ha('run_connect_storage'), 'CONNECT_STORAGE_HELP'),
    Verb('--disconnect-storage', '', 'disconnect the hosted-engine storage domain from this host',
         _ha('run_disconnect_storage'), 'DISCONNECT_STORAGE_HELP'),
    Verb('--reinitialize-lockspace', '[--force]',
         'reinitialize the hosted-engine sanlock lockspace (wipes all host ids)',
         _ha('run_reinitialize_lockspace'), 'REINITIALIZE_LOCKSPACE_HELP'),
    Verb('--clean-metadata', '[--force-cleanup] [--host-id=<id>]',
         "remove a host's slot from the shared metadata", _ha('run_clean_metadata'),
         'CLEAN_METADATA_HELP'),
    Verb('--set-shared-config', '<key> <value> --type=<type>',
         'set a configuration value (types: he_local, he_shared, ha, broker)',
         _ha('run_set_shared_config'), 'SET_SHARED_CONFIG_HELP'),
    Verb('--get-shared-config', '<key> --type=<type>',
         'print a configuration value (types: he_local, he_shared, ha, broker)',
         _ha('run_get_shared_config'), 'GET_SHARED_CONFIG_HELP'),
]


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        sys.stderr.write(usage())
        return 1
    if argv[0] in ('--help', '-h'):
        sys.stdout.write(usage())
        return 0
    for verb in VERBS:
        if argv[0] == verb.option:
            if verb.long_help and ('--help' in argv[1:] or '-h' in argv[1:]):
                sys.stdout.write(_ha_help(verb.long_help))
                return 0
            try:
                return verb.run(argv[1:])
            except UsageError as e:
                sys.stderr.write('%s: %s\n' % (PROG, e))
                return 1
    sys.stderr.write('%s: unknown command %s\n' % (PROG, argv[0]))
    sys.stderr.write(usage())
    return 1


def setup_main(argv=None):
    """`ovirt-hosted-engine-setup [options] [KEY=type:value ...]`: deploy directly."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run_deploy(argv)
    except UsageError as e:
        sys.stderr.write('ovirt-hosted-engine-setup: %s\n' % e)
        return 1
