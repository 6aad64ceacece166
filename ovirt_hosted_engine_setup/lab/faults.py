"""Faults injected into lab hosts, each a real one on the host's own processes.

- crash: every process of the host killed at once, as a power cut: all are stopped first
  (SIGSTOP, so none sees another die and reacts: no sanlock lease released, no VM shut
  down cleanly, no agent publishing that it stops), then killed (SIGKILL). The engine VM's
  qemu goes with them. The host's namespaces stay (its network link stays up with nothing
  answering behind it, as a powered-off host's switch port); `hosted-engine-lab down` stops
  the lab as usual.
"""
import contextlib
import os
import signal
import time

from .lab import LabError, alive, pids_in_ns, record

KINDS = ('crash',)


def host_processes(h):
    """Pids of every process of lab host h (its mount namespace), its holder left out."""
    mnt = (h.get('ns') or {}).get('mnt')
    holder = (h.get('holder') or {}).get('pid')
    return [p for p in pids_in_ns('mnt', mnt) if p != holder]


def crash(lab, name, timeout=10.0):
    """Kill every process of host `name` at once; return how many were killed."""
    h = lab.host(name)
    recs = [r for r in (record(p) for p in host_processes(h)) if r['start'] is not None]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for r in recs:
            if alive(r):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(r['pid'], sig)
    deadline = time.monotonic() + timeout
    left = recs
    while left and time.monotonic() < deadline:
        for r in left:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(r['pid'], os.WNOHANG)
        left = [r for r in left if alive(r)]
        if left:
            time.sleep(0.05)
    if left:
        raise LabError('%s: %d processes still alive %d s after SIGKILL: %s'
                       % (name, len(left), timeout, ', '.join(str(r['pid']) for r in left)))
    return len(recs)


def inject(lab, name, kind):
    if kind not in KINDS:
        raise LabError('unknown fault %r: use one of %s' % (kind, ', '.join(KINDS)))
    if kind == 'crash':
        n = crash(lab, name)
        return '%s: crashed (%d processes killed at once, as a power cut)' % (name, n)
