"""The host agent's storage backend: file storage domains laid out as VDSM does.

Split as VDSM splits its storage API, one part per concern, all sharing one
StorageContext (context.py: the state, its lock, the domain and pool lookups):
- connections.py: StoragePool.connectStorageServer / disconnectStorageServer;
- domains.py: StorageDomain.*, Host.getStorageDomains;
- pools.py: StoragePool.* (but the connections), the SPM, Host.getConnectedStoragePools;
- volumes.py: Image.*, Volume.*;
- tasks.py: Task.*, Host.getAllTasksStatuses (and the TaskManager the parts start
  their tasks with);
- monitor.py: domain monitoring, Host.*MonitoringDomain, Host.getStorageRepoStats;
- gluster.py: GlusterVolume.list (the gluster CLI), which GLUSTERFS connections also use.
The file-domain layout helpers are fileutil.py (names, atomic writes, direct I/O)
and metadata.py (domain and volume metadata).

StorageBackend is what the daemon loads: it recovers the saved state, closes,
reports the host statistics, and serves the verbs of its parts (the server finds
them through ``parts``; a part's verb is also an attribute of the backend, so
``backend.createVolume(...)`` calls the volumes part).

State that must survive a restart of the agent (connections, connected pools,
monitored domains, tasks) is kept under <root_dir>/storage/.
"""
from ..api_base import Backend, verbs_of
from .connections import Connections
from .context import StorageContext
from .domains import Domains
from .gluster import GlusterVolumes
from .monitor import Monitoring
from .pools import Pools
from .tasks import Tasks
from .volumes import ImagesVolumes


class StorageBackend(Backend):
    """StoragePool, StorageDomain, Volume, Image, Task, GlusterVolume verbs and domain
    monitoring."""

    PARTS = (Connections, Domains, Pools, ImagesVolumes, Tasks, Monitoring, GlusterVolumes)

    def __init__(self, ctx, monitor_interval=None, io_timeout=None):
        super().__init__(ctx)
        self.sc = StorageContext(ctx, monitor_interval=monitor_interval, io_timeout=io_timeout)
        self.parts = tuple(cls(self.sc) for cls in self.PARTS)
        part = {type(p): p for p in self.parts}
        self._connections, self._pools = part[Connections], part[Pools]
        self._monitoring = part[Monitoring]
        # each verb by its Python name, as one object (what tests and tools call)
        for fn in verbs_of(self).values():
            setattr(self, fn.__name__, fn)

    # The state the parts share (see context.py), for callers that inspect it.
    @property
    def pools(self):
        return self.sc.pools

    @property
    def monitored(self):
        return self.sc.monitored

    @property
    def monitors(self):
        return self.sc.monitors

    def find_domain(self, sd_uuid):
        return self.sc.find_domain(sd_uuid)

    def recover(self):
        self.sc.tasks.recover()
        state = self.sc.load()
        if state is None:
            return
        with self.sc.lock:
            self._connections.restore(state)
            self._pools.restore(state)
            self._monitoring.restore(state)

    def close(self):
        self._monitoring.close()
        self.sc.tasks.wait_all(5)

    def host_stats(self):
        return self._monitoring.host_stats()
