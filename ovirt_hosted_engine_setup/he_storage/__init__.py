"""The hosted-engine storage, used alike by the deploy, the HA services and the cleanup.

- layout: names, sizes and paths of the storage domain and its four images;
- domain: connecting a host, provisioning the domain and its images, removing it;
- volumes: direct-I/O reads and writes of the volumes, copying a disk into the VM volume;
- config_volume: the configuration volume (a tar the hosts share);
- lockspace: the ``hosted-engine`` sanlock lockspace; sanlock_util: the sanlock calls the
  HA verbs and the host agent make;
- delta_leases: the one reader of the delta leases of a lockspace on the storage;
- heconf: hosted-engine.conf and vm.conf.

Nothing here imports the deploy wing, the HA services or the host agent: they import this
package. See docs/architecture.md.
"""


class StorageError(Exception):
    """A step on the shared storage failed; str() is one line with the fix."""
