"""The HA services at closeup: ovirt-ha-broker started early (it joins the hosted-engine
lockspace while engine-setup runs); then the hand-over: hosted-engine.conf, vm.conf,
broker.conf and the configuration volume; the engine VM shut down; ovirt-ha-broker and
ovirt-ha-agent started."""
from . import conf, handover, shutdown  # noqa: F401
