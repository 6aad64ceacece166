"""NETWORK CONFIGURATION: the NIC of the management bridge, the gateway, the network test and
this host's address; in misc the management bridge (removed again if a later step fails)."""
from . import bridge, network  # noqa: F401
