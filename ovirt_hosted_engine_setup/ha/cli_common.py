"""What the HA verbs of `hosted-engine` share: errors, option parsing, the
configuration files, the host agent, the broker and the shared storage.

Errors a user can meet are CliError: one line on stderr and an exit status.
Everything else is logged with its traceback to the CLI log file
(<HA_LOG_DIR>/hosted-engine-cli.log) and reported as one line.
"""
import configparser
import io
import logging
import os

from .. import logsetup, paths
from ..api.client import DEFAULT_PORT, Client
from ..api.errors import NO_SUCH_VM, ApiError, CallTimeout, ConnectionFailed, ServerError
from ..he_storage import heconf, layout
from .broker_client import BrokerClient, BrokerError, BrokerUnavailable
from ..he_storage.heconf import parse_kv as parse_keyvalue  # noqa: F401 (the verbs' name for it)

log = logging.getLogger('ovirt_hosted_engine_setup.ha.cli')

PROG = 'hosted-engine'
LOG_FILE = os.path.join(paths.HA_LOG_DIR, 'hosted-engine-cli.log')
# Where the host agent connects storage (VDSM's /rhev/data-center), relocated like the rest.
DATA_CENTER_DIR = getattr(paths, 'DATA_CENTER_DIR', paths.PREFIX + '/rhev/data-center')
# The host agent is on this host; its port can be moved for development runs and tests.
HOSTD_PORT_ENV = 'OVIRT_HOSTED_ENGINE_HOSTD_PORT'
LOCKSPACE = layout.LOCKSPACE_NAME
MAX_HOST_ID = layout.MAX_HOSTS
# values never logged (--set-shared-config KEY VALUE)
SECRET_CONFIG_KEYS = ('smtp-password',)


class CliError(Exception):
    """A problem the user can fix: one line, exit status ``code``."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class UsageError(CliError):
    """Bad command line."""


# -- logging -------------------------------------------------------------------------

def setup_logging():
    """Log to the CLI log file; nothing reaches the screen. Returns the path or None."""
    return logsetup.command_log(LOG_FILE, logging.INFO)


def masked_args(args):
    """The command line as it may be logged: passwords replaced by ********."""
    out = []
    hide_next = False
    for a in args:
        if hide_next:
            out.append('********')
            hide_next = False
        elif a.startswith('--password'):
            out.append('--password=********' if '=' in a else a)
            hide_next = '=' not in a
        else:
            out.append(a)
            hide_next = a.rpartition('.')[2] in SECRET_CONFIG_KEYS
    return out


# -- options -------------------------------------------------------------------------

def parse_options(verb, args, flags=(), values=(), positional=(), optional_positional=0):
    """Parse ``args`` of ``verb``: ``flags`` take no value, ``values`` need one
    (``--opt=V`` or ``--opt V``), ``positional`` names the required positional
    arguments. Returns (options dict, positional list)."""
    opts = {}
    pos = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith('--') and len(arg) > 2:
            name, eq, value = arg.partition('=')
            if name in flags:
                if eq:
                    raise UsageError('%s takes no value' % name)
                opts[name] = True
            elif name in values:
                if not eq:
                    if i + 1 < len(args) and not args[i + 1].startswith('--'):
                        i += 1
                        value = args[i]
                    else:
                        raise UsageError('%s needs a value: %s=VALUE' % (name, name))
                if value == '':
                    raise UsageError('%s needs a value: %s=VALUE' % (name, name))
                opts[name] = value
            else:
                raise UsageError('unknown option %s for %s; see %s %s --help'
                                 % (name, verb, PROG, verb))
        elif arg.startswith('-') and len(arg) > 1:
            raise UsageError('unknown option %s for %s; see %s %s --help'
                             % (arg, verb, PROG, verb))
        else:
            pos.append(arg)
        i += 1
    if len(pos) < len(positional):
        raise UsageError('%s needs %s; see %s %s --help'
                         % (verb, ' '.join(positional[len(pos):]), PROG, verb))
    if len(pos) > len(positional) + optional_positional:
        raise UsageError('unexpected argument %r for %s; see %s %s --help'
                         % (pos[len(positional) + optional_positional], verb, PROG, verb))
    return opts, pos


def parse_host_id(text):
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise UsageError('--host-id needs a number between 1 and %d, not %r'
                         % (MAX_HOST_ID, text))
    if not 1 <= value <= MAX_HOST_ID:
        raise UsageError('--host-id must be between 1 and %d, not %d' % (MAX_HOST_ID, value))
    return value


# -- key=value files -----------------------------------------------------------------

def set_keyvalue(text, key, value):
    """Return ``text`` with ``key=value`` replaced (or appended), other lines kept."""
    lines = text.splitlines()
    done = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith('#') and stripped.partition('=')[0].strip() == key \
                and '=' in stripped:
            lines[i] = '%s=%s' % (key, value)
            done = True
    if not done:
        lines.append('%s=%s' % (key, value))
    return '\n'.join(lines) + '\n'


def write_file_atomic(path, text, mode=0o644):
    """Replace ``path`` with ``text``, keeping its mode when it exists."""
    heconf.write(path, text, mode, keep_mode=True)


def ini_get(text, key):
    """(section, value) of ``key`` (``key`` or ``section.key``) in INI ``text``;
    (None, None) when absent."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(text)
    section, _, name = key.rpartition('.')
    for s in ([section] if section else cp.sections()):
        if cp.has_option(s, name):
            return s, cp.get(s, name)
    return None, None


def ini_set(text, section, key, value):
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(text)
    if not cp.has_section(section):
        cp.add_section(section)
    cp.set(section, key, value)
    out = io.StringIO()
    cp.write(out)
    return out.getvalue()


# -- hosted-engine.conf --------------------------------------------------------------

def _load_heconf(path):
    try:
        return heconf.load(path)
    except heconf.ConfError as e:
        raise CliError(str(e))


def load_conf(required_vmid=True):
    """hosted-engine.conf as a dict; CliError when this host is not deployed."""
    path = paths.HOSTED_ENGINE_CONF
    if not os.path.isfile(path):
        raise CliError('You must run deploy first: %s does not exist' % path)
    try:
        conf = _load_heconf(path)
    except OSError as e:
        raise CliError('cannot read %s: %s' % (path, e.strerror or e))
    if required_vmid and not conf.get('vmid'):
        raise CliError('You must run deploy first: %s names no engine VM (vmid=)' % path)
    return conf


def own_host_id(conf):
    try:
        return parse_host_id(conf.get('host_id'))
    except UsageError:
        raise CliError('%s has no valid host_id (%r): run deploy again or fix host_id='
                       % (paths.HOSTED_ENGINE_CONF, conf.get('host_id')))


def io_timeout(conf):
    try:
        return int(conf.get('sanlock_io_timeout') or 10)
    except ValueError:
        return 10


# -- shared storage ------------------------------------------------------------------

def volume_path(conf, which):
    """Path of one hosted-engine volume ('metadata', 'lockspace', 'conf', 'vm', 'vm_lease')
    under the connected storage domain (layout.volume_paths)."""
    from ..he_storage import layout
    try:
        return layout.volume_paths(conf, data_center_dir=DATA_CENTER_DIR)[which]
    except KeyError as e:
        raise CliError('%s has no %s: deploy again or add it' % (paths.HOSTED_ENGINE_CONF, e))


def read_metadata_area(conf):
    """(max_hosts, bytes of the area) read directly from shared storage (O_DIRECT)."""
    from .broker.store import MetadataStore, StoreError
    path = volume_path(conf, 'metadata')
    try:
        store = MetadataStore(path)
        data, _delay = store.read_area()
    except StoreError as e:
        raise CliError('%s; is the storage connected? run hosted-engine --connect-storage' % e)
    return store.max_hosts, data


def read_config_volume(conf):
    """(ConfigVolume, {name: text}, checksum) of the configuration volume."""
    from ..he_storage.config_volume import ConfigVolume
    from ..he_storage import StorageError
    cv = ConfigVolume(volume_path(conf, 'conf'))
    try:
        files, checksum = cv.read_with_checksum()
    except StorageError as e:
        raise CliError(str(e))
    return cv, files, checksum


def write_config_volume(cv, files, checksum):
    from ..he_storage.config_volume import ConfigChanged
    from ..he_storage import StorageError
    try:
        cv.write(files, checksum)
    except ConfigChanged:
        raise CliError('the configuration volume changed while it was being updated (another '
                       'host wrote it): run the command again')
    except StorageError as e:
        raise CliError(str(e))


# -- the VM definition ---------------------------------------------------------------

def vm_definition(conf):
    """vm.conf as a dict with 'xml' decoded: the local copy (conf= of
    hosted-engine.conf) or else the one in the configuration volume."""
    local = conf.get('conf')
    try:
        if local and os.path.isfile(local):
            vm = heconf.load_vm_conf(local)
        else:
            cv, files, _ = read_config_volume(conf)
            if not files.get('vm.conf'):
                raise CliError('no VM definition: %s is missing and the configuration volume %s '
                               'has no vm.conf; run deploy again' % (local or 'conf=', cv.path))
            vm = heconf.parse_vm_conf(files['vm.conf'], 'vm.conf of the configuration volume')
        vm = dict(vm, xml=heconf.vm_xml(vm))
    except heconf.ConfError as e:
        raise CliError(str(e))
    return vm


# -- the host agent ------------------------------------------------------------------

def hostd_port():
    text = os.environ.get(HOSTD_PORT_ENV)
    try:
        return int(text) if text else DEFAULT_PORT
    except ValueError:
        raise CliError('%s=%r is not a port number' % (HOSTD_PORT_ENV, text))


def host_agent(conf):
    """A Client of this host's agent; CliError naming the service when unreachable."""
    insecure = str(conf.get('vdsm_use_ssl', 'true')).strip().lower() == 'false'
    port = hostd_port()
    try:
        return Client('localhost', port, insecure=insecure, timeout=60, connect_timeout=10,
                      reconnect_interval=0)
    except ConnectionFailed as e:
        log.info('host agent connection failed', exc_info=True)
        raise CliError('the host agent of this host (ovirt-hosted-engine-hostd or vdsmd) is not '
                       'reachable on localhost:%d: %s; start it and retry'
                       % (port, _reason(e)))


def _reason(exc):
    text = str(exc)
    return text.split('; ')[0]


def api(client, method, **params):
    """Call a verb; connection problems become CliError, ServerError goes through."""
    try:
        return client.call(method, params)
    except (ConnectionFailed, CallTimeout) as e:
        log.info('%s failed', method, exc_info=True)
        raise CliError('the host agent (ovirt-hosted-engine-hostd or vdsmd) did not answer '
                       '%s: %s' % (method, _reason(e)))


def local_vm_stats(client, vm_id):
    """The host agent's VM.getStats entry of ``vm_id``, or None when it has no such VM."""
    try:
        return api(client, 'VM.getStats', vmID=vm_id)[0]
    except ServerError as e:
        if e.code == NO_SUCH_VM:
            return None
        raise CliError('the host agent cannot tell the state of the engine VM: %s' % e.message)


def vm_runs_here(stats):
    return stats is not None and stats.get('status') != 'Down'


# -- the broker ----------------------------------------------------------------------

def broker(timeout=30):
    return BrokerClient(timeout=timeout)


def broker_call(method, **params):
    """Call the local broker; BrokerUnavailable -> CliError naming ovirt-ha-broker."""
    with broker() as b:
        try:
            return b.call(method, **params)
        except BrokerUnavailable as e:
            log.info('broker %s failed', method, exc_info=True)
            raise CliError(str(e))


__all__ = ['ApiError', 'BrokerError', 'BrokerUnavailable', 'ServerError']
