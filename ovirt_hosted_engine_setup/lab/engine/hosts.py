"""The engine's side of its hosts: one monitor thread per host talking to the
host agent (VDSM's JSON-RPC over STOMP/TLS) with the engine's client certificate.

On add: connect, Host.getCapabilities and Host.ping2 -> status up; then every
interval Host.getStats and Host.getAllVmStats (the VMs the engine lists) and,
for each storage domain the host monitors, StorageDomain.getInfo (the storage
domains the engine lists, as oVirt imports the hosted-engine domain).
A host that cannot be reached is non_responsive until it answers again.
A host being installed over SSH (host_deploy) or whose install failed is not
polled; a host in maintenance is polled but stays in maintenance. Switching a
hosted-engine host to maintenance (or activating it) sets (clears) its HA local
maintenance with Host.setHaMaintenanceMode, as oVirt does.

Trust in the host agent's server certificate:
- the host was added with a CA bundle (<certificate><content>PEM</content>):
  the certificate must chain to it;
- otherwise trust on first use: the first contact records the certificate and
  its SHA-256 fingerprint (logged); later connections accept exactly that
  certificate and a changed one is refused (the host stays non_responsive).
"""
import logging
import os
import socket
import ssl
import threading
import time

from ovirt_hosted_engine_setup.api.client import Client
from ovirt_hosted_engine_setup.api.errors import ApiError, ServerError

from .pki import PkiError, certificate_subject, der_fingerprint, pem_fingerprint

log = logging.getLogger('engine.hosts')

DEFAULT_PORT = 54321
CONNECT_TIMEOUT = 10.0
CALL_TIMEOUT = 30.0

VM_STATUS = {
    'Up': 'up', 'Down': 'down', 'Paused': 'paused', 'WaitForLaunch': 'wait_for_launch',
    'Powering up': 'powering_up', 'Powering down': 'powering_down',
    'RebootInProgress': 'reboot_in_progress', 'Migration Source': 'migrating',
    'Migration Destination': 'migrating', 'Saving State': 'saving_state',
    'Restoring state': 'restoring_state',
}
DOMAIN_TYPE = {1: 'nfs', 2: 'fcp', 3: 'iscsi', 4: 'localfs', 5: 'cifs', 6: 'posixfs',
               7: 'glusterfs'}
DOMAIN_CLASS = {1: 'data', 2: 'iso', 3: 'export'}


class TrustError(Exception):
    pass


class _PinnedClient(Client):
    """A client whose trust anchor is the host agent's own certificate."""

    def _ssl_context(self):
        ctx = super()._ssl_context()
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return ctx


def fetch_server_certificate(address, port, certfile, keyfile, timeout=CONNECT_TIMEOUT):
    """The PEM certificate a TLS server presents (not verified: the caller pins it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(certfile, keyfile)
    with socket.create_connection((address, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=address) as s:
            der = s.getpeercert(binary_form=True)
    if not der:
        raise TrustError('the host agent at %s:%d presented no certificate' % (address, port))
    return ssl.DER_cert_to_PEM_cert(der)


class HostMonitor(threading.Thread):
    def __init__(self, engine, host_id, interval):
        super().__init__(name='host-monitor-%s' % host_id[:8], daemon=True)
        self.engine = engine
        self.state = engine.state
        self.host_id = host_id
        self.interval = interval
        self.stop_event = threading.Event()
        self.client = None
        self.dir = os.path.join(self.state.dir, 'hosts', host_id)

    # -- trust -----------------------------------------------------------

    def _trust_file(self, host):
        """The CA file the client verifies the agent with (CA bundle or pinned certificate)."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        port = int(host.get('port') or DEFAULT_PORT)
        if host.get('ca_bundle'):
            path = os.path.join(self.dir, 'ca-bundle.pem')
            if not os.path.exists(path):
                _write(path, host['ca_bundle'])
            return path, False
        path = os.path.join(self.dir, 'server-cert.pem')
        pinned = host.get('server_cert')
        if not pinned:
            pem = fetch_server_certificate(host['address'], port, self.state.pki.client_cert,
                                           self.state.pki.client_key)
            fp = pem_fingerprint(pem)
            log.warning('host %s (%s:%d): no CA bundle given at add time; trusting its '
                        'certificate on first use, SHA-256 fingerprint %s',
                        host['name'], host['address'], port, fp)
            try:
                subject = certificate_subject(pem)
            except PkiError:
                subject = None
            host = self.state.update('hosts', self.host_id, server_cert=pem,
                                     server_cert_fingerprint=fp, server_cert_subject=subject)
            if host is None:
                raise TrustError('host removed')
            pinned = pem
        if not os.path.exists(path) or _read(path) != pinned:
            _write(path, pinned)
        return path, True

    def _explain_handshake_failure(self, host, error):
        """A refused TLS handshake: say whether the agent's certificate changed."""
        if host.get('ca_bundle') or not host.get('server_cert'):
            return 'TLS handshake failed: %s' % error
        try:
            pem = fetch_server_certificate(host['address'], int(host.get('port') or DEFAULT_PORT),
                                           self.state.pki.client_cert, self.state.pki.client_key)
        except (OSError, ssl.SSLError, TrustError) as e:
            return 'TLS handshake failed: %s (%s)' % (error, e)
        fp = der_fingerprint(ssl.PEM_cert_to_DER_cert(pem))
        if fp != host.get('server_cert_fingerprint'):
            msg = ('the host agent certificate changed: fingerprint was %s, now %s; refusing '
                   'it. If the host was reinstalled, remove and add the host again'
                   % (host.get('server_cert_fingerprint'), fp))
            log.error('host %s: %s', host['name'], msg)
            return msg
        return 'TLS handshake failed: %s' % error

    # -- loop ------------------------------------------------------------

    def _connect(self, host):
        cafile, pinned = self._trust_file(host)
        cls = _PinnedClient if pinned else Client
        self.client = cls(host['address'], int(host.get('port') or DEFAULT_PORT),
                          cafile=cafile, certfile=self.state.pki.client_cert,
                          keyfile=self.state.pki.client_key, timeout=CALL_TIMEOUT,
                          connect_timeout=CONNECT_TIMEOUT, reconnect_interval=0, lazy=True)
        try:
            self.client.connect()
        except ApiError:
            self._close_client()
            raise
        caps = self.client.call('Host.getCapabilities')
        if self.client.call('Host.ping2') is not True:
            raise TrustError('Host.ping2 did not answer true')
        return caps

    def _close_client(self):
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # closing a broken connection
                log.debug('closing the client failed', exc_info=True)
            self.client = None

    def run(self):
        while not self.stop_event.is_set():
            host = self.state.get('hosts', self.host_id)
            if host is None:
                break
            if host.get('install_running') or host.get('status') == 'install_failed':
                self._close_client()      # nothing to poll until installed
                self.stop_event.wait(self.interval)
                continue
            try:
                if self.client is None:
                    caps = self._connect(host)
                    host = self._record_capabilities(host, caps)
                    log.info('host %s (%s) is %s', host['name'], host['address'],
                             host['status'])
                self._poll(host)
                self._ha_maintenance(host)
            except TrustError as e:
                self._non_responsive(host, str(e))
            except ApiError as e:
                text = str(e)
                if 'TLS' in text or 'certificate' in text:
                    text = self._explain_handshake_failure(host, text)
                self._non_responsive(host, text)
            except (OSError, ssl.SSLError) as e:
                self._non_responsive(host, 'cannot reach the host agent at %s:%s: %s'
                                     % (host['address'], host.get('port') or DEFAULT_PORT,
                                        getattr(e, 'strerror', None) or e))
            except Exception as e:
                log.exception('host %s: monitoring failed', host['name'])
                self._non_responsive(host, 'internal error: %s' % e)
            self.stop_event.wait(self.interval)
        self._close_client()

    def _non_responsive(self, host, reason):
        self._close_client()
        if self._status(host) == 'maintenance':
            log.debug('host %s (in maintenance) cannot be reached: %s', host['name'], reason)
            return
        if host.get('status') != 'non_responsive' or host.get('status_detail') != reason:
            log.warning('host %s (%s) is non responsive: %s', host['name'], host['address'],
                        reason)
        with self.state.lock:
            if self._status(host) in ('maintenance', 'install_failed') or \
                    (self.state.get('hosts', self.host_id) or {}).get('install_running'):
                return
            self.state.update('hosts', self.host_id, status='non_responsive',
                              status_detail=reason)
        self.engine.forget_vms_of(self.host_id)

    def _record_capabilities(self, host, caps):
        caps = caps or {}
        info = {
            'cpu_model': caps.get('cpuModel'), 'cpu_cores': caps.get('cpuCores'),
            'cpu_sockets': caps.get('cpuSockets'), 'cpu_threads': caps.get('cpuThreads'),
            'memory_mib': caps.get('memSize'), 'hardware_uuid': caps.get('uuid'),
            'software_version': caps.get('software_version'),
            'hosted_engine_deployed': caps.get('hostedEngineDeployed'),
            'kvm_enabled': caps.get('kvmEnabled'),
        }
        with self.state.lock:
            return self.state.update('hosts', self.host_id, capabilities=info,
                                     status=self._status(host, 'up'), status_detail=None)

    def _status(self, host, reachable=None):
        """The host's status now: maintenance stays maintenance; else reachable (if given)."""
        current = (self.state.get('hosts', self.host_id) or host).get('status')
        if current == 'maintenance' or reachable is None:
            return current
        return reachable

    def _ha_maintenance(self, host):
        """Apply a pending HA local maintenance change (deactivate/activate of the host)."""
        host = self.state.get('hosts', self.host_id) or {}
        want = host.get('ha_local_maintenance_request')
        if want is None:
            return
        if (host.get('ha_stats') or {}).get('configured'):
            self.client.call('Host.setHaMaintenanceMode', mode='LOCAL', enabled=bool(want))
            log.info('host %s: HA local maintenance %s', host['name'], 'on' if want else 'off')
        self.state.update('hosts', self.host_id, ha_local_maintenance_request=None)

    def _poll(self, host):
        stats = self.client.call('Host.getStats') or {}
        vms = self.client.call('Host.getAllVmStats') or []
        changes = {'status_detail': None,
                   'mem_free_mib': stats.get('memFree'), 'last_stats': time.time()}
        ha = stats.get('haStats')
        if isinstance(ha, dict):
            changes['ha_stats'] = {k: ha.get(k) for k in ('configured', 'active', 'score',
                                                          'globalMaintenance',
                                                          'localMaintenance')}
        with self.state.lock:
            changes['status'] = self._status(host, 'up')
            self.state.update('hosts', self.host_id, **changes)
        for sd_uuid in sorted((stats.get('storageDomains') or {})):
            self._import_domain(sd_uuid)
        self.engine.record_vms(self.host_id, vms)

    def _import_domain(self, sd_uuid):
        known = self.state.get('storage_domains', sd_uuid)
        if known is not None and known.get('status') == 'active':
            return
        try:
            info = self.client.call('StorageDomain.getInfo', storagedomainID=sd_uuid)
        except ServerError as e:
            log.warning('storage domain %s: getInfo failed: %s', sd_uuid, e)
            return
        remote = info.get('remotePath') or ''
        address, _, path = remote.rpartition(':') if ':' in remote else ('', '', remote)
        self.state.put('storage_domains', {
            'id': sd_uuid, 'name': info.get('name') or sd_uuid,
            'type': DOMAIN_CLASS.get(_int(info.get('class')), str(info.get('class')).lower()),
            'storage_type': DOMAIN_TYPE.get(_int(info.get('type')), str(info.get('type')).lower()),
            'address': address, 'path': path, 'status': 'active',
            'master': info.get('role') == 'Master', 'version': info.get('version'),
            'block_size': info.get('block_size'), 'pool': info.get('pool'),
        })
        log.info('storage domain %s (%s) imported', info.get('name'), sd_uuid)


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _write(path, text):
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='ascii') as f:
        f.write(text)
    os.rename(tmp, path)


def _read(path):
    with open(path, encoding='ascii') as f:
        return f.read()
