"""Answer files written at the end of a run."""
import datetime
import os

from . import typed
from .transaction import write_file

HEADER = '# Answers of a run of %s, %s.\n# Replay with: --config-append=<this file>\n'


def render(environment, keys, program):
    """The answer file text: header, [environment:default], sorted KEY=type:value lines of
    the keys flagged for the answer file that have a value (secrets never)."""
    lines = []
    for key in sorted(k for k in keys if k.answer_file and not k.secret):
        value = environment.get(key)
        if value is None:
            continue
        lines.append('%s=%s\n' % (key, typed.format(value)))
    stamp = datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')
    return HEADER % (program, stamp) + '[environment:default]\n' + ''.join(lines)


def timestamped_path(directory):
    stamp = datetime.datetime.now().strftime('%Y%m%d%H%M%S')
    return os.path.join(directory, 'answers-%s.conf' % stamp)


def write(path, text):
    """Write an answer file (mode 0600) through a file transaction."""
    write_file(path, text, mode=0o600, backup=False)
