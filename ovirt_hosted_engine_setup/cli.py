"""`hosted-engine`: the command users run, and `ovirt-hosted-engine-setup` (deploy alone)."""
import os
import shlex
import sys

from . import constants, paths
from .runner.context import Context

DEPLOY_GROUPS = ('gr-he-common', 'gr-he-setup')
PROG = 'hosted-engine'


class UsageError(Exception):
    """Bad command line: one line, exit 1."""


class Verb:
    def __init__(self, option, args, help, run):
        self.option = option
        self.args = args
        self.help = help
        self.run = run


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
        previous run replays it without questions.
    --generate-answer=FILE
        Also write the answers of this run to FILE (mode 0600).
    --restore-from-file=FILE
        Deploy a new engine VM and restore the engine from this engine-backup archive.
    --otopi-environment="KEY=type:value ..."
        Set environment values directly (types: none, bool, int, str, multi-str;
        APPEND:KEY=... and PREPEND:KEY=... join with ':').
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
        elif option == '--generate-answer':
            assignments.append('%s=str:%s' % (constants.CoreEnv.USER_ANSWER_FILE,
                                              os.path.abspath(value)))
        elif option == '--restore-from-file':
            real = os.path.realpath(value)
            if not os.path.isfile(real):
                raise UsageError('The backup file %s does not exist or is not a file; give the '
                                 'path of an engine-backup archive' % value)
            assignments.append('%s=str:%s' % (constants.CoreEnv.RESTORE_FROM_FILE, real))
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


VERBS = [
    Verb('--deploy', '[options]',
         'run the hosted engine deployment (see --deploy --help)', run_deploy),
    Verb('--check-deployed', '',
         'exit 0 if hosted engine is deployed on this host, 1 otherwise', run_check_deployed),
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
