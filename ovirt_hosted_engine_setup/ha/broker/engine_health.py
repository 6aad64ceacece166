"""Engine health: the host agent's view of the engine VM plus the health page.

``engine_status(vm_stats, page_ok)`` is pure and follows the table of
docs/ha-services.md; ``fetch_health(fqdn)`` is the HTTP GET of
``http://<fqdn>/ovirt-engine/services/health`` (good when the body holds
``DB Up``).
"""
import http.client
import logging
import socket
import urllib.error
import urllib.request

log = logging.getLogger(__name__)

HEALTH_PATH = '/ovirt-engine/services/health'
HEALTH_TIMEOUT = 20.0
GOOD_MARK = b'DB Up'

NOT_RUNNING = {'vm': 'down', 'health': 'bad', 'detail': 'unknown',
               'reason': 'vm not running on this host'}
UNREACHABLE = {'vm': 'unknown', 'health': 'unknown', 'detail': 'unknown',
               'reason': 'host agent not reachable'}
LEASE_HELD = 'lease held elsewhere'
NO_SUCH_VM = 1


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


# never through a proxy: the engine is reached directly, as the hosts see it
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def health_url(fqdn):
    return 'http://%s%s' % (fqdn, HEALTH_PATH)


def fetch_health(fqdn, timeout=HEALTH_TIMEOUT):
    """(ok, detail): ok when the page answers and its body contains DB Up."""
    url = health_url(fqdn)
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            body = resp.read(65536)
    except urllib.error.HTTPError as e:
        return False, '%s answered HTTP %d' % (url, e.code)
    except urllib.error.URLError as e:
        return False, '%s: %s' % (url, getattr(e.reason, 'strerror', None) or e.reason)
    except (OSError, socket.timeout, http.client.HTTPException, ValueError) as e:
        return False, '%s: %s' % (url, e)
    if GOOD_MARK in body:
        return True, ''
    return False, '%s does not say DB Up' % url
