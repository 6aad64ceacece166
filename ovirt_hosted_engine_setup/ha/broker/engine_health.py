"""Engine health: the host agent's view of the engine VM plus the health page.

``engine_status(vm_stats, page_ok)`` is pure and follows the table of
docs/ha-services.md; ``fetch_health(fqdn)`` checks the engine's health page
(health_page.py: ``http://<fqdn>/ovirt-engine/services/health``, good when it answers
and the body holds ``DB Up``).
"""
import logging

from ... import health_page
from ...api.errors import NO_SUCH_VM  # noqa: F401 (the monitors tell it apart)

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 20.0

NOT_RUNNING = {'vm': 'down', 'health': 'bad', 'detail': 'unknown',
               'reason': 'vm not running on this host'}
UNREACHABLE = {'vm': 'unknown', 'health': 'unknown', 'detail': 'unknown',
               'reason': 'host agent not reachable'}
LEASE_HELD = 'lease held elsewhere'


def status_not_running():
    return dict(NOT_RUNNING)


def status_unreachable():
    return dict(UNREACHABLE)


def needs_page(vm_stats):
    """True when the VM is Up, so the health page decides."""
    return bool(vm_stats) and vm_stats.get('status') == 'Up'


def engine_status(vm_stats, page_ok=None):
    """The engine status for the host agent's VM.getStats entry ``vm_stats``
    (None: no such VM) and, for an Up VM, whether the health page said DB Up."""
    if not vm_stats:
        return status_not_running()
    status = vm_stats.get('status') or 'unknown'
    if status == 'Down':
        reason = vm_stats.get('exitMessage') or ''
        if vm_stats.get('exitLeaseHeld'):
            return {'vm': 'down', 'health': 'bad', 'detail': 'Down', 'reason': LEASE_HELD}
        if vm_stats.get('exitCode') in (0, '0'):
            return {'vm': 'down', 'health': 'bad', 'detail': 'Down', 'reason': reason}
        return {'vm': 'down_unexpected', 'health': 'bad', 'detail': 'Down', 'reason': reason}
    if status == 'Up':
        if page_ok:
            return {'vm': 'up', 'health': 'good', 'detail': 'Up', 'reason': None}
        return {'vm': 'up', 'health': 'bad', 'detail': 'Up', 'reason': 'failed liveliness check'}
    return {'vm': 'up', 'health': 'bad', 'detail': status, 'reason': 'bad vm status'}


def fetch_health(fqdn, timeout=HEALTH_TIMEOUT):
    """(ok, detail): ok when the page answers and its body contains DB Up."""
    reply = health_page.fetch(fqdn, timeout)
    if reply.ok:
        return True, ''
    if reply.error is not None:
        return False, '%s: %s' % (reply.url, reply.error)
    if not 200 <= reply.status < 300:
        return False, '%s answered HTTP %d' % (reply.url, reply.status)
    return False, '%s does not say DB Up' % reply.url
