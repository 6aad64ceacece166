"""Typed values: ``type:value`` as used in answer files, the command line and environment dumps.

Booleans are strict: the spellings below, in any case, and nothing else. otopi reads every
word but its false spellings as True (so ``bool:Flase`` or ``bool:no`` meant True there); here
a misspelt value is an error naming the key, and ``bool:no`` means False.
"""
import re

from .errors import ConfigError

# the one table of bool spellings (compared case-insensitively)
TRUE_WORDS = ('true', 'yes', 'y', 't', '1')
FALSE_WORDS = ('false', 'no', 'n', 'f', '0')
BOOL_SPELLINGS = 'True, False, yes, no, y, n, t, f, 1, 0 (any case)'
TYPES = ('none', 'bool', 'int', 'str', 'multi-str')
_INT = re.compile(r'^[+-]?[0-9]+$')


def parse_bool(value, where='value'):
    """A bool spelling of the table -> True/False; anything else raises ConfigError."""
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError('%s: %r is not a bool: write one of %s' % (where, value, BOOL_SPELLINGS))


def parse(text, where='value'):
    """``type:value`` -> (python value, warning or None). ``where`` names the place (key and
    file line) for errors: a missing or unknown type and a value that is not a valid spelling
    of its type raise ConfigError."""
    if ':' not in text:
        raise ConfigError('%s: missing type in %r (write it as type:value, with type one of %s)'
                          % (where, text, ', '.join(TYPES)))
    kind, value = text.split(':', 1)
    if kind == 'none':
        return None, None
    if kind == 'bool':
        return parse_bool(value, where), None
    if kind == 'int':
        if not _INT.match(value.strip()):
            raise ConfigError('%s: %r is not an integer (write int:NUMBER, digits with an '
                              'optional sign)' % (where, value))
        return int(value.strip()), None
    if kind == 'str':
        return value, None
    if kind == 'multi-str':
        lines = [line.strip() for line in value.splitlines()]
        while lines and lines[0] == '':
            lines.pop(0)
        return lines, None
    raise ConfigError('%s: unknown type %r (use one of %s)' % (where, kind, ', '.join(TYPES)))


def type_of(value):
    if value is None:
        return 'none'
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, int):
        return 'int'
    if isinstance(value, (list, tuple)):
        return 'multi-str'
    return 'str'


def format(value, continuation='    '):
    """python value -> ``type:value`` (multi-str continuation lines indented)."""
    kind = type_of(value)
    if kind == 'none':
        return 'none:None'
    if kind == 'multi-str':
        return 'multi-str:' + ''.join('\n' + continuation + str(v) for v in value)
    return '%s:%s' % (kind, value)


def format_for_log(value):
    """``type:'value'`` as the log's environment dump shows it."""
    kind = type_of(value)
    if kind == 'multi-str':
        return "multi-str:%r" % (list(value),)
    return "%s:'%s'" % (kind, value)


def parse_assignment(text, where='command line'):
    """``[APPEND:|PREPEND:]KEY=type:value`` -> (mode, key, value, warning)."""
    mode = None
    for prefix in ('APPEND:', 'PREPEND:'):
        if text.startswith(prefix):
            mode = prefix[:-1]
            text = text[len(prefix):]
    if '=' not in text:
        raise ConfigError('%s: %r is not KEY=type:value' % (where, text))
    key, rest = text.split('=', 1)
    key = key.strip()
    if not key or '/' not in key:
        raise ConfigError('%s: %r is not a valid key (keys look like GROUP/name)' % (where, key))
    value, warning = parse(rest, where='%s: %s' % (where, key))
    return mode, key, value, warning


def combine(mode, old, new):
    """APPEND/PREPEND a string value to an existing one with ':'; lists extend."""
    if mode is None or old is None:
        return new
    if isinstance(old, list):
        extra = new if isinstance(new, list) else [new]
        return old + extra if mode == 'APPEND' else extra + old
    if mode == 'APPEND':
        return '%s:%s' % (old, new)
    return '%s:%s' % (new, old)
