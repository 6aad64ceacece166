"""The lab engine's HTTP and HTTPS servers.

HTTP and HTTPS:  /ovirt-engine/services/health
                 /ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA
HTTPS only:      /ovirt-engine/sso/oauth/token, /ovirt-engine/sso/oauth/token-info,
                 /ovirt-engine/services/sso-logout, /ovirt-engine/api/...
                 (over plain HTTP these answer a redirect to HTTPS)
"""
import json
import logging
import re
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ovirt_hosted_engine_setup.api.errors import ApiError, ServerError
from ovirt_hosted_engine_setup.api.schema import constant, enum

from . import xmlapi
from .host_deploy import SSH_PORT, HostInstall, normalize_fingerprint
from .hosts import DEFAULT_PORT, VM_STATUS, HostMonitor, TrustError
from .state import ENGINE_VERSION, State

log = logging.getLogger('engine')

HEALTH_OK = 'DB Up!Welcome to Health Status!'
TOKEN_LIFETIME = 10 * 3600
MAX_BODY = 1024 * 1024
HANDSHAKE_TIMEOUT = 10
MAX_SPM_ID = 250     # host ids of a data center: 1..250, as oVirt's vds_spm_id
# statuses a host may be removed in (oVirt's RemoveVds)
REMOVABLE = ('maintenance', 'non_responsive', 'install_failed', 'down', 'unassigned',
             'non_operational', 'pending_approval')
# statuses a host may be (re)installed in (oVirt's VDS_CANNOT_INSTALL_STATUS_ILLEGAL)
INSTALLABLE = ('maintenance', 'install_failed', 'non_operational')
NAME_RE = re.compile(r'^[A-Za-z0-9_.-]+$')
# the REST API's storage domain types and file storage types -> the host agent API's numbers
# (api/schema.yaml: domainClass, domainType)
_CLASSES, _TYPES = enum('domainClass'), enum('domainType')
SD_CLASSES = {'data': _CLASSES['Data'], 'iso': _CLASSES['Iso'], 'export': _CLASSES['Backup']}
SD_TYPES = {'nfs': _TYPES['NFS'], 'localfs': _TYPES['LOCALFS'], 'posixfs': _TYPES['POSIXFS'],
            'glusterfs': _TYPES['GLUSTERFS']}
BLANK_UUID = constant('blankUUID')
BLANK_TEMPLATE_ID = BLANK_UUID


class Engine:
    """State, tokens and host monitors behind both servers."""

    def __init__(self, state_dir, monitor_interval=5.0):
        self.state = State(state_dir)
        self.monitor_interval = monitor_interval
        self.tokens = {}
        self.tokens_lock = threading.Lock()
        self.monitors = {}
        self.monitors_lock = threading.Lock()
        self.installs = {}
        self.instance_id = str(uuid.uuid4())
        self.stopping = False

    # -- set-up state ----------------------------------------------------

    def refresh(self):
        """Pick up engine-setup having run since the last request."""
        if self.state.reload():
            log.info('engine state loaded: %s', self.state.setup['fqdn'])
            self.start_monitors()
        return self.state.ready

    def start_monitors(self):
        if not self.state.ready or self.stopping:
            return
        self.assign_missing_spm_ids()
        for h in self.state.items('hosts'):
            if h.get('install_running'):
                # the root password lived in the engine's memory only: the install
                # cannot go on after a restart
                with self.monitors_lock:
                    running = h['id'] in self.installs
                if not running:
                    self.state.update('hosts', h['id'], status='install_failed',
                                      install_running=False,
                                      status_detail='the engine restarted during the '
                                                    'installation: install the host again')
                    log.warning('host %s: the engine restarted during its installation; '
                                'it is install_failed', h['name'])
                    continue
            self.monitor(h['id'])

    # -- host ids (oVirt's vds_spm_id: unique in a data center) -----------------

    def dc_of_cluster(self, cluster_id):
        return (self.state.get('clusters', cluster_id) or {}).get('data_center')

    def free_spm_id(self, dc_id, exclude=None):
        """The first host id from 1 up that no host of the data center has."""
        used = {h.get('spm_id') for h in self.state.items('hosts')
                if h['id'] != exclude and self.dc_of_cluster(h.get('cluster')) == dc_id}
        for i in range(1, MAX_SPM_ID + 1):
            if i not in used:
                return i
        raise xmlapi.BadRequest('[Cannot add Host. The data center has no free host id '
                                '(1..%d all in use).]' % MAX_SPM_ID, status=409)

    def assign_missing_spm_ids(self):
        with self.state.lock:
            for h in sorted(self.state.items('hosts'), key=lambda x: x.get('added') or 0):
                if not h.get('spm_id'):
                    self.state.update('hosts', h['id'], spm_id=self.free_spm_id(
                        self.dc_of_cluster(h.get('cluster')), exclude=h['id']))

    # -- installs over SSH -------------------------------------------------------

    def install(self, host_id, password, action=None, activate=True):
        """Start installing a host over SSH (host_deploy.HostInstall)."""
        with self.monitors_lock:
            if host_id in self.installs:
                raise xmlapi.BadRequest('[Cannot install Host. The host is being installed.]',
                                        status=409)
            self.state.update('hosts', host_id, status='installing', status_detail=None,
                              install_running=True)
            t = HostInstall(self, host_id, password, action=action, activate=activate)
            self.installs[host_id] = t
        t.start()
        return t

    def install_done(self, host_id, thread):
        with self.monitors_lock:
            if self.installs.get(host_id) is thread:
                del self.installs[host_id]

    def monitor(self, host_id):
        with self.monitors_lock:
            m = self.monitors.get(host_id)
            if m is not None and m.is_alive():
                return
            m = HostMonitor(self, host_id, self.monitor_interval)
            self.monitors[host_id] = m
            m.start()

    def stop(self):
        self.stopping = True
        with self.monitors_lock:
            monitors = list(self.monitors.values())
            installs = list(self.installs.values())
        for t in installs:
            t.cancel()
        for m in monitors:
            m.stop_event.set()
        for m in monitors + installs:
            m.join(15)

    # -- tokens -----------------------------------------------------------

    def issue_token(self, user):
        token = secrets.token_urlsafe(48)
        with self.tokens_lock:
            self.tokens[token] = (user, time.time() + TOKEN_LIFETIME)
        return token

    def token_user(self, token):
        with self.tokens_lock:
            entry = self.tokens.get(token)
            if entry is None:
                return None
            if entry[1] < time.time():
                del self.tokens[token]
                return None
            return entry

    def revoke(self, token):
        with self.tokens_lock:
            return self.tokens.pop(token, None) is not None

    # -- VMs reported by hosts ----------------------------------------------

    def record_vms(self, host_id, stats):
        seen = set()
        for s in stats:
            vm_id = s.get('vmId')
            if not vm_id:
                continue
            seen.add(vm_id)
            status = VM_STATUS.get(s.get('status'), 'unknown')
            old = self.state.get('vms', vm_id)
            if old is not None and old.get('host') != host_id and status == 'down' \
                    and old.get('status') != 'down':
                continue    # another host runs it; a stale Down here does not count
            rec = {'id': vm_id, 'name': s.get('vmName') or (old or {}).get('name') or vm_id,
                   'status': status, 'host': host_id,
                   'memory_mib': _int(s.get('memSize')) or (old or {}).get('memory_mib')}
            if old is None:
                self.state.put('vms', rec)
            else:
                self.state.update('vms', vm_id, **rec)
        for v in self.state.items('vms'):
            if v.get('host') == host_id and v['id'] not in seen and v.get('status') != 'down':
                self.state.update('vms', v['id'], status='down')

    def forget_vms_of(self, host_id):
        for v in self.state.items('vms'):
            if v.get('host') == host_id and v.get('status') != 'unknown':
                self.state.update('vms', v['id'], status='unknown')

    def default_dc(self):
        dcs = self.state.items('data_centers')
        return dcs[0]['id'] if dcs else None

    def dc_status(self, dc_id):
        clusters = {c['id'] for c in self.state.items('clusters') if c.get('data_center') == dc_id}
        up = any(h.get('status') == 'up' and h.get('cluster') in clusters
                 for h in self.state.items('hosts'))
        return 'up' if up and any(self.sd_data_center(sd) == dc_id
                                  for sd in self.state.items('storage_domains')) \
            else 'uninitialized'

    def sd_data_center(self, sd):
        """The data center of a storage domain: the one an API-added domain records (None:
        unattached); a domain imported from a host is the default data center's."""
        return sd['data_center'] if 'data_center' in sd else self.default_dc()

    def create_storage_domain(self, host, sd, conn):
        """oVirt's AddStorageDomain for file storage, through host's agent:
        StoragePool.connectStorageServer, StorageDomain.create, then the connection is
        dropped again (the domain is unattached: no host needs it connected)."""
        domain_type = SD_TYPES[sd['storage_type']]
        agent = HostMonitor(self, host['id'], self.monitor_interval)   # a connection of its own
        try:
            agent._connect(host)
            done = agent.client.call('StoragePool.connectStorageServer', storagepoolID=BLANK_UUID,
                                     domainType=domain_type, connectionParams=[conn])
            code = (done or [{}])[0].get('status')
            if code != 0:
                raise xmlapi.BadRequest('[Cannot add Storage. The host %s cannot connect to the '
                                        'storage %s (error %s): check the path and its '
                                        'permissions.]' % (host['name'], conn['connection'],
                                                           code), status=409)
            try:
                agent.client.call('StorageDomain.create', storagedomainID=sd['id'],
                                  domainType=domain_type, typeArgs=conn['connection'],
                                  name=sd['name'], domainClass=SD_CLASSES[sd['type']],
                                  version=sd['version'])
            finally:
                try:
                    agent.client.call('StoragePool.disconnectStorageServer',
                                      storagepoolID=BLANK_UUID, domainType=domain_type,
                                      connectionParams=[conn])
                except ApiError as e:
                    log.warning('storage %s: disconnecting host %s failed: %s',
                                conn['connection'], host['name'], e)
        except ServerError as e:
            raise xmlapi.BadRequest('[Cannot add Storage. Creating the storage domain on host '
                                    '%s failed: %s]' % (host['name'], e.message), status=409)
        except (ApiError, OSError, TrustError) as e:
            raise xmlapi.BadRequest('[Cannot add Storage. The host %s cannot be reached: %s]'
                                    % (host['name'], e), status=409)
        finally:
            agent._close_client()
        log.info('storage domain %s (%s) created on %s through host %s', sd['name'], sd['id'],
                 conn['connection'], host['name'])


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'ovirt-lab-engine'
    sys_version = ''
    timeout = 120     # an idle keep-alive connection is closed after this

    @property
    def engine(self):
        return self.server.engine

    def log_message(self, fmt, *args):
        log.debug('%s %s', self.address_string(), fmt % args)

    # -- responses --------------------------------------------------------

    def send(self, status, body, content_type, headers=()):
        if isinstance(body, str):
            body = body.encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def send_xml(self, status, element, headers=()):
        self.send(status, xmlapi.to_bytes(element), 'application/xml;charset=UTF-8', headers)

    def send_fault(self, status, reason, detail):
        self.send_xml(status, xmlapi.fault(reason, detail))

    def send_json(self, status, data):
        self.send(status, json.dumps(data), 'application/json')

    def read_body(self):
        length = int(self.headers.get('Content-Length') or 0)
        self._body_read = True
        if length > MAX_BODY:
            self.close_connection = True
            raise xmlapi.BadRequest('request body too large', status=413)
        return self.rfile.read(length) if length else b''

    def drain_body(self):
        """Read a body the request was refused before reading (else closing the connection
        could reset it before the client reads the answer)."""
        if getattr(self, '_body_read', False):
            return
        try:
            self.read_body()
        except xmlapi.BadRequest:
            pass

    # -- dispatch ---------------------------------------------------------

    def do_GET(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def dispatch(self):
        self._body_read = False
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip('/') or '/'
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        try:
            if path == '/ovirt-engine/services/health':
                return self.health()
            if path == '/ovirt-engine/services/pki-resource':
                return self.pki_resource(query)
            if not self.server.tls and (path.startswith('/ovirt-engine/api')
                                        or path.startswith('/ovirt-engine/sso')
                                        or path == '/ovirt-engine/services/sso-logout'):
                return self.redirect_https()
            if path == '/ovirt-engine/sso/oauth/token':
                return self.sso_token()
            if path == '/ovirt-engine/sso/oauth/token-info':
                return self.sso_token_info()
            if path == '/ovirt-engine/services/sso-logout':
                return self.sso_logout()
            if path == xmlapi.API or path.startswith(xmlapi.API + '/'):
                return self.api(path[len(xmlapi.API):].strip('/'), query)
            self.send(404, 'Not found\n', 'text/plain')
        except xmlapi.BadRequest as e:
            self.drain_body()
            self.send_fault(e.status, e.reason, e.detail)
        except (ConnectionError, socket.timeout):
            raise
        except Exception as e:
            log.exception('%s %s failed', self.command, self.path)
            self.send_fault(500, 'Operation Failed', 'internal error: %s' % e)

    # -- services -----------------------------------------------------------

    def health(self):
        if self.engine.refresh():
            self.send(200, HEALTH_OK, 'text/plain;charset=UTF-8')
        else:
            self.send(503, 'DB Down!The engine is not set up yet: run engine-setup.',
                      'text/plain;charset=UTF-8')

    def pki_resource(self, query):
        if not self.engine.refresh():
            return self.send(503, 'The engine is not set up yet: run engine-setup.\n',
                             'text/plain')
        resource, fmt = query.get('resource'), query.get('format')
        if resource not in ('ca-certificate', 'engine-certificate'):
            return self.send(400, 'Unsupported resource %r: use ca-certificate or '
                                  'engine-certificate\n' % resource, 'text/plain')
        if fmt not in ('X509-PEM-CA', 'X509-PEM'):
            return self.send(400, 'Unsupported format %r: use X509-PEM-CA or X509-PEM\n' % fmt,
                             'text/plain')
        pki = self.engine.state.pki
        path = pki.ca_cert if resource == 'ca-certificate' else pki.server_cert
        with open(path, 'rb') as f:
            data = f.read()
        name = 'ca.pem' if resource == 'ca-certificate' else 'engine.cer'
        self.send(200, data, 'application/x-x509-ca-cert' if fmt == 'X509-PEM-CA'
                  else 'application/x-x509-cert',
                  [('Content-Disposition', 'attachment; filename="%s"' % name)])

    def redirect_https(self):
        host = (self.headers.get('Host') or self.server.server_address[0]).rsplit(':', 1)[0]
        if ':' in host and not host.startswith('['):
            host = '[%s]' % host
        location = 'https://%s:%d%s' % (host, self.server.https_port, self.path)
        self.send(301, 'Use HTTPS: %s\n' % location, 'text/plain', [('Location', location)])

    def form(self):
        body = self.read_body().decode('utf-8', 'replace')
        return dict(urllib.parse.parse_qsl(body, keep_blank_values=True))

    def sso_token(self):
        if self.command != 'POST':
            return self.send_json(405, {'error_code': 'invalid_request',
                                        'error': 'use POST'})
        if not self.engine.refresh():
            return self.send_json(503, {'error_code': 'server_error',
                                        'error': 'The engine is not set up yet.'})
        form = self.form()
        if form.get('grant_type') != 'password':
            return self.send_json(400, {'error_code': 'unsupported_grant_type',
                                        'error': 'Unsupported grant type %r: use password'
                                                 % form.get('grant_type')})
        scopes = (form.get('scope') or '').split()
        if 'ovirt-app-api' not in scopes:
            return self.send_json(400, {'error_code': 'invalid_scope',
                                        'error': 'The scope must include ovirt-app-api.'})
        user = form.get('username') or ''
        if not self.engine.state.check_admin(user, form.get('password') or ''):
            log.warning('SSO: authentication of %r from %s refused', user,
                        self.client_address[0])
            return self.send_json(400, {
                'error_code': 'access_denied',
                'error': "Cannot authenticate user '%s': The username or password is "
                         "incorrect." % user})
        token = self.engine.issue_token(user)
        log.info('SSO: token issued to %s from %s', user, self.client_address[0])
        self.send_json(200, {'access_token': token, 'scope': ' '.join(scopes),
                             'exp': str(int((time.time() + 10 * 3600) * 1000)),
                             'token_type': 'bearer'})

    def sso_token_info(self):
        form = self.form() if self.command == 'POST' else {}
        entry = self.engine.token_user(form.get('token') or self.bearer() or '')
        if entry is None:
            return self.send_json(400, {'error_code': 'invalid_grant',
                                        'error': 'The token is invalid or expired.'})
        self.send_json(200, {'active': True, 'user_id': entry[0], 'scope': 'ovirt-app-api',
                             'exp': str(int(entry[1] * 1000)), 'token_type': 'bearer'})

    def sso_logout(self):
        form = self.form() if self.command == 'POST' else {}
        self.engine.revoke(form.get('token') or self.bearer() or '')
        self.send_json(200, {})

    def bearer(self):
        auth = self.headers.get('Authorization') or ''
        if auth[:7].lower() == 'bearer ':
            return auth[7:].strip()
        return None

    # -- the REST API ---------------------------------------------------------

    def api(self, rest, query):
        if not self.engine.refresh():
            raise xmlapi.BadRequest('The engine is not set up yet: run engine-setup.',
                                    status=503)
        token = self.bearer()
        if not token or self.engine.token_user(token) is None:
            return self.send(401, '<html><head><title>Error</title></head><body>Unauthorized'
                                  '</body></html>', 'text/html;charset=UTF-8',
                             [('WWW-Authenticate', 'Bearer realm="RESTAPI"')])
        parts = [p for p in rest.split('/') if p]
        if not parts:
            return self.get_only() or self.api_root()
        kind = parts[0]
        if kind not in xmlapi.COLLECTIONS:
            raise xmlapi.BadRequest('Unknown collection %r' % kind, status=404,
                                    reason='Not Found')
        if len(parts) == 1:
            if self.command == 'POST' and kind == 'hosts':
                return self.add_host(query)
            if self.command == 'POST' and kind in self.ADDERS:
                return getattr(self, self.ADDERS[kind])(query)
            self.get_only(kind)
            return self.list(kind, query)
        if len(parts) == 2:
            if self.command == 'DELETE' and kind == 'hosts':
                return self.remove_host(parts[1])
            self.get_only(kind)
            return self.get_one(kind, parts[1], query)
        if kind == 'hosts' and len(parts) == 3 and parts[2] in self.HOST_ACTIONS:
            if self.command != 'POST':
                raise xmlapi.BadRequest('%s on the host action %s: use POST'
                                        % (self.command, parts[2]), status=405)
            return getattr(self, self.HOST_ACTIONS[parts[2]])(parts[1], query)
        if kind == 'datacenters' and len(parts) == 3 and parts[2] == 'clusters':
            self.get_only(kind)
            dc = self.lookup('datacenters', parts[1])
            return self.send_xml(200, xmlapi.collection(
                'clusters', [xmlapi.cluster(c) for c in self.engine.state.items('clusters')
                             if c.get('data_center') == dc['id']]))
        raise xmlapi.BadRequest('Unknown path %s' % self.path, status=404, reason='Not Found')

    def get_only(self, what='the API root'):
        if self.command not in ('GET', 'HEAD'):
            raise xmlapi.BadRequest('%s on %s is not supported by this engine'
                                    % (self.command, what), status=405)
        return None

    def api_root(self):
        st = self.engine.state
        hosts = st.items('hosts')
        vms = st.items('vms')
        sds = st.items('storage_domains')
        summary = {'hosts': (sum(h.get('status') == 'up' for h in hosts), len(hosts)),
                   'vms': (sum(v.get('status') == 'up' for v in vms), len(vms)),
                   'storage_domains': (sum(s.get('status') == 'active' for s in sds), len(sds)),
                   'users': (1, 1)}
        self.send_xml(200, xmlapi.api_root(ENGINE_VERSION, self.engine.instance_id, summary,
                                           USER_ID))

    KINDS = {'datacenters': 'data_centers', 'clusters': 'clusters', 'hosts': 'hosts',
             'storagedomains': 'storage_domains', 'vms': 'vms'}
    TAGS = {'datacenters': 'data_centers', 'clusters': 'clusters', 'hosts': 'hosts',
            'storagedomains': 'storage_domains', 'vms': 'vms'}

    def all_content(self, query):
        """all_content=true as a query parameter or as the All-Content header (the SDK
        sends both; engines before 4.1 read the header)."""
        value = query.get('all_content')
        if value is None:
            value = self.headers.get('All-Content')
        return (value or '').strip().lower() == 'true'

    def render(self, kind, obj, all_content=False):
        e = self.engine
        if kind == 'datacenters':
            return xmlapi.data_center(obj, e.dc_status(obj['id']))
        if kind == 'clusters':
            return xmlapi.cluster(obj)
        if kind == 'hosts':
            return xmlapi.host(obj, all_content=all_content)
        if kind == 'storagedomains':
            return xmlapi.storage_domain(obj, e.sd_data_center(obj))
        clusters = e.state.items('clusters')
        return xmlapi.vm(obj, obj.get('cluster') or (clusters[0]['id'] if clusters else None))

    def search_fields(self, kind):
        st = self.engine.state
        fields = {'name': lambda o: o.get('name'), 'id': lambda o: o.get('id')}
        if kind in ('hosts', 'vms', 'storagedomains'):
            fields['status'] = lambda o: o.get('status')
        if kind == 'hosts':
            fields['address'] = lambda o: o.get('address')
            fields['cluster'] = lambda o: (st.get('clusters', o.get('cluster')) or {}).get('name')
        if kind == 'vms':
            fields['host'] = lambda o: (st.get('hosts', o.get('host')) or {}).get('name')
        return fields

    def list(self, kind, query):
        match = xmlapi.search_filter(query.get('search'), self.search_fields(kind))
        items = sorted((o for o in self.engine.state.items(self.KINDS[kind]) if match(o)),
                       key=lambda o: o.get('name') or '')
        if query.get('max'):
            try:
                items = items[:max(0, int(query['max']))]
            except ValueError:
                raise xmlapi.BadRequest('max must be an integer, got %r' % query['max'])
        full = self.all_content(query)
        self.send_xml(200, xmlapi.collection(self.TAGS[kind],
                                             [self.render(kind, o, full) for o in items]))

    def lookup(self, kind, obj_id):
        obj = self.engine.state.get(self.KINDS[kind], obj_id)
        if obj is None:
            raise xmlapi.BadRequest('Entity not found: %s' % obj_id, status=404,
                                    reason='Operation Failed')
        return obj

    def get_one(self, kind, obj_id, query):
        self.send_xml(200, self.render(kind, self.lookup(kind, obj_id),
                                       self.all_content(query)))

    HOST_ACTIONS = {'deactivate': 'deactivate_host', 'activate': 'activate_host',
                    'install': 'install_host'}

    @staticmethod
    def flag(value, name, default=None):
        """A boolean query parameter or action field: true/false, else a 400."""
        if value is None or value == '':
            return default
        v = value.strip().lower()
        if v not in ('true', 'false'):
            raise xmlapi.BadRequest('%s must be true or false, got %r' % (name, value))
        return v == 'true'

    @staticmethod
    def ssh_settings(el, old=None):
        """<ssh><port/><fingerprint/><user><user_name/></user><authentication_method/>:
        the SSH port and the expected host key fingerprint."""
        ssh = dict(old or {})
        ssh.setdefault('port', SSH_PORT)
        ssh_el = el.find('ssh')
        if ssh_el is None:
            return ssh
        port = xmlapi.text(ssh_el, 'port')
        if port:
            try:
                ssh['port'] = int(port)
                if not 0 < ssh['port'] < 65536:
                    raise ValueError
            except ValueError:
                raise xmlapi.BadRequest('ssh port %r is not a TCP port number' % port)
        fp = xmlapi.text(ssh_el, 'fingerprint')
        if fp:
            try:
                ssh['fingerprint'] = normalize_fingerprint(fp)
            except ValueError as e:
                raise xmlapi.BadRequest(str(e))
        method = xmlapi.text(ssh_el, 'authentication_method')
        if method and method != 'password':
            raise xmlapi.BadRequest('ssh authentication_method %r is not supported by this '
                                    'engine: give root_password (password)' % method)
        user = xmlapi.text(ssh_el, 'user/user_name')
        if user and user != 'root':
            raise xmlapi.BadRequest('ssh user %r is not supported: the engine installs hosts '
                                    'as root' % user)
        return ssh

    @staticmethod
    def no_reboot(value):
        if value:
            raise xmlapi.BadRequest('this engine does not reboot hosts after installing them: '
                                    'leave reboot out or set it to false')

    def add_host(self, query):
        st = self.engine.state
        el = xmlapi.parse(self.read_body(), 'host')
        name = xmlapi.text(el, 'name')
        address = xmlapi.text(el, 'address')
        if not name:
            raise xmlapi.BadRequest('Host [name] required for add')
        if not address:
            raise xmlapi.BadRequest('Host [address] required for add')
        port = xmlapi.text(el, 'port')
        try:
            port = int(port) if port else DEFAULT_PORT
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise xmlapi.BadRequest('Host port %r is not a TCP port number' % port)
        cl_el = el.find('cluster')
        if cl_el is None:
            raise xmlapi.BadRequest('Host [cluster.id|name] required for add')
        cl = (st.get('clusters', cl_el.get('id')) if cl_el.get('id') else
              st.find('clusters', xmlapi.text(cl_el, 'name') or ''))
        if cl is None:
            raise xmlapi.BadRequest('Entity not found: Cluster: %s' % (
                cl_el.get('id') or xmlapi.text(cl_el, 'name')))
        ca_bundle = xmlapi.text(el, 'certificate/content')
        if ca_bundle and 'BEGIN CERTIFICATE' not in ca_bundle:
            raise xmlapi.BadRequest('certificate/content must hold PEM CA certificates')
        deploy = self.flag(query.get('deploy_hosted_engine'), 'deploy_hosted_engine', False)
        if self.flag(query.get('undeploy_hosted_engine'), 'undeploy_hosted_engine', False):
            raise xmlapi.BadRequest('undeploy_hosted_engine applies to the install of a host '
                                    'that has hosted-engine deployed, not to adding one')
        activate = self.flag(query.get('activate'), 'activate', True)
        self.no_reboot(self.flag(query.get('reboot'), 'reboot', False))
        password = xmlapi.text(el, 'root_password')
        ssh = self.ssh_settings(el)
        with st.lock:
            if st.find('hosts', name):
                raise xmlapi.BadRequest('[Cannot add Host. The Host name is already in use, '
                                        'please choose a unique name and try again.]',
                                        status=409)
            if any(h.get('address') == address and int(h.get('port') or DEFAULT_PORT) == port
                   for h in st.items('hosts')):
                raise xmlapi.BadRequest('[Cannot add Host. The address %s is already in use by '
                                        'another host.]' % address, status=409)
            host = {'id': str(uuid.uuid4()), 'name': name, 'address': address, 'port': port,
                    'comment': xmlapi.text(el, 'comment') or '', 'cluster': cl['id'],
                    'status': 'installing', 'status_detail': None,
                    'deploy_hosted_engine': deploy, 'ssh': ssh,
                    'spm_id': self.engine.free_spm_id(cl['data_center']),
                    'ca_bundle': ca_bundle, 'added': time.time()}
            st.put('hosts', host)
        log.info('host %s (%s:%d) added to cluster %s with host id %d%s', name, address, port,
                 cl['name'], host['spm_id'],
                 ', hosted-engine deployment requested' if deploy else '')
        if not password and not activate:
            st.update('hosts', host['id'], status='maintenance')
        # the answer is the host as added: its monitor or install may change it at
        # once, and the caller sees those changes on its next get
        created = st.get('hosts', host['id'])
        if password:
            # oVirt's host-deploy: over SSH as root; the password stays in memory for
            # the install only
            self.engine.install(host['id'], password, action='deploy' if deploy else None,
                                activate=activate)
        else:
            # no root password: the host agent is already installed and trusts the
            # engine CA (the first hosted-engine host adds itself this way); one
            # added in maintenance is monitored too
            self.engine.monitor(host['id'])
        self.send_xml(201, xmlapi.host(created),
                      [('Location', '%s/hosts/%s' % (xmlapi.API, host['id']))])

    # -- data centers, clusters, storage domains and VMs added through the API --------

    ADDERS = {'datacenters': 'add_data_center', 'clusters': 'add_cluster',
              'storagedomains': 'add_storage_domain', 'vms': 'add_vm'}

    @staticmethod
    def new_name(el, what, limit):
        """The <name> of an add request, checked as oVirt checks names."""
        name = xmlapi.text(el, 'name')
        if not name:
            raise xmlapi.BadRequest('%s [name] required for add' % what)
        if len(name) > limit or not NAME_RE.match(name):
            raise xmlapi.BadRequest('%s name %r is not valid: use at most %d letters, digits, '
                                    '"-", "_" or "."' % (what, name, limit))
        return name

    def referenced(self, el, tag, kind, what):
        """The object an add request names by <tag id=...> or <tag><name/></tag>."""
        ref = el.find(tag)
        if ref is None or not (ref.get('id') or xmlapi.text(ref, 'name')):
            raise xmlapi.BadRequest('%s [%s.id|name] required for add' % (what, tag))
        st = self.engine.state
        obj = st.get(kind, ref.get('id')) if ref.get('id') else \
            st.find(kind, xmlapi.text(ref, 'name'))
        if obj is None:
            raise xmlapi.BadRequest('Entity not found: %s: %s' % (
                tag, ref.get('id') or xmlapi.text(ref, 'name')), status=404)
        return obj

    def created(self, kind, obj):
        self.send_xml(201, self.render(kind, obj),
                      [('Location', '%s/%s/%s' % (xmlapi.API, kind, obj['id']))])

    def put_unique(self, kind, obj, what):
        st = self.engine.state
        with st.lock:
            if st.find(kind, obj['name']):
                raise xmlapi.BadRequest('[Cannot add %s. The %s name is already in use.]'
                                        % (what, what), status=409)
            st.put(kind, obj)
        log.info('%s %s added (%s)', what.lower(), obj['name'], obj['id'])

    def add_data_center(self, query):
        el = xmlapi.parse(self.read_body(), 'data_center')
        name = self.new_name(el, 'Data Center', 40)
        dc = {'id': str(uuid.uuid4()), 'name': name,
              'description': xmlapi.text(el, 'description') or '',
              'local': self.flag(xmlapi.text(el, 'local'), 'local', False)}
        self.put_unique('data_centers', dc, 'Data Center')
        self.created('datacenters', dc)

    def add_cluster(self, query):
        el = xmlapi.parse(self.read_body(), 'cluster')
        name = self.new_name(el, 'Cluster', 40)
        dc = self.referenced(el, 'data_center', 'data_centers', 'Cluster')
        cl = {'id': str(uuid.uuid4()), 'name': name,
              'description': xmlapi.text(el, 'description') or '', 'data_center': dc['id']}
        if xmlapi.text(el, 'cpu/type'):
            cl['cpu_type'] = xmlapi.text(el, 'cpu/type')
        self.put_unique('clusters', cl, 'Cluster')
        self.created('clusters', cl)

    def add_storage_domain(self, query):
        """As oVirt's AddStorageDomain: through an up host, connect the storage server and
        StorageDomain.create on it; the new domain is unattached."""
        st = self.engine.state
        el = xmlapi.parse(self.read_body(), 'storage_domain')
        name = self.new_name(el, 'Storage Domain', 50)
        sd_class = xmlapi.text(el, 'type')
        if sd_class not in SD_CLASSES:
            raise xmlapi.BadRequest('Storage Domain [type] must be one of %s, got %r'
                                    % (', '.join(SD_CLASSES), sd_class))
        storage_type = xmlapi.text(el, 'storage/type')
        if storage_type not in SD_TYPES:
            raise xmlapi.BadRequest('storage type %r is not supported by this engine: use %s '
                                    '(file storage)' % (storage_type, ', '.join(SD_TYPES)))
        path = xmlapi.text(el, 'storage/path')
        address = xmlapi.text(el, 'storage/address')
        if not path:
            raise xmlapi.BadRequest('Storage Domain [storage.path] required for add')
        if storage_type in ('nfs', 'glusterfs') and not address:
            raise xmlapi.BadRequest('Storage Domain [storage.address] required for %s storage'
                                    % storage_type)
        if storage_type == 'localfs' and not path.startswith('/'):
            raise xmlapi.BadRequest('the local storage path %r must be absolute' % path)
        version = (xmlapi.text(el, 'storage_format') or 'v5').lstrip('v')
        if version not in ('3', '4', '5'):
            raise xmlapi.BadRequest('storage_format must be v3, v4 or v5')
        host = self.referenced(el, 'host', 'hosts', 'Storage Domain')
        if host.get('status') != 'up':
            raise xmlapi.BadRequest('[Cannot add Storage. The host %s is %s: use a host that is '
                                    'up.]' % (host['name'], host.get('status')), status=409)
        if st.find('storage_domains', name):
            raise xmlapi.BadRequest('[Cannot add Storage Domain. The Storage Domain name is '
                                    'already in use.]', status=409)
        connection = path if storage_type in ('localfs', 'posixfs') else '%s:%s' % (address,
                                                                                     path)
        conn = {'id': str(uuid.uuid4()), 'connection': connection}
        for key, tag in (('vfs_type', 'storage/vfs_type'),
                         ('mnt_options', 'storage/mount_options'),
                         ('protocol_version', 'storage/nfs_version')):
            if xmlapi.text(el, tag):
                conn[key] = xmlapi.text(el, tag).lstrip('v')
        sd = {'id': str(uuid.uuid4()), 'name': name, 'type': sd_class,
              'storage_type': storage_type, 'address': address or '', 'path': path,
              'status': 'unattached', 'master': False, 'version': int(version),
              'block_size': 512, 'pool': None, 'data_center': None}
        self.engine.create_storage_domain(host, sd, conn)
        self.put_unique('storage_domains', sd, 'Storage Domain')
        self.created('storagedomains', sd)

    def add_vm(self, query):
        """A VM record (down) in a cluster, from the Blank template."""
        el = xmlapi.parse(self.read_body(), 'vm')
        name = self.new_name(el, 'VM', 64)
        cl = self.referenced(el, 'cluster', 'clusters', 'VM')
        tmpl = el.find('template')
        if tmpl is None or (tmpl.get('id') or xmlapi.text(tmpl, 'name')) not in (
                BLANK_TEMPLATE_ID, 'Blank'):
            raise xmlapi.BadRequest('VM [template.id|name] required for add: this engine has '
                                    'the Blank template only (name Blank, id %s)'
                                    % BLANK_TEMPLATE_ID, status=404 if tmpl is not None else 400)
        memory = xmlapi.text(el, 'memory') or str(1024 ** 3)
        try:
            memory_mib = int(memory) // (1024 * 1024)
            if memory_mib < 1:
                raise ValueError
        except ValueError:
            raise xmlapi.BadRequest('VM memory %r is not a size in bytes of at least 1 MiB'
                                    % memory)
        vm = {'id': str(uuid.uuid4()), 'name': name, 'status': 'down', 'host': None,
              'cluster': cl['id'], 'memory_mib': memory_mib,
              'description': xmlapi.text(el, 'description') or ''}
        self.put_unique('vms', vm, 'VM')
        self.created('vms', vm)

    def action_body(self):
        body = self.read_body()
        if not body.strip():
            return xmlapi.parse(b'<action/>', 'action')
        return xmlapi.parse(body, 'action')

    def send_action(self, _request=None):
        """The action's answer: never the request echoed (it may hold the root password)."""
        self.send_xml(200, xmlapi.action_done())

    def running_vms(self, host_id):
        return sorted(v['name'] for v in self.engine.state.items('vms')
                      if v.get('host') == host_id
                      and v.get('status') not in ('down', 'unknown'))

    def deactivate_host(self, host_id, query):
        el = self.action_body()
        host = self.lookup('hosts', host_id)
        if host.get('status') == 'maintenance':
            return self.send_action(el)
        if host.get('status') in ('installing', 'unassigned') or host.get('install_running'):
            raise xmlapi.BadRequest('[Cannot switch Host to Maintenance mode. Host is being '
                                    'installed or activated: wait until it ends.]', status=409)
        vms = self.running_vms(host_id)
        if vms:
            raise xmlapi.BadRequest('[Cannot switch Host %s to Maintenance mode: VMs run on it '
                                    '(%s) and this engine does not migrate them; shut them down '
                                    'or move them first.]' % (host['name'], ', '.join(vms)),
                                    status=409)
        changes = {'status': 'maintenance', 'status_detail': None}
        if (host.get('ha_stats') or {}).get('configured'):
            changes['ha_local_maintenance_request'] = True   # as oVirt: HA local maintenance
        self.engine.state.update('hosts', host_id, **changes)
        log.info('host %s: switched to maintenance%s', host['name'],
                 xmlapi.text(el, 'reason') and ' (%s)' % xmlapi.text(el, 'reason') or '')
        self.send_action(el)

    def activate_host(self, host_id, query):
        el = self.action_body()
        host = self.lookup('hosts', host_id)
        if host.get('status') == 'up':
            return self.send_action(el)
        if host.get('status') != 'maintenance':
            raise xmlapi.BadRequest('[Cannot activate Host. Host is in %s status: only a host in '
                                    'maintenance can be activated.]' % host.get('status'),
                                    status=409)
        changes = {'status': 'unassigned', 'status_detail': None}
        if (host.get('ha_stats') or {}).get('configured'):
            changes['ha_local_maintenance_request'] = False
        self.engine.state.update('hosts', host_id, **changes)
        log.info('host %s: activated', host['name'])
        self.engine.monitor(host_id)
        self.send_action(el)

    def install_host(self, host_id, query):
        el = self.action_body()
        host = self.lookup('hosts', host_id)

        def field(name):
            value = xmlapi.text(el, name)
            return value if value is not None else query.get(name)
        deploy = self.flag(field('deploy_hosted_engine'), 'deploy_hosted_engine', False)
        undeploy = self.flag(field('undeploy_hosted_engine'), 'undeploy_hosted_engine', False)
        if deploy and undeploy:
            raise xmlapi.BadRequest('deploy_hosted_engine and undeploy_hosted_engine are both '
                                    'true: give one of them')
        activate = self.flag(field('activate'), 'activate', True)
        self.no_reboot(self.flag(field('reboot'), 'reboot', False))
        if xmlapi.text(el, 'image'):
            raise xmlapi.BadRequest('this engine installs no host images: leave image out')
        if host.get('status') not in INSTALLABLE:
            raise xmlapi.BadRequest('[Cannot install Host. Please move Host to Maintenance mode '
                                    'first.]', status=409)
        password = xmlapi.text(el, 'root_password')
        if not password:
            raise xmlapi.BadRequest('[Cannot install Host with empty password.]')
        ssh = self.ssh_settings(el, old=host.get('ssh'))
        self.engine.state.update('hosts', host_id, ssh=ssh,
                                 deploy_hosted_engine=deploy or (
                                     host.get('deploy_hosted_engine') and not undeploy))
        self.engine.install(host_id, password,
                            action='deploy' if deploy else 'undeploy' if undeploy else None,
                            activate=activate)
        self.send_action(el)

    def remove_host(self, host_id):
        host = self.lookup('hosts', host_id)
        if host.get('status') not in REMOVABLE or host.get('install_running'):
            raise xmlapi.BadRequest('[Cannot remove Host. Host is operational. Please switch Host '
                                    'to Maintenance mode first.]', status=409)
        with self.engine.monitors_lock:
            m = self.engine.monitors.pop(host_id, None)
        self.engine.state.remove('hosts', host_id)
        if m is not None:
            m.stop_event.set()
        self.engine.forget_vms_of(host_id)
        log.info('host %s removed (host id %s free again)', host['name'], host.get('spm_id'))
        self.send(200, b'', 'application/xml')


USER_ID = '0f8d2a4c-0000-4000-8000-000000000001'


class EngineHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, engine, tls, https_port=None):
        family = socket.AF_INET6 if ':' in address[0] else socket.AF_INET
        self.address_family = family
        self.engine = engine
        self.tls = tls
        self.https_port = https_port
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        if self.tls:
            if not self.engine.refresh():
                request.close()
                return
            request.settimeout(HANDSHAKE_TIMEOUT)
            try:
                request = self.engine.state.pki.server_context().wrap_socket(
                    request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log.debug('TLS handshake with %s failed: %s', client_address[0], e)
                return
            request.settimeout(None)
        super().finish_request(request, client_address)
