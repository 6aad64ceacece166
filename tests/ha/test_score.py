import pytest

from ovirt_hosted_engine_setup.ha.score import (Monitors, ScoreConfig, ZERO_SCORE_STATES,
                                                 compute_score, parse_score_config)

CFG = ScoreConfig()


def score(state='EngineDown', mem=4096, **kw):
    opts = {k: kw.pop(k) for k in list(kw) if k in ('engine_running_here', 'global_maintenance',
                                                   'conf_up_to_date', 'retry_count')}
    return compute_score(CFG, state, Monitors(**kw), vm_mem_mb=mem, **opts)


def test_defaults_are_ovirts():
    assert (CFG.base_score, CFG.network_score_penalty, CFG.mgmt_bridge_score_penalty,
            CFG.free_memory_score_penalty, CFG.cpu_load_score_penalty, CFG.cpu_load_penalty_min,
            CFG.cpu_load_penalty_max, CFG.not_uptodate_config_penalty,
            CFG.engine_retry_score_penalty) == (3400, 1600, 600, 400, 1000, 0.4, 0.9, 1000, 50)


def test_base():
    assert score() == 3400


@pytest.mark.parametrize('fraction,expected', [(1.0, 3400), (0.5, 2600), (0.0, 1800),
                                               (0.75, 3000)])
def test_network_proportional(fraction, expected):
    assert score(network=fraction) == expected


def test_bridge():
    assert score(bridge_up=False) == 2800


@pytest.mark.parametrize('load,expected', [(0.3, 3400), (0.4, 3400), (0.65, 2900), (0.9, 2400),
                                           (1.0, 2400)])
def test_cpu_load(load, expected):
    assert score(cpu_load=load) == expected


def test_free_memory_only_when_not_running_the_engine_nor_in_global_maintenance():
    assert score(mem_free_mb=1000) == 3000
    assert score(mem_free_mb=1000, engine_running_here=True) == 3400
    assert score(mem_free_mb=1000, global_maintenance=True) == 3400
    assert score(mem_free_mb=5000) == 3400


def test_config_not_up_to_date():
    assert score(conf_up_to_date=False) == 2400


@pytest.mark.parametrize('retries,expected', [(0, 3400), (1, 3350), (2, 3300), (3, 3250), (4, 0)])
def test_retries(retries, expected):
    assert score(retry_count=retries) == expected


@pytest.mark.parametrize('state', sorted(ZERO_SCORE_STATES))
def test_forced_zero_states(state):
    assert score(state) == 0


def test_floor_at_zero():
    assert score(network=0.0, bridge_up=False, cpu_load=1.0, mem_free_mb=0,
                 conf_up_to_date=False) == 0


def test_parse_config():
    cfg, warnings = parse_score_config('[score]\nbase-score=2000\nnetwork-score-penalty=100\n'
                                       'cpu-load-penalty-min=0.5\nbogus=1\n'
                                       'mgmt-bridge-score-penalty=abc\n')
    assert cfg.base_score == 2000 and cfg.network_score_penalty == 100
    assert cfg.cpu_load_penalty_min == 0.5 and cfg.mgmt_bridge_score_penalty == 600
    assert len(warnings) == 2 and 'bogus' in warnings[0]
    assert parse_score_config('')[0] == ScoreConfig()
    assert parse_score_config('[other]\na=1\n') == (ScoreConfig(), [])
    cfg, warnings = parse_score_config('not an ini')
    assert cfg == ScoreConfig() and 'not valid' in warnings[0]
    cfg, warnings = parse_score_config('[score]\ncpu-load-penalty-min=0.9\ncpu-load-penalty-max=0.5')
    assert (cfg.cpu_load_penalty_min, cfg.cpu_load_penalty_max) == (0.4, 0.9) and warnings
    cfg, warnings = parse_score_config('[score]\nbase-score=-5\n')
    assert cfg.base_score == 3400 and 'negative' in warnings[0]


OVIRT_TUNED = """\
# agent.conf of an oVirt host, every [score] key tuned
[score]
base-score=3000
network-score-penalty=1200
not-uptodate-config-penalty=900
mgmt-bridge-score-penalty=500
free-memory-score-penalty=300
cpu-load-score-penalty=800
engine-retry-score-penalty=40
cpu-load-penalty-min=0.5
cpu-load-penalty-max=0.8
"""


def test_ovirt_tuned_agent_conf_keeps_its_values():
    cfg, warnings = parse_score_config(OVIRT_TUNED)
    assert warnings == []
    assert (cfg.base_score, cfg.network_score_penalty, cfg.not_uptodate_config_penalty,
            cfg.mgmt_bridge_score_penalty, cfg.free_memory_score_penalty,
            cfg.cpu_load_score_penalty, cfg.engine_retry_score_penalty,
            cfg.cpu_load_penalty_min, cfg.cpu_load_penalty_max) == \
        (3000, 1200, 900, 500, 300, 800, 40, 0.5, 0.8)
    # and the weights are used: half the network tests failing costs half of 1200
    assert compute_score(cfg, 'EngineDown', Monitors(network=0.5), vm_mem_mb=1) == 2400
    assert compute_score(cfg, 'EngineDown', Monitors(), vm_mem_mb=1,
                         conf_up_to_date=False) == 2100


@pytest.mark.parametrize('key,nearest', [('gateway-score-penalty', 'network-score-penalty'),
                                         ('not-up-to-date-config-penalty',
                                          'not-uptodate-config-penalty'),
                                         ('base_score', 'base-score')])
def test_unknown_key_warns_with_the_nearest_key(key, nearest):
    cfg, warnings = parse_score_config('[score]\n%s=1\n' % key)
    assert cfg == ScoreConfig()
    assert len(warnings) == 1
    assert key in warnings[0] and 'unknown key' in warnings[0]
    assert 'did you mean %s?' % nearest in warnings[0]


@pytest.mark.parametrize('network,expected', [
    (1 / 3, 3400 - 1066),      # 1600 * 2/3 = 1066.67: int() gives 1066, round() 1067
    (0.2, 3400 - 1280),
    (0.35, 3400 - 1040)])      # 1600 * 0.65 = 1040.0000000000002
def test_network_penalty_is_truncated(network, expected):
    assert score(network=network) == expected


@pytest.mark.parametrize('load,expected', [
    (0.5, 3400 - 199),         # (0.1 / 0.5) * 1000 = 199.99999999999997 in floating point
    (0.7337, 3400 - 667)])     # 667.4: round() would also give 667; 0.7339 -> 667.8 -> 667
def test_cpu_load_penalty_is_truncated(load, expected):
    assert score(cpu_load=load) == expected
    assert score(cpu_load=0.7339) == 3400 - 667


def test_equal_cpu_bounds_are_a_step():
    cfg, warnings = parse_score_config('[score]\ncpu-load-penalty-min=0.6\n'
                                       'cpu-load-penalty-max=0.6\n')
    assert warnings == []
    assert compute_score(cfg, 'EngineDown', Monitors(cpu_load=0.59), vm_mem_mb=1) == 3400
    assert compute_score(cfg, 'EngineDown', Monitors(cpu_load=0.6), vm_mem_mb=1) == 2400
