"""What the storage backend's parts share: its state, its lock and the lookups all need.

One StorageContext per storage backend. The parts (connections, domains, pools,
images and volumes, tasks, monitoring) each take it and keep no state of their own:
- connections: mount point -> the connection's public parameters (no password);
- pools: spUUID -> {hostID, masterSdUUID, masterVersion, spm} of the pools
  connected on this host (spm: the SPM lease held by this process, or None);
- monitored: sdUUID -> hostID asked for by Host.startMonitoringDomain;
- monitors: sdUUID -> the running DomainMonitor;
- prepared: (sdUUID, imgUUID) of the run links made by Image.prepare;
- tasks: the TaskManager of the asynchronous verbs.
Everything but monitors, prepared and the SPM lease is saved under
<root_dir>/storage/ (state.json, tasks/) and recovered at the next start.

Callers hold ``lock`` around a change of the state and the files it describes.
"""
import json
import os
import subprocess
import threading

from ...he_storage import layout, sanlock_util
from ..api_base import VdsmError
from . import metadata as md
from .fileutil import read_direct, write_atomic
from .tasks import TaskManager


def run(cmd, what):
    """Run a command; VdsmError general naming what failed (with its stderr) on failure."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if p.returncode != 0:
        raise VdsmError('general', '%s failed: %s' % (what, (p.stderr or p.stdout).strip()
                                                        or 'exit status %d' % p.returncode))
    return p.stdout


def int_param(value, name):
    """value as an int; VdsmError InvalidParameterException naming the parameter if it is not."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise VdsmError('InvalidParameterException',
                        'parameter %s must be an integer, got %r' % (name, value))


class StorageContext:
    def __init__(self, ctx, monitor_interval=None, io_timeout=None):
        self.ctx = ctx
        sanlock_util.use_run_dir(ctx.sanlock_run_dir)
        self.mnt_dir = os.path.join(ctx.data_center_dir, layout.MNT_DIR)
        self.state_dir = os.path.join(ctx.root_dir, 'storage')
        self.state_path = os.path.join(self.state_dir, 'state.json')
        self.monitor_interval = float(monitor_interval if monitor_interval is not None
                                      else getattr(ctx, 'monitor_interval', 10.0))
        # sanlock I/O timeout of the lockspaces this agent writes and joins (0: sanlock's
        # default, 10 s).
        self.io_timeout = int(io_timeout if io_timeout is not None
                              else getattr(ctx, 'sanlock_io_timeout', 0) or 0)
        self.lock = threading.RLock()
        self.connections = {}
        self.pools = {}
        self.monitored = {}
        self.monitors = {}
        self.prepared = set()
        self.tasks = TaskManager(os.path.join(self.state_dir, 'tasks'))

    # ------------------------------------------------------------------ state
    def save(self):
        state = {'connections': self.connections,
                 'pools': {sp: {k: v for k, v in p.items() if k != 'spm'}
                           for sp, p in self.pools.items()},
                 'monitored': self.monitored}
        os.makedirs(self.state_dir, exist_ok=True)
        write_atomic(self.state_path, json.dumps(state, indent=1, sort_keys=True).encode(),
                     mode=0o600)

    def load(self):
        """The state saved by the last run, or None if there is none."""
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    # ---------------------------------------------------------------- domains
    def mountpoint(self, connection, domain_type):
        """Where a connection of a domain type (the API's number) is mounted (or linked):
        <data_center_dir>/mnt/<mangled>, gluster volumes under mnt/glusterSD/ (as VDSM)."""
        return layout.mount_point(connection, self.ctx.data_center_dir, domain_type)

    def domain_dirs(self):
        """{sdUUID: domain directory} of every file domain under the mount points."""
        out = {}
        for base in layout.mount_points(self.ctx.data_center_dir):
            try:
                entries = os.listdir(base)
            except OSError:
                continue
            for e in entries:
                if os.path.isfile(os.path.join(base, e, 'dom_md', 'metadata')):
                    out.setdefault(e, os.path.join(base, e))
        return out

    def find_domain(self, sd_uuid):
        """The directory of domain sd_uuid; VdsmError StorageDomainDoesNotExist if no connected
        storage has it."""
        for base in layout.mount_points(self.ctx.data_center_dir):
            d = os.path.join(base, sd_uuid)
            if os.path.isfile(os.path.join(d, 'dom_md', 'metadata')):
                return d
        raise VdsmError('StorageDomainDoesNotExist',
                        'storage domain %s does not exist on the connected storage: '
                        'connect its storage server first' % sd_uuid)

    def read_domain_md(self, sd_uuid, sd_dir=None):
        sd_dir = sd_dir or self.find_domain(sd_uuid)
        data, _ = read_direct(os.path.join(sd_dir, 'dom_md', 'metadata'))
        return md.parse_domain(data, sd_uuid)

    def write_domain_md(self, sd_uuid, fields, sd_dir=None):
        sd_dir = sd_dir or self.find_domain(sd_uuid)
        write_atomic(os.path.join(sd_dir, 'dom_md', 'metadata'), md.format_domain(fields))

    def update_domain_md(self, sd_uuid, **changes):
        """Set (None: remove) metadata keys of a domain; returns the new fields."""
        fields = self.read_domain_md(sd_uuid)
        for k, v in changes.items():
            if v is None:
                fields.pop(k, None)
            else:
                fields[k] = str(v)
        self.write_domain_md(sd_uuid, fields)
        return fields

    # ------------------------------------------------------------------ pools
    def pool(self, sp_uuid):
        """The state of a pool connected on this host; VdsmError StoragePoolUnknown if none."""
        pool = self.pools.get(sp_uuid)
        if pool is None:
            raise VdsmError('StoragePoolUnknown',
                            'storage pool %s is unknown on this host (not connected): call '
                            'StoragePool.connect first' % sp_uuid)
        return pool

    def require_spm(self, sp_uuid):
        """The pool's state; VdsmError SpmStatusError unless this host is its SPM."""
        pool = self.pool(sp_uuid)
        if not pool.get('spm'):
            raise VdsmError('SpmStatusError',
                            'this host is not the SPM of pool %s: call StoragePool.spmStart '
                            'and wait for its task first' % sp_uuid)
        return pool

    def pool_md(self, sp_uuid):
        """(master sdUUID, master metadata fields) of a pool connected on this host."""
        master = self.pool(sp_uuid)['masterSdUUID']
        return master, self.read_domain_md(master)
