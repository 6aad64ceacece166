"""ovirt-ha-agent: the hosted-engine HA agent daemon (docs/ha-services.md).

    ovirt-ha-agent [--conf F] [--agent-conf F] [--socket P] [--log-file F] [--interval S] [--debug]
                   [--host-agent HOST[:PORT]] [--hostd-root DIR] [--data-center-dir DIR]

Runs in the foreground (systemd Type=simple, the lab starts it the same way):
waits for the broker and the host agent, then runs the decision loop of
ha/agent_loop.py in the real host world (ha/agent_world.py) every --interval
seconds (30 s while the host agent or sanlock cannot be reached). SIGTERM or SIGINT: publish AgentStopped, exit 0.
A bad configuration gives one line on stderr naming the file and the fix, and
exit 1.
"""
import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import replace

from .. import logsetup, paths
from . import core
from ..he_storage import config_volume, heconf, layout
from .agent_loop import Agent
from .agent_world import HostWorld
from .broker_client import DEFAULT_SOCKET, BrokerClient
from .score import parse_score_config

log = logging.getLogger('ovirt_hosted_engine_setup.ha.agent')

PROG = 'ovirt-ha-agent'
DEFAULT_LOG = os.path.join(paths.HA_LOG_DIR, 'agent.log')
DEFAULT_VM_CONF = os.path.join(paths.HA_RUN_DIR, 'vm.conf')
DEFAULT_HOST_AGENT = 'localhost:54321'
REQUIRED = ('vmid', 'host_id')


class ConfigError(Exception):
    """A configuration problem: one line naming the file and the fix."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description='The hosted-engine HA agent: keeps the '
                                'engine VM running on the best host of the cluster.')
    p.add_argument('--conf', default=paths.HOSTED_ENGINE_CONF,
                   help='hosted-engine.conf (default %(default)s)')
    p.add_argument('--agent-conf', default=paths.AGENT_CONF,
                   help='score weights, INI section [score] (default %(default)s)')
    p.add_argument('--socket', default=DEFAULT_SOCKET,
                   help='the broker socket (default %(default)s)')
    p.add_argument('--log-file', default=DEFAULT_LOG, help='log file (default %(default)s)')
    p.add_argument('--interval', type=float, default=10.0,
                   help='seconds between loops (default %(default)s; 30 s while the host agent '
                        'or sanlock cannot be reached)')
    p.add_argument('--debug', action='store_true', help='log debug messages')
    p.add_argument('--host-agent', default=DEFAULT_HOST_AGENT,
                   help='the host agent API (VDSM or ovirt-hosted-engine-hostd), HOST[:PORT] '
                        '(default %(default)s)')
    p.add_argument('--hostd-root', default=None,
                   help='the embedded host agent\'s state directory holding the client '
                        'certificate (default $OVIRT_HOSTED_ENGINE_HOSTD_ROOT, its default, '
                        'then VDSM\'s certificates)')
    p.add_argument('--data-center-dir', default='/rhev/data-center',
                   help='where the host agent connects storage (default %(default)s)')
    a = p.parse_args(argv)
    if a.interval <= 0:
        p.error('--interval must be a positive number of seconds')
    return a


def setup_logging(path, debug=False):
    """The log file plus stderr (the daemon always runs in the foreground)."""
    try:
        logsetup.daemon_log(path, debug)
    except OSError as e:
        raise ConfigError('cannot write the log file %s: %s; give --log-file with a writable '
                          'path' % (path, e.strerror or e))


def load_conf(path):
    """hosted-engine.conf as a dict; ConfigError naming the file and the fix."""
    try:
        conf = heconf.load(path)
        heconf.required(conf, *REQUIRED)
    except heconf.ConfError as e:
        raise ConfigError(str(e).splitlines()[0])
    return conf


def load_score(path):
    """(ScoreConfig, warnings) from agent.conf; a missing file gives the defaults."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except FileNotFoundError:
        return parse_score_config('')
    except (OSError, UnicodeDecodeError) as e:
        cfg, _ = parse_score_config('')
        return cfg, ['cannot read %s (%s); using the default score weights'
                     % (path, getattr(e, 'strerror', None) or e)]
    return parse_score_config(text)


def parse_host_agent(text):
    host, sep, port = text.rpartition(':')
    if not sep or ']' in port:
        return text, 54321
    try:
        return host.strip('[]') or 'localhost', int(port)
    except ValueError:
        raise ConfigError('--host-agent %s: the port is not a number; give HOST[:PORT]' % text)


def config_volume_reader(conf, data_center_dir):
    """A callable returning vm.conf from the configuration volume, or None when the
    configuration does not name the volume."""
    keys = ('storage', 'sdUUID', 'conf_volume_UUID', 'conf_image_UUID')
    if not all(conf.get(k) for k in keys):
        return None

    def read():
        path = layout.volume_paths(conf, data_center_dir)['conf']
        files = config_volume.ConfigVolume(path).read()
        if 'vm.conf' not in files:
            raise ValueError('the configuration volume %s holds no vm.conf' % path)
        text = files['vm.conf']
        return text.decode('utf-8') if isinstance(text, bytes) else text
    return read


def build_agent(a, stop_event):
    conf = load_conf(a.conf)
    score_cfg, warnings = load_score(a.agent_conf)
    host, port = parse_host_agent(a.host_agent)
    vm_conf_path = conf.get('conf') or DEFAULT_VM_CONF
    cfg = replace(core.CoreConfig(), score=score_cfg)

    def host_agent():
        from ..api.client import Client
        return Client(host, port, hostd_root=a.hostd_root, timeout=60, connect_timeout=10,
                      lazy=True)

    world = HostWorld(broker=BrokerClient(a.socket, timeout=20), host_agent_factory=host_agent,
                      vm_conf_path=vm_conf_path, ha_conf_path=paths.HA_CONF,
                      config_volume=config_volume_reader(conf, a.data_center_dir),
                      stop_event=stop_event)
    agent = Agent(conf=conf, core_config=cfg, world=world, interval=a.interval)
    return agent, warnings


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()

    def on_signal(signum, frame):
        log.info('%s received: stopping', signal.Signals(signum).name)
        stop.set()

    try:
        setup_logging(a.log_file, a.debug)
        agent, warnings = build_agent(a, stop)
    except ConfigError as e:
        sys.stderr.write('%s: %s\n' % (PROG, e))
        return 1
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info('%s starting: host id %d, VM %s, broker %s, host agent %s, interval %.0f s',
             PROG, agent.host_id, agent.vmid, a.socket, a.host_agent, a.interval)
    for w in warnings:
        log.warning('%s', w)
    try:
        return agent.run()
    except Exception:
        log.exception('%s failed', PROG)
        sys.stderr.write('%s: internal error, see %s\n' % (PROG, a.log_file))
        return 1


if __name__ == '__main__':
    sys.exit(main())
