"""`--== STORAGE CONFIGURATION ==--`: storage type, connection, mount options, domain and
data center names, VM disk size.

The connection is tested through the host agent (StoragePool.connectStorageServer, as the
domain will be connected in misc): it must mount, be writable, hold no storage domain yet
and have room for the VM disk and the three small volumes; the test connection is
disconnected again before the next question. A glusterfs connection "server:/volume" names
a gluster volume, which the host agent is asked about first (GlusterVolume.list): replica 3
is taken, replica 1 only when the user confirms it, any other replica count is refused, as
are a volume that does not exist or is not started and a server that does not answer.
Typed answers that fail a check are asked again; answer-file values fail the deploy with the
same message.
"""
import os
import uuid

from ovirt_hosted_engine_setup.api.errors import ServerError
from ovirt_hosted_engine_setup.api.schema import METHOD_NOT_FOUND, error_code
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.deploy import storage_checks, validators
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup.he_storage import layout
from ovirt_hosted_engine_setup.runner import AbortError, PluginBase, Stages, event, typed

SECTION_START = c.Events.TITLE_S_STORAGE
SECTION_END = c.Events.TITLE_E_STORAGE
TYPE = 'ohosted.storage.type'
CONNECTION = 'ohosted.storage.connection'
CHECK = 'ohosted.storage.check'
NAMES = 'ohosted.storage.names'
IMAGE_SIZE = 'ohosted.storage.imagesize'
IO_TIMEOUT = 'ohosted.storage.iotimeout'
# GlusterVolume.list's error for a volume the gluster server does not have (VDSM's)
GLUSTER_VOLUMES_LIST_FAILED = error_code('GlusterVolumesListFailedException')

SMALL_DISK_WARNING = 'small-disk'
SHORT_IO_TIMEOUT_WARNING = 'short-io-timeout'

TYPE_NOTE = 'Please specify the storage you would like to use (%s)' % ', '.join(
    storage_checks.SUPPORTED_TYPES)
REMOTE_NOTE = 'Please specify the full shared storage connection path to use (example: host:/path)'
LOCAL_NOTE = ('Please specify the full path of the directory shared by the hosts to use as '
              'storage (example: /srv/hosted-engine)')
MNT_NOTE = ('If needed, specify additional mount options for the connection to the '
            'hosted-engine storage domain')
NFS_NOTE = 'Please specify the nfs version you would like to use'
ADDITIONAL_NOTE = ('The specified storage location already contains a data domain. Is this an '
                   'additional host setup?')
SIZE_NOTE = 'Please specify the disk size of the VM in GB'
GLUSTER_NOTE = 'Please note that replica 3 support is required for the shared storage.'
GLUSTER_REPLICA_1_NOTE = 'Continue with a replica 1 gluster volume?'
IO_TIMEOUT_NOTE = ('Please specify the sanlock I/O timeout of the hosted-engine lockspace in '
                   'seconds (the other hosts know a crashed host dead 8 x timeout + %d s '
                   'after its last renewal)' % layout.WATCHDOG_FIRE_TIMEOUT)


def confirmed(value, key, error):
    """A yes/no answer given in an answer file or on the command line, as a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in typed.TRUE_WORDS:
        return True
    if text in typed.FALSE_WORDS:
        return False
    raise error('%s=%r: give bool:True or bool:False' % (key, value))


def one_line(text):
    """A host agent message on one line (mount errors come with several)."""
    return ' '.join(str(text or 'failed').split())


class StorageCheckError(RuntimeError):
    """A storage answer failed a check; str() names the problem and the fix."""


class Plugin(PluginBase):

    def __init__(self, context):
        super().__init__(context)
        # what the connection test measured: (dtype, storage, free bytes)
        self._measured = None

    @event(stage=Stages.INIT)
    def _init(self):
        env = self.environment
        for key in (c.StorageEnv.DOMAIN_TYPE, c.StorageEnv.NFS_VERSION,
                    c.StorageEnv.STORAGE_DOMAIN_CONNECTION, c.StorageEnv.MNT_OPTIONS,
                    c.StorageEnv.STORAGE_DOMAIN_NAME, c.StorageEnv.STORAGE_DATACENTER_NAME,
                    c.StorageEnv.IMAGE_SIZE_GB):
            env.setdefault(key, None)
        env.setdefault(c.StorageEnv.IO_TIMEOUT, None)
        env.setdefault(c.StorageEnv.HOST_ID, None)
        env.setdefault(c.CoreEnv.ACCEPTED_WARNINGS, [])

    # -- questions -----------------------------------------------------------------
    def _ask_or_check(self, key, check, ask):
        return self.ask_or_check(key, check, ask, StorageCheckError)

    def _until_accepted(self, key, check, ask, objection):
        """environment[key], asked (or its given value checked) until nothing in it is objected
        to; the one loop of the questions whose answer may need the user's consent.

        objection(value): None when the value is fine, else (accept, message, refusal):
        accept() warns with message and asks whether to go on with the value (True: go on),
        None when the value cannot be accepted (message is then shown as an error); refusal
        is the one-line error of a value not accepted. A typed value not accepted is asked
        again; a given one (answer file, command line) fails the deploy with the refusal.
        """
        env = self.environment
        while True:
            was_typed = env.get(key) is None
            value = self._ask_or_check(key, check, ask)
            was_typed = was_typed and self.dialog.last_answer_typed
            found = objection(value)
            if found is None:
                return value
            accept, message, refusal = found
            if accept is not None and accept():
                return value
            if not was_typed:
                raise StorageCheckError(refusal)
            if accept is None:
                self.logger.error('%s', message)
            env[key] = None

    @event(stage=Stages.CUSTOMIZATION, name=TYPE, after=(SECTION_START,),
           before=(SECTION_END,))
    def _storage_type(self):
        dtype = self._ask_or_check(
            c.StorageEnv.DOMAIN_TYPE, storage_checks.domain_type,
            lambda: self.dialog.query_string('STORAGE_DOMAIN_TYPE', TYPE_NOTE, default='nfs',
                                             validator=storage_checks.domain_type))
        if dtype == 'nfs':
            self._ask_or_check(
                c.StorageEnv.NFS_VERSION, storage_checks.nfs_version,
                lambda: self.dialog.query_string(
                    'STORAGE_NFS_VERSION', NFS_NOTE, valid_values=storage_checks.NFS_VERSIONS,
                    case_sensitive=False, default=storage_checks.DEFAULT_NFS_VERSION))

    @event(stage=Stages.CUSTOMIZATION, name=CONNECTION, after=(SECTION_START, TYPE),
           before=(SECTION_END,))
    def _connection(self):
        env = self.environment
        dtype = env[c.StorageEnv.DOMAIN_TYPE]

        def check(value):
            return storage_checks.connection(dtype, value)
        note = REMOTE_NOTE if storage_checks.is_remote(dtype) else LOCAL_NOTE
        if dtype == 'glusterfs':
            self.logger.info('%s', GLUSTER_NOTE)
        self._until_accepted(
            c.StorageEnv.STORAGE_DOMAIN_CONNECTION, check,
            lambda: self.dialog.query_string('STORAGE_CONNECTION', note, validator=check),
            self._gluster_objection if dtype == 'glusterfs' else lambda value: None)
        if dtype in storage_checks.MOUNT_OPTION_TYPES:
            def options(value):
                storage_checks.mount_options(dtype, env.get(c.StorageEnv.NFS_VERSION),
                                             value)
                return str(value).strip()
            self._ask_or_check(
                c.StorageEnv.MNT_OPTIONS, options,
                lambda: self.dialog.query_string('STORAGE_MNT_OPTIONS', MNT_NOTE, default='',
                                                 allow_empty=True, validator=options))

    # -- glusterfs: the volume of the connection ------------------------------------
    def _gluster_volume(self, server, volume):
        """The volume's info, asked of the host agent (GlusterVolume.list, which asks the
        gluster server); ValueError naming the server and the volume when there is none."""
        try:
            result = self.environment[c.VDSMEnv.CLIENT].call(
                'GlusterVolume.list', volumeName=volume, remoteServer=server)
        except ServerError as e:
            self.logger.debug('GlusterVolume.list %s on %s', volume, server, exc_info=True)
            if e.code == GLUSTER_VOLUMES_LIST_FAILED:
                raise ValueError('The gluster volume %s was not found on %s: the host agent '
                                 'reports: %s (code %s): give an existing volume as %s:/volume '
                                 '(gluster volume list on %s shows them)'
                                 % (volume, server, one_line(e.message), e.code, server,
                                    server))
            if e.code == METHOD_NOT_FOUND:
                raise ValueError('The host agent cannot read the gluster volume %s from %s: it '
                                 'does not serve GlusterVolume.list; install its gluster '
                                 'support (vdsm-gluster for VDSM)' % (volume, server))
            raise ValueError('Cannot read the gluster volume %s from %s: the host agent reports: '
                             '%s (code %s): check that %s is a gluster server this host '
                             'reaches, with glusterd running' % (volume, server,
                                                                  one_line(e.message), e.code,
                                                                  server))
        except Exception as e:
            raise ValueError('The host agent failed to read the gluster volume %s from %s '
                             '(GlusterVolume.list: %s): check the host agent log '
                             '(/var/log/ovirt-hosted-engine-hostd or vdsm)'
                             % (volume, server, one_line(getattr(e, 'message', None) or e)))
        self.logger.debug('GlusterVolume.list %s on %s: %s', volume, server, result)
        return storage_checks.gluster_volume(result, server, volume)

    def _gluster_objection(self, connection):
        """What the deploy says of the gluster volume of a connection (see _until_accepted):
        replica 3 is fine, replica 1 needs the user's confirmation, anything else is refused."""
        server, volume = layout.gluster_volume(connection)
        try:
            info = self._gluster_volume(server, volume)
        except ValueError as e:
            return None, str(e), str(e)
        replica = storage_checks.gluster_replica(info, server, volume)
        if replica == storage_checks.GLUSTER_REPLICA:
            self.logger.info('GlusterFS replica %d volume %s detected on %s', replica, volume,
                             server)
            if storage_checks.gluster_distinct_hosts(info) < storage_checks.GLUSTER_REPLICA:
                self.logger.warning('The bricks of the gluster volume %s are on fewer than %d '
                                    'hosts: three distinct hosts are required for safe and '
                                    'reliable operations', volume,
                                    storage_checks.GLUSTER_REPLICA)
            return None
        if replica == storage_checks.GLUSTER_REPLICA_CONFIRMED:
            key = c.StorageEnv.GLUSTER_REPLICA_1_CONFIRMED
            message = ('The gluster volume %s on %s has replica 1: its data has a single copy, '
                       'which the loss of its brick loses; oVirt supports replica %d for the '
                       'hosted-engine storage' % (volume, server, storage_checks.GLUSTER_REPLICA))
            refusal = ('The gluster volume %s on %s has replica 1, which was not confirmed: give '
                       'a replica %d volume, or confirm replica 1 with %s=bool:True'
                       % (volume, server, storage_checks.GLUSTER_REPLICA, key))
            return (lambda: self._confirm_replica_1(message)), message, refusal
        refusal = storage_checks.gluster_replica_refusal(replica, server, volume)
        return None, refusal, refusal

    def _confirm_replica_1(self, message):
        """Warn about a replica 1 volume; True when the user confirms it (asked, default No,
        unless the answer is given)."""
        env = self.environment
        key = c.StorageEnv.GLUSTER_REPLICA_1_CONFIRMED
        self.logger.warning('%s', message)
        if env.get(key) is not None:
            return confirmed(env[key], key, StorageCheckError)
        ok = self.dialog.query_yes_no('STORAGE_GLUSTER_REPLICA_1', GLUSTER_REPLICA_1_NOTE,
                                      default=False)
        if ok:
            env[key] = True
        return ok

    # -- the connection test -----------------------------------------------------------
    def _conf(self):
        """The connection as he_storage sees it (hosted-engine.conf names)."""
        env = self.environment
        dtype = env[c.StorageEnv.DOMAIN_TYPE]
        return {'storage': env[c.StorageEnv.STORAGE_DOMAIN_CONNECTION], 'domainType': dtype,
                'mnt_options': storage_checks.mount_options(
                    dtype, env.get(c.StorageEnv.NFS_VERSION), env.get(c.StorageEnv.MNT_OPTIONS))}

    def _call(self, what, method, **params):
        try:
            return self.environment[c.VDSMEnv.CLIENT].call(method, **params)
        except Exception as e:
            raise StorageCheckError('The host agent failed %s (%s: %s): check the host agent '
                                    'log (/var/log/ovirt-hosted-engine-hostd or vdsm)'
                                    % (what, method, one_line(getattr(e, 'message', None) or e)))

    def _test_connection(self):
        """Connect, measure, disconnect. Returns (free bytes, [(sdUUID, name)])."""
        conf = self._conf()
        storage, dtype = conf['storage'], conf['domainType']
        type_id = layout.DOMAIN_TYPES[dtype]
        params = layout.connection_params(conf, str(uuid.uuid4()))
        mnt = layout.mount_point(storage, paths.DATA_CENTER_DIR, dtype)
        was_connected = os.path.islink(mnt) or os.path.ismount(mnt)
        self.logger.info('Checking the storage %s (%s) through the host agent', storage, dtype)
        res = self._call('to connect the storage %s' % storage,
                         'StoragePool.connectStorageServer',
                         storagepoolID=layout.BLANK_UUID, domainType=type_id,
                         connectionParams=[params])
        status = (res or [{}])[0]
        if status.get('status') != 0:
            raise StorageCheckError(
                'Cannot connect the storage %s (%s): the host agent reports: %s (code %s): '
                'check the address, that the export exists and is writable by the host agent, '
                'and the mount options' % (storage, dtype, one_line(status.get('message')),
                                           status.get('status')))
        try:
            if not os.path.isdir(mnt):
                raise StorageCheckError(
                    'The host agent connected the storage %s, but its mount point %s is not '
                    'visible to the deploy: run the deploy on the host of the agent, with the '
                    'agent\'s data center directory at %s' % (storage, mnt,
                                                             paths.DATA_CENTER_DIR))
            reason = storage_checks.probe_writable(mnt)
            if reason:
                raise StorageCheckError(
                    'The storage %s is not writable: %s: give a storage this host can write '
                    '(for NFS: rw, owned by 36:36 or no root squash)' % (storage, reason))
            free = storage_checks.free_bytes(mnt)
            domains = dict(storage_checks.find_domains(mnt))
            for sd in self._call('to list the storage domains on %s' % storage,
                                 'Host.getStorageDomains', storageType=type_id,
                                 remotePath=storage) or ():
                domains.setdefault(sd, '')
        finally:
            if not was_connected:
                try:
                    self.environment[c.VDSMEnv.CLIENT].call(
                        'StoragePool.disconnectStorageServer',
                        storagepoolID=layout.BLANK_UUID, domainType=type_id,
                        connectionParams=[params])
                except Exception as e:
                    self.logger.warning('Disconnecting the test connection to %s failed: %s',
                                        storage, e)
        return free, sorted(domains.items())

    @event(stage=Stages.CUSTOMIZATION, name=CHECK, after=(SECTION_START, CONNECTION),
           before=(SECTION_END,))
    def _check_storage(self):
        env = self.environment
        storage = env[c.StorageEnv.STORAGE_DOMAIN_CONNECTION]
        dtype = env[c.StorageEnv.DOMAIN_TYPE]
        free, domains = self._test_connection()
        self.logger.debug('storage %s: %d bytes free, domains %s', storage, free, domains)
        additional = env.get(c.CoreEnv.IS_ADDITIONAL_HOST)
        if domains:
            listed = ', '.join('%s%s' % (sd, ' (%s)' % name if name else '')
                               for sd, name in domains)
            if additional is None:
                additional = self.dialog.query_yes_no('STORAGE_ADDITIONAL_HOST', ADDITIONAL_NOTE,
                                                      default=True)
                env[c.CoreEnv.IS_ADDITIONAL_HOST] = additional
            if not additional:
                raise AbortError(
                    'The storage %s already holds the storage domain %s and re-deploying over '
                    'a deployed domain is not supported: add this host as an additional host, '
                    'give a clean export, or run ovirt-hosted-engine-cleanup on the hosts of '
                    'that domain and clear the storage' % (storage, listed))
            if len(domains) > 1:
                raise StorageCheckError(
                    'The storage %s holds several storage domains (%s): an additional host '
                    'joins the one hosted-engine storage domain; give the storage of that '
                    'domain alone' % (storage, listed))
            env[c.StorageEnv.SD_UUID] = domains[0][0]
            self.logger.info('Storage domain %s found on %s: this host joins it as an '
                             'additional host', listed, storage)
            return
        if additional:
            raise StorageCheckError(
                'The storage %s holds no storage domain, so there is no deployed hosted engine '
                'for an additional host to join: give the storage the first host deployed, or '
                'set %s=bool:False to deploy a first host' % (storage,
                                                             c.CoreEnv.IS_ADDITIONAL_HOST))
        env[c.CoreEnv.IS_ADDITIONAL_HOST] = False
        if env.get(c.StorageEnv.HOST_ID) is None:
            env[c.StorageEnv.HOST_ID] = 1     # the first host's id
        minimum = storage_checks.minimum_domain_bytes(dtype)
        if free < minimum:
            try:
                storage_checks.check_space(dtype, storage, free, 0)
            except ValueError as e:
                raise StorageCheckError(str(e))
        self._measured = (dtype, storage, free)
        self.logger.info('Storage %s is usable: %s free', storage,
                         storage_checks.size_text(free))

    @event(stage=Stages.CUSTOMIZATION, name=NAMES, after=(SECTION_START, CHECK),
           before=(SECTION_END,), condition=first_host)
    def _names(self):
        self._ask_or_check(
            c.StorageEnv.STORAGE_DOMAIN_NAME, self._name,
            lambda: self.dialog.query_string('STORAGE_DOMAIN_NAME',
                                             'Please provide storage domain name',
                                             default=c.DEFAULT_STORAGE_DOMAIN_NAME,
                                             validator=self._name))
        self._ask_or_check(
            c.StorageEnv.STORAGE_DATACENTER_NAME, self._name,
            lambda: self.dialog.query_string('STORAGE_DATACENTER_NAME',
                                             'Local storage datacenter name',
                                             default=c.DEFAULT_STORAGE_DATACENTER_NAME,
                                             validator=self._name))

    @staticmethod
    def _name(value):
        validators.name(value)
        return str(value)

    # -- the VM disk size ------------------------------------------------------------
    def _size(self, value):
        """A whole number of GB that fits the measured free space."""
        size = validators.positive_int(value)
        if self._measured is not None:
            dtype, storage, free = self._measured
            storage_checks.check_space(dtype, storage, free, size)
        return size

    def _accept_warning(self, warning_id, message, question):
        env = self.environment
        accepted = list(env.get(c.CoreEnv.ACCEPTED_WARNINGS) or [])
        if warning_id in accepted:
            self.logger.warning('%s (accepted: %s)', message, warning_id)
            return True
        self.logger.warning('%s', message)
        name = 'STORAGE_ACCEPT_%s' % warning_id.upper().replace('-', '_')
        if self.dialog.query_yes_no(name, question, default=False):
            env[c.CoreEnv.ACCEPTED_WARNINGS] = accepted + [warning_id]
            return True
        return False

    @event(stage=Stages.CUSTOMIZATION, name=IMAGE_SIZE, after=(SECTION_START, NAMES),
           before=(SECTION_END,), condition=first_host)
    def _image_size(self):
        key = c.StorageEnv.IMAGE_SIZE_GB
        recommended = storage_checks.RECOMMENDED_DISK_GB

        def objection(size):
            if size >= recommended:
                return None
            message = ('The VM disk size %d GB is below the recommended minimum of %d GB'
                       % (size, recommended))
            return (lambda: self._accept_warning(SMALL_DISK_WARNING, message,
                                                 'Continue with a %d GB disk?' % size),
                    message,
                    '%s and was not accepted: give %s of at least %d, or accept the warning %s '
                    'in %s' % (message, key, recommended, SMALL_DISK_WARNING,
                               c.CoreEnv.ACCEPTED_WARNINGS))
        self._until_accepted(key, self._size, lambda: self.dialog.query_string(
            'STORAGE_IMAGE_SIZE_GB', SIZE_NOTE, default=c.DEFAULT_IMAGE_SIZE_GB,
            validator=self._size), objection)

    # -- the sanlock I/O timeout -----------------------------------------------------
    @event(stage=Stages.CUSTOMIZATION, name=IO_TIMEOUT, after=(SECTION_START, IMAGE_SIZE),
           before=(SECTION_END,), condition=first_host)
    def _io_timeout(self):
        """The I/O timeout the hosted-engine lockspace is written with: it sets how soon the
        other hosts know a crashed host dead (additional hosts read it from
        hosted-engine.conf). The engine VM's lease lives in the storage domain's own
        lockspace, which the host agent writes with its own configured timeout (VDSM's
        [sanlock] io_timeout): the failover floor is the larger of the two."""
        key = c.StorageEnv.IO_TIMEOUT
        dtype = self.environment[c.StorageEnv.DOMAIN_TYPE]

        def objection(timeout):
            if timeout >= layout.REMOTE_IO_TIMEOUT_WARNING or not storage_checks.is_remote(dtype):
                return None
            message = ('A sanlock I/O timeout of %d s is short for %s storage: a latency spike '
                       'over %d s makes a host lose its id in the hosted-engine lockspace (its '
                       'HA agent can neither publish nor start the engine until it joins again)'
                       % (timeout, dtype, layout.renewal_fail(timeout)))
            return (lambda: self._accept_warning(
                        SHORT_IO_TIMEOUT_WARNING, message,
                        'Continue with a %d s sanlock I/O timeout?' % timeout),
                    message,
                    'A sanlock I/O timeout of %d s on %s storage was not accepted: give %s of at '
                    'least %d, or accept the warning %s in %s'
                    % (timeout, dtype, key, layout.REMOTE_IO_TIMEOUT_WARNING,
                       SHORT_IO_TIMEOUT_WARNING, c.CoreEnv.ACCEPTED_WARNINGS))
        self._until_accepted(key, validators.io_timeout, lambda: self.dialog.query_string(
            'STORAGE_SANLOCK_IO_TIMEOUT', IO_TIMEOUT_NOTE, default=layout.DEFAULT_IO_TIMEOUT,
            validator=validators.io_timeout), objection)

    @event(stage=Stages.VALIDATION, before=(c.Events.PREVIEW,), condition=first_host)
    def _validate_space(self):
        """The disk size may have been raised after the storage section (to fit the
        appliance): it must still fit the storage."""
        env = self.environment
        try:
            self._size(env[c.StorageEnv.IMAGE_SIZE_GB])
        except ValueError as e:
            raise StorageCheckError(str(e))
