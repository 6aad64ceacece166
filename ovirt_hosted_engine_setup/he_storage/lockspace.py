"""The ``hosted-engine`` sanlock lockspace on the lockspace volume (HESD).

The HA broker of each host joins it with its host id; init_lockspace() writes it when the
storage is provisioned (it needs the host's sanlock daemon).
"""
from . import StorageError, sanlock_util
from .layout import DEFAULT_IO_TIMEOUT, LOCKSPACE_NAME


def init_lockspace(path, io_timeout=DEFAULT_IO_TIMEOUT, name=LOCKSPACE_NAME):
    """Write the sanlock lockspace 'hosted-engine' on the lockspace volume (needs the host's
    sanlock daemon)."""
    try:
        sanlock_util.write_lockspace(name, path, iotimeout=int(io_timeout))
    except sanlock_util.SanlockException as e:
        raise StorageError('initialising the %s lockspace on %s failed: %s; check that the '
                           'sanlock daemon runs and the volume is writable'
                           % (name, path, sanlock_util.describe(e)))
