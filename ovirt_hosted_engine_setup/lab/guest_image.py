"""Build the lab guest image from Debian packages.

The guest is a Debian cloud kernel (downloaded with `apt-get download`, unpacked
with `dpkg -x`, never installed on this machine) and a busybox initramfs whose
init:
  - mounts proc, sys and dev, loads the virtio drivers,
  - configures eth0 statically from the kernel command line `ip=` (kernel
    format client:server:gw:netmask:hostname:device:autoconf), else from the
    fw_cfg entry opt/org.ovirt.lab/ip (same format), else the built-in default,
  - serves the engine health page /ovirt-engine/services/health with busybox httpd,
  - writes a line to the virtio-serial port org.ovirt.hosted-engine-setup.0,
  - powers off on the ACPI power button (so a graceful shutdown works).

Outputs under IMAGES_DIR: vmlinuz, initrd.img and disk.raw, a small raw disk
with an MBR, one FAT partition and syslinux, so a VM boots from its own disk
(the kernel and the initramfs are on it).

Run as `python -m ovirt_hosted_engine_setup.lab.guest_image` (scripts/bootstrap-host-stack
does): a second run with the same inputs returns at once.
"""
import glob
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

from ovirt_hosted_engine_setup.lab import paths

KERNEL_META_PACKAGE = 'linux-image-cloud-amd64'
DISK_SIZE_MIB = 64
PART_OFFSET_SECTORS = 2048
HEALTH_BODY = 'DB Up!Welcome to Health Status!'
CHANNEL_NAME = 'org.ovirt.hosted-engine-setup.0'
FWCFG_IP = 'opt/org.ovirt.lab/ip'
DEFAULT_IP = '192.168.222.200::192.168.222.1:255.255.255.0:lab-engine:eth0:off'

# Driver modules the guest needs (dependencies are added from modules.dep).
MODULES = ['virtio_pci', 'virtio_net', 'virtio_blk', 'virtio_console', 'qemu_fw_cfg',
           'button', 'evdev']

INITTAB = """\
::sysinit:/etc/init.d/rcS
ttyS0::askfirst:-/bin/sh
::ctrlaltdel:/bin/poweroff
::shutdown:/etc/init.d/rcK
"""

RCS = r"""#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /run /tmp /var/log
mount -t devpts devpts /dev/pts
echo "lab-guest: starting"
for m in $(cat /etc/modules-order); do
    insmod "/lib/modules/$m" 2>/dev/null
done
mdev -s 2>/dev/null

# Address: kernel command line ip=, else fw_cfg, else the built-in default.
conf=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in ip=*) conf="${arg#ip=}";; esac
done
fw=/sys/firmware/qemu_fw_cfg/by_name/opt/org.ovirt.lab/ip/raw
if [ -z "$conf" ] && [ -r "$fw" ]; then conf=$(cat "$fw"); fi
[ -n "$conf" ] || conf=$(cat /etc/lab-guest-ip)
IFS=: read addr server gw mask name dev auto <<EOF
$conf
EOF
[ -n "$dev" ] || dev=eth0
[ -n "$mask" ] || mask=255.255.255.0
[ -n "$name" ] && hostname "$name"
ip link set lo up
i=0
while [ ! -e "/sys/class/net/$dev" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
if [ -n "$addr" ]; then
    ifconfig "$dev" "$addr" netmask "$mask" up
    [ -n "$gw" ] && route add default gw "$gw"
fi
echo "lab-guest: $dev address ${addr:-none}"

# The engine health page.
httpd -p 80 -h /www

# Graceful shutdown on the ACPI power button.
acpid -c /etc/acpi -l /var/log/acpid.log 2>/dev/null

# Name the virtio-serial ports as udev does, then report on the setup channel.
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/*; do
    [ -r "$p/name" ] || continue
    n=$(cat "$p/name")
    [ -n "$n" ] && ln -sf "/dev/${p##*/}" "/dev/virtio-ports/$n"
done
port=/dev/virtio-ports/CHANNEL_NAME
if [ -e "$port" ]; then
    (
        i=0
        while [ $i -lt 600 ]; do
            if echo "lab-guest: up address=${addr:-none} hostname=$(hostname)" > "$port" 2>/dev/null; then
                break
            fi
            sleep 1; i=$((i+1))
        done
    ) &
fi
echo "lab-guest: ready"
""".replace('CHANNEL_NAME', CHANNEL_NAME)

RCK = """#!/bin/sh
echo "lab-guest: shutting down"
"""

ACPI_POWER = """#!/bin/sh
poweroff
"""


def _run(cmd, **kw):
    print('[guest-image] $ %s' % ' '.join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def _kernel_package():
    """Name of the versioned kernel package the cloud meta package depends on."""
    out = subprocess.run(['apt-cache', 'depends', KERNEL_META_PACKAGE], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith('Depends: linux-image-'):
            return line.split()[1]
    raise RuntimeError('apt-cache knows no kernel behind %s: run apt-get update'
                       % KERNEL_META_PACKAGE)


def fetch_kernel(cache_dir):
    """Download and unpack the cloud kernel package; return (version, tree)."""
    try:
        pkg = _kernel_package()
    except (subprocess.CalledProcessError, RuntimeError):
        _run(['apt-get', 'update', '-q'], stdout=subprocess.DEVNULL)
        pkg = _kernel_package()
    version = pkg[len('linux-image-'):]
    tree = os.path.join(cache_dir, pkg)
    if os.path.isfile(os.path.join(tree, 'boot', 'vmlinuz-' + version)):
        return version, tree
    os.makedirs(cache_dir, exist_ok=True)
    for old in glob.glob(os.path.join(cache_dir, 'kernel-*')):
        shutil.rmtree(old, ignore_errors=True)
    # apt's sandbox user cannot write to root-owned dirs; a world-writable
    # temporary dir keeps apt-get download quiet.
    dl = tempfile.mkdtemp(prefix='kernel-', dir=cache_dir)
    os.chmod(dl, 0o777)
    _run(['apt-get', 'download', '-q', pkg], cwd=dl)
    debs = glob.glob(os.path.join(dl, '*.deb'))
    if not debs:
        raise RuntimeError('apt-get download %s produced no package' % pkg)
    tmp_tree = tree + '.tmp'
    shutil.rmtree(tmp_tree, ignore_errors=True)
    _run(['dpkg', '-x', debs[0], tmp_tree])
    shutil.rmtree(dl, ignore_errors=True)
    shutil.rmtree(tree, ignore_errors=True)
    os.rename(tmp_tree, tree)
    for old in glob.glob(os.path.join(cache_dir, 'linux-image-*')):
        if old != tree:
            shutil.rmtree(old, ignore_errors=True)
    return version, tree


def _modinfo_depends(path):
    """The depends= field of a module's .modinfo section."""
    with open(path, 'rb') as f:
        data = f.read()
    i = data.find(b'\0depends=')
    if i < 0:
        return []
    value = data[i + len(b'\0depends='):data.index(b'\0', i + 1)].decode()
    return [d for d in value.split(',') if d]


def module_order(tree, version, wanted):
    """Module files (relative to lib/modules/<version>) in load order."""
    base = os.path.join(tree, 'lib', 'modules', version)
    by_name = {}
    for root, _dirs, files in os.walk(os.path.join(base, 'kernel')):
        for fn in files:
            if fn.endswith('.ko'):
                by_name[fn[:-3].replace('-', '_')] = os.path.relpath(os.path.join(root, fn), base)
    order = []

    def visit(name):
        mod = by_name.get(name.replace('-', '_'))
        if mod is None or mod in order:
            return
        for dep in _modinfo_depends(os.path.join(base, mod)):
            visit(dep)
        order.append(mod)

    for name in wanted:
        visit(name)
    return order


class _Cpio:
    """A newc cpio archive writer (files, directories, symlinks)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name, mode, data=b'', nlink=1):
        name_b = name.encode() + b'\0'
        hdr = '070701' + ''.join('%08x' % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + name_b)
        self.buf.write(b'\0' * ((4 - (110 + len(name_b)) % 4) % 4))
        self.buf.write(data)
        self.buf.write(b'\0' * ((4 - len(data) % 4) % 4))

    def dir(self, name, perm=0o755):
        self._entry(name, stat.S_IFDIR | perm, nlink=2)

    def file(self, name, data, perm=0o644):
        if isinstance(data, str):
            data = data.encode()
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self):
        self._entry('TRAILER!!!', 0)
        return self.buf.getvalue()


def build_initrd(tree, version, out_path, default_ip=DEFAULT_IP):
    c = _Cpio()
    for d in ('bin', 'dev', 'etc', 'etc/init.d', 'etc/acpi', 'etc/acpi/PWRF', 'lib',
              'lib/modules', 'proc', 'sys', 'run', 'tmp', 'var', 'var/log', 'root',
              'www', 'www/ovirt-engine', 'www/ovirt-engine/services'):
        c.dir(d)
    with open('/bin/busybox', 'rb') as f:
        c.file('bin/busybox', f.read(), 0o755)
    c.symlink('bin/sh', 'busybox')
    c.symlink('init', 'bin/busybox')
    c.file('etc/inittab', INITTAB)
    c.file('etc/init.d/rcS', RCS, 0o755)
    c.file('etc/init.d/rcK', RCK, 0o755)
    c.file('etc/acpi/PWRF/00000080', ACPI_POWER, 0o755)
    c.file('etc/lab-guest-ip', default_ip + '\n')
    c.file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n')
    c.file('etc/group', 'root:x:0:\n')
    c.file('www/ovirt-engine/services/health', HEALTH_BODY)
    base = os.path.join(tree, 'lib', 'modules', version)
    names = []
    for mod in module_order(tree, version, MODULES):
        flat = os.path.basename(mod)
        with open(os.path.join(base, mod), 'rb') as f:
            c.file('lib/modules/' + flat, f.read())
        names.append(flat)
    c.file('etc/modules-order', '\n'.join(names) + '\n')
    write_cpio_gz(c, out_path)


def write_cpio_gz(cpio, out_path):
    """Write the finished cpio archive gzipped (reproducibly: mtime 0), atomically."""
    data = gzip.compress(cpio.finish(), compresslevel=6, mtime=0)
    with open(out_path + '.tmp', 'wb') as f:
        f.write(data)
    os.rename(out_path + '.tmp', out_path)


SYSLINUX_CFG = """\
DEFAULT lab
PROMPT 0
TIMEOUT 0
LABEL lab
  KERNEL vmlinuz
  APPEND initrd=initrd.img console=ttyS0 quiet
"""


def build_disk(kernel, initrd, out_path):
    """A raw disk: MBR with syslinux's boot code, one bootable FAT partition."""
    tmp = out_path + '.tmp'
    if os.path.exists(tmp):
        os.unlink(tmp)
    with open(tmp, 'wb') as f:
        f.truncate(DISK_SIZE_MIB * 1024 * 1024)
    _run(['sfdisk', '-q', tmp], input=b'start=%d, type=6, bootable\n' % PART_OFFSET_SECTORS,
         stdout=subprocess.DEVNULL)
    blocks = (DISK_SIZE_MIB * 1024 * 1024 - PART_OFFSET_SECTORS * 512) // 1024
    _run(['mkfs.vfat', '-F', '16', '-n', 'LABGUEST', '--offset', str(PART_OFFSET_SECTORS),
          tmp, str(blocks)], stdout=subprocess.DEVNULL)
    img = '%s@@%d' % (tmp, PART_OFFSET_SECTORS * 512)
    with tempfile.NamedTemporaryFile('w', suffix='.cfg') as cfg:
        cfg.write(SYSLINUX_CFG)
        cfg.flush()
        env = dict(os.environ, MTOOLS_SKIP_CHECK='1')
        _run(['mcopy', '-o', '-i', img, kernel, '::vmlinuz'], env=env)
        _run(['mcopy', '-o', '-i', img, initrd, '::initrd.img'], env=env)
        _run(['mcopy', '-o', '-i', img, cfg.name, '::syslinux.cfg'], env=env)
    _run(['syslinux', '--offset', str(PART_OFFSET_SECTORS * 512), '--install', tmp])
    with open('/usr/lib/syslinux/mbr/mbr.bin', 'rb') as f:
        mbr = f.read()
    with open(tmp, 'r+b') as f:
        f.write(mbr[:440])
    os.rename(tmp, out_path)


def _inputs_digest(version):
    h = hashlib.sha1()
    with open(os.path.abspath(__file__), 'rb') as f:
        h.update(f.read())
    h.update(version.encode())
    with open('/bin/busybox', 'rb') as f:
        h.update(hashlib.sha1(f.read()).digest())
    return h.hexdigest()


def build(images_dir=None, cache_dir=None, force=False):
    images_dir = images_dir or paths.images_dir()
    cache_dir = cache_dir or os.path.join(paths.cache_dir(), 'kernel')
    version, tree = fetch_kernel(cache_dir)
    digest = _inputs_digest(version)
    stamp = os.path.join(images_dir, 'build.json')
    if not force and os.path.isfile(stamp):
        with open(stamp) as f:
            if json.load(f).get('digest') == digest and all(
                    os.path.isfile(os.path.join(images_dir, n))
                    for n in ('vmlinuz', 'initrd.img', 'disk.raw')):
                print('[guest-image] guest image up to date in %s' % images_dir)
                return
    os.makedirs(images_dir, exist_ok=True)
    kernel = os.path.join(images_dir, 'vmlinuz')
    shutil.copyfile(os.path.join(tree, 'boot', 'vmlinuz-' + version), kernel + '.tmp')
    os.rename(kernel + '.tmp', kernel)
    initrd = os.path.join(images_dir, 'initrd.img')
    print('[guest-image] building the busybox initramfs', flush=True)
    build_initrd(tree, version, initrd)
    print('[guest-image] building the bootable disk', flush=True)
    build_disk(kernel, initrd, os.path.join(images_dir, 'disk.raw'))
    with open(stamp + '.tmp', 'w') as f:
        json.dump({'digest': digest, 'kernel_version': version}, f)
    os.rename(stamp + '.tmp', stamp)
    print('[guest-image] guest image ready in %s (kernel %s)' % (images_dir, version))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    build(force='--force' in argv)
    return 0


if __name__ == '__main__':
    sys.exit(main())
