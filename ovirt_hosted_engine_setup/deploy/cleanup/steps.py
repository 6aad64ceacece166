"""ovirt-hosted-engine-cleanup: undo a hosted-engine deploy on this host so that it can be
deployed again.

    ovirt-hosted-engine-cleanup [-q] [--remove-storage [--fenced-host=ID[,ID...]]]

Works from whatever a deploy (finished, failed or interrupted) left behind:
/etc/ovirt-hosted-engine/hosted-engine.conf when it exists, the latest answer file, and
what the host agent reports (its VMs, the storage domains it sees and monitors). The only
storage domain it ever touches is this host's own: the sdUUID of hosted-engine.conf, or,
without it (a failed deploy), the domain on the answer file's storage connection that holds
the metadata and lockspace images that deploy recorded. Never a domain found by its name:
every host of a hosted-engine cluster sees one of the same name. Steps, each reported in
one line and each a no-op when its object is already gone:

1. stop the HA services (ovirt-ha-agent, then ovirt-ha-broker); each is said stopped only
   when it was running;
2. destroy the engine VM (VM.destroy of the conf's vmid and of any VM named HostedEngine);
3. tear the domain's images down (Image.teardown: the host agent's run links), stop
   monitoring the hosted-engine storage domain (Host.stopMonitoringDomain; a storage
   pool left connected by an interrupted deploy is disconnected) and leave the
   ``hosted-engine`` sanlock lockspace of this host;
   then, without --remove-storage on a host that is one of several hosts of the domain
   (another host has a metadata slot or holds a lease in the domain's lockspaces): free this
   host's HA metadata slot (zeroed, as oVirt's --clean-metadata does), leaving the domain,
   the other slots and the other hosts' leases untouched (Metadata slot);
4. with --remove-storage: delete the hosted-engine storage domain (StorageDomain.format).
   Before anything is changed, refused while another host is alive in the domain
   (ha/peers.py: its sanlock host id renewed, or its HA metadata slot written), naming
   those hosts; --fenced-host=ID overrides this for hosts that were fenced;
5. disconnect the storage server (StoragePool.disconnectStorageServer);
   then, only when the deploy opened the firewall (its record in
   /var/lib/ovirt-hosted-engine-setup/firewall.json, or the nftables table
   inet ovirt_hosted_engine on this host): remove those rules and the record;
   then, only when the deploy made the management bridge (its record of the NIC in
   /var/lib/ovirt-hosted-engine-setup/network-before-bridge.json): remove the bridge
   (Host.setupNetworks, Host.setSafeNetworkConfig) and check that the NIC has its recorded
   addresses, default route and MTU back (the record is removed only then);
6. remove the generated configuration: hosted-engine.conf, vm.conf, answers.conf,
   broker.conf, the HA services' runtime vm.conf and state, the engine CA the host agent
   trusts, the deploy's cloud-init seed ISO. Each removed file is listed.

When the host agent does not answer, steps 2 to 5 are skipped (said in one line each) and
the files are still removed. Exit status 0 when every step succeeded, 1 otherwise (after
trying every step) or when the user did not confirm. Tracebacks go to the log file under
/var/log/ovirt-hosted-engine-setup/.
"""
import logging
import os
import shutil
import sys

from ... import paths
from ...api.errors import NO_SUCH_VM
from ...ha import cli_common, peers
from ...he_storage import layout
from .. import firewall
from . import PROG, StepFailed, StepSkipped, reason
from .leftovers import Leftovers, STORAGE_DOMAIN_DOES_NOT_EXIST, VM_NAME
from .lockspace import LOCKSPACE, leave_lockspace
from .processes import stop_ha_daemons

log = logging.getLogger('ovirt_hosted_engine_setup.deploy.cleanup')


class Cleanup(Leftovers):
    """The command: confirmation, the steps in order, their one-line reports."""

    def __init__(self, quiet=False, remove_storage=False, out=sys.stdout, err=sys.stderr,
                 stdin=sys.stdin, fenced=()):
        super().__init__()
        self.quiet = quiet
        self.remove_storage = remove_storage
        self.fenced = set(fenced)     # host ids declared fenced (--fenced-host)
        self.out = out
        self.err = err
        self.stdin = stdin
        self.failed = []
        self.skipped = []
        self.steps = []
        self.log_path = None
        self.undeploy = None        # plan_undeploy(): this host leaves a domain others use

    # -- output ------------------------------------------------------------------
    def say(self, text, stream=None):
        stream = stream or self.out
        stream.write(text + '\n')
        stream.flush()

    def info(self, text):
        log.info('%s', text)
        self.say('[ INFO  ] ' + text)

    def warn(self, text):
        log.warning('%s', text)
        self.say('[ WARN  ] ' + text)

    def error(self, text):
        log.error('%s', text)
        self.say('[ ERROR ] ' + text, self.err)

    def check_peers(self):
        """Which other hosts are alive in the domains to delete (before anything changes)."""
        own = {int(self.conf['host_id'])} if str(self.conf.get('host_id', '')).isdigit() \
            else set()
        owner = peers.local_sanlock_name()
        for d in self.domains:
            verdict = peers.find_alive(d.conf, cli_common.DATA_CENTER_DIR, exclude=own,
                                       own_owner=owner, progress=self.info)
            d.alive = verdict.alive
            d.unknown = [] if verdict.read_any else verdict.unknown or [
                'its lockspaces cannot be found under %s' % cli_common.DATA_CENTER_DIR]
            log.info('storage domain %s: alive %s, unknown %s', d.sd_uuid,
                     [(h.host_id, h.hostname, h.evidence) for h in d.alive], verdict.unknown)

    def plan_undeploy(self):
        """Without --remove-storage: whether this host is one of several hosts of its
        storage domain (another host has a metadata slot, or holds a lease in the domain's
        lockspaces: read from the storage, nothing watched). Then its metadata slot is freed
        (Undeploy); on the last host (or a host without a host id) nothing more is done."""
        self.undeploy = None
        host_id = str(self.conf.get('host_id', '')).strip()
        if not host_id.isdigit() or not self.domains:
            return
        d = self.domains[0]
        if 'metadata' not in peers.domain_paths(d.conf, cli_common.DATA_CENTER_DIR):
            return
        owner = peers.local_sanlock_name()
        ids = peers.host_ids(d.conf, cli_common.DATA_CENTER_DIR, watch=False)
        log.info('host ids of storage domain %s: %s; unread: %s', d.sd_uuid,
                 [(u.host_id, u.hostname, u.sanlock_names, u.held_by)
                  for u in ids.uses.values()], ids.unread)
        if 'metadata' in ids.unread:
            self.undeploy = Undeploy(d, int(host_id), [], owner, ids.unread['metadata'])
            return
        others = ids.others(int(host_id), owner)
        if others:
            self.undeploy = Undeploy(d, int(host_id), others, owner)

    def refusal(self):
        """One line when --remove-storage must not run (other hosts alive), else None."""
        for d in self.domains:
            if d.unknown:
                return ('Refusing to delete storage domain %s: cannot tell whether other hosts '
                        'use it (%s); connect its storage (hosted-engine --connect-storage) and '
                        'run %s --remove-storage again; nothing was changed'
                        % (d.where(), '; '.join(d.unknown), PROG))
            live = [h for h in d.alive if h.host_id not in self.fenced]
            if live:
                one = len(live) == 1
                return ('Refusing to delete storage domain %s: %s %s alive in it (%s); '
                        'nothing was changed. Run %s without --remove-storage to clean up '
                        'this host only; if %s really gone, fence %s (power off) and run '
                        'again with --fenced-host=%s' % (
                            d.where(), peers.describe(live), 'is' if one else 'are',
                            '; '.join('%s: %s' % (h, ', '.join(h.evidence)) for h in live),
                            PROG, 'it is' if one else 'they are', 'it' if one else 'them',
                            ','.join(str(h.host_id) for h in live)))
        return None

    # -- confirmation ------------------------------------------------------------
    def describe(self):
        lines = ['This will remove the hosted-engine configuration of this host, so that '
                 'hosted-engine --deploy can run again:',
                 '  - the HA services ovirt-ha-agent and ovirt-ha-broker are stopped']
        if self.client is None:
            lines.append('  - (%s: the engine VM, the storage monitoring and the storage '
                         'connection are left as they are)' % self.agent_problem)
        else:
            for vm_id, name, status in self.vms:
                lines.append('  - the engine VM %s (%s, %s) is powered off and removed from '
                             'this host' % (name, vm_id, status))
            if not self.vms:
                lines.append('  - no engine VM runs on this host')
            for d in self.domains:
                lines.append('  - storage domain %s is no longer monitored and its storage '
                             'disconnected' % d.where())
        lines.append('  - this host leaves the %s sanlock lockspace' % LOCKSPACE)
        u = self.undeploy
        if u is not None and not u.problem:
            lines.append('  - its metadata slot (host id %d) is freed; storage domain %s stays '
                         'with the other hosts (%s), their slots and leases untouched'
                         % (u.host_id, u.domain.sd_uuid, peers.describe(u.others)))
        elif u is not None:
            lines.append('  - (the metadata of storage domain %s cannot be read: the metadata '
                         'slot of host id %d is left as it is)' % (u.domain.sd_uuid, u.host_id))
        if self.firewall_pending:
            lines.append('  - the firewall rules the deploy added are removed (nftables table '
                         '%s or firewalld service %s)' % (firewall.TABLE, firewall.SERVICE))
        if self.network_record:
            rec = self.network_record
            lines.append('  - the bridge %s is removed and %s gets back what it had before the '
                         'deploy (%s)' % (rec.get('bridge'), rec.get('nic'), ', '.join(
                             (rec.get('nic_before') or {}).get('ipv4addrs') or [])
                             or 'no IPv4 address'))
        files = self.files_to_remove()
        if files:
            lines.append('  - these files are removed:')
            lines += ['      %s' % p for p in files]
        if self.remove_storage:
            if self.domains:
                for d in self.domains:
                    for h in d.alive:
                        lines.append('  - %s IS ALIVE in storage domain %s (%s)%s' % (
                            h, d.sd_uuid, ', '.join(h.evidence),
                            ': declared fenced (--fenced-host=%d)' % h.host_id
                            if h.host_id in self.fenced else
                            ': the storage domain is not deleted'))
                    lines.append('  - THE STORAGE DOMAIN %s IS DELETED with the engine VM '
                                 'disk: the engine and its data are lost' % d.where())
            else:
                lines.append('  - (--remove-storage: no hosted-engine storage domain found)')
        return lines

    def ask(self, question):
        """True on yes; False on no or end of input."""
        while True:
            self.out.write('%s [y/N] ' % question)
            self.out.flush()
            line = self.stdin.readline() if self.stdin else ''
            if not line or not _isatty(self.stdin):
                self.out.write('%s\n' % line.strip())     # the answer, as a terminal shows it
            if not line:
                return False
            answer = line.strip().lower()
            if answer in ('y', 'yes'):
                return True
            if answer in ('', 'n', 'no'):
                return False
            self.say('Please answer y or n.')

    def confirm(self):
        if self.quiet:
            return True
        for line in self.describe():
            self.say(line)
        if not self.ask('Are you sure you want to continue?'):
            return False
        if self.remove_storage and self.domains:
            return self.ask('Delete the hosted-engine storage domain %s? This cannot be undone.'
                            % ', '.join(d.where() for d in self.domains))
        return True

    # -- steps -------------------------------------------------------------------
    def step(self, title, fn):
        n = len(self.steps) + 1
        self.steps.append(title)
        label = '%d/%d %s' % (n, self.total, title)
        try:
            text = fn()
        except StepSkipped as e:
            self.skipped.append(title)
            self.warn('%s: skipped: %s' % (label, e))
        except StepFailed as e:
            self.failed.append(title)
            self.error('%s: %s' % (label, e))
        except Exception as e:
            log.exception('%s failed', title)
            self.failed.append(title)
            self.error('%s: %s: %s (details in %s)' % (label, type(e).__name__, e,
                                                       self.log_path or 'the log'))
        else:
            lines = text if isinstance(text, list) else [text]
            self.info('%s: %s' % (label, lines[0]))
            for line in lines[1:]:
                self.say('            %s' % line)

    def need_agent(self):
        if self.client is None:
            raise StepSkipped('%s: start it and run %s again' % (self.agent_problem, PROG))

    def stop_ha(self):
        """Stop the HA daemons; each is said stopped only when it was running."""
        return stop_ha_daemons()

    def destroy_vm(self):
        self.need_agent()
        if not self.vms:
            return 'no engine VM on this host'
        done = []
        for vm_id, name, status in self.vms:
            try:
                self.call('VM.destroy', vmID=vm_id)
            except Exception as e:
                if getattr(e, 'code', None) == NO_SUCH_VM:
                    continue
                raise StepFailed('powering off the engine VM %s (%s) failed: %s; power it off '
                                 'with hosted-engine --vm-poweroff or virsh destroy %s, then '
                                 'run %s again' % (name, vm_id, reason(e), name, PROG))
            done.append('%s (%s, was %s)' % (name, vm_id, status))
        left = [v for v in (self.call('Host.getAllVmStats') or [])
                if v.get('vmId') in [x[0] for x in self.vms] and v.get('status') != 'Down']
        if left:
            raise StepFailed('the engine VM %s is still %s: power it off (virsh destroy %s) '
                             'and run %s again' % (left[0]['vmId'], left[0].get('status'),
                                                   VM_NAME, PROG))
        if not done:
            return 'no engine VM on this host'
        return 'powered off and removed from this host: %s' % ', '.join(done)

    def release(self):
        parts = []
        problems = []
        if self.client is None:
            parts.append('storage domain monitoring left as it is')
        else:
            for d in self.domains:
                teardown = self._teardown_images(d, problems)
                if teardown:
                    parts.append(teardown)
                for sp in d.pools:
                    parts.append(self._disconnect_pool(d, sp, problems))
                if d.monitored:
                    try:
                        self.call('Host.stopMonitoringDomain', sdUUID=d.sd_uuid)
                        parts.append('storage domain %s no longer monitored' % d.sd_uuid)
                    except Exception as e:
                        problems.append('stopping the monitoring of storage domain %s failed '
                                        '(%s)' % (d.sd_uuid, reason(e)))
                else:
                    parts.append('storage domain %s not monitored' % d.sd_uuid)
            if not self.domains:
                parts.append('no hosted-engine storage domain monitored')
        res = leave_lockspace()
        if res.get('no_daemon'):
            log.info('sanlock: %s', res['no_daemon'])
            parts.append('not in the %s lockspace (the sanlock daemon is not running)'
                         % LOCKSPACE)
        else:
            for ls in res.get('left', []):
                parts.append('left the %s lockspace (host id %s)' % (LOCKSPACE, ls['host_id']))
            if not res.get('left') and not res.get('busy') and not res.get('errors'):
                parts.append('not in the %s lockspace' % LOCKSPACE)
            for ls in res.get('busy', []):
                problems.append('the %s lockspace (host id %s on %s) is busy: a process still '
                                'holds a lease in it (is an HA broker still running?)'
                                % (LOCKSPACE, ls['host_id'], ls['path']))
            for text in res.get('errors', []):
                problems.append('leaving the %s lockspace failed: %s' % (LOCKSPACE, text))
        if problems:
            raise StepFailed('%s; fix it and run %s again' % ('; '.join(problems), PROG))
        if self.client is None:
            raise StepSkipped('%s; %s: start it and run %s again'
                              % ('; '.join(parts), self.agent_problem, PROG))
        return '; '.join(parts)

    def _teardown_images(self, d, problems):
        """Image.teardown of every image of the domain: the host agent removes the links
        Image.prepare made under its run directory (VDSM: /run/vdsm/storage/<sd>/<img>)."""
        try:
            images = self.call('StorageDomain.getImages', storagedomainID=d.sd_uuid) or []
        except Exception as e:
            if getattr(e, 'code', None) != STORAGE_DOMAIN_DOES_NOT_EXIST:
                problems.append('listing the images of storage domain %s failed (%s)'
                                % (d.sd_uuid, reason(e)))
            return None
        done = 0
        for img in images:
            try:
                self.call('Image.teardown', storagepoolID=d.sp_uuid, storagedomainID=d.sd_uuid,
                          imageID=img)
                done += 1
            except Exception as e:
                problems.append('tearing down image %s of storage domain %s failed (%s)'
                                % (img, d.sd_uuid, reason(e)))
        return '%d image%s of storage domain %s torn down' % (
            done, '' if done == 1 else 's', d.sd_uuid) if done else None

    def _disconnect_pool(self, d, sp, problems):
        """Leave a storage pool an interrupted deploy left connected (master: d)."""
        host_id = int(self.conf.get('host_id') or 1)
        try:
            try:
                if self.call('StoragePool.getSpmStatus', storagepoolID=sp).get(
                        'spmStatus') == 'SPM':
                    self.call('StoragePool.spmStop', storagepoolID=sp)
            except Exception as e:
                log.info('SPM status of %s: %s', sp, e)
            self.call('StoragePool.disconnect', storagepoolID=sp, hostID=host_id, scsiKey=sp)
            return 'storage pool %s disconnected' % sp
        except Exception as e:
            problems.append('disconnecting storage pool %s failed (%s)' % (sp, reason(e)))
            return 'storage pool %s left connected' % sp

    def free_metadata_slot(self, ha_stopped):
        """This host leaves a domain other hosts use: its metadata slot is freed (zeroed, as
        oVirt's --clean-metadata does), so that --vm-status on the others no longer lists
        it; the domain, the other slots and the lockspaces stay."""
        u = self.undeploy
        elsewhere = ('free it from another host of the domain: hosted-engine --clean-metadata '
                     '--host-id=%d' % u.host_id)
        if u.problem:
            raise StepSkipped('cannot read the HA metadata of storage domain %s (%s); if '
                              'other hosts use it, %s' % (u.domain.sd_uuid, u.problem,
                                                         elsewhere))
        if not ha_stopped:
            raise StepSkipped('ovirt-ha-agent may still write the metadata slot of host id %d; '
                              '%s once it is stopped' % (u.host_id, elsewhere))
        try:
            was = peers.free_slot(u.domain.conf, cli_common.DATA_CENTER_DIR, u.host_id,
                                  own_owner=u.own_owner, progress=self.info)
        except peers.PeerError as e:
            raise StepFailed('%s; %s' % (e, elsewhere))
        stays = 'the storage domain stays with the other hosts: %s' % peers.describe(u.others)
        if was is None:
            return 'host id %d had no metadata slot; %s' % (u.host_id, stays)
        log.info('metadata slot of host %d freed (it held %s)', u.host_id, was)
        return 'host id %d freed; %s' % (u.host_id, stays)

    def delete_domain(self):
        self.need_agent()
        if not self.domains:
            return 'no hosted-engine storage domain found: nothing to delete'
        done = []
        for d in self.domains:
            info = self._domain_info(d.sd_uuid)
            if info is None:
                done.append('%s already gone' % d.where())
                continue
            if info.get('name') != self.sd_name:
                raise StepFailed('storage domain %s is named %r, not %r: it is not the '
                                 'hosted-engine domain, it is left as it is; remove it by hand '
                                 'if it must go' % (d.where(), info.get('name'), self.sd_name))
            try:
                self.call('StorageDomain.format', storagedomainID=d.sd_uuid, autoDetach=True)
            except Exception as e:
                raise StepFailed('deleting storage domain %s failed: %s; stop what uses it and '
                                 'run %s --remove-storage again' % (d.where(), reason(e), PROG))
            done.append('%s deleted' % d.where())
        return '; '.join(done)

    def disconnect(self):
        self.need_agent()
        if not self.domains:
            return 'no hosted-engine storage connection known: nothing to disconnect'
        done = []
        dc_dir = cli_common.DATA_CENTER_DIR
        for d in self.domains:
            if not d.storage or not d.domain_type:
                raise StepFailed('the storage of domain %s is unknown (no storage/domainType in '
                                 '%s): disconnect it by hand' % (d.sd_uuid,
                                                                 paths.HOSTED_ENGINE_CONF))
            try:
                type_id = layout.DOMAIN_TYPES[d.domain_type]
            except KeyError:
                raise StepFailed('domainType %r of %s is not one of %s: disconnect the storage '
                                 'by hand' % (d.domain_type, paths.HOSTED_ENGINE_CONF,
                                              ', '.join(sorted(layout.DOMAIN_TYPES))))
            mnt = layout.mount_point(d.storage, dc_dir, d.domain_type)
            was = os.path.lexists(mnt)
            params = layout.connection_params(
                {'storage': d.storage, 'domainType': d.domain_type,
                 'mnt_options': d.mnt_options}, d.connection_uuid)
            try:
                res = self.call('StoragePool.disconnectStorageServer', storagepoolID=d.sp_uuid,
                                domainType=type_id, connectionParams=[params])
            except Exception as e:
                raise StepFailed('disconnecting the storage %s failed: %s; stop what uses it '
                                 'and run %s again' % (d.storage, reason(e), PROG))
            status = (res or [{}])[0]
            if status.get('status') not in (0, None):
                raise StepFailed('disconnecting the storage %s failed (code %s: %s): stop what '
                                 'uses it (mount point %s) and run %s again' % (
                                     d.storage, status.get('status'), status.get('message', ''),
                                     mnt, PROG))
            done.append('%s %s' % (d.storage, 'disconnected' if was else
                                   'was not connected'))
        return '; '.join(done)

    def remove_firewall(self):
        try:
            return firewall.undo_recorded(paths.FIREWALL_RECORD)
        except firewall.FirewallError as e:
            raise StepFailed('%s; then run %s again' % (e, PROG))

    def restore_network(self):
        """Remove the management bridge the deploy created (Host.setupNetworks with the
        network removed, then Host.setSafeNetworkConfig) and check that the NIC has what the
        deploy recorded before the bridge (paths.NETWORK_RECORD) back; the record is removed
        only then."""
        rec = self.network_record
        bridge, nic = rec.get('bridge') or 'ovirtmgmt', rec.get('nic')
        before = rec.get('nic_before') or {}
        self.need_agent()
        caps = self.call('Host.getCapabilities') or {}
        parts = []
        if bridge in (caps.get('bridges') or {}) or bridge in (caps.get('networks') or {}):
            try:
                self.call('Host.setupNetworks', networks={bridge: {'remove': True}},
                          bondings={}, options={'connectivityCheck': False})
                self.call('Host.setSafeNetworkConfig')
            except Exception as e:
                raise StepFailed('removing the bridge %s failed: %s; remove it by hand (ip link '
                                 'del %s) and run %s again' % (bridge, reason(e), bridge, PROG))
            parts.append('bridge %s removed' % bridge)
            caps = self.call('Host.getCapabilities') or {}
        else:
            parts.append('bridge %s was not there' % bridge)
        now = (caps.get('nics') or {}).get(nic)
        if not nic or now is None:
            raise StepFailed('the NIC %s recorded in %s is not on this host: configure the '
                             'network by hand, then remove %s' % (nic, paths.NETWORK_RECORD,
                                                                  paths.NETWORK_RECORD))
        missing, fixes = [], []
        have = set(now.get('ipv4addrs') or [])
        for a in before.get('ipv4addrs') or []:
            if a not in have:
                missing.append('address %s' % a)
                fixes.append('ip addr add %s dev %s' % (a, nic))
        gw = before.get('gateway')
        if gw and now.get('gateway') != gw:
            missing.append('default route via %s' % gw)
            fixes.append('ip route replace default via %s dev %s' % (gw, nic))
        if before.get('mtu') and str(now.get('mtu')) != str(before.get('mtu')):
            missing.append('MTU %s (now %s)' % (before['mtu'], now.get('mtu')))
            fixes.append('ip link set dev %s mtu %s' % (nic, before['mtu']))
        if missing:
            dhcp = ' (it used DHCP: restart its DHCP client)' if before.get('dhcpv4') else ''
            raise StepFailed('%s; but %s lacks what it had before the deploy: %s%s; put it back '
                             '(%s), then run %s again' % (
                                 '; '.join(parts), nic, ', '.join(missing), dhcp,
                                 '; '.join(fixes), PROG))
        try:
            os.unlink(paths.NETWORK_RECORD)
        except FileNotFoundError:
            pass
        addrs = ', '.join(before.get('ipv4addrs') or []) or 'no IPv4 address'
        parts.append('%s has its configuration back (%s%s, MTU %s)' % (
            nic, addrs, ', default route via %s' % gw if gw else '', now.get('mtu')))
        return '; '.join(parts)

    def remove_files(self, ha_stopped):
        files = self.files_to_remove()
        socket = os.path.join(paths.HA_RUN_DIR, 'broker.socket')
        if ha_stopped and os.path.lexists(socket):
            files.append(socket)        # left by a broker that was killed
        removed, problems = [], []
        for p in files:
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
                removed.append(p)
            except FileNotFoundError:
                pass
            except OSError as e:
                problems.append('%s (%s)' % (p, e.strerror or e))
        for p in removed:
            log.info('removed %s', p)
        if problems:
            for p in removed:
                self.say('            - %s' % p)
            raise StepFailed('cannot remove %s: remove by hand' % ', '.join(problems))
        if not removed:
            return 'nothing to remove'
        return ['%d removed' % len(removed)] + ['- %s' % p for p in removed]

    # -- the whole ---------------------------------------------------------------
    def run(self):
        self.discover()
        if not self.remove_storage:
            self.plan_undeploy()
        if self.remove_storage and self.domains and self.client is not None:
            self.check_peers()
        refusal = self.refusal() if self.remove_storage else None
        if refusal:
            if not self.quiet:
                for line in self.describe():
                    self.say(line)
            self.error(refusal)
            return 1
        for d in self.domains if self.remove_storage else []:
            for h in d.alive:
                self.warn('%s looks alive in storage domain %s (%s), declared fenced with '
                          '--fenced-host=%d: the domain is deleted anyway'
                          % (h, d.sd_uuid, ', '.join(h.evidence), h.host_id))
        if not self.confirm():
            self.error('Aborted: nothing was changed (run %s -q to clean up without questions)'
                       % PROG)
            return 1
        self.total = (6 if self.remove_storage else 5) + (1 if self.firewall_pending else 0) \
            + (1 if self.network_record else 0) + (1 if self.undeploy else 0)
        self.step('HA services', self.stop_ha)
        ha_stopped = 'HA services' not in self.failed
        self.step('Engine VM', self.destroy_vm)
        self.step('Sanlock and storage monitoring', self.release)
        if self.undeploy:
            self.step('Metadata slot', lambda: self.free_metadata_slot(ha_stopped))
        if self.remove_storage:
            if 'Engine VM' in self.failed + self.skipped or \
                    'Sanlock and storage monitoring' in self.failed:
                self.steps.append('Storage domain')
                self.skipped.append('Storage domain')
                self.warn('%d/%d Storage domain: skipped: the engine VM or the storage '
                          'monitoring could not be stopped; run %s --remove-storage again '
                          'once the steps above succeed' % (len(self.steps), self.total, PROG))
            else:
                self.step('Storage domain', self.delete_domain)
        self.step('Storage connection', self.disconnect)
        if self.firewall_pending:
            self.step('Firewall', self.remove_firewall)
        if self.network_record:
            self.step('Management network', self.restore_network)
        self.step('Configuration files', lambda: self.remove_files(ha_stopped))
        self.close_agent()
        if self.failed or self.skipped:
            parts = []
            if self.failed:
                parts.append('failed: %s' % ', '.join(self.failed))
            if self.skipped:
                parts.append('skipped: %s' % ', '.join(dict.fromkeys(self.skipped)))
            self.error('Hosted engine cleanup incomplete (%s): fix the causes above and run %s '
                       'again; log: %s' % ('; '.join(parts), PROG, self.log_path))
            return 1
        self.info('Hosted engine cleanup finished: this host can be deployed again '
                  '(hosted-engine --deploy); log: %s' % self.log_path)
        return 0


class Undeploy:
    """This host leaves storage domain ``domain`` that other hosts use (plan_undeploy()).

    host_id: this host's; others: [peers.HostIdUse] of the other hosts; own_owner: this
    host's sanlock name (None when its daemon does not answer); problem: why the metadata
    cannot be read ('' when it can)."""

    def __init__(self, domain, host_id, others, own_owner, problem=''):
        self.domain = domain
        self.host_id = host_id
        self.others = others
        self.own_owner = own_owner
        self.problem = problem


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
