"""The lab engine's HTTP and HTTPS servers.

HTTP and HTTPS:  /ovirt-engine/services/health
                 /ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA
HTTPS only:      /ovirt-engine/sso/oauth/token, /ovirt-engine/sso/oauth/token-info,
                 /ovirt-engine/services/sso-logout, /ovirt-engine/api/...
                 (over plain HTTP these answer a redirect to HTTPS)
"""
import json
import logging
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import xmlapi
from .hosts import DEFAULT_PORT, VM_STATUS, HostMonitor
from .state import ENGINE_VERSION, State

log = logging.getLogger('engine')

HEALTH_OK = 'DB Up!Welcome to Health Status!'
TOKEN_LIFETIME = 10 * 3600
MAX_BODY = 1024 * 1024
HANDSHAKE_TIMEOUT = 10


class Engine:
    """State, tokens and host monitors behind both servers."""

    def __init__(self, state_dir, monitor_interval=5.0):
        self.state = State(state_dir)
        self.monitor_interval = monitor_interval
        self.tokens = {}
        self.tokens_lock = threading.Lock()
        self.monitors = {}
        self.monitors_lock = threading.Lock()
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
        for h in self.state.items('hosts'):
            self.monitor(h['id'])

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
        for m in monitors:
            m.stop_event.set()
        for m in monitors:
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
        return 'up' if up and self.state.items('storage_domains') else 'uninitialized'


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
        if length > MAX_BODY:
            raise xmlapi.BadRequest('request body too large', status=413)
        return self.rfile.read(length) if length else b''

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
            self.get_only(kind)
            return self.list(kind, query)
        if len(parts) == 2:
            if self.command == 'DELETE' and kind == 'hosts':
                return self.remove_host(parts[1])
            self.get_only(kind)
            return self.get_one(kind, parts[1])
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

    def render(self, kind, obj):
        e = self.engine
        if kind == 'datacenters':
            return xmlapi.data_center(obj, e.dc_status(obj['id']))
        if kind == 'clusters':
            return xmlapi.cluster(obj)
        if kind == 'hosts':
            return xmlapi.host(obj)
        if kind == 'storagedomains':
            return xmlapi.storage_domain(obj, e.default_dc())
        clusters = e.state.items('clusters')
        return xmlapi.vm(obj, clusters[0]['id'] if clusters else None)

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
        self.send_xml(200, xmlapi.collection(self.TAGS[kind],
                                             [self.render(kind, o) for o in items]))

    def lookup(self, kind, obj_id):
        obj = self.engine.state.get(self.KINDS[kind], obj_id)
        if obj is None:
            raise xmlapi.BadRequest('Entity not found: %s' % obj_id, status=404,
                                    reason='Operation Failed')
        return obj

    def get_one(self, kind, obj_id):
        self.send_xml(200, self.render(kind, self.lookup(kind, obj_id)))

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
                    'deploy_hosted_engine': query.get('deploy_hosted_engine', '').lower() == 'true',
                    'ca_bundle': ca_bundle, 'added': time.time()}
            st.put('hosts', host)
        # root_password is for oVirt's SSH host-deploy; this engine installs
        # nothing over SSH (the host agent is already there), so it is dropped.
        log.info('host %s (%s:%d) added to cluster %s%s', name, address, port, cl['name'],
                 ', hosted-engine deployment requested' if host['deploy_hosted_engine'] else '')
        self.engine.monitor(host['id'])
        self.send_xml(201, xmlapi.host(host),
                      [('Location', '%s/hosts/%s' % (xmlapi.API, host['id']))])

    def remove_host(self, host_id):
        host = self.lookup('hosts', host_id)
        with self.engine.monitors_lock:
            m = self.engine.monitors.pop(host_id, None)
        self.engine.state.remove('hosts', host_id)
        if m is not None:
            m.stop_event.set()
        self.engine.forget_vms_of(host_id)
        log.info('host %s removed', host['name'])
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
