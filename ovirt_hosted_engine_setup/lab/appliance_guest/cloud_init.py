#!/usr/bin/python3
"""The lab appliance's cloud-init: the NoCloud subset the hosted-engine seed uses.

Installed as /usr/libexec/ovirt-engine-lab/cloud-init; the boot script runs it
once per boot after the engine state partition is mounted. It finds the seed (an
ISO 9660 file system with volume id "cidata" on a cdrom or disk), reads
meta-data, user-data ("#cloud-config") and network-config, and applies:

  meta-data       instance-id, local-hostname
  network-config  version 1: physical NICs matched by mac_address (else by name),
                  subnets static (address A.B.C.D/N or address + netmask, gateway,
                  dns_nameservers, dns_search) or dhcp (busybox udhcpc);
                  entries of type nameserver
  user-data       fqdn, hostname, chpasswd (users: name/password/type hash|text,
                  or list: "name:password"), ssh_authorized_keys (root's
                  authorized_keys), write_files (path, content, encoding b64|base64|
                  gzip+b64, permissions, owner, append), runcmd (strings or argv lists,
                  run once per instance-id by /bin/sh, in the background, output to
                  the console and /var/log/cloud-init-output.log), timezone (kept in
                  /etc/timezone), and for sshd as cloud-init's ssh and set_passwords
                  modules do: ssh_pwauth (PasswordAuthentication in
                  /etc/ssh/sshd_config.d/50-cloud-init.conf), disable_root and
                  disable_root_opts (root's authorized keys get the options that refuse
                  a login), ssh_keys (<type>_private, <type>_public, <type>_certificate
                  for rsa, ecdsa, ed25519: the host keys), ssh_deletekeys,
                  ssh_genkeytypes (generated when ssh_keys gives none)
Other keys are logged to the console and ignored.

The appliance's root file system lives in memory, so the configuration is applied
at every boot. What a boot without the seed needs (host name, network, /etc/hosts,
root's password hash and SSH keys) is kept in <state>/cloud-init/ and restored when
the seed is gone; the instance ids whose runcmd ran are kept there too
(runcmd-done.json). write_files contents are not kept (they may hold secrets), except
sshd's drop-ins in /etc/ssh/sshd_config.d. The SSH host keys live on the state partition
(<state>/ssh/etc/ssh, the layout of `ssh-keygen -A -f <state>/ssh`), set once per
instance-id; the sshd start script (start-sshd) generates them when there are none and
copies them to /etc/ssh.
"""
import base64
import glob
import grp
import gzip
import json
import os
import pwd
import shlex
import subprocess
import sys
import time

import yaml

STATE_DIR = '/var/lib/ovirt-engine-lab'
CI_DIR = os.path.join(STATE_DIR, 'cloud-init')
MOUNT = '/media/cidata'
LOG = '/var/log/cloud-init.log'
OUTPUT_LOG = '/var/log/cloud-init-output.log'
VOLUME_ID = b'cidata'
KEPT_FILES = ('/etc/hostname', '/etc/hosts', '/etc/shadow', '/etc/resolv.conf',
              '/etc/timezone', '/root/.ssh/authorized_keys')
USER_DATA_KEYS = {'fqdn', 'hostname', 'chpasswd', 'ssh_authorized_keys', 'write_files',
                  'runcmd', 'timezone', 'ssh_pwauth', 'disable_root', 'preserve_hostname',
                  'manage_etc_hosts', 'disable_root_opts', 'ssh_keys', 'ssh_deletekeys',
                  'ssh_genkeytypes'}
ROOT_AUTHORIZED_KEYS = '/root/.ssh/authorized_keys'
SSHD_DROPIN_DIR = '/etc/ssh/sshd_config.d'
SSHD_CLOUD_INIT_CONF = os.path.join(SSHD_DROPIN_DIR, '50-cloud-init.conf')
# Where the host keys live: on the state partition when it is mounted, else in memory
# (start-sshd makes the same choice).
HOST_KEYS_PREFIX = os.path.join(STATE_DIR, 'ssh')
HOST_KEYS_PREFIX_RUN = '/run/ssh-host-keys'
HOST_KEY_TYPES = ('rsa', 'ecdsa', 'ed25519')
# cloud-init's defaults (cc_ssh)
GENKEYTYPES = ['rsa', 'ecdsa', 'ed25519']
DISABLE_ROOT_OPTS = ('no-port-forwarding,no-agent-forwarding,no-X11-forwarding,'
                     'command="echo \'Please login as the user \\"$USER\\" rather than the user '
                     '\\"$DISABLE_USER\\".\';echo;sleep 10;exit 142"')
TRUE_WORDS = ('true', 'yes', 'on', '1')


def log(msg):
    line = 'cloud-init: %s' % msg
    print(line, flush=True)
    try:
        with open(LOG, 'a') as f:
            f.write('%s %s\n' % (time.strftime('%Y-%m-%d %H:%M:%S'), line))
    except OSError:
        pass


def run(cmd, check=False):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        msg = '%s failed: %s' % (' '.join(cmd), (r.stderr or r.stdout).strip())
        if check:
            raise RuntimeError(msg)
        log(msg)
    return r


# ---------------------------------------------------------------- the seed

def _volume_id(dev):
    try:
        with open(dev, 'rb') as f:
            f.seek(32768)
            pvd = f.read(72)
    except OSError:
        return None
    if pvd[1:6] != b'CD001':
        return None
    return pvd[40:72].strip()


def find_seed(wait=5.0):
    """The block device holding a file system with volume id cidata, or None."""
    deadline = time.monotonic() + wait
    while True:
        for name in sorted(os.listdir('/sys/class/block')):
            dev = '/dev/' + name
            if os.path.exists(dev) and (_volume_id(dev) or b'').lower() == VOLUME_ID:
                return dev
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def read_seed(dev):
    os.makedirs(MOUNT, exist_ok=True)
    if not os.path.ismount(MOUNT):
        run(['mount', '-t', 'iso9660', '-o', 'ro', dev, MOUNT], check=True)
    files = {}
    for name in ('meta-data', 'user-data', 'network-config'):
        path = os.path.join(MOUNT, name)
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                files[name] = f.read().decode('utf-8')
    run(['umount', MOUNT])
    return files


def _yaml(text, what):
    if not text or not text.strip():
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        log('%s is not valid YAML, ignored: %s' % (what, str(e).splitlines()[0]))
        return {}
    if not isinstance(data, dict):
        log('%s is not a mapping, ignored' % what)
        return {}
    return data


# ---------------------------------------------------------------- network

def _links():
    """{mac: name} of the Ethernet interfaces."""
    out = {}
    for name in sorted(os.listdir('/sys/class/net')):
        if name == 'lo':
            continue
        try:
            with open('/sys/class/net/%s/address' % name) as f:
                out[f.read().strip().lower()] = name
        except OSError:
            pass
    return out


def _wait_links(wait=5.0):
    deadline = time.monotonic() + wait
    while not _links() and time.monotonic() < deadline:
        time.sleep(0.1)
    return _links()


def _prefix(netmask):
    return sum(bin(int(p)).count('1') for p in netmask.split('.'))


def apply_network(config):
    """network-config version 1."""
    if not config:
        config = {'version': 1, 'config': [{'type': 'physical', 'name': 'eth0',
                                            'subnets': [{'type': 'dhcp'}]}]}
    if config.get('version') != 1:
        log('network-config version %r is not supported (only version 1), ignored'
            % config.get('version'))
        return
    links = _wait_links()
    nameservers, search = [], []
    for entry in config.get('config') or []:
        kind = entry.get('type')
        if kind == 'nameserver':
            nameservers += list(entry.get('address') or [])
            search += list(entry.get('search') or [])
            continue
        if kind != 'physical':
            log('network-config entry of type %r is not supported, ignored' % kind)
            continue
        want = entry.get('name')
        mac = (entry.get('mac_address') or '').lower()
        dev = links.get(mac) if mac else (want if want in links.values() else None)
        if dev is None:
            log('no network interface %s, entry ignored' % (mac or want))
            continue
        if want and dev != want and want not in links.values():
            run(['ip', 'link', 'set', 'dev', dev, 'down'])
            if run(['ip', 'link', 'set', 'dev', dev, 'name', want]).returncode == 0:
                dev = want
        if entry.get('mtu'):
            run(['ip', 'link', 'set', 'dev', dev, 'mtu', str(entry['mtu'])])
        run(['ip', 'link', 'set', 'dev', dev, 'up'])
        for sub in entry.get('subnets') or []:
            stype = sub.get('type')
            if stype == 'static':
                addr = str(sub.get('address', ''))
                if '/' not in addr and sub.get('netmask'):
                    addr = '%s/%d' % (addr, _prefix(sub['netmask']))
                run(['ip', 'addr', 'add', addr, 'dev', dev])
                if sub.get('gateway'):
                    run(['ip', 'route', 'add', 'default', 'via', str(sub['gateway']),
                         'dev', dev])
                nameservers += list(sub.get('dns_nameservers') or [])
                search += list(sub.get('dns_search') or [])
                log('%s: static address %s gateway %s' % (dev, addr,
                                                          sub.get('gateway') or 'none'))
            elif stype in ('dhcp', 'dhcp4'):
                log('%s: DHCP' % dev)
                run(['udhcpc', '-i', dev, '-b', '-t', '5', '-T', '2',
                     '-s', '/usr/share/udhcpc/default.script'])
            else:
                log('%s: subnet type %r is not supported, ignored' % (dev, stype))
    if nameservers or search:
        with open('/etc/resolv.conf', 'w') as f:
            if search:
                f.write('search %s\n' % ' '.join(search))
            for ns in nameservers:
                f.write('nameserver %s\n' % ns)


# ---------------------------------------------------------------- user-data

def set_hostname(meta, user):
    fqdn = user.get('fqdn') or meta.get('local-hostname') or user.get('hostname')
    if not fqdn:
        return
    short = str(user.get('hostname') or fqdn).split('.', 1)[0]
    run(['hostname', str(fqdn)])
    with open('/etc/hostname', 'w') as f:
        f.write('%s\n' % fqdn)
    with open('/etc/hosts', 'a') as f:
        f.write('127.0.1.1 %s %s\n' % (fqdn, short) if fqdn != short else
                '127.0.1.1 %s\n' % fqdn)
    log('host name %s' % fqdn)


def set_password(user, secret, is_hash):
    if not is_hash:
        import crypt
        secret = crypt.crypt(secret, crypt.mksalt(crypt.METHOD_SHA512))
    with open('/etc/shadow') as f:
        lines = f.read().splitlines()
    days = int(time.time() // 86400)
    found = False
    for i, line in enumerate(lines):
        fields = line.split(':')
        if fields[0] == user:
            fields[1] = secret
            fields[2] = str(days)
            lines[i] = ':'.join(fields + [''] * (9 - len(fields)))
            found = True
    if not found:
        log('chpasswd: no user %s, ignored' % user)
        return
    tmp = '/etc/shadow.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.rename(tmp, '/etc/shadow')
    log('chpasswd: password of %s set' % user)


def chpasswd(conf):
    if not isinstance(conf, dict):
        log('chpasswd is not a mapping, ignored')
        return
    for u in conf.get('users') or []:
        kind = u.get('type', 'hash')
        if kind not in ('hash', 'text'):
            log('chpasswd: password type %r for %s is not supported, ignored'
                % (kind, u.get('name')))
            continue
        set_password(str(u.get('name')), str(u.get('password')), kind == 'hash')
    items = conf.get('list') or []
    if isinstance(items, str):
        items = items.splitlines()
    for item in items:
        name, _, secret = str(item).partition(':')
        set_password(name, secret, secret.startswith('$'))


def _bool(value, default):
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_WORDS


def ssh_keys(keys, options=''):
    """root's authorized_keys; options (disable_root) prefixed to every key, as cloud-init
    does: the login is then refused by the forced command."""
    path = ROOT_AUTHORIZED_KEYS
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path, 'a') as f:
        for key in keys or []:
            f.write(('%s %s' % (options, str(key).strip()) if options else str(key).strip())
                    + '\n')
    os.chmod(path, 0o600)
    log('%d SSH key(s) authorized for root%s' % (
        len(keys or []), ' (disable_root: logins with them refused)' if options else ''))


def root_keys(user):
    """ssh_authorized_keys for root, honouring disable_root (default true) and
    disable_root_opts as cloud-init does when there is no default user."""
    keys = user.get('ssh_authorized_keys') or []
    if isinstance(keys, str):
        keys = [keys]
    options = ''
    if _bool(user.get('disable_root'), True):
        options = str(user.get('disable_root_opts') or DISABLE_ROOT_OPTS)
        options = options.replace('$USER', 'NONE').replace('$DISABLE_USER', 'root')
    if keys:
        ssh_keys(keys, options)


def state_mounted():
    return os.path.ismount(STATE_DIR)


def host_keys_dir():
    prefix = HOST_KEYS_PREFIX if state_mounted() else HOST_KEYS_PREFIX_RUN
    return os.path.join(prefix, 'etc', 'ssh')


def _write(path, data, mode):
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w') as f:
        f.write(data if data.endswith('\n') else data + '\n')
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def host_keys(user, instance_id):
    """The SSH host keys, once per instance-id (cloud-init's ssh module): the old keys
    removed (ssh_deletekeys, default true), then the seed's ssh_keys written, or else the
    ssh_genkeytypes generated."""
    d = host_keys_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    marker = os.path.join(CI_DIR, 'ssh-host-keys-instance')
    try:
        with open(marker) as f:
            if f.read().strip() == instance_id:
                log('SSH host keys of instance %s kept' % instance_id)
                return
    except OSError:
        pass
    if _bool(user.get('ssh_deletekeys'), True):
        for path in glob.glob(os.path.join(d, 'ssh_host_*key*')):
            os.unlink(path)
    given = user.get('ssh_keys')
    if given is not None and not isinstance(given, dict):
        log('ssh_keys is not a mapping, ignored')
        given = None
    if given:
        for name, value in sorted(given.items()):
            kind, _, part = str(name).rpartition('_')
            if kind not in HOST_KEY_TYPES or part not in ('private', 'public', 'certificate'):
                log('ssh_keys: %r is not a supported key (<rsa|ecdsa|ed25519>_<private|public|'
                    'certificate>), ignored' % name)
                continue
            base = os.path.join(d, 'ssh_host_%s_key' % kind)
            path = {'private': base, 'public': base + '.pub',
                    'certificate': base + '-cert.pub'}[part]
            _write(path, str(value).strip(), 0o600 if part == 'private' else 0o644)
            log('ssh_keys: %s host key (%s) from the seed' % (kind, part))
        for kind in HOST_KEY_TYPES:
            base = os.path.join(d, 'ssh_host_%s_key' % kind)
            if os.path.exists(base) and not os.path.exists(base + '.pub'):
                r = run(['ssh-keygen', '-y', '-f', base])
                if r.returncode == 0:
                    _write(base + '.pub', r.stdout.strip(), 0o644)
    else:
        types = user.get('ssh_genkeytypes', GENKEYTYPES)
        for kind in types or []:
            base = os.path.join(d, 'ssh_host_%s_key' % kind)
            if os.path.exists(base):
                continue
            if run(['ssh-keygen', '-q', '-t', str(kind), '-N', '', '-f', base]).returncode == 0:
                log('SSH host key %s generated' % kind)
    if state_mounted():
        os.makedirs(CI_DIR, mode=0o700, exist_ok=True)
        with open(marker + '.tmp', 'w') as f:
            f.write(instance_id + '\n')
        os.rename(marker + '.tmp', marker)


def sshd_settings(user):
    """/etc/ssh/sshd_config.d/50-cloud-init.conf: ssh_pwauth (true/false; 'unchanged' or
    absent: the image's default) and the host certificates ssh_keys gave."""
    lines = []
    pwauth = user.get('ssh_pwauth')
    if pwauth is not None and str(pwauth).lower() != 'unchanged':
        lines.append('PasswordAuthentication %s' % ('yes' if _bool(pwauth, False) else 'no'))
        log('ssh_pwauth: PasswordAuthentication %s' % ('yes' if _bool(pwauth, False) else 'no'))
    for cert in sorted(glob.glob(os.path.join(host_keys_dir(), 'ssh_host_*_key-cert.pub'))):
        lines.append('HostCertificate /etc/ssh/%s' % os.path.basename(cert))
    os.makedirs(SSHD_DROPIN_DIR, exist_ok=True)
    if lines:
        _write(SSHD_CLOUD_INIT_CONF, '# written by cloud-init\n' + '\n'.join(lines), 0o644)
    elif os.path.exists(SSHD_CLOUD_INIT_CONF):
        os.unlink(SSHD_CLOUD_INIT_CONF)


def _owner(spec):
    user, _, group = str(spec).partition(':')
    uid = pwd.getpwnam(user).pw_uid
    gid = grp.getgrnam(group).gr_gid if group else pwd.getpwnam(user).pw_gid
    return uid, gid


def write_files(files):
    for item in files or []:
        path = item.get('path')
        if not path:
            log('write_files entry without a path, ignored')
            continue
        content = item.get('content', '')
        enc = str(item.get('encoding', '')).lower()
        data = content.encode('utf-8') if isinstance(content, str) else bytes(content)
        if enc in ('b64', 'base64'):
            data = base64.b64decode(data)
        elif enc in ('gz+b64', 'gzip+b64', 'gz+base64', 'gzip+base64'):
            data = gzip.decompress(base64.b64decode(data))
        elif enc in ('gz', 'gzip'):
            data = gzip.decompress(data)
        mode = int(str(item.get('permissions', '0644')), 8)
        os.makedirs(os.path.dirname(path) or '/', exist_ok=True)
        append = bool(item.get('append'))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC),
                     mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.chmod(path, mode)
        if item.get('owner'):
            try:
                os.chown(path, *_owner(item['owner']))
            except KeyError:
                log('write_files %s: unknown owner %s, kept root' % (path, item['owner']))
        log('wrote %s (%s, mode %o)' % (path, 'appended' if append else 'replaced', mode))


def _done_path():
    return os.path.join(CI_DIR, 'runcmd-done.json')


def runcmd_done():
    try:
        with open(_done_path()) as f:
            return set(json.load(f))
    except (OSError, ValueError):
        return set()


def mark_done(instance_id):
    done = sorted(runcmd_done() | {instance_id})
    tmp = _done_path() + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(done, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, _done_path())


def runcmd(cmds, instance_id):
    if instance_id in runcmd_done():
        log('runcmd: already run for instance %s, skipped' % instance_id)
        return
    lines = ['#!/bin/sh']
    for c in cmds or []:
        lines.append(' '.join(shlex.quote(str(a)) for a in c) if isinstance(c, list) else str(c))
    script = '/run/cloud-init-runcmd.sh'
    with open(script, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.chmod(script, 0o700)
    # Remembered before it runs: a runcmd that powers the VM off or fails halfway is
    # not run again at the next boot (cloud-init's once-per-instance semantics).
    mark_done(instance_id)
    log('runcmd: running %d command(s) for instance %s' % (len(cmds or []), instance_id))
    wrapper = ('/bin/sh %s 2>&1 | tee -a %s > /dev/console; '
               'echo "cloud-init: runcmd finished" > /dev/console' % (script, OUTPUT_LOG))
    subprocess.Popen(['setsid', '/bin/sh', '-c', wrapper], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd='/root',
                     env={'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'HOME': '/root',
                          'LANG': 'C.UTF-8'})


# ---------------------------------------------------------------- keep/restore

def _keep_dropins():
    """sshd's drop-ins (no secrets) are kept too: a boot without the seed keeps the SSH
    settings of the last boot with one."""
    dest = os.path.join(CI_DIR, 'sshd_config.d')
    tmp = dest + '.tmp'
    if os.path.isdir(tmp):
        for fn in os.listdir(tmp):
            os.unlink(os.path.join(tmp, fn))
    os.makedirs(tmp, exist_ok=True)
    if os.path.isdir(SSHD_DROPIN_DIR):
        for fn in sorted(os.listdir(SSHD_DROPIN_DIR)):
            src = os.path.join(SSHD_DROPIN_DIR, fn)
            if os.path.isfile(src):
                with open(src, 'rb') as s, open(os.path.join(tmp, fn), 'wb') as f:
                    f.write(s.read())
    if os.path.isdir(dest):
        for fn in os.listdir(dest):
            os.unlink(os.path.join(dest, fn))
        os.rmdir(dest)
    os.rename(tmp, dest)


def _restore_dropins():
    src = os.path.join(CI_DIR, 'sshd_config.d')
    if not os.path.isdir(src):
        return
    os.makedirs(SSHD_DROPIN_DIR, exist_ok=True)
    for fn in sorted(os.listdir(src)):
        with open(os.path.join(src, fn), 'rb') as s, \
                open(os.path.join(SSHD_DROPIN_DIR, fn), 'wb') as f:
            f.write(s.read())
        os.chmod(os.path.join(SSHD_DROPIN_DIR, fn), 0o644)


def keep(network_config):
    os.makedirs(os.path.join(CI_DIR, 'etc'), mode=0o700, exist_ok=True)
    _keep_dropins()
    for path in KEPT_FILES:
        dest = os.path.join(CI_DIR, 'etc', path.strip('/').replace('/', '_'))
        if os.path.isfile(path):
            with open(path, 'rb') as src, open(dest + '.tmp', 'wb') as f:
                f.write(src.read())
            os.chmod(dest + '.tmp', 0o600)
            os.rename(dest + '.tmp', dest)
        elif os.path.exists(dest):
            os.unlink(dest)
    with open(os.path.join(CI_DIR, 'network-config.json.tmp'), 'w') as f:
        json.dump(network_config, f)
    os.rename(os.path.join(CI_DIR, 'network-config.json.tmp'),
              os.path.join(CI_DIR, 'network-config.json'))


def restore():
    try:
        with open(os.path.join(CI_DIR, 'network-config.json')) as f:
            network_config = json.load(f)
    except (OSError, ValueError):
        return False
    for path in KEPT_FILES:
        src = os.path.join(CI_DIR, 'etc', path.strip('/').replace('/', '_'))
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(src, 'rb') as s, open(path, 'wb') as f:
                f.write(s.read())
    os.chmod('/etc/shadow', 0o600)
    _restore_dropins()
    with open('/etc/hostname') as f:
        run(['hostname', f.read().strip()])
    apply_network(network_config)
    return True


# ---------------------------------------------------------------- main

def apply(files):
    meta = _yaml(files.get('meta-data'), 'meta-data')
    ud_text = files.get('user-data') or ''
    user = {}
    if ud_text.startswith('#cloud-config'):
        user = _yaml(ud_text, 'user-data')
    elif ud_text.strip():
        log('user-data is not "#cloud-config", ignored')
    netconf = _yaml(files.get('network-config'), 'network-config')
    if 'network' in netconf and 'version' not in netconf:
        netconf = netconf['network'] or {}
    instance_id = str(meta.get('instance-id') or 'iid-unknown')
    log('instance %s' % instance_id)
    for key in sorted(set(meta) - {'instance-id', 'local-hostname'}):
        log('meta-data key %r is not supported, ignored' % key)
    for key in sorted(set(user) - USER_DATA_KEYS):
        log('user-data key %r is not supported, ignored' % key)
    set_hostname(meta, user)
    apply_network(netconf)
    if 'chpasswd' in user:
        chpasswd(user['chpasswd'])
    root_keys(user)
    if user.get('timezone'):
        with open('/etc/timezone', 'w') as f:
            f.write('%s\n' % user['timezone'])
    host_keys(user, instance_id)
    sshd_settings(user)
    write_files(user.get('write_files'))
    if os.path.ismount(STATE_DIR):
        keep(netconf)
    if user.get('runcmd'):
        if os.path.ismount(STATE_DIR):
            runcmd(user['runcmd'], instance_id)
        else:
            log('runcmd skipped: the engine state partition is not mounted, so running it '
                'once per instance cannot be remembered')


def main():
    # After a boot with a seed, the configuration it gave is kept: a later boot looks once
    # for a seed (the cdrom's device is there by now when the VM has one) and otherwise
    # restores that configuration at once. The first boot waits for the seed to show up:
    # without it the VM would come up on DHCP, with neither its address nor its keys.
    kept = os.path.exists(os.path.join(CI_DIR, 'network-config.json'))
    dev = find_seed(wait=0.0 if kept else 5.0)
    if dev is None:
        if restore():
            log('no seed (cdrom with volume id cidata); the configuration of an earlier '
                'boot restored')
        else:
            log('no seed (cdrom with volume id cidata) and no earlier configuration: DHCP')
            apply_network({})
        return 0
    log('seed on %s' % dev)
    try:
        files = read_seed(dev)
    except RuntimeError as e:
        log('cannot read the seed: %s' % e)
        return 1
    apply(files)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Exception as e:  # never stop the boot; the reason on the console
        import traceback
        with open(LOG, 'a') as f:
            traceback.print_exc(file=f)
        log('failed: %s (details in %s)' % (e, LOG))
        sys.exit(1)
