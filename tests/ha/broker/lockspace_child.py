"""Run the broker's Lockspace in a process of its own (python3-sanlock talks to the
daemon of $SANLOCK_RUN_DIR, read once per process), print what it saw as JSON.

    lockspace_child.py PATH HOST_ID IO_TIMEOUT [--write] [--no-wait] [--drop]

--drop: once held, leave the lockspace behind the Lockspace's back (as when
sanlock loses it) and report whether it joined again.
"""
import json
import sys
import time

import sanlock

from ovirt_hosted_engine_setup.ha.broker.lockspace import LOCKSPACE, Lockspace


def main(argv):
    path, host_id, io_timeout = argv[0], int(argv[1]), int(argv[2])
    out = {}
    if '--write' in argv:
        sanlock.write_lockspace(LOCKSPACE.encode(), path.encode(), offset=0, max_hosts=0,
                                iotimeout=io_timeout)
    ls = Lockspace(path, host_id, io_timeout, retry_delay=0.5, watch_interval=0.5).start()
    out['held_at_once'] = ls.held()
    deadline = time.monotonic() + (8 * io_timeout + 10 if '--no-wait' not in argv else 3)
    while time.monotonic() < deadline and not ls.held():
        time.sleep(0.2)
    out['held'] = ls.held()
    out['live_ids'] = out['live_ids_at_join'] = ls.live_ids()
    while out['held'] and out['live_ids'] is None and time.monotonic() < deadline + 10:
        time.sleep(0.2)     # sanlock answers get_hosts once it has seen the hosts renew
        out['live_ids'] = ls.live_ids()
    out['error'] = ls.error
    if '--drop' in argv and out['held']:
        sanlock.rem_lockspace(LOCKSPACE.encode(), host_id, path.encode(), offset=0, wait=True)
        out['held_after_drop'] = ls.held()
        deadline = time.monotonic() + 8 * io_timeout + 10
        while time.monotonic() < deadline and not ls.held():
            time.sleep(0.2)
        out['rejoined'] = ls.held()
    t0 = time.monotonic()
    out['left'] = ls.stop()
    out['stop_seconds'] = round(time.monotonic() - t0, 1)
    out['held_after'] = ls.held()
    out['lockspaces'] = [x['lockspace'].decode() for x in sanlock.get_lockspaces()]
    print(json.dumps(out))


if __name__ == '__main__':
    main(sys.argv[1:])
