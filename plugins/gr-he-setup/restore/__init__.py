"""Restore of an engine-backup archive (--restore-from-file): the archive checked before
anything changes, the restore's questions, and the restore inside the new engine VM
(the archive copied in over SSH, engine-backup --mode=restore, the database fixed up,
engine-setup), then the closing messages."""
from . import archive, engine  # noqa: F401
