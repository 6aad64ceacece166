"""The run: environment, plugins, stages, dialog, log and the main transaction.

Signals (INT, TERM, HUP, QUIT, PIPE) end the run wherever they arrive: reading an answer
file, at a question, in a wait of a plugin. The main transaction is rolled back, the stages
that always run (cleanup, pre-terminate, terminate) run, and one line says which signal,
what was rolled back and where the log is; the exit code is 128 + the signal number (130 for
SIGINT, 143 for SIGTERM). A rollback and the ending stages are not interrupted: a signal
arriving then is taken into account when they are done, and further signals are ignored.
"""
import difflib
import logging
import os
import re
import signal
import sys

from . import config, events, loader, typed
from . import log as runlog
from .constants import (STAGE_BY_ID, STAGES, BaseEnv, CoreEnv, DialogEnv, ExitCodes,
                        Stages)
from .dialog import make_dialog
from .environment import Environment
from .errors import AbortError, ConfigError, PluginLoadError, RunnerError, SignalReceived
from .transaction import Transaction

logger = logging.getLogger('otopi.context')

SECRET_QUESTION = re.compile('PASSWORD|PASSWD|SECRET', re.I)
SIGNALS = ('SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGPIPE')
# unknown keys warned about one by one (each with the nearest known key); the rest are counted
MAX_UNKNOWN_KEY_WARNINGS = 10
ENDING_STAGES = frozenset(s.id for s in STAGES if s.index >= STAGE_BY_ID[Stages.CLEANUP].index)


class Context:
    """One run of the runner.

    groups: plugin group names to load; plugin_path: directories holding the groups;
    assignments: command-line ``[APPEND:|PREPEND:]KEY=type:value`` strings;
    keys: EnvKey definitions (flags for answer files, preview, secrets, validators);
    log_dir / log_prefix: where the log file goes (CORE/logDir overrides log_dir).
    """

    def __init__(self, groups, plugin_path, assignments=(), keys=(), log_dir=None,
                 log_prefix='otopi', stdin=None, stdout=None):
        self.groups = list(groups)
        self.plugin_path = list(plugin_path)
        self.assignments = list(assignments)
        self.keys = {str(k): k for k in keys}
        self.log_dir = log_dir
        self.log_prefix = log_prefix
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.environment = Environment(on_set=self._on_env_set)
        # names of the keys whose values are secrets: the declared ones, and preseeded
        # answers to password questions as they are set (see _on_env_set)
        self._secret_keys = {k for k, d in self.keys.items() if d.secret}
        self.dialog = None
        self.secret_filter = runlog.SecretFilter()
        self.main_transaction = Transaction()
        self.plugins = []
        self.sequence = {}
        self.config_sections = {}
        self.current_stage = None
        self._signal = None            # the first SignalReceived of the run
        self._signal_failed = False    # ... already turned into a failure of the run
        self._protected = 0            # > 0: a rollback or an ending stage runs
        self._ending = False           # the final lines are being written
        self._log_handler = None
        self._console_handler = None
        self._old_signals = {}
        self._transaction_aborted = False
        self._cmdline_keys = set()

    # -- helpers for plugins ---------------------------------------------------------
    def request_exit_code(self, code, priority=0):
        self.environment[BaseEnv.EXIT_CODE].append({'code': code, 'priority': priority})

    def origin(self, key):
        """Where the current value of ``key`` came from: ``'answer file F line N'``,
        ``'command line'``, or None (a plugin default, or asked)."""
        for section in ('environment:enforce', 'environment:override', 'environment:init'):
            for k, _value, where in reversed(self.config_sections.get(section, ())):
                if k == key:
                    return 'answer file %s' % where.rsplit(': ', 1)[0]
        if key in self._cmdline_keys:
            return 'command line'
        for k, _value, where in reversed(self.config_sections.get('environment:default', ())):
            if k == key:
                return 'answer file %s' % where.rsplit(': ', 1)[0]
        return None

    @property
    def log_file(self):
        return self.environment.get(CoreEnv.LOG_FILE_NAME)

    def _on_env_set(self, key):
        # preseeded answers to password questions (QUESTION/<n>/<name with PASSWORD>)
        if key.startswith('QUESTION/') and SECRET_QUESTION.search(key.rsplit('/', 1)[-1]):
            self._secret_keys.add(key)

    def _secret_values(self):
        """The current secret strings, for every log record: what it costs depends on the
        number of secrets only, never on the size of the environment."""
        env = self.environment
        values = [env.get(n) for n in self._secret_keys]
        values.extend(env.get(n) for n in env.get(CoreEnv.LOG_FILTER_KEYS) or ())
        values.extend(env.get(CoreEnv.LOG_FILTER) or ())
        return [v for v in values if isinstance(v, str)]

    # -- environment ---------------------------------------------------------------
    def _defaults(self):
        env = self.environment
        env[BaseEnv.ERROR] = False
        env[BaseEnv.ABORTED] = False
        env[BaseEnv.EXCEPTION_INFO] = []
        env[BaseEnv.EXIT_CODE] = []
        env[BaseEnv.INTERRUPTED] = None
        env[BaseEnv.FAILED_STAGE] = None
        env[BaseEnv.PLUGIN_GROUPS] = ':'.join(self.groups)
        env[BaseEnv.PLUGIN_PATH] = ':'.join(self.plugin_path)
        env[BaseEnv.EXECUTION_DIRECTORY] = os.getcwd()
        env[CoreEnv.LOG_FILTER_KEYS] = []
        env[CoreEnv.LOG_FILTER] = []
        env[CoreEnv.CONFIG_FILE_APPEND] = None
        env[DialogEnv.DIALECT] = 'human'
        env[DialogEnv.AUTO_ACCEPT_DEFAULT] = False

    def _apply_assignments(self):
        warnings = []
        given = []
        for text in self.assignments:
            mode, key, value, warning = typed.parse_assignment(text)
            where = 'command line: %s' % key
            self._validate_value(key, value, where)
            self.environment[key] = typed.combine(mode, self.environment.get(key), value)
            given.append((key, where))
            if warning:
                warnings.append(warning)
        return warnings + self._unknown_key_warnings(given)

    def _validate_value(self, key, value, where):
        definition = self.keys.get(key)
        if definition is None or value is None:
            return
        kind = definition.kind
        if kind is not None and typed.type_of(value) != kind:
            hint = ' (%s)' % typed.BOOL_SPELLINGS if kind == 'bool' else ''
            raise ConfigError('%s: %s is a %s value, but %s takes a %s: write %s=%s:VALUE%s'
                              % (where, typed.format(value), typed.type_of(value), key,
                                 kind, key, kind, hint))
        if definition.validator is None:
            return
        try:
            definition.validator(value)
        except (ValueError, TypeError) as e:
            raise ConfigError('%s: invalid value %r: %s' % (where, value, e))

    def _unknown_key_warnings(self, given):
        """given: (key, where) pairs. A key of a group that has declared keys (such as
        OVEHOSTED_STORAGE) but is not declared itself is most likely misspelt: a warning
        names it and the nearest declared key. At most MAX_UNKNOWN_KEY_WARNINGS warnings,
        then how many more there are."""
        groups = {k.split('/', 1)[0] for k in self.keys}
        seen = set()
        unknown = []
        for key, where in given:
            if key in self.keys or key in seen or key.split('/', 1)[0] not in groups:
                continue
            seen.add(key)
            unknown.append((key, where))
        warnings = []
        for key, where in unknown[:MAX_UNKNOWN_KEY_WARNINGS]:
            close = difflib.get_close_matches(key, list(self.keys), n=1)
            warnings.append('%s: unknown key, nothing reads it; %s' % (
                where, 'did you mean %s?' % close[0] if close else 'check its spelling'))
        if len(unknown) > MAX_UNKNOWN_KEY_WARNINGS:
            warnings.append('%d more unknown keys (not listed)'
                            % (len(unknown) - MAX_UNKNOWN_KEY_WARNINGS))
        return warnings

    def _load_config(self):
        paths = config.split_paths(self.environment.get(CoreEnv.CONFIG_FILE_NAME))
        paths += config.split_paths(self.environment.get(CoreEnv.CONFIG_FILE_APPEND))
        sections, warnings = config.load(paths)
        given = []
        for entries in sections.values():
            for key, value, where in entries:
                self._validate_value(key, value, where)
                given.append((key, where))
        warnings = warnings + self._unknown_key_warnings(given)
        self.config_sections = sections
        for key, value, _where in sections['environment:default']:
            if key not in self._cmdline_keys:
                self.environment[key] = value
        return paths, warnings

    def _apply_section(self, section):
        for key, value, where in self.config_sections.get(section, ()):
            logger.debug('%s: %s from %s', section, key, where)
            self.environment[key] = value

    def _dump_changes(self, before):
        for key in sorted(self.environment):
            value = self.environment[key]
            if key not in before or before[key] != value:
                shown = value
                if key in self.keys and self.keys[key].secret and value is not None:
                    shown = runlog.FILTERED
                logger.debug('ENV %s=%s', key, typed.format_for_log(shown))
        for key in sorted(set(before) - set(self.environment)):
            logger.debug('ENV %s removed', key)

    @staticmethod
    def _snapshot(env):
        return {k: (list(v) if isinstance(v, list) else v) for k, v in env.items()}

    # -- signals -------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        if self._signal is not None or self._ending:
            return      # already ending: what runs now (a rollback, the end) runs to its end
        self._signal = SignalReceived(signum, signal.Signals(signum).name)
        if self._protected:
            return      # a rollback or an ending stage runs: taken before the next event
        raise self._signal

    def _check_signal(self, stage):
        """A signal that arrived while a rollback or an ending stage ran fails the run now."""
        if self._signal is not None and not self._signal_failed:
            self._fail(self._signal, stage)

    def _install_signals(self):
        for name in SIGNALS:
            signum = getattr(signal, name)
            self._old_signals[signum] = signal.signal(signum, self._on_signal)

    def _restore_signals(self):
        for signum, handler in self._old_signals.items():
            signal.signal(signum, handler)

    # -- logging -------------------------------------------------------------------------
    def _open_log(self):
        log_dir = self.environment.get(CoreEnv.LOG_DIR) or self.log_dir
        path = self.environment.get(CoreEnv.LOG_FILE_NAME)
        if not path:
            prefix = self.environment.get(CoreEnv.LOG_FILE_PREFIX) or self.log_prefix
            path = runlog.log_file_name(log_dir, prefix)
        self.environment[CoreEnv.LOG_FILE_NAME] = path
        self._log_handler = runlog.open_log(path, self.secret_filter)

    def _close_log(self):
        root = logging.getLogger()
        for h in (self._log_handler, self._console_handler):
            if h is not None:
                root.removeHandler(h)
                h.close()

    # -- error handling ------------------------------------------------------------------
    def _fail(self, exc, stage):
        env = self.environment
        env[BaseEnv.ERROR] = True
        env[BaseEnv.EXCEPTION_INFO].append((type(exc).__name__, str(exc)))
        if env[BaseEnv.FAILED_STAGE] is None:
            env[BaseEnv.FAILED_STAGE] = stage.id
        if isinstance(exc, SignalReceived):
            self._signal_failed = True
            env[BaseEnv.INTERRUPTED] = exc.name
            logger.debug('Interrupted by %s in stage %s', exc.name, stage.id, exc_info=exc)
        elif isinstance(exc, AbortError):
            env[BaseEnv.ABORTED] = True
            logger.debug('Aborted by a plugin', exc_info=exc)
            logger.error('Aborted: %s' % exc if str(exc) else 'Aborted')
        else:
            logger.debug('Exception in stage %s', stage.id, exc_info=exc)
            logger.error("Failed to execute stage '%s': %s", stage.description, exc)
        self._abort_transaction()

    def _abort_transaction(self):
        if not self._transaction_aborted:
            self._transaction_aborted = True
            self._protected += 1
            try:
                self.main_transaction.abort()
            finally:
                self._protected -= 1

    # -- stages --------------------------------------------------------------------------
    def _builtin(self, stage, when):
        """What the runner itself does around a stage's events."""
        if stage.id == Stages.INIT and when == 'start':
            self._apply_section('environment:init')
        elif stage.id == Stages.CUSTOMIZATION and when == 'start':
            self._apply_section('environment:override')
        elif stage.id == Stages.CUSTOMIZATION and when == 'end':
            self._apply_section('environment:enforce')
        elif stage.id == Stages.TRANSACTION_BEGIN and when == 'start':
            self._protected += 1
            try:
                self.main_transaction.prepare()
            finally:
                self._protected -= 1
        elif stage.id == Stages.TRANSACTION_END and when == 'end':
            self._protected += 1
            try:
                self.main_transaction.commit()
            finally:
                self._protected -= 1

    def _run_stage(self, stage):
        env = self.environment
        if env[BaseEnv.ERROR] and not stage.always:
            logger.debug('Skipping stage %s: an error occurred earlier', stage.id)
            return
        self.current_stage = stage
        ending = stage.id in ENDING_STAGES
        if not ending:
            self._protected -= 1     # signals raise inside the events of this stage
        try:
            self._run_stage_events(stage)
        finally:
            if not ending:
                self._protected += 1

    def _run_stage_events(self, stage):
        env = self.environment
        level = logging.DEBUG if stage.id == Stages.BOOT else logging.INFO
        logger.log(level, 'Stage: %s', stage.description)
        if not self._call_builtin(stage, 'start') and not stage.always:
            return
        for ev in self.sequence.get(stage.id, ()):
            self._check_signal(stage)
            if env[BaseEnv.ERROR] and not stage.always:
                break
            before = self._snapshot(env)
            try:
                if ev.condition is not None and not ev.condition(ev.plugin):
                    logger.debug('condition false, skipping %s', ev.label)
                    continue
                logger.debug('STAGE %s METHOD %s', stage.id, ev.label)
                self.dialog.event_start(ev)
                ev.method()
                self.dialog.event_end(ev)
            except (Exception, KeyboardInterrupt, SignalReceived) as e:
                self._fail(e, stage)
            finally:
                self._dump_changes(before)
        self._check_signal(stage)
        if not env[BaseEnv.ERROR]:
            self._call_builtin(stage, 'end')

    def _call_builtin(self, stage, when):
        try:
            self._builtin(stage, when)
            return True
        except (Exception, KeyboardInterrupt, SignalReceived) as e:
            self._fail(e, stage)
            return False

    def _exit_code(self):
        if self._signal_failed:
            return ExitCodes.SIGNAL_BASE + self._signal.signum
        codes = self.environment[BaseEnv.EXIT_CODE]
        if codes:
            return sorted(codes, key=lambda c: c['priority'])[-1]['code']
        return ExitCodes.GENERAL_ERROR if self.environment[BaseEnv.ERROR] else 0

    # -- the run ---------------------------------------------------------------------------
    def run(self):
        """Run all stages; return the exit code."""
        self._defaults()
        self._install_signals()
        try:
            try:
                code = self._prepare()
                if code is None:
                    # from here on a signal waits for the next event of a stage
                    self._protected += 1
            except SignalReceived as e:
                return self._interrupted_early(e)
            if code is not None:
                return code
            return self._run_stages()
        finally:
            self._ending = True
            self._restore_signals()
            self._close_log()

    def _interrupted_early(self, exc):
        """A signal before the stages ran (options, answer files, plugin load)."""
        self._ending = True
        self.environment[BaseEnv.INTERRUPTED] = exc.name
        logger.debug('Interrupted by %s before the stages ran', exc.name, exc_info=exc)
        message = 'Interrupted by %s before anything ran: nothing was changed%s' % (
            exc.name, '; log file: %s' % self.log_file if self._log_handler else '')
        self._final_error(message)
        return ExitCodes.SIGNAL_BASE + exc.signum

    def _final_error(self, message, note=None):
        """One error line on screen (and in the log when it is open), then the end."""
        if self.dialog is None:
            self.dialog = make_dialog('human', self.environment, self.secret_filter,
                                      self.stdin, self.stdout)
        try:
            if self._console_handler in logging.getLogger().handlers:
                logger.error('%s', message)
            else:
                self.dialog.write_log_line('ERROR', self.secret_filter.scrub(message))
                logger.error('%s', message)
            if note:
                self.dialog.note(note)
            self.dialog.terminate()
        except OSError:
            logger.debug('the output is gone (SIGPIPE): %s', message)

    def interruption_summary(self):
        """What an interrupted run did about its changes, in words."""
        t = self.main_transaction
        if t.rolled_back:
            return 'rolled back: %s' % ', '.join(t.rolled_back)
        if t.committed:
            return 'nothing rolled back: the changes committed by this run remain'
        return 'nothing to roll back'

    def _early_error(self, message, code):
        """An error before the stages run: one line on screen, details in the log."""
        self._ending = True
        self._final_error(message, note='Log file is located at %s' % self.log_file
                          if self.log_file else None)
        return code

    def _prepare(self):
        """Options, dialog, log, plugins, answer files: an exit code if that failed, else
        None. Nothing is changed here but the log file."""
        self.secret_filter.set_source(self._secret_values)
        try:
            warnings = self._apply_assignments()
            self._cmdline_keys = set(self.environment)
            self.dialog = make_dialog(self.environment[DialogEnv.DIALECT], self.environment,
                                      self.secret_filter, self.stdin, self.stdout)
        except RunnerError as e:
            return self._early_error(str(e), ExitCodes.GENERAL_ERROR)
        self._console_handler = self.dialog.console_handler()
        try:
            self._open_log()
        except OSError as e:
            logging.getLogger().addHandler(self._console_handler)
            return self._early_error('Cannot open the log file in %s: %s'
                                     % (self.environment.get(CoreEnv.LOG_DIR) or self.log_dir,
                                        e.strerror or e), ExitCodes.GENERAL_ERROR)
        logging.getLogger().addHandler(self._console_handler)
        self.dialog.note('Log file: %s' % self.log_file)
        logger.debug('runner starting: groups=%s path=%s', self.groups, self.plugin_path)
        for w in warnings:
            logger.warning('%s', w)
        try:
            self.plugins = loader.load_groups(self.groups, self.plugin_path, self)
            self.sequence = events.order(events.collect(self.plugins))
        except PluginLoadError as e:
            logger.debug('plugin load failed', exc_info=e)
            return self._early_error(str(e), ExitCodes.INITIALIZATION_ERROR)
        for stage_id, evs in self.sequence.items():
            for ev in evs:
                logger.debug('SEQUENCE %s %s priority=%d', stage_id, ev.label, ev.priority)
        try:
            paths, warnings = self._load_config()
        except RunnerError as e:
            logger.debug('configuration failed', exc_info=e)
            return self._early_error(str(e), ExitCodes.GENERAL_ERROR)
        for w in warnings:
            logger.warning('%s', w)
        self.environment['CORE/configFiles'] = paths
        self._dump_changes({})
        return None

    def _run_stages(self):
        """All stages, then the final lines; returns the exit code. Called protected: a
        signal raises only inside the events of a stage that is not an ending one (see
        _run_stage), and whatever it interrupted is failed here."""
        index = 0
        while True:
            try:
                while index < len(STAGES):
                    index += 1
                    self._run_stage(STAGES[index - 1])
                break
            except SignalReceived as e:
                self._fail(e, self.current_stage or STAGES[0])
        self._check_signal(STAGE_BY_ID[Stages.TERMINATE])
        self._ending = True
        code = self._exit_code()
        logger.debug('exit code %d', code)
        if self._signal_failed:
            self._final_error('Interrupted by %s: %s; log file: %s'
                              % (self._signal.name, self.interruption_summary(),
                                 self.log_file))
            return code
        self.dialog.note('Log file is located at %s' % self.log_file)
        self.dialog.terminate()
        return code
