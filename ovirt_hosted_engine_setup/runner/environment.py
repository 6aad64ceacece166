"""The run's environment: a dict that tells a listener the names of the keys being set.

The secret filter needs to learn about new secret keys (preseeded password answers) when they
are set, instead of scanning the whole environment for every log record.
"""


class Environment(dict):
    """A dict of ``GROUP/name`` keys; ``on_set(key)`` is called after a key is set."""

    def __init__(self, *args, on_set=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_set = on_set

    def _notify(self, key):
        if self.on_set is not None:
            self.on_set(key)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._notify(key)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def copy(self):
        return dict(self)
