"""HOSTED ENGINE CONFIGURATION: the engine admin password and the notification settings."""
from . import engine  # noqa: F401
