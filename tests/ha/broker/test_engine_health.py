"""Engine health: the status table of docs/ha-services.md and the real health page."""
import socket

from ovirt_hosted_engine_setup.ha.broker import engine_health as eh

from .httpd import HealthServer


def test_table():
    assert eh.engine_status(None) == {'vm': 'down', 'health': 'bad', 'detail': 'unknown',
                                      'reason': 'vm not running on this host'}
    down_lease = {'status': 'Down', 'exitCode': 1, 'exitLeaseHeld': True,
                  'exitMessage': 'Failed to acquire lock: error -243'}
    assert eh.engine_status(down_lease) == {'vm': 'down', 'health': 'bad', 'detail': 'Down',
                                            'reason': 'lease held elsewhere'}
    down_ok = {'status': 'Down', 'exitCode': 0, 'exitMessage': 'Admin shut down from the engine'}
    assert eh.engine_status(down_ok) == {'vm': 'down', 'health': 'bad', 'detail': 'Down',
                                         'reason': 'Admin shut down from the engine'}
    crashed = {'status': 'Down', 'exitCode': 1, 'exitMessage': 'the guest crashed'}
    assert eh.engine_status(crashed) == {'vm': 'down_unexpected', 'health': 'bad',
                                         'detail': 'Down', 'reason': 'the guest crashed'}
    up = {'status': 'Up'}
    assert eh.engine_status(up, True) == {'vm': 'up', 'health': 'good', 'detail': 'Up',
                                          'reason': None}
    assert eh.engine_status(up, False) == {'vm': 'up', 'health': 'bad', 'detail': 'Up',
                                           'reason': 'failed liveliness check'}
    assert eh.engine_status({'status': 'Paused'}) == {'vm': 'up', 'health': 'bad',
                                                      'detail': 'Paused',
                                                      'reason': 'bad vm status'}
    for st in ('WaitForLaunch', 'Powering up', 'Powering down'):
        assert eh.engine_status({'status': st}) == {'vm': 'up', 'health': 'bad', 'detail': st,
                                                    'reason': 'bad vm status'}
    assert eh.status_unreachable() == {'vm': 'unknown', 'health': 'unknown',
                                       'detail': 'unknown', 'reason': 'host agent not reachable'}
    assert eh.needs_page(up) and not eh.needs_page({'status': 'Paused'}) and not eh.needs_page(None)


def test_health_page_good_and_bad():
    with HealthServer() as srv:
        assert eh.fetch_health(srv.fqdn) == (True, '')
    with HealthServer(body=b'DB Down!') as srv:
        ok, why = eh.fetch_health(srv.fqdn)
        assert not ok and 'does not say DB Up' in why
    with HealthServer(code=500, body=b'DB Up') as srv:
        ok, why = eh.fetch_health(srv.fqdn)
        assert not ok and 'HTTP 500' in why


def test_health_page_unreachable_and_slow():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()      # nothing listens there now
    ok, why = eh.fetch_health('127.0.0.1:%d' % port, timeout=2)
    assert not ok and str(port) in why
    with HealthServer(delay=3) as srv:
        ok, why = eh.fetch_health(srv.fqdn, timeout=0.5)
        assert not ok and why
