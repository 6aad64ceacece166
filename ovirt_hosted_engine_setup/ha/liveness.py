"""Judging whether the other hosts are alive, from the observer's point of view.

Two sources, both read from shared storage:
- the metadata timestamp: only its change matters (it is the writer's
  monotonic clock; clocks are never compared), seen by the observer's own
  monotonic clock;
- sanlock's view of the ``hosted-engine`` lockspace: which host ids hold a
  live delta lease. A host writes its slot only while it holds its host id, so
  a host id that sanlock reports dead is dead at once, whatever its last
  metadata says; and the VM lease of a dead host id can be taken at once.

Verdicts:
- LIVE: timestamp changed within ``window`` (60 s) and sanlock (if known) has the id;
- STALE: sanlock still has the id but the metadata stopped changing (agent
  hung or crashed, or the host crashed and sanlock has not yet expired the id,
  which takes 8N + W). Its claim of a running engine is still believed (the
  VM lease would refuse a second start anyway), but it is not a candidate to
  start the engine. Stale for longer than ``stale_limit`` -> DEAD;
- DEAD: otherwise.

Everything is pure: ``observe`` returns a new ``seen`` map that the caller keeps.
"""
LIVE = 'live'
STALE = 'stale'
DEAD = 'dead'

WINDOW = 60.0
STALE_LIMIT = 180.0


def observe(seen, records, now):
    """Return the updated ``seen``: host id -> (last timestamp, observer time it last changed).

    ``records`` maps host id -> an object with ``timestamp`` (HostRecord).
    A host seen for the first time counts as unchanged since ``now`` minus the
    window (we have no history: the first change proves it alive).
    """
    out = dict(seen)
    for host_id, rec in records.items():
        prev = out.get(host_id)
        if prev is None:
            out[host_id] = (rec.timestamp, now - WINDOW - 1)
        elif prev[0] != rec.timestamp:
            out[host_id] = (rec.timestamp, now)
    return out


def judge(seen, host_id, now, sanlock_live=None, *, window=WINDOW, stale_limit=STALE_LIMIT):
    """Return LIVE, STALE or DEAD for ``host_id``.

    ``sanlock_live``: set of host ids sanlock reports live, or None when unknown
    (then only the metadata timestamps count, as in oVirt).
    """
    entry = seen.get(host_id)
    age = now - entry[1] if entry is not None else None
    if sanlock_live is None:
        return LIVE if age is not None and age <= window else DEAD
    if host_id not in sanlock_live:
        return DEAD
    if age is not None and age <= window:
        return LIVE
    if age is not None and age <= stale_limit:
        return STALE
    return DEAD


def merge_last_good(last_good, view):
    """Host records to judge from an AreaView: the valid slots, plus the last valid
    copy of every slot that is skipped now (garbage, torn, CRC-broken...).

    A corrupted slot then simply stops changing: its host turns STALE, then DEAD,
    instead of vanishing at once (which would let others try to start an engine
    that still runs there). Slots that became empty are forgotten.
    """
    records = dict(view.hosts)
    for s in view.skipped:
        if s.slot and s.slot not in records and s.slot in last_good:
            records[s.slot] = last_good[s.slot]
    return records
