"""The host score: base 3400 minus penalties, the same weights on every host.

Weights come from agent.conf's ``[score]`` section, with oVirt's key names and
defaults (base-score, network-score-penalty, not-uptodate-config-penalty,
mgmt-bridge-score-penalty, free-memory-score-penalty, cpu-load-score-penalty,
engine-retry-score-penalty, cpu-load-penalty-min, cpu-load-penalty-max; added
here: engine-retry-max-attempts), so that an oVirt user's tuned file keeps its
values; an unknown key is ignored with a warning naming the nearest known key.
Proportional penalties (network, cpu-load) are truncated with int(), as oVirt
does. ``parse_score_config(text)`` is a pure parser returning
(ScoreConfig, warnings). ``compute_score`` is a pure function of the monitor
values; a monitor that has no value yet (None: a slow or restarting broker)
makes the caller keep its previous score instead of flipping it.
"""
import configparser
import difflib
from dataclasses import dataclass, fields, replace

# states in which the score is forced to 0
ZERO_SCORE_STATES = frozenset({'LocalMaintenance', 'EngineUnexpectedlyDown', 'ReinitializeFSM',
                               'StartState', 'AgentStopped'})


@dataclass(frozen=True)
class ScoreConfig:
    base_score: int = 3400
    network_score_penalty: int = 1600
    mgmt_bridge_score_penalty: int = 600
    free_memory_score_penalty: int = 400
    cpu_load_score_penalty: int = 1000
    cpu_load_penalty_min: float = 0.4
    cpu_load_penalty_max: float = 0.9
    not_uptodate_config_penalty: int = 1000
    engine_retry_score_penalty: int = 50
    engine_retry_max_attempts: int = 3


# agent.conf key -> ScoreConfig attribute
KEYS = {f.name.replace('_', '-'): f.name for f in fields(ScoreConfig)}


def parse_score_config(text):
    """Parse agent.conf text; return (ScoreConfig, [warning lines]). Never raises on bad input."""
    warnings = []
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as e:
        return ScoreConfig(), ['agent.conf is not valid (%s); using the default score weights'
                               % str(e).splitlines()[0]]
    if not parser.has_section('score'):
        return ScoreConfig(), warnings
    values = {}
    defaults = ScoreConfig()
    for key, raw in parser.items('score'):
        attr = KEYS.get(key)
        if attr is None:
            near = difflib.get_close_matches(key, list(KEYS), n=1)
            warnings.append('agent.conf [score] %s: unknown key, ignored%s' % (
                key, '; did you mean %s?' % near[0] if near else
                ' (known keys: %s)' % ', '.join(KEYS)))
            continue
        kind = type(getattr(defaults, attr))
        try:
            value = kind(raw.strip())
        except ValueError:
            warnings.append('agent.conf [score] %s=%s: not a number, using %s'
                            % (key, raw, getattr(defaults, attr)))
            continue
        if value < 0:
            warnings.append('agent.conf [score] %s=%s: negative, using %s'
                            % (key, raw, getattr(defaults, attr)))
            continue
        values[attr] = value
    cfg = replace(defaults, **values)
    if cfg.cpu_load_penalty_max < cfg.cpu_load_penalty_min:
        warnings.append('agent.conf [score] cpu-load-penalty-max must not be below '
                        'cpu-load-penalty-min;'
                        ' using %s and %s' % (defaults.cpu_load_penalty_min,
                                              defaults.cpu_load_penalty_max))
        cfg = replace(cfg, cpu_load_penalty_min=defaults.cpu_load_penalty_min,
                      cpu_load_penalty_max=defaults.cpu_load_penalty_max)
    return cfg, warnings


@dataclass(frozen=True)
class Monitors:
    """Local monitor values as the broker reports them; None means 'no value yet'."""
    network: float = 1.0          # fraction of successful network tests, 0..1
    bridge_up: bool = True
    mem_free_mb: int = 1 << 20
    cpu_load: float = 0.0         # without the engine VM, 15 min average, 0..1
    storage_valid: bool = True
    storage_delay: float = 0.0    # seconds

    def complete(self):
        return None not in (self.network, self.bridge_up, self.mem_free_mb, self.cpu_load)


def penalties(cfg, monitors, *, vm_mem_mb, engine_running_here, global_maintenance,
              conf_up_to_date, retry_count):
    """Return [(name, penalty)] for the rules that apply (penalty > 0)."""
    out = []
    network = min(max(float(monitors.network), 0.0), 1.0)
    if network < 1.0:
        out.append(('network', int(cfg.network_score_penalty * (1.0 - network))))
    if not monitors.bridge_up:
        out.append(('mgmt-bridge', cfg.mgmt_bridge_score_penalty))
    load = float(monitors.cpu_load)
    if cfg.cpu_load_penalty_max == cfg.cpu_load_penalty_min:
        # a step, as oVirt has it for equal bounds
        if load >= cfg.cpu_load_penalty_min:
            out.append(('cpu-load', cfg.cpu_load_score_penalty))
    elif load > cfg.cpu_load_penalty_min:
        penalty = int((load - cfg.cpu_load_penalty_min)
                      / (cfg.cpu_load_penalty_max - cfg.cpu_load_penalty_min)
                      * cfg.cpu_load_score_penalty)
        out.append(('cpu-load', max(0, min(cfg.cpu_load_score_penalty, penalty))))
    if (monitors.mem_free_mb < vm_mem_mb and not engine_running_here
            and not global_maintenance):
        out.append(('free-memory', cfg.free_memory_score_penalty))
    if not conf_up_to_date:
        out.append(('config-not-up-to-date', cfg.not_uptodate_config_penalty))
    if 1 <= retry_count <= cfg.engine_retry_max_attempts:
        out.append(('engine-retry', cfg.engine_retry_score_penalty * retry_count))
    return [(n, p) for n, p in out if p > 0]


def compute_score(cfg, state_name, monitors, *, vm_mem_mb, engine_running_here=False,
                  global_maintenance=False, conf_up_to_date=True, retry_count=0):
    """The score published in state ``state_name`` with these monitor values (>= 0)."""
    if state_name in ZERO_SCORE_STATES:
        return 0
    if retry_count > cfg.engine_retry_max_attempts:
        return 0
    total = cfg.base_score - sum(p for _, p in penalties(
        cfg, monitors, vm_mem_mb=vm_mem_mb, engine_running_here=engine_running_here,
        global_maintenance=global_maintenance, conf_up_to_date=conf_up_to_date,
        retry_count=retry_count))
    return max(0, int(total))
