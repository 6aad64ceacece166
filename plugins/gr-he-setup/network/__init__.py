"""NETWORK CONFIGURATION: the firewall, the NIC of the management bridge, the gateway, the
network test and this host's address; in misc the management bridge and the firewall rules
(both removed again if a later step fails)."""
from . import bridge, firewall, network  # noqa: F401
