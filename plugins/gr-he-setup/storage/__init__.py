"""STORAGE CONFIGURATION: the storage questions checked through the host agent, and in misc
the hosted-engine storage domain with its four volumes (removed again if a later step fails)."""
from . import domain, storage  # noqa: F401
