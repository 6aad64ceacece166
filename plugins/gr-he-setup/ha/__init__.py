"""Hand-over to the HA services at closeup: hosted-engine.conf, vm.conf, broker.conf and the
configuration volume; the engine VM shut down; ovirt-ha-broker and ovirt-ha-agent started."""
from . import conf, handover, shutdown  # noqa: F401
