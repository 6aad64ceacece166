"""Engine-driven host deploy over SSH, as oVirt's host-deploy reaches a host.

The engine logs in as root with the password given when the host is added (or
re-installed), with OpenSSH's client:
- the host's SSH key: the key given by fingerprint (<ssh><fingerprint>) must be
  among the keys the host offers; without one, the key is trusted on first use
  and its fingerprint recorded. Either way the key is pinned in the host's
  known_hosts file (state dir hosts/<id>/known_hosts) and ssh checks it strictly;
- the password: never on a command line, in a file or in the log. ssh asks it
  from SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force), a small program that reads it
  from a unix socket this process serves in a private (0700) directory only for
  the time of the install.
Over SSH it installs the engine CA where the host agent trusts client
certificates, then (hosted-engine deploy) writes an answer file (0600, in a
mktemp directory removed afterwards) and runs
`hosted-engine --deploy --config-append=FILE </dev/null`, or (undeploy) runs
`ovirt-hosted-engine-cleanup -q`. The command's output goes to the engine log
line by line.
"""
import base64
import hashlib
import logging
import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading

from ovirt_hosted_engine_setup.deploy.host_agent import trusted_ca_path

from .askpass import ASKPASS_SOCKET_ENV

log = logging.getLogger('engine.host-deploy')

SSH_PORT = 22
SSH_USER = 'root'
CONNECT_TIMEOUT = 15
COMMAND_TIMEOUT = 60
DEPLOY_TIMEOUT = 3600
HOSTED_STORAGE = 'hosted_storage'
ANSWER_FILE_NAME = 'he-host-deploy.conf'
MASK = '********'
# ssh's own preference among host key types, and the algorithms that verify each
KEY_PREFERENCE = ('ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384',
                  'ecdsa-sha2-nistp521', 'ssh-rsa')
KEY_ALGORITHMS = {'ssh-rsa': 'rsa-sha2-512,rsa-sha2-256'}

_FP_SHA256 = re.compile(r'^SHA256:([A-Za-z0-9+/]{43})=?$')
_FP_MD5 = re.compile(r'^(?:MD5:)?((?:[0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2})$')


class DeployError(Exception):
    """Why an install failed, in one line (shown as the host's status detail)."""


# -- fingerprints --------------------------------------------------------------

def normalize_fingerprint(text):
    """'SHA256:<base64>' or 'MD5:<hex pairs>' (the bare hex pairs form is MD5, as
    oVirt's older API shows it); ValueError for anything else."""
    text = (text or '').strip()
    m = _FP_SHA256.match(text)
    if m:
        return 'SHA256:' + m.group(1)
    m = _FP_MD5.match(text)
    if m:
        return 'MD5:' + m.group(1).lower()
    raise ValueError('%r is not an SSH key fingerprint: give it as ssh-keygen -lf prints it, '
                     'SHA256:<base64> (or MD5:<hex pairs>)' % text)


def key_fingerprint(blob_b64, kind='SHA256'):
    """The fingerprint of a public key blob (base64, as in known_hosts)."""
    blob = base64.b64decode(blob_b64)
    if kind == 'MD5':
        d = hashlib.md5(blob).hexdigest()
        return 'MD5:' + ':'.join(d[i:i + 2] for i in range(0, len(d), 2))
    return 'SHA256:' + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip('=')


def scan_host_keys(address, port, timeout=CONNECT_TIMEOUT):
    """[(key type, base64 blob)] the SSH server at address:port offers."""
    try:
        socket.create_connection((address, port), timeout=timeout).close()
    except OSError as e:
        raise DeployError('cannot connect to %s port %d over SSH: %s'
                          % (address, port, getattr(e, 'strerror', None) or e))
    try:
        r = subprocess.run(['ssh-keyscan', '-T', str(int(timeout)), '-p', str(port), '-t',
                            'ed25519,ecdsa,rsa', address], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=timeout * 4)
    except FileNotFoundError:
        raise DeployError('ssh-keyscan is missing on the engine: install openssh-client')
    except subprocess.TimeoutExpired:
        raise DeployError('ssh-keyscan of %s port %d did not end in %d s'
                          % (address, port, timeout * 4))
    keys = []
    for line in r.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith('#'):
            keys.append((fields[1], fields[2]))
    if not keys:
        raise DeployError('%s port %d offered no SSH host key (%s)'
                          % (address, port, _last_line(r.stderr) or 'no answer'))
    return keys


def choose_host_key(keys, fingerprint=None):
    """The key to pin: the one with the given fingerprint, else ssh's preferred type."""
    if fingerprint:
        kind = fingerprint.split(':', 1)[0]
        for kt, blob in keys:
            if key_fingerprint(blob, kind) == fingerprint:
                return kt, blob
        raise DeployError('the SSH host key does not match the fingerprint given (%s): the host '
                          'offers %s; check the fingerprint (ssh-keygen -lf on the host)'
                          % (fingerprint, ', '.join(key_fingerprint(b, kind)
                                                    for _kt, b in keys)))
    rank = {kt: i for i, kt in enumerate(KEY_PREFERENCE)}
    return sorted(keys, key=lambda k: rank.get(k[0], len(rank)))[0]


# -- the password, through SSH_ASKPASS ------------------------------------------------

class Askpass:
    """A private directory holding a unix socket that answers ssh's password prompt
    and the SSH_ASKPASS program that asks it. Close it when the install ends."""

    def __init__(self, password):
        self._password = password
        self.dir = tempfile.mkdtemp(prefix='ovirt-engine-ssh-')
        os.chmod(self.dir, 0o700)
        self.socket_path = os.path.join(self.dir, 'askpass.sock')
        self.program = os.path.join(self.dir, 'askpass')
        with open(self.program, 'w') as f:
            f.write('#!/bin/sh\nexec %s -m ovirt_hosted_engine_setup.lab.engine.askpass "$@"\n'
                    % shlex.quote(sys.executable))
        os.chmod(self.program, 0o700)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        self._sock.listen(4)
        self._sock.settimeout(0.5)
        self._closed = False
        self.answered = 0
        self._thread = threading.Thread(target=self._serve, name='askpass', daemon=True)
        self._thread.start()

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(('SSH_', 'DISPLAY'))}
        env.update({'SSH_ASKPASS': self.program, 'SSH_ASKPASS_REQUIRE': 'force',
                    ASKPASS_SOCKET_ENV: self.socket_path, 'LC_ALL': 'C'})
        return env

    def _serve(self):
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(5)
                    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                            struct.calcsize('3i'))
                    _pid, uid, _gid = struct.unpack('3i', creds)
                    if uid != os.getuid():
                        continue
                    prompt = conn.recv(4096).decode('utf-8', 'replace')
                    # only a password prompt gets the password (never a host key question)
                    if 'password' in prompt.lower():
                        conn.sendall(self._password.encode('utf-8') + b'\n')
                        self.answered += 1
                except OSError:
                    continue

    def close(self):
        self._closed = True
        self._password = None
        try:
            self._sock.close()
        except OSError:
            pass
        self._thread.join(2)
        shutil.rmtree(self.dir, ignore_errors=True)


# -- SSH sessions ----------------------------------------------------------------

class SshHost:
    """Commands run on a host as root over SSH, its host key pinned."""

    def __init__(self, address, port, known_hosts, alias, key_type, askpass, secrets=()):
        self.address = address
        self.port = port
        self.known_hosts = known_hosts
        self.alias = alias
        self.key_type = key_type
        self.askpass = askpass
        self.secrets = [s for s in secrets if s]
        self.proc = None

    def command(self, remote):
        opts = {
            'UserKnownHostsFile': self.known_hosts, 'GlobalKnownHostsFile': '/dev/null',
            'StrictHostKeyChecking': 'yes', 'HostKeyAlias': self.alias,
            'HostKeyAlgorithms': KEY_ALGORITHMS.get(self.key_type, self.key_type),
            'UpdateHostKeys': 'no', 'CheckHostIP': 'no',
            'PreferredAuthentications': 'password,keyboard-interactive',
            'PubkeyAuthentication': 'no', 'GSSAPIAuthentication': 'no',
            'NumberOfPasswordPrompts': '1', 'BatchMode': 'no',
            'ConnectTimeout': str(CONNECT_TIMEOUT), 'ServerAliveInterval': '15',
            'ServerAliveCountMax': '4', 'ControlMaster': 'no', 'ControlPath': 'none',
            'ForwardAgent': 'no', 'ForwardX11': 'no', 'ClearAllForwardings': 'yes',
            'RequestTTY': 'no', 'LogLevel': 'ERROR', 'User': SSH_USER,
        }
        cmd = ['ssh', '-F', '/dev/null', '-p', str(self.port)]
        for k, v in opts.items():
            cmd += ['-o', '%s=%s' % (k, v)]
        return cmd + ['--', self.address, remote]

    def mask(self, text):
        for s in self.secrets:
            text = text.replace(s, MASK)
        return text

    def run(self, remote, stdin=None, timeout=COMMAND_TIMEOUT, on_line=None, cancel=None):
        """Run remote (a shell command line) on the host; returns (exit status, output lines).
        stdin: bytes for its standard input (else /dev/null). Output (stdout and stderr
        together) goes to on_line line by line, secrets masked."""
        try:
            self.proc = subprocess.Popen(self.command(remote), env=self.askpass.env(),
                                         stdin=subprocess.PIPE if stdin is not None
                                         else subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        except FileNotFoundError:
            raise DeployError('ssh is missing on the engine: install openssh-client')
        proc = self.proc
        if stdin is not None:
            def feed():
                try:
                    proc.stdin.write(stdin)
                    proc.stdin.close()
                except OSError:
                    pass
            threading.Thread(target=feed, daemon=True).start()
        expired = threading.Event()

        def expire():
            expired.set()
            self._kill(proc)
        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        lines = []
        try:
            for raw in proc.stdout:
                line = self.mask(raw.decode('utf-8', 'replace').rstrip('\r\n'))
                lines.append(line)
                del lines[:-200]
                if on_line:
                    on_line(line)
            rc = proc.wait()
        finally:
            timer.cancel()
            self.proc = None
        if expired.is_set():
            raise DeployError('%s on %s did not end in %d s' % (remote.split()[0],
                                                                self.address, timeout))
        return rc, lines

    @staticmethod
    def _kill(proc):
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass

    def cancel(self):
        proc = self.proc
        if proc is not None:
            self._kill(proc)


# -- what runs on the host ---------------------------------------------------------

def answer_file(domain_type, connection, host_id, host_name):
    """The answers the host-side additional-host flow of hosted-engine --deploy reads."""
    return '\n'.join([
        '[environment:default]',
        'OVEHOSTED_CORE/isAdditionalHost=bool:True',
        'OVEHOSTED_CORE/deployProceed=bool:True',
        'OVEHOSTED_CORE/confirmSettings=bool:True',
        'OVEHOSTED_CORE/skipTTYCheck=bool:True',
        'OVEHOSTED_ENGINE/hostAddedByEngine=bool:True',
        'OVEHOSTED_STORAGE/domainType=str:%s' % domain_type,
        'OVEHOSTED_STORAGE/storageDomainConnection=str:%s' % connection,
        'OVEHOSTED_STORAGE/hostID=int:%d' % host_id,
        'OVEHOSTED_NETWORK/host_name=str:%s' % host_name,
    ]) + '\n'


def hosted_storage(state):
    """(domain type, connection) of the hosted-engine storage domain the engine knows."""
    sd = state.find('storage_domains', HOSTED_STORAGE)
    if sd is None:
        raise DeployError('the engine knows no hosted-engine storage domain (%s) yet: deploy '
                          'the first host and wait until the engine lists the domain'
                          % HOSTED_STORAGE)
    path = sd.get('path') or ''
    connection = '%s:%s' % (sd['address'], path) if sd.get('address') else path
    if not connection:
        raise DeployError('the engine does not know the connection of storage domain %s'
                          % HOSTED_STORAGE)
    return sd.get('storage_type') or 'nfs', connection


def _last_line(text_or_lines):
    lines = text_or_lines.splitlines() if isinstance(text_or_lines, str) else text_or_lines
    lines = [x.strip() for x in lines if x.strip()]
    return lines[-1] if lines else ''


def error_line(lines):
    """The reason a command failed: the deploy's "Failed to execute stage" line (the
    problem and its fix), else its last error line, else its last line."""
    lines = [x.strip() for x in lines if x.strip()]
    for line in lines:
        if 'Failed to execute stage' in line:
            return line
    for line in reversed(lines):
        if 'ERROR' in line or line.lower().startswith(('error', 'fatal')):
            return line
    return lines[-1] if lines else 'no output'


# -- the install ----------------------------------------------------------------------

class HostInstall(threading.Thread):
    """One install of a host over SSH: engine CA, then (action 'deploy') hosted-engine
    --deploy or (action 'undeploy') ovirt-hosted-engine-cleanup -q. The host is
    install_failed with the reason, or goes on to be monitored (up) or, with activate
    false, stays in maintenance."""

    def __init__(self, engine, host_id, password, action=None, activate=True):
        super().__init__(name='host-install-%s' % host_id[:8], daemon=True)
        self.engine = engine
        self.state = engine.state
        self.host_id = host_id
        self._password = password
        self.action = action
        self.activate = activate
        self.cancelled = threading.Event()
        self.ssh = None
        self.dir = os.path.join(self.state.dir, 'hosts', host_id)

    def cancel(self):
        self.cancelled.set()
        if self.ssh is not None:
            self.ssh.cancel()

    def run(self):
        host = self.state.get('hosts', self.host_id)
        name = host['name'] if host else self.host_id
        askpass = None
        failure = None
        try:
            askpass = Askpass(self._password)
            self._install(host, askpass)
        except DeployError as e:
            failure = str(e)
        except Exception as e:
            log.exception('host %s: install failed', name)
            failure = 'internal error: %s' % e
        finally:
            self._password = None
            if self.ssh is not None:
                self.ssh.secrets = []
            if askpass is not None:
                askpass.close()
        try:
            if failure is not None:
                self._failed(name, failure)
            else:
                status = 'maintenance' if not self.activate else 'unassigned'
                self.state.update('hosts', self.host_id, status=status, status_detail=None,
                                  install_running=False)
                log.info('host %s: installation ended successfully%s', name,
                         '' if self.activate else '; the host stays in maintenance')
                self.engine.monitor(self.host_id)
        finally:
            self.engine.install_done(self.host_id, self)

    def _failed(self, name, reason):
        if self.cancelled.is_set():
            log.info('host %s: installation stopped', name)
            reason = 'the installation was stopped (the engine stopped)'
        else:
            log.error('host %s: installation failed: %s', name, reason)
        self.state.update('hosts', self.host_id, status='install_failed', status_detail=reason,
                          install_running=False)

    def _install(self, host, askpass):
        if host is None:
            raise DeployError('host removed')
        name, address = host['name'], host['address']
        ssh_conf = host.get('ssh') or {}
        port = int(ssh_conf.get('port') or SSH_PORT)
        known = ssh_conf.get('fingerprint')
        log.info('host %s: installing over SSH (%s port %d)%s', name, address, port,
                 {'deploy': ', hosted-engine deploy', 'undeploy': ', hosted-engine undeploy'}
                 .get(self.action, ''))
        key_type, blob = choose_host_key(scan_host_keys(address, port), known)
        fp = key_fingerprint(blob, known.split(':', 1)[0] if known else 'SHA256')
        if not known:
            log.warning('host %s (%s port %d): no SSH fingerprint given; trusting its %s host '
                        'key on first use, fingerprint %s', name, address, port, key_type, fp)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        known_hosts = os.path.join(self.dir, 'known_hosts')
        with open(known_hosts + '.tmp', 'w') as f:
            f.write('%s %s %s\n' % (self.host_id, key_type, blob))
        os.rename(known_hosts + '.tmp', known_hosts)
        self.state.update('hosts', self.host_id,
                          ssh=dict(ssh_conf, port=port, fingerprint=fp, key_type=key_type))
        self.ssh = SshHost(address, port, known_hosts, self.host_id, key_type, askpass,
                           secrets=[self._password])
        self._check(self._install_ca(), 'installing the engine CA')
        log.info('host %s: engine CA installed', name)
        if self.action == 'deploy':
            self._deploy(host)
        elif self.action == 'undeploy':
            self._undeploy(host)

    def _check(self, result, what):
        rc, lines = result
        if self.cancelled.is_set():
            raise DeployError('cancelled')
        if rc == 255:
            raise DeployError('SSH to %s port %d failed while %s: %s'
                              % (self.ssh.address, self.ssh.port, what, error_line(lines)))
        if rc != 0:
            raise DeployError('%s failed on %s (exit status %d): %s'
                              % (what, self.ssh.address, rc, error_line(lines)))
        return lines

    def _install_ca(self):
        with open(self.state.pki.ca_cert, 'rb') as f:
            ca = f.read()
        path = trusted_ca_path(self.state.setup['fqdn'])
        q = shlex.quote
        script = ('umask 022 && mkdir -p %s && cat > %s && mv -f %s %s'
                  % (q(os.path.dirname(path)), q(path + '.tmp'), q(path + '.tmp'), q(path)))
        return self.ssh.run(script, stdin=ca, cancel=self.cancelled)

    def _output(self, name, what):
        def on_line(line):
            log.info('host %s: %s: %s', name, what, line)
        return on_line

    def _deploy(self, host):
        domain_type, connection = hosted_storage(self.state)
        spm_id = host.get('spm_id')
        if not spm_id:
            raise DeployError('the host has no host id in its data center')
        answers = answer_file(domain_type, connection, int(spm_id), host['address'])
        lines = self._check(self.ssh.run(
            'umask 077 && d=$(mktemp -d) && cat > "$d/%s" && echo "$d"' % ANSWER_FILE_NAME,
            stdin=answers.encode('utf-8'), cancel=self.cancelled),
            'writing the deploy answer file')
        tmpdir = _last_line(lines)
        if not tmpdir.startswith('/'):
            raise DeployError('mktemp on %s gave no directory: %s' % (host['address'], tmpdir))
        answer_path = '%s/%s' % (tmpdir, ANSWER_FILE_NAME)
        log.info('host %s: running hosted-engine --deploy (host id %s, storage %s %s)',
                 host['name'], spm_id, domain_type, connection)
        q = shlex.quote
        # 2>&1 on the host: its output lines keep their order (ssh carries stdout and
        # stderr apart), so the last error line is the command's last one
        remote = ('hosted-engine --deploy --config-append=%s </dev/null 2>&1; rc=$?; '
                  'rm -rf %s; exit $rc' % (q(answer_path), q(tmpdir)))
        self._check(self.ssh.run(remote, timeout=DEPLOY_TIMEOUT, cancel=self.cancelled,
                                 on_line=self._output(host['name'], 'hosted-engine --deploy')),
                    'hosted-engine --deploy')

    def _undeploy(self, host):
        log.info('host %s: running ovirt-hosted-engine-cleanup -q', host['name'])
        self._check(self.ssh.run('ovirt-hosted-engine-cleanup -q </dev/null 2>&1',
                                 timeout=DEPLOY_TIMEOUT, cancel=self.cancelled,
                                 on_line=self._output(host['name'],
                                                      'ovirt-hosted-engine-cleanup')),
                    'ovirt-hosted-engine-cleanup')
        # the cleanup removes everything a deploy installed, the engine CA among it: the
        # host stays a host of this engine, so its agent must trust the engine again
        self._check(self._install_ca(), 'installing the engine CA again after the cleanup')
        self.state.update('hosts', self.host_id, ha_stats=None)
