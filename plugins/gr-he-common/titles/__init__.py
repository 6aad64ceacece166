"""Section titles of the customization dialog."""
from . import titles  # noqa: F401
