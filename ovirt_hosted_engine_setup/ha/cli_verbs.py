"""The HA verbs of `hosted-engine` (spec: docs/ha-services.md, man/hosted-engine.8).

Each ``run_*`` function takes the verb's arguments (after the verb itself) and
returns the exit status; problems the user can fix raise CliError (one line).
They talk to the broker's socket, to the host agent API on localhost and, for
``--vm-status`` and ``--reinitialize-lockspace``, to the shared storage
directly, so that they work while the agent and the broker are down.
"""
import base64
import errno
import getpass
import json
import os
import sys
import urllib.error
import urllib.request

from .. import paths
from . import metadata
from .cli_common import (LOCKSPACE, PROG, SECRET_CONFIG_KEYS, BrokerError, BrokerUnavailable,
                         CliError, ServerError, UsageError, api, broker, broker_call, host_agent,
                         ini_get, ini_set, io_timeout, load_conf, local_vm_stats, log,
                         own_host_id, parse_host_id, parse_keyvalue, parse_options,
                         read_config_volume, read_metadata_area, set_keyvalue, vm_definition,
                         vm_runs_here, volume_path, write_config_volume, write_file_atomic)

LABEL_WIDTH = 35
GLOBAL_BANNER = '!! Cluster is in GLOBAL MAINTENANCE mode !!'
CONSOLE_PASSWORD_ENV = 'OVIRT_HOSTED_ENGINE_CONSOLE_PASSWORD'
CONSOLE_TTL = 120
SHUTDOWN_DELAY = 120
SHUTDOWN_MESSAGE = 'VM is shutting down!'
HEALTH_PATH = '/ovirt-engine/services/health'
HEALTH_TIMEOUT = 20
START_WAIT = 30


def out(text=''):
    sys.stdout.write(text + '\n')


def note(text):
    sys.stderr.write(text + '\n')


# -- liveness of the hosts -------------------------------------------------------------

def sanlock_live_ids():
    """Host ids sanlock reports live in the hosted-engine lockspace, or raise
    RuntimeError saying why sanlock's view is not available."""
    try:
        import sanlock
    except ImportError:
        raise RuntimeError('python3-sanlock is not installed')
    name = LOCKSPACE.encode()
    try:
        spaces = sanlock.get_lockspaces()
    except sanlock.SanlockException as e:
        if e.errno in (errno.ENOENT, errno.ECONNREFUSED):
            raise RuntimeError('the sanlock daemon of this host is not running')
        raise RuntimeError('sanlock is not answering (%s)' % (e.args[-1] if e.args else e))
    if not any(s.get('lockspace') == name for s in spaces):
        raise RuntimeError('this host is not in the %s sanlock lockspace' % LOCKSPACE)
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


def judge_liveness():
    """(live host ids or None when unknown, where the judgement comes from, notes)."""
    notes = []
    try:
        with broker(timeout=15) as b:
            result = b.call('read_area')
        liveness = result.get('liveness') or {}
        return {int(k) for k, v in liveness.items() if v == 'live'}, 'broker', notes
    except (BrokerUnavailable, BrokerError, AttributeError, ValueError) as e:
        broker_problem = str(e)
        log.info('broker read_area: %s', broker_problem)
    try:
        live = sanlock_live_ids()
        notes.append("Note: the HA broker is not answering (%s); 'Status up-to-date' comes from "
                     "sanlock's view of the %s lockspace" % (broker_problem, LOCKSPACE))
        return live, 'sanlock', notes
    except RuntimeError as e:
        notes.append('Note: whether each host\'s status is up to date is unknown: the HA broker '
                     'is not answering (%s) and %s' % (broker_problem, e))
    return None, None, notes


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
        if h['live-data'] or not liveness_known:
            engine = engine_status_text(h['engine-status'])
        else:
            engine = 'unknown stale-data'
        rows = [('Host ID', h['host-id']), ('Host timestamp', h['host-ts']),
                ('Score', h['score']), ('Engine status', engine), ('Hostname', h['hostname']),
                ('Local maintenance', h['maintenance']), ('stopped', h['stopped']),
                ('crc32', h['crc32']), ('conf_on_shared_storage', h['conf_on_shared_storage']),
                ('local_conf_timestamp', h['local_conf_timestamp']),
                ('Status up-to-date', h['live-data'])]
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
    live, _source, notes = judge_liveness()
    for n in notes:
        note(n)
    report = metadata.status_report(view, live or set())
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
Usage: hosted-engine --vm-shutdown
    Ask the engine VM on this host to shut down (the guest gets %d seconds).
""" % SHUTDOWN_DELAY

VM_POWEROFF_HELP = """\
Usage: hosted-engine --vm-poweroff
    Power off the engine VM on this host at once.
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
                if e.code != 1:
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
    if e.code == 1:
        return CliError('The engine VM is not running on this host: nothing to %s' % what)
    return CliError('the host agent refused to %s the engine VM: %s' % (what, e.message))


def run_vm_shutdown(args):
    parse_options('--vm-shutdown', args)
    conf = load_conf()
    with host_agent(conf) as client:
        try:
            api(client, 'VM.shutdown', vmID=conf['vmid'], delay=SHUTDOWN_DELAY,
                message=SHUTDOWN_MESSAGE)
        except ServerError as e:
            raise _not_here(e, 'shut down')
    out('The engine VM is shutting down (the guest has %d seconds)' % SHUTDOWN_DELAY)
    return 0


def run_vm_poweroff(args):
    parse_options('--vm-poweroff', args)
    conf = load_conf()
    with host_agent(conf) as client:
        try:
            api(client, 'VM.destroy', vmID=conf['vmid'])
        except ServerError as e:
            raise _not_here(e, 'power off')
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
                existingConnAction='keep', params={})
        except ServerError as e:
            if e.code == 1:
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
    url = 'http://%s%s' % (fqdn, HEALTH_PATH)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=HEALTH_TIMEOUT) as r:
            body = r.read(65536).decode('utf-8', 'replace')
        up = 'DB Up' in body
        log.info('%s: %r', url, body[:200])
    except (urllib.error.URLError, OSError, ValueError) as e:
        log.info('%s: %s', url, e)
        up = False
    out('Hosted Engine is up!' if up else 'Hosted Engine is not up!')
    return 0 if up else 1


# -- lockspace and metadata ------------------------------------------------------------

REINITIALIZE_LOCKSPACE_HELP = """\
Usage: hosted-engine --reinitialize-lockspace [--force]
    Reinitialize the hosted-engine sanlock lockspace on the shared storage
    (this wipes the host ids held in it). Requires global maintenance and the
    HA agents of every host stopped.

    --force
        skip these checks.
"""


def run_reinitialize_lockspace(args):
    opts, _ = parse_options('--reinitialize-lockspace', args, flags=('--force',))
    force = bool(opts.get('--force'))
    conf = load_conf()
    if not force:
        max_hosts, data = read_metadata_area(conf)
        view = metadata.parse_area(data, max_hosts)
        if not view.global_maintenance:
            raise CliError('Lockspace reinitialization requires global maintenance: run '
                           '%s --set-maintenance --mode=global first (or use --force)' % PROG)
        live, _source, notes = judge_liveness()
        running = sorted(hid for hid, rec in view.hosts.items()
                         if not rec.stopped and (live is None or hid in live))
        if running:
            if live is None:
                raise CliError('cannot tell whether the HA agents are stopped (%s): stop '
                               'ovirt-ha-agent on every host, or use --force'
                               % notes[-1].split(': ', 1)[-1])
            raise CliError('the HA agent of host(s) %s is running: stop ovirt-ha-agent on every '
                           'host first (or use --force)' % ', '.join(str(h) for h in running))
    path = volume_path(conf, 'lockspace')
    if not os.path.exists(path):
        raise CliError('the lockspace volume %s is not reachable; is the storage connected? run '
                       '%s --connect-storage' % (path, PROG))
    from ..hostd import sanlock_util
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
    Refused while that host's HA agent runs.

    --host-id=N
        the host id (1..250) whose slot to remove.
    --force-cleanup
        remove it even if its agent looks alive.
"""


def run_clean_metadata(args):
    opts, _ = parse_options('--clean-metadata', args, flags=('--force-cleanup',),
                            values=('--host-id',))
    force = bool(opts.get('--force-cleanup'))
    host_id = parse_host_id(opts['--host-id']) if '--host-id' in opts else None
    conf = load_conf()
    own = own_host_id(conf)
    if host_id is None:
        host_id = own
    with broker() as b:
        try:
            broker_force = force
            if not force:
                area = b.call('read_area')
                raw = base64.b64decode(area.get('area') or '')
                view = metadata.parse_area(raw, area.get('max_hosts') or host_id)
                rec = view.hosts.get(host_id)
                live = (area.get('liveness') or {}).get(str(host_id)) == 'live'
                if rec is not None and not rec.stopped and live:
                    if host_id == own:
                        raise CliError('the HA agent of this host (id %d) is running: stop '
                                       'ovirt-ha-agent first, or use --force-cleanup' % own)
                    raise CliError('host %d is live (its HA agent is running): stop '
                                   'ovirt-ha-agent there first, or use --force-cleanup'
                                   % host_id)
                # an agent that published stopped=1 has exited: its slot may go at once
                broker_force = rec is not None and rec.stopped
            b.call('clean_slot', host_id=host_id, force=broker_force)
        except BrokerUnavailable as e:
            raise CliError(str(e))
        except BrokerError as e:
            if e.code == 'host-live':
                raise CliError('host %d is live (its HA agent is running): stop ovirt-ha-agent '
                               'there first, or use --force-cleanup' % host_id)
            raise CliError('the HA broker refused to clean the metadata of host %d: %s'
                           % (host_id, e.message))
    out('The metadata of host %d was removed' % host_id)
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
    from . import shared_storage
    with host_agent(conf) as client:
        try:
            if connect:
                shared_storage.connect(client, conf)
            else:
                shared_storage.disconnect(client, conf)
        except shared_storage.StorageError as e:
            raise CliError(str(e))
    out('The hosted-engine storage is %s' % ('connected' if connect else 'disconnected'))
    return 0


def run_connect_storage(args):
    return _storage(args, '--connect-storage', True)


def run_disconnect_storage(args):
    return _storage(args, '--disconnect-storage', False)


# -- shared configuration --------------------------------------------------------------

HE_KEYS = ('fqdn', 'vm_disk_id', 'vm_disk_vol_id', 'vmid', 'storage', 'mnt_options', 'conf',
           'host_id', 'console', 'domainType', 'spUUID', 'sdUUID', 'connectionUUID', 'ca_cert',
           'ca_subject', 'vdsm_use_ssl', 'gateway', 'bridge', 'metadata_volume_UUID',
           'metadata_image_UUID', 'lockspace_volume_UUID', 'lockspace_image_UUID',
           'conf_volume_UUID', 'conf_image_UUID', 'network_test', 'tcp_t_address', 'tcp_t_port',
           'sanlock_io_timeout')
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


def run_set_shared_config(args):
    opts, pos = parse_options('--set-shared-config', args, values=('--type',),
                              positional=('KEY', 'VALUE'))
    ctype = _config_type('--set-shared-config', opts)
    key, value = pos
    _check_key(ctype, key)
    if '\n' in value:
        raise UsageError('the value must be one line')
    if ctype == 'he_local':
        conf = load_conf(required_vmid=False)
        del conf
        path = paths.HOSTED_ENGINE_CONF
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
            return ini_set(text, found or section, name, value)
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

