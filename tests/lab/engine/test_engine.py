"""The lab engine on loopback, driven by the real ovirt-engine-sdk-python and by
real host agents (ovirt-hosted-engine-hostd) over JSON-RPC/STOMP/TLS."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from api.hostd_proc import TOP, Hostd, free_port, python

from .engine_proc import ADMIN_PASSWORD, FQDN, EngineProc, engine_setup

ovirtsdk4 = pytest.importorskip('ovirtsdk4')
types = ovirtsdk4.types


def wait_host(conn, host_id, status, timeout=30, detail=None):
    """Poll the host through the SDK until it has status (and detail in its
    status_detail); return it."""
    svc = conn.system_service().hosts_service().host_service(host_id)
    deadline = time.monotonic() + timeout
    h = svc.get()
    while h.status != status or (detail and detail not in (h.status_detail or '')):
        if time.monotonic() > deadline:
            raise AssertionError('host %s still %s (%s) after %d s, wanted %s'
                                 % (h.name, h.status, h.status_detail, timeout, status))
        time.sleep(0.2)
        h = svc.get()
    return h


def add_host(conn, name, port, address='127.0.0.1', **kw):
    """Add a host whose agent is already installed, as the first hosted-engine host adds
    itself (no root password: no SSH install)."""
    return conn.system_service().hosts_service().add(
        types.Host(name=name, address=address, port=port,
                   cluster=types.Cluster(name='Default'), **kw),
        deploy_hosted_engine=True)


def remove_host(conn, host_id):
    """Remove a host, switching it to maintenance first (an up host cannot be removed)."""
    svc = conn.system_service().hosts_service().host_service(host_id)
    if svc.get().status == types.HostStatus.UP:
        svc.deactivate()
    svc.remove()


def trust_engine(agent, engine):
    os.makedirs(os.path.join(agent.pki, 'trusted-cas'), exist_ok=True)
    shutil.copy(engine.ca_file, os.path.join(agent.pki, 'trusted-cas', 'engine.pem'))


@pytest.fixture
def hostd_factory():
    agents = []

    def make(**kw):
        base = tempfile.mkdtemp(prefix='engine-hostd-')
        a = Hostd(base, **kw).start()
        agents.append(a)
        return a
    yield make
    for a in agents:
        rc = a.stop()
        assert rc == 0, 'hostd exit status %s:\n%s' % (rc, a.read_log()[-2000:])
        shutil.rmtree(a.base, ignore_errors=True)


# -- plain HTTP: health and the CA ----------------------------------------------

def test_health_page_over_http(engine):
    with urllib.request.urlopen(engine.http + '/ovirt-engine/services/health', timeout=10) as r:
        assert r.status == 200
        assert r.read().decode() == 'DB Up!Welcome to Health Status!'


def test_pki_resource_serves_the_engine_ca(engine):
    with open(os.path.join(engine.state_dir, 'pki', 'ca.pem'), 'rb') as f:
        ca = f.read()
    with open(engine.ca_file, 'rb') as f:
        assert f.read() == ca
    out = subprocess.run(['openssl', 'x509', '-noout', '-subject', '-ext', 'basicConstraints'],
                         input=ca, capture_output=True, check=True).stdout.decode()
    assert 'CA:TRUE' in out and FQDN in out
    # the HTTPS certificate chains to it and names the FQDN
    r = subprocess.run(['openssl', 'verify', '-CAfile', engine.ca_file, '-verify_hostname', FQDN,
                        os.path.join(engine.state_dir, 'pki', 'certs', 'apache.cer')],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(engine.http + '/ovirt-engine/services/pki-resource'
                               '?resource=nonsense&format=X509-PEM-CA', timeout=10)
    assert e.value.code == 400


def test_api_over_http_redirects_to_https(engine):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(engine.http + '/ovirt-engine/api', timeout=10)
    assert e.value.code == 301
    assert e.value.headers['Location'] == engine.https + '/ovirt-engine/api'


# -- SSO and the API root ---------------------------------------------------

def test_connection(connection):
    assert connection.test(raise_exception=True)
    api = connection.system_service().get()
    assert api.product_info.name == 'oVirt Engine'
    assert api.product_info.version.major == 4


def test_wrong_password_is_an_auth_error(engine):
    conn = ovirtsdk4.Connection(url=engine.api_url, username='admin@internal',
                                password='not-the-password', ca_file=engine.ca_file)
    with pytest.raises(ovirtsdk4.AuthError) as e:
        conn.test(raise_exception=True)
    assert 'username or password is incorrect' in str(e.value)
    conn.close(logout=False)
    assert 'not-the-password' not in engine.read_log()


def test_untrusted_engine_certificate_is_refused(engine, tmp_path):
    other = tmp_path / 'other-ca.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout',
                    str(tmp_path / 'k'), '-out', str(other), '-subj', '/CN=other', '-days', '1'],
                   check=True, capture_output=True)
    conn = ovirtsdk4.Connection(url=engine.api_url, username='admin@internal',
                                password=ADMIN_PASSWORD, ca_file=str(other))
    with pytest.raises(ovirtsdk4.Error):
        conn.test(raise_exception=True)


def test_api_without_token_is_401(engine):
    ctx = engine.tls_context(engine.ca_file)
    for path in ('/ovirt-engine/api', '/ovirt-engine/api/hosts'):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(engine.https + path, timeout=10, context=ctx)
        assert e.value.code == 401
    req = urllib.request.Request(engine.https + '/ovirt-engine/api',
                                 headers={'Authorization': 'Bearer made-up-token'})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10, context=ctx)
    assert e.value.code == 401


def test_sso_token_and_logout(engine):
    ctx = engine.tls_context(engine.ca_file)
    body = urllib.parse.urlencode({'grant_type': 'password', 'username': 'admin@internal',
                                   'password': ADMIN_PASSWORD, 'scope': 'ovirt-app-api'})
    req = urllib.request.Request(engine.https + '/ovirt-engine/sso/oauth/token',
                                 data=body.encode(), headers={'Accept': 'application/json'})
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        tok = json.loads(r.read())
    assert tok['token_type'] == 'bearer' and tok['access_token'] and int(tok['exp']) > 0
    api = urllib.request.Request(engine.https + '/ovirt-engine/api',
                                 headers={'Authorization': 'Bearer ' + tok['access_token']})
    with urllib.request.urlopen(api, timeout=10, context=ctx) as r:
        assert b'<product_info>' in r.read()
    logout = urllib.request.Request(
        engine.https + '/ovirt-engine/services/sso-logout',
        data=urllib.parse.urlencode({'token': tok['access_token']}).encode())
    urllib.request.urlopen(logout, timeout=10, context=ctx).read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(api, timeout=10, context=ctx)
    assert e.value.code == 401


# -- inventory ------------------------------------------------------------

def test_default_data_center_and_cluster(connection):
    sys = connection.system_service()
    dcs = sys.data_centers_service().list()
    assert [d.name for d in dcs] == ['Default']
    clusters = sys.clusters_service().list()
    assert [c.name for c in clusters] == ['Default']
    assert clusters[0].data_center.id == dcs[0].id
    got = sys.clusters_service().cluster_service(clusters[0].id).get()
    assert got.name == 'Default'
    assert sys.data_centers_service().data_center_service(dcs[0].id).get().name == 'Default'
    assert sys.clusters_service().list(search='name=Default')[0].id == clusters[0].id
    assert sys.clusters_service().list(search='name=nothing*') == []
    assert sys.storage_domains_service().list() == []
    with pytest.raises(ovirtsdk4.NotFoundError):
        sys.hosts_service().host_service('no-such-host').get()


def test_add_host_bad_input_is_a_fault(connection):
    hosts = connection.system_service().hosts_service()
    with pytest.raises(ovirtsdk4.Error) as e:
        hosts.add(types.Host(name='x', address='127.0.0.1', cluster=types.Cluster(name='Nope')))
    assert 'Cluster' in str(e.value) and e.value.code == 400
    with pytest.raises(ovirtsdk4.Error) as e:
        hosts.add(types.Host(name='x', cluster=types.Cluster(name='Default')))
    assert 'address' in str(e.value)


# -- hosts -------------------------------------------------------------------

def test_unreachable_host_is_non_responsive(connection):
    port = free_port()     # nothing listens there
    h = add_host(connection, 'nowhere', port)
    assert h.status == types.HostStatus.INSTALLING
    h = wait_host(connection, h.id, types.HostStatus.NON_RESPONSIVE)
    assert 'Connection refused' in h.status_detail
    connection.system_service().hosts_service().host_service(h.id).remove()


def test_add_host_trust_on_first_use_then_up(engine, connection, hostd_factory):
    agent = hostd_factory()
    h = add_host(connection, 'host1', agent.port)
    # the agent does not trust the engine CA yet: the engine's client
    # certificate is refused and the host is non responsive
    h = wait_host(connection, h.id, types.HostStatus.NON_RESPONSIVE)
    # the engine CA installed in the agent's trusted-cas: it counts from the
    # next connection on, without restarting the agent
    trust_engine(agent, engine)
    h = wait_host(connection, h.id, types.HostStatus.UP)
    assert h.address == '127.0.0.1' and h.port == agent.port
    assert h.cluster.id == connection.system_service().clusters_service().list()[0].id
    assert h.memory > 0 and h.cpu.name
    assert 'ovirt-hosted-engine' in h.certificate.subject
    listed = connection.system_service().hosts_service().list(search='name=host1')
    assert [x.id for x in listed] == [h.id]
    assert connection.system_service().hosts_service().list(search='name=host1 and status=up')
    assert not connection.system_service().hosts_service().list(search='status=maintenance')
    with open(os.path.join(agent.pki, 'hostcert.pem')) as f:
        from ovirt_hosted_engine_setup.lab.engine.pki import pem_fingerprint
        fp = pem_fingerprint(f.read())
    log = engine.read_log()
    assert 'trusting its certificate on first use, SHA-256 fingerprint %s' % fp in log
    with pytest.raises(ovirtsdk4.Error) as e:
        add_host(connection, 'host1', agent.port)
    assert e.value.code == 409

    # the agent comes back with another certificate (same CA): refused
    agent.stop()
    for name in ('hostcert.pem', 'hostkey.pem'):
        os.unlink(os.path.join(agent.pki, name))
    agent.start()
    h = wait_host(connection, h.id, types.HostStatus.NON_RESPONSIVE, detail='certificate changed')
    assert fp in h.status_detail
    connection.system_service().hosts_service().host_service(h.id).remove()


def test_add_host_with_ca_bundle(engine, connection, hostd_factory):
    agent = hostd_factory()
    trust_engine(agent, engine)
    with open(os.path.join(agent.pki, 'cacert.pem')) as f:
        agent_ca = f.read()
    good = add_host(connection, 'host2', agent.port,
                    certificate=types.Certificate(content=agent_ca))
    wait_host(connection, good.id, types.HostStatus.UP)
    # a CA that did not sign the agent's certificate: the agent is not trusted
    wrong = add_host(connection, 'host3', agent.port, address='localhost',
                     certificate=types.Certificate(content=open(engine.ca_file).read()))
    h = wait_host(connection, wrong.id, types.HostStatus.NON_RESPONSIVE)
    assert 'certificate' in h.status_detail or 'TLS' in h.status_detail
    assert h.certificate is None     # nothing pinned: the CA bundle decides
    for x in (good, wrong):
        remove_host(connection, x.id)


def test_agent_skips_a_bad_trusted_ca_file(engine, connection, hostd_factory):
    agent = hostd_factory()
    os.makedirs(os.path.join(agent.pki, 'trusted-cas'), exist_ok=True)
    with open(os.path.join(agent.pki, 'trusted-cas', 'broken.pem'), 'w') as f:
        f.write('not a certificate\n')
    trust_engine(agent, engine)
    h = add_host(connection, 'host4', agent.port)
    wait_host(connection, h.id, types.HostStatus.UP)
    assert 'broken.pem skipped' in agent.read_log()
    with agent.client() as c:       # the agent's own client certificate still works
        assert c.ping()
    remove_host(connection, h.id)


def test_state_survives_a_restart(tmp_path, hostd_factory):
    state = str(tmp_path / 'state')
    assert engine_setup(state).returncode == 0
    eng = EngineProc(state).start()
    try:
        ca = eng.fetch_ca(str(tmp_path / 'ca.pem'))
        eng.ca_file = ca
        agent = hostd_factory()
        trust_engine(agent, eng)
        conn = ovirtsdk4.Connection(url=eng.api_url, username='admin@internal',
                                    password=ADMIN_PASSWORD, ca_file=ca)
        h = add_host(conn, 'host1', agent.port)
        wait_host(conn, h.id, types.HostStatus.UP)
        dc = conn.system_service().data_centers_service().list()[0].id
        assert eng.stop() == 0
        eng.start()
        # same CA, same inventory; the SDK's old token is refused with 401 and
        # it logs in again by itself
        assert open(eng.fetch_ca(str(tmp_path / 'ca2.pem'))).read() == open(ca).read()
        assert conn.system_service().data_centers_service().list()[0].id == dc
        got = wait_host(conn, h.id, types.HostStatus.UP)
        assert got.name == 'host1'
        conn.close()
    finally:
        assert eng.stop() == 0


def test_setup_errors_are_one_line(tmp_path):
    state = str(tmp_path / 'state')
    r = subprocess.run([python(), '-m', 'ovirt_hosted_engine_setup.lab.engine.setup',
                        '--state-dir', state, '--fqdn', 'engine.lab.test',
                        '--admin-password-file', str(tmp_path / 'missing')],
                       capture_output=True, text=True, cwd=TOP, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert r.stderr.strip().count('\n') == 0 and 'admin password file' in r.stderr
    r = engine_setup(state, fqdn='bad_name!')
    assert r.returncode == 1 and 'not a valid host name' in r.stderr
    r = engine_setup(state, password='')
    assert r.returncode == 1 and 'password is empty' in r.stderr
    assert engine_setup(state).returncode == 0
    r = engine_setup(state, fqdn='other.lab.test')
    assert r.returncode == 1 and 'already set up as engine.lab.test' in r.stderr


def test_not_set_up_engine_says_db_down(tmp_path):
    state = str(tmp_path / 'state')
    eng = EngineProc(state).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(eng.http + '/ovirt-engine/services/health', timeout=10)
        assert e.value.code == 503 and b'DB Down' in e.value.read()
        assert engine_setup(state).returncode == 0
        with urllib.request.urlopen(eng.http + '/ovirt-engine/services/health', timeout=10) as r:
            assert r.read() == b'DB Up!Welcome to Health Status!'
        ca = eng.fetch_ca(str(tmp_path / 'ca.pem'))
        conn = ovirtsdk4.Connection(url=eng.api_url, username='admin@internal',
                                    password=ADMIN_PASSWORD, ca_file=ca)
        assert conn.test(raise_exception=True)
        conn.close()
    finally:
        assert eng.stop() == 0
