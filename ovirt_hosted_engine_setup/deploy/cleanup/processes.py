"""Stopping the HA daemons (ovirt-ha-agent, then ovirt-ha-broker).

With systemd, through deploy/services.py, the code the deploy starts them with (which
ones run, stop, then disable); then any daemon still running is
found by its program and the log file it keeps open (they write no pid file) and
terminated: SIGTERM, SIGKILL after a grace period.
"""
import os
import signal
import time

from ... import paths
from .. import services
from . import PROG, StepFailed


# The HA daemons, in the order they are stopped: (program, module run with python -m,
# log file the daemon keeps open). They write no pid file; a running daemon is the process
# that runs that program and holds that log file open.
HA_DAEMONS = (
    ('ovirt-ha-agent', 'ovirt_hosted_engine_setup.ha.agent',
     os.path.join(paths.HA_LOG_DIR, 'agent.log')),
    ('ovirt-ha-broker', 'ovirt_hosted_engine_setup.ha.broker.daemon',
     os.path.join(paths.HA_LOG_DIR, 'broker.log')),
)
HA_STOP_GRACE = 30      # seconds a daemon gets after SIGTERM (the agent publishes its stop)


def _stat_fields(pid):
    """(state, start time) of a process from /proc/PID/stat, or None when it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
        rest = data[data.rindex(')') + 2:].split()
        return rest[0], rest[19]
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return [a.decode('utf-8', 'replace') for a in f.read().split(b'\0') if a]
    except OSError:
        return []


def runs_daemon(argv, program, module):
    """True when argv runs the daemon: its program or ``python -m module``."""
    head = argv[:4]
    return any(os.path.basename(a) == program for a in head) or module in head


def daemon_pids(program, module, log_path):
    """Pids of the processes running ``program`` with ``log_path`` open."""
    try:
        st = os.stat(log_path)
    except OSError:
        return []
    me = os.getpid()
    out = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        if not runs_daemon(_cmdline(pid), program, module):
            continue
        fd_dir = '/proc/%d/fd' % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                fst = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if (fst.st_dev, fst.st_ino) == (st.st_dev, st.st_ino):
                fields = _stat_fields(pid)
                if fields and fields[0] != 'Z':
                    out.append(pid)
                break
    return sorted(out)


def _alive(pid, start):
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != 'Z' and fields[1] == start


def terminate(pids, grace=HA_STOP_GRACE):
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the pids that had to be killed."""
    procs = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            procs[pid] = fields[1]
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p, s) for p, s in procs.items()):
        time.sleep(0.2)
    killed = []
    for pid, start in procs.items():
        if _alive(pid, start):
            killed.append(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p, procs[p]) for p in killed):
        time.sleep(0.1)
    return killed


def stop_ha_daemons(environ=None, systemd_dir=services.SYSTEMD_RUN_DIR):
    """Stop the HA daemons; each is said stopped only when it was running.

    With systemd, through deploy/services.py, the code the deploy starts them with
    (environ and systemd_dir as there); then whatever still runs is terminated."""
    stopped = {}           # program -> how it was stopped
    notes = []
    names = [d[0] for d in HA_DAEMONS]
    if os.path.isdir(systemd_dir) and not paths.PREFIX:
        try:
            active = services.active_ha_services(environ, systemd_dir)
            services.stop_ha_services(environ, systemd_dir, missing_ok=True)
        except services.ServiceError as e:
            raise StepFailed('%s; then run %s again' % (e, PROG))
        for name in active:
            stopped[name] = 'systemctl stop'
        if services.disable_ha_services(environ, systemd_dir):
            notes.append('units disabled')
    for program, module, log_path in HA_DAEMONS:
        pids = daemon_pids(program, module, log_path)
        if pids:
            killed = terminate(pids)
            stopped[program] = 'pid %s%s' % (', '.join(map(str, pids)),
                                              ', killed after %d s' % HA_STOP_GRACE
                                              if killed else '')
            left = daemon_pids(program, module, log_path)
            if left:
                raise StepFailed('%s (pid %s) does not stop: kill it and run %s again'
                                 % (program, ', '.join(map(str, left)), PROG))
    if not stopped:
        return 'ovirt-ha-agent and ovirt-ha-broker are not running' + (
            ' (%s)' % ', '.join(notes) if notes else '')
    if len(stopped) == len(names):
        hows = list(dict.fromkeys(stopped.values()))
        detail = hows[0] if len(hows) == 1 else ', '.join(
            '%s: %s' % (n, stopped[n]) for n in names)
        return 'ovirt-ha-agent and ovirt-ha-broker stopped (%s)' % '; '.join(
            [detail] + notes)
    parts = ['%s stopped (%s)' % (n, stopped[n]) if n in stopped else
             '%s was not running' % n for n in names]
    return ', '.join(parts) + ('; %s' % ', '.join(notes) if notes else '')
