"""Answer files: INI with the four environment sections and typed values."""
import glob
import os

from . import typed
from .constants import CONFIG_SECTIONS
from .errors import ConfigError


def expand(path):
    """A configuration file and the *.conf files of its F.d directory, sorted."""
    files = [path]
    files.extend(sorted(glob.glob(os.path.join(path + '.d', '*.conf'))))
    return files


def parse_file(path):
    """-> list of (section, key, value, where, warning). Raises ConfigError naming file and line."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise ConfigError('Answer file %s does not exist; check the path given to '
                          '--config-append' % path)
    except IsADirectoryError:
        raise ConfigError('Answer file %s is a directory, not a file' % path)
    except PermissionError:
        raise ConfigError('Answer file %s is not readable (permission denied)' % path)
    except UnicodeDecodeError:
        raise ConfigError('Answer file %s is not UTF-8 text' % path)
    except OSError as e:
        raise ConfigError('Answer file %s cannot be read: %s' % (path, e.strerror or e))

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
