"""VM.create's preparation of the domain XML (no libvirt needed)."""
import os
import stat
import xml.etree.ElementTree as ET

import pytest

from ovirt_hosted_engine_setup.hostd.api_base import VdsmError
from ovirt_hosted_engine_setup.hostd.vm import VMBackend

VM_ID = '5b8a4a3e-0d2c-4b7e-9b1a-2f4e6d8c0a11'


def domain(channel_path):
    return ("<domain type='qemu'><name>HostedEngine</name><devices>"
            "<channel type='unix'><source mode='bind' path='%s'/>"
            "<target type='virtio' name='org.ovirt.hosted-engine-setup.0'/></channel>"
            "<channel type='unix'><source mode='bind'/>"
            "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
            "<graphics type='vnc' autoport='yes'/></devices></domain>" % channel_path)


def test_channel_socket_directory_is_created(tmp_path):
    sock = tmp_path / 'qemu' / 'channels' / ('%s.org.ovirt.hosted-engine-setup.0' % VM_ID)
    xml, name = VMBackend._prepare_xml(VM_ID, domain(sock))
    assert name == 'HostedEngine'
    assert stat.S_ISDIR(os.stat(sock.parent).st_mode)
    assert not sock.exists()          # libvirt binds the socket itself
    root = ET.fromstring(xml)
    assert root.findtext('uuid') == VM_ID
    g = root.find('./devices/graphics')
    assert g.get('passwdValidTo') == '1970-01-01T00:00:01' and g.get('passwd')


def test_channel_directory_that_cannot_be_made_is_a_clear_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(VdsmError) as e:
        VMBackend._prepare_xml(VM_ID, domain(blocker / 'channels' / 'x.sock'))
    assert 'cannot create the directory of the channel socket' in e.value.message
