"""VM CONFIGURATION: the engine appliance, the VM's size and devices, cloud-init; in misc
the appliance disk copied into the VM volume, the cloud-init seed ISO and the VM
definition (domain XML and vm.conf)."""
from . import appliance, cloudinit, seed, sizing, vmconf  # noqa: F401
