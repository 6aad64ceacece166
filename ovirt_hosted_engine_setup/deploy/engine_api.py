"""How the installer talks to the engine it deployed.

    http_base = engine_api.http_base(fqdn)             # http://<fqdn>
    stream_setup_channel(channel_path, on_line, 1800, reporter, alive=vm_alive)
    reply = wait_healthy(http_base, 300, 5, reporter)  # the health page says "DB Up"
    pem = fetch_ca(http_base); fingerprint(pem); subject(pem)
    conn = connect(api_url(fqdn), 'admin@internal', password, ca_file)
    dc, cluster = check_cluster(conn, 'Default', 'Default')
    host = add_host(conn, 'hosted_engine_1', 'host1.example.com', cluster, ca_pem=hostd_ca)
    wait_host_up(conn, host.id, 600, 5, reporter)

Every failure is an EngineError whose str() is one line naming the problem and what to
check. The engine is reached without proxies (it is on the management network).
The engine API is used through ovirt-engine-sdk-python (ovirtsdk4), imported on first use.
"""
import hashlib
import logging
import os
import socket
import time
import urllib.error
import urllib.request

from ovirt_hosted_engine_setup.deploy import cloud_init
from ovirt_hosted_engine_setup import health_page, progress
from ovirt_hosted_engine_setup.health_page import GOOD_MARK as HEALTH_OK, HEALTH_PATH

log = logging.getLogger(__name__)

CA_PATH = '/ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA'
API_PATH = '/ovirt-engine/api'
HTTP_TIMEOUT = 10
# where to look when the engine does not answer (the health timeout message)
ENGINE_LOOK = ('look at the engine VM console (hosted-engine --console) and at '
               '/var/log/ovirt-engine/ in the engine VM')
# host states that mean trouble when they last
BAD_HOST_STATES = ('non_operational', 'non_responsive', 'install_failed', 'error')
DEFAULT_BAD_GRACE = 120


class EngineError(Exception):
    """One line for the user: the problem and what to check."""


class EngineSetupFailed(EngineError):
    """engine-setup in the engine VM reported failure."""


def _one_line(text, limit=300):
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def http_base(fqdn, port=None):
    return 'http://%s%s' % (fqdn, ':%d' % port if port else '')


def api_url(fqdn, port=None):
    return 'https://%s%s%s' % (fqdn, ':%d' % port if port else '', API_PATH)


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url, timeout=HTTP_TIMEOUT):
    """(status, body text) of a GET; HTTP errors give their status and body."""
    try:
        with _opener.open(url, timeout=timeout) as r:
            return r.status, r.read().decode('utf-8', 'replace')
    except urllib.error.HTTPError as e:
        try:
            body = e.read().decode('utf-8', 'replace')
        except OSError:
            body = ''
        return e.code, body


# ---------------------------------------------------------------- health page

def read_health(base, timeout=HTTP_TIMEOUT):
    """(True, reply) when the health page says "DB Up", else (False, what was seen)."""
    reply = health_page.fetch(base, timeout)
    if reply.error is not None:
        return False, 'no answer from %s: %s' % (reply.url, _one_line(reply.error))
    body = _one_line(reply.body, 120)
    if reply.ok:
        return True, body
    return False, 'HTTP %d: %s' % (reply.status, body or '(empty reply)')


def wait_healthy(base, limit, interval=5, reporter=None):
    """Poll the health page until it says "DB Up"; return the reply.

    On the limit: EngineError with the last reply (or connection error) and where to look."""
    url = base + HEALTH_PATH

    def check():
        ok, reply = read_health(base)
        return (reply if ok else None), reply
    try:
        return progress.wait_until(check, 'the engine health page %s to '
                                   'answer "%s"' % (url, HEALTH_OK), limit, interval, reporter)
    except progress.WaitTimeout as e:
        raise EngineError('The engine did not become healthy: %s; %s' % (e, ENGINE_LOOK))


# ---------------------------------------------------------------- the engine CA

def _load_cert(pem):
    from cryptography import x509
    data = pem.encode('ascii', 'replace') if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificate(data)


def fetch_ca(base, timeout=30):
    """The engine CA certificate (PEM text) from its pki-resource page."""
    url = base + CA_PATH
    try:
        status, body = _get(url, timeout)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, 'reason', None) or e
        raise EngineError('Cannot fetch the engine CA from %s: %s; check that the engine is '
                          'up (its health page) and reachable from this host'
                          % (url, _one_line(reason)))
    if status != 200:
        raise EngineError('Fetching the engine CA from %s failed: HTTP %d: %s; %s'
                          % (url, status, _one_line(body, 120), ENGINE_LOOK))
    try:
        cert = _load_cert(body)
    except ValueError as e:
        raise EngineError('The engine answered %s with something that is not a PEM '
                          'certificate (%s); %s' % (url, _one_line(e, 80), ENGINE_LOOK))
    from cryptography import x509
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = cert.issuer == cert.subject
    if not is_ca:
        raise EngineError('The certificate served at %s is not a CA certificate (subject %s); '
                          '%s' % (url, subject(body), ENGINE_LOOK))
    start = body.index('-----BEGIN CERTIFICATE-----')
    end = body.index('-----END CERTIFICATE-----') + len('-----END CERTIFICATE-----')
    return body[start:end] + '\n'


def fingerprint(pem):
    """SHA-256 fingerprint of a PEM certificate: AA:BB:..."""
    from cryptography.hazmat.primitives import serialization
    der = _load_cert(pem).public_bytes(serialization.Encoding.DER)
    return ':'.join('%02X' % b for b in hashlib.sha256(der).digest())


def subject(pem):
    """The certificate's subject as oVirt writes it (stored order): "C=US, O=Org, CN=name"."""
    return ', '.join(rdn.rfc4514_string() for rdn in _load_cert(pem).subject.rdns)


# ---------------------------------------------------------------- engine-setup channel

def stream_setup_channel(path, on_line, limit, reporter=None, alive=None,
                         connect_limit=120, clock=time.monotonic, finished=None,
                         finished_after=60):
    """Read the lines engine-setup writes on the VM's setup channel (the host side: the
    unix socket ``path`` libvirt binds) and give each to ``on_line(text)`` until the
    SUCCESS line (returns) or the FAIL line (raises EngineSetupFailed).

    alive: callable -> (bool, detail): is the VM still running? Asked when the channel
    closes or cannot be connected; a VM that stopped ends the wait with an EngineError.
    limit: seconds for the whole engine-setup; while the VM is silent, reporter (a
    progress.Reporter) shows how long it has been waiting.
    finished: callable -> (bool, detail), asked at most every ``finished_after`` seconds
    of silence: true when the engine shows it is set up although no verdict line came (the
    output was written while nobody listened); returns False then.
    """
    what = 'engine-setup in the engine VM to report over %s' % os.path.basename(path)
    t0 = clock()
    last_line = t0
    sock = None
    buf = b''
    lines = 0
    asked = [t0]

    def check_alive():
        if alive is None:
            return
        ok, detail = alive()
        if not ok:
            raise EngineError('The engine VM stopped before engine-setup finished (%s); see '
                              'the output above and the VM console log' % detail)

    try:
        while True:
            now = clock()
            if now - t0 >= limit:
                raise EngineError(
                    'engine-setup in the engine VM did not finish within %d s (%d lines '
                    'received, the last %d s ago); look at the engine VM console '
                    '(hosted-engine --console) and /var/log/ovirt-engine/setup/ in the VM, '
                    'or raise OVEHOSTED_ENGINE/engineSetupTimeout'
                    % (limit, lines, now - last_line))
            if sock is None:
                sock = _connect_unix(path)
                if sock is None:
                    check_alive()
                    if now - t0 >= connect_limit:
                        raise EngineError(
                            'The engine VM setup channel %s did not appear within %d s: check '
                            'that the VM definition has the channel %s'
                            % (path, connect_limit, cloud_init.CHANNEL_NAME))
                    if reporter:
                        reporter('the engine VM setup channel %s' % path, now - t0,
                                 connect_limit)
                    time.sleep(0.5)
                    continue
                log.debug('connected to the setup channel %s', path)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                now = clock()
                if reporter:
                    reporter(what, now - t0, limit, 'last output %d s ago' % (now - last_line))
                if finished is not None and now - max(last_line, asked[0]) >= finished_after:
                    asked[0] = now
                    done, detail = finished()
                    if done:
                        log.warning('no verdict from engine-setup on the setup channel after '
                                    '%d s of silence, but %s: going on', now - last_line,
                                    detail)
                        return False
                continue
            except OSError as e:
                log.debug('setup channel read failed: %s', e)
                data = b''
            if not data:
                # the VM side closed (VM stopping, or the channel reset): make sure the
                # VM still runs, then connect again
                sock.close()
                sock = None
                check_alive()
                time.sleep(0.5)
                continue
            buf += data
            while b'\n' in buf:
                raw, buf = buf.split(b'\n', 1)
                text = raw.decode('utf-8', 'replace').replace('\r', '').rstrip()
                last_line = clock()
                if cloud_init.SUCCESS_STRING in text:
                    return True
                if cloud_init.FAIL_STRING in text:
                    raise EngineSetupFailed(
                        'engine-setup failed inside the engine VM: see the output above and '
                        '/var/log/ovirt-engine/setup/ in the VM')
                if text.strip():
                    lines += 1
                    on_line(text)
    finally:
        if sock is not None:
            sock.close()


def _connect_unix(path, timeout=1.0):
    if not os.path.exists(path):
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError as e:
        log.debug('setup channel %s not connectable yet: %s', path, e)
        s.close()
        return None
    return s


# ---------------------------------------------------------------- the engine API

def _sdk():
    try:
        import ovirtsdk4
        import ovirtsdk4.types  # noqa: F401
    except ImportError as e:
        raise EngineError('ovirt-engine-sdk-python is missing (%s): install it (package '
                          'python3-ovirt-engine-sdk4, or pip install ovirt-engine-sdk-python)'
                          % e)
    return ovirtsdk4


def _sdk_message(e):
    return _one_line(getattr(e, 'fault', None) and getattr(e.fault, 'detail', None) or e)


def connect(url, username, password, ca_file, timeout=60):
    """An ovirtsdk4 Connection, tested (the login happens here)."""
    sdk = _sdk()
    conn = sdk.Connection(url=url, username=username, password=password, ca_file=ca_file,
                          timeout=timeout)
    try:
        conn.test(raise_exception=True)
    except sdk.AuthError as e:
        conn.close(logout=False)
        raise EngineError('The engine at %s refused the login of %s (%s): give the engine '
                          'admin password (OVEHOSTED_ENGINE/adminPassword)'
                          % (url, username, _sdk_message(e)))
    except sdk.Error as e:
        conn.close(logout=False)
        raise EngineError('Cannot use the engine API at %s: %s; check that the engine FQDN '
                          'resolves to the engine VM and that its health page answers'
                          % (url, _sdk_message(e)))
    return conn


def close(conn):
    try:
        conn.close()
    except Exception as e:  # the engine may be gone already: nothing to undo
        log.debug('closing the engine API connection: %s', e)


def check_cluster(conn, datacenter, cluster):
    """(data center, cluster) SDK objects; EngineError listing the existing ones."""
    sdk = _sdk()
    system = conn.system_service()
    try:
        dcs = system.data_centers_service().list()
        clusters = system.clusters_service().list()
    except sdk.Error as e:
        raise EngineError('Listing the data centers and clusters of the engine failed: %s'
                          % _sdk_message(e))
    dc = next((d for d in dcs if d.name == datacenter), None)
    if dc is None:
        raise EngineError('The data center %r does not exist in the engine (existing: %s): '
                          'give one of them as the data center name '
                          '(OVEHOSTED_ENGINE/datacenterName)'
                          % (datacenter, ', '.join(sorted(d.name for d in dcs)) or 'none'))
    in_dc = [c for c in clusters if c.data_center is not None and c.data_center.id == dc.id]
    found = next((c for c in in_dc if c.name == cluster), None)
    if found is None:
        raise EngineError('The cluster %r does not exist in data center %r of the engine '
                          '(existing: %s): give one of them as the cluster name '
                          '(OVEHOSTED_ENGINE/clusterName)'
                          % (cluster, datacenter,
                             ', '.join(sorted(c.name for c in in_dc)) or 'none'))
    return dc, found


def ensure_cluster(conn, datacenter, cluster):
    """(data center, cluster, [what was created]): the named data center and cluster,
    created when the engine lacks them (a restored engine has the backup's; the deploy may
    name new ones). EngineError when the engine refuses to create one."""
    sdk = _sdk()
    types = sdk.types
    system = conn.system_service()
    created = []
    try:
        dc = next((d for d in system.data_centers_service().list()
                   if d.name == datacenter), None)
        if dc is None:
            dc = system.data_centers_service().add(types.DataCenter(name=datacenter,
                                                                     local=False))
            created.append('the data center %s' % datacenter)
        found = next((x for x in system.clusters_service().list()
                      if x.name == cluster and x.data_center is not None and
                      x.data_center.id == dc.id), None)
        if found is None:
            found = system.clusters_service().add(types.Cluster(
                name=cluster, data_center=types.DataCenter(id=dc.id)))
            created.append('the cluster %s in data center %s' % (cluster, datacenter))
    except sdk.Error as e:
        raise EngineError('Cannot find or create the data center %r and cluster %r in the '
                          'engine: %s; give the names of ones the restored engine has '
                          '(OVEHOSTED_ENGINE/datacenterName, OVEHOSTED_ENGINE/clusterName)'
                          % (datacenter, cluster, _sdk_message(e)))
    return dc, found, created


def check_host_absent(conn, name, address):
    """EngineError when the engine has a host of this name or address already."""
    sdk = _sdk()
    try:
        existing = conn.system_service().hosts_service().list()
    except sdk.Error as e:
        raise EngineError('Listing the hosts of the engine failed: %s' % _sdk_message(e))
    for h in existing:
        if h.name == name or (h.address or '').lower() == address.lower():
            raise EngineError(
                'The engine already has a host %r at %s (status %s): remove it in the '
                'Administration Portal (maintenance, then remove), or give this host another '
                'name (OVEHOSTED_ENGINE/appHostName)' % (h.name, h.address, _status(h)))


def add_host(conn, name, address, cluster, ca_pem=None, port=None):
    """Add this host to the engine; return the SDK host. The deploy configures the HA
    services itself, so the engine is not asked to deploy them (deploy_hosted_engine=False).

    cluster: an SDK Cluster (check_cluster) or a cluster name. ca_pem: the CA that signed
    the host agent's certificate, so the engine verifies the agent with it. port: the
    host agent's port when it is not the default."""
    sdk = _sdk()
    types = sdk.types
    hosts = conn.system_service().hosts_service()
    check_host_absent(conn, name, address)
    cl = (types.Cluster(id=cluster.id) if getattr(cluster, 'id', None)
          else types.Cluster(name=str(cluster)))
    spec = dict(name=name, address=address, cluster=cl)
    if ca_pem:
        spec['certificate'] = types.Certificate(content=ca_pem)
    if port:
        spec['port'] = int(port)
    try:
        return hosts.add(types.Host(**spec), deploy_hosted_engine=False)
    except sdk.Error as e:
        raise EngineError('The engine refused to add host %r (%s): %s'
                          % (name, address, _sdk_message(e)))


def _status(host):
    st = host.status
    return getattr(st, 'value', st) or 'unknown'


def host_state(conn, host_id):
    """(status, status_detail) of a host."""
    sdk = _sdk()
    try:
        h = conn.system_service().hosts_service().host_service(host_id).get()
    except sdk.NotFoundError:
        raise EngineError('The host %s disappeared from the engine: add it again by deploying '
                          'again' % host_id)
    return _status(h), h.status_detail or ''


def wait_host_up(conn, host_id, limit, interval=5, reporter=None, name=None,
                 bad_grace=DEFAULT_BAD_GRACE, hint='', clock=time.monotonic):
    """Poll the host until its status is up. A bad state (non_operational, non_responsive,
    error) lasting bad_grace seconds, or install_failed, ends the wait with an EngineError
    naming the status detail and ``hint`` (what to check)."""
    sdk = _sdk()
    label = name or host_id
    state = {'bad_since': None}

    def check():
        try:
            status, detail = host_state(conn, host_id)
        except sdk.Error as e:
            # the engine may be busy for a moment: keep trying until the limit
            return False, 'engine API error: %s' % _sdk_message(e)
        text = 'status %s%s' % (status, ' (%s)' % _one_line(detail, 200) if detail else '')
        if status == 'up':
            return text, text
        if status in BAD_HOST_STATES:
            now = clock()
            if state['bad_since'] is None:
                state['bad_since'] = now
            if status == 'install_failed' or now - state['bad_since'] >= bad_grace:
                raise EngineError('The host %s is %s in the engine%s%s' % (
                    label, status, ': %s' % _one_line(detail, 200) if detail else '',
                    '; %s' % hint if hint else ''))
        else:
            state['bad_since'] = None
        return False, text

    try:
        return progress.wait_until(check, 'host %s to be Up in the engine' % label, limit,
                                   interval, reporter, clock=clock)
    except progress.WaitTimeout as e:
        raise EngineError('%s%s' % (e, '; %s' % hint if hint else ''))
