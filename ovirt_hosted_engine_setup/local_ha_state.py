"""This host's HA state as its HA services last published it, for the host agent.

VDSM answers Host.getStats' `haStats` (configured, active, score, maintenance) from the
local ovirt-hosted-engine-ha services; here the broker writes what the agent publishes for
this host (score and state, each time its metadata slot is written) to a small JSON file in
the HA services' run directory, and the host agent reads it. A state older than STALE
seconds means the agent is not active (it publishes every loop, 10 s).
"""
import json
import os
import time

from . import paths

PATH = os.path.join(paths.HA_RUN_DIR, 'local-state.json')
STALE = 60.0


def write(score, state, path=PATH, now=None):
    """Record the state this host's agent just published (atomic replace)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = '%s.%d.tmp' % (path, os.getpid())
    with open(tmp, 'w') as f:
        json.dump({'score': int(score), 'state': str(state),
                   'time': time.time() if now is None else now}, f)
    os.replace(tmp, path)


def read(path=PATH, now=None):
    """(score, state, active) from the last published state; (0, '', False) when there is
    none, it cannot be read, or it is older than STALE seconds."""
    try:
        with open(path) as f:
            data = json.load(f)
        score, state, stamp = int(data['score']), str(data['state']), float(data['time'])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, '', False
    age = (time.time() if now is None else now) - stamp
    if not 0 <= age <= STALE:
        return 0, state, False
    return score, state, True
