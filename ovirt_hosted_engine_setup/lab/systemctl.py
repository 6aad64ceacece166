"""The service manager of a lab host: what `systemctl` reaches inside a lab host.

A lab host has no systemd, yet the product manages its services with `systemctl` as on any
host. The lab therefore puts this program at /run/lab/bin/systemctl in every host (the
host's private /run), on PATH after the project's commands, and bind-mounts it over
/usr/bin/systemctl in the host's own mount namespace when the machine has that file; it
also creates /run/systemd/system in the host, the mark by which programs tell that
systemd manages the host. Nothing of it exists outside the lab hosts.

Units are the ones the project ships (templates/*.service). Verbs:

    systemctl start|stop|restart UNIT...
    systemctl enable|disable [--now] UNIT...
    systemctl is-active [-q|--quiet] UNIT...
    systemctl status UNIT...

UNIT is a name with or without ``.service``. `start` runs, per unit, a supervisor: a
process of the host (so a crash or freeze of the host stops it too, as a power cut stops
systemd) that runs the unit's main process, waits for it and applies Restart=. The main
process is recorded, with its start time, in /run/lab/systemd/<unit>.json (so a reused pid
is never taken for it), with its supervisor, how it ended and the restart counter; `enable`
marks the unit in /run/lab/systemd/enabled/ (kept by `hosted-engine-lab restart HOST`,
which empties the rest of /run as a boot does and starts the enabled units).

What is applied from a unit file: Description; Requires= (started first, and a stop of the
required unit stops its dependents first); After= (start order, stop in reverse);
Wants= (started when shipped, else skipped); ConditionPathExists= (an unmet condition
leaves the unit inactive, with a note on stderr); Type=simple; ExecStart= (the program is
taken from the project's virtualenv when it has one of that name: that is where the lab's
installation lives); RuntimeDirectory=, LogsDirectory=, StateDirectory= (created at start;
RuntimeDirectoryPreserve=no removes the runtime directory at stop and at an automatic
restart, =restart at stop only); TimeoutStopSec=;
KillMode=mixed or control-group (SIGTERM to the main process, SIGKILL to its process group
once it has exited or the timeout is over, and when the main process ends by itself);
WantedBy= (what `enable` says); Restart=no,
on-failure or always and RestartSec= (default 100ms), as systemd defines them: on-failure
starts the unit again when its main process exited non-zero or was killed by a signal
other than SIGHUP, SIGINT, SIGTERM and SIGPIPE (its third case, a timeout, cannot arise
here: Type=simple has no start timeout, no unit has WatchdogSec=, and a stop that times out
never restarts), always also after a clean exit; the unit is
`activating (auto-restart)` for RestartSec=, then started again, and what requires it and
runs is restarted with it (systemd propagates the restart along Requires=); a unit that
does not restart is `failed` (or `inactive` after a clean exit). A `systemctl stop` tells
the supervisor first, so a stopped unit never restarts; a `start` while a restart is
pending starts it at once. systemd's default start limit applies (5 starts within 10 s;
a sixth restart is not made: `failed`, Result: start-limit-hit; counted from the last
`systemctl start`); StartLimitBurst= and StartLimitIntervalSec= are not supported (the shipped units do
not set them). A unit's output, and the supervisor's lines in systemd's words (`Main
process exited, code=killed, status=9/KILL`, `Scheduled restart job, restart counter is at
1.`), go to /var/log/lab/<unit>.log (no journal in a lab host). Any other directive makes
the unit fail to load, so nothing is silently left out.

`is-active` and `status` read the records without waiting for a start or stop in progress.
Exit codes as systemctl's: 0 done; 1 failure or usage error; 3 (is-active, status) not
active; 4 (status) no such unit; 5 (start, stop, restart) no such unit.
"""
import contextlib
import fcntl
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time

from ovirt_hosted_engine_setup.lab import paths

LAB_BIN = '/run/lab/bin'
STATE_DIR = '/run/lab/systemd'
LOG_DIR = '/var/log/lab'
SYSTEMD_MARK = '/run/systemd/system'

LIST_KEYS = {('Unit', 'Requires'), ('Unit', 'Wants'), ('Unit', 'After'),
             ('Unit', 'Documentation'), ('Unit', 'ConditionPathExists'),
             ('Install', 'WantedBy'), ('Service', 'RuntimeDirectory'),
             ('Service', 'LogsDirectory'), ('Service', 'StateDirectory')}
KNOWN_KEYS = LIST_KEYS | {('Unit', 'Description'), ('Service', 'Type'),
                          ('Service', 'ExecStart'), ('Service', 'RuntimeDirectoryPreserve'),
                          ('Service', 'Restart'), ('Service', 'RestartSec'),
                          ('Service', 'TimeoutStopSec'), ('Service', 'KillMode')}
DEFAULT_STOP_TIMEOUT = 90.0
RESTART_VALUES = ('no', 'on-failure', 'always')
DEFAULT_RESTART_SEC = 0.1            # systemd's RestartSec= default (100ms)
# systemd's DefaultStartLimitIntervalSec= and DefaultStartLimitBurst=: a unit started more
# than 5 times within 10 s is not started again (Result: start-limit-hit)
START_LIMIT_INTERVAL = 10.0
START_LIMIT_BURST = 5
# a main process killed by one of these signals exited cleanly, as one that exited 0
CLEAN_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)
SUPERVISOR_READY_TIMEOUT = 60.0


class UnitError(Exception):
    """A unit that cannot be used; the message says why."""


class Unit:
    def __init__(self, name, path, conf):
        self.name = name
        self.path = path
        self.conf = conf

    def get(self, section, key, default=None):
        return self.conf.get((section, key), default)

    def names(self, key):
        """Unit names listed by a [Unit] list directive, with .service added."""
        return [_unit_name(n) for v in self.get('Unit', key, []) for n in v.split()]

    @property
    def stem(self):
        return self.name[:-len('.service')]

    def argv(self, venv_bin):
        words = shlex.split(self.get('Service', 'ExecStart'))
        cand = os.path.join(venv_bin, os.path.basename(words[0]))
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            words[0] = cand
        return words

    def stop_timeout(self):
        return _seconds(self.get('Service', 'TimeoutStopSec'), DEFAULT_STOP_TIMEOUT, self)

    def restart_policy(self):
        return self.get('Service', 'Restart', 'no')

    def restart_sec(self):
        return _seconds(self.get('Service', 'RestartSec'), DEFAULT_RESTART_SEC, self)

    def runtime_preserve(self):
        return self.get('Service', 'RuntimeDirectoryPreserve', 'no')

    def directories(self, key):
        return [n for v in self.get('Service', key, []) for n in v.split()]


def _seconds(value, default, unit):
    if value is None:
        return default
    v = value.strip()
    try:
        if v.endswith('ms'):
            return float(v[:-2]) / 1000
        if v.endswith('min'):
            return float(v[:-3]) * 60
        if v.endswith('s'):
            return float(v[:-1])
        return float(v)
    except ValueError:
        raise UnitError('%s: %r is not a time span' % (unit.path, value))


def _unit_name(name):
    return name if name.endswith('.service') else name + '.service'


def parse_unit(name, path):
    conf = {}
    section = None
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line[0] in '#;':
                continue
            if line.startswith('[') and line.endswith(']'):
                section = line[1:-1]
                continue
            key, sep, value = line.partition('=')
            key, value = key.strip(), value.strip()
            if not sep or section is None:
                raise UnitError('%s line %d: not a directive: %s' % (path, n, line))
            if (section, key) not in KNOWN_KEYS:
                raise UnitError('%s line %d: [%s] %s= is not supported in a lab host'
                                % (path, n, section, key))
            if (section, key) in LIST_KEYS:
                conf.setdefault((section, key), []).append(value)
            else:
                conf[(section, key)] = value
    unit = Unit(name, path, conf)
    if unit.get('Service', 'Type', 'simple') != 'simple':
        raise UnitError('%s: only Type=simple is supported in a lab host' % path)
    start = unit.get('Service', 'ExecStart')
    if not start or start[0] in '-@+!:':
        raise UnitError('%s: ExecStart= must name a program (without prefixes)' % path)
    if unit.get('Service', 'KillMode', 'control-group') not in ('mixed', 'control-group'):
        raise UnitError('%s: only KillMode=mixed or control-group is supported in a lab host'
                        % path)
    if unit.restart_policy() not in RESTART_VALUES:
        raise UnitError('%s: Restart=%s is not supported in a lab host (use one of %s)'
                        % (path, unit.restart_policy(), ', '.join(RESTART_VALUES)))
    if unit.runtime_preserve() not in ('no', 'yes', 'restart'):
        raise UnitError('%s: RuntimeDirectoryPreserve=%s is not one of no, yes, restart'
                        % (path, unit.runtime_preserve()))
    unit.stop_timeout()
    unit.restart_sec()
    return unit


def proc_start(pid):
    """Start time (clock ticks since boot) of a live, non-zombie process, else None."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
    except (OSError, ValueError):
        return None
    fields = data[data.rindex(')') + 2:].split()
    if fields[0] in ('Z', 'X'):
        return None
    return int(fields[19])


def read_record(state_dir, unit_name):
    """The record of a started unit ({pid, start, since, argv}), or None."""
    try:
        with open(os.path.join(state_dir, unit_name + '.json')) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def record_alive(rec):
    return bool(rec) and rec.get('start') is not None and proc_start(rec['pid']) == rec['start']


class Manager:
    def __init__(self, unit_dir=None, state_dir=STATE_DIR, log_dir=LOG_DIR, venv_bin=None,
                 out=None, err=None, root=''):
        """root prefixes the paths a unit names (conditions, its directories): '' in a
        lab host; a scratch directory in tests."""
        self.root = root
        self.unit_dir = unit_dir or os.path.join(paths.checkout_dir(), 'templates')
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.venv_bin = venv_bin or paths.venv_bin()
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._units = {}

    # units -------------------------------------------------------------------
    def unit(self, name):
        """The unit, or None when the project ships no such unit."""
        name = _unit_name(name)
        if name not in self._units:
            path = os.path.join(self.unit_dir, name)
            if '/' in name or not os.path.isfile(path):
                return None
            self._units[name] = parse_unit(name, path)
        return self._units[name]

    def record(self, unit):
        return read_record(self.state_dir, unit.name)

    def state(self, unit, rec=None):
        """active, activating (auto-restart: Restart= starts it again after RestartSec=),
        inactive (never started, stopped, or exited cleanly without restart) or failed."""
        rec = rec or self.record(unit)
        if rec is None:
            return 'inactive'
        if record_alive(rec):
            return 'active'
        if rec.get('restarting') and record_alive(rec.get('supervisor')):
            return 'activating'
        if rec.get('result') == 'success':
            return 'inactive'
        return 'failed'

    def settled_record(self, unit, timeout=2.0):
        """The record, once the supervisor has noted how a main process that just died
        ended (whether it restarts it); a reader that does not hold the lock waits for it."""
        deadline = time.monotonic() + timeout
        while True:
            rec = self.record(unit)
            pending = (rec is not None and 'result' not in rec and not record_alive(rec)
                       and record_alive(rec.get('supervisor')))
            if not pending or time.monotonic() > deadline:
                return rec
            time.sleep(0.02)

    @contextlib.contextmanager
    def locked(self):
        """The service manager's lock: one start, stop or restart decision at a time."""
        os.makedirs(self.state_dir, exist_ok=True)
        with open(os.path.join(self.state_dir, '.lock'), 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def enabled(self, unit):
        return os.path.exists(os.path.join(self.state_dir, 'enabled', unit.name))

    def _closure(self, units):
        """units with what they require (and want, when shipped), in start order."""
        todo, seen = list(units), {}
        while todo:
            u = todo.pop()
            if u.name in seen:
                continue
            seen[u.name] = u
            for dep in u.names('Requires'):
                d = self.unit(dep)
                if d is None:
                    raise UnitError('%s requires %s, which is not shipped' % (u.name, dep))
                todo.append(d)
            for dep in u.names('Wants'):
                d = self.unit(dep)
                if d is not None:
                    todo.append(d)
        return self._ordered(list(seen.values()))

    def _ordered(self, units):
        """Start order: a unit after the units of the set it names in After=."""
        names = {u.name for u in units}
        done, out = set(), []
        pending = sorted(units, key=lambda u: u.name)
        while pending:
            for u in pending:
                if all(a in done or a not in names for a in u.names('After')):
                    break
            else:
                raise UnitError('ordering cycle between %s'
                                % ', '.join(u.name for u in pending))
            pending.remove(u)
            done.add(u.name)
            out.append(u)
        return out

    def _dependents(self, units):
        """units and every shipped unit that requires one of them, in stop order."""
        shipped = [self.unit(fn) for fn in sorted(os.listdir(self.unit_dir))
                   if fn.endswith('.service')]
        sel = {u.name: u for u in units}
        grew = True
        while grew:
            grew = False
            for u in shipped:
                if u.name not in sel and any(r in sel for r in u.names('Requires')):
                    sel[u.name] = u
                    grew = True
        return list(reversed(self._ordered(list(sel.values()))))

    # start / stop ------------------------------------------------------------
    def start(self, units):
        for u in self._closure(units):
            if self.state(u) == 'active':
                continue
            missing = [c for c in u.get('Unit', 'ConditionPathExists', [])
                       if os.path.exists(self.root + c.lstrip('!')) == c.startswith('!')]
            if missing:
                self.err.write('%s: condition ConditionPathExists=%s not met: not started\n'
                               % (u.name, missing[0]))
                continue
            self._spawn(u)

    def _spawn(self, u):
        """Start the unit's supervisor (a process of the host, as systemd is one of a real
        host): it runs the main process, records it, and applies Restart=. Return once the
        main process runs and is recorded."""
        old = self.record(u)
        if old is not None:
            self._end_supervisor(old)
        os.makedirs(self.log_dir, exist_ok=True)
        spec = {'unit': u.name, 'unit_dir': self.unit_dir, 'state_dir': self.state_dir,
                'log_dir': self.log_dir, 'venv_bin': self.venv_bin, 'root': self.root}
        with open(self.log_path(u), 'ab') as log:
            p = subprocess.Popen([sys.executable, '-c', SUPERVISOR], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                                 cwd='/', env=self.unit_env(), close_fds=True)
        p.stdin.write(json.dumps(spec).encode())
        p.stdin.close()
        line = b''
        if select.select([p.stdout], [], [], SUPERVISOR_READY_TIMEOUT)[0]:
            line = p.stdout.readline()
        p.stdout.close()
        try:
            msg = json.loads(line)
        except ValueError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            raise UnitError('%s: its supervisor did not start it; see %s'
                            % (u.name, self.log_path(u)))
        if 'error' in msg:
            raise UnitError(msg['error'])

    def log_path(self, u):
        return os.path.join(self.log_dir, u.stem + '.log')

    def unit_env(self):
        return {'PATH': ':'.join([self.venv_bin, LAB_BIN, '/usr/local/sbin', '/usr/local/bin',
                                  '/usr/sbin', '/usr/bin', '/sbin', '/bin']),
                'LANG': 'C.UTF-8', 'HOME': '/root'}

    def make_directories(self, u):
        for key, base in (('RuntimeDirectory', '/run'), ('LogsDirectory', '/var/log'),
                          ('StateDirectory', '/var/lib')):
            for d in u.directories(key):
                os.makedirs(self.root + os.path.join(base, d), mode=0o755, exist_ok=True)

    def remove_runtime_directories(self, u):
        for d in u.directories('RuntimeDirectory'):
            _rmtree(self.root + os.path.join('/run', d))

    def exec_main(self, u):
        """Run the unit's main process (in a session of its own, its output to the unit's
        log); return its Popen."""
        self.make_directories(u)
        os.makedirs(self.log_dir, exist_ok=True)
        argv = u.argv(self.venv_bin)
        with open(self.log_path(u), 'ab') as log:
            log.write(('-- %s starting %s\n' % (time.strftime('%Y-%m-%d %H:%M:%S'),
                                                ' '.join(argv))).encode())
            log.flush()
            try:
                return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        cwd='/', env=self.unit_env(), close_fds=True)
            except OSError as e:
                raise UnitError('%s: cannot run %s: %s' % (u.name, argv[0], e.strerror))

    def journal(self, u, msg):
        """A line of the unit's log in systemd's words (a lab host has no journal)."""
        with open(self.log_path(u), 'a') as log:
            log.write('-- %s %s: %s\n' % (time.strftime('%Y-%m-%d %H:%M:%S'), u.name, msg))

    def write_record(self, u, rec):
        tmp = os.path.join(self.state_dir, u.name + '.json.tmp')   # written under the lock
        with open(tmp, 'w') as f:
            json.dump(rec, f)
        os.rename(tmp, os.path.join(self.state_dir, u.name + '.json'))

    @staticmethod
    def _end_supervisor(rec, timeout=2.0):
        """Tell the unit's supervisor to restart nothing more (SIGTERM: it exits as soon as
        no main process of its own runs) and give it a moment to exit."""
        sup = rec.get('supervisor')
        if not record_alive(sup):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup['pid'], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while record_alive(sup) and not record_alive(rec) and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self, units):
        for u in self._dependents(units):
            rec = self.record(u)
            if rec is None:
                continue
            # the supervisor first, so that the main process stopped here is not restarted
            sup = rec.get('supervisor')
            if record_alive(sup):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(sup['pid'], signal.SIGTERM)
            if record_alive(rec) and not self._kill(u, rec):
                raise UnitError('%s: its main process %d does not exit, even after SIGKILL'
                                % (u.name, rec['pid']))
            os.unlink(os.path.join(self.state_dir, u.name + '.json'))
            if u.runtime_preserve() in ('no', 'restart'):
                self.remove_runtime_directories(u)
            self._end_supervisor(rec)

    @staticmethod
    def _kill(u, rec):
        pid = rec['pid']
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + u.stop_timeout()
        while record_alive(rec) and time.monotonic() < deadline:
            time.sleep(0.1)
        # the main process is gone (or did not leave in time): the rest of its group goes
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while record_alive(rec) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not record_alive(rec)

    def set_enabled(self, units, on):
        d = os.path.join(self.state_dir, 'enabled')
        os.makedirs(d, exist_ok=True)
        for u in units:
            mark = os.path.join(d, u.name)
            if on and not os.path.exists(mark):
                with open(mark, 'w') as f:
                    f.write(' '.join(u.get('Install', 'WantedBy', [])) + '\n')
            elif not on and os.path.exists(mark):
                os.unlink(mark)

    # status ------------------------------------------------------------------
    def status_text(self, u):
        rec = self.settled_record(u)
        state = self.state(u, rec)
        lines = ['%s %s - %s' % ('*' if state == 'active' else 'o', u.name,
                                 u.get('Unit', 'Description', u.name)),
                 '     Loaded: loaded (%s; %s)' % (u.path, 'enabled' if self.enabled(u)
                                                   else 'disabled')]
        since = rec and time.strftime('%a %Y-%m-%d %H:%M:%S %Z', time.localtime(rec['since']))
        if state == 'active':
            lines.append('     Active: active (running) since %s' % since)
            lines.append('   Main PID: %d (%s)' % (rec['pid'], os.path.basename(rec['argv'][0])))
        elif rec is not None and 'result' in rec:
            what = {'activating': 'activating (auto-restart)', 'failed': 'failed',
                    'inactive': 'inactive (dead)'}[state]
            result = '' if rec['result'] == 'success' else ' (Result: %s)' % rec['result']
            lines.append('     Active: %s%s since %s' % (what, result, since))
            lines.append('   Main PID: %d (%s)' % (rec['pid'],
                                                   _main_pid_text(rec['code'], rec['status'])))
        elif state == 'failed':     # its supervisor is gone too: how it ended is unknown
            lines.append('     Active: failed (main process %d exited)' % rec['pid'])
        else:
            lines.append('     Active: inactive (dead)')
        last = rec and rec.get('last')
        if last:
            lines.append('   Restarts: %d (restart counter; the last main process, %d, ended '
                         'with %s)' % (rec['restarts'], last['pid'],
                                       _main_pid_text(last['code'], last['status'])))
        if u.restart_policy() != 'no':
            lines.append('    Restart: %s (RestartSec=%gs)' % (u.restart_policy(),
                                                            u.restart_sec()))
        log_path = self.log_path(u)
        lines.append('        Log: %s' % log_path)
        try:
            with open(log_path, errors='replace') as f:
                tail = f.read().splitlines()[-10:]
        except OSError:
            tail = []
        if tail:
            lines.append('')
            lines.extend(tail)
        return '\n'.join(lines) + '\n'


# ------------------------------------------------------------------ the supervisor

EXIT_NAMES = {0: 'SUCCESS', 1: 'FAILURE', 2: 'INVALIDARGUMENT', 3: 'NOTIMPLEMENTED',
              4: 'NOPERMISSION', 5: 'NOTINSTALLED', 6: 'NOTCONFIGURED', 7: 'NOTRUNNING'}


def exit_result(wstatus):
    """(code, status, result) of a main process that ended, as systemd names them: code
    exited/killed/dumped, status the exit status or signal number, result success,
    exit-code, signal or core-dump. A clean signal (SIGHUP, SIGINT, SIGTERM, SIGPIPE) or
    exit status 0 is a success."""
    if os.WIFSIGNALED(wstatus):
        sig = os.WTERMSIG(wstatus)
        dumped = os.WCOREDUMP(wstatus)
        if sig in CLEAN_SIGNALS:
            result = 'success'
        else:
            result = 'core-dump' if dumped else 'signal'
        return ('dumped' if dumped else 'killed'), sig, result
    rc = os.WEXITSTATUS(wstatus)
    return 'exited', rc, 'success' if rc == 0 else 'exit-code'


def restarts_after(policy, result):
    """Whether Restart=policy starts the unit again after a main process ended so."""
    return policy == 'always' or (policy == 'on-failure' and result != 'success')


def _signame(sig):
    try:
        return signal.Signals(sig).name[3:]
    except ValueError:
        return str(sig)


def _status_text(code, status):
    name = EXIT_NAMES.get(status) if code == 'exited' else _signame(status)
    return '%d/%s' % (status, name) if name else str(status)


def _main_pid_text(code, status):
    if code == 'exited':
        return 'code=exited, status=%s' % _status_text(code, status)
    return 'code=%s, signal=%s' % (code, _signame(status))


def _owns(rec, me, pid):
    return bool(rec) and rec.get('supervisor') == me and rec.get('pid') == pid


class Supervisor:
    """What systemd does for one started unit of a real host: run its main process, wait
    for it, and when it ends decide by Restart= whether it starts again after RestartSec=
    (a `systemctl stop` has told the supervisor first: then nothing restarts). Every
    decision is taken under the service manager's lock and only while the unit's record
    is still the supervisor's own, so a stop or a new start always wins."""

    def __init__(self, m, u):
        self.m = m
        self.u = u
        self.stopping = False
        self.me = {'pid': os.getpid(), 'start': proc_start(os.getpid())}
        self.starts = []

    def _on_term(self, _signo, _frame):
        self.stopping = True

    def _run_main(self, restarts, last=None):
        p = self.m.exec_main(self.u)
        self.starts.append(time.monotonic())
        rec = {'pid': p.pid, 'start': proc_start(p.pid), 'since': time.time(),
               'argv': p.args, 'log': self.m.log_path(self.u), 'supervisor': self.me,
               'restarts': restarts}
        if last:
            rec['last'] = last
        self.m.write_record(self.u, rec)
        return p

    def run(self, ready):
        """Supervise the unit; ready gets one JSON line once its main process runs and is
        recorded ({pid}), or why it could not start ({error})."""
        signal.signal(signal.SIGTERM, self._on_term)
        m, u = self.m, self.u
        try:
            p = self._run_main(0)     # the caller of `systemctl start` holds the lock
        except UnitError as e:
            ready.write(json.dumps({'error': str(e)}) + '\n')
            ready.close()
            return 1
        ready.write(json.dumps({'pid': p.pid}) + '\n')
        ready.close()
        restarts = 0
        while True:
            _pid, wstatus = os.waitpid(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(wstatus)
            if self.stopping:
                return 0
            # the main process is gone: the rest of its process group goes (KillMode=)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            code, status, result = exit_result(wstatus)
            restart = restarts_after(u.restart_policy(), result)
            with m.locked():
                rec = m.record(u)
                if self.stopping or not _owns(rec, self.me, p.pid):
                    return 0
                m.journal(u, 'Main process exited, code=%s, status=%s'
                          % (code, _status_text(code, status)))
                m.journal(u, 'Deactivated successfully.' if result == 'success'
                          else "Failed with result '%s'." % result)
                rec.update(result=result, code=code, status=status, since=time.time(),
                           restarting=restart)
                m.write_record(u, rec)
                if not restart:
                    return 0
            deadline = time.monotonic() + u.restart_sec()
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(max(0.0, min(0.1, deadline - time.monotonic())))
            if self.stopping:
                return 0
            with m.locked():
                rec = m.record(u)
                if self.stopping or not _owns(rec, self.me, p.pid):
                    return 0
                now = time.monotonic()
                self.starts = [t for t in self.starts if now - t < START_LIMIT_INTERVAL]
                if len(self.starts) >= START_LIMIT_BURST:
                    m.journal(u, 'Start request repeated too quickly.')
                    m.journal(u, "Failed with result 'start-limit-hit'.")
                    rec.update(result='start-limit-hit', restarting=False, since=time.time())
                    m.write_record(u, rec)
                    return 0
                restarts += 1
                m.journal(u, 'Scheduled restart job, restart counter is at %d.' % restarts)
                # what requires the unit and runs is restarted with it, as systemd
                # propagates the restart job along Requires=
                deps = [d for d in m._dependents([u])
                        if d.name != u.name and m.state(d) == 'active']
                if deps:
                    m.stop(deps)
                if u.runtime_preserve() == 'no':
                    m.remove_runtime_directories(u)
                try:
                    p = self._run_main(restarts, {'pid': p.pid, 'code': code,
                                                  'status': status})
                except UnitError as e:
                    m.journal(u, str(e))
                    rec.update(result='resources', restarting=False, since=time.time())
                    m.write_record(u, rec)
                    return 1
                if deps:
                    m.start(deps)


def supervise():
    """Entry point of a unit's supervisor process (started by Manager._spawn): the spec on
    stdin, the ready line on stdout, its own errors to the unit's log (stderr)."""
    spec = json.loads(sys.stdin.read())
    ready = os.fdopen(os.dup(1), 'w')
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    m = Manager(unit_dir=spec['unit_dir'], state_dir=spec['state_dir'],
                log_dir=spec['log_dir'], venv_bin=spec['venv_bin'], root=spec['root'],
                out=sys.stderr, err=sys.stderr)
    return Supervisor(m, m.unit(spec['unit'])).run(ready)


SUPERVISOR = ('import sys\nfrom ovirt_hosted_engine_setup.lab.systemctl import supervise\n'
              'sys.exit(supervise())\n')


USAGE = ('usage: systemctl start|stop|restart UNIT... | enable|disable [--now] UNIT... | '
         'is-active [-q] UNIT... | status UNIT...')
VERBS = ('start', 'stop', 'restart', 'enable', 'disable', 'is-active', 'status')


def main(argv=None, manager=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    m = manager or Manager()
    opts = [a for a in argv if a.startswith('-')]
    args = [a for a in argv if not a.startswith('-')]
    for o in opts:
        if o not in ('--now', '-q', '--quiet'):
            m.err.write('systemctl: unrecognized option %r (lab host)\n%s\n' % (o, USAGE))
            return 1
    if not args:
        m.err.write('%s\n' % USAGE)
        return 1
    verb, names = args[0], args[1:]
    if verb not in VERBS:
        m.err.write('Unknown command verb %s (a lab host knows %s).\n' % (verb, ', '.join(VERBS)))
        return 1
    allowed = {'enable': {'--now'}, 'disable': {'--now'}, 'is-active': {'-q', '--quiet'}}
    bad = [o for o in opts if o not in allowed.get(verb, ())]
    if bad:
        m.err.write('systemctl %s: option %s does not apply\n' % (verb, bad[0]))
        return 1
    if not names:
        m.err.write('Too few arguments.\n')
        return 1
    try:
        if verb in ('is-active', 'status'):     # readers: the records are written whole
            return _run(m, verb, names, False, bool({'-q', '--quiet'} & set(opts)))
        with m.locked():
            return _run(m, verb, names, '--now' in opts, False)
    except UnitError as e:
        m.err.write('Failed to %s: %s\n' % (verb, e))
        return 1


def _run(m, verb, names, now, quiet):
    units = [(n, m.unit(n)) for n in names]
    missing = [_unit_name(n) for n, u in units if u is None]
    found = [u for _n, u in units if u is not None]
    if verb == 'is-active':
        states = [m.state(u, m.settled_record(u)) if u else 'inactive' for _n, u in units]
        if not quiet:
            m.out.write(''.join(s + '\n' for s in states))
        return 0 if all(s == 'active' for s in states) else 3
    if verb == 'status':
        rc = 0
        texts = []
        for n, u in units:
            if u is None:
                m.err.write('Unit %s could not be found.\n' % _unit_name(n))
                rc = 4
                continue
            texts.append(m.status_text(u))
            if rc == 0 and m.state(u, m.settled_record(u)) != 'active':
                rc = 3
        m.out.write('\n'.join(texts))
        return rc
    if missing:
        if verb in ('enable', 'disable'):
            m.err.write('Failed to %s unit: Unit file %s does not exist.\n' % (verb, missing[0]))
            return 1
        m.err.write('Failed to %s %s: Unit %s not %s.\n'
                    % (verb, missing[0], missing[0], 'found' if verb != 'stop' else 'loaded'))
        return 5
    if verb == 'restart':
        # what requires a restarted unit is restarted with it (when it was running)
        found += [u for u in m._dependents(found) if u not in found and m.state(u) == 'active']
    if verb in ('stop', 'restart') or (verb == 'disable' and now):
        m.stop(found)
    if verb in ('start', 'restart') or (verb == 'enable' and now):
        m.start(found)
    if verb in ('enable', 'disable'):
        m.set_enabled(found, verb == 'enable')
    return 0


def _rmtree(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def wrapper(python):
    """The text of the executable the lab installs as systemctl in its hosts."""
    return ('#!%s\n"""systemctl of a lab host: ovirt_hosted_engine_setup/lab/systemctl.py"""\n'
            'import sys\n\nfrom ovirt_hosted_engine_setup.lab.systemctl import main\n\n'
            'sys.exit(main())\n' % python)


if __name__ == '__main__':
    sys.exit(main())
