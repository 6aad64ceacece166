"""The host agent's storage backend (file storage domains, pools, volumes, tasks, monitoring)."""
from .backend import StorageBackend

__all__ = ['StorageBackend']
