"""The HA verbs of `hosted-engine` (spec: docs/ha-services.md, man/hosted-engine.8).

Each ``run_*`` function takes the verb's arguments (after the verb itself) and
returns the exit status; problems the user can fix raise CliError (one line).
They talk to the broker's socket, to the host agent API on localhost and, for
``--vm-status`` and ``--reinitialize-lockspace``, to the shared storage
directly, so that they work while the agent and the broker are down.

Over 600 lines: fifteen verbs, each a run_* function with its own help text; what
they share is in cli_common.py, the storage in he_storage/, the liveness of the other
hosts in peers.py.
"""
import base64
import errno
import getpass
import json
import os
import sys

from .. import health_page, paths
from ..health_page import HEALTH_PATH
from ..api.schema import constant
from ..he_storage import heconf
from . import metadata
from .cli_common import (LOCKSPACE, NO_SUCH_VM, PROG, SECRET_CONFIG_KEYS, BrokerError,
                         BrokerUnavailable, CliError, ServerError, UsageError, api, broker,
                         broker_call, host_agent, ini_get, ini_set, io_timeout, load_conf,
                         local_vm_stats, log, own_host_id, parse_host_id, parse_keyvalue,
                         parse_options,
                         read_config_volume, read_metadata_area, set_keyvalue, vm_definition,
                         vm_runs_here, volume_path, write_config_volume, write_file_atomic)

LABEL_WIDTH = 35
GLOBAL_BANNER = '!! Cluster is in GLOBAL MAINTENANCE mode !!'
CONSOLE_PASSWORD_ENV = 'OVIRT_HOSTED_ENGINE_CONSOLE_PASSWORD'
CONSOLE_TTL = 120
SHUTDOWN_DELAY = 120
# after the delay, the host agent waits this long for the guest to power down
SHUTDOWN_GRACE = 60 + SHUTDOWN_DELAY
SHUTDOWN_WAIT = SHUTDOWN_DELAY + SHUTDOWN_GRACE
SHUTDOWN_MESSAGE = 'VM is shutting down!'
HEALTH_TIMEOUT = 20
START_WAIT = 30


def out(text=''):
    sys.stdout.write(text + '\n')


def note(text):
    sys.stderr.write(text + '\n')


# -- liveness of the hosts -------------------------------------------------------------

class OwnIdNotHeld(RuntimeError):
    """sanlock shows that this host does not hold its host id (no daemon, not in the
    lockspace): its own metadata cannot be moving."""


def sanlock_live_ids():
    """Host ids sanlock reports live in the hosted-engine lockspace, or raise
    RuntimeError saying why sanlock's view is not available (OwnIdNotHeld when this
    host does not hold its own host id)."""
    try:
        import sanlock
    except ImportError:
        raise RuntimeError('python3-sanlock is not installed')
    name = LOCKSPACE.encode()
    try:
        spaces = sanlock.get_lockspaces()
    except sanlock.SanlockException as e:
        if e.errno in (errno.ENOENT, errno.ECONNREFUSED):
            raise OwnIdNotHeld('the sanlock daemon of this host is not running')
        raise RuntimeError('sanlock is not answering (%s)' % (e.args[-1] if e.args else e))
    if not any(s.get('lockspace') == name for s in spaces):
        raise OwnIdNotHeld('this host is not in the %s sanlock lockspace' % LOCKSPACE)
    try:
        hosts = sanlock.get_hosts(name, 0)
    except sanlock.SanlockException as e:
        if e.errno == errno.EAGAIN:
            hosts = [{'flags': sanlock.HOST_UNKNOWN}]
        else:
            raise RuntimeError('sanlock cannot list the hosts of the %s lockspace (%s)'
                               % (LOCKSPACE, e.args[-1] if e.args else e))
    if any(h.get('flags') == sanlock.HOST_UNKNOWN for h in hosts):
        raise RuntimeError('sanlock joined the %s lockspace too recently to know the other '
                           'hosts' % LOCKSPACE)
    return {int(h['host_id']) for h in hosts if h.get('flags') == sanlock.HOST_LIVE}


def own_data_fresh(rec, now=None):
    """Whether this host's own slot was written within the liveness window: its timestamp
    is the monotonic clock of this very host (the local broker writes it), so it can be
    compared with ours now, unlike the other hosts' timestamps."""
    import time
    from . import liveness
    now = time.monotonic() if now is None else now
    return rec is not None and 0 <= now - rec.timestamp <= liveness.WINDOW


def judge_status_liveness(view, own_id):
    """For --vm-status: (host ids whose data is up to date, host ids for which that is
    unknown, where the judgement comes from, notes).

    The broker answers from its own observation over time (timestamps that changed
    within the window, and sanlock). Without the broker, sanlock alone does not prove a
    host's data current (its host id stays live after its broker died and the metadata
    froze): this host's slot is judged by its timestamp against this host's monotonic
    clock; another host whose host id sanlock shows live is unknown, one whose host id
    it does not show is not up to date."""
    notes = []
    try:
        with broker(timeout=15) as b:
            result = b.call('read_area')
        verdicts = result.get('liveness') or {}
        return {int(k) for k, v in verdicts.items() if v == 'live'}, set(), 'broker', notes
    except (BrokerUnavailable, BrokerError, AttributeError, ValueError) as e:
        broker_problem = str(e)
        log.info('broker read_area: %s', broker_problem)
    hosts = set(view.hosts) if view is not None else set()
    own = view.hosts.get(own_id) if view is not None and own_id is not None else None
    others = hosts - {own_id}
    try:
        live = sanlock_live_ids()
    except OwnIdNotHeld as e:
        notes.append("Note: the HA broker is not answering (%s) and %s: this host's status is "
                     "not up to date, and whether each other host's status is up to date is "
                     "unknown" % (broker_problem, e))
        return set(), others, None, notes
    except RuntimeError as e:
        fresh = {own_id} if own_data_fresh(own) else set()
        notes.append("Note: whether each host's status is up to date is unknown: the HA broker "
                     "is not answering (%s) and %s%s" % (
                         broker_problem, e, "; this host's own status is judged by its "
                         "timestamp" if own is not None else ''))
        return fresh, others, None, notes
    result = set()
    if own_id in live and own_data_fresh(own):
        result.add(own_id)
    unknown = {h for h in others if h in live}
    notes.append("Note: the HA broker is not answering (%s); 'Status up-to-date' comes from "
                 "sanlock's view of the %s lockspace and this host's own timestamp" % (
                     broker_problem, LOCKSPACE))
    if unknown:
        notes.append("Note: sanlock shows host(s) %s holding their host id, but whether their "
                     "metadata still changes cannot be seen without the HA broker: their "
                     "status is shown as up-to-date unknown; start ovirt-ha-broker to know"
                     % ', '.join(str(h) for h in sorted(unknown)))
    return result, unknown, 'sanlock', notes


# -- --vm-status -----------------------------------------------------------------------

def engine_status_text(status):
    keys = ['vm', 'health', 'detail', 'reason']
    ordered = {k: status[k] for k in keys if k in status}
    ordered.update({k: v for k, v in status.items() if k not in ordered})
    return json.dumps(ordered)


def render_status(report, liveness_known=True):
    """The text of ``--vm-status`` from a status_report() document."""
    lines = []
    if report.get('global_maintenance'):
        lines += ['', '', GLOBAL_BANNER, '']
    ids = sorted((k for k in report if k != 'global_maintenance'), key=int)
    for hid in ids:
        h = report[hid]
        lines += ['', '', '--== Host %s (id: %s) status ==--' % (h['hostname'], hid), '']
        if h['live-data'] or h['live-data'] is None or not liveness_known:
            engine = engine_status_text(h['engine-status'])
        else:
            engine = 'unknown stale-data'
        up_to_date = 'unknown' if h['live-data'] is None else h['live-data']
        rows = [('Host ID', h['host-id']), ('Host timestamp', h['host-ts']),
                ('Score', h['score']), ('Engine status', engine), ('Hostname', h['hostname']),
                ('Local maintenance', h['maintenance']), ('stopped', h['stopped']),
                ('crc32', h['crc32']), ('conf_on_shared_storage', h['conf_on_shared_storage']),
                ('local_conf_timestamp', h['local_conf_timestamp']),
                ('Status up-to-date', up_to_date)]
        for label, value in rows:
            lines.append('%s: %s' % (label.ljust(LABEL_WIDTH), value))
        lines.append('Extra metadata (valid at timestamp):')
        for extra in h['extra'].splitlines():
            lines.append('\t%s' % extra)
    return '\n'.join(lines) + '\n'


VM_STATUS_HELP = """\
Usage: hosted-engine --vm-status [--json]
    Show the status of every hosted-engine host, read from the metadata on the
    shared storage (it works while the HA agent and broker of this host are down).

    --json
        print the status as a JSON document.
"""


def run_vm_status(args):
    opts, _ = parse_options('--vm-status', args, flags=('--json',))
    conf = load_conf()
    max_hosts, data = read_metadata_area(conf)
    view = metadata.parse_area(data, max_hosts)
    for s in view.skipped:
        note('Warning: %s' % s)
    try:
        own_id = int(conf.get('host_id'))
    except (TypeError, ValueError):
        own_id = None
    live, unknown, _source, notes = judge_status_liveness(view, own_id)
    for n in notes:
        note(n)
    report = metadata.status_report(view, live or set(), unknown)
    if opts.get('--json'):
        out(json.dumps(report))
    else:
        sys.stdout.write(render_status(report, liveness_known=live is not None))
    return 0


# -- --set-maintenance -----------------------------------------------------------------

SET_MAINTENANCE_HELP = """\
Usage: hosted-engine --set-maintenance --mode=<mode>
    Set the maintenance mode of the HA services.

    --mode=global
        the HA agents of every host take no action on the engine VM.
    --mode=local
        this host leaves the HA cluster (score 0); refused while the engine VM
        runs on this host: migrate it first.
    --mode=none
        end global and local maintenance.
"""


def _set_local(client, enabled):
    try:
        api(client, 'Host.setHaMaintenanceMode', mode='LOCAL', enabled=enabled)
    except ServerError as e:
        raise CliError('the host agent refused to %s local maintenance: %s'
                       % ('enter' if enabled else 'leave', e.message))


def run_set_maintenance(args):
    opts, _ = parse_options('--set-maintenance', args, values=('--mode',))
    mode = opts.get('--mode')
    if mode is None:
        raise UsageError('--set-maintenance needs --mode=global, --mode=local or --mode=none')
    mode = mode.lower()
    if mode not in ('global', 'local', 'none'):
        raise UsageError('unknown maintenance mode %r: use --mode=global, --mode=local or '
                         '--mode=none' % opts['--mode'])
    conf = load_conf()
    if mode == 'global':
        _set_global(True)
        out('Global maintenance enabled: the HA agents take no action on the engine VM')
        return 0
    with host_agent(conf) as client:
        if mode == 'local':
            stats = local_vm_stats(client, conf['vmid'])
            if vm_runs_here(stats):
                raise CliError('Unable to enter local maintenance mode: the engine VM is running '
                               'on this host (status %s); migrate it to another host first'
                               % stats.get('status'))
            _set_local(client, True)
            out('Local maintenance enabled on this host')
            return 0
        _set_local(client, False)
    _set_global(False)
    out('Maintenance disabled: global and local maintenance are off')
    return 0


def _set_global(enabled):
    try:
        broker_call('set_global_maintenance', enabled=enabled)
    except BrokerError as e:
        if e.code == 'lockspace-not-held':
            raise CliError('the HA broker cannot write the global maintenance flag: it does not '
                           'hold its host id in the %s lockspace yet (%s); retry in a minute'
                           % (LOCKSPACE, e.message))
        raise CliError('the HA broker refused to %s global maintenance: %s'
                       % ('set' if enabled else 'clear', e.message))


# -- VM verbs --------------------------------------------------------------------------

VM_START_HELP = """\
Usage: hosted-engine --vm-start
    Start the engine VM on this host from its definition (the local copy of
    vm.conf, else the one on the shared storage). The VM lease keeps a second
    copy from starting on another host.
"""

VM_START_PAUSED_HELP = """\
Usage: hosted-engine --vm-start-paused
    Start the engine VM on this host with its CPUs paused (status Paused).
"""

VM_SHUTDOWN_HELP = """\
Usage: hosted-engine --vm-shutdown [--wait [--timeout=SECONDS]]
    Ask the engine VM on this host to shut down. The guest is given %d seconds
    before it is asked to power down (ACPI), and then up to %d more seconds to
    finish. Without --wait the command returns as soon as the shutdown is
    requested, while the guest may take minutes.

    --wait
        wait until the engine VM is down on this host, showing what is awaited,
        the time elapsed and the limit. Exit 0 when it is down; exit 1 when it
        is still up at the limit (power it off with hosted-engine --vm-poweroff).
    --timeout=SECONDS
        the limit of --wait (default %d).
""" % (SHUTDOWN_DELAY, SHUTDOWN_GRACE, SHUTDOWN_WAIT)

VM_POWEROFF_HELP = """\
Usage: hosted-engine --vm-poweroff
    Power off the engine VM on this host at once. A VM that is already down on
    this host (shut down or crashed) is reported as such, with exit status 0.
"""


def _start(args, verb, paused):
    parse_options(verb, args)
    conf = load_conf()
    vm = vm_definition(conf)
    vm_id = vm['vmId']
    with host_agent(conf) as client:
        stats = local_vm_stats(client, vm_id)
        if vm_runs_here(stats):
            raise CliError('The engine VM is already running on this host (status %s)'
                           % stats.get('status'))
        if stats is not None:
            # a Down record left by the last run: clear it so that the VM can be created again
            try:
                api(client, 'VM.destroy', vmID=vm_id)
            except ServerError as e:
                if e.code != NO_SUCH_VM:
                    raise CliError('cannot clear the previous run of the engine VM: %s'
                                   % e.message)
        params = {'vmId': vm_id, 'xml': vm['xml']}
        if paused:
            params['launchPaused'] = 'true'
        try:
            api(client, 'VM.create', vmID=vm_id, vmParams=params)
        except ServerError as e:
            raise CliError('the host agent refused to start the engine VM: %s' % e.message)
        status = _wait_started(client, vm_id)
    name = vm.get('vmName') or vm_id
    if status.get('status') == 'Down':
        raise CliError('The engine VM %s did not start: %s' % (name, status.get('exitMessage')))
    out('The engine VM %s (%s) is %s on this host' % (name, vm_id, status.get('status')))
    return 0


def _wait_started(client, vm_id):
    import time
    deadline = time.monotonic() + START_WAIT
    while True:
        stats = local_vm_stats(client, vm_id) or {'status': 'Down',
                                                  'exitMessage': 'the VM record vanished'}
        if stats.get('status') not in ('WaitForLaunch', 'Powering up'):
            return stats
        if time.monotonic() > deadline:
            return stats
        time.sleep(0.3)


def run_vm_start(args):
    return _start(args, '--vm-start', paused=False)


def run_vm_start_paused(args):
    return _start(args, '--vm-start-paused', paused=True)


def _not_here(e, what):
    if e.code == NO_SUCH_VM:
        return CliError('The engine VM is not running on this host: nothing to %s' % what)
    return CliError('the host agent refused to %s the engine VM: %s' % (what, e.message))


def _already_down(stats):
    """The text of a Down record left on this host by the engine VM, or None."""
    if stats is None or stats.get('status') != 'Down':
        return None
    why = stats.get('exitMessage') or ''
    return 'The engine VM was already down on this host%s' % (' (%s)' % why if why else '')


class _Screen:
    """progress.Reporter's logger for the terminal: one line per report on stdout."""

    def log(self, _level, fmt, *args):
        out(fmt % args)
        sys.stdout.flush()


def _wait_down(client, vm_id, limit):
    """Wait until the engine VM is down on this host; return (down, last status)."""
    from .. import progress
    last = {'status': None}

    def check():
        stats = local_vm_stats(client, vm_id)
        if stats is None or stats.get('status') == 'Down':
            return True, 'Down'
        last['status'] = stats.get('status')
        return False, 'status %s' % last['status']
    try:
        progress.wait_until(check, 'the engine VM to be down on this host', limit, 1.0,
                            progress.Reporter(_Screen(), every=10))
    except progress.WaitTimeout:
        return False, last['status']
    return True, 'Down'


def _limit(opts):
    text = opts.get('--timeout')
    if text is None:
        return SHUTDOWN_WAIT
    if '--wait' not in opts:
        raise UsageError('--timeout is the limit of --wait: give --wait too')
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError('--timeout needs a number of seconds (1 or more), not %r' % text)
    return value


def run_vm_shutdown(args):
    opts, _ = parse_options('--vm-shutdown', args, flags=('--wait',), values=('--timeout',))
    limit = _limit(opts)
    conf = load_conf()
    with host_agent(conf) as client:
        down = _already_down(local_vm_stats(client, conf['vmid']))
        if down:
            out(down + ': nothing to shut down')
            return 0
        try:
            api(client, 'VM.shutdown', vmID=conf['vmid'], delay=SHUTDOWN_DELAY,
                message=SHUTDOWN_MESSAGE)
        except ServerError as e:
            raise _not_here(e, 'shut down')
        out('Shutdown of the engine VM requested: the guest has %d seconds before it is asked '
            'to power down, then up to %d seconds to finish' % (SHUTDOWN_DELAY, SHUTDOWN_GRACE))
        if not opts.get('--wait'):
            return 0
        sys.stdout.flush()
        ok, status = _wait_down(client, conf['vmid'], limit)
    if ok:
        out('The engine VM is down')
        return 0
    raise CliError('The engine VM is still up on this host after %d s (status %s): wait '
                   'longer, look at the guest with hosted-engine --console, or power it off '
                   'with hosted-engine --vm-poweroff' % (limit, status))


def run_vm_poweroff(args):
    parse_options('--vm-poweroff', args)
    conf = load_conf()
    with host_agent(conf) as client:
        down = _already_down(local_vm_stats(client, conf['vmid']))
        try:
            api(client, 'VM.destroy', vmID=conf['vmid'])
        except ServerError as e:
            raise _not_here(e, 'power off')
    if down:
        # the Down record is cleared; nothing was running
        out(down + ': nothing was powered off')
        return 0
    out('The engine VM was powered off')
    return 0


ADD_CONSOLE_PASSWORD_HELP = """\
Usage: hosted-engine --add-console-password [--password=PASSWORD]
    Set a temporary (%d seconds) password on the engine VM's console. The
    password comes from --password, else from the environment variable
    %s, else it is asked twice on the terminal.
""" % (CONSOLE_TTL, CONSOLE_PASSWORD_ENV)


def _console_password(opts):
    if opts.get('--password'):
        return opts['--password']
    if os.environ.get(CONSOLE_PASSWORD_ENV):
        return os.environ[CONSOLE_PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise CliError('no console password given: use --password=PASSWORD or set %s, or run '
                       'on a terminal to type it' % CONSOLE_PASSWORD_ENV)
    first = getpass.getpass('Enter password: ')
    second = getpass.getpass('Confirm password: ')
    if first != second:
        raise CliError('the passwords do not match: run the command again')
    if not first:
        raise CliError('the password is empty: give a password')
    return first


def run_add_console_password(args):
    opts, _ = parse_options('--add-console-password', args, values=('--password',))
    conf = load_conf()
    password = _console_password(opts)
    with host_agent(conf) as client:
        try:
            api(client, 'VM.setTicket', vmID=conf['vmid'], password=password, ttl=CONSOLE_TTL,
                **constant('consoleTicket'))
        except ServerError as e:
            if e.code == NO_SUCH_VM:
                raise CliError('The engine VM is not running on this host: no console to set a '
                               'password on')
            raise CliError('the host agent cannot set the console password: %s' % e.message)
    out('Console password set, valid for %d seconds' % CONSOLE_TTL)
    return 0


CONSOLE_HELP = """\
Usage: hosted-engine --console
    Open the serial console of the engine VM running on this host
    (virsh console; leave it with Ctrl+]).
"""


def run_console(args):
    parse_options('--console', args)
    conf = load_conf()
    with host_agent(conf) as client:
        stats = local_vm_stats(client, conf['vmid'])
    if not vm_runs_here(stats):
        raise CliError('The engine VM is not running on this host: run hosted-engine --vm-status '
                       'to find the host that runs it')
    name = stats.get('vmName') or vm_definition(conf).get('vmName') or 'HostedEngine'
    argv = ['virsh', '-c', 'qemu:///system', 'console', name]
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        raise CliError('cannot run virsh: %s; install libvirt-clients' % (e.strerror or e))


# -- --check-liveliness ----------------------------------------------------------------

CHECK_LIVELINESS_HELP = """\
Usage: hosted-engine --check-liveliness
    Check the engine's health page (http://<fqdn>%s).
    Exit status 0: the engine is up; 1: it is not; 2: hosted engine is not configured.
""" % HEALTH_PATH


def run_check_liveliness(args):
    parse_options('--check-liveliness', args)
    try:
        conf = load_conf(required_vmid=False)
    except CliError as e:
        raise CliError('Hosted Engine is not configured: %s' % e, code=2)
    fqdn = (conf.get('fqdn') or '').strip()
    if not fqdn:
        raise CliError('Hosted Engine is not configured: %s has no fqdn'
                       % paths.HOSTED_ENGINE_CONF, code=2)
    reply = health_page.fetch(fqdn, HEALTH_TIMEOUT)
    log.info('%s: %s', reply.url, reply.error if reply.error is not None else
             'HTTP %d %r' % (reply.status, reply.body[:200]))
    up = reply.ok
    out('Hosted Engine is up!' if up else 'Hosted Engine is not up!')
    return 0 if up else 1


# -- lockspace and metadata ------------------------------------------------------------

REINITIALIZE_LOCKSPACE_HELP = """\
Usage: hosted-engine --reinitialize-lockspace [--force]
    Reinitialize the hosted-engine sanlock lockspace on the shared storage
    (this wipes the host ids held in it). Requires global maintenance, and is
    refused while any host (this one included) is alive in the storage domain:
    its host id in the hosted-engine lockspace still renewed, or its HA metadata
    slot still written (watched for up to 4 x sanlock_io_timeout + 2 seconds).
    Stop ovirt-ha-agent and ovirt-ha-broker on every host first.

    --force
        skip the global maintenance requirement and reinitialize even while
        hosts look alive (they are named). Only for hosts that are really gone:
        fence them (power them off) first.
"""


def _peers_problem(conf, **kw):
    """peers.find_alive for the verbs, from the hosted-engine lockspace and the metadata
    (Verdict); what it waits for is told on stdout."""
    from . import peers
    from .cli_common import DATA_CENTER_DIR
    return peers.find_alive(conf, DATA_CENTER_DIR, progress=out, sources=peers.HA_SOURCES,
                            **kw)


def run_reinitialize_lockspace(args):
    from . import peers
    opts, _ = parse_options('--reinitialize-lockspace', args, flags=('--force',))
    force = bool(opts.get('--force'))
    conf = load_conf()
    if not force:
        max_hosts, data = read_metadata_area(conf)
        view = metadata.parse_area(data, max_hosts)
        if not view.global_maintenance:
            raise CliError('Lockspace reinitialization requires global maintenance: run '
                           '%s --set-maintenance --mode=global first (or use --force)' % PROG)
    path = volume_path(conf, 'lockspace')
    if not os.path.exists(path):
        raise CliError('the lockspace volume %s is not reachable; is the storage connected? run '
                       '%s --connect-storage' % (path, PROG))
    # every host counts, this one too: its own host id would be wiped as well
    verdict = _peers_problem(conf)
    if verdict.alive:
        what = '%s %s alive in storage domain %s (%s)' % (
            peers.describe(verdict.alive), 'is' if len(verdict.alive) == 1 else 'are',
            conf.get('sdUUID'), '; '.join('%s: %s' % (h, ', '.join(h.evidence))
                                          for h in verdict.alive))
        if not force:
            raise CliError('Refusing to reinitialize the %s lockspace: %s; stop ovirt-ha-agent '
                           'and ovirt-ha-broker on every host first; if a host is really gone, '
                           'fence it (power it off) and use --force' % (LOCKSPACE, what))
        note('Warning: %s; --force: reinitializing anyway' % what)
    elif 'metadata' in verdict.unread and not verdict.read_any and not force:
        # the lockspace is lost (why it is reinitialized) and the metadata cannot tell
        raise CliError('Refusing to reinitialize the %s lockspace: cannot tell whether other '
                       'hosts are alive (%s); stop ovirt-ha-agent and ovirt-ha-broker on every '
                       'host, fence the hosts that do not answer, and use --force'
                       % (LOCKSPACE, '; '.join(verdict.unknown)))
    from ..he_storage import sanlock_util
    try:
        sanlock_util.write_lockspace(LOCKSPACE, path, iotimeout=io_timeout(conf))
    except sanlock_util.SanlockException as e:
        log.info('write_lockspace', exc_info=True)
        raise CliError('cannot reinitialize the %s lockspace on %s: %s'
                       % (LOCKSPACE, path, sanlock_util.describe(e)))
    log.info('lockspace %s reinitialized on %s', LOCKSPACE, path)
    out('The %s lockspace on %s was reinitialized' % (LOCKSPACE, path))
    return 0


CLEAN_METADATA_HELP = """\
Usage: hosted-engine --clean-metadata [--force-cleanup] [--host-id=N]
    Remove a host's slot from the shared metadata (default: this host's).
    Refused while that host is alive: for this host, while its HA agent
    writes its slot; for another host, while its host id in the storage
    domain's lockspaces is renewed or its slot is written (watched for up to
    4 x sanlock_io_timeout + 2 seconds). Needs this host's ovirt-ha-broker.

    --host-id=N
        the host id (1..250) whose slot to remove.
    --force-cleanup
        remove it even if that host looks alive (it is named). Only for a host
        that is really gone: fence it (power it off) first.
"""


def run_clean_metadata(args):
    from . import peers
    opts, _ = parse_options('--clean-metadata', args, flags=('--force-cleanup',),
                            values=('--host-id',))
    force = bool(opts.get('--force-cleanup'))
    host_id = parse_host_id(opts['--host-id']) if '--host-id' in opts else None
    conf = load_conf()
    own = own_host_id(conf)
    if host_id is None:
        host_id = own
    with broker() as b:      # it writes the slot: without it nothing can be done
        try:
            b.call('ping')
        except BrokerUnavailable as e:
            raise CliError(str(e))
    max_hosts, data = read_metadata_area(conf)
    view = metadata.parse_area(data, max_hosts)
    rec = view.hosts.get(host_id)
    broken = [s for s in view.skipped if s.slot == host_id]
    if rec is None and not broken:
        out('Host %d has no metadata slot: nothing was removed' % host_id)
        return 0
    # this host's broker holds this host's id: only its agent's writes count for it
    verdict = _peers_problem(conf, only={host_id}, own_owner=peers.local_sanlock_name()
                             if host_id == own else None)
    if verdict.alive:
        h = verdict.alive[0]
        why = ', '.join(h.evidence)
        if not force:
            if host_id == own:
                raise CliError('the HA agent of this host (id %d) is running (%s): stop '
                               'ovirt-ha-agent first, or use --force-cleanup' % (own, why))
            raise CliError('%s is alive (%s): stop ovirt-ha-agent and ovirt-ha-broker there '
                           'first; if it is really gone, fence it (power it off) and use '
                           '--force-cleanup' % (h, why))
        note('Warning: %s looks alive (%s); --force-cleanup: removing its metadata anyway'
             % (h, why))
    with broker() as b:
        try:
            b.call('clean_slot', host_id=host_id, force=True)
        except BrokerUnavailable as e:
            raise CliError(str(e))
        except BrokerError as e:
            raise CliError('the HA broker refused to clean the metadata of host %d: %s'
                           % (host_id, e.message))
    if rec is None:
        out('The unreadable metadata slot of host %d (%s) was cleared'
            % (host_id, broken[0].reason))
    else:
        out('The metadata of host %d (%s) was removed' % (host_id, rec.hostname))
    return 0


# -- storage ---------------------------------------------------------------------------

CONNECT_STORAGE_HELP = """\
Usage: hosted-engine --connect-storage
    Connect the hosted-engine storage domain and prepare its volumes on this host.
"""

DISCONNECT_STORAGE_HELP = """\
Usage: hosted-engine --disconnect-storage
    Disconnect the hosted-engine storage domain from this host.
"""


def _storage(args, verb, connect):
    parse_options(verb, args)
    conf = load_conf()
    from .. import he_storage
    from ..he_storage import domain
    with host_agent(conf) as client:
        try:
            if connect:
                domain.connect(client, conf)
            else:
                domain.disconnect(client, conf)
        except he_storage.StorageError as e:
            raise CliError(str(e))
    out('The hosted-engine storage is %s' % ('connected' if connect else 'disconnected'))
    return 0


def run_connect_storage(args):
    return _storage(args, '--connect-storage', True)


def run_disconnect_storage(args):
    return _storage(args, '--disconnect-storage', False)


# -- shared configuration --------------------------------------------------------------

HE_KEYS = heconf.HE_KEYS
HA_KEYS = ('local_maintenance', 'local_maintenance_manual', 'global_maintenance')
BROKER_KEYS = {'smtp-server': 'email', 'smtp-port': 'email', 'source-email': 'email',
               'destination-emails': 'email', 'smtp-starttls': 'email', 'smtp-ssl': 'email',
               'smtp-cafile': 'email', 'smtp-user': 'email', 'smtp-password': 'email',
               'smtp-timeout': 'email', 'state_transition': 'notify'}
CONFIG_TYPES = ('he_local', 'he_shared', 'ha', 'broker')

SET_SHARED_CONFIG_HELP = """\
Usage: hosted-engine --set-shared-config KEY VALUE --type=TYPE
    Set a configuration value.

    --type=he_local
        /etc/ovirt-hosted-engine/hosted-engine.conf of this host.
    --type=he_shared
        hosted-engine.conf in the configuration volume on the shared storage
        (read by every host).
    --type=ha
        /var/lib/ovirt-hosted-engine-ha/ha.conf of this host.
    --type=broker
        broker.conf (notifications) in the configuration volume and its local copy.
"""

GET_SHARED_CONFIG_HELP = """\
Usage: hosted-engine --get-shared-config KEY --type=TYPE
    Print a configuration value (types as for --set-shared-config:
    he_local, he_shared, ha, broker).
"""


def _config_type(verb, opts):
    t = opts.get('--type')
    if t is None:
        raise UsageError('%s needs --type=he_local, he_shared, ha or broker' % verb)
    if t not in CONFIG_TYPES:
        raise UsageError('unknown configuration type %r: use --type=he_local, he_shared, ha or '
                         'broker' % t)
    return t


def _check_key(ctype, key):
    known = {'he_local': HE_KEYS, 'he_shared': HE_KEYS, 'ha': HA_KEYS,
             'broker': tuple(BROKER_KEYS)}[ctype]
    name = key.rpartition('.')[2] if ctype == 'broker' else key
    if name not in known:
        raise UsageError('unknown key %r for --type=%s (known keys: %s)'
                         % (key, ctype, ', '.join(known)))


def _read_text(path, missing_ok=False):
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except FileNotFoundError:
        if missing_ok:
            return ''
        raise CliError('%s does not exist' % path)
    except OSError as e:
        raise CliError('cannot read %s: %s' % (path, e.strerror or e))


def _write_text(path, text):
    try:
        write_file_atomic(path, text)
    except OSError as e:
        raise CliError('cannot write %s: %s' % (path, e.strerror or e))


def _update_volume(conf, name, change):
    """Apply change(text) -> text to file ``name`` of the configuration volume,
    refused when the volume changed since it was read."""
    cv, files, checksum = read_config_volume(conf)
    if name not in files:
        raise CliError('the configuration volume %s has no %s: run deploy again' % (cv.path, name))
    files[name] = change(files[name])
    write_config_volume(cv, files, checksum)


def _broker_conf_problem(text):
    """What the broker's reader (notifications.parse_config) refuses in broker.conf ``text``,
    or None."""
    import configparser
    from . import notifications
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read_string(text)
        notifications.parse_config(cp)
    except configparser.Error as e:
        return 'broker.conf is not valid INI (%s)' % str(e).splitlines()[0]
    except notifications.ConfigError as e:
        return str(e)
    return None


def _check_broker_conf(old, new):
    """Refuse a broker.conf the broker would not read, unless the very same problem was
    already in the file before (then this change does not make it worse)."""
    problem = _broker_conf_problem(new)
    if problem and problem != _broker_conf_problem(old):
        raise CliError('refused: %s; broker.conf was not changed' % problem)


def run_set_shared_config(args):
    opts, pos = parse_options('--set-shared-config', args, values=('--type',),
                              positional=('KEY', 'VALUE'))
    ctype = _config_type('--set-shared-config', opts)
    key, value = pos
    _check_key(ctype, key)
    if '\n' in value:
        raise UsageError('the value must be one line')
    if ctype in ('he_local', 'he_shared', 'ha'):
        # the readers' own check (heconf.load), for this key only: a bad value of another
        # key already in the file does not stop this one from being set
        problem = heconf.value_problem(key, value, heconf.HA_VALIDATORS if ctype == 'ha'
                                       else None)
        if problem:
            raise CliError('refused: %s; %s was not changed' % (problem, {
                'he_local': paths.HOSTED_ENGINE_CONF, 'ha': paths.HA_CONF,
                'he_shared': 'hosted-engine.conf of the configuration volume'}[ctype]))
    if ctype == 'he_local':
        path = paths.HOSTED_ENGINE_CONF
        if not os.path.isfile(path):
            raise CliError('You must run deploy first: %s does not exist' % path)
        _write_text(path, set_keyvalue(_read_text(path), key, value))
    elif ctype == 'he_shared':
        conf = load_conf()
        _update_volume(conf, 'hosted-engine.conf', lambda t: set_keyvalue(t, key, value))
    elif ctype == 'ha':
        path = paths.HA_CONF
        _write_text(path, set_keyvalue(_read_text(path, missing_ok=True), key, value))
    else:
        conf = load_conf()
        section, _, name = key.rpartition('.')
        section = section or BROKER_KEYS[name]

        def change(text):
            found, _old = ini_get(text, key)
            new = ini_set(text, found or section, name, value)
            _check_broker_conf(text, new)
            return new
        _update_volume(conf, 'broker.conf', change)
        local = _read_text(paths.BROKER_CONF, missing_ok=True)
        _write_text(paths.BROKER_CONF, change(local))
    shown = '********' if key.rpartition('.')[2] in SECRET_CONFIG_KEYS else value
    log.info('%s set to %s (type %s)', key, shown, ctype)
    out('%s : %s, type : %s' % (key, shown, ctype))
    return 0


def run_get_shared_config(args):
    opts, pos = parse_options('--get-shared-config', args, values=('--type',),
                              positional=('KEY',))
    ctype = _config_type('--get-shared-config', opts)
    key = pos[0]
    _check_key(ctype, key)
    if ctype == 'he_local':
        conf = load_conf(required_vmid=False)
        value = conf.get(key)
        where = paths.HOSTED_ENGINE_CONF
    elif ctype == 'he_shared':
        conf = load_conf()
        cv, files, _ = read_config_volume(conf)
        value = parse_keyvalue(files.get('hosted-engine.conf', '')).get(key)
        where = 'hosted-engine.conf of the configuration volume'
    elif ctype == 'ha':
        where = paths.HA_CONF
        value = parse_keyvalue(_read_text(where, missing_ok=True)).get(key)
    else:
        conf = load_conf()
        try:
            _cv, files, _ = read_config_volume(conf)
            text = files.get('broker.conf', '')
            where = 'broker.conf of the configuration volume'
        except CliError:
            text = _read_text(paths.BROKER_CONF)
            where = paths.BROKER_CONF
        _section, value = ini_get(text, key)
    if value is None:
        raise CliError('%s is not set in %s' % (key, where))
    out('%s : %s, type : %s' % (key, value, ctype))
    return 0

