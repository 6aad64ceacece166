"""sshd in a lab host: the SSH server a host has, for root logins and SFTP.

Each lab host runs OpenSSH's sshd inside its own namespaces, listening on the host's lab
address, port 22. What it uses is the host's own, never the machine's:

  - host keys (ed25519 and rsa) generated once per host into <lab dir>/ssh-host-keys/hostK/
    and kept across `down` and `up`, so a host's key is stable until that directory is
    removed (as a reinstalled host's key is not);
  - /etc/ssh: a per-host directory (the machine's client configuration and moduli, the
    host's keys and the sshd_config below) bind-mounted over /etc/ssh in the host's mount
    namespace;
  - /etc/shadow: a per-host copy of the machine's with root's password replaced,
    bind-mounted over /etc/shadow in the host's mount namespace;
  - the privilege separation directory /run/sshd in the host's private /run.

The machine's /etc/shadow, root password, /etc/ssh and sshd are never touched: the mounts
live in the host's mount namespace (private propagation) and vanish with it.

The root password of every lab host is ROOT_PASSWORD unless `hosted-engine-lab up
--root-password-file FILE` gives another. The lab is a throw-away environment on a network
of its own; the password only ever reaches the per-host shadow file, as a SHA-512 crypt
hash computed by `openssl passwd` from its standard input (never from its arguments).
"""
import datetime
import os
import shutil
import subprocess

from ovirt_hosted_engine_setup.lab import paths, systemctl

# The root password of every lab host (the lab's one home for it; docs/lab.md).
ROOT_PASSWORD = 'lab-host-Pa55'

PORT = 22
KEY_TYPES = ('ed25519', 'rsa')
SSHD = '/usr/sbin/sshd'
SFTP_SERVER = '/usr/lib/openssh/sftp-server'
PRIVSEP_DIR = '/run/sshd'
# What the host keeps of the machine's /etc/ssh (the client side); the server side is the
# host's own.
CLIENT_FILES = ('ssh_config', 'ssh_config.d', 'moduli')

SSHD_CONFIG = """\
# sshd of lab host {name} (written by hosted-engine-lab up)
Port {port}
ListenAddress {address}
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_rsa_key
PidFile {privsep}.pid
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
# sshd checks the password against the host's /etc/shadow itself. PAM would too, but its
# session modules depend on what the machine allows (pam_loginuid needs audit control)
# and a lab host needs none of them.
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
AcceptEnv LANG LC_*
# root's commands over SSH are the host's commands, as `hosted-engine-lab exec` finds them:
# the project's (the lab's installation lives in the checkout's virtualenv), then the
# host's systemctl
SetEnv PATH={path}
Subsystem sftp {sftp}
"""


class SshdError(Exception):
    """A problem a user can fix; the message says how."""


def keys_dir(lab_dir, name):
    """Where the host keys of lab host name live (kept across down and up)."""
    return os.path.join(lab_dir, 'ssh-host-keys', name)


def key_path(lab_dir, name, key_type):
    return os.path.join(keys_dir(lab_dir, name), 'ssh_host_%s_key' % key_type)


def ensure_host_keys(lab_dir, name):
    """Generate the host keys of name once; return {key_type: private key path}."""
    d = keys_dir(lab_dir, name)
    os.makedirs(d, mode=0o700, exist_ok=True)
    out = {}
    for kt in KEY_TYPES:
        path = key_path(lab_dir, name, kt)
        if not (os.path.isfile(path) and os.path.isfile(path + '.pub')):
            for p in (path, path + '.pub'):
                if os.path.exists(p):
                    os.unlink(p)
            cmd = ['ssh-keygen', '-q', '-t', kt, '-N', '', '-C', 'root@%s' % name, '-f', path]
            if kt == 'rsa':
                cmd[4:4] = ['-b', '3072']
            r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise SshdError('ssh-keygen could not make the %s host key of %s (%s): check '
                                'that openssh-client is installed (scripts/bootstrap)'
                                % (kt, name, (r.stderr or r.stdout).strip()))
        out[kt] = path
    return out


def fingerprint(lab_dir, name, key_type='ed25519'):
    """'SHA256:...' of a host key, as `ssh-keygen -lf` prints it."""
    path = key_path(lab_dir, name, key_type) + '.pub'
    if not os.path.isfile(path):
        raise SshdError('lab host %s has no SSH host key yet (%s): run hosted-engine-lab up'
                        % (name, path))
    r = subprocess.run(['ssh-keygen', '-l', '-E', 'sha256', '-f', path], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    words = r.stdout.split()
    if r.returncode != 0 or len(words) < 2 or not words[1].startswith('SHA256:'):
        raise SshdError('ssh-keygen cannot read %s (%s): remove %s and run hosted-engine-lab up '
                        'again' % (path, (r.stderr or r.stdout).strip(), keys_dir(lab_dir, name)))
    return words[1]


def read_password_file(path):
    """The root password in path (its first line, without the line end)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise SshdError('cannot read the root password file %s (%s): give a readable file'
                        % (path, e.strerror))
    lines = text.splitlines()
    password = lines[0] if lines else ''
    if not password:
        raise SshdError('the root password file %s is empty: write the password on its first '
                        'line' % path)
    return password


def password_hash(password):
    """A SHA-512 crypt hash of password (openssl reads it from stdin: no process list)."""
    r = subprocess.run(['openssl', 'passwd', '-6', '-stdin'], input=password + '\n',
                       capture_output=True, text=True)
    h = r.stdout.strip()
    if r.returncode != 0 or not h.startswith('$6$'):
        raise SshdError('openssl passwd could not hash the lab root password (%s): check that '
                        'openssl is installed (scripts/bootstrap)' % r.stderr.strip())
    return h


def shadow_text(machine_shadow, password_hash_):
    """The machine's shadow file with root's entry carrying password_hash_, changed today
    and never expiring (every other line as it is)."""
    today = (datetime.date.today() - datetime.date(1970, 1, 1)).days
    out = []
    found = False
    for line in machine_shadow.splitlines():
        fields = line.split(':')
        if fields[0] == 'root' and len(fields) >= 2:
            fields = (fields + [''] * 9)[:9]
            fields[1] = password_hash_
            fields[2] = str(today)
            fields[3], fields[4], fields[6], fields[7] = '0', '99999', '', ''
            line = ':'.join(fields)
            found = True
        out.append(line)
    if not found:
        out.insert(0, 'root:%s:%d:0:99999:7:::' % (password_hash_, today))
    return '\n'.join(out) + '\n'


def prepare_host(lab_dir, host_dir, name, address, password):
    """Write the host's /etc/ssh and /etc/shadow under host_dir; return the bind mounts
    [(source, mount point)] to make in the host's mount namespace."""
    keys = ensure_host_keys(lab_dir, name)
    etc_ssh = os.path.join(host_dir, 'etc-ssh')
    if os.path.isdir(etc_ssh):
        shutil.rmtree(etc_ssh)
    os.makedirs(etc_ssh)
    os.chmod(etc_ssh, 0o755)
    for fn in CLIENT_FILES:
        src = os.path.join('/etc/ssh', fn)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(etc_ssh, fn), symlinks=True)
        elif os.path.isfile(src):
            shutil.copy2(src, os.path.join(etc_ssh, fn))
    for kt, path in keys.items():
        dst = os.path.join(etc_ssh, os.path.basename(path))
        shutil.copyfile(path, dst)
        os.chmod(dst, 0o600)
        shutil.copyfile(path + '.pub', dst + '.pub')
        os.chmod(dst + '.pub', 0o644)
    with open(os.path.join(etc_ssh, 'sshd_config'), 'w') as f:
        f.write(SSHD_CONFIG.format(name=name, port=PORT, address=address, path=session_path(),
                                   privsep=PRIVSEP_DIR, sftp=SFTP_SERVER))
    with open('/etc/shadow') as f:
        machine = f.read()
    shadow = os.path.join(host_dir, 'shadow')
    fd = os.open(shadow, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(shadow_text(machine, password_hash(password)))
    st = os.stat('/etc/shadow')
    os.chown(shadow, st.st_uid, st.st_gid)
    os.chmod(shadow, st.st_mode & 0o7777)
    return [(etc_ssh, '/etc/ssh'), (shadow, '/etc/shadow')]


def session_path():
    """PATH of root's SSH sessions in a lab host."""
    return ':'.join([paths.venv_bin(), systemctl.LAB_BIN, '/usr/local/sbin', '/usr/local/bin',
                     '/usr/sbin', '/usr/bin', '/sbin', '/bin'])


def command():
    """The sshd command line (in the foreground, its log on stderr)."""
    return [SSHD, '-D', '-e', '-f', '/etc/ssh/sshd_config']


def listening(holder_pid, address, port=PORT):
    """Whether a socket listens on address:port in the network namespace of holder_pid."""
    parts = address.split('.')
    want = '%s:%04X' % (''.join('%02X' % int(p) for p in reversed(parts)), port)
    try:
        with open('/proc/%d/net/tcp' % holder_pid) as f:
            next(f)
            for line in f:
                cols = line.split()
                if len(cols) > 3 and cols[1] == want and cols[3] == '0A':
                    return True
    except (OSError, StopIteration):
        return False
    return False
