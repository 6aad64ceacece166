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

UNIT is a name with or without ``.service``. A started unit's main process is recorded,
with its start time, in /run/lab/systemd/<unit>.json (so a reused pid is never taken for
it); `enable` marks the unit in /run/lab/systemd/enabled/ (kept by `hosted-engine-lab
restart HOST`, which empties the rest of /run as a boot does and starts the enabled units).

What is applied from a unit file: Description; Requires= (started first, and a stop of the
required unit stops its dependents first); After= (start order, stop in reverse);
Wants= (started when shipped, else skipped); ConditionPathExists= (an unmet condition
leaves the unit inactive, with a note on stderr); Type=simple; ExecStart= (the program is
taken from the project's virtualenv when it has one of that name: that is where the lab's
installation lives); RuntimeDirectory=, LogsDirectory=, StateDirectory= (created at start;
RuntimeDirectoryPreserve=no removes the runtime directory at stop); TimeoutStopSec=;
KillMode=mixed or control-group (SIGTERM to the main process, SIGKILL to its process group
once it has exited or the timeout is over); WantedBy= (what `enable` says). A unit's
output goes to /var/log/lab/<unit>.log (no journal in a lab host). The lab never restarts
a daemon that exits: Restart= and RestartSec= are read and shown by `status`, not applied.
Any other directive makes the unit fail to load, so nothing is silently left out.

Exit codes as systemctl's: 0 done; 1 failure or usage error; 3 (is-active, status) not
active; 4 (status) no such unit; 5 (start, stop, restart) no such unit.
"""
import contextlib
import fcntl
import json
import os
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


def _seconds(value, default, unit):
    if value is None:
        return default
    v = value.strip()
    try:
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
    unit.stop_timeout()
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

    def state(self, unit):
        rec = self.record(unit)
        if rec is None:
            return 'inactive'
        return 'active' if record_alive(rec) else 'failed'

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
        for key, base in (('RuntimeDirectory', '/run'), ('LogsDirectory', '/var/log'),
                          ('StateDirectory', '/var/lib')):
            for d in (n for v in u.get('Service', key, []) for n in v.split()):
                os.makedirs(self.root + os.path.join(base, d), mode=0o755, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        argv = u.argv(self.venv_bin)
        env = {'PATH': ':'.join([self.venv_bin, LAB_BIN, '/usr/local/sbin', '/usr/local/bin',
                                 '/usr/sbin', '/usr/bin', '/sbin', '/bin']),
               'LANG': 'C.UTF-8', 'HOME': '/root'}
        log_path = os.path.join(self.log_dir, u.stem + '.log')
        with open(log_path, 'ab') as log:
            log.write(('-- %s starting %s\n' % (time.strftime('%Y-%m-%d %H:%M:%S'),
                                               ' '.join(argv))).encode())
            log.flush()
            try:
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd='/', env=env, close_fds=True)
            except OSError as e:
                raise UnitError('%s: cannot run %s: %s' % (u.name, argv[0], e.strerror))
        rec = {'pid': p.pid, 'start': proc_start(p.pid), 'since': time.time(), 'argv': argv,
               'log': log_path}
        tmp = os.path.join(self.state_dir, u.name + '.json.tmp')
        with open(tmp, 'w') as f:
            json.dump(rec, f)
        os.rename(tmp, os.path.join(self.state_dir, u.name + '.json'))

    def stop(self, units):
        for u in self._dependents(units):
            rec = self.record(u)
            if rec is None:
                continue
            if record_alive(rec) and not self._kill(u, rec):
                raise UnitError('%s: its main process %d does not exit, even after SIGKILL'
                                % (u.name, rec['pid']))
            os.unlink(os.path.join(self.state_dir, u.name + '.json'))
            if u.get('Service', 'RuntimeDirectoryPreserve', 'no') == 'no':
                for d in (n for v in u.get('Service', 'RuntimeDirectory', []) for n in v.split()):
                    _rmtree(self.root + os.path.join('/run', d))

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
        state = self.state(u)
        rec = self.record(u)
        lines = ['%s %s - %s' % ('*' if state == 'active' else 'o', u.name,
                                 u.get('Unit', 'Description', u.name)),
                 '     Loaded: loaded (%s; %s)' % (u.path, 'enabled' if self.enabled(u)
                                                   else 'disabled')]
        if state == 'active':
            since = time.strftime('%a %Y-%m-%d %H:%M:%S %Z', time.localtime(rec['since']))
            lines.append('     Active: active (running) since %s' % since)
            lines.append('   Main PID: %d (%s)' % (rec['pid'], os.path.basename(rec['argv'][0])))
        elif state == 'failed':
            lines.append('     Active: failed (main process %d exited)' % rec['pid'])
        else:
            lines.append('     Active: inactive (dead)')
        restart = u.get('Service', 'Restart')
        if restart:
            lines.append('    Restart: %s (not applied in a lab host)' % restart)
        log_path = os.path.join(self.log_dir, u.stem + '.log')
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
    os.makedirs(m.state_dir, exist_ok=True)
    with open(os.path.join(m.state_dir, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _run(m, verb, names, '--now' in opts, bool({'-q', '--quiet'} & set(opts)))
        except UnitError as e:
            m.err.write('Failed to %s: %s\n' % (verb, e))
            return 1


def _run(m, verb, names, now, quiet):
    units = [(n, m.unit(n)) for n in names]
    missing = [_unit_name(n) for n, u in units if u is None]
    found = [u for _n, u in units if u is not None]
    if verb == 'is-active':
        states = [m.state(u) if u else 'inactive' for _n, u in units]
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
            if rc == 0 and m.state(u) != 'active':
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
