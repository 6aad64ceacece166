"""The run's log file and the secret filter applied to every record."""
import datetime
import logging
import os
import random
import re
import string

FILTERED = '**FILTERED**'
_PRIVATE_KEY = re.compile(
    r'-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----', re.S)
LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s %(module)s.%(funcName)s:%(lineno)d %(message)s'


class SecretFilter:
    """Knows the secret strings of a run and removes them from text.

    The secret values are kept in one set, and one compiled pattern of them (longest first,
    so a secret that contains another is replaced whole) is rebuilt only when the set grows;
    filtering a line costs what the number of secrets costs, whatever the size of the
    environment. A value once known stays filtered for the rest of the run, also after its key
    is removed or changed.
    """

    def __init__(self):
        self._values_fn = None
        self._values = set()
        self._pattern = None

    def set_source(self, values_fn):
        """values_fn() -> the current secret strings, asked for every record: it must cost
        what the number of secrets costs (see Context._secret_values)."""
        self._values_fn = values_fn

    def add(self, values):
        """Learn secret strings (None and '' are ignored)."""
        new = {str(v) for v in values if v is not None and v != ''}
        new.difference_update(self._values)
        if new:
            self._values.update(new)
            self._pattern = re.compile('|'.join(
                re.escape(v) for v in sorted(self._values, key=len, reverse=True)))

    @property
    def values(self):
        return frozenset(self._values)

    def scrub(self, text):
        if not text:
            return text
        if 'PRIVATE KEY-----' in text:
            text = _PRIVATE_KEY.sub(FILTERED, text)
        if self._values_fn is not None:
            self.add(self._values_fn())
        if self._pattern is not None:
            text = self._pattern.sub(FILTERED, text)
        return text


class FilteringFormatter(logging.Formatter):
    def __init__(self, secret_filter, fmt=LOG_FORMAT):
        super().__init__(fmt)
        self.secret_filter = secret_filter

    def format(self, record):
        return self.secret_filter.scrub(super().format(record))


def log_file_name(log_dir, prefix):
    stamp = datetime.datetime.now().strftime('%Y%m%d%H%M%S')
    suffix = ''.join(random.choice(string.ascii_lowercase + string.digits) for _ in range(6))
    return os.path.join(log_dir, '%s-%s-%s.log' % (prefix, stamp, suffix))


def open_log(path, secret_filter, logger_name='otopi'):
    """Attach a file handler writing ``path`` (mode 0600) to the root logger."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    stream = os.fdopen(fd, 'a', encoding='utf-8', buffering=1)
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(FilteringFormatter(secret_filter))
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    return handler
