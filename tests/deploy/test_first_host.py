"""deploy/first_host.py against an SSH server of the test's own on 127.0.0.1.

The server is paramiko's server side in a thread, with its own in-memory ed25519 host key,
a password of the test's (never the machine's) and an SFTP subsystem serving a scratch
directory as the first host's file system. It records every authentication attempt.
"""
import io
import logging
import os
import socket
import subprocess
import threading

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.deploy import first_host
from ovirt_hosted_engine_setup.deploy.first_host import FirstHostError

PASSWORD = 'first-host-test-Pw'
ANSWERS = '[environment:default]\nOVEHOSTED_STORAGE/storageDomainName=str:hosted_storage\n'


def _ed25519_key():
    priv = ed25519.Ed25519PrivateKey.generate()
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem))


class _Sftp(paramiko.SFTPServerInterface):
    """Read-only SFTP over the server's root directory."""

    def __init__(self, server, *args, **kw):
        super().__init__(server, *args, **kw)
        self.root = server.root

    def _real(self, path):
        return os.path.join(self.root, self.canonicalize(path).lstrip('/'))

    def open(self, path, flags, attr):
        real = self._real(path)
        try:
            f = open(real, 'rb')
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        handle = _Handle(flags)
        handle.readfile = f
        handle.filename = real
        return handle

    def stat(self, path):
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._real(path)))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    lstat = stat


class _Handle(paramiko.SFTPHandle):
    def stat(self):
        return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))


class _Server(paramiko.ServerInterface):
    def __init__(self, root, password, attempts):
        self.root = root
        self.password = password
        self.attempts = attempts

    def get_allowed_auths(self, username):
        return 'password'

    def check_auth_none(self, username):
        self.attempts.append(('none', username))
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username, password):
        self.attempts.append(('password', username))
        if username == 'root' and password == self.password:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        self.attempts.append(('publickey', username))
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == 'session':
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class SshServer:
    """Serves SSH on 127.0.0.1:<random port> until stopped; one thread per connection."""

    def __init__(self, root, key, password=PASSWORD):
        self.root = root
        self.key = key
        self.password = password
        self.attempts = []
        self.transports = []
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(self.key)
            t.set_subsystem_handler('sftp', paramiko.SFTPServer, _Sftp)
            self.transports.append(t)
            try:
                t.start_server(server=_Server(self.root, self.password, self.attempts))
            except (paramiko.SSHException, EOFError, OSError):
                pass

    def settle(self):
        """Wait until every connection the server accepted is over."""
        for t in list(self.transports):
            t.join(10)

    def stop(self):
        self.listener.close()
        for t in list(self.transports):
            t.close()


@pytest.fixture(scope='module')
def host_key():
    return _ed25519_key()


@pytest.fixture
def server(tmp_path, host_key):
    etc = tmp_path / paths.ETC_ANSWER_FILE.lstrip('/')
    etc.parent.mkdir(parents=True)
    etc.write_text(ANSWERS)
    s = SshServer(str(tmp_path), host_key)
    yield s
    s.stop()


def keygen_fingerprint(key, tmp_path):
    pub = tmp_path / 'key.pub'
    pub.write_text('%s %s\n' % (key.get_name(), key.get_base64()))
    out = subprocess.run(['ssh-keygen', '-lf', str(pub)], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1]


def test_host_key_is_what_ssh_keygen_prints(server, host_key, tmp_path):
    kt, fp = first_host.host_key('127.0.0.1', server.port)
    assert kt == 'ssh-ed25519'
    assert fp == keygen_fingerprint(host_key, tmp_path)
    assert fp.startswith('SHA256:') and not fp.endswith('=')
    server.settle()
    assert server.attempts == []


def test_right_fingerprint_fetches_the_answer_file(server):
    _kt, fp = first_host.host_key('127.0.0.1', server.port)
    text = first_host.fetch_answers('127.0.0.1', server.port, PASSWORD, fp)
    assert text == ANSWERS
    server.settle()
    assert ('password', 'root') in server.attempts


def test_fingerprint_with_base64_padding_is_the_same(server):
    _kt, fp = first_host.host_key('127.0.0.1', server.port)
    assert first_host.fetch_answers('127.0.0.1', server.port, PASSWORD, fp + '=') == ANSWERS


def test_changed_host_key_refused_before_the_password_is_sent(server, host_key):
    other = first_host.fingerprint_of(_ed25519_key())
    offered = first_host.fingerprint_of(host_key)
    with pytest.raises(FirstHostError) as e:
        first_host.fetch_answers('127.0.0.1', server.port, PASSWORD, other)
    assert str(e.value) == (
        'the SSH host key of 127.0.0.1 changed: expected %s, the host offers %s: if 127.0.0.1 '
        'was reinstalled, confirm the new fingerprint; otherwise do not continue'
        % (other, offered))
    server.settle()
    assert server.attempts == []


def test_wrong_password(server):
    _kt, fp = first_host.host_key('127.0.0.1', server.port)
    with pytest.raises(FirstHostError) as e:
        first_host.fetch_answers('127.0.0.1', server.port, 'not-the-password', fp)
    assert str(e.value) == 'the first host 127.0.0.1 refused the root password: type it again'
    assert 'not-the-password' not in str(e.value)


def test_empty_password_refused_before_connecting(server):
    _kt, fp = first_host.host_key('127.0.0.1', server.port)
    server.settle()
    for empty in ('', None):
        with pytest.raises(FirstHostError) as e:
            first_host.fetch_answers('127.0.0.1', server.port, empty, fp)
        assert str(e.value) == ('no root password given for the first host 127.0.0.1: type '
                                'the root password of 127.0.0.1')
    server.settle()
    assert len(server.transports) == 1 and server.attempts == []


def test_missing_answer_file(server):
    os.unlink(os.path.join(server.root, paths.ETC_ANSWER_FILE.lstrip('/')))
    _kt, fp = first_host.host_key('127.0.0.1', server.port)
    with pytest.raises(FirstHostError) as e:
        first_host.fetch_answers('127.0.0.1', server.port, PASSWORD, fp)
    assert str(e.value) == (
        '127.0.0.1 has no /etc/ovirt-hosted-engine/answers.conf: is 127.0.0.1 the first host '
        'of this hosted engine? run the deploy there first')


def test_unreadable_answer_file(server):
    if os.geteuid() == 0:
        # root reads any mode: a directory in the file's place cannot be read either
        path = os.path.join(server.root, paths.ETC_ANSWER_FILE.lstrip('/'))
        os.unlink(path)
        os.mkdir(path)
    else:
        os.chmod(os.path.join(server.root, paths.ETC_ANSWER_FILE.lstrip('/')), 0)
    _kt, fp = first_host.host_key('127.0.0.1', server.port)
    with pytest.raises(FirstHostError) as e:
        first_host.fetch_answers('127.0.0.1', server.port, PASSWORD, fp)
    msg = str(e.value)
    assert paths.ETC_ANSWER_FILE in msg and 'check the file on 127.0.0.1' in msg
    assert '\n' not in msg


def test_binary_answer_file(server):
    with open(os.path.join(server.root, paths.ETC_ANSWER_FILE.lstrip('/')), 'wb') as f:
        f.write(b'\xff\xfe\x00garbage')
    _kt, fp = first_host.host_key('127.0.0.1', server.port)
    with pytest.raises(FirstHostError) as e:
        first_host.fetch_answers('127.0.0.1', server.port, PASSWORD, fp)
    assert 'is not a text file' in str(e.value)


def test_other_path(server):
    other = os.path.join(server.root, 'etc', 'other.conf')
    with open(other, 'w') as f:
        f.write('x=1\n')
    _kt, fp = first_host.host_key('127.0.0.1', server.port)
    assert first_host.fetch_answers('127.0.0.1', server.port, PASSWORD, fp,
                                    path='/etc/other.conf') == 'x=1\n'


def _closed_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_refused_port():
    port = _closed_port()
    for call in (lambda: first_host.host_key('127.0.0.1', port),
                 lambda: first_host.fetch_answers('127.0.0.1', port, PASSWORD,
                                                  'SHA256:' + 'A' * 43)):
        with pytest.raises(FirstHostError) as e:
            call()
        assert str(e.value) == (
            'cannot reach the first host 127.0.0.1 on port %d: connection refused, check the '
            'address, that sshd runs there and the firewall' % port)


def test_name_not_resolved(monkeypatch):
    def no_name(*a, **kw):
        raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
    monkeypatch.setattr(socket, 'getaddrinfo', no_name)
    with pytest.raises(FirstHostError) as e:
        first_host.host_key('first.example.test', 22)
    assert str(e.value) == (
        "cannot resolve the first host name first.example.test (name or service not known): "
        "check the name, or give the first host's IP address")


def test_silent_server_times_out():
    """A port that accepts but never speaks SSH: the wait ends after the timeout."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    try:
        with pytest.raises(FirstHostError) as e:
            first_host.host_key('127.0.0.1', listener.getsockname()[1], timeout=1)
        assert 'does not answer as an SSH server on port' in str(e.value)
    finally:
        listener.close()


@pytest.mark.parametrize('bad', ['', 'MD5:aa:bb', 'SHA256:not base64!', 'zw+4bIBLJqhXcRFDl4NV'])
def test_malformed_fingerprint_refused_before_connecting(bad):
    with pytest.raises(FirstHostError) as e:
        first_host.fetch_answers('127.0.0.1', _closed_port(), PASSWORD, bad)
    assert 'is not an SSH host key fingerprint' in str(e.value)


def test_password_never_logged_and_paramiko_quiet(server, caplog):
    """Our log at DEBUG: no paramiko debug output and never the password."""
    logging.getLogger('paramiko').setLevel(logging.NOTSET)  # as a fresh process has it
    caplog.set_level(logging.DEBUG)
    _kt, fp = first_host.host_key('127.0.0.1', server.port)
    first_host.fetch_answers('127.0.0.1', server.port, PASSWORD, fp)
    with pytest.raises(FirstHostError):
        first_host.fetch_answers('127.0.0.1', server.port, 'wrong-' + PASSWORD, fp)
    server.settle()
    paramiko_debug = [r for r in caplog.records if r.name.startswith('paramiko')
                      and r.levelno < logging.WARNING]
    assert paramiko_debug == []
    assert logging.getLogger('paramiko').getEffectiveLevel() == logging.WARNING
    for r in caplog.records:
        assert PASSWORD not in r.getMessage()
    assert any(r.name == first_host.__name__ for r in caplog.records)
