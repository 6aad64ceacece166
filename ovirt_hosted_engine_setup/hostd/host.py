"""Host verbs: capabilities, hardware information, statistics, liveness and
the hosted-engine HA maintenance flags."""
import json
import logging
import os
import platform
import socket
import subprocess
import threading
import time
import uuid

from .. import local_ha_state
from .api_base import Backend, VdsmError, verb

log = logging.getLogger(__name__)

HA_CONF = '/var/lib/ovirt-hosted-engine-ha/ha.conf'
HOSTED_ENGINE_CONF = '/etc/ovirt-hosted-engine/hosted-engine.conf'
DMI_DIR = '/sys/class/dmi/id'
SUPPORTED_BLOCK_SIZE = {'FCP': [512], 'GLUSTERFS': [0, 512, 4096], 'ISCSI': [512],
                        'LOCALFS': [0, 512, 4096], 'NFS': [512], 'POSIXFS': [512]}
CLUSTER_LEVELS = ['4.2', '4.3', '4.4', '4.5', '4.6', '4.7']
# Link kinds that are not NICs in VDSM's sense.
_NOT_NIC_KINDS = {'bridge', 'bond', 'vlan', 'tun', 'dummy_ifb', 'ifb', 'macvtap', 'ipip',
                  'sit', 'gre', 'gretap', 'ip6tnl', 'vxlan', 'wireguard', 'team', 'openvswitch'}


def software_version():
    try:
        from importlib.metadata import version
        return version('ovirt-hosted-engine-setup')
    except Exception:
        return '0.1.0'


def ip_json(*args):
    """The parsed output of `ip -j <args>` ([] when it prints nothing)."""
    out = subprocess.run(['ip', '-j'] + list(args), capture_output=True, text=True, check=True,
                         timeout=30).stdout.strip()
    return json.loads(out) if out else []


def links():
    """{ifname: link dict of `ip -j -d addr show`}."""
    return {link['ifname']: link for link in ip_json('-d', 'addr', 'show')}


def _kind(link):
    return (link.get('linkinfo') or {}).get('info_kind')


def ipv4_of(link):
    """[(address, prefixlen)] of a link's global IPv4 addresses."""
    return [(a['local'], a['prefixlen']) for a in link.get('addr_info', [])
            if a.get('family') == 'inet' and a.get('scope', 'global') == 'global']


def _prefix_to_netmask(prefix):
    bits = (0xffffffff << (32 - int(prefix))) & 0xffffffff
    return socket.inet_ntoa(bits.to_bytes(4, 'big'))


def _default_gateway(dev):
    try:
        for r in ip_json('-4', 'route', 'show', 'default', 'dev', dev):
            if r.get('gateway'):
                return r['gateway']
    except (subprocess.SubprocessError, ValueError, OSError):
        pass
    return ''


def addr_info(link):
    addrs = ipv4_of(link)
    first = addrs[0] if addrs else ('', None)
    return {
        'addr': first[0],
        'netmask': _prefix_to_netmask(first[1]) if first[1] is not None else '',
        'ipv4addrs': ['%s/%d' % a for a in addrs],
        'ipv6addrs': ['%s/%d' % (a['local'], a['prefixlen']) for a in link.get('addr_info', [])
                      if a.get('family') == 'inet6' and a.get('scope') == 'global'],
        'mtu': str(link.get('mtu', 1500)),
        'gateway': _default_gateway(link['ifname']) if addrs else '',
    }


def _read(path, default=''):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.read().strip()
    except OSError:
        return default


def _cpuinfo():
    procs = []
    cur = {}
    for line in _read('/proc/cpuinfo').splitlines():
        if not line.strip():
            if cur:
                procs.append(cur)
            cur = {}
            continue
        k, _, v = line.partition(':')
        cur[k.strip()] = v.strip()
    if cur:
        procs.append(cur)
    return procs


def _meminfo():
    out = {}
    for line in _read('/proc/meminfo').splitlines():
        k, _, v = line.partition(':')
        parts = v.split()
        if parts:
            out[k] = int(parts[0])   # kB
    return out


def _cpu_times():
    line = _read('/proc/stat').splitlines()[0].split()
    vals = [int(x) for x in line[1:]]
    vals += [0] * (8 - len(vals))
    user, nice, system, idle, iowait, irq, softirq, steal = vals[:8]
    return {'user': user + nice, 'sys': system + irq + softirq, 'idle': idle + iowait,
            'total': user + nice + system + idle + iowait + irq + softirq + steal}


def read_ha_conf(path):
    """{key: value} of an ha.conf file ({} when missing)."""
    out = {}
    for line in _read(path).splitlines():
        line = line.strip()
        if line and not line.startswith('#') and '=' in line:
            k, _, v = line.partition('=')
            out[k.strip()] = v.strip()
    return out


def write_ha_conf(path, updates):
    """Set keys in ha.conf, keeping the other lines; atomic replace."""
    lines = _read(path).splitlines() if os.path.exists(path) else []
    done = set()
    out = []
    for line in lines:
        k = line.split('=', 1)[0].strip() if '=' in line and not line.lstrip().startswith('#') \
            else None
        if k in updates:
            out.append('%s=%s' % (k, updates[k]))
            done.add(k)
        else:
            out.append(line)
    for k, v in updates.items():
        if k not in done:
            out.append('%s=%s' % (k, v))
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write('\n'.join(out) + '\n')
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


class HostBackend(Backend):
    """Host.getCapabilities, getHardwareInfo, getStats, ping2, setHaMaintenanceMode."""

    def __init__(self, ctx, ha_conf=HA_CONF, hosted_engine_conf=HOSTED_ENGINE_CONF,
                 ha_state=local_ha_state.PATH):
        super().__init__(ctx)
        self.ha_conf = ha_conf
        self.hosted_engine_conf = hosted_engine_conf
        self.ha_state = ha_state
        self.started = time.time()
        self._lock = threading.Lock()
        self._cpu_prev = _cpu_times()
        self._cpu_prev_time = time.monotonic()
        self._net_prev = ({}, time.monotonic())

    # -- Host.ping2 ------------------------------------------------------
    @verb('Host.ping2')
    def ping2(self):
        return True

    # -- Host.getCapabilities --------------------------------------------
    def host_uuid(self):
        """This host's UUID: <root>/host-uuid when configured (as VDSM's
        /etc/vdsm/vdsm.id: hosts that share one DMI UUID get distinct ones), else the DMI
        product UUID, else machine-id."""
        override = _read(os.path.join(self.ctx.root_dir, 'host-uuid'))
        if override:
            return override
        dmi = _read(os.path.join(DMI_DIR, 'product_uuid'))
        if dmi:
            return dmi.lower()
        mid = _read('/etc/machine-id')
        if len(mid) == 32:
            return str(uuid.UUID(mid))
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, socket.gethostname()))

    @verb('Host.getCapabilities')
    def getCapabilities(self):
        procs = _cpuinfo()
        first = procs[0] if procs else {}
        sockets = {p.get('physical id', '0') for p in procs} or {'0'}
        cores = {(p.get('physical id', '0'), p.get('core id', str(i))) for i, p in enumerate(procs)}
        mem = _meminfo()
        net = self._network_caps()
        osr = {}
        for line in _read('/etc/os-release').splitlines():
            k, _, v = line.partition('=')
            osr[k] = v.strip('"')
        version = software_version()
        caps = {
            'cpuModel': first.get('model name', platform.processor() or platform.machine()),
            'cpuFlags': ','.join(first.get('flags', '').split()),
            'cpuCores': str(len(cores)),
            'cpuSockets': str(len(sockets)),
            'cpuThreads': str(len(procs)),
            'cpuSpeed': first.get('cpu MHz', ''),
            'onlineCpus': ','.join(p.get('processor', str(i)) for i, p in enumerate(procs)),
            'memSize': str(mem.get('MemTotal', 0) // 1024),
            'kvmEnabled': 'true' if os.path.exists('/dev/kvm') else 'false',
            'software_version': version,
            'software_revision': '0',
            'version_name': 'ovirt-hosted-engine-hostd',
            'vmTypes': ['kvm'],
            'uuid': self.host_uuid(),
            'hostname': socket.gethostname(),
            'hostedEngineDeployed': os.path.exists(self.hosted_engine_conf),
            'supported_block_size': dict(SUPPORTED_BLOCK_SIZE),
            'clusterLevels': list(CLUSTER_LEVELS),
            'supportedENGINEs': list(CLUSTER_LEVELS),
            'operatingSystem': {'name': osr.get('NAME', platform.system()),
                                'version': osr.get('VERSION_ID', ''),
                                'release': platform.release(),
                                'pretty_name': osr.get('PRETTY_NAME', '')},
            'kernelArgs': _read('/proc/cmdline'),
            'ISCSIInitiatorName': _read('/etc/iscsi/initiatorname.iscsi').partition('=')[2],
            'HBAInventory': {'iSCSI': [], 'FC': []},
            'hooks': {},
            'bondings': {},
            'vlans': net['vlans'],
            'nics': net['nics'],
            'bridges': net['bridges'],
            'networks': net['networks'],
            'packages2': {'ovirt-hosted-engine-hostd': {'version': version, 'release': '0'}},
        }
        return caps

    def _managed_networks(self):
        from .network import NetworkBackend
        nb = self.ctx.backend(NetworkBackend)
        return nb.running_networks() if nb else {}

    def _network_caps(self):
        all_links = links()
        nics, bridges, vlans = {}, {}, {}
        for name, link in all_links.items():
            kind = _kind(link)
            if name == 'lo' or link.get('link_type') != 'ether':
                continue
            info = addr_info(link)
            if kind == 'bridge':
                ports = [n for n, lk in all_links.items() if lk.get('master') == name]
                info.update({'ports': ports, 'stp': 'off', 'opts': {}})
                bridges[name] = info
            elif kind == 'vlan':
                li = (link.get('linkinfo') or {}).get('info_data') or {}
                info.update({'iface': link.get('link', ''), 'vlanid': li.get('id')})
                vlans[name] = info
            elif kind not in _NOT_NIC_KINDS and not name.startswith('vnet'):
                info.update({'hwaddr': link.get('address', ''),
                             'speed': self._speed(name)})
                nics[name] = info
        networks = {}
        for net, attrs in self._managed_networks().items():
            entry = {'bridged': attrs.get('bridged', True), 'iface': net,
                     'southbound': attrs.get('nic', ''), 'switch': 'legacy'}
            if net in bridges:
                entry.update({k: bridges[net][k] for k in
                              ('addr', 'netmask', 'gateway', 'ipv4addrs', 'ipv6addrs', 'mtu',
                               'ports')})
            entry['bootproto4'] = attrs.get('bootproto', 'none')
            entry['dhcpv4'] = attrs.get('bootproto') == 'dhcp'
            networks[net] = entry
        return {'nics': nics, 'bridges': bridges, 'vlans': vlans, 'networks': networks}

    @staticmethod
    def _speed(name):
        try:
            return int(_read('/sys/class/net/%s/speed' % name, '0') or 0)
        except ValueError:
            return 0

    # -- Host.getHardwareInfo --------------------------------------------
    @verb('Host.getHardwareInfo')
    def getHardwareInfo(self):
        fields = {'systemManufacturer': 'sys_vendor', 'systemProductName': 'product_name',
                  'systemVersion': 'product_version', 'systemSerialNumber': 'product_serial',
                  'systemUUID': 'product_uuid', 'systemFamily': 'product_family'}
        out = {}
        for key, fname in fields.items():
            value = _read(os.path.join(DMI_DIR, fname))
            if value:
                out[key] = value
        if 'systemUUID' not in out:
            out['systemUUID'] = self.host_uuid()
        return out

    # -- Host.getStats ---------------------------------------------------
    def _cpu_stats(self):
        with self._lock:
            now_t = time.monotonic()
            if now_t - self._cpu_prev_time < 0.05:
                time.sleep(0.1)
            cur = _cpu_times()
            prev, self._cpu_prev = self._cpu_prev, cur
            self._cpu_prev_time = time.monotonic()
        total = max(1, cur['total'] - prev['total'])
        return {k: round(100.0 * (cur[src] - prev[src]) / total, 2)
                for k, src in (('cpuUser', 'user'), ('cpuSys', 'sys'), ('cpuIdle', 'idle'))}

    def _net_stats(self):
        now = time.monotonic()
        prev, prev_t = self._net_prev
        out, counters = {}, {}
        for link in ip_json('-s', 'link', 'show'):
            name = link['ifname']
            if name == 'lo':
                continue
            st = link.get('stats64') or link.get('stats') or {}
            rx, tx = st.get('rx', {}).get('bytes', 0), st.get('tx', {}).get('bytes', 0)
            counters[name] = (rx, tx)
            dt = max(1e-3, now - prev_t)
            p = prev.get(name, (rx, tx))
            flags = link.get('flags', [])
            out[name] = {'name': name,
                         'state': 'up' if 'UP' in flags and 'LOWER_UP' in flags else 'down',
                         'operstate': link.get('operstate', 'UNKNOWN').lower(),
                         'speed': str(self._speed(name)), 'mtu': str(link.get('mtu', '')),
                         'rx': str(rx), 'tx': str(tx),
                         'rxRate': '%.2f' % ((rx - p[0]) / dt),
                         'txRate': '%.2f' % ((tx - p[1]) / dt),
                         'sampleTime': time.time()}
        self._net_prev = (counters, now)
        return out

    @verb('Host.getStats')
    def getStats(self):
        mem = _meminfo()
        stats = {
            'memFree': (mem.get('MemAvailable', mem.get('MemFree', 0))) // 1024,
            'memAvailable': (mem.get('MemAvailable', mem.get('MemFree', 0))) // 1024,
            'memUsed': round(100.0 - 100.0 * mem.get('MemAvailable', 0)
                             / max(1, mem.get('MemTotal', 1)), 2),
            'swapTotal': mem.get('SwapTotal', 0) // 1024,
            'swapFree': mem.get('SwapFree', 0) // 1024,
            'cpuLoad': _read('/proc/loadavg', '0').split()[0],
            'elapsedTime': int(time.time() - self.started),
            'bootTime': self._boot_time(),
            'network': self._net_stats(),
            'storageDomains': {},
            'vmCount': 0,
            'haStats': self._ha_stats(),
        }
        stats.update(self._cpu_stats())
        for b in self.ctx.backends:
            if b is self:
                continue
            try:
                extra = b.host_stats() or {}
            except Exception:
                log.exception('host_stats of %s failed', type(b).__name__)
                continue
            for k, v in extra.items():
                if isinstance(v, dict) and isinstance(stats.get(k), dict):
                    stats[k].update(v)
                else:
                    stats[k] = v
        return stats

    @staticmethod
    def _boot_time():
        for line in _read('/proc/stat').splitlines():
            if line.startswith('btime '):
                return int(line.split()[1])
        return 0

    def _ha_stats(self):
        conf = read_ha_conf(self.ha_conf)
        score, _state, active = local_ha_state.read(self.ha_state)
        return {'configured': os.path.exists(self.hosted_engine_conf),
                'active': active, 'score': score,
                'localMaintenance': conf.get('local_maintenance', 'False') == 'True',
                'globalMaintenance': conf.get('global_maintenance', 'False') == 'True'}

    # -- Host.setHaMaintenanceMode ---------------------------------------
    @verb('Host.setHaMaintenanceMode')
    def setHaMaintenanceMode(self, mode, enabled):
        # mode is GLOBAL or LOCAL (the schema's haMaintenanceMode, checked by the server)
        key = {'LOCAL': 'local_maintenance', 'GLOBAL': 'global_maintenance'}[mode]
        try:
            write_ha_conf(self.ha_conf, {key: 'True' if enabled else 'False'})
        except OSError as e:
            raise VdsmError('general', 'cannot write %s: %s' % (self.ha_conf, e.strerror or e))
        log.info("HA %s maintenance %s (%s)", mode, 'on' if enabled else 'off',
                 self.ha_conf)
        self.ctx.emit_event('|hosted-engine|maintenance|', {"mode": mode,
                                                            'enabled': bool(enabled)})
        return True
