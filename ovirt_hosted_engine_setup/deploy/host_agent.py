"""This host's agent as the deploy and cleanup reach it: port, root directory, the engine CA
it trusts, and the state of a VM it runs."""
import os

from ..api.client import DEFAULT_HOSTD_ROOT, DEFAULT_PORT, HOSTD_ROOT_ENV
from ..api.errors import ServerError
from ..api.schema import error_code

HOSTD_PORT_ENV = 'OVIRT_HOSTED_ENGINE_HOSTD_PORT'
NO_VM = error_code('noVM')   # VDSM's error code for an unknown VM


def port():
    """The host agent's port: $OVIRT_HOSTED_ENGINE_HOSTD_PORT or 54321."""
    text = os.environ.get(HOSTD_PORT_ENV)
    try:
        return int(text) if text else DEFAULT_PORT
    except ValueError:
        raise ValueError('%s=%r is not a port number: unset it or give the host agent port'
                         % (HOSTD_PORT_ENV, text))


def root():
    """The embedded host agent's directory ($OVIRT_HOSTED_ENGINE_HOSTD_ROOT or the default)."""
    return os.environ.get(HOSTD_ROOT_ENV) or DEFAULT_HOSTD_ROOT


def trusted_ca_path(fqdn):
    """Where the host agent finds the engine CA it accepts client certificates from."""
    return os.path.join(root(), 'pki', 'trusted-cas', 'engine-%s.pem' % fqdn)


def vm_stats(client, vm_id):
    """The VM's VM.getStats entry, or None when the host agent does not know the VM."""
    try:
        stats = client.call('VM.getStats', vmID=vm_id)
    except ServerError as e:
        if e.code == NO_VM:
            return None
        raise
    return stats[0] if stats else None


def vm_status(client, vm_id):
    """The VM's status, or None when the host agent does not know it (any more)."""
    stats = vm_stats(client, vm_id)
    return stats.get('status') if stats else None


def destroy_vm(client, vm_id):
    """Power the VM off and drop the host agent's record of it; an unknown VM is fine."""
    try:
        client.call('VM.destroy', vmID=vm_id)
    except ServerError as e:
        if e.code != NO_VM:
            raise
