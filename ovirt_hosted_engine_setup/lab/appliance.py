"""Build the lab engine appliance (an OVA) from Debian packages.

The appliance is what the deploy imports as the engine VM in the lab. Like the lab
guest image (lab/guest_image.py, whose helpers this reuses) it is a Debian cloud
kernel and an initramfs root, here with Python 3 in it:

  - python3.11-minimal, libpython3.11-minimal, libpython3.11-stdlib, python3-yaml,
    openssl and openssh-client (ssh and ssh-keyscan: the engine's host deploy) with
    their library dependencies, fetched with `apt-get download`
    and unpacked with `dpkg -x` (never installed on this machine), byte-compiled
    inside the unpacked root with its own interpreter;
  - busybox (init, shell, ip, udhcpc, httpd);
  - a copy of the project's ovirt_hosted_engine_setup package (the lab engine,
    ovirt_hosted_engine_setup.lab.engine, is started from it);
  - the files of lab/appliance_guest/: the boot script, the cloud-init
    interpreter and the engine-setup stand-in;
  - kernel modules: virtio, ext4, isofs, the IDE/SATA cdrom drivers.

The disk: MBR, partition 1 FAT with syslinux, the kernel and the initramfs,
partition 2 ext4 (label ENGINE_STATE) mounted at /var/lib/ovirt-engine-lab in the
guest, where the engine state lives, so it survives the VM restarting on another
host. The disk goes into the OVA as qcow2 (ovirt_hosted_engine_setup.deploy.appliance
make_ovf / write_ova).

Output: <images dir>/ovirt-engine-appliance-lab.ova (see lab/paths.py).
Run as `python -m ovirt_hosted_engine_setup.lab.appliance [--force]`: a second run
with the same inputs returns at once.
"""
import glob
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid

from ovirt_hosted_engine_setup.lab import guest_image, paths
from ovirt_hosted_engine_setup.lab.guest_image import (_Cpio, fetch_kernel, module_order,
                                                       write_cpio_gz)

OVA_NAME = 'ovirt-engine-appliance-lab.ova'
STATE_DIR = '/var/lib/ovirt-engine-lab'
STATE_LABEL = 'ENGINE_STATE'
# The OVF gives disk sizes in whole GiB: the disk is 1 GiB, the state partition
# takes what the boot partition leaves (sparse in the qcow2).
DISK_MIB = 1024
BOOT_MIB = 96
MEMORY_MIB = 1024
VCPUS = 1
CHANNEL_NAME = guest_image.CHANNEL_NAME
GUEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'appliance_guest')

ROOT_PACKAGES = ['python3.11-minimal', 'libpython3.11-minimal', 'libpython3.11-stdlib',
                 'python3-yaml', 'openssl', 'openssh-client',
                 # sshd: the deploy logs in as root (deploy/engine_vm_ssh.py)
                 'openssh-server', 'openssh-sftp-server']
# Dependencies the appliance does without: the python3 meta packages (the root has
# python3.11 and the python3 link), the package manager and perl.
SKIP_PACKAGES = {'python3', 'python3-minimal', 'python3.11', 'libpython3-stdlib', 'dpkg',
                 'perl', 'perl-base', 'perl-modules-5.36', 'libperl5.36', 'install-info',
                 'tar', 'debconf', 'mailcap', 'mime-support', 'readline-common',
                 'libgdbm-compat4', 'libgdbm6', 'libdb5.3',
                 # openssh-client's maintainer scripts only (the root is never "installed")
                 'adduser', 'passwd',
                 # openssh-server's service integration and PAM modules (sshd runs without
                 # PAM, started by rcS): not needed
                 'init-system-helpers', 'libpam-modules', 'libpam-runtime', 'lsb-base',
                 'procps', 'ucf', 'runit-helper', 'sysvinit-utils'}
# Driver modules (dependencies are added from each module's depends=); those the
# cloud kernel has built in (ext4, crc32c, af_packet) or lacks (ahci) are skipped.
MODULES = guest_image.MODULES + [
    'crc32c_generic', 'ext4', 'isofs', 'cdrom', 'sr_mod', 'ata_piix', 'ahci', 'ata_generic',
    'virtio_scsi', 'virtio_rng', 'af_packet']
# What the appliance does not need from the unpacked packages.
TRIM = ['usr/share/doc', 'usr/share/man', 'usr/share/locale', 'usr/share/lintian',
        'usr/share/bug', 'usr/share/info', 'usr/share/gdb', 'usr/share/binfmts',
        'usr/share/pixmaps', 'usr/share/applications', 'usr/share/gcc',
        'usr/lib/python3.11/ensurepip', 'usr/lib/python3.11/lib2to3',
        'usr/lib/python3.11/pydoc_data', 'usr/lib/python3.11/idlelib',
        'usr/lib/python3.11/turtledemo', 'usr/lib/python3.11/config-3.11-x86_64-linux-gnu',
        'usr/lib/python3.11/test', 'usr/lib/python3.11/unittest/test',
        'usr/lib/python3.11/tkinter', 'usr/lib/python3.11/distutils/tests',
        'usr/lib/python3.11/sqlite3/test', 'usr/lib/python3.11/ctypes/test',
        # of openssh-client the engine uses ssh and ssh-keyscan only
        'usr/bin/scp', 'usr/bin/sftp', 'usr/bin/ssh-add', 'usr/bin/ssh-agent',
        'usr/bin/ssh-argv0', 'usr/bin/ssh-copy-id', 'usr/bin/slogin',
        'usr/lib/openssh/ssh-keysign', 'usr/lib/openssh/ssh-pkcs11-helper',
        'usr/lib/openssh/ssh-sk-helper', 'usr/lib/openssh/agent-launch',
        'usr/lib/openssh/ssh-session-cleanup', 'usr/lib/sftp-server', 'etc/X11',
        # of openssh-server sshd and its moduli (ssh-keygen and sftp-server are kept)
        'etc/init.d/ssh', 'etc/default/ssh', 'etc/pam.d', 'etc/runit', 'etc/sv', 'etc/ufw',
        'lib/systemd/system', 'var/log/runit']
PROJECT_SKIP_DIRS = {'__pycache__', 'tests'}
CHROOT = shutil.which('chroot') or '/usr/sbin/chroot'


class BuildError(RuntimeError):
    pass


def say(msg):
    print('[appliance] %s' % msg, flush=True)


def _run(cmd, **kw):
    say('$ %s' % ' '.join(cmd))
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------- packages

def _depends(names):
    """{package: [first alternative of each Depends/PreDepends]} from apt-cache."""
    out = subprocess.run(['apt-cache', 'depends', '--no-recommends', '--no-suggests',
                          '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances']
                         + sorted(names), check=True, capture_output=True, text=True).stdout
    deps, cur, alt = {}, None, False
    for line in out.splitlines():
        if not line.startswith(' '):
            cur = line.strip()
            deps[cur] = []
            alt = False
            continue
        s = line.strip()
        is_alt = s.startswith('|')
        s = s.lstrip('|')
        if s.startswith(('Depends:', 'PreDepends:')):
            if not alt:
                deps[cur].append(s.split(None, 1)[1].strip())
            alt = is_alt
        else:
            alt = False
    return deps


def resolve_packages(roots=ROOT_PACKAGES, skip=SKIP_PACKAGES):
    """The root packages and their dependencies (first alternatives), sorted."""
    seen, todo = set(), set(roots)
    while todo:
        seen |= todo
        found = set()
        for deps in _depends(todo).values():
            for d in deps:
                d = d.split(':')[0] if not d.startswith('<') else d
                if d.startswith('<') or d in skip or d in seen:
                    continue
                found.add(d)
        todo = found
    return sorted(seen)


def candidate_versions(names):
    out = subprocess.run(['apt-cache', 'show', '--no-all-versions'] + list(names), check=True,
                         capture_output=True, text=True).stdout
    versions, pkg = {}, None
    for line in out.splitlines():
        if line.startswith('Package: '):
            pkg = line.split(None, 1)[1].strip()
        elif line.startswith('Version: ') and pkg and pkg not in versions:
            versions[pkg] = line.split(None, 1)[1].strip()
    missing = [n for n in names if n not in versions]
    if missing:
        raise BuildError('apt-cache knows no %s: run apt-get update' % ', '.join(missing))
    return versions


def fetch_packages(cache_dir):
    """Download the appliance's packages (cached); return {name: .deb path}."""
    try:
        names = resolve_packages()
        versions = candidate_versions(names)
    except (subprocess.CalledProcessError, BuildError):
        _run(['apt-get', 'update', '-q'], stdout=subprocess.DEVNULL)
        names = resolve_packages()
        versions = candidate_versions(names)
    os.makedirs(cache_dir, exist_ok=True)
    debs, missing = {}, []
    for n in names:
        v = versions[n].replace(':', '%3a')
        found = glob.glob(os.path.join(cache_dir, '%s_%s_*.deb' % (n, v)))
        if found:
            debs[n] = found[0]
        else:
            missing.append(n)
    if missing:
        # apt's sandbox user cannot write to root-owned dirs.
        dl = tempfile.mkdtemp(prefix='download-', dir=cache_dir)
        os.chmod(dl, 0o777)
        try:
            _run(['apt-get', 'download', '-q'] + ['%s=%s' % (n, versions[n]) for n in missing],
                 cwd=dl, stdout=subprocess.DEVNULL)
            for path in glob.glob(os.path.join(dl, '*.deb')):
                os.rename(path, os.path.join(cache_dir, os.path.basename(path)))
        finally:
            shutil.rmtree(dl, ignore_errors=True)
        for n in missing:
            v = versions[n].replace(':', '%3a')
            found = glob.glob(os.path.join(cache_dir, '%s_%s_*.deb' % (n, v)))
            if not found:
                raise BuildError('apt-get download %s produced no package' % n)
            debs[n] = found[0]
    keep = set(debs.values())
    for old in glob.glob(os.path.join(cache_dir, '*.deb')):
        if old not in keep:
            os.unlink(old)
    return debs


# ---------------------------------------------------------------- the root tree

def _copy_project(dest):
    """The project's package (sources only) into dest."""
    src = os.path.join(paths.checkout_dir(), 'ovirt_hosted_engine_setup')
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in PROJECT_SKIP_DIRS)
        rel = os.path.relpath(root, src)
        os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for fn in sorted(files):
            if fn.endswith(('.pyc', '.so', '.o')):
                continue
            shutil.copyfile(os.path.join(root, fn), os.path.join(dest, rel, fn))


def _guest_file(name):
    with open(os.path.join(GUEST_DIR, name)) as f:
        return f.read()


def build_root(root, debs, kernel_tree, kernel_version):
    """Unpack the packages and lay out the appliance's root in `root`."""
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for name in sorted(debs):
        subprocess.run(['dpkg', '-x', debs[name], root], check=True)
    for rel in TRIM:
        p = os.path.join(root, rel)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)
    for d in ('bin', 'sbin', 'dev', 'etc/init.d', 'etc/acpi/PWRF', 'lib/modules', 'proc', 'sys',
              'run', 'tmp', 'var/log', 'var/lib', 'root/.ssh', 'home', 'usr/bin',
              'usr/share/udhcpc', 'usr/libexec/ovirt-engine-lab', STATE_DIR.lstrip('/'),
              'usr/share/ovirt-engine/dbscripts',
              'media/cidata', 'mnt', 'etc/ssh/sshd_config.d', 'run/sshd'):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, 'tmp'), 0o1777)
    os.chmod(os.path.join(root, 'root'), 0o700)
    shutil.copyfile('/bin/busybox', os.path.join(root, 'bin', 'busybox'))
    os.chmod(os.path.join(root, 'bin', 'busybox'), 0o755)
    os.symlink('busybox', os.path.join(root, 'bin', 'sh'))
    os.symlink('bin/busybox', os.path.join(root, 'init'))
    os.symlink('python3.11', os.path.join(root, 'usr', 'bin', 'python3'))

    def put(rel, data, mode=0o644):
        path = os.path.join(root, rel)
        with open(path, 'w') as f:
            f.write(data)
        os.chmod(path, mode)

    put('etc/inittab', _guest_file('inittab'))
    put('etc/init.d/rcS', _guest_file('rcS'), 0o755)
    put('etc/init.d/rcK', _guest_file('rcK'), 0o755)
    put('etc/acpi/PWRF/00000080', '#!/bin/sh\npoweroff\n', 0o755)
    put('usr/share/udhcpc/default.script', _guest_file('udhcpc.script'), 0o755)
    put('usr/libexec/ovirt-engine-lab/cloud-init', _guest_file('cloud_init.py'), 0o755)
    put('usr/bin/engine-setup', _guest_file('engine_setup.py'), 0o755)
    put('usr/bin/engine-backup', _guest_file('engine-backup'), 0o755)
    put('usr/share/ovirt-engine/dbscripts/engine-psql.sh', _guest_file('engine-psql.sh'), 0o755)
    put('usr/libexec/ovirt-engine-lab/start-engine', _guest_file('start-engine'), 0o755)
    put('usr/libexec/ovirt-engine-lab/start-sshd', _guest_file('start-sshd'), 0o755)
    put('etc/ssh/sshd_config', _guest_file('sshd_config'))
    # sshd's privilege separation user (its chroot /run/sshd)
    put('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n'
        'sshd:x:100:65534::/run/sshd:/bin/nologin\n')
    put('etc/group', 'root:x:0:\nnogroup:x:65534:\n')
    put('etc/shadow', 'root:*:19000:0:99999:7:::\n', 0o600)
    put('etc/hostname', 'localhost\n')
    put('etc/hosts', '127.0.0.1 localhost\n::1 localhost ip6-localhost\n')
    put('etc/resolv.conf', '')
    put('etc/nsswitch.conf', 'passwd: files\ngroup: files\nshadow: files\n'
        'hosts: files dns\n')
    put('etc/lab-appliance.json', json.dumps({
        'state_dir': STATE_DIR, 'state_label': STATE_LABEL, 'channel': CHANNEL_NAME,
        'kernel': kernel_version}, indent=1) + '\n')
    _copy_project(os.path.join(root, 'usr/lib/python3/dist-packages/ovirt_hosted_engine_setup'))
    # kernel modules, flat, in load order
    base = os.path.join(kernel_tree, 'lib', 'modules', kernel_version)
    names = []
    for mod in module_order(kernel_tree, kernel_version, MODULES):
        flat = os.path.basename(mod)
        shutil.copyfile(os.path.join(base, mod), os.path.join(root, 'lib/modules', flat))
        names.append(flat)
    put('etc/modules-order', '\n'.join(names) + '\n')


def compile_and_check(root):
    """Byte-compile with the appliance's own interpreter and check its imports."""
    env = {'PATH': '/usr/bin:/bin', 'HOME': '/root', 'LANG': 'C.UTF-8'}
    # unchecked-hash: the initramfs stores no mtimes, the .pyc files must not be
    # compared with their sources at import time.
    subprocess.run([CHROOT, root, '/usr/bin/python3', '-m', 'compileall', '-q',
                    '--invalidation-mode', 'unchecked-hash', '/usr/lib/python3.11',
                    '/usr/lib/python3/dist-packages', '/usr/bin/engine-setup'],
                   check=False, env=env, stdout=subprocess.DEVNULL)
    probe = ('import ssl, hashlib, json, sqlite3, http.server, urllib.request, yaml, crypt, '
             'ovirt_hosted_engine_setup; print(ssl.OPENSSL_VERSION)')
    r = subprocess.run([CHROOT, root, '/usr/bin/python3', '-c', probe], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError('the appliance interpreter cannot import what it needs: %s'
                         % (r.stderr.strip().splitlines() or ['?'])[-1])
    r = subprocess.run([CHROOT, root, '/usr/bin/openssl', 'version'], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError('openssl does not run in the appliance root: %s' % r.stderr.strip())
    # ssh -V prints its version; ssh-keyscan without arguments its usage (both on stderr).
    # ssh opens /dev/null (the booted appliance has devtmpfs): a node for the check only.
    null = os.path.join(root, 'dev', 'null')
    os.makedirs(os.path.dirname(null), exist_ok=True)
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    try:
        for cmd, says in ((['/usr/bin/ssh', '-V'], 'OpenSSH'),
                          (['/usr/bin/ssh-keyscan'], 'usage'),
                          (['/usr/sbin/sshd', '-V'], 'OpenSSH'),
                          (['/usr/bin/ssh-keygen', '-?'], 'usage')):
            r = subprocess.run([CHROOT, root] + cmd, env=env, capture_output=True, text=True)
            if says not in r.stderr:
                raise BuildError('%s does not run in the appliance root: %s'
                                 % (os.path.basename(cmd[0]), r.stderr.strip()))
        # sshd's configuration and privilege separation user, with a throw-away host key
        key = os.path.join(root, 'tmp', 'check_host_key')
        try:
            r = subprocess.run([CHROOT, root, '/bin/sh', '-c',
                                '/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /tmp/check_host_key '
                                '&& /usr/sbin/sshd -t -f /etc/ssh/sshd_config '
                                '-h /tmp/check_host_key'], env=env, capture_output=True,
                               text=True)
        finally:
            for p in (key, key + '.pub'):
                if os.path.exists(p):
                    os.unlink(p)
        if r.returncode != 0:
            raise BuildError('sshd refuses the appliance configuration: %s'
                             % (r.stderr.strip() or r.stdout.strip()))
    finally:
        os.unlink(null)


def write_initrd(root, out_path):
    """A gzip newc cpio of the tree (owner root, mtime 0)."""
    c = _Cpio()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        rel_dir = os.path.relpath(dirpath, root)
        entries = sorted(dirs + files)
        for name in entries:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(full)
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                c.symlink(rel, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                c.dir(rel, perm)
            elif stat.S_ISREG(st.st_mode):
                with open(full, 'rb') as f:
                    c.file(rel, f.read(), perm)
        # symlinks to directories are not descended into by os.walk
    write_cpio_gz(c, out_path)


SYSLINUX_CFG = """\
DEFAULT engine
PROMPT 0
TIMEOUT 0
LABEL engine
  KERNEL vmlinuz
  APPEND initrd=initrd.img console=ttyS0 quiet
"""


def build_disk(kernel, initrd, out_path):
    """Raw disk: MBR + syslinux, p1 FAT (kernel, initramfs), p2 ext4 (engine state)."""
    tmp = out_path + '.tmp'
    if os.path.exists(tmp):
        os.unlink(tmp)
    with open(tmp, 'wb') as f:
        f.truncate(DISK_MIB << 20)
    # partition 1 from sector 2048, partition 2 up to the last whole MiB
    p1 = 2048
    p1_sectors = BOOT_MIB << 11
    p2 = p1 + p1_sectors
    p2_sectors = ((DISK_MIB - 1) << 11) - p2
    table = ('label: dos\nstart=%d, size=%d, type=6, bootable\nstart=%d, size=%d, type=83\n'
             % (p1, p1_sectors, p2, p2_sectors))
    _run(['sfdisk', '-q', tmp], input=table.encode(), stdout=subprocess.DEVNULL)
    _run(['mkfs.vfat', '-F', '16', '-n', 'ENGINEBOOT', '--offset', str(p1), tmp,
          str(p1_sectors // 2)], stdout=subprocess.DEVNULL)
    img = '%s@@%d' % (tmp, p1 * 512)
    env = dict(os.environ, MTOOLS_SKIP_CHECK='1')
    with tempfile.NamedTemporaryFile('w', suffix='.cfg') as cfg:
        cfg.write(SYSLINUX_CFG)
        cfg.flush()
        _run(['mcopy', '-o', '-i', img, kernel, '::vmlinuz'], env=env)
        _run(['mcopy', '-o', '-i', img, initrd, '::initrd.img'], env=env)
        _run(['mcopy', '-o', '-i', img, cfg.name, '::syslinux.cfg'], env=env)
    _run(['syslinux', '--offset', str(p1 * 512), '--install', tmp])
    with open('/usr/lib/syslinux/mbr/mbr.bin', 'rb') as f:
        mbr = f.read()
    with open(tmp, 'r+b') as f:
        f.write(mbr[:440])
    _run(['mkfs.ext4', '-q', '-F', '-L', STATE_LABEL, '-E', 'offset=%d' % (p2 * 512),
          '-m', '0', tmp, '%dk' % (p2_sectors // 2)])
    os.rename(tmp, out_path)


# ---------------------------------------------------------------- the OVA

def write_appliance_ova(disk_qcow2, out_path, digest):
    """The OVA (ovirt_hosted_engine_setup.deploy.appliance layout) around the qcow2 disk.

    The VM, image and volume UUIDs derive from the inputs' digest, so the same
    inputs give the same identities."""
    from ovirt_hosted_engine_setup.deploy import appliance as ova
    from ovirt_hosted_engine_setup.lab.engine import state as engine_state
    ns = uuid.uuid5(uuid.NAMESPACE_URL, 'ovirt-engine-appliance-lab:' + digest)
    vm, image, volume = (str(uuid.uuid5(ns, n)) for n in ('vm', 'image', 'volume'))
    ovf = ova.make_ovf(vm, image, volume, VCPUS, MEMORY_MIB, DISK_MIB << 20,
                       os.path.getsize(disk_qcow2), 'qcow2', name='HostedEngine',
                       description='oVirt engine appliance for the hosted-engine lab (%s)'
                       % digest[:12], engine_version=engine_state.ENGINE_VERSION)
    ova.write_ova(out_path, ovf, disk_qcow2, vm_uuid=vm)


# ---------------------------------------------------------------- build

def ova_path(images_dir=None):
    return os.path.join(images_dir or paths.images_dir(), OVA_NAME)


def _inputs_digest(kernel_version, debs):
    h = hashlib.sha1()
    for path in [os.path.abspath(__file__), guest_image.__file__, '/bin/busybox']:
        with open(path, 'rb') as f:
            h.update(hashlib.sha1(f.read()).digest())
    h.update(kernel_version.encode())
    for deb in sorted(os.path.basename(p) for p in debs.values()):
        h.update(deb.encode())
    src = os.path.join(paths.checkout_dir(), 'ovirt_hosted_engine_setup')
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in PROJECT_SKIP_DIRS)
        for fn in sorted(files):
            if fn.endswith(('.pyc', '.so', '.o')):
                continue
            p = os.path.join(root, fn)
            h.update(os.path.relpath(p, src).encode())
            with open(p, 'rb') as f:
                h.update(hashlib.sha1(f.read()).digest())
    return h.hexdigest()


def _up_to_date(out, stamp, cache_dir):
    """True when the OVA was built from the cached kernel and packages it names and
    from the current sources (no apt-cache query: a second run returns at once)."""
    if not (os.path.isfile(out) and os.path.isfile(stamp)):
        return False
    try:
        with open(stamp) as f:
            st = json.load(f)
        version = st['kernel_version']
        debs = {name: os.path.join(cache_dir, 'appliance-debs', name)
                for name in st['packages']}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    tree = os.path.join(cache_dir, 'kernel', 'linux-image-' + version)
    if not os.path.isdir(tree) or not all(os.path.isfile(p) for p in debs.values()):
        return False
    return st.get('digest') == _inputs_digest(version, debs)


def build(images_dir=None, cache_dir=None, force=False):
    """Build the appliance OVA (or find it up to date); return its path.

    force: rebuild, and ask apt for the current package versions."""
    images_dir = images_dir or paths.images_dir()
    cache_dir = cache_dir or paths.cache_dir()
    out = ova_path(images_dir)
    stamp = out + '.json'
    if not force and _up_to_date(out, stamp, cache_dir):
        say('appliance up to date: %s' % out)
        return out
    version, tree = fetch_kernel(os.path.join(cache_dir, 'kernel'))
    debs = fetch_packages(os.path.join(cache_dir, 'appliance-debs'))
    digest = _inputs_digest(version, debs)
    work = os.path.join(cache_dir, 'appliance-build')
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        root = os.path.join(work, 'root')
        say('unpacking %d packages into the appliance root' % len(debs))
        build_root(root, debs, tree, version)
        say('byte-compiling and checking the appliance interpreter')
        compile_and_check(root)
        initrd = os.path.join(work, 'initrd.img')
        say('writing the initramfs')
        write_initrd(root, initrd)
        kernel = os.path.join(tree, 'boot', 'vmlinuz-' + version)
        raw = os.path.join(work, 'disk.raw')
        say('building the disk (boot FAT + engine state ext4)')
        build_disk(kernel, initrd, raw)
        qcow2 = os.path.join(work, 'disk.qcow2')
        _run(['qemu-img', 'convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, qcow2])
        os.makedirs(images_dir, exist_ok=True)
        say('writing %s' % out)
        write_appliance_ova(qcow2, out + '.tmp', digest)
        os.chmod(out + '.tmp', 0o644)
        os.rename(out + '.tmp', out)
        with open(stamp + '.tmp', 'w') as f:
            json.dump({'digest': digest, 'kernel_version': version,
                       'initrd_bytes': os.path.getsize(initrd),
                       'packages': sorted(os.path.basename(p) for p in debs.values())}, f,
                      indent=1)
        os.rename(stamp + '.tmp', stamp)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say('appliance ready: %s (kernel %s)' % (out, version))
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        build(force='--force' in argv)
    except (BuildError, subprocess.CalledProcessError) as e:
        print('appliance build failed: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
