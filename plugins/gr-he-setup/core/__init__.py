"""Deploy confirmations and the configuration preview."""
from . import confirm, preview  # noqa: F401
