"""The hosted-engine parts of the lab engine's API on loopback, through ovirtsdk4: the
<hosted_engine> element (all_content), host ids, maintenance, install and remove rules,
and the SSH install's failures (a host that does not answer SSH, a host key that does
not match the fingerprint given, a refused password)."""
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from api.hostd_proc import Hostd, free_port
from daemon_proc import wait_for

from .engine_proc import ADMIN_PASSWORD
from .test_engine import (add_host, hostd_factory, remove_host, trust_engine,  # noqa: F401
                          wait_host)

ovirtsdk4 = pytest.importorskip('ovirtsdk4')
types = ovirtsdk4.types

ROOT_PW = 'Engine-ssh-Pw-7731'


@pytest.fixture
def he_agent(engine):
    """A host agent that trusts the engine and has hosted-engine configured."""
    base = tempfile.mkdtemp(prefix='engine-he-hostd-')
    a = Hostd(base)
    with open(os.path.join(base, 'hosted-engine.conf'), 'w') as f:
        f.write('host_id=1\n')
    a.start()
    trust_engine(a, engine)
    yield a
    rc = a.stop()
    assert rc == 0, a.read_log()[-2000:]
    shutil.rmtree(base, ignore_errors=True)


def inventory(engine):
    """The engine's inventory as its database holds it: {kind: {id: object}}."""
    from ovirt_hosted_engine_setup.lab.engine.state import State
    st = State(engine.state_dir)
    try:
        return {kind: {o['id']: o for o in st.items(kind)}
                for kind in ('data_centers', 'clusters', 'hosts', 'storage_domains', 'vms')}
    finally:
        st.close()


def raw_get(engine, connection, path, headers=()):
    """GET an API path with the SDK's token, without the SDK (to see the headers' effect)."""
    token = connection.authenticate()
    req = urllib.request.Request(engine.api_url + path,
                                 headers=dict(headers, Authorization='Bearer ' + token))
    with urllib.request.urlopen(req, timeout=10,
                                context=engine.tls_context(engine.ca_file)) as r:
        return r.read().decode()


def raw_post(engine, connection, path, body):
    token = connection.authenticate()
    req = urllib.request.Request(engine.api_url + path, data=body.encode(), method='POST',
                                 headers={'Authorization': 'Bearer ' + token,
                                          'Content-Type': 'application/xml'})
    try:
        with urllib.request.urlopen(req, timeout=10,
                                    context=engine.tls_context(engine.ca_file)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_hosted_engine_element_only_with_all_content(engine, connection, he_agent,
                                                     hostd_factory):
    hosts = connection.system_service().hosts_service()
    h = add_host(connection, 'he-host', he_agent.port)
    plain = hostd_factory()           # no hosted-engine.conf: not configured
    trust_engine(plain, engine)
    p = add_host(connection, 'plain-host', plain.port, address='localhost')
    try:
        wait_host(connection, h.id, types.HostStatus.UP)
        wait_host(connection, p.id, types.HostStatus.UP)
        svc = hosts.host_service(h.id)
        # HA stats are polled after the host is up: wait for them to be shown
        he = wait_for('hosted_engine of he-host',
                      lambda: svc.get(all_content=True).hosted_engine, 10)
        assert he.configured is True and he.active is False and he.score == 0
        assert he.local_maintenance is False and he.global_maintenance is False
        assert svc.get().hosted_engine is None           # not without all_content
        listed = {x.name: x for x in hosts.list(all_content=True)}
        assert listed['he-host'].hosted_engine.configured is True
        assert listed['plain-host'].hosted_engine is None    # oVirt: only when configured
        assert all(x.hosted_engine is None for x in hosts.list())
        # the header alone (engines before 4.1 read it) and the query alone both count
        assert '<hosted_engine>' in raw_get(engine, connection, '/hosts/' + h.id,
                                            {'All-Content': 'true'})
        assert '<hosted_engine>' in raw_get(engine, connection,
                                            '/hosts/%s?all_content=true' % h.id)
        assert '<hosted_engine>' not in raw_get(engine, connection, '/hosts/' + h.id)

        # maintenance: the host stays polled, its HA local maintenance is set (as oVirt)
        svc.deactivate()
        assert svc.get().status == types.HostStatus.MAINTENANCE
        wait_for('HA local maintenance on', lambda: svc.get(
            all_content=True).hosted_engine.local_maintenance is True, 10)
        with open(he_agent.ha_conf) as f:
            assert 'local_maintenance=True' in f.read().split()
        assert svc.get().status == types.HostStatus.MAINTENANCE   # polling keeps it
        svc.activate()
        wait_host(connection, h.id, types.HostStatus.UP)
        wait_for('HA local maintenance off', lambda: svc.get(
            all_content=True).hosted_engine.local_maintenance is False, 10)
        with open(he_agent.ha_conf) as f:
            assert 'local_maintenance=False' in f.read().split()
    finally:
        remove_host(connection, h.id)
        remove_host(connection, p.id)


def test_hosted_engine_vm_and_storage_searchable(engine, connection):
    """The VM named HostedEngine shows origin managed_hosted_engine and is found by search,
    as hosted_storage is (both as the host agents report them)."""
    from ovirt_hosted_engine_setup.lab.engine.state import State
    st = State(engine.state_dir)
    # written to the database by another process: the running engine serves it at once
    st.put('vms', {'id': 'vm-he', 'name': 'HostedEngine', 'status': 'up', 'host': None,
                   'memory_mib': 1024})
    st.put('vms', {'id': 'vm-other', 'name': 'other', 'status': 'down'})
    st.put('storage_domains', {'id': 'sd-he', 'name': 'hosted_storage', 'type': 'data',
                               'storage_type': 'nfs', 'address': 'nfs.lab.test',
                               'path': '/exports/he', 'status': 'active'})
    try:
        vms = connection.system_service().vms_service().list(search='name=HostedEngine')
        assert [v.name for v in vms] == ['HostedEngine']
        assert vms[0].origin == 'managed_hosted_engine'
        others = connection.system_service().vms_service().list(search='name=other')
        assert others[0].origin == 'ovirt'
        sds = connection.system_service().storage_domains_service().list(
            search='name=hosted_storage')
        assert [s.name for s in sds] == ['hosted_storage']
        assert sds[0].storage.type == types.StorageType.NFS
        assert sds[0].storage.address == 'nfs.lab.test'
        assert sds[0].storage.path == '/exports/he'
    finally:
        for kind, oid in (('vms', 'vm-he'), ('vms', 'vm-other'), ('storage_domains', 'sd-he')):
            st.remove(kind, oid)
        st.close()


def test_host_ids_are_unique_in_the_data_center(engine, connection):
    ids = []
    for i in range(3):
        ids.append(add_host(connection, 'id-host%d' % i, free_port()).id)
    try:
        def spm(host_id):
            return inventory(engine)['hosts'][host_id]['spm_id']
        got = [spm(i) for i in ids]
        assert len(set(got)) == 3 and sorted(got) == list(range(min(got), min(got) + 3))
        freed = spm(ids[1])
        wait_host(connection, ids[1], types.HostStatus.NON_RESPONSIVE)
        remove_host(connection, ids[1])
        again = add_host(connection, 'id-host-again', free_port())
        ids[1] = again.id
        assert spm(again.id) == freed          # the first free id from 1 up
    finally:
        for i in ids:
            wait_host(connection, i, types.HostStatus.NON_RESPONSIVE)
            remove_host(connection, i)


def test_install_and_remove_only_in_maintenance(engine, connection, he_agent):
    hosts = connection.system_service().hosts_service()
    h = add_host(connection, 'maint-host', he_agent.port)
    svc = hosts.host_service(h.id)
    try:
        wait_host(connection, h.id, types.HostStatus.UP)
        with pytest.raises(ovirtsdk4.Error) as e:
            svc.install(root_password=ROOT_PW, undeploy_hosted_engine=True)
        assert e.value.code == 409 and 'move Host to Maintenance mode first' in str(e.value)
        with pytest.raises(ovirtsdk4.Error) as e:
            svc.remove()
        assert e.value.code == 409 and 'switch Host to Maintenance mode first' in str(e.value)
        svc.activate()          # already up: nothing to do
        assert svc.get().status == types.HostStatus.UP
        svc.deactivate()
        assert svc.get().status == types.HostStatus.MAINTENANCE
        with pytest.raises(ovirtsdk4.Error) as e:
            svc.install(undeploy_hosted_engine=True)
        assert e.value.code == 400 and 'empty password' in str(e.value)
        with pytest.raises(ovirtsdk4.Error) as e:
            svc.install(root_password=ROOT_PW, deploy_hosted_engine=True,
                        undeploy_hosted_engine=True)
        assert e.value.code == 400 and 'give one of them' in str(e.value)
        with pytest.raises(ovirtsdk4.Error) as e:
            svc.install(root_password=ROOT_PW, reboot=True)
        assert e.value.code == 400 and 'does not reboot' in str(e.value)
        code, body = raw_post(engine, connection, '/hosts/%s/install' % h.id,
                              '<action><root_password>x</root_password><ssh><fingerprint>'
                              'nonsense</fingerprint></ssh></action>')
        assert code == 400 and 'not an SSH key fingerprint' in body
        code, body = raw_post(engine, connection, '/hosts/%s/install' % h.id, '<action><')
        assert code == 400
        code, body = raw_post(engine, connection, '/hosts/%s/nonsense' % h.id, '<action/>')
        assert code == 404
        assert svc.get().status == types.HostStatus.MAINTENANCE   # nothing started
    finally:
        svc.remove()        # in maintenance: removable
    with pytest.raises(ovirtsdk4.NotFoundError):
        svc.get()


def test_add_with_bad_flags_is_a_fault(connection):
    hosts = connection.system_service().hosts_service()
    spec = types.Host(name='flags', address='127.0.0.1', port=free_port(),
                      root_password=ROOT_PW, cluster=types.Cluster(name='Default'))
    with pytest.raises(ovirtsdk4.Error) as e:
        hosts.add(spec, deploy_hosted_engine=True, reboot=True)
    assert e.value.code == 400 and 'does not reboot' in str(e.value)
    with pytest.raises(ovirtsdk4.Error) as e:
        hosts.add(spec, undeploy_hosted_engine=True)
    assert e.value.code == 400
    with pytest.raises(ovirtsdk4.Error) as e:
        hosts.add(spec, query={'deploy_hosted_engine': 'maybe'})
    assert e.value.code == 400 and 'true or false' in str(e.value)
    assert not hosts.list(search='name=flags')


# -- the SSH install's failures -------------------------------------------------------

class SshdProc:
    """OpenSSH's sshd on 127.0.0.1 with a host key of its own, in a mount namespace with
    its own /run; it lets nobody in (AllowUsers names no user), so a login is refused
    after the password is given."""

    def __init__(self, base):
        self.base = base
        self.port = free_port()
        self.key = os.path.join(base, 'ssh_host_ed25519_key')
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', self.key],
                       check=True, capture_output=True)
        self.config = os.path.join(base, 'sshd_config')
        with open(self.config, 'w') as f:
            f.write('Port %d\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s/sshd.pid\n'
                    'AllowUsers engine-test-nobody\nPasswordAuthentication yes\n'
                    'KbdInteractiveAuthentication no\nUsePAM no\n'
                    % (self.port, self.key, base))
        self.proc = subprocess.Popen(
            ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
             'mount -t tmpfs tmpfs /run && mkdir -m 0755 /run/sshd && '
             'exec /usr/sbin/sshd -D -e -f %s' % self.config],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(base, 'sshd.log'), 'w'),
            stdin=subprocess.DEVNULL)
        from daemon_proc import wait_for

        def listening():
            import socket
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for('test sshd listening', listening, 15)

    def fingerprint(self):
        return subprocess.run(['ssh-keygen', '-l', '-E', 'sha256', '-f', self.key + '.pub'],
                              capture_output=True, text=True, check=True).stdout.split()[1]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope='module')
def sshd():
    if not shutil.which('unshare') or not os.path.exists('/usr/sbin/sshd'):
        pytest.skip('needs unshare and openssh-server (scripts/bootstrap)')
    base = tempfile.mkdtemp(prefix='engine-test-sshd-')
    s = SshdProc(base)
    yield s
    s.stop()
    shutil.rmtree(base, ignore_errors=True)


def add_ssh_host(connection, name, ssh_port, fingerprint=None, deploy=True):
    return connection.system_service().hosts_service().add(
        types.Host(name=name, address='127.0.0.1', port=free_port(), root_password=ROOT_PW,
                   ssh=types.Ssh(port=ssh_port, fingerprint=fingerprint),
                   cluster=types.Cluster(name='Default')),
        deploy_hosted_engine=deploy)


def check_no_password_kept(engine):
    assert ROOT_PW not in engine.read_log()
    assert ROOT_PW not in json.dumps(inventory(engine))
    assert os.path.exists(os.path.join(engine.state_dir, 'engine.db'))   # walked below
    for d, _dirs, files in os.walk(engine.state_dir):
        for fn in files:
            with open(os.path.join(d, fn), 'rb') as f:
                assert ROOT_PW.encode() not in f.read(), os.path.join(d, fn)


def test_ssh_unreachable_is_install_failed(engine, connection):
    port = free_port()       # nothing listens there
    h = add_ssh_host(connection, 'no-ssh', port)
    assert h.status == types.HostStatus.INSTALLING
    h = wait_host(connection, h.id, types.HostStatus.INSTALL_FAILED)
    assert h.status_detail == ('cannot connect to 127.0.0.1 port %d over SSH: Connection '
                               'refused' % port)
    assert h.ssh.port == port
    check_no_password_kept(engine)
    connection.system_service().hosts_service().host_service(h.id).remove()


def test_ssh_fingerprint_given_must_match(engine, connection, sshd):
    wrong = 'SHA256:' + 'A' * 43
    h = add_ssh_host(connection, 'wrong-key', sshd.port, fingerprint=wrong)
    h = wait_host(connection, h.id, types.HostStatus.INSTALL_FAILED)
    assert 'does not match the fingerprint given (%s)' % wrong in h.status_detail
    assert sshd.fingerprint() in h.status_detail      # what the host offers
    assert h.ssh.fingerprint == wrong                 # nothing else recorded
    connection.system_service().hosts_service().host_service(h.id).remove()


def test_ssh_right_key_then_refused_password(engine, connection, sshd):
    # the right fingerprint passes the key check; the login is refused (AllowUsers)
    h = add_ssh_host(connection, 'right-key', sshd.port, fingerprint=sshd.fingerprint())
    h = wait_host(connection, h.id, types.HostStatus.INSTALL_FAILED)
    assert h.status_detail.startswith('SSH to 127.0.0.1 port %d failed while installing the '
                                      'engine CA: ' % sshd.port)
    assert 'Permission denied' in h.status_detail
    # trust on first use: the key's fingerprint is recorded and shown
    tofu = add_ssh_host(connection, 'tofu-key', sshd.port)
    tofu = wait_host(connection, tofu.id, types.HostStatus.INSTALL_FAILED)
    assert tofu.ssh.fingerprint == sshd.fingerprint()
    assert 'Permission denied' in tofu.status_detail
    log = engine.read_log()
    assert 'trusting its ssh-ed25519 host key on first use, fingerprint %s' \
        % sshd.fingerprint() in log
    check_no_password_kept(engine)
    # no askpass directory is left behind
    assert not [d for d in os.listdir(engine.tmp_dir) if d.startswith('ovirt-engine-ssh-')]
    # install_failed: installable again, and removable
    svc = connection.system_service().hosts_service().host_service(tofu.id)
    svc.install(root_password=ROOT_PW + 'x', deploy_hosted_engine=True)
    wait_host(connection, tofu.id, types.HostStatus.INSTALL_FAILED, detail='Permission denied')
    for x in (h, tofu):
        connection.system_service().hosts_service().host_service(x.id).remove()
    check_no_password_kept(engine)


def test_askpass_gives_the_password_only_to_a_password_prompt():
    """ssh gets the password from the askpass program through the engine's private socket:
    never on a command line or in the environment."""
    from ovirt_hosted_engine_setup.lab.engine.host_deploy import Askpass, SshHost
    pw = 'Askpass-Pw-9917'
    a = Askpass(pw)
    try:
        env = a.env()
        assert pw not in ' '.join('%s=%s' % kv for kv in env.items())
        assert env['SSH_ASKPASS_REQUIRE'] == 'force'
        assert oct(os.stat(a.dir).st_mode & 0o777) == '0o700'
        cmd = SshHost('127.0.0.1', 22, '/dev/null', 'h', 'ssh-ed25519', a,
                      secrets=[pw]).command('true')
        assert pw not in ' '.join(cmd)
        r = subprocess.run([a.program, "root@127.0.0.1's password: "], env=env,
                           capture_output=True, text=True, timeout=30)
        assert (r.returncode, r.stdout) == (0, pw + '\n')
        r = subprocess.run([a.program, 'Are you sure you want to continue connecting?'],
                           env=env, capture_output=True, text=True, timeout=30)
        assert (r.returncode, r.stdout) == (1, '')
    finally:
        a.close()
    assert not os.path.exists(a.dir)      # socket and program gone with the install


def test_answer_file_contract_and_hosted_storage(tmp_path):
    from ovirt_hosted_engine_setup.lab.engine import host_deploy as hd
    from ovirt_hosted_engine_setup.lab.engine.state import State, run_setup
    assert hd.answer_file('nfs', 'nfs.lab.test:/he', 3, '192.168.222.13') == (
        '[environment:default]\n'
        'OVEHOSTED_CORE/isAdditionalHost=bool:True\n'
        'OVEHOSTED_CORE/deployProceed=bool:True\n'
        'OVEHOSTED_CORE/confirmSettings=bool:True\n'
        'OVEHOSTED_CORE/skipTTYCheck=bool:True\n'
        'OVEHOSTED_ENGINE/hostAddedByEngine=bool:True\n'
        'OVEHOSTED_STORAGE/domainType=str:nfs\n'
        'OVEHOSTED_STORAGE/storageDomainConnection=str:nfs.lab.test:/he\n'
        'OVEHOSTED_STORAGE/hostID=int:3\n'
        'OVEHOSTED_NETWORK/host_name=str:192.168.222.13\n')
    run_setup(str(tmp_path / 's'), 'engine.lab.test', 'pw')
    st = State(str(tmp_path / 's'))
    with pytest.raises(hd.DeployError) as e:
        hd.hosted_storage(st)
    assert 'knows no hosted-engine storage domain (hosted_storage)' in str(e.value)
    st.put('storage_domains', {'id': 'a', 'name': 'hosted_storage', 'storage_type': 'localfs',
                               'address': '', 'path': '/var/lib/lab/storage'})
    assert hd.hosted_storage(st) == ('localfs', '/var/lib/lab/storage')
    st.update('storage_domains', 'a', storage_type='glusterfs', address='gl.lab.test',
              path='/vol')
    assert hd.hosted_storage(st) == ('glusterfs', 'gl.lab.test:/vol')


def test_fingerprints_and_error_lines():
    from ovirt_hosted_engine_setup.lab.engine import host_deploy as hd
    blob = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl'
    sha = hd.key_fingerprint(blob)
    assert sha.startswith('SHA256:') and len(sha) == 7 + 43
    assert hd.normalize_fingerprint(sha + '=') == sha
    md5 = hd.key_fingerprint(blob, 'MD5')
    assert hd.normalize_fingerprint(md5[4:].upper()) == md5
    with pytest.raises(ValueError):
        hd.normalize_fingerprint('SHA256:short')
    rsa = ('ssh-rsa', 'AAAAB3NzaC1yc2F4eHh4eHh4eHh4eHh4eHh4eHh4eHg=')
    assert hd.choose_host_key([rsa, ('ssh-ed25519', blob)]) == ('ssh-ed25519', blob)
    assert hd.choose_host_key([rsa, ('ssh-ed25519', blob)], md5) == ('ssh-ed25519', blob)
    with pytest.raises(hd.DeployError) as e:
        hd.choose_host_key([('ssh-ed25519', blob)], 'SHA256:' + 'B' * 43)
    assert sha in str(e.value)
    assert hd.error_line(['[ INFO  ] x', '[ ERROR ] Storage is not reachable', 'log: /var/x',
                          '']) == '[ ERROR ] Storage is not reachable'
    assert hd.error_line(['one', 'last words', ' ']) == 'last words'
    failed = ("[ ERROR ] Failed to execute stage 'Environment customization': the host id 3 is "
              "used by the live host 3 (host3)")
    assert hd.error_line(['[ INFO  ] x', failed, '[ ERROR ] Hosted Engine deployment failed: '
                          'nothing was changed on this host']) == failed
    assert hd.error_line([]) == 'no output'


def test_appliance_carries_the_ssh_client_the_engine_uses():
    from ovirt_hosted_engine_setup.lab import appliance
    if not shutil.which('apt-cache'):
        pytest.skip('needs apt-cache')
    pkgs = appliance.resolve_packages()
    assert 'openssh-client' in pkgs and 'openssh-server' in pkgs
    assert 'adduser' not in pkgs and 'passwd' not in pkgs and 'perl-base' not in pkgs
    # what the engine runs (ssh, ssh-keyscan) and what its sshd serves (the SFTP server the
    # restore's copy uses, ssh-keygen) stay in the root; the rest of the packages is trimmed
    trim = set(appliance.TRIM)
    assert not {'usr/bin/ssh', 'usr/bin/ssh-keyscan', 'usr/bin/ssh-keygen',
                'usr/lib/openssh/sftp-server', 'usr/sbin/sshd'} & trim
    assert {'usr/bin/scp', 'usr/bin/ssh-agent', 'usr/lib/openssh/ssh-keysign'} <= trim


def test_recorded_ssh_key_is_expected_at_the_next_install(engine, connection, sshd):
    """A host whose SSH key changed (here: another sshd behind the host's SSH port) is
    refused at its next install until the new fingerprint is given."""
    h = add_ssh_host(connection, 'rekeyed', sshd.port)
    wait_host(connection, h.id, types.HostStatus.INSTALL_FAILED, detail='Permission denied')
    base = tempfile.mkdtemp(prefix='engine-test-sshd2-')
    other = SshdProc(base)
    svc = connection.system_service().hosts_service().host_service(h.id)
    try:
        assert other.fingerprint() != sshd.fingerprint()
        svc.install(root_password=ROOT_PW, ssh=types.Ssh(port=other.port))
        got = wait_host(connection, h.id, types.HostStatus.INSTALL_FAILED,
                        detail='does not match')
        assert 'does not match the fingerprint given (%s)' % sshd.fingerprint() \
            in got.status_detail
        svc.install(root_password=ROOT_PW,
                    ssh=types.Ssh(port=other.port, fingerprint=other.fingerprint()))
        got = wait_host(connection, h.id, types.HostStatus.INSTALL_FAILED,
                        detail='Permission denied')
        assert got.ssh.fingerprint == other.fingerprint() and got.ssh.port == other.port
    finally:
        other.stop()
        shutil.rmtree(base, ignore_errors=True)
        svc.remove()
