"""The deploy's SSH client to the engine VM: root over SSH with the VM's host key pinned.

The deploy generates the engine VM's SSH host key itself and hands it to the VM in the
cloud-init seed (cloud_init.generate_host_key, SeedSpec.ssh_host_key), so the key the VM
must offer is known before it boots: it is never trusted on first use.

    vm = connect('192.168.222.200', host_key.public, password=root_password, wait=300)
    with vm:
        vm.upload('/var/tmp/engine-backup.tar.gz', '/root/engine-backup.tar.gz',
                  progress=lambda done, total, elapsed: ...)
        vm.write_file('/root/answers', text)            # mode 0600, never on a command line
        status = vm.run('engine-backup --mode=restore ...', on_line=lambda stream, line: ...)

connect() waits (reporting through ovirt_hosted_engine_setup.progress) until the VM's sshd
answers, checks that its host key is exactly the pinned one before authenticating (a
different key is refused and no password is sent), then logs in as root by key and/or
password. run() streams stdout and stderr lines to a callback as they come and returns the
exit status; data for the command (a password) goes to its standard input, never into the
command line. Every failure a user can meet raises EngineVMSSHError whose str() is one
line naming the problem and what to do; details go to the log at debug level. paramiko's
own logger is kept at WARNING (its debug output would describe the whole session).
"""
import base64
import io
import logging
import os
import select
import socket
import time

import paramiko

from .. import progress as progress_mod
from .first_host import fingerprint_of, ssh_reason as _reason

log = logging.getLogger(__name__)

ROOT = 'root'
PORT = 22
CHUNK = 256 * 1024
_RSA_ALGORITHMS = ('rsa-sha2-512', 'rsa-sha2-256')


class EngineVMSSHError(Exception):
    """One line: what is wrong and what to do."""


class Unreachable(EngineVMSSHError):
    """The VM's sshd did not answer within the wait."""


class HostKeyChanged(EngineVMSSHError):
    """The VM offered a host key other than the pinned one."""


class AuthRefused(EngineVMSSHError):
    """The VM refused root's password or key."""


class CommandFailed(EngineVMSSHError):
    """A command ended with a non-zero exit status (run(check=True))."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class CommandTimeout(EngineVMSSHError):
    """A command did not finish within its time limit."""


def _quiet_paramiko():
    logger = logging.getLogger('paramiko')
    if logger.level == logging.NOTSET or logger.level < logging.WARNING:
        logger.setLevel(logging.WARNING)


def public_key(text):
    """A paramiko public key from an OpenSSH public key line ('ssh-ed25519 AAAA... comment')
    or a paramiko key (returned as is)."""
    if isinstance(text, paramiko.PKey):
        return text
    words = str(text or '').split()
    if len(words) < 2:
        raise EngineVMSSHError('%r is not an SSH public key line such as "ssh-ed25519 AAAA...": '
                               'give the engine VM\'s host key as the seed carries it'
                               % (str(text or '')[:40],))
    try:
        blob = base64.b64decode(words[1], validate=True)
        key = paramiko.PKey.from_type_string(words[0], blob)
    except (ValueError, paramiko.SSHException) as e:
        raise EngineVMSSHError('the engine VM host key %s... is not a valid %s public key (%s): '
                               'give the key as the seed carries it'
                               % (words[1][:16], words[0], e))
    return key


def _private_key(key):
    """A paramiko private key from a PKey, a path, or OpenSSH private key text."""
    if key is None or isinstance(key, paramiko.PKey):
        return key
    text = str(key)
    if '-----BEGIN' not in text:
        try:
            with open(text) as f:
                text = f.read()
        except OSError as e:
            raise EngineVMSSHError('cannot read the SSH key %s (%s): give a readable private '
                                   'key file' % (key, e.strerror))
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise EngineVMSSHError('the SSH key given for root is not an unencrypted ed25519, ecdsa or '
                           'rsa private key: give such a key')


def _key_algorithms(key):
    name = key.get_name()
    if name == 'ssh-rsa':
        return list(_RSA_ALGORITHMS)
    return [name]


def _short(command, limit=80):
    command = ' '.join(str(command).split())
    return command if len(command) <= limit else command[:limit - 3] + '...'


class EngineVMSSH:
    """An authenticated SSH connection to the engine VM (see connect())."""

    def __init__(self, transport, address):
        self.transport = transport
        self.address = address

    # ------------------------------------------------------------ files

    def _sftp(self):
        try:
            return paramiko.SFTPClient.from_transport(self.transport)
        except (paramiko.SSHException, EOFError, OSError) as e:
            log.debug('SFTP with %s failed', self.address, exc_info=True)
            raise EngineVMSSHError('the engine VM %s does not offer SFTP (%s): check the sftp '
                                   'Subsystem of its sshd' % (self.address, _reason(e)))

    def upload(self, local, remote, progress=None, mode=0o600):
        """Copy the local file to `remote` on the VM by SFTP, mode 0600 (set before any
        byte is written; written to remote + '.part' and renamed); progress(bytes, total,
        elapsed) after every chunk. Returns the number of bytes."""
        try:
            src = open(local, 'rb')
        except OSError as e:
            raise EngineVMSSHError('cannot read %s (%s): give a readable file'
                                   % (local, e.strerror))
        with src:
            total = os.fstat(src.fileno()).st_size
            return self._put(src, total, remote, progress, mode)

    def write_file(self, remote, data, mode=0o600):
        """Write data (str or bytes) to `remote` on the VM by SFTP, mode 0600 unless told:
        the way to hand a secret to a command."""
        if isinstance(data, str):
            data = data.encode('utf-8')
        return self._put(io.BytesIO(data), len(data), remote, None, mode)

    def _put(self, src, total, remote, progress, mode):
        part = remote + '.part'
        sftp = self._sftp()
        t0 = time.monotonic()
        done = 0
        try:
            try:
                with sftp.open(part, 'wb') as f:
                    f.chmod(mode)
                    f.set_pipelined(True)
                    if progress is not None:
                        progress(0, total, 0.0)
                    while True:
                        data = src.read(CHUNK)
                        if not data:
                            break
                        f.write(data)
                        done += len(data)
                        if progress is not None:
                            progress(done, total, time.monotonic() - t0)
                size = sftp.stat(part).st_size
                if size != done:
                    raise EngineVMSSHError('copying to %s on the engine VM %s stopped at %d of '
                                           '%d bytes: check the free space on the VM and try '
                                           'again' % (remote, self.address, size, done))
                sftp.posix_rename(part, remote)
            except IOError as e:
                log.debug('writing %s on %s failed', remote, self.address, exc_info=True)
                self._remove(sftp, part)
                raise EngineVMSSHError('cannot write %s on the engine VM %s (%s): check the '
                                       'directory and the free space there'
                                       % (remote, self.address, _reason(e)))
            except (paramiko.SSHException, EOFError) as e:
                log.debug('writing %s on %s failed', remote, self.address, exc_info=True)
                raise EngineVMSSHError('the SSH session with the engine VM %s broke while '
                                       'copying to %s (%s): try again'
                                       % (self.address, remote, _reason(e)))
        finally:
            sftp.close()
        log.debug('wrote %s on %s (%d bytes, mode %o) in %.1f s', remote, self.address, done,
                  mode, time.monotonic() - t0)
        return done

    @staticmethod
    def _remove(sftp, path):
        try:
            sftp.remove(path)
        except (IOError, paramiko.SSHException, EOFError):
            pass

    # ------------------------------------------------------------ commands

    def run(self, command, on_line=None, timeout=600, stdin=None, check=False):
        """Run `command` (a shell line) as root on the VM; call on_line(stream, line) for each
        line of its stdout ('stdout') and stderr ('stderr') as it comes; return its exit
        status. stdin: str or bytes written to the command's standard input (then closed):
        the way to hand it a password. timeout: seconds, the whole run. check: raise
        CommandFailed on a non-zero status."""
        deadline = time.monotonic() + timeout if timeout else None
        log.debug('running on %s: %s', self.address, command)
        try:
            chan = self.transport.open_session(timeout=30)
        except (paramiko.SSHException, EOFError, OSError) as e:
            log.debug('opening a session on %s failed', self.address, exc_info=True)
            raise EngineVMSSHError('the SSH connection to the engine VM %s is closed (%s): '
                                   'connect again' % (self.address, _reason(e)))
        pending = {'stdout': b'', 'stderr': b''}

        def emit(stream, data, final=False):
            buf = pending[stream] + data
            *lines, rest = buf.split(b'\n')
            if final and rest:
                lines.append(rest)
                rest = b''
            pending[stream] = rest
            for raw in lines:
                line = raw.decode('utf-8', 'replace').rstrip('\r')
                if on_line is not None:
                    on_line(stream, line)

        try:
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin.encode('utf-8') if isinstance(stdin, str) else stdin)
            chan.shutdown_write()
            while True:
                got = False
                while chan.recv_ready():
                    emit('stdout', chan.recv(32768))
                    got = True
                while chan.recv_stderr_ready():
                    emit('stderr', chan.recv_stderr(32768))
                    got = True
                if got:
                    continue
                if chan.exit_status_ready() and (chan.eof_received or chan.closed):
                    break
                if chan.closed and not chan.exit_status_ready():
                    raise EOFError('the channel closed without an exit status')
                wait = 0.5
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise CommandTimeout(
                            '%s on the engine VM %s did not finish within %d s: see the log '
                            'in the VM, then try again' % (_short(command), self.address,
                                                           timeout))
                    wait = min(wait, left)
                select.select([chan], [], [], wait)
            status = chan.recv_exit_status()
            emit('stdout', b'', final=True)
            emit('stderr', b'', final=True)
        except (paramiko.SSHException, EOFError, OSError) as e:
            log.debug('running %r on %s failed', command, self.address, exc_info=True)
            raise EngineVMSSHError('the SSH session with the engine VM %s broke while running '
                                   '%s (%s): check the VM and try again'
                                   % (self.address, _short(command), _reason(e)))
        finally:
            chan.close()
        log.debug('%s on %s exited with status %d', _short(command), self.address, status)
        if check and status != 0:
            raise CommandFailed('%s failed on the engine VM %s with exit status %d: see its '
                                'output above' % (_short(command), self.address, status), status)
        return status

    # ------------------------------------------------------------ life

    def close(self):
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _negotiate(address, port, pinned, timeout):
    """A started transport whose server key is the pinned one; None when nothing answers
    yet (with the reason as second value)."""
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except socket.gaierror as e:
        raise Unreachable('cannot resolve the engine VM name %s (%s): check the engine FQDN and '
                          'the DNS or /etc/hosts of this host' % (address, _reason(e)))
    except OSError as e:
        return None, _reason(e)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    transport.get_security_options().key_types = _key_algorithms(pinned)
    try:
        transport.start_client(timeout=timeout)
        if not transport.initial_kex_done:
            raise socket.timeout('timed out')
    except paramiko.IncompatiblePeer:
        transport.close()
        log.debug('SSH negotiation with %s:%s failed', address, port, exc_info=True)
        raise HostKeyChanged('the engine VM %s has no %s host key, the one the deploy gave it '
                             '(%s): it is not the VM this deploy created, or its cloud-init '
                             'did not apply the seed; do not continue'
                             % (address, pinned.get_name(), fingerprint_of(pinned)))
    except (paramiko.SSHException, EOFError, OSError) as e:
        transport.close()
        log.debug('SSH negotiation with %s:%s failed', address, port, exc_info=True)
        return None, 'no SSH answer (%s)' % _reason(e)
    offered = transport.get_remote_server_key()
    if offered.asbytes() != pinned.asbytes():
        transport.close()
        log.warning('SSH host key of the engine VM %s: expected %s, offered %s', address,
                    fingerprint_of(pinned), fingerprint_of(offered))
        raise HostKeyChanged('the engine VM %s offers the SSH host key %s, not %s that the '
                             'deploy gave it: another machine answers at that address; check '
                             'the address, do not continue' % (address, fingerprint_of(offered),
                                                               fingerprint_of(pinned)))
    return transport, None


def _authenticate(transport, address, password, key):
    tried = []
    if key is not None:
        tried.append('key')
        try:
            transport.auth_publickey(ROOT, key)
        except paramiko.AuthenticationException:
            log.debug('root key refused by %s', address)
    if not transport.is_authenticated() and password:
        tried.append('password')
        try:
            transport.auth_password(ROOT, password)
        except paramiko.BadAuthenticationType as e:
            log.debug('password authentication not offered by %s', address)
            raise AuthRefused('the engine VM %s does not accept a password for root (it offers '
                              '%s): give root\'s SSH key, or allow root password logins in the '
                              'VM (cloud-init ssh_pwauth, PermitRootLogin yes)'
                              % (address, ', '.join(e.allowed_types) or 'no method'))
        except paramiko.AuthenticationException:
            log.debug('root password refused by %s', address)
    if not transport.is_authenticated():
        what = ' and '.join({'key': 'root\'s SSH key', 'password': 'the root password'}[t]
                            for t in tried)
        raise AuthRefused('the engine VM %s refused %s: check the engine VM root password and '
                          'SSH key given to the deploy' % (address, what))


def connect(address, host_key_public, password=None, key=None, timeout=10, wait=300,
            port=PORT, reporter=None, interval=2.0):
    """Log in as root to the engine VM at address:port; return an EngineVMSSH.

    host_key_public: the VM's host key as the deploy gave it ('ssh-ed25519 AAAA...' or a
    paramiko key); any other key is refused before authenticating. password and/or key
    (a paramiko key, a private key file or its text): root's credentials, the key tried
    first. wait: seconds to wait for the VM's sshd to answer, progress reported through
    reporter (a progress.Reporter by default). timeout: seconds for each attempt."""
    _quiet_paramiko()
    pinned = public_key(host_key_public)
    pkey = _private_key(key)
    if pkey is None and not password:
        raise EngineVMSSHError('no root password or SSH key given for the engine VM %s: give '
                               'one of them' % address)
    reporter = reporter or progress_mod.Reporter(log)
    what = 'the engine VM %s to answer on SSH port %d' % (address, port)

    last = ['no answer']

    def attempt():
        transport, reason = _negotiate(address, port, pinned, timeout)
        if reason:
            last[0] = reason
        return transport, reason

    try:
        transport = progress_mod.wait_until(attempt, what, wait, interval, reporter)
    except progress_mod.WaitTimeout:
        raise Unreachable('the engine VM %s does not answer on SSH port %d after %d s (last: '
                          '%s): check that the VM is up and reachable from this host'
                          % (address, port, wait, last[0]))
    log.info('SSH host key of the engine VM %s is %s as pinned', address,
             fingerprint_of(pinned))
    try:
        _authenticate(transport, address, password, pkey)
    except (paramiko.SSHException, EOFError, OSError) as e:
        transport.close()
        log.debug('authentication with %s failed', address, exc_info=True)
        raise EngineVMSSHError('the SSH session with the engine VM %s broke during login (%s): '
                               'try again' % (address, _reason(e)))
    except EngineVMSSHError:
        transport.close()
        raise
    transport.set_keepalive(30)
    return EngineVMSSH(transport, address)


__all__ = ['connect', 'public_key', 'EngineVMSSH', 'EngineVMSSHError', 'Unreachable',
           'HostKeyChanged', 'AuthRefused', 'CommandFailed', 'CommandTimeout']
