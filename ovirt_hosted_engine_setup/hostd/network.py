"""Network verbs: the management bridge (ovirtmgmt by default).

Host.setupNetworks creates a Linux bridge on a NIC (optionally on a VLAN of
it) and moves the IPv4 configuration onto the bridge, or removes a bridge and
gives the NIC its addresses back. With options.connectivityCheck the change
is rolled back unless a client reaches the agent again within
connectivityTimeout seconds (as VDSM does). The running configuration is kept
in <root>/network/running.json; Host.setSafeNetworkConfig copies it to
safe.json, and at daemon start the networks of safe.json whose bridge is
missing are set up again.
"""
import copy
import ipaddress
import json
import logging
import os
import subprocess
import threading
import time

from ..api.schema import error_code
from .api_base import Backend, VdsmError, verb
from .host import ip_json, ipv4_of

log = logging.getLogger(__name__)

DEFAULT_CONNECTIVITY_TIMEOUT = 120
# VDSM's network error codes (the API schema's errors of these names).
ERR_LOST_CONNECTION = error_code('ERR_LOST_CONNECTION')
ERR_BAD_PARAMS = error_code('ERR_BAD_PARAMS')
ERR_BAD_ADDR = error_code('ERR_BAD_ADDR')
ERR_BAD_NIC = error_code('ERR_BAD_NIC')
ERR_USED_NIC = error_code('ERR_USED_NIC')
ERR_BAD_BONDING = error_code('ERR_BAD_BONDING')
ERR_BAD_VLAN = error_code('ERR_BAD_VLAN')
ERR_BAD_BRIDGE = error_code('ERR_BAD_BRIDGE')
ERR_FAILED_IFUP = error_code('ERR_FAILED_IFUP')


def _ip(*args):
    r = subprocess.run(['ip'] + list(args), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise VdsmError(ERR_FAILED_IFUP, 'ip %s failed: %s' % (' '.join(args),
                                                              r.stderr.strip()))
    return r.stdout


def _truthy(v):
    return v is True or (isinstance(v, str) and v.lower() in ('true', 'yes', '1'))


def _link(name):
    for link in ip_json('addr', 'show'):
        if link['ifname'] == name:
            return link
    return None


def _routes(dev):
    try:
        return [r for r in ip_json('-4', 'route', 'show', 'dev', dev)
                if r.get('gateway') or r.get('dst') == 'default']
    except subprocess.CalledProcessError:
        return []


class NetworkBackend(Backend):
    """Host.setupNetworks and Host.setSafeNetworkConfig."""

    def __init__(self, ctx, last_request=None):
        super().__init__(ctx)
        self.dir = os.path.join(ctx.root_dir, 'network')
        self.running_path = os.path.join(self.dir, 'running.json')
        self.safe_path = os.path.join(self.dir, 'safe.json')
        # last_request(): monotonic time the server last received a request.
        self.last_request = last_request or (lambda: 0.0)
        self._lock = threading.Lock()
        self._running = {}    # net -> {'attrs': ..., 'nic_config': saved NIC config}

    # -- persistence -----------------------------------------------------
    def _load(self, path):
        try:
            with open(path, encoding='utf-8') as f:
                return json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.error('cannot read %s: %s; ignoring it', path, e)
            return {}

    def _save(self, path, data):
        os.makedirs(self.dir, exist_ok=True)
        tmp = path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)

    def running_networks(self):
        with self._lock:
            return {n: copy.deepcopy(v['attrs']) for n, v in self._running.items()}

    def recover(self):
        self._running = self._load(self.running_path)
        safe = self._load(self.safe_path)
        for net, entry in safe.items():
            if _link(net) is None:
                log.info('restoring network %s from the safe configuration', net)
                try:
                    self._running[net] = entry
                    self._add(net, entry['attrs'], entry.get('nic_config'))
                except (VdsmError, OSError, subprocess.SubprocessError) as e:
                    log.error('cannot restore network %s: %s', net, e)
        gone = [n for n in self._running if _link(n) is None]
        for n in gone:
            log.info('network %s is gone and not in the safe configuration: forgetting it', n)
            del self._running[n]
        self._save(self.running_path, self._running)

    # -- verbs -----------------------------------------------------------
    @verb('Host.setSafeNetworkConfig')
    def setSafeNetworkConfig(self):
        with self._lock:
            self._save(self.safe_path, self._running)
        log.info('network configuration saved as safe: %s', ', '.join(self._running) or 'none')
        return True

    @verb('Host.setupNetworks')
    def setupNetworks(self, networks, bondings, options):
        for name, attrs in bondings.items():
            if not _truthy((attrs or {}).get('remove')):
                raise VdsmError(ERR_BAD_BONDING, 'bonding %s: bonds are not supported by this '
                                'host agent; attach the network to a NIC' % name)
        for name, attrs in networks.items():
            self._check(name, attrs or {})
        check = _truthy(options.get('connectivityCheck', False))
        try:
            timeout = float(options.get('connectivityTimeout', DEFAULT_CONNECTIVITY_TIMEOUT))
        except (TypeError, ValueError):
            raise VdsmError(ERR_BAD_PARAMS, 'options.connectivityTimeout must be a number of '
                            'seconds')
        with self._lock:
            before = copy.deepcopy(self._running)
            done = []
            try:
                for name, attrs in networks.items():
                    attrs = attrs or {}
                    if _truthy(attrs.get('remove')):
                        self._remove(name)
                        self._running.pop(name, None)
                    else:
                        if name in self._running or _link(name) is not None:
                            self._remove(name)
                        prev = before.get(name, {}).get('nic_config')
                        self._running[name] = {'attrs': attrs,
                                               'nic_config': prev or self._snapshot(attrs)}
                        self._add(name, attrs, self._running[name]['nic_config'])
                    done.append(name)
                if check:
                    applied = time.monotonic()
                    deadline = applied + timeout
                    while time.monotonic() < deadline:
                        if self.last_request() > applied:
                            break
                        time.sleep(0.2)
                    else:
                        raise VdsmError(ERR_LOST_CONNECTION,
                                        'connectivity check failed: no client reached the host '
                                        'agent within %g s; the network change was rolled back'
                                        % timeout)
            except Exception as e:
                log.warning('setupNetworks failed (%s); rolling back %s', e, done or 'nothing')
                self._rollback(done + [n for n in networks if n not in done], before)
                raise
            self._save(self.running_path, self._running)
        return True

    # -- implementation --------------------------------------------------
    @staticmethod
    def _check(name, attrs):
        if not name or len(name) > 15 or '/' in name or ' ' in name:
            raise VdsmError(ERR_BAD_BRIDGE, 'invalid network name %r: at most 15 characters, '
                            'no "/" or spaces' % name)
        if _truthy(attrs.get('remove')):
            return
        if attrs.get('bonding'):
            raise VdsmError(ERR_BAD_BONDING, 'network %s: bonds are not supported by this host '
                            'agent; give a nic' % name)
        nic = attrs.get('nic')
        if not nic:
            raise VdsmError(ERR_BAD_NIC, 'network %s needs "nic"' % name)
        if _link(nic) is None:
            raise VdsmError(ERR_BAD_NIC, 'network %s: no such NIC %s' % (name, nic))
        if 'bridged' in attrs and not _truthy(attrs['bridged']):
            raise VdsmError(ERR_BAD_PARAMS, 'network %s: only bridged networks are supported '
                            'by this host agent' % name)
        if attrs.get('vlan') not in (None, ''):
            try:
                vid = int(attrs['vlan'])
            except (TypeError, ValueError):
                vid = -1
            if not 0 < vid < 4095:
                raise VdsmError(ERR_BAD_VLAN, 'network %s: vlan must be 1..4094' % name)
        bootproto = attrs.get('bootproto', 'none') or 'none'
        if bootproto not in ('none', 'static'):
            raise VdsmError(ERR_BAD_PARAMS, 'network %s: bootproto %s is not supported by this '
                            'host agent; use none with ipaddr/netmask' % (name, bootproto))
        if attrs.get('ipaddr'):
            try:
                NetworkBackend._iface(attrs)
            except ValueError as e:
                raise VdsmError(ERR_BAD_ADDR, 'network %s: bad address: %s' % (name, e))
            if attrs.get('gateway'):
                try:
                    ipaddress.IPv4Address(attrs['gateway'])
                except ValueError as e:
                    raise VdsmError(ERR_BAD_ADDR, 'network %s: bad gateway: %s' % (name, e))

    @staticmethod
    def _iface(attrs):
        if attrs.get('prefix') not in (None, ''):
            return ipaddress.IPv4Interface('%s/%s' % (attrs['ipaddr'], attrs['prefix']))
        return ipaddress.IPv4Interface('%s/%s' % (attrs['ipaddr'],
                                                  attrs.get('netmask') or '255.255.255.0'))

    @staticmethod
    def _port_of(attrs):
        nic = attrs['nic']
        if attrs.get('vlan') not in (None, ''):
            return '%s.%d' % (nic, int(attrs['vlan']))
        return nic

    def _snapshot(self, attrs):
        """The IPv4 configuration of the network's NIC (port) now."""
        nic = attrs['nic']
        port = self._port_of(attrs)
        link = _link(port) or _link(nic)
        return {'nic': nic, 'port': port,
                'addrs': ['%s/%d' % a for a in ipv4_of(link)] if link else [],
                'routes': [{'dst': r.get('dst'), 'gateway': r.get('gateway')}
                           for r in _routes(port if _link(port) else nic)]}

    def _add(self, name, attrs, saved=None):
        """Create bridge name on the NIC, moving the NIC's IPv4 config (saved) to it."""
        nic = attrs['nic']
        port = self._port_of(attrs)
        if saved is None:
            saved = self._snapshot(attrs)
        if port != nic and _link(port) is None:
            _ip('link', 'add', 'link', nic, 'name', port, 'type', 'vlan', 'id',
                str(int(attrs['vlan'])))
        _ip('link', 'add', 'name', name, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0')
        if attrs.get('mtu'):
            _ip('link', 'set', 'dev', name, 'mtu', str(int(attrs['mtu'])))
        # Addresses: the given ones, else the port's current ones move to the bridge.
        if attrs.get('ipaddr'):
            addrs = [str(self._iface(attrs))]
        else:
            addrs = list(saved['addrs'])
        gateway = attrs.get('gateway') or next(
            (r['gateway'] for r in saved['routes'] if r.get('dst') == 'default'
             and r.get('gateway')), None)
        _ip('addr', 'flush', 'dev', port, 'scope', 'global')
        _ip('link', 'set', 'dev', port, 'master', name)
        _ip('link', 'set', 'dev', port, 'up')
        if port != nic:
            _ip('link', 'set', 'dev', nic, 'up')
        _ip('link', 'set', 'dev', name, 'up')
        for a in addrs:
            _ip('addr', 'add', a, 'dev', name)
        default_route = attrs.get('defaultRoute')
        if gateway and (default_route is None or _truthy(default_route)):
            _ip('route', 'replace', 'default', 'via', gateway, 'dev', name)
        log.info('network %s: bridge on %s with %s%s', name, port, ', '.join(addrs) or 'no address',
                 ' via %s' % gateway if gateway else '')

    def _remove(self, name):
        """Remove bridge name and give its NIC the saved configuration back."""
        entry = self._running.get(name)
        link = _link(name)
        if link is None and entry is None:
            raise VdsmError(ERR_BAD_BRIDGE, 'network %s does not exist' % name)
        if link is not None:
            _ip('link', 'del', 'dev', name)
        if entry:
            self._restore_nic(entry.get('nic_config') or {})
        log.info('network %s removed', name)

    @staticmethod
    def _restore_nic(saved):
        port, nic = saved.get('port'), saved.get('nic')
        if not nic or _link(nic) is None:
            return
        if port and port != nic and _link(port) is not None:
            subprocess.run(['ip', 'link', 'del', 'dev', port], capture_output=True, timeout=30)
        _ip('link', 'set', 'dev', nic, 'up')
        target = port if port and _link(port) is not None else nic
        for a in saved.get('addrs', []):
            subprocess.run(['ip', 'addr', 'replace', a, 'dev', target], capture_output=True,
                           timeout=30)
        for r in saved.get('routes', []):
            if r.get('gateway'):
                subprocess.run(['ip', 'route', 'replace', r.get('dst') or 'default', 'via',
                                r['gateway'], 'dev', target], capture_output=True, timeout=30)

    def _rollback(self, names, before):
        for name in names:
            try:
                if name in self._running or _link(name) is not None:
                    entry = self._running.get(name) or before.get(name)
                    if _link(name) is not None:
                        subprocess.run(['ip', 'link', 'del', 'dev', name], capture_output=True,
                                       timeout=30)
                    if entry:
                        self._restore_nic(entry.get('nic_config') or {})
                if name in before:
                    self._add(name, before[name]['attrs'], before[name].get('nic_config'))
            except Exception:
                log.exception('rollback of network %s failed', name)
        self._running = before
