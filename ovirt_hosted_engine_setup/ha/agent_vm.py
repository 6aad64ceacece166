"""The engine VM as the agent sees it: its definition and its status on this host.

- ``VmDefinition``: vm.conf (he_storage/heconf.py: oVirt's key=value lines plus ``xmlBase64``), kept
  in the local copy (``conf=`` of hosted-engine.conf, /run/ovirt-hosted-engine-ha/vm.conf)
  and refreshed from the configuration volume on shared storage each loop.
- ``engine_status_from_stats``: the engine status table of docs/ha-services.md
  (ha/broker/engine_health.py) for what the host agent says about the VM,
  without the health page, which only the broker's engine health monitor fetches.
"""
import logging

from ..api.errors import NO_SUCH_VM  # noqa: F401 (the agent loop and the simulator use it)
from ..he_storage import heconf
from .broker import engine_health

log = logging.getLogger(__name__)


class VmDefinition:
    """The parsed vm.conf: ``xml`` (decoded xmlBase64), ``mem_mb`` (memSize),
    ``problem`` (why the VM cannot be started from it, or None)."""

    def __init__(self, text, path=None):
        self.text = text
        self.xml = None
        self.mem_mb = None
        self.problem = None
        try:
            conf = heconf.parse_vm_conf(text, path)
        except heconf.ConfError as e:
            self.problem = str(e)
            return
        try:
            self.mem_mb = int(conf.get('memSize', ''))
        except ValueError:
            self.mem_mb = None
        try:
            self.xml = heconf.vm_xml(conf)
        except heconf.ConfError as e:
            self.problem = str(e)


def engine_status_from_stats(stats):
    """Engine status for one VM.getStats entry (None: the host agent has no such VM),
    by the broker's table; an Up VM gets health "bad" (the health page is the
    broker's to fetch)."""
    return engine_health.engine_status(stats, None)


def unreachable_status():
    return engine_health.status_unreachable()
