"""What a deploy (finished, failed or interrupted) left on this host.

From the files: /etc/ovirt-hosted-engine/hosted-engine.conf, vm.conf, the latest answer
file, the deploy's records of the firewall and of the management NIC, its cloud-init seed
ISOs. From the host agent: the engine VMs it runs, the storage domains it sees and
monitors, the pools connected. Never a domain found by its name: every host of a
hosted-engine cluster sees one of the same name.
"""
import glob
import json
import logging
import os

from ... import paths
from ...api.client import Client
from ...api.errors import ConnectionFailed
from ...api.schema import enum, error_code
from ...ha import cli_common
from ...he_storage import layout
from ...he_storage.heconf import parse_kv
from ...runner.config import read_bounded
from ...runner.errors import ConfigError
from .. import firewall, host_agent
from . import reason

log = logging.getLogger('ovirt_hosted_engine_setup.deploy.cleanup')


VM_NAME = 'HostedEngine'
STORAGE_DOMAIN_DOES_NOT_EXIST = error_code('StorageDomainDoesNotExist')
# storage domain TYPE of the domain metadata (the name, or the API schema's number of a file
# domain type) -> the domainType name of hosted-engine.conf
MD_TYPES = {key: name.lower() for name in ('NFS', 'LOCALFS', 'POSIXFS', 'GLUSTERFS')
            for key in (name, str(enum('domainType')[name]))}
SEED_VOLUME_ID = b'cidata'


def read_network_record():
    """The deploy's record of the management NIC before its bridge (network/bridge.py), or
    None when the deploy made no bridge (or the record is unreadable: logged)."""
    try:
        with open(paths.NETWORK_RECORD, encoding='utf-8') as f:
            rec = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning('cannot read %s (%s): the network is left as it is', paths.NETWORK_RECORD, e)
        return None
    return rec if isinstance(rec, dict) and rec.get('nic') else None


def read_kv(path):
    """key=value lines of a file, leniently ({} when missing or unreadable)."""
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return parse_kv(f.read())
    except OSError:
        return {}


def latest_answers():
    """The values of the newest answer file a deploy wrote ({} when none), types stripped."""
    files = sorted(glob.glob(os.path.join(paths.ANSWERS_DIR, 'answers-*.conf')))
    if os.path.isfile(paths.ETC_ANSWER_FILE):
        files.append(paths.ETC_ANSWER_FILE)
    if not files:
        return {}
    newest = max(files, key=lambda p: os.stat(p).st_mtime)
    try:
        text = read_bounded(newest)     # a regular file of at most 1 MiB, as for the deploy
    except ConfigError as e:
        log.warning('%s: the deploy\'s answers are not used', e)
        return {}
    out = {}
    for key, value in parse_kv(text).items():
        kind, sep, rest = value.partition(':')
        out[key] = rest if sep and kind in ('str', 'int', 'bool', 'none', 'multi-str') else value
    return out


def is_seed_iso(path):
    """True when path is an ISO 9660 image with volume id cidata (a cloud-init seed)."""
    try:
        with open(path, 'rb') as f:
            f.seek(16 * 2048)
            pvd = f.read(72)
    except OSError:
        return False
    return pvd[1:6] == b'CD001' and pvd[40:72].rstrip(b' \0') == SEED_VOLUME_ID


def seed_isos():
    """The deploy's cloud-init seed ISOs under the setup state directory."""
    out = []
    for root, dirs, files in os.walk(paths.SETUP_STATE_DIR):
        dirs[:] = [d for d in dirs if os.path.join(root, d) != paths.ANSWERS_DIR]
        for name in files:
            p = os.path.join(root, name)
            if os.path.isfile(p) and not os.path.islink(p) and is_seed_iso(p):
                out.append(p)
    return sorted(out)


class Domain:
    """A hosted-engine storage domain this host uses."""

    def __init__(self, sd_uuid, storage=None, domain_type=None, connection_uuid=None,
                 sp_uuid=None, mnt_options='', name=None, conf=None):
        self.sd_uuid = sd_uuid
        # hosted-engine.conf's keys of the domain (its volumes), for the liveness check
        self.conf = dict(conf or {}, sdUUID=sd_uuid, storage=storage or '',
                         domainType=domain_type or '')
        self.alive = []               # peers.LiveHost: other hosts alive in it
        self.unknown = []             # why that could not be judged
        self.storage = storage
        self.domain_type = domain_type
        self.connection_uuid = connection_uuid or layout.BLANK_UUID
        self.sp_uuid = sp_uuid or layout.BLANK_UUID
        self.mnt_options = mnt_options or ''
        self.name = name              # its description, when the host agent told it
        self.monitored = False
        self.pools = []

    def where(self):
        return '%s on %s' % (self.sd_uuid, self.storage or 'an unknown storage')


class Leftovers:
    """What a deploy left on this host, as the files and the host agent tell it
    (discover()); the host agent connection the steps use (call())."""

    firewall_pending = False    # discover(): the deploy's firewall rules are to be removed
    network_record = None       # discover(): the NIC before the deploy's bridge (a dict)

    def __init__(self):
        self.sd_name = None           # the storage domain name the deploy used
        self.conf = {}
        self.answers = {}
        self.client = None
        self.agent_problem = None
        self.vm_ids = []            # engine VM ids known from the files
        self.vms = []               # (vmId, vmName, status) of the engine VMs on this host
        self.domains = []

    # -- discovery ---------------------------------------------------------------
    def discover(self):
        self.conf = read_kv(paths.HOSTED_ENGINE_CONF)
        self.answers = latest_answers()
        ids = [self.conf.get('vmid'), read_kv(paths.VM_CONF).get('vmId'),
               self.answers.get('OVEHOSTED_VM/vmUUID')]
        if self.conf.get('conf') and os.path.basename(self.conf['conf']) == 'vm.conf':
            ids.append(read_kv(self.conf['conf']).get('vmId'))
        self.vm_ids = list(dict.fromkeys(i for i in ids if i))
        self.sd_name = (self.answers.get('OVEHOSTED_STORAGE/storageDomainName')
                        or layout.DEFAULT_SD_NAME)
        if self.conf.get('sdUUID'):
            self.domains = [Domain(self.conf['sdUUID'], self.conf.get('storage'),
                                   self.conf.get('domainType'), self.conf.get('connectionUUID'),
                                   self.conf.get('spUUID'), self.conf.get('mnt_options'),
                                   conf=self.conf)]
        self.firewall_pending = firewall.pending(paths.FIREWALL_RECORD)
        self.network_record = read_network_record()
        self.connect_agent()
        if self.client is not None:
            try:
                self.discover_with_agent()
            except Exception as e:
                log.info('asking the host agent failed', exc_info=True)
                self.agent_problem = 'the host agent failed to answer (%s)' % reason(e)
                self.close_agent()

    def connect_agent(self):
        try:
            port = cli_common.hostd_port()
        except cli_common.CliError as e:
            self.agent_problem = str(e)
            return
        insecure = str(self.conf.get('vdsm_use_ssl', 'true')).strip().lower() == 'false'
        try:
            self.client = Client('localhost', port, insecure=insecure, timeout=120,
                                 connect_timeout=10, reconnect_interval=0)
        except ConnectionFailed as e:
            log.info('host agent connection failed', exc_info=True)
            self.agent_problem = ('the host agent (ovirt-hosted-engine-hostd or vdsmd) does not '
                                  'answer on localhost:%d (%s)'
                                  % (port, reason(e).rpartition(': ')[2] or e))
            self.client = None

    def close_agent(self):
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                log.info('closing the host agent connection', exc_info=True)
            self.client = None

    def call(self, method, **params):
        return self.client.call(method, _timeout=120, **params)

    def discover_with_agent(self):
        vms = []
        for st in self.call('Host.getAllVmStats') or []:
            if st.get('vmId') in self.vm_ids or st.get('vmName') == VM_NAME:
                vms.append((st.get('vmId'), st.get('vmName') or VM_NAME, st.get('status')))
        self.vms = vms
        monitored = set(self.call('Host.getStorageRepoStats') or {})
        if not self.domains:
            self.domains = self.recorded_domains(monitored)
        else:
            for d in self.domains:
                info = self._domain_info(d.sd_uuid)
                if info:
                    d.name = info.get('name')
        pools = self.call('Host.getConnectedStoragePools') or []
        for d in self.domains:
            d.monitored = d.sd_uuid in monitored
            for sp in pools:
                try:
                    master = self.call('StoragePool.getInfo', storagepoolID=sp)['info'].get(
                        'master_uuid')
                except Exception as e:
                    log.info('StoragePool.getInfo %s: %s', sp, e)
                    continue
                if master == d.sd_uuid:
                    d.pools.append(sp)

    def recorded_domains(self, monitored):
        """No hosted-engine.conf (a failed deploy): the domain that deploy created, known
        from its answer file (its storage connection and the metadata and lockspace images
        it made there). Domains are never picked by name: every host of a hosted-engine
        cluster sees a domain of the same name."""
        a = self.answers
        storage = a.get('OVEHOSTED_STORAGE/storageDomainConnection')
        images = [a.get('OVEHOSTED_STORAGE/%s' % k) for k in ('metadataImageUUID',
                                                             'lockspaceImageUUID')]
        if not storage or not all(images):
            log.info('no hosted-engine.conf and no answer file naming the images of a '
                     'hosted-engine storage domain: no domain to clean up')
            return []
        seen = set(self.call('Host.getStorageDomains') or []) | monitored
        out = []
        for sd in sorted(seen):
            info = self._domain_info(sd)
            if not info or (info.get('remotePath') or '').rstrip('/') != storage.rstrip('/'):
                continue
            try:
                have = set(self.call('StorageDomain.getImages', storagedomainID=sd) or [])
            except Exception as e:
                log.info('StorageDomain.getImages %s: %s', sd, e)
                continue
            if not set(images) <= have:
                log.info('storage domain %s on %s lacks the images %s of the last deploy: '
                         'not its domain', sd, storage, ', '.join(sorted(set(images) - have)))
                continue
            dtype = a.get('OVEHOSTED_STORAGE/domainType') or MD_TYPES.get(
                str(info.get('type')).upper())
            conf = {'metadata_image_UUID': images[0], 'lockspace_image_UUID': images[1],
                    'metadata_volume_UUID': a.get('OVEHOSTED_STORAGE/metadataVolumeUUID'),
                    'lockspace_volume_UUID': a.get('OVEHOSTED_STORAGE/lockspaceVolumeUUID'),
                    'sanlock_io_timeout': a.get('OVEHOSTED_STORAGE/sanlockIoTimeout')}
            out.append(Domain(sd, storage, dtype, None, (info.get('pool') or [None])[0],
                              name=info.get('name'), conf=conf))
        return out

    def _domain_info(self, sd):
        try:
            return self.call('StorageDomain.getInfo', storagedomainID=sd)
        except Exception as e:
            if getattr(e, 'code', None) != STORAGE_DOMAIN_DOES_NOT_EXIST:
                log.info('StorageDomain.getInfo %s: %s', sd, e)
            return None

    def files_to_remove(self):
        """Existing files of the generated configuration (removed in the last step)."""
        candidates = [paths.HOSTED_ENGINE_CONF, paths.VM_CONF, paths.ETC_ANSWER_FILE,
                      paths.BROKER_CONF, os.path.join(paths.HA_RUN_DIR, 'vm.conf')]
        if self.conf.get('conf') and os.path.basename(self.conf['conf']) == 'vm.conf':
            candidates.append(self.conf['conf'])
        try:
            candidates += [os.path.join(paths.HA_STATE_DIR, n)
                           for n in sorted(os.listdir(paths.HA_STATE_DIR))]
        except OSError:
            pass
        candidates += sorted(glob.glob(os.path.join(host_agent.root(), 'pki', 'trusted-cas',
                                                    'engine-*.pem')))
        candidates += seed_isos()
        return [p for p in dict.fromkeys(candidates) if os.path.lexists(p)]
