"""Connecting the hosted-engine storage through the host agent API.

``connect(client, conf)`` returns a StoragePaths: the metadata volume, the
lockspace volume and the VM disk's lease. It uses he_storage/domain.py
(connectStorageServer, then Image.prepare of the hosted-engine images).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class StoragePaths:
    metadata: str
    lockspace: str
    vm_lease: str = None


def _pick(paths, *names):
    for name in names:
        if isinstance(paths, dict):
            if paths.get(name):
                return paths[name]
        elif getattr(paths, name, None):
            return getattr(paths, name)
    return None


def normalize(paths):
    """A StoragePaths from what domain.connect returned."""
    out = StoragePaths(metadata=_pick(paths, 'metadata', 'metadata_volume'),
                       lockspace=_pick(paths, 'lockspace', 'lockspace_volume'),
                       vm_lease=_pick(paths, 'vm_lease', 'lease', 'vm_disk_lease'))
    if not out.metadata or not out.lockspace:
        raise ValueError('the storage connection gave no metadata or lockspace volume path '
                         '(%r)' % (paths,))
    return out


def connect(client, conf):
    from ...he_storage import domain
    return normalize(domain.connect(client, conf))
