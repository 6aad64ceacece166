"""Answer files: INI with the four environment sections and typed values.

An answer file must be a regular file of at most MAX_ANSWER_FILE_SIZE bytes (1 MiB): a
device (/dev/zero, /dev/urandom), a FIFO, a directory or a larger file is refused at once,
before anything is read, and no more than that size is ever read.
"""
import errno
import glob
import os
import stat

from . import typed
from .constants import CONFIG_SECTIONS
from .errors import ConfigError


def expand(path):
    """A configuration file and the *.conf files of its F.d directory, sorted."""
    files = [path]
    files.extend(sorted(glob.glob(os.path.join(path + '.d', '*.conf'))))
    return files


MAX_ANSWER_FILE_SIZE = 1 << 20
MAX_ANSWER_FILE_TEXT = '1 MiB'


def _kind(mode):
    if stat.S_ISDIR(mode):
        return 'a directory'
    if stat.S_ISFIFO(mode):
        return 'a FIFO'
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return 'a device'
    if stat.S_ISSOCK(mode):
        return 'a socket'
    return 'not a regular file'


def read_bounded(path):
    """The text of an answer file: a regular file of at most MAX_ANSWER_FILE_SIZE bytes, in
    UTF-8. Anything else raises ConfigError before its content is read. Opened without
    blocking (a FIFO would wait for a writer) and checked on the open descriptor."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise ConfigError('Answer file %s does not exist; check the path given to '
                          '--config-append' % path)
    except PermissionError:
        raise ConfigError('Answer file %s is not readable (permission denied)' % path)
    except OSError as e:
        if e.errno == errno.ENXIO:      # a FIFO or socket nobody writes to
            raise ConfigError('Answer file %s is not a regular file: give the path of an '
                              'answer file' % path)
        raise ConfigError('Answer file %s cannot be read: %s' % (path, e.strerror or e))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError('Answer file %s is %s, not a regular file: give the path of an '
                              'answer file' % (path, _kind(st.st_mode)))
        if st.st_size > MAX_ANSWER_FILE_SIZE:
            raise ConfigError('Answer file %s is %d bytes, more than answer files may have (%s): '
                              'give the answer file itself' % (path, st.st_size,
                                                               MAX_ANSWER_FILE_TEXT))
        chunks = []
        size = 0
        while size <= MAX_ANSWER_FILE_SIZE:
            chunk = os.read(fd, MAX_ANSWER_FILE_SIZE + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_ANSWER_FILE_SIZE:     # it grew while being read
            raise ConfigError('Answer file %s is more than %s: give the answer file itself'
                              % (path, MAX_ANSWER_FILE_TEXT))
    except OSError as e:
        raise ConfigError('Answer file %s cannot be read: %s' % (path, e.strerror or e))
    finally:
        os.close(fd)
    try:
        return b''.join(chunks).decode('utf-8')
    except UnicodeDecodeError:
        raise ConfigError('Answer file %s is not UTF-8 text' % path)


def parse_file(path):
    """-> list of (section, key, value, where, warning). Raises ConfigError naming file and line."""
    return parse_text(read_bounded(path), path)


def parse_text(text, path):
    """parse_file of answer-file text read elsewhere (path names it in messages)."""
    if len(text) > MAX_ANSWER_FILE_SIZE:
        raise ConfigError('Answer file %s is more than %s' % (path, MAX_ANSWER_FILE_TEXT))
    lines = text.splitlines()

    entries = []      # [section, key, raw value, first line number]
    section = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if line[:1] in (' ', '\t') and stripped and entries and entries[-1][3] is not None:
            # continuation line of the previous value (multi-str)
            entries[-1][2] += '\n' + stripped
            continue
        if not stripped or stripped[0] in '#;':
            continue
        if stripped.startswith('['):
            if not stripped.endswith(']'):
                raise ConfigError('%s line %d: malformed section header %r' % (path, number, line))
            section = stripped[1:-1].strip()
            if section not in CONFIG_SECTIONS:
                raise ConfigError('%s line %d: unknown section [%s] (use one of %s)'
                                  % (path, number, section,
                                     ', '.join('[%s]' % s for s in CONFIG_SECTIONS)))
            continue
        if '=' not in line:
            raise ConfigError('%s line %d: malformed line %r (expected KEY=type:value)'
                              % (path, number, line))
        if section is None:
            raise ConfigError('%s line %d: %r comes before any section header such as '
                              '[environment:default]' % (path, number, line))
        key, value = line.split('=', 1)
        key = key.strip()
        if not key or '/' not in key:
            raise ConfigError('%s line %d: %r is not a valid key (keys look like GROUP/name)'
                              % (path, number, key))
        entries.append([section, key, value.strip(), number])

    result = []
    for section, key, raw, number in entries:
        where = '%s line %d: %s' % (path, number, key)
        value, warning = typed.parse(raw, where=where)
        result.append((section, key, value, where, warning))
    return result


def load(paths):
    """Parse every file (and its F.d/*.conf) -> {section: [(key, value, where)]}, warnings."""
    sections = {s: [] for s in CONFIG_SECTIONS}
    warnings = []
    for path in paths:
        for f in expand(path):
            for section, key, value, where, warning in parse_file(f):
                sections[section].append((key, value, where))
                if warning:
                    warnings.append(warning)
    return sections, warnings


def split_paths(value):
    """CORE/configFileAppend holds paths joined with ':' (or a list)."""
    if not value:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if v]
    return [p for p in str(value).split(':') if p]
