"""The host agent's VM backend: VMs through libvirt with its sanlock lock driver.

VM.create starts the domain XML of vmParams["xml"] as a *transient* libvirt
domain (its UUID set to vmID): nothing is left defined when it stops, and the
host agent's own record (<root_dir>/vm/<vmId>.json) keeps what VDSM reports
for a VM that went down (exit code, message, reason) until VM.destroy.
A start refused because the disk's lease is held by another host (libvirt:
"Failed to acquire lock: error -243") leaves the VM Down with exitCode 1 and an
exitMessage saying so (exitLeaseHeld true).

VMs keep running while the agent is down: close() never stops them, and
recover() picks up the running domains again.

Over 600 lines as one module because the verbs, libvirt's lifecycle events and
the statistics sampler all work on the same VM records under one lock.
"""
import json
import logging
import os
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import libvirt

from ..api.schema import enum
from .api_base import Backend, VdsmError, verb
from .storage.fileutil import write_atomic

log = logging.getLogger(__name__)

# VDSM's exit reasons (vdsm.common.exception / vmexitreason).
EXIT_SUCCESS = 0
EXIT_GENERIC_ERROR = 1
EXIT_LIBVIRT_START_FAILED = 3
EXIT_ADMIN_SHUTDOWN = 6
EXIT_USER_SHUTDOWN = 7

LEASE_ERROR_MARKERS = ('Failed to acquire lock', 'error -243', 'resource busy')
# qemu's own image lock: another qemu has the disk open (where the hosts share the lock, as
# on Gluster or one kernel), which on a hosted-engine disk means another host is starting or
# running the VM; qemu opens the disks before libvirt acquires the leases
IMAGE_LOCK_MARKERS = ('Failed to get "write" lock', 'Failed to get shared "write" lock',
                      'Is another process using the image')

# VDSM samples the VMs' CPU times every vm_sample_interval (15 s); cpuUser and cpuSys
# are the percentages of one CPU over the last interval, cpuUsage the CPU time in ns.
CPU_SAMPLE_INTERVAL = 15.0
CPU_INIT = '0.00'          # VDSM's value of the three before a first interval

_loop_lock = threading.Lock()
_loop_started = False


def _ensure_event_loop():
    """libvirt's default event loop in a daemon thread (once per process)."""
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run():
            while True:
                try:
                    libvirt.virEventRunDefaultImpl()
                except Exception:  # keep the loop alive
                    log.exception('libvirt event loop')
                    time.sleep(0.5)
        threading.Thread(target=run, name='libvirt-events', daemon=True).start()
        _loop_started = True


def _silence_libvirt(ctx, err):
    """libvirt prints every error to stderr by default; they reach callers as exceptions."""


def lease_refusal(message):
    return any(m in (message or '') for m in LEASE_ERROR_MARKERS)


class VMBackend(Backend):
    """VM.* verbs and Host.getVMList / Host.getAllVmStats."""

    def __init__(self, ctx):
        super().__init__(ctx)
        from ..he_storage import sanlock_util
        sanlock_util.use_run_dir(ctx.sanlock_run_dir)
        self.state_dir = os.path.join(ctx.root_dir, 'vm')
        os.makedirs(self.state_dir, exist_ok=True)
        self._lock = threading.RLock()
        self.vms = {}           # vmId -> record (persisted)
        self._conn = None
        self._callback_id = None
        self._destroying = set()
        self._shutdowns = {}
        self.sample_interval = float(getattr(ctx, 'vm_sample_interval', CPU_SAMPLE_INTERVAL))
        self._cpu_samples = {}  # vmId -> [older, newer] (monotonic s, cpu, user, system ns)
        self._closing = threading.Event()
        self._sampler = None
        _ensure_event_loop()
        libvirt.registerErrorHandler(_silence_libvirt, None)

    # ------------------------------------------------------------ libvirt
    def conn(self):
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                self._conn = None
            try:
                c = libvirt.open(self.ctx.libvirt_uri)
            except libvirt.libvirtError as e:
                raise VdsmError('general', 'cannot connect to libvirt at %s: %s (is libvirtd '
                                'running?)' % (self.ctx.libvirt_uri, e.get_error_message()))
            try:
                c.setKeepAlive(5, 3)
            except libvirt.libvirtError:
                pass
            self._callback_id = c.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)
            self._conn = c
            return c

    def _domain(self, vm_id):
        try:
            return self.conn().lookupByUUIDString(vm_id)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise VdsmError('general', 'libvirt: %s' % e.get_error_message())

    # ------------------------------------------------------------- records
    def _save(self, vm_id):
        rec = self.vms.get(vm_id)
        path = os.path.join(self.state_dir, vm_id + '.json')
        if rec is None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return
        write_atomic(path, json.dumps(rec).encode('utf-8'), mode=0o600)

    def _set(self, vm_id, emit=True, **changes):
        with self._lock:
            rec = self.vms.get(vm_id)
            if rec is None:
                return
            before = rec.get('status')
            rec.update(changes)
            self._save(vm_id)
            status = dict(rec)
        if emit and (changes.get('status') and changes.get('status') != before):
            self._emit(vm_id, status)

    def _emit(self, vm_id, rec):
        params = {vm_id: {k: rec[k] for k in ('status', 'exitCode', 'exitMessage', 'exitReason')
                          if k in rec and rec[k] is not None},
                  'notify_time': int(time.monotonic() * 1000)}
        params[vm_id]['vmId'] = vm_id
        try:
            self.ctx.emit_event('|virt|VM_status|%s' % vm_id, params)
        except Exception:
            log.exception('emitting VM_status of %s', vm_id)

    # ------------------------------------------------------------- events
    def _on_lifecycle(self, conn, dom, event, detail, opaque):
        try:
            vm_id = dom.UUIDString()
        except libvirt.libvirtError:
            return
        with self._lock:
            rec = self.vms.get(vm_id)
            if rec is None:
                return
            destroying = vm_id in self._destroying
            shutting = vm_id in self._shutdowns
        if event == libvirt.VIR_DOMAIN_EVENT_STARTED:
            try:
                paused = rec.get('launchPaused') and dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
            except libvirt.libvirtError:
                paused = False
            self._set(vm_id, status='Paused' if paused else 'Up', startTime=time.time())
            self._sample_cpu(vm_id, dom)
        elif event == libvirt.VIR_DOMAIN_EVENT_RESUMED:
            self._set(vm_id, status='Up')
        elif event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED:
            self._set(vm_id, status='Paused')
        elif event == libvirt.VIR_DOMAIN_EVENT_SHUTDOWN:
            self._set(vm_id, status='Powering down')
        elif event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
            if detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
                code, reason = 0, EXIT_USER_SHUTDOWN
                msg = 'User shut down from within the guest'
            elif detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED and (destroying or shutting):
                code, reason = 0, EXIT_ADMIN_SHUTDOWN
                msg = 'Admin shut down from the engine' if destroying else \
                    'Shut down by the host agent (the guest did not stop in time)'
            elif detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED:
                code, reason, msg = 1, EXIT_GENERIC_ERROR, 'the guest crashed'
            elif detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED:
                code, reason, msg = 1, EXIT_GENERIC_ERROR, 'the VM failed (qemu stopped)'
            else:
                code, reason, msg = 1, EXIT_GENERIC_ERROR, \
                    'the VM was stopped outside the host agent (libvirt detail %d)' % detail
            if rec.get('status') != 'Down':
                self._set(vm_id, status='Down', exitCode=code, exitReason=reason,
                          exitMessage=msg, exitLeaseHeld=False)
        elif event == libvirt.VIR_DOMAIN_EVENT_CRASHED:
            self._set(vm_id, status='Down', exitCode=1, exitReason=EXIT_GENERIC_ERROR,
                      exitMessage='the guest crashed')

    # ------------------------------------------------------------- create
    @staticmethod
    def _prepare_xml(vm_id, xml):
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as e:
            raise VdsmError('InvalidParameterException', 'vmParams["xml"] is not valid XML: %s' % e)
        if root.tag != 'domain':
            raise VdsmError('InvalidParameterException',
                            'vmParams["xml"] must be a libvirt <domain> definition')
        uuid_el = root.find('uuid')
        if uuid_el is None:
            uuid_el = ET.SubElement(root, 'uuid')
        if uuid_el.text and uuid_el.text.strip().lower() != vm_id.lower():
            raise VdsmError('InvalidParameterException', 'the domain XML has uuid %s but vmID is %s'
                            % (uuid_el.text.strip(), vm_id))
        uuid_el.text = vm_id
        # As VDSM does: consoles start locked (an expired random password), so that
        # a ticket can be set later (qemu enables VNC password auth only at start).
        for g in root.findall('./devices/graphics'):
            if g.get('type') in ('vnc', 'spice') and 'passwd' not in g.attrib:
                g.set('passwd', os.urandom(6).hex()[:8])
                g.set('passwdValidTo', '1970-01-01T00:00:01')
        # The directories of the unix sockets the VM's channels bind (VDSM's package ships
        # /var/lib/libvirt/qemu/channels; a fresh host may not have it).
        for src in root.findall("./devices/channel[@type='unix']/source[@path]"):
            try:
                os.makedirs(os.path.dirname(src.get('path')), mode=0o755, exist_ok=True)
            except OSError as e:
                raise VdsmError('InvalidParameterException',
                                'cannot create the directory of the channel socket %s: %s'
                                % (src.get('path'), e.strerror or e))
        name = root.findtext('name') or vm_id
        return ET.tostring(root, encoding='unicode'), name

    @verb('VM.create')
    def create(self, vmID, vmParams):
        xml = vmParams.get('xml') if isinstance(vmParams, dict) else None
        if not xml:
            raise VdsmError('InvalidParameterException',
                            'vmParams must carry the libvirt domain XML in "xml"')
        xml, name = self._prepare_xml(vmID, xml)
        # VDSM's launchPaused: the guest is created with its CPUs stopped (status Paused)
        paused = str(vmParams.get('launchPaused', '')).lower() in ('true', '1')
        with self._lock:
            if vmID in self.vms:
                raise VdsmError('exist',
                                'virtual machine %s already exists (status %s): destroy it '
                                'first' % (vmID, self.vms[vmID]['status']))
            if self._domain(vmID) is not None:
                raise VdsmError('exist', 'virtual machine %s is already running in libvirt' % vmID)
            rec = {'vmId': vmID, 'vmName': name, 'status': 'WaitForLaunch', 'exitCode': None,
                   'exitMessage': None, 'exitReason': None, 'exitLeaseHeld': False,
                   'createTime': time.time(), 'startTime': None, 'xml': xml,
                   'launchPaused': paused}
            self.vms[vmID] = rec
            self._save(vmID)
        self._start_sampler()
        threading.Thread(target=self._start, args=(vmID, xml, paused),
                         name='vm-start-%s' % vmID[:8], daemon=True).start()
        out = {k: v for k, v in vmParams.items() if k != 'xml'}
        out.update(vmId=vmID, vmName=name, status='WaitForLaunch', xml=xml)
        return out

    def _start(self, vm_id, xml, paused=False):
        try:
            self.conn().createXML(xml, libvirt.VIR_DOMAIN_START_PAUSED if paused else 0)
        except (libvirt.libvirtError, VdsmError) as e:
            message = e.get_error_message() if isinstance(e, libvirt.libvirtError) else e.message
            held = lease_refusal(message)
            owners = [] if held else self._lease_owners(xml)
            if owners:
                held = True
                text = ('Failed to acquire lock: the VM lease is held by another host (%s), the '
                        'VM may be running there (qemu: %s)' % (', '.join(owners), message))
            elif held:
                text = ('the VM lease is held by another host, the VM may be running there: %s'
                        % message)
            elif any(m in (message or '') for m in IMAGE_LOCK_MARKERS):
                held = True
                text = ('the VM disk is in use by another qemu: another host is starting or '
                        'running the VM (qemu: %s)' % message)
            else:
                text = 'the VM failed to start: %s' % message
            log.warning('VM %s: %s', vm_id, text)
            self._set(vm_id, status='Down', exitCode=1, exitReason=EXIT_LIBVIRT_START_FAILED,
                      exitMessage=text, exitLeaseHeld=held)
            return
        dom = self._domain(vm_id)
        state = dom.state()[0] if dom else None
        if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED):
            self._sample_cpu(vm_id, dom)
        if state == libvirt.VIR_DOMAIN_RUNNING:
            self._set(vm_id, status='Up', startTime=time.time())
        elif state == libvirt.VIR_DOMAIN_PAUSED:
            self._set(vm_id, status='Paused', startTime=time.time())
        log.info('VM %s started%s', vm_id, ' paused' if paused else '')

    @staticmethod
    def _lease_owners(xml):
        """Who holds the domain's leases, asked from sanlock: ['host id N (lease K)'].

        libvirt acquires the leases when the CPUs start, after qemu opened the
        disks: where hosts share a kernel, qemu's own image lock can refuse the
        start first. sanlock is asked so that the reason is reported as the lease.
        """
        from ..he_storage import sanlock_util
        out = []
        try:
            root = ET.fromstring(xml)
        except ET.ParseError:
            return out
        for lease in root.findall('./devices/lease'):
            target = lease.find('target')
            if target is None:
                continue
            try:
                owners = sanlock_util.read_resource_owners(
                    lease.findtext('lockspace'), lease.findtext('key'), target.get('path'),
                    int(target.get('offset') or 0))
            except (sanlock_util.SanlockException, OSError, ValueError):
                continue
            for o in owners:
                out.append('host id %s (lease %s)' % (o.get('host_id'), lease.findtext('key')))
        return out

    # ------------------------------------------------------------ stop
    @verb('VM.destroy')
    def destroy(self, vmID, gracefulAttempts=1):
        with self._lock:
            if vmID not in self.vms:
                raise VdsmError('noVM', 'virtual machine %s does not exist' % vmID)
            self._destroying.add(vmID)
        try:
            dom = self._domain(vmID)
            if dom is not None and dom.isActive():
                try:
                    dom.destroyFlags(libvirt.VIR_DOMAIN_DESTROY_GRACEFUL
                                     if gracefulAttempts else 0)
                except libvirt.libvirtError:
                    dom.destroy()
        except libvirt.libvirtError as e:
            raise VdsmError('general', 'cannot destroy VM %s: %s' % (vmID, e.get_error_message()))
        finally:
            with self._lock:
                self._destroying.discard(vmID)
        with self._lock:
            rec = self.vms.pop(vmID, None)
            self._shutdowns.pop(vmID, None)
            self._cpu_samples.pop(vmID, None)
            self._save(vmID)
        if rec and rec.get('status') != 'Down':
            rec.update(status='Down', exitCode=0, exitReason=EXIT_ADMIN_SHUTDOWN,
                       exitMessage='Admin shut down from the engine')
            self._emit(vmID, rec)
        return True

    @verb('VM.shutdown')
    def shutdown(self, vmID, delay=30, message='', reboot=False, timeout=None, force=False):
        with self._lock:
            rec = self.vms.get(vmID)
            if rec is None:
                raise VdsmError('noVM', 'virtual machine %s does not exist' % vmID)
            if rec['status'] == 'Down':
                raise VdsmError('general', 'virtual machine %s is down already' % vmID)
            token = object()
            self._shutdowns[vmID] = token
        delay = float(delay or 0)
        timeout = float(timeout) if timeout not in (None, '') else 60.0 + delay
        log.info('VM %s: %s in %.0f s%s', vmID, 'reboot' if reboot else 'shutdown', delay,
                 (': %s' % message) if message else '')
        if not reboot:
            self._set(vmID, status='Powering down')
        threading.Thread(target=self._shutdown, args=(vmID, token, delay, reboot, timeout, force),
                         name='vm-shutdown-%s' % vmID[:8], daemon=True).start()
        return True

    def _shutdown(self, vm_id, token, delay, reboot, timeout, force):
        time.sleep(delay)
        with self._lock:
            if self._shutdowns.get(vm_id) is not token:
                return
        dom = self._domain(vm_id)
        if dom is None:
            return
        try:
            if reboot:
                dom.reboot(libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)
                return
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        except libvirt.libvirtError as e:
            log.warning('VM %s: ACPI shutdown failed: %s', vm_id, e.get_error_message())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not dom.isActive():
                    return
            except libvirt.libvirtError:
                return
            time.sleep(0.5)
        with self._lock:
            still = self._shutdowns.get(vm_id) is token
        if still and force:
            log.warning('VM %s did not shut down within %.0f s: powering it off', vm_id, timeout)
            try:
                dom.destroy()
            except libvirt.libvirtError:
                pass
        elif still:
            log.warning('VM %s did not shut down within %.0f s', vm_id, timeout)
            self._set(vm_id, status='Up')

    # ------------------------------------------------------------ CPU samples
    def _start_sampler(self):
        with self._lock:
            if self._sampler is not None:
                return
            self._sampler = threading.Thread(target=self._sample_loop, name='vm-cpu-sampler',
                                             daemon=True)
        self._sampler.start()

    def _sample_loop(self):
        while not self._closing.wait(self.sample_interval):
            with self._lock:
                ids = [v for v, r in self.vms.items() if r.get('status') != 'Down']
                for v in list(self._cpu_samples):
                    if v not in ids:
                        del self._cpu_samples[v]
            for vm_id in ids:
                try:
                    self._sample_cpu(vm_id)
                except Exception:     # a VM going away between the list and the sample
                    log.debug('CPU sample of VM %s', vm_id, exc_info=True)

    def _sample_cpu(self, vm_id, dom=None):
        """Record the VM's CPU times now (libvirt's cpu_time, user_time, system_time)."""
        dom = dom or self._domain(vm_id)
        if dom is None:
            return
        try:
            if not dom.isActive():
                return
            total = dom.getCPUStats(True)[0]
        except libvirt.libvirtError:
            return
        sample = (time.monotonic(), int(total.get('cpu_time', 0)),
                  int(total.get('user_time', 0)), int(total.get('system_time', 0)))
        with self._lock:
            hist = self._cpu_samples.setdefault(vm_id, [])
            if hist and sample[0] - hist[-1][0] < self.sample_interval / 2:
                # a sample close after the last one (the VM's start, then the sampler's
                # tick) would make an interval too short to measure: the pair always spans
                # at least half the sampling interval
                if len(hist) == 2:
                    hist[-1] = sample
                return
            hist.append(sample)
            del hist[:-2]

    def _cpu_stats(self, vm_id):
        """cpuUser, cpuSys, cpuUsage as VDSM computes them from its last two samples:
        cpuSys the qemu process's own user+system time, cpuUser the rest of the CPU
        time, both in percent of one CPU over the interval ("%.2f"); cpuUsage the
        total CPU time in ns. "0.00" for all three until two samples exist."""
        with self._lock:
            hist = list(self._cpu_samples.get(vm_id, ()))
        if len(hist) < 2 or hist[1][0] <= hist[0][0]:
            return {'cpuUser': CPU_INIT, 'cpuSys': CPU_INIT, 'cpuUsage': CPU_INIT}
        (t0, cpu0, user0, sys0), (t1, cpu1, user1, sys1) = hist
        interval_ns = (t1 - t0) * 1e9
        total = max(0, cpu1 - cpu0)
        own = min(total, max(0, (user1 + sys1) - (user0 + sys0)))
        return {'cpuUser': '%.2f' % (100.0 * (total - own) / interval_ns),
                'cpuSys': '%.2f' % (100.0 * own / interval_ns),
                'cpuUsage': str(cpu1)}

    # ------------------------------------------------------------ stats
    def _display_info(self, dom):
        out = []
        try:
            root = ET.fromstring(dom.XMLDesc(0))
        except (libvirt.libvirtError, ET.ParseError):
            return out
        for g in root.findall('./devices/graphics'):
            listen = g.get('listen') or ''
            lst = g.find('listen')
            if lst is not None and lst.get('address'):
                listen = lst.get('address')
            out.append({'type': g.get('type'), 'port': g.get('port', '-1'),
                        'tlsPort': g.get('tlsPort', '-1'), 'ipAddress': listen})
        return out

    def _stats(self, vm_id):
        with self._lock:
            rec = self.vms.get(vm_id)
            if rec is None:
                raise VdsmError('noVM', 'virtual machine %s does not exist' % vm_id)
            rec = dict(rec)
        stats = {'vmId': vm_id, 'vmName': rec.get('vmName'), 'status': rec['status'],
                 'vmType': 'kvm', 'displayInfo': [], 'monitorResponse': '0'}
        if rec['status'] == 'Down':
            stats.update(exitCode=rec.get('exitCode'), exitMessage=rec.get('exitMessage'),
                         exitReason=rec.get('exitReason'),
                         exitLeaseHeld=bool(rec.get('exitLeaseHeld')))
            return stats
        dom = self._domain(vm_id)
        if dom is None:
            return stats
        try:
            state, reason = dom.state()
        except libvirt.libvirtError:
            return stats
        if state == libvirt.VIR_DOMAIN_PAUSED and reason == libvirt.VIR_DOMAIN_PAUSED_STARTING_UP \
                and not rec.get('launchPaused'):
            stats['status'] = 'Powering up'     # CPUs not started yet (the leases first)
        elif state == libvirt.VIR_DOMAIN_PAUSED:
            stats['status'] = 'Paused'
        elif state == libvirt.VIR_DOMAIN_SHUTDOWN:
            stats['status'] = 'Powering down'
        elif state == libvirt.VIR_DOMAIN_RUNNING and rec['status'] in ('WaitForLaunch',
                                                                       'Paused'):
            stats['status'] = 'Up'
        stats['displayInfo'] = self._display_info(dom)
        if rec.get('startTime'):
            stats['elapsedTime'] = str(int(time.time() - rec['startTime']))
        try:
            info = dom.info()
            stats['memUsage'] = str(info[2] // 1024)
        except libvirt.libvirtError:
            pass
        stats.update(self._cpu_stats(vm_id))
        return stats

    @verb('VM.getStats')
    def getStats(self, vmID):
        return [self._stats(vmID)]

    @verb('Host.getAllVmStats')
    def getAllVmStats(self):
        with self._lock:
            ids = list(self.vms)
        out = []
        for vm_id in ids:
            try:
                out.append(self._stats(vm_id))
            except VdsmError:
                pass
        return out

    @verb('Host.getVMList')
    def getVMList(self, fullStatus=False, vmList=(), onlyUUID=True):
        """As VDSM over JSON-RPC: the VM UUIDs, or with onlyUUID false (or fullStatus
        true) the VMs' status dicts (vmId, vmName, status, ... as VM.getStats)."""
        with self._lock:
            ids = [v for v in self.vms if not vmList or v in vmList]
        if onlyUUID and not fullStatus:
            return ids
        out = []
        for v in ids:
            try:
                out.append(self._stats(v))
            except VdsmError:    # destroyed meanwhile
                pass
        return out

    def host_stats(self):
        with self._lock:
            n = len([r for r in self.vms.values() if r['status'] != 'Down'])
        return {'vmCount': n}

    # ----------------------------------------------------------- tickets
    def _set_graphics_password(self, vm_id, password, ttl, existing, graphics_type=None):
        with self._lock:
            if vm_id not in self.vms:
                raise VdsmError('noVM', 'virtual machine %s does not exist' % vm_id)
        dom = self._domain(vm_id)
        if dom is None or not dom.isActive():
            raise VdsmError('ticketErr',
                            'virtual machine %s is not running: no console to set a ticket on'
                            % vm_id)
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))
        devices = [g for g in root.findall('./devices/graphics')
                   if not graphics_type or g.get('type') == graphics_type]
        if not devices:
            raise VdsmError('ticketErr', 'virtual machine %s has no %s graphics device'
                            % (vm_id, graphics_type or 'VNC/SPICE'))
        valid_to = (datetime.now(timezone.utc) + timedelta(seconds=int(ttl))).strftime(
            '%Y-%m-%dT%H:%M:%S')
        for g in devices:
            # VNC authentication uses the first 8 characters only; libvirt refuses longer ones.
            g.set('passwd', password[:8] if g.get('type') == 'vnc' else password)
            if int(ttl) > 0:
                g.set('passwdValidTo', valid_to)
            elif 'passwdValidTo' in g.attrib:
                del g.attrib['passwdValidTo']
            if g.get('type') == 'spice':
                g.set('connected', existing)   # as VDSM: spice only (libvirt's VNC keeps)
            try:
                dom.updateDeviceFlags(ET.tostring(g, encoding='unicode'),
                                      libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as e:
                # The error text of libvirt never contains the password.
                raise VdsmError('ticketErr', 'cannot set the console ticket of VM %s: %s'
                                % (vm_id, e.get_error_message()))
        log.info('VM %s: console ticket set, valid for %s s', vm_id, ttl)

    @verb('VM.setTicket')
    def setTicket(self, vmID, password, ttl, existingConnAction, params):
        gtype = params.get('graphicsType') or None
        self._set_graphics_password(vmID, password, ttl, existingConnAction,
                                    {'vnc': 'vnc', 'spice': 'spice'}.get(str(gtype).lower()))
        return True

    @verb('VM.updateDevice')
    def updateDevice(self, vmID, params):
        if (params or {}).get('deviceType') != 'graphics':
            raise VdsmError('InvalidParameterException',
                            'VM.updateDevice supports deviceType "graphics" only')
        gtype = params.get('graphicsType')
        existing = params.get('existingConnAction') or 'disconnect'
        if existing not in enum('ticketConflictAction'):
            raise VdsmError('InvalidParameterException',
                            'params.existingConnAction must be one of %s, got %r'
                            % (', '.join(enum('ticketConflictAction')), existing))
        self._set_graphics_password(vmID, params.get('password', ''), params.get('ttl', 0),
                                    existing,
                                    {'vnc': 'vnc', 'spice': 'spice'}.get(str(gtype).lower()))
        return {'vmList': self._stats(vmID)}

    # ----------------------------------------------------------- restart
    def recover(self):
        self._start_sampler()
        for name in os.listdir(self.state_dir):
            if not name.endswith('.json'):
                continue
            try:
                with open(os.path.join(self.state_dir, name)) as f:
                    rec = json.load(f)
                self.vms[rec['vmId']] = rec
            except (OSError, ValueError, KeyError):
                log.exception('unreadable VM record %s, ignored', name)
        try:
            running = {d.UUIDString(): d for d in self.conn().listAllDomains(
                libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
        except VdsmError as e:
            log.warning('recovering VMs: %s', e.message)
            return
        with self._lock:
            for vm_id, dom in running.items():
                rec = self.vms.get(vm_id)
                if rec is None:
                    rec = {'vmId': vm_id, 'vmName': dom.name(), 'exitCode': None,
                           'exitMessage': None, 'exitReason': None, 'exitLeaseHeld': False,
                           'createTime': time.time(), 'startTime': time.time(), 'xml': None}
                    self.vms[vm_id] = rec
                state = dom.state()[0]
                rec['status'] = {libvirt.VIR_DOMAIN_PAUSED: 'Paused',
                                 libvirt.VIR_DOMAIN_SHUTDOWN: 'Powering down'}.get(state, 'Up')
                rec['recovered'] = True
                self._save(vm_id)
            for vm_id, rec in self.vms.items():
                if vm_id not in running and rec['status'] != 'Down':
                    rec.update(status='Down', exitCode=1, exitReason=EXIT_GENERIC_ERROR,
                               exitMessage='the VM stopped while the host agent was not running')
                    self._save(vm_id)
        for vm_id, dom in running.items():
            self._sample_cpu(vm_id, dom)
        log.info('recovered %d VM(s), %d running', len(self.vms), len(running))

    def close(self):
        self._closing.set()
        with self._lock:
            c, self._conn = self._conn, None
            cb, self._callback_id = self._callback_id, None
        if c is not None:
            try:
                if cb is not None:
                    c.domainEventDeregisterAny(cb)
                c.close()
            except libvirt.libvirtError:
                pass
