"""An additional host joins a deployed hosted engine: the first host's answers (from the
configuration volume on the shared storage, or over SFTP from the first host), this host's
id, its storage connection and domain monitoring, its configuration files from the
configuration volume, and the HA services."""
from . import answers, conf, host_id, storage, validate  # noqa: F401
