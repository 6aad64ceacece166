import pytest

from ovirt_hosted_engine_setup.ha.score import (Monitors, ScoreConfig, ZERO_SCORE_STATES,
                                                 compute_score, parse_score_config)

CFG = ScoreConfig()


def score(state='EngineDown', mem=4096, **kw):
    opts = {k: kw.pop(k) for k in list(kw) if k in ('engine_running_here', 'global_maintenance',
                                                   'conf_up_to_date', 'retry_count')}
    return compute_score(CFG, state, Monitors(**kw), vm_mem_mb=mem, **opts)


def test_defaults_are_ovirts():
    assert (CFG.base_score, CFG.gateway_score_penalty, CFG.mgmt_bridge_score_penalty,
            CFG.free_memory_score_penalty, CFG.cpu_load_score_penalty, CFG.cpu_load_penalty_min,
            CFG.cpu_load_penalty_max, CFG.not_up_to_date_config_penalty,
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
    cfg, warnings = parse_score_config('[score]\nbase-score=2000\ngateway-score-penalty=100\n'
                                       'cpu-load-penalty-min=0.5\nbogus=1\n'
                                       'mgmt-bridge-score-penalty=abc\n')
    assert cfg.base_score == 2000 and cfg.gateway_score_penalty == 100
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
