"""The lab guest image (built by scripts/bootstrap-host-stack) and test VM definitions.

guest_image() -> GuestImage(kernel, initrd, disk): the paths, after checking they exist.
domain_xml(...) -> a libvirt domain XML for a small test VM (TCG, 256 MiB) that boots
from its own disk (or directly from the kernel), with an optional sanlock <lease>,
the hosted-engine virtio-serial channel and a NIC on a given bridge.

The guest serves http://<address>/ovirt-engine/services/health with HEALTH_BODY and
writes "lab-guest: up address=... hostname=..." to the channel CHANNEL_NAME. Its
address comes from, in order: the kernel command line ip= (kernel format
client:server:gw:netmask:hostname:device:autoconf), the fw_cfg entry FWCFG_IP
(same format; domain_xml(ip=...) sets it), the built-in DEFAULT_IP.
"""
import collections
import os
import shutil
import subprocess
from xml.sax.saxutils import escape, quoteattr

from ovirt_hosted_engine_setup.lab import paths
from ovirt_hosted_engine_setup.lab.guest_image import (  # noqa: F401 (re-exported)
    CHANNEL_NAME, DEFAULT_IP, FWCFG_IP, HEALTH_BODY)

__all__ = ['CHANNEL_NAME', 'DEFAULT_IP', 'FWCFG_IP', 'HEALTH_BODY', 'HEALTH_PATH', 'GuestImage',
           'ImageMissing', 'guest_image', 'copy_disk', 'kernel_ip', 'domain_xml']

GuestImage = collections.namedtuple('GuestImage', 'kernel initrd disk')

HEALTH_PATH = '/ovirt-engine/services/health'


class ImageMissing(RuntimeError):
    pass


def guest_image(images_dir=None):
    """Paths of the guest kernel, initramfs and bootable raw disk."""
    d = images_dir or paths.images_dir()
    img = GuestImage(os.path.join(d, 'vmlinuz'), os.path.join(d, 'initrd.img'),
                     os.path.join(d, 'disk.raw'))
    missing = [p for p in img if not os.path.isfile(p)]
    if missing:
        raise ImageMissing('the lab guest image is missing (%s): run scripts/bootstrap'
                           % ', '.join(missing))
    return img


def copy_disk(dest, fmt='raw'):
    """Write the guest's bootable disk to dest (an existing volume or a new file).

    fmt is the destination's format (raw or qcow2); the copy is sparse.
    """
    src = guest_image().disk
    if fmt == 'raw' and not os.path.exists(dest):
        subprocess.run(['cp', '--sparse=always', src, dest], check=True)
        return dest
    subprocess.run(['qemu-img', 'convert', '-n' if os.path.exists(dest) else '-q',
                    '-f', 'raw', '-O', fmt, src, dest], check=True)
    return dest


def kernel_ip(address, prefix=24, gateway='', hostname='lab-guest', device='eth0'):
    """The kernel-format ip= value for a static address."""
    bits = (0xffffffff << (32 - int(prefix))) & 0xffffffff
    mask = '.'.join(str((bits >> s) & 0xff) for s in (24, 16, 8, 0))
    return '%s::%s:%s:%s:%s:off' % (address, gateway or '', mask, hostname, device)


def domain_xml(name, uuid, disk_path=None, memory_mib=256, vcpus=1, lease=None,
               channel_path=None, bridge=None, mac=None, ip=None, console_log=None,
               boot='disk', disk_format='raw', disk_readonly=False, emulator=None,
               disk_cache=None):
    """A libvirt domain XML for a lab test VM.

    disk_path: the VM's disk (default: the guest image's disk; with boot='disk' it
      must hold the guest's bootable disk, see copy_disk).
    lease: None or dict(lockspace=, key=, path=, offset=0): a sanlock <lease>.
    channel_path: unix socket (libvirt binds it) for the org.ovirt.hosted-engine-setup.0 channel.
    bridge: attach one virtio NIC to this bridge (mac optional).
    ip: the guest's ip= value in kernel format (see kernel_ip), given through
      fw_cfg when booting from disk, on the command line when boot='kernel'.
    console_log: file that receives the serial console.
    boot: 'disk' (syslinux on the disk) or 'kernel' (direct kernel boot of the image).
    """
    img = guest_image()
    disk_path = disk_path or img.disk
    os_boot = ["<type arch='x86_64' machine='pc'>hvm</type>"]
    if boot == 'kernel':
        cmdline = 'console=ttyS0 quiet' + (' ip=%s' % ip if ip else '')
        os_boot += ['<kernel>%s</kernel>' % escape(img.kernel),
                    '<initrd>%s</initrd>' % escape(img.initrd),
                    '<cmdline>%s</cmdline>' % escape(cmdline)]
    elif boot == 'disk':
        os_boot.append("<boot dev='hd'/>")
    else:
        raise ValueError('boot must be disk or kernel, not %r' % boot)
    devices = []
    emulator = emulator or shutil.which('qemu-system-x86_64') or '/usr/bin/qemu-system-x86_64'
    devices.append('<emulator>%s</emulator>' % escape(emulator))
    driver = "<driver name='qemu' type=%s%s/>" % (
        quoteattr(disk_format), ' cache=%s' % quoteattr(disk_cache) if disk_cache else '')
    devices.append("<disk type='file' device='disk'>%s<source file=%s/>"
                   "<target dev='vda' bus='virtio'/>%s</disk>"
                   % (driver, quoteattr(disk_path), '<readonly/>' if disk_readonly else ''))
    if lease:
        devices.append('<lease><lockspace>%s</lockspace><key>%s</key>'
                       '<target path=%s offset=%s/></lease>'
                       % (escape(lease['lockspace']), escape(lease['key']),
                          quoteattr(lease['path']), quoteattr(str(lease.get('offset', 0)))))
    if bridge:
        devices.append("<interface type='bridge'>%s<source bridge=%s/><model type='virtio'/>"
                       "</interface>" % ('<mac address=%s/>' % quoteattr(mac) if mac else '',
                                         quoteattr(bridge)))
    if channel_path:
        devices.append("<controller type='virtio-serial' index='0'/>")
        devices.append("<channel type='unix'><source mode='bind' path=%s/>"
                       "<target type='virtio' name=%s/></channel>"
                       % (quoteattr(channel_path), quoteattr(CHANNEL_NAME)))
    if console_log:
        devices.append("<serial type='file'><source path=%s/><target port='0'/></serial>"
                       % quoteattr(console_log))
        devices.append("<console type='file'><source path=%s/>"
                       "<target type='serial' port='0'/></console>" % quoteattr(console_log))
    else:
        devices.append("<serial type='pty'><target port='0'/></serial>")
        devices.append("<console type='pty'><target type='serial' port='0'/></console>")
    devices.append("<memballoon model='none'/>")
    sysinfo = ''
    if ip and boot == 'disk':
        sysinfo = ("<sysinfo type='fwcfg'><entry name=%s>%s</entry></sysinfo>"
                   % (quoteattr(FWCFG_IP), escape(ip)))
    return (
        "<domain type='qemu'>"
        '<name>%s</name><uuid>%s</uuid>'
        "<memory unit='MiB'>%d</memory><currentMemory unit='MiB'>%d</currentMemory>"
        '<vcpu>%d</vcpu>%s'
        '<os>%s</os>'
        '<features><acpi/></features>'
        "<clock offset='utc'/>"
        '<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>'
        '<on_crash>destroy</on_crash>'
        '<devices>%s</devices>'
        '</domain>'
        % (escape(name), escape(uuid), memory_mib, memory_mib, vcpus, sysinfo,
           ''.join(os_boot), ''.join(devices)))
