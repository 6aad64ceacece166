"""This host's agent (ovirt-hosted-engine-hostd or VDSM): connection and capabilities."""
from . import vdsmd  # noqa: F401
