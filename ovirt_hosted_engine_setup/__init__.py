"""ovirt-hosted-engine-setup: installer and HA services for oVirt's self-hosted engine."""

__version__ = '0.1.0'
