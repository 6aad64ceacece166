"""The engine VM as the agent sees it: its definition and its status on this host.

- ``VmDefinition``: vm.conf (ha/heconf.py: oVirt's key=value lines plus ``xmlBase64``), kept
  in the local copy (``conf=`` of hosted-engine.conf, /run/ovirt-hosted-engine-ha/vm.conf)
  and refreshed from the configuration volume on shared storage each loop.
- ``engine_status_from_stats``: the engine status table of docs/ha-services.md
  (ha/broker/engine_health.py) for what the host agent says about the VM,
  without the health page, which only the broker's engine health monitor fetches.
"""
import logging
import os
import tempfile

from . import heconf
from .broker import engine_health

log = logging.getLogger(__name__)

NO_SUCH_VM = 1


def parse_kv(text):
    """{key: value} of ``key=value`` lines (comments and blank lines skipped)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, _, value = line.partition('=')
        out[key.strip()] = value.strip()
    return out


def write_atomic(path, data, mode=0o600):
    """Replace ``path`` with ``data`` (bytes): temp file in the same directory, fsync, rename."""
    directory = os.path.dirname(path) or '.'
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
