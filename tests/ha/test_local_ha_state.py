"""The host agent's haStats come from what this host's HA services last published."""
import os

from ovirt_hosted_engine_setup import local_ha_state
from ovirt_hosted_engine_setup.hostd.host import HostBackend


def test_published_state_read_back_then_stale(tmp_path):
    path = str(tmp_path / 'local-state.json')
    assert local_ha_state.read(path) == (0, '', False)
    local_ha_state.write(3400, 'EngineUp', path, now=1000.0)
    assert local_ha_state.read(path, now=1030.0) == (3400, 'EngineUp', True)
    assert local_ha_state.read(path, now=1000.0 + local_ha_state.STALE + 1) == \
        (0, 'EngineUp', False)
    with open(path, 'w') as f:
        f.write('{not json')
    assert local_ha_state.read(path) == (0, '', False)


def test_host_agent_ha_stats_report_the_published_score(tmp_path):
    he_conf = tmp_path / 'hosted-engine.conf'
    he_conf.write_text('host_id=2\n')
    state = str(tmp_path / 'local-state.json')
    backend = HostBackend.__new__(HostBackend)
    backend.ha_conf = str(tmp_path / 'ha.conf')
    backend.hosted_engine_conf = str(he_conf)
    backend.ha_state = state
    assert backend._ha_stats()['score'] == 0 and not backend._ha_stats()['active']
    local_ha_state.write(3000, 'EngineDown', state)
    stats = backend._ha_stats()
    assert (stats['configured'], stats['active'], stats['score']) == (True, True, 3000)
    os.unlink(str(he_conf))
    assert backend._ha_stats()['configured'] is False
