"""The dialogs: human (a person at a terminal) and machine (a program driving the runner)."""
import collections
import logging
import os
import sys
import termios
import textwrap

from .constants import QUESTION_PREFIX, CoreEnv, DialogEnv
from .errors import DialogEOF, RunnerError

NOTE_INDENT = ' ' * 9
# the longest answer read from the input (an SSH public key fits many times): input without a
# line end, such as /dev/zero, is never read beyond it
MAX_ANSWER_LENGTH = 65536
NOTE_WIDTH = 110
_COLORS = {'INFO': '\033[32m', 'WARNING': '\033[33m', 'ERROR': '\033[31m', 'CRITICAL': '\033[31m'}
_RESET = '\033[0m'


class _ConsoleHandler(logging.Handler):
    def __init__(self, dialog):
        super().__init__(logging.INFO)
        self.dialog = dialog

    def emit(self, record):
        try:
            msg = self.dialog.secret_filter.scrub(record.getMessage())
            self.dialog.write_log_line(record.levelname, msg)
        except Exception:  # pragma: no cover - never let the console break the run
            self.handleError(record)


class Dialog:
    """What both dialects share: preseeding, validation, secret registration."""

    dialect = None

    def __init__(self, environment, secret_filter, stdin=None, stdout=None):
        self.environment = environment
        self.secret_filter = secret_filter
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self._counts = collections.Counter()
        self.last_answer_typed = False
        self.logger = logging.getLogger('otopi.dialog')

    # -- output ---------------------------------------------------------------------
    def console_handler(self):
        return _ConsoleHandler(self)

    def write(self, text):
        self.stdout.write(text)
        self.stdout.flush()

    # -- secrets ----------------------------------------------------------------------
    def register_secret(self, value):
        if value:
            self.environment.setdefault(CoreEnv.LOG_FILTER, [])
            if value not in self.environment[CoreEnv.LOG_FILTER]:
                self.environment[CoreEnv.LOG_FILTER].append(value)
            self.secret_filter.add((value,))

    # -- questions ------------------------------------------------------------------------
    def _preseed_key(self, name):
        self._counts[name] += 1
        return '%s/%d/%s' % (QUESTION_PREFIX, self._counts[name], name)

    @staticmethod
    def _validate(value, valid_values, case_sensitive, validator, allow_empty):
        if valid_values:
            for v in valid_values:
                if value == v or (not case_sensitive and value.lower() == str(v).lower()):
                    value = v
                    break
            else:
                raise ValueError('%r is not one of %s' % (value, ', '.join(valid_values)))
        if value == '' and not allow_empty:
            raise ValueError('a value is required')
        if validator is not None:
            result = validator(value)
            if result is not None:
                value = result
        return value

    def query_string(self, name, note, valid_values=None, case_sensitive=True, default=None,
                     hidden=False, validator=None, allow_empty=False):
        """Ask a question; return the (validated, normalised) answer.

        A value preseeded as QUESTION/<k>/<name> is used without asking; an invalid one is
        an error. With DIALOG/autoAcceptDefault a valid default is taken without asking.
        """
        if valid_values:
            valid_values = [str(v) for v in valid_values]
        key = self._preseed_key(name)
        self.last_answer_typed = False
        if default is not None:
            default = str(default)
        if key in self.environment:
            value = str(self.environment[key])
            if hidden:
                self.register_secret(value)
            try:
                return self._validate(value, valid_values, case_sensitive, validator, allow_empty)
            except ValueError as e:
                raise RunnerError('Invalid preseeded answer %s: %s' % (key, e))
        if default is not None and self.environment.get(DialogEnv.AUTO_ACCEPT_DEFAULT):
            try:
                value = self._validate(default, valid_values, case_sensitive, validator,
                                       allow_empty)
                self.logger.debug('question %s: default %r accepted automatically', name,
                                  '***' if hidden else default)
                return value
            except ValueError:
                pass
        self.last_answer_typed = True
        return self._ask(name, note, valid_values, case_sensitive, default, hidden,
                         validator, allow_empty)

    def query_password(self, name, note, confirm_note, validator=None):
        """Ask for a new secret (hidden) twice when typed: both entries must match."""
        while True:
            first = self.query_string(name, note, hidden=True, validator=validator)
            if not self.last_answer_typed:
                return first
            second = self.query_string(name + '_CONFIRM', confirm_note, hidden=True)
            if first == second:
                return first
            if self.dialect == 'machine':
                raise RunnerError('The two passwords given for %s do not match' % name)
            self.write_log_line('ERROR', 'Passwords do not match, please enter them again')

    def query_yes_no(self, name, note, default=True):
        answer = self.query_string(name, note, valid_values=('Yes', 'No'), case_sensitive=False,
                                   default='Yes' if default else 'No')
        return answer == 'Yes'

    def _read_line(self, hidden, name):
        fd = None
        old = None
        if hidden:
            try:
                if os.isatty(self.stdin.fileno()):
                    fd = self.stdin.fileno()
                    old = termios.tcgetattr(fd)
                    new = termios.tcgetattr(fd)
                    new[3] &= ~termios.ECHO
                    termios.tcsetattr(fd, termios.TCSADRAIN, new)
            except (AttributeError, ValueError, OSError, termios.error):
                fd = None
        try:
            line = self.stdin.readline(MAX_ANSWER_LENGTH + 1)
        finally:
            if fd is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, old)
                self.write('\n')
        if line == '':
            raise DialogEOF('End of input while asking %s; aborting' % name)
        if len(line) > MAX_ANSWER_LENGTH and not line.endswith('\n'):
            raise RunnerError('The answer to %s is longer than %d characters: check what '
                              'the input of the deploy is' % (name, MAX_ANSWER_LENGTH))
        line = line.rstrip('\r\n')
        if hidden:
            self.register_secret(line)
        return line

    # -- per dialect ------------------------------------------------------------------
    def _ask(self, name, note, valid_values, case_sensitive, default, hidden, validator,
             allow_empty):
        raise NotImplementedError

    def write_log_line(self, level, msg):
        raise NotImplementedError

    def note(self, text):
        raise NotImplementedError

    def confirm(self, name, description, note=None):
        raise NotImplementedError

    def event_start(self, ev):
        """Machine dialect frames each event; a person does not need that."""

    def event_end(self, ev):
        """See event_start."""

    def terminate(self):
        """End of the dialog."""


class HumanDialog(Dialog):
    dialect = 'human'

    def _color(self, level):
        if level not in _COLORS or os.environ.get('NO_COLOR') or \
                os.environ.get('TERM', 'dumb') == 'dumb':
            return False
        try:
            return os.isatty(self.stdout.fileno())
        except (AttributeError, ValueError, OSError):
            return False

    def write_log_line(self, level, msg):
        pad = 7 - len(level)
        label = ' ' * (pad // 2) + level + ' ' * (pad - pad // 2)
        if self._color(level):
            label = '%s%s%s' % (_COLORS[level], label, _RESET)
        lines = str(msg).splitlines() or ['']
        self.write('[%s] %s\n' % (label, lines[0]) + ''.join(
            '%s%s\n' % (NOTE_INDENT, line) for line in lines[1:]))

    def note(self, text):
        """Indent by 9; wrap long lines, but never split a path or other long token."""
        out = []
        for line in str(text).splitlines() or ['']:
            if not line.strip():
                out.append('')
            elif len(line) <= NOTE_WIDTH or any(len(w) > 40 for w in line.split()):
                out.append(NOTE_INDENT + line)
            else:
                out.extend(textwrap.wrap(line, width=NOTE_WIDTH + 9, initial_indent=NOTE_INDENT,
                                         subsequent_indent=NOTE_INDENT,
                                         break_on_hyphens=False))
        self.write(''.join(line + '\n' for line in out))

    def _prompt(self, note, valid_values, default):
        lines = str(note).splitlines() or ['']
        for line in lines[:-1]:
            self.note(line)
        prompt = NOTE_INDENT + lines[-1].rstrip()
        if prompt.endswith(':'):
            prompt = prompt[:-1]
        if valid_values:
            prompt += ' (%s)' % ', '.join(valid_values)
        if default is not None:
            prompt += ('[%s]' if valid_values else ' [%s]') % default
        return prompt + ': '

    def _ask(self, name, note, valid_values, case_sensitive, default, hidden, validator,
             allow_empty):
        while True:
            self.write(self._prompt(note, valid_values, default))
            value = self._read_line(hidden, name)
            if value == '' and default is not None:
                value = default
            try:
                return self._validate(value, valid_values, case_sensitive, validator,
                                      allow_empty)
            except ValueError as e:
                self.write_log_line('ERROR', 'Invalid value: %s' % e)

    def confirm(self, name, description, note=None):
        return self.query_yes_no(name, note or description + '?')


class MachineDialog(Dialog):
    dialect = 'machine'

    def write_log_line(self, level, msg):
        for line in str(msg).splitlines() or ['']:
            self.write('***L:%s %s\n' % (level, line))

    def note(self, text):
        self.write(''.join('### %s\n' % line for line in str(text).splitlines() or ['']))

    @staticmethod
    def _escape(v):
        return str(v).replace('\\', '\\\\').replace('|', '\\|')

    def _ask(self, name, note, valid_values, case_sensitive, default, hidden, validator,
             allow_empty):
        self.write('**%%QStart: %s\n' % name)
        self.note(note)
        if default not in (None, ''):
            self.write('**%%QDefault: %s\n' % default)
        if valid_values:
            self.write('**%%QValidValues: %s\n' % '|'.join(self._escape(v) for v in valid_values))
        self.write('**%%QHidden: %s\n' % ('TRUE' if hidden else 'FALSE'))
        self.write('***Q:STRING %s\n' % name)
        self.write('**%%QEnd: %s\n' % name)
        value = self._read_line(hidden, name)
        if value == '' and default is not None:
            value = default
        try:
            return self._validate(value, valid_values, case_sensitive, validator, allow_empty)
        except ValueError as e:
            raise RunnerError('Invalid value for %s: %s' % (name, e))

    def confirm(self, name, description, note=None):
        key = self._preseed_key(name)
        if key in self.environment:
            return bool(self.environment[key])
        if note:
            self.note(note)
        self.write('***CONFIRM %s %s\n' % (name, description))
        line = self._read_line(False, name).strip()
        prefix = 'CONFIRM %s=' % name
        if not line.startswith(prefix) or line[len(prefix):].lower() not in ('yes', 'no'):
            raise RunnerError('Invalid reply to confirmation %s: expected %syes or %sno'
                              % (name, prefix, prefix))
        return line[len(prefix):].lower() == 'yes'

    def event_start(self, ev):
        self.write('**%%EventStart STAGE %s METHOD %s\n' % (ev.stage, ev.label))

    def event_end(self, ev):
        self.write('**%%EventEnd STAGE %s METHOD %s\n' % (ev.stage, ev.label))

    def terminate(self):
        self.write('***TERMINATE\n')


def make_dialog(dialect, environment, secret_filter, stdin=None, stdout=None):
    classes = {'human': HumanDialog, 'machine': MachineDialog}
    if dialect not in classes:
        raise RunnerError('Unknown dialog dialect %r (use human or machine)' % (dialect,))
    return classes[dialect](environment, secret_filter, stdin, stdout)
