"""Core of every hosted-engine run: secrets, defaults, answer files, the final line."""
from . import answers, core  # noqa: F401
