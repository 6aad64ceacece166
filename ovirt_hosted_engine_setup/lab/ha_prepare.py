"""Make a lab ready for the HA services, without an engine.

Run inside lab host1:

    hosted-engine-lab exec host1 -- python -m ovirt_hosted_engine_setup.lab.ha_prepare \\
        [--hosts host1,host2] [--io-timeout N]

Steps (one line each, with the elapsed time):
1. the management bridge ``ovirtmgmt`` on eth0 of every listed host
   (Host.setupNetworks through each host's agent, at its lab address; the lab
   has one CA, so host1's client certificate is accepted by every agent);
2. the hosted-engine storage domain on the lab's shared storage directory
   (domain.prepare_domain over host1's agent, LOCALFS connection);
3. the lab guest's bootable disk copied into the VM volume;
4. the engine VM definition: the guest's domain XML (HostedEngine, 256 MiB,
   NIC on ovirtmgmt, address engine.lab.test, the VM lease, a VNC console) in
   vm.conf (xmlBase64);
5. hosted-engine.conf (host_id=K for hostK), vm.conf and broker.conf in every
   host's /etc directories, and the configuration volume's tar;
6. connectStorageServer on every other host (so its /rhev mount link exists).

Refuses, in one line, when the storage already holds a hosted-engine domain.
"""
import argparse
import json
import logging
import os
import sys
import time
import uuid
import xml.etree.ElementTree as ET

from ovirt_hosted_engine_setup import paths as he_paths
from ovirt_hosted_engine_setup import he_storage
from ovirt_hosted_engine_setup.he_storage import config_volume, domain, heconf, layout, volumes
from ovirt_hosted_engine_setup.lab import images
from ovirt_hosted_engine_setup.lab import paths as lab_paths

log = logging.getLogger('ovirt_hosted_engine_setup.lab.ha_prepare')

HOSTD_ROOT = '/var/lib/ovirt-hosted-engine-hostd'
HOSTD_PORT = 54321
BRIDGE = 'ovirtmgmt'
NIC = 'eth0'
GATEWAY = '192.168.222.1'
ENGINE_ADDRESS = '192.168.222.200'
ENGINE_FQDN = 'engine.lab.test'
VM_MEMORY_MIB = 256
VM_DISK_SIZE = 128 << 20
VM_CONF_RUN = '/run/ovirt-hosted-engine-ha/vm.conf'
HA_VERSION = '2.5.0'
ETC_HE = 'etc-ovirt-hosted-engine'
ETC_HA = 'etc-ovirt-hosted-engine-ha'

BROKER_CONF = """\
[email]
smtp-server = localhost
smtp-port = 25
source-email = root@localhost
destination-emails = root@localhost

[notify]
state_transition = maintenance|start|stop|migrate|up|down
"""


class PrepareError(Exception):
    """One line for the user."""


def host_index(name):
    digits = name[len(name.rstrip('0123456789')):]
    if not name.startswith('host') or not digits:
        raise PrepareError('%r is not a lab host name (host1, host2, ...)' % name)
    return int(digits)


def lab_state(lab_dir):
    try:
        with open(os.path.join(lab_dir, 'state.json')) as f:
            return json.load(f)
    except FileNotFoundError:
        raise PrepareError('no lab in %s: start one with hosted-engine-lab up' % lab_dir)
    except (OSError, ValueError) as e:
        raise PrepareError('cannot read the lab state in %s (%s): restart the lab' % (lab_dir, e))


def engine_xml(vm_id, disk_path, lease_lockspace, lease_key):
    """The engine VM's domain XML: the lab guest with its lease and a VNC console."""
    xml = images.domain_xml(
        'HostedEngine', vm_id, disk_path=disk_path, memory_mib=VM_MEMORY_MIB, bridge=BRIDGE,
        ip=images.kernel_ip(ENGINE_ADDRESS, 24, GATEWAY, 'engine'),
        lease={'lockspace': lease_lockspace, 'key': lease_key, 'path': disk_path + '.lease',
               'offset': 0})
    root = ET.fromstring(xml)
    devices = root.find('devices')
    graphics = ET.SubElement(devices, 'graphics', {'type': 'vnc', 'port': '-1',
                                                   'autoport': 'yes'})
    ET.SubElement(graphics, 'listen', {'type': 'address', 'address': '0.0.0.0'})
    return ET.tostring(root, encoding='unicode')


def ca_subject(path):
    """The CA certificate's subject as oVirt writes it: "O=..., CN=..." (quoted)."""
    from cryptography import x509
    try:
        with open(path, 'rb') as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError) as e:
        raise PrepareError('cannot read the lab CA certificate %s (%s): restart the lab'
                           % (path, e))
    return '"%s"' % ', '.join(reversed(cert.subject.rfc4514_string().split(',')))


def he_conf(storage_conf, host_id, vm_id, io_timeout):
    """hosted-engine.conf of lab host host_id."""
    conf = {k: v for k, v in storage_conf.items()}
    conf.update({
        'fqdn': ENGINE_FQDN,
        'vmid': vm_id,
        'conf': VM_CONF_RUN,
        'host_id': str(host_id),
        'console': 'vnc',
        'ca_cert': os.path.join(HOSTD_ROOT, 'pki', 'cacert.pem'),
        'ca_subject': ca_subject(os.path.join(HOSTD_ROOT, 'pki', 'cacert.pem')),
        'vdsm_use_ssl': 'true',
        'gateway': GATEWAY,
        'bridge': BRIDGE,
        'network_test': 'ping',
        'tcp_t_address': '',
        'tcp_t_port': '',
        'sanlock_io_timeout': str(io_timeout),
    })
    return conf


def fhanswers(conf):
    """The answer file kept on the configuration volume (otopi format)."""
    keys = [('OVEHOSTED_STORAGE/domainType', conf['domainType']),
            ('OVEHOSTED_STORAGE/storageDomainConnection', conf['storage']),
            ('OVEHOSTED_STORAGE/sdUUID', conf['sdUUID']),
            ('OVEHOSTED_STORAGE/spUUID', conf['spUUID']),
            ('OVEHOSTED_STORAGE/connectionUUID', conf['connectionUUID']),
            ('OVEHOSTED_NETWORK/bridgeName', BRIDGE),
            ('OVEHOSTED_NETWORK/gateway', GATEWAY),
            ('OVEHOSTED_NETWORK/fqdn', ENGINE_FQDN),
            ('OVEHOSTED_VM/vmUUID', conf['vmid']),
            ('OVEHOSTED_VM/vmMemSizeMB', VM_MEMORY_MIB)]
    return '[environment:default]\n' + ''.join('%s=str:%s\n' % (k, v) if not isinstance(v, int)
                                               else '%s=int:%d\n' % (k, v) for k, v in keys)


class Prepare:
    def __init__(self, lab_dir, hosts, io_timeout, out=sys.stdout):
        self.lab_dir = lab_dir
        self.hosts = hosts
        self.io_timeout = io_timeout
        self.out = out
        self.t0 = time.monotonic()
        self.clients = {}
        self._last_wait = {}

    def say(self, text):
        self.out.write('[%6.1f s] %s\n' % (time.monotonic() - self.t0, text))
        self.out.flush()

    def progress(self, what, elapsed, limit):
        # one line when a wait starts, then every 10 s
        last = self._last_wait.get(what)
        if last is None or elapsed - last >= 10:
            self._last_wait[what] = elapsed
            self.say('  waiting for %s (%.0f s%s)' % (what, elapsed,
                                                      ', limit %.0f s' % limit if limit else ''))

    def client(self, name, address):
        from ovirt_hosted_engine_setup.api.client import Client
        from ovirt_hosted_engine_setup.api.errors import ConnectionFailed
        try:
            c = Client(address, HOSTD_PORT, hostd_root=HOSTD_ROOT, timeout=120,
                       connect_timeout=20)
        except ConnectionFailed as e:
            raise PrepareError('%s: %s' % (name, e))
        self.clients[name] = c
        return c

    def close(self):
        for c in self.clients.values():
            c.close()

    def run(self):
        state = lab_state(self.lab_dir)
        lab_hosts = state.get('hosts', {})
        me = os.environ.get('OVIRT_HE_LAB_HOST')
        if me != 'host1':
            raise PrepareError('run this inside lab host1: hosted-engine-lab exec host1 -- '
                               'python -m ovirt_hosted_engine_setup.lab.ha_prepare')
        hosts = self.hosts or sorted(lab_hosts, key=host_index)
        for h in hosts:
            if h not in lab_hosts:
                raise PrepareError('%s is not a host of the lab in %s (hosts: %s)' % (
                    h, self.lab_dir, ', '.join(sorted(lab_hosts, key=host_index))))
            host_index(h)
        if 'host1' not in hosts:
            raise PrepareError('the hosts must include host1 (where the storage is prepared)')
        storage = state.get('storage') or os.path.join(self.lab_dir, 'storage')
        existing = existing_domain(storage)
        if existing:
            raise PrepareError('the storage %s already holds a hosted-engine storage domain '
                               '(%s): the lab is prepared; restart the lab '
                               '(hosted-engine-lab down, up) to start over' % (storage, existing))
        clients = {h: self.client(h, lab_hosts[h]['address']) for h in hosts}
        c1 = clients['host1']

        for h in hosts:
            caps = clients[h].call('Host.getCapabilities')
            if BRIDGE in (caps.get('bridges') or {}):
                self.say('%s: bridge %s already on %s' % (h, BRIDGE, NIC))
                continue
            clients[h].call('Host.setupNetworks',
                            networks={BRIDGE: {'nic': NIC, 'bridged': True, 'bootproto': 'none',
                                               'defaultRoute': True}},
                            bondings={}, options={})
            clients[h].call('Host.setSafeNetworkConfig')
            self.say('%s: bridge %s on %s' % (h, BRIDGE, NIC))

        self.say('preparing the hosted-engine storage domain on %s' % storage)
        sconf = domain.prepare_domain(c1, {
            'storage': storage, 'domain_type': 'localfs', 'vm_disk_size': VM_DISK_SIZE,
            'host_id': 1, 'io_timeout': self.io_timeout}, self.progress)
        self.say('storage domain %s ready: VM disk, metadata, hosted-engine lockspace '
                 '(io timeout %d s), configuration volume' % (sconf['sdUUID'], self.io_timeout))

        vols = layout.volume_paths(sconf)
        volumes.write_vm_disk(images.guest_image().disk, vols['vm'])
        self.say('lab guest disk copied into the VM volume %s' % sconf['vm_disk_vol_id'])

        vm_id = str(uuid.uuid4())
        xml = engine_xml(vm_id, vols['vm'], sconf['sdUUID'], sconf['vm_disk_vol_id'])
        vmconf = heconf.make_vm_conf(vm_id, xml, mem_mb=VM_MEMORY_MIB, vcpus=1)
        vm_text = heconf.render_vm_conf(vmconf)
        self.say('engine VM %s defined (HostedEngine, %d MiB, %s on %s)'
                 % (vm_id, VM_MEMORY_MIB, ENGINE_FQDN, BRIDGE))

        storage_keys = {k: v for k, v in sconf.items()}
        for h in hosts:
            conf = he_conf(storage_keys, host_index(h), vm_id, self.io_timeout)
            hd = os.path.join(self.lab_dir, 'hosts', h)
            heconf.write(os.path.join(hd, ETC_HE, os.path.basename(he_paths.HOSTED_ENGINE_CONF)),
                         heconf.render(conf))
            heconf.write(os.path.join(hd, ETC_HE, os.path.basename(he_paths.VM_CONF)), vm_text)
            heconf.write(os.path.join(hd, ETC_HA, os.path.basename(he_paths.BROKER_CONF)),
                         BROKER_CONF)
        self.say('hosted-engine.conf, vm.conf and broker.conf written on %s' % ', '.join(hosts))

        first = he_conf(storage_keys, 1, vm_id, self.io_timeout)
        cv = config_volume.ConfigVolume(vols['conf'])
        cv.write({'version': HA_VERSION + '\n', 'fhanswers.conf': fhanswers(first),
                  'hosted-engine.conf': heconf.render(first), 'broker.conf': BROKER_CONF,
                  'vm.conf': vm_text}, cv.checksum())
        self.say('configuration volume %s written' % sconf['conf_volume_UUID'])

        conn = layout.connection_params(first, sconf['connectionUUID'])
        for h in hosts:
            if h == 'host1':
                continue
            res = clients[h].call('StoragePool.connectStorageServer',
                                  storagepoolID=layout.BLANK_UUID,
                                  domainType=layout.DOMAIN_TYPES['localfs'],
                                  connectionParams=[conn])
            if res[0].get('status') != 0:
                raise PrepareError('%s: connecting the shared storage failed (code %s: %s)' % (
                    h, res[0].get('status'), res[0].get('message', '')))
            self.say('%s: shared storage connected' % h)
        self.say('done: the lab is ready for the hosted-engine HA services (ovirt-ha-broker, '
                 'ovirt-ha-agent)')
        return sconf, vm_id


def existing_domain(storage):
    """sdUUID of a hosted-engine storage domain in the lab's storage directory, or None."""
    try:
        names = sorted(os.listdir(storage))
    except FileNotFoundError:
        raise PrepareError('the shared storage directory %s is missing: restart the lab'
                           % storage)
    for name in names:
        try:
            with open(os.path.join(storage, name, 'dom_md', 'metadata')) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        if 'DESCRIPTION=%s' % layout.DEFAULT_SD_NAME in lines:
            return name
    return None


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog='python -m ovirt_hosted_engine_setup.lab.ha_prepare',
        description='Prepare a lab for the hosted-engine HA services (run inside host1).')
    p.add_argument('--hosts', default='',
                   help='comma separated lab hosts (default: every host of the lab)')
    p.add_argument('--io-timeout', type=int, default=10,
                   help='sanlock io timeout of the hosted-engine lockspace (default 10 s)')
    p.add_argument('--lab-dir', default=None, help='the lab directory (default $OVIRT_HE_LAB_DIR)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not 1 <= args.io_timeout <= 60:
        sys.stderr.write('ha-prepare: --io-timeout must be 1..60 seconds\n')
        return 2
    lab_dir = args.lab_dir or lab_paths.lab_dir()
    log_path = os.path.join('/var/log', 'lab', 'ha-prepare.log')
    try:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        logging.basicConfig(filename=log_path, level=logging.DEBUG,
                            format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    except OSError:
        pass
    hosts = [h.strip() for h in args.hosts.split(',') if h.strip()]
    prep = Prepare(lab_dir, hosts, args.io_timeout)
    try:
        prep.run()
        return 0
    except (PrepareError, he_storage.StorageError, heconf.ConfError,
            images.ImageMissing) as e:
        log.error('%s', e)
        sys.stderr.write('ha-prepare: %s\n' % e)
        return 1
    except Exception as e:
        log.exception('ha-prepare failed')
        sys.stderr.write('ha-prepare: %s: %s (details in %s)\n' % (type(e).__name__, e,
                                                                   log_path))
        return 1
    finally:
        prep.close()


if __name__ == '__main__':
    sys.exit(main())
