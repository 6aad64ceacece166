"""This host's id in the ``hosted-engine`` sanlock lockspace.

The broker joins the lockspace (python3-sanlock add_lockspace) in a background
thread, retrying until it succeeds or the broker stops: joining takes about
2 x io_timeout. The thread then watches the host id and joins again when
sanlock has lost it. ``held()`` asks sanlock (inq_lockspace); ``live_ids()`` is
sanlock's own view of which host ids still renew their delta lease.

A host id counts as live unless sanlock reports it free or dead: a host that
sanlock does not know yet (just joined) or that fails to renew (not yet dead)
is not proven gone, and its leases cannot be taken yet either.

Right after joining, sanlock cannot tell for one renewal interval (2 x io_timeout)
which hosts are live. Then the delta leases on the storage answer what they can: when
every other host id's lease is free (timestamp 0: never held, or left cleanly), no other
host is in the lockspace and this host is alone, as on the first host just deployed;
otherwise the answer waits for sanlock.
"""
import errno
import logging
import os
import threading

import sanlock

from ...he_storage import delta_leases
from ...he_storage.layout import LOCKSPACE_NAME, domain_ids_path

log = logging.getLogger(__name__)

LOCKSPACE = LOCKSPACE_NAME
_FLAG_MASK = 0x0F


def _b(value):
    return value if isinstance(value, bytes) else str(value).encode('utf-8')


def alone(leases, host_id):
    """[host_id] when every delta lease of `leases` ({host id: DeltaLease}) but host_id's
    is free, else None."""
    if any(lease.held for i, lease in leases.items() if i != host_id):
        return None
    return [host_id]


class Lockspace:
    def __init__(self, path, host_id, io_timeout=10, name=LOCKSPACE, retry_delay=5.0,
                 watch_interval=5.0):
        self.path = path
        self.host_id = int(host_id)
        self.io_timeout = int(io_timeout)
        self.name = name
        self.retry_delay = retry_delay
        self.watch_interval = watch_interval
        self.join_error = None
        self.query_error = None
        self._stop = threading.Event()
        self._thread = None
        self._joined = False

    # -- joining ---------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._join_loop, name='lockspace', daemon=True)
        self._thread.start()
        return self

    def _join_loop(self):
        """Join, retrying until it works; then watch the host id and join again if
        sanlock lost it (storage loss, a restarted sanlock daemon)."""
        last_error = None
        while not self._stop.is_set():
            if self._joined:
                self._stop.wait(self.watch_interval)
                if self._stop.is_set():
                    return
                try:
                    state = sanlock.inq_lockspace(_b(self.name), self.host_id, _b(self.path),
                                                  offset=0)
                except Exception:
                    state = False
                if state is not False:      # held, or sanlock is busy joining/leaving
                    continue
                log.warning('host id %d is no longer held in the %s lockspace; joining again',
                            self.host_id, self.name)
                self._joined = False
            try:
                log.info('joining the %s lockspace as host id %d (%s)', self.name, self.host_id,
                         self.path)
                sanlock.add_lockspace(_b(self.name), self.host_id, _b(self.path), offset=0,
                                      iotimeout=self.io_timeout, wait=True)
                self._joined = True
                self.join_error = None
                last_error = None
                log.info('host id %d acquired in the %s lockspace', self.host_id, self.name)
                continue
            except sanlock.SanlockException as e:
                if e.errno == errno.EEXIST:
                    self._joined = True
                    self.join_error = None
                    last_error = None
                    log.info('host id %d already held in the %s lockspace', self.host_id,
                             self.name)
                    continue
                self.join_error = 'cannot acquire host id %d in the %s lockspace: %s' % (
                    self.host_id, self.name, e)
            except Exception as e:  # keep retrying whatever sanlock said
                self.join_error = 'cannot acquire host id %d in the %s lockspace: %s' % (
                    self.host_id, self.name, e)
            if self.join_error != last_error:
                log.error('%s; retrying every %.0f s', self.join_error, self.retry_delay)
                last_error = self.join_error
            self._stop.wait(self.retry_delay)

    # -- state -----------------------------------------------------------
    @property
    def error(self):
        """One line: why the host id is not held or sanlock cannot be asked; None when fine."""
        return self.join_error or self.query_error

    def held(self):
        """True when sanlock reports the host id held (False while joining or on error)."""
        try:
            held = sanlock.inq_lockspace(_b(self.name), self.host_id, _b(self.path),
                                         offset=0) is True
        except sanlock.SanlockException as e:
            if e.errno == errno.ENOENT:
                held = False
            else:
                self.query_error = 'cannot ask sanlock about the %s lockspace: %s' % (
                    self.name, e)
                return False
        except Exception as e:
            self.query_error = 'cannot ask sanlock about the %s lockspace: %s' % (self.name, e)
            return False
        self.query_error = None
        return held

    def live_ids(self):
        """Sorted host ids sanlock does not report free or dead; None when not held."""
        if not self.held():
            return None
        try:
            hosts = sanlock.get_hosts(_b(self.name))
        except sanlock.SanlockException as e:
            if e.errno == errno.EAGAIN:
                # just joined: sanlock has not yet seen the other hosts renew
                return self._alone_by_leases()
            self.query_error = 'cannot read the hosts of the %s lockspace: %s' % (self.name, e)
            return None
        self.query_error = None
        out = set()
        for h in hosts:
            flag = h.get('flags', 0) & _FLAG_MASK
            if flag in (sanlock.HOST_FREE, sanlock.HOST_DEAD):
                continue
            out.add(int(h['host_id']))
        out.add(self.host_id)
        return sorted(out)

    def _alone_by_leases(self):
        """[this host id] when the delta leases show every other host id free; None when
        another one is held (live or not: only sanlock can tell) or they cannot be read."""
        try:
            leases = delta_leases.read_delta_leases(self.path, name=self.name)
        except delta_leases.LockspaceError as e:
            log.debug('cannot read the delta leases of %s: %s', self.path, e)
            return None
        return alone(leases, self.host_id)

    # -- leaving ---------------------------------------------------------
    def stop(self, leave=True):
        """Stop joining; leave the lockspace unless a resource of ours depends on it."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            # add_lockspace(wait=True) cannot be interrupted: give it its ~2 x io timeout
            self._thread.join(3 * self.io_timeout + 5)
        if not leave:
            return True
        try:
            sanlock.rem_lockspace(_b(self.name), self.host_id, _b(self.path), offset=0,
                                  wait=True, unused=True)
            log.info('left the %s lockspace (host id %d)', self.name, self.host_id)
            return True
        except sanlock.SanlockException as e:
            if e.errno == errno.ENOENT:
                return True
            if e.errno == errno.EBUSY:
                log.warning('the %s lockspace is still used by a lease: not leaving it',
                            self.name)
                return False
            log.error('cannot leave the %s lockspace: %s', self.name, e)
            return False


def read_lease_owner(lockspace, resource, path, offset=0):
    """Host id owning a volume lease of the domain on disk, or None when free.

    The lease names its owner by host id and generation. A host id that was acquired again
    since (a host that crashed, or hung past its renewal timeout, and rejoined: its delta
    lease in the domain's lockspace, dom_md/ids, has a newer generation) no longer owns it:
    sanlock gives the lease to the next host that asks, so it counts as free."""
    owners = sanlock.read_resource_owners(_b(lockspace), _b(resource), [(_b(path), offset)])
    owners = [o for o in owners or () if o.get('host_id')]
    if not owners:
        return None
    ids = lease_lockspace_path(path)
    try:
        delta = delta_leases.read_delta_leases(ids, name=lockspace)
    except delta_leases.LockspaceError as e:
        text = ('cannot read the lockspace %s to check the generation of host id %s, which '
                'owns the lease %s: the owner is believed (%s)'
                % (ids, owners[0]['host_id'], path, e))
        # warned once per problem (the agent asks every loop), then at debug level
        log.log(logging.DEBUG if text in _WARNED else logging.WARNING, '%s', text)
        _WARNED.add(text)
        delta = None
    return lease_owner(owners, delta)


_WARNED = set()


def lease_lockspace_path(lease_path):
    """The domain's lockspace (dom_md/ids) of a volume lease: found from the lease's real
    path, since the path the host agent gives (under its run directory, as VDSM's
    /run/vdsm/storage/SD/IMAGE) goes through a link to the image directory."""
    return domain_ids_path(os.path.realpath(lease_path))


def lease_owner(owners, delta):
    """The owning host id from read_resource_owners' records and the lockspace's delta
    leases ({host id: DeltaLease}, None when unknown: the owner is then believed)."""
    for o in owners:
        hid = int(o['host_id'])
        gen = o.get('generation')
        now = (delta or {}).get(hid)
        if delta is not None and gen is not None and now is not None and now.generation > gen:
            continue          # its host id was acquired again since: the lease is free
        return hid
    return None
