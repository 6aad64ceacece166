"""The first host of a hosted engine as an additional host's deploy reaches it over SSH.

An additional host can take its configuration from the first host's answer file
(/etc/ovirt-hosted-engine/answers.conf), read over SFTP as root, as oVirt's 1.x did with
scp. Two steps, so that the user confirms whom they talk to before typing a password:

    key_type, fp = host_key(address, port)          # show fp, let the user compare it
    text = fetch_answers(address, port, password, fp)

fetch_answers checks that the server's host key has exactly the fingerprint given before
it authenticates: a changed key is refused and the password is never sent. Fingerprints
are written as `ssh-keygen -lf` writes them: 'SHA256:' and the unpadded base64 of the
SHA-256 digest of the public key blob.

Every failure raises FirstHostError with one line naming the problem and what to do; the
root password never reaches an exception text or a log, and paramiko's own logger is kept
at WARNING (its debug output would describe the whole session in the deploy's log).
"""
import base64
import errno
import hashlib
import logging
import socket

import paramiko

from .. import paths

log = logging.getLogger(__name__)

ROOT = 'root'
MAX_ANSWER_FILE = 1024 * 1024  # an answer file is a few KiB; refuse anything absurd
_PARAMIKO_LOGGER = 'paramiko'


class FirstHostError(Exception):
    """One line: what is wrong and what to do (the deploy shows str(e) as is)."""


class PasswordRefused(FirstHostError):
    """The first host refused the root password (a typed one may be typed again)."""


def _quiet_paramiko():
    logger = logging.getLogger(_PARAMIKO_LOGGER)
    if logger.level == logging.NOTSET or logger.level < logging.WARNING:
        logger.setLevel(logging.WARNING)


_quiet_paramiko()


def fingerprint_of(key):
    """'SHA256:<base64 without padding>' of a paramiko public key, as ssh-keygen -lf."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return 'SHA256:' + base64.b64encode(digest).decode('ascii').rstrip('=')


def _normalized(fingerprint):
    fp = (fingerprint or '').strip()
    head, sep, body = fp.partition(':')
    body = body.rstrip('=')
    try:
        ok = sep and head == 'SHA256' and len(base64.b64decode(body + '=' * (-len(body) % 4),
                                                               validate=True)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise FirstHostError('%r is not an SSH host key fingerprint: give it as ssh-keygen -lf '
                             'prints it on the first host (SHA256:...)' % fingerprint)
    return 'SHA256:' + body


def ssh_reason(e):
    """A network or SSH error in a few words, for a one-line message."""
    if isinstance(e, socket.timeout):
        return 'timed out'
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return str(e) or type(e).__name__


def _connect(address, port, timeout):
    """A started SSH client transport to address:port (the server's key is not yet
    checked and nothing is authenticated)."""
    _quiet_paramiko()
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except socket.gaierror as e:
        log.debug('resolving %s failed', address, exc_info=True)
        raise FirstHostError('cannot resolve the first host name %s (%s): check the name, or '
                             'give the first host\'s IP address' % (address, ssh_reason(e)))
    except OSError as e:
        log.debug('connecting to %s:%s failed', address, port, exc_info=True)
        raise FirstHostError('cannot reach the first host %s on port %s: %s, check the address, '
                             'that sshd runs there and the firewall'
                             % (address, port, ssh_reason(e)))
    transport = None
    try:
        transport = paramiko.Transport(sock)
        transport.banner_timeout = timeout
        transport.auth_timeout = timeout
        transport.handshake_timeout = timeout
        transport.start_client(timeout=timeout)
        if not transport.initial_kex_done:  # start_client returns at its timeout
            raise socket.timeout('timed out')
    except (paramiko.SSHException, EOFError, OSError) as e:
        log.debug('SSH negotiation with %s:%s failed', address, port, exc_info=True)
        if transport is not None:
            transport.close()
        sock.close()
        raise FirstHostError('the first host %s does not answer as an SSH server on port %s '
                             '(%s): check the address, the port and that sshd runs there'
                             % (address, port, ssh_reason(e)))
    return transport


def host_key(address, port=22, timeout=10):
    """(key_type, fingerprint) of the SSH server, fingerprint 'SHA256:<base64 without
    padding>' exactly as `ssh-keygen -lf` prints it; key_type as known_hosts names it
    ('ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256'). Raises FirstHostError when the host
    cannot be reached."""
    transport = _connect(address, port, timeout)
    try:
        key = transport.get_remote_server_key()
        return key.get_name(), fingerprint_of(key)
    finally:
        transport.close()


def fetch_answers(address, port, password, fingerprint, path=paths.ETC_ANSWER_FILE,
                  timeout=30):
    """The text of `path` on the first host, read over SFTP as root with `password`, after
    checking the server's host key has exactly `fingerprint` (a changed key is refused
    before the password is sent)."""
    expected = _normalized(fingerprint)
    if not password:
        raise FirstHostError('no root password given for the first host %s: type the root '
                             'password of %s' % (address, address))
    transport = _connect(address, port, timeout)
    try:
        offered = fingerprint_of(transport.get_remote_server_key())
        if offered != expected:
            log.warning('SSH host key of %s: expected %s, offered %s', address, expected,
                        offered)
            raise FirstHostError(
                'the SSH host key of %s changed: expected %s, the host offers %s: if %s was '
                'reinstalled, confirm the new fingerprint; otherwise do not continue'
                % (address, expected, offered, address))
        log.info('SSH host key of %s is %s as expected', address, offered)
        try:
            transport.auth_password(ROOT, password)
        except paramiko.BadAuthenticationType as e:
            log.debug('password authentication not offered by %s', address, exc_info=True)
            raise FirstHostError(
                'the first host %s does not accept a password for root (it offers %s): allow '
                'PasswordAuthentication and PermitRootLogin in its sshd_config'
                % (address, ', '.join(e.allowed_types) or 'no method'))
        except paramiko.AuthenticationException:
            log.debug('root password refused by %s', address)
            raise PasswordRefused('the first host %s refused the root password: type it again'
                                  % address)
        except (paramiko.SSHException, EOFError, OSError) as e:
            log.debug('authentication with %s failed', address, exc_info=True)
            raise FirstHostError('the SSH session with the first host %s broke during login '
                                 '(%s): try again' % (address, ssh_reason(e)))
        if not transport.is_authenticated():
            raise PasswordRefused('the first host %s refused the root password: type it again'
                                  % address)
        return _read(transport, address, path, timeout)
    finally:
        transport.close()


def _read(transport, address, path, timeout):
    try:
        sftp = paramiko.SFTPClient.from_transport(transport)
    except (paramiko.SSHException, EOFError, OSError) as e:
        log.debug('SFTP with %s failed', address, exc_info=True)
        raise FirstHostError('the first host %s does not offer SFTP (%s): enable the sftp '
                             'Subsystem in its sshd_config' % (address, ssh_reason(e)))
    try:
        sftp.get_channel().settimeout(timeout)
        try:
            with sftp.open(path, 'rb') as f:
                size = f.stat().st_size
                if size is not None and size > MAX_ANSWER_FILE:
                    raise FirstHostError(
                        '%s on %s is %d bytes, not an answer file: check the file on %s'
                        % (path, address, size, address))
                data = f.read(MAX_ANSWER_FILE + 1)
        except OSError as e:
            log.debug('reading %s on %s failed', path, address, exc_info=True)
            if e.errno == errno.ENOENT:
                raise FirstHostError('%s has no %s: is %s the first host of this hosted engine? '
                                     'run the deploy there first' % (address, path, address))
            if e.errno == errno.EACCES:
                raise FirstHostError('root cannot read %s on %s (permission denied): check the '
                                     'file on %s' % (path, address, address))
            raise FirstHostError('cannot read %s on %s (%s): check the file on %s'
                                 % (path, address, ssh_reason(e), address))
        except (paramiko.SSHException, EOFError) as e:
            log.debug('reading %s on %s failed', path, address, exc_info=True)
            raise FirstHostError('cannot read %s on %s (%s): try again'
                                 % (path, address, ssh_reason(e)))
    finally:
        sftp.close()
    if len(data) > MAX_ANSWER_FILE:
        raise FirstHostError('%s on %s is larger than %d bytes, not an answer file: check the '
                             'file on %s' % (path, address, MAX_ANSWER_FILE, address))
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        raise FirstHostError('%s on %s is not a text file: check the file on %s'
                             % (path, address, address))
    log.info('read %s from the first host %s (%d bytes)', path, address, len(data))
    return text
