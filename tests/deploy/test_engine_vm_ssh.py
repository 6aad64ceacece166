"""deploy/engine_vm_ssh.py against OpenSSH's sshd on 127.0.0.1.

Each server is a private sshd on a free loopback port with host keys of its own, run in a
mount namespace of its own where /etc/shadow is a copy whose root password is the test's
(never the machine's) and /run is a private tmpfs (sshd's privilege separation directory);
it is stopped by its pid. Its log (LogLevel VERBOSE) shows every authentication attempt.
"""
import os
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from daemon_proc import free_port
from ovirt_hosted_engine_setup.deploy import cloud_init
from ovirt_hosted_engine_setup.deploy import engine_vm_ssh as evs
from ovirt_hosted_engine_setup.lab import sshd as lab_sshd

PASSWORD = 'engine-vm-test-Pw'

SSHD_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
{host_keys}
PidFile {dir}/sshd.pid
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {dir}/authorized_keys
StrictModes no
UsePAM no
PrintMotd no
PrintLastLog no
LogLevel VERBOSE
Subsystem sftp {sftp}
"""

pytestmark = pytest.mark.skipif(not os.path.exists(lab_sshd.SSHD) or os.geteuid() != 0,
                                 reason='needs OpenSSH sshd and root')


class Sshd:
    """A private sshd on 127.0.0.1:<port> serving root with PASSWORD and client.pub."""

    def __init__(self, directory, host_keys, authorized):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        with open(os.path.join(self.dir, 'authorized_keys'), 'w') as f:
            f.write(''.join(k.strip() + '\n' for k in authorized))
        with open('/etc/shadow') as f:
            machine = f.read()
        shadow = os.path.join(self.dir, 'shadow')
        fd = os.open(shadow, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(lab_sshd.shadow_text(machine, cloud_init.hash_password(PASSWORD)))
        conf = os.path.join(self.dir, 'sshd_config')
        with open(conf, 'w') as f:
            f.write(SSHD_CONFIG.format(port=self.port, dir=self.dir, sftp=lab_sshd.SFTP_SERVER,
                                       host_keys='\n'.join('HostKey %s' % k for k in host_keys)))
        self.log = os.path.join(self.dir, 'sshd.log')
        self.script = ('mount --bind %s /etc/shadow && mount -t tmpfs -o mode=0755 tmpfs /run '
                       '&& mkdir -m 0755 /run/sshd && exec %s -D -e -f %s'
                       % (shadow, lab_sshd.SSHD, conf))
        self.proc = None

    def start(self):
        with open(self.log, 'ab') as log:
            # unshare execs sh, sh execs sshd: the pid is sshd's
            self.proc = subprocess.Popen(['unshare', '--mount', '--propagation', 'private',
                                          'sh', '-c', self.script], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        return self

    def wait_listening(self, limit=15):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError('sshd exited: %s' % self.log_text())
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError('sshd did not listen: %s' % self.log_text())

    def log_text(self):
        with open(self.log, errors='replace') as f:
            return f.read()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def keygen(path, kind='ed25519'):
    subprocess.run(['ssh-keygen', '-q', '-t', kind, '-N', '', '-C', 'test', '-f', str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    with open(str(path) + '.pub') as f:
        return f.read().strip()


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp('keys')
    out = {name: keygen(d / name, kind) for name, kind in
           (('host_ed25519', 'ed25519'), ('host_rsa', 'rsa'), ('other', 'ed25519'),
            ('client', 'ed25519'), ('stranger', 'ed25519'))}
    out['dir'] = d
    return out


@pytest.fixture(scope='module')
def server(tmp_path_factory, keys):
    d = tmp_path_factory.mktemp('sshd')
    s = Sshd(d, [keys['dir'] / 'host_ed25519', keys['dir'] / 'host_rsa'], [keys['client']])
    try:
        yield s.start().wait_listening()
    finally:
        s.stop()


def login(server, keys, **kw):
    kw.setdefault('password', PASSWORD)
    kw.setdefault('wait', 10)
    return evs.connect('127.0.0.1', keys['host_ed25519'], port=server.port, **kw)


# ------------------------------------------------------------------ connect

def test_connect_pinned_password_and_run(server, keys):
    with login(server, keys) as vm:
        lines = []
        assert vm.run('echo ok; hostname -s >/dev/null', on_line=lambda s, ln:
                      lines.append((s, ln))) == 0
        assert lines == [('stdout', 'ok')]
    assert 'Accepted password for root' in server.log_text()


def test_connect_by_key(server, keys):
    with evs.connect('127.0.0.1', keys['host_ed25519'], key=str(keys['dir'] / 'client'),
                     port=server.port, wait=10) as vm:
        assert vm.run('true') == 0
    assert 'Accepted publickey for root' in server.log_text()


def test_pinned_rsa_key_is_the_one_negotiated(server, keys):
    """The server has ed25519 and rsa keys: pinning the rsa one makes the client ask for
    that type (paramiko would prefer ed25519 otherwise)."""
    with evs.connect('127.0.0.1', keys['host_rsa'], password=PASSWORD, port=server.port,
                     wait=10) as vm:
        assert vm.transport.get_remote_server_key().get_name() == 'ssh-rsa'


def test_other_host_key_refused_before_any_password(server, keys):
    before = server.log_text().count('password for root')
    with pytest.raises(evs.HostKeyChanged) as e:
        evs.connect('127.0.0.1', keys['other'], password=PASSWORD, port=server.port, wait=10)
    msg = str(e.value)
    assert '\n' not in msg
    offered = evs.fingerprint_of(evs.public_key(keys['host_ed25519']))
    pinned = evs.fingerprint_of(evs.public_key(keys['other']))
    assert offered in msg and pinned in msg and 'do not continue' in msg
    time.sleep(0.3)
    assert server.log_text().count('password for root') == before
    assert PASSWORD not in msg


def test_pinned_type_the_server_lacks_refused(tmp_path, keys):
    """A server with only an rsa key while an ed25519 key is pinned: refused, not waited on."""
    s = Sshd(tmp_path, [keys['dir'] / 'host_rsa'], [])
    try:
        s.start().wait_listening()
        t0 = time.monotonic()
        with pytest.raises(evs.HostKeyChanged) as e:
            evs.connect('127.0.0.1', keys['host_ed25519'], password=PASSWORD, port=s.port,
                        wait=30)
        assert time.monotonic() - t0 < 10
        assert 'has no ssh-ed25519 host key' in str(e.value) and '\n' not in str(e.value)
    finally:
        s.stop()


def test_wrong_password_refused(server, keys):
    with pytest.raises(evs.AuthRefused) as e:
        login(server, keys, password='not-' + PASSWORD)
    assert str(e.value) == ('the engine VM 127.0.0.1 refused the root password: check the '
                            'engine VM root password and SSH key given to the deploy')


def test_unknown_key_then_password(server, keys):
    """A key the VM does not know, then the password: logged in by the password."""
    with login(server, keys, key=str(keys['dir'] / 'stranger')) as vm:
        assert vm.run('true') == 0


def test_no_credentials(keys):
    with pytest.raises(evs.EngineVMSSHError) as e:
        evs.connect('127.0.0.1', keys['host_ed25519'], port=1, wait=1)
    assert 'no root password or SSH key' in str(e.value)


def test_bad_pinned_key_text():
    with pytest.raises(evs.EngineVMSSHError) as e:
        evs.connect('127.0.0.1', 'ssh-ed25519 not-base64!', password='x', port=1, wait=1)
    assert 'is not a valid ssh-ed25519 public key' in str(e.value)


def test_unreachable_waits_with_progress_then_one_line(keys):
    port = free_port()
    calls = []
    t0 = time.monotonic()
    with pytest.raises(evs.Unreachable) as e:
        evs.connect('127.0.0.1', keys['host_ed25519'], password=PASSWORD, port=port, wait=3,
                    interval=0.5, reporter=lambda *a: calls.append(a))
    assert 3 <= time.monotonic() - t0 < 10
    assert str(e.value) == ('the engine VM 127.0.0.1 does not answer on SSH port %d after 3 s '
                            '(last: connection refused): check that the VM is up and reachable '
                            'from this host' % port)
    assert calls and calls[0][0] == 'the engine VM 127.0.0.1 to answer on SSH port %d' % port
    assert calls[-1][2] == 3 and calls[-1][3] == 'connection refused'


def test_connect_waits_for_sshd_to_start(tmp_path, keys):
    s = Sshd(tmp_path, [keys['dir'] / 'host_ed25519'], [])
    timer = threading.Timer(2, s.start)
    timer.start()
    try:
        calls = []
        t0 = time.monotonic()
        with evs.connect('127.0.0.1', keys['host_ed25519'], password=PASSWORD, port=s.port,
                         wait=30, interval=0.5, reporter=lambda *a: calls.append(a)) as vm:
            assert vm.run('echo up', on_line=lambda st, ln: calls.append(ln)) == 0
        assert time.monotonic() - t0 >= 2
        assert calls[-1] == 'up' and len(calls) > 1
        assert calls[0][3] == 'connection refused'
    finally:
        timer.join()
        s.stop()


# ------------------------------------------------------------------ upload

def test_upload_with_progress_mode_0600(server, keys, tmp_path):
    data = os.urandom(3 * evs.CHUNK + 1234)
    src = tmp_path / 'backup.tar.gz'
    src.write_bytes(data)
    os.chmod(src, 0o644)
    dest = tmp_path / 'remote' / 'engine-backup.tar.gz'
    dest.parent.mkdir()
    calls = []
    with login(server, keys) as vm:
        assert vm.upload(str(src), str(dest), progress=lambda *a: calls.append(a)) == len(data)
    assert dest.read_bytes() == data
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert not os.path.exists(str(dest) + '.part')
    done = [c[0] for c in calls]
    assert done[0] == 0 and done[-1] == len(data) and done == sorted(done) and len(done) == 5
    assert all(c[1] == len(data) for c in calls)
    assert all(b[2] >= a[2] for a, b in zip(calls, calls[1:]))


def test_upload_into_a_missing_directory(server, keys, tmp_path):
    src = tmp_path / 'f'
    src.write_text('x')
    with login(server, keys) as vm:
        with pytest.raises(evs.EngineVMSSHError) as e:
            vm.upload(str(src), str(tmp_path / 'no-such-dir' / 'f'))
    assert 'cannot write %s on the engine VM 127.0.0.1' % (tmp_path / 'no-such-dir' / 'f') \
        in str(e.value)


def test_write_file_secret_is_0600_from_the_start(server, keys, tmp_path):
    dest = tmp_path / 'answers'
    with login(server, keys) as vm:
        vm.write_file(str(dest), 'OVESETUP_CONFIG/adminPassword=str:s3cret\n')
    assert dest.read_text() == 'OVESETUP_CONFIG/adminPassword=str:s3cret\n'
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600


# ------------------------------------------------------------------ run

def test_run_streams_lines_as_they_come(server, keys):
    seen = []
    with login(server, keys) as vm:
        t0 = time.monotonic()
        status = vm.run('echo one; sleep 1; echo two >&2; sleep 1; printf "three\\nno-newline";'
                        ' exit 3', on_line=lambda s, ln: seen.append((time.monotonic() - t0,
                                                                      s, ln)))
        total = time.monotonic() - t0
    assert status == 3
    assert [(s, ln) for _, s, ln in seen] == [('stdout', 'one'), ('stderr', 'two'),
                                              ('stdout', 'three'), ('stdout', 'no-newline')]
    # the first line reached the callback while the command still ran
    assert seen[0][0] < 1.0 and total >= 2.0
    assert seen[1][0] < total - 0.5


def test_run_check_raises_with_the_status(server, keys):
    with login(server, keys) as vm:
        with pytest.raises(evs.CommandFailed) as e:
            vm.run('exit 7', check=True)
    assert e.value.status == 7
    assert str(e.value) == ('exit 7 failed on the engine VM 127.0.0.1 with exit status 7: see '
                            'its output above')


def test_run_timeout(server, keys):
    with login(server, keys) as vm:
        t0 = time.monotonic()
        with pytest.raises(evs.CommandTimeout) as e:
            vm.run('sleep 30', timeout=1)
        assert time.monotonic() - t0 < 5
        assert str(e.value) == ('sleep 30 on the engine VM 127.0.0.1 did not finish within 1 s: '
                                'see the log in the VM, then try again')
        # the connection is still usable
        assert vm.run('true') == 0


def test_secret_goes_by_stdin_not_the_command_line(server, keys):
    secret = 'Adm1n pa:ss%word'
    lines = []
    with login(server, keys) as vm:
        assert vm.run('IFS= read -r pw; echo "${#pw}"; ps -eo args',
                      stdin=secret + '\n', on_line=lambda s, ln: lines.append(ln)) == 0
    assert lines[0] == str(len(secret))
    assert not any(secret in ln for ln in lines)


def test_closed_connection(server, keys):
    vm = login(server, keys)
    vm.close()
    with pytest.raises(evs.EngineVMSSHError) as e:
        vm.run('true')
    assert 'the SSH connection to the engine VM 127.0.0.1 is closed' in str(e.value)


def test_private_key_never_in_the_log(server, keys, caplog):
    with open(keys['dir'] / 'client') as f:
        private = f.read()
    caplog.set_level('DEBUG')
    with evs.connect('127.0.0.1', keys['host_ed25519'], key=private, password=PASSWORD,
                     port=server.port, wait=10) as vm:
        vm.run('true')
    text = caplog.text
    body = ''.join(private.splitlines()[1:-1])
    assert body[:40] not in text and PASSWORD not in text
    assert 'as pinned' in text
