"""The engine API's XML (version 4), as ovirt-engine-sdk-python reads and writes it."""
import datetime
import fnmatch
import re
import xml.etree.ElementTree as ET

API = '/ovirt-engine/api'
COMPAT = (4, 7)
COLLECTIONS = ('clusters', 'datacenters', 'hosts', 'storagedomains', 'vms')


class BadRequest(Exception):
    """A request the API refuses; status is the HTTP code."""

    def __init__(self, detail, status=400, reason='Operation Failed'):
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.reason = reason


def _sub(parent, tag, text=None, **attrs):
    e = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        e.text = str(text).lower() if isinstance(text, bool) else str(text)
    return e


def _ref(parent, tag, collection, obj_id):
    if obj_id:
        _sub(parent, tag, href='%s/%s/%s' % (API, collection, obj_id), id=obj_id)


def _root(tag, collection, obj):
    return ET.Element(tag, {'href': '%s/%s/%s' % (API, collection, obj['id']), 'id': obj['id']})


def _version(parent, tag, major, minor, build=None, revision=None, full=None):
    v = _sub(parent, tag)
    if build is not None:
        _sub(v, 'build', build)
    if full is not None:
        _sub(v, 'full_version', full)
    _sub(v, 'major', major)
    _sub(v, 'minor', minor)
    if revision is not None:
        _sub(v, 'revision', revision)
    return v


def to_bytes(element):
    return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + \
        ET.tostring(element, encoding='utf-8')


def fault(reason, detail):
    e = ET.Element('fault')
    _sub(e, 'detail', detail)
    _sub(e, 'reason', reason)
    return e


def action_done():
    e = ET.Element('action')
    _sub(e, 'status', 'complete')
    return e


def collection(tag, items):
    e = ET.Element(tag)
    for item in items:
        e.append(item)
    return e


def api_root(engine_version, instance_id, summary, user_id):
    e = ET.Element('api')
    for rel in COLLECTIONS:
        _sub(e, 'link', href='%s/%s' % (API, rel), rel=rel)
        _sub(e, 'link', href='%s/%s?search={query}' % (API, rel), rel='%s/search' % rel)
    major, minor, build = engine_version
    info = _sub(e, 'product_info')
    _sub(info, 'instance_id', instance_id)
    _sub(info, 'name', 'oVirt Engine')
    _sub(info, 'vendor', 'ovirt.org')
    _version(info, 'version', major, minor, build=build, revision=0,
             full='%d.%d.%d-1.lab' % (major, minor, build))
    s = _sub(e, 'summary')
    for key in ('hosts', 'storage_domains', 'users', 'vms'):
        active, total = summary.get(key, (0, 0))
        k = _sub(s, key)
        _sub(k, 'active', active)
        _sub(k, 'total', total)
    _sub(e, 'time', datetime.datetime.now().astimezone().isoformat(timespec='milliseconds'))
    _ref(e, 'authenticated_user', 'users', user_id)
    _ref(e, 'effective_user', 'users', user_id)
    return e


def data_center(dc, status):
    e = _root('data_center', 'datacenters', dc)
    _sub(e, 'name', dc['name'])
    _sub(e, 'description', dc.get('description', ''))
    _sub(e, 'link', href='%s/datacenters/%s/clusters' % (API, dc['id']), rel='clusters')
    _sub(e, 'local', bool(dc.get('local')))
    _sub(e, 'quota_mode', 'disabled')
    _sub(e, 'status', status)
    _sub(e, 'storage_format', 'v5')
    sv = _sub(e, 'supported_versions')
    _version(sv, 'version', *COMPAT)
    _version(e, 'version', *COMPAT)
    return e


def cluster(cl):
    e = _root('cluster', 'clusters', cl)
    _sub(e, 'name', cl['name'])
    _sub(e, 'description', cl.get('description', ''))
    cpu = _sub(e, 'cpu')
    _sub(cpu, 'architecture', 'x86_64')
    _sub(cpu, 'type', cl.get('cpu_type') or 'Intel Nehalem Family')
    _version(e, 'version', *COMPAT)
    _ref(e, 'data_center', 'datacenters', cl.get('data_center'))
    return e


def host(h, all_content=False):
    """A host; <hosted_engine> only with all_content and once the host reports hosted-engine
    configured (as oVirt's addHostedEngineIfConfigured)."""
    e = _root('host', 'hosts', h)
    _sub(e, 'name', h['name'])
    _sub(e, 'comment', h.get('comment', ''))
    _sub(e, 'address', h['address'])
    caps = h.get('capabilities') or {}
    if h.get('server_cert_subject') or h.get('server_cert'):
        c = _sub(e, 'certificate')
        if h.get('server_cert_organization'):
            _sub(c, 'organization', h['server_cert_organization'])
        if h.get('server_cert_subject'):
            _sub(c, 'subject', h['server_cert_subject'])
    if caps.get('cpu_model'):
        cpu = _sub(e, 'cpu')
        _sub(cpu, 'name', caps['cpu_model'])
        topo = _sub(cpu, 'topology')
        for key in ('cores', 'sockets', 'threads'):
            if caps.get('cpu_' + key) is not None:
                _sub(topo, key, caps['cpu_' + key])
    if caps.get('hardware_uuid'):
        hw = _sub(e, 'hardware_information')
        _sub(hw, 'uuid', caps['hardware_uuid'])
    ha = h.get('ha_stats')
    if all_content and ha and ha.get('configured'):
        he = _sub(e, 'hosted_engine')
        for key, tag in (('active', 'active'), ('configured', 'configured'),
                         ('globalMaintenance', 'global_maintenance'),
                         ('localMaintenance', 'local_maintenance'), ('score', 'score')):
            if ha.get(key) is not None:
                _sub(he, tag, ha[key] if not isinstance(ha[key], float) else int(ha[key]))
    if caps.get('memory_mib') is not None:
        _sub(e, 'memory', int(caps['memory_mib']) * 1024 * 1024)
    if h.get('mem_free_mib') is not None:
        _sub(e, 'max_scheduling_memory', int(h['mem_free_mib']) * 1024 * 1024)
    _sub(e, 'port', h.get('port') or 54321)
    _sub(e, 'protocol', 'stomp')
    ssh = h.get('ssh')
    if ssh:
        s = _sub(e, 'ssh')
        _sub(s, 'authentication_method', 'password')
        if ssh.get('fingerprint'):
            _sub(s, 'fingerprint', ssh['fingerprint'])
        _sub(s, 'port', ssh.get('port') or 22)
        u = _sub(s, 'user')
        _sub(u, 'user_name', 'root')
    _sub(e, 'status', h.get('status', 'installing'))
    if h.get('status_detail'):
        _sub(e, 'status_detail', h['status_detail'])
    _sub(e, 'type', 'rhel')
    if caps.get('software_version'):
        v = _sub(e, 'version')
        _sub(v, 'full_version', caps['software_version'])
    _ref(e, 'cluster', 'clusters', h.get('cluster'))
    return e


def storage_domain(sd, dc_id):
    e = _root('storage_domain', 'storagedomains', sd)
    _sub(e, 'name', sd['name'])
    _sub(e, 'external_status', 'ok')
    _sub(e, 'master', bool(sd.get('master')))
    _sub(e, 'status', sd.get('status', 'active'))
    st = _sub(e, 'storage')
    if sd.get('address'):
        _sub(st, 'address', sd['address'])
    if sd.get('path'):
        _sub(st, 'path', sd['path'])
    _sub(st, 'type', sd.get('storage_type') or 'nfs')
    _sub(e, 'storage_format', 'v%s' % (sd.get('version') or 5))
    _sub(e, 'type', sd.get('type') or 'data')
    if sd.get('block_size'):
        _sub(e, 'block_size', sd['block_size'])
    if dc_id:
        dcs = _sub(e, 'data_centers')
        _ref(dcs, 'data_center', 'datacenters', dc_id)
    return e


def vm(v, cluster_id):
    e = _root('vm', 'vms', v)
    _sub(e, 'name', v['name'])
    if v.get('memory_mib'):
        _sub(e, 'memory', int(v['memory_mib']) * 1024 * 1024)
    _sub(e, 'origin', 'managed_hosted_engine' if v['name'] == 'HostedEngine' else 'ovirt')
    _sub(e, 'status', v.get('status', 'unknown'))
    _sub(e, 'type', 'server')
    _ref(e, 'cluster', 'clusters', cluster_id)
    _ref(e, 'host', 'hosts', v.get('host') if v.get('status') != 'down' else None)
    return e


# -- request bodies ---------------------------------------------------------

def parse(body, tag):
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise BadRequest('Request syntactically incorrect: %s' % e,
                         reason='Request syntactically incorrect.')
    if root.tag != tag:
        raise BadRequest('Expected a <%s> element, got <%s>' % (tag, root.tag),
                         reason='Request syntactically incorrect.')
    return root


def text(element, path):
    e = element.find(path)
    if e is None or e.text is None:
        return None
    return e.text.strip()


# -- search ------------------------------------------------------------------

_CLAUSE = re.compile(r'^\s*([A-Za-z_.]+)\s*(!=|=)\s*(?:"([^"]*)"|(\S+))\s*$')


def search_filter(query, fields):
    """A predicate for oVirt's simple search syntax: 'name=a* and status=up'.

    fields maps a search field to a function object -> value."""
    if not query or not query.strip():
        return lambda obj: True
    clauses = []
    for part in re.split(r'\s+and\s+', query.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.match(part)
        if not m:
            raise BadRequest('Cannot understand the search query %r: use field=value '
                             '[and field=value]' % query, reason='Operation Failed')
        field, op, quoted, plain = m.groups()
        field = field.lower()
        if field not in fields:
            raise BadRequest('Unknown search field %r; known: %s'
                             % (field, ', '.join(sorted(fields))))
        clauses.append((fields[field], op, quoted if quoted is not None else plain))

    def match(obj):
        for get, op, pattern in clauses:
            value = get(obj)
            hit = value is not None and fnmatch.fnmatchcase(str(value).lower(),
                                                            pattern.lower())
            if hit != (op == '='):
                return False
        return True
    return match
