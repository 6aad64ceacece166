"""The run: environment, plugins, stages, dialog, log and the main transaction."""
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
from .errors import AbortError, ConfigError, PluginLoadError, RunnerError, SignalReceived
from .transaction import Transaction

logger = logging.getLogger('otopi.context')

SECRET_QUESTION = re.compile('PASSWORD|PASSWD|SECRET', re.I)
SIGNALS = ('SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGPIPE')


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
        self.environment = {}
        self.dialog = None
        self.secret_filter = runlog.SecretFilter()
        self.main_transaction = Transaction()
        self.plugins = []
        self.sequence = {}
        self.config_sections = {}
        self.current_stage = None
        self._in_event = False
        self._pending_signal = None
        self._log_handler = None
        self._console_handler = None
        self._old_signals = {}
        self._transaction_aborted = False
        self._cmdline_keys = set()

    # -- helpers for plugins ---------------------------------------------------------
    def request_exit_code(self, code, priority=0):
        self.environment[BaseEnv.EXIT_CODE].append({'code': code, 'priority': priority})

    @property
    def log_file(self):
        return self.environment.get(CoreEnv.LOG_FILE_NAME)

    def _secret_values(self):
        env = self.environment
        names = set(env.get(CoreEnv.LOG_FILTER_KEYS) or ())
        names.update(k for k, d in self.keys.items() if d.secret)
        values = [env.get(n) for n in names]
        values.extend(env.get(CoreEnv.LOG_FILTER) or ())
        for k, v in env.items():
            # preseeded answers to password questions (QUESTION/<n>/<name with PASSWORD>)
            if k.startswith('QUESTION/') and SECRET_QUESTION.search(k.rsplit('/', 1)[-1]):
                values.append(v)
        return [v for v in values if isinstance(v, str)]

    # -- environment ---------------------------------------------------------------
    def _defaults(self):
        env = self.environment
        env[BaseEnv.ERROR] = False
        env[BaseEnv.ABORTED] = False
        env[BaseEnv.EXCEPTION_INFO] = []
        env[BaseEnv.EXIT_CODE] = []
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
        for text in self.assignments:
            mode, key, value, warning = typed.parse_assignment(text)
            self._validate_value(key, value, 'command line: %s' % key)
            self.environment[key] = typed.combine(mode, self.environment.get(key), value)
            if warning:
                warnings.append(warning)
        return warnings

    def _validate_value(self, key, value, where):
        definition = self.keys.get(key)
        if definition is None or definition.validator is None or value is None:
            return
        try:
            definition.validator(value)
        except (ValueError, TypeError) as e:
            raise ConfigError('%s: invalid value %r: %s' % (where, value, e))

    def _load_config(self):
        paths = config.split_paths(self.environment.get(CoreEnv.CONFIG_FILE_NAME))
        paths += config.split_paths(self.environment.get(CoreEnv.CONFIG_FILE_APPEND))
        sections, warnings = config.load(paths)
        for entries in sections.values():
            for key, value, where in entries:
                self._validate_value(key, value, where)
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
        name = signal.Signals(signum).name
        exc = SignalReceived(signum, name)
        if self._in_event:
            raise exc
        self._pending_signal = exc

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
        if isinstance(exc, AbortError):
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
            self.main_transaction.abort()

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
            self.main_transaction.prepare()
        elif stage.id == Stages.TRANSACTION_END and when == 'end':
            self.main_transaction.commit()

    def _run_stage(self, stage):
        env = self.environment
        if env[BaseEnv.ERROR] and not stage.always:
            logger.debug('Skipping stage %s: an error occurred earlier', stage.id)
            return
        self.current_stage = stage
        level = logging.DEBUG if stage.id == Stages.BOOT else logging.INFO
        logger.log(level, 'Stage: %s', stage.description)
        if not self._call_builtin(stage, 'start') and not stage.always:
            return
        for ev in self.sequence.get(stage.id, ()):
            if self._pending_signal is not None:
                exc, self._pending_signal = self._pending_signal, None
                self._fail(exc, stage)
            if env[BaseEnv.ERROR] and not stage.always:
                break
            before = self._snapshot(env)
            try:
                self._in_event = True
                if ev.condition is not None and not ev.condition(ev.plugin):
                    logger.debug('condition false, skipping %s', ev.label)
                    continue
                logger.debug('STAGE %s METHOD %s', stage.id, ev.label)
                self.dialog.event_start(ev)
                ev.method()
                self.dialog.event_end(ev)
            except (Exception, KeyboardInterrupt) as e:
                self._in_event = False
                self._fail(e, stage)
            finally:
                self._in_event = False
                self._dump_changes(before)
        if not env[BaseEnv.ERROR]:
            self._call_builtin(stage, 'end')

    def _call_builtin(self, stage, when):
        try:
            self._in_event = True
            self._builtin(stage, when)
            return True
        except (Exception, KeyboardInterrupt) as e:
            self._in_event = False
            self._fail(e, stage)
            return False
        finally:
            self._in_event = False

    def _exit_code(self):
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
            return self._run()
        finally:
            self._restore_signals()
            self._close_log()

    def _early_error(self, message, code):
        """An error before the stages run: one line on screen, details in the log."""
        if self.dialog is None:
            self.dialog = make_dialog('human', self.environment, self.secret_filter,
                                      self.stdin, self.stdout)
        if self._console_handler in logging.getLogger().handlers:
            logger.error('%s', message)
        else:
            self.dialog.write_log_line('ERROR', self.secret_filter.scrub(message))
            logger.error('%s', message)
        if self.log_file:
            self.dialog.note('Log file is located at %s' % self.log_file)
        self.dialog.terminate()
        return code

    def _run(self):
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
        for stage in STAGES:
            self._run_stage(stage)
        if self._pending_signal is not None:
            self._fail(self._pending_signal, STAGE_BY_ID[Stages.TERMINATE])
        code = self._exit_code()
        logger.debug('exit code %d', code)
        self.dialog.note('Log file is located at %s' % self.log_file)
        self.dialog.terminate()
        return code
