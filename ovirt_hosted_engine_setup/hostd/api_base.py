"""What the embedded host agent's backends share with its server.

A backend is a class taking a HostContext; its methods decorated with
``@verb('Namespace.verb')`` serve that verb. The server validates parameters
against the API schema (ovirt_hosted_engine_setup/api/schema.yaml) before the
call, fills schema defaults, and passes them as keyword arguments named exactly
as in the schema. A verb returns its JSON-serialisable result (``True`` when it
has nothing to return) or raises VdsmError.

Verbs may be called from several threads at once: backends lock what they share.
"""
from ..api.schema import error_code


class VdsmError(Exception):
    """An error with a VDSM error code, sent to the client as the JSON-RPC error.

    code: the error's name in the API schema's "errors" (VDSM's name, e.g.
    'StorageDomainDoesNotExist'), so that no code is written twice; or its number.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = error_code(code) if isinstance(code, str) else int(code)
        self.message = str(message)

    def __str__(self):
        return '%s (code %d)' % (self.message, self.code)


def verb(name):
    """Mark a backend method as the handler of API verb ``name`` (``Namespace.verb``)."""
    def mark(fn):
        fn.api_verb = name
        return fn
    return mark


def verbs_of(obj):
    """{'Namespace.verb': bound method} for every @verb method of obj and of its parts.

    obj.parts (optional): the objects a backend split by API namespace serves its
    verbs with (the storage backend: connections, domains, pools, ...). A verb
    served twice is a programming error (ValueError).
    """
    out = {}
    for part in (obj,) + tuple(getattr(obj, 'parts', ())):
        for attr in dir(type(part)):
            fn = getattr(type(part), attr, None)
            name = getattr(fn, 'api_verb', None)
            if not name:
                continue
            if name in out:
                raise ValueError('%s is served by both %s and %s' % (
                    name, type(out[name].__self__).__name__, type(part).__name__))
            out[name] = getattr(part, attr)
    return out


class Backend:
    """Base of the host agent's backends (storage, VMs, network, host)."""

    def __init__(self, ctx):
        self.ctx = ctx

    def recover(self):
        """Called once at daemon start, before serving: rebuild state kept under ctx.root_dir."""

    def host_stats(self):
        """A dict merged into Host.getStats (e.g. storageDomains, vmCount)."""
        return {}

    def close(self):
        """Called at daemon stop; must not stop running VMs or leave lockspaces."""


class HostContext:
    """What the server gives every backend.

    root_dir: the agent's state directory (configuration, certificates, the
        state each backend must recover after a restart), default
        /var/lib/ovirt-hosted-engine-hostd.
    data_center_dir: where storage is connected and pools are linked, default
        /rhev/data-center (mounts under <data_center_dir>/mnt).
    run_dir: runtime files (default /run/ovirt-hosted-engine-hostd).
    sanlock_run_dir: SANLOCK_RUN_DIR of this host's sanlock daemon, or None
        for the default.
    libvirt_uri: libvirt connection URI (default qemu:///system).
    emit_event(method, params): publish a JSON-RPC notification (for example
        '|virt|VM_status|<vmId>') to the clients subscribed to events.
    backends: all backends of this daemon, in start order (set by the server).
    """

    def __init__(self, root_dir, data_center_dir='/rhev/data-center',
                 run_dir='/run/ovirt-hosted-engine-hostd', sanlock_run_dir=None,
                 libvirt_uri='qemu:///system', emit_event=None):
        self.root_dir = root_dir
        self.data_center_dir = data_center_dir
        self.run_dir = run_dir
        self.sanlock_run_dir = sanlock_run_dir
        self.libvirt_uri = libvirt_uri
        self.emit_event = emit_event or (lambda method, params: None)
        self.backends = []

    def backend(self, cls):
        """The running backend instance of class cls, or None."""
        for b in self.backends:
            if isinstance(b, cls):
                return b
        return None
