"""Environment keys of hosted-engine deploy (one module, every key flagged).

Each key says whether it goes to the answer file (answer_file), its label in the
configuration preview (preview), whether its value is a secret (secret: filtered from
logs, never written) and how a given value is validated (validator).
"""
from . import validators as v
from ..he_storage.layout import LOCKSPACE_NAME
from ..runner.keys import EnvKey, keys_of

K = EnvKey


class CoreEnv:
    DEPLOY_PROCEED = K('OVEHOSTED_CORE/deployProceed', answer_file=True, kind='bool')
    SCREEN_PROCEED = K('OVEHOSTED_CORE/screenProceed', answer_file=True, kind='bool')
    CONFIRM_SETTINGS = K('OVEHOSTED_CORE/confirmSettings', answer_file=True, kind='bool')
    # warnings the user accepted (low memory, few vCPUs, small disk, replica 1...): a list of
    # warning ids; an answer file that lists one accepts that warning without asking
    ACCEPTED_WARNINGS = K('OVEHOSTED_CORE/acceptedWarnings', answer_file=True)
    USER_ANSWER_FILE = K('OVEHOSTED_CORE/userAnswerFile')
    ETC_ANSWER_FILE = K('OVEHOSTED_CORE/etcAnswerFile')
    ANSWER_FILE_DIR = K('OVEHOSTED_CORE/answerFileDir')
    # --restore-from-file: the engine-backup archive restored into the new engine VM
    RESTORE_FROM_FILE = K('OVEHOSTED_CORE/restoreFromFile', preview='Restore from backup')
    CHECK_REQUIREMENTS = K('OVEHOSTED_CORE/checkRequirements', kind='bool')
    TEMPDIR = K('OVEHOSTED_CORE/tempDir', preview='Temporary directory')
    SKIP_TTY_CHECK = K('OVEHOSTED_CORE/skipTTYCheck', kind='bool')
    # an additional host joins a deployed hosted-engine storage domain (oVirt's keys)
    IS_ADDITIONAL_HOST = K('OVEHOSTED_CORE/isAdditionalHost', answer_file=True, kind='bool',
                           preview='Additional host')
    ADDITIONAL_HOST_REDEPLOYMENT = K('OVEHOSTED_CORE/additionalHostReDeployment',
                                     answer_file=True, kind='bool')
    # restore of an engine-backup archive into the new engine VM (oVirt's keys)
    RENEW_PKI_ON_RESTORE = K('OVEHOSTED_CORE/renewPKIonRestore', answer_file=True, kind='bool',
                             preview='Renew engine PKI on restore')
    PAUSE_ON_RESTORE = K('OVEHOSTED_CORE/pauseonRestore', answer_file=True, kind='bool',
                         preview='Pause after adding the host')
    # what restore_backup.check_archive read from the archive (derived: not asked, not written)
    BACKUP_INFO = K('OVEHOSTED_CORE/backupInfo')


class FirstHostEnv:
    """Where an additional host takes the first host's answers from: the configuration
    volume on the shared storage (fhanswers.conf, the default), or the first host's
    /etc/ovirt-hosted-engine/answers.conf over SFTP."""
    FETCH_ANSWER = K('OVEHOSTED_FIRST_HOST/fetchAnswer', answer_file=True, kind='bool')
    SKIP_SHARED_STORAGE_AF = K('OVEHOSTED_FIRST_HOST/skipSharedStorageAF', answer_file=True,
                               kind='bool')
    FQDN = K('OVEHOSTED_FIRST_HOST/fqdn', answer_file=True, preview='First host',
             validator=v.host_address)
    SSHD_PORT = K('OVEHOSTED_FIRST_HOST/sshdPort', answer_file=True, validator=v.port)
    ROOT_PASSWORD = K('OVEHOSTED_FIRST_HOST/rootPassword', secret=True)
    # the first host's SSH host key, as `ssh-keygen -lf` prints it (SHA256:...)
    SSH_FINGERPRINT = K('OVEHOSTED_FIRST_HOST/sshKeyFingerprint', answer_file=True,
                        validator=v.ssh_fingerprint)
    # where the answers came from (derived: shown in the preview, not written)
    ANSWERS_SOURCE = K('OVEHOSTED_FIRST_HOST/answersSource', preview='First host answers')


class NetworkEnv:
    FQDN = K('OVEHOSTED_NETWORK/fqdn', answer_file=True, preview='Engine FQDN',
             validator=v.fqdn)
    BRIDGE_NAME = K('OVEHOSTED_NETWORK/bridgeName', answer_file=True, preview='Bridge name',
                    validator=v.name)
    BRIDGE_IF = K('OVEHOSTED_NETWORK/bridgeIf', answer_file=True, preview='Bridge interface')
    GATEWAY = K('OVEHOSTED_NETWORK/gateway', answer_file=True, preview='Gateway address',
                validator=v.host_address)
    # nftables, firewalld or none (firewall.check_manager); the ports are firewall.host_ports
    FIREWALL_MANAGER = K('OVEHOSTED_NETWORK/firewallManager', answer_file=True,
                         preview='Firewall manager')
    # derived before the preview (not asked, not written): what the deploy opens
    FIREWALL_PORTS = K('OVEHOSTED_NETWORK/firewallPorts', preview='Firewall')
    NETWORK_TEST = K('OVEHOSTED_NETWORK/network_test', answer_file=True,
                     preview='Network connectivity check',
                     validator=v.one_of('ping', 'dns', 'tcp', 'none'))
    NETWORK_TEST_TCP_ADDRESS = K('OVEHOSTED_NETWORK/network_test_tcp_address',
                                 answer_file=True, validator=v.host_address)
    NETWORK_TEST_TCP_PORT = K('OVEHOSTED_NETWORK/network_test_tcp_port', answer_file=True,
                              validator=v.port)
    HOST_NAME = K('OVEHOSTED_NETWORK/host_name', answer_file=True, preview='Host address')
    SSHD_PORT = K('OVEHOSTED_NETWORK/sshdPort', validator=v.port)


class EngineEnv:
    CLUSTER_NAME = K('OVEHOSTED_ENGINE/clusterName', answer_file=True,
                     preview='Engine cluster name', validator=v.name)
    DATACENTER_NAME = K('OVEHOSTED_ENGINE/datacenterName', answer_file=True,
                        preview='Engine data center name', validator=v.name)
    ADMIN_USERNAME = K('OVEHOSTED_ENGINE/adminUsername')
    ADMIN_PASSWORD = K('OVEHOSTED_ENGINE/adminPassword', secret=True)
    APP_HOST_NAME = K('OVEHOSTED_ENGINE/appHostName', answer_file=True,
                      preview='Host name for web application')
    ENGINE_SETUP_TIMEOUT = K('OVEHOSTED_ENGINE/engineSetupTimeout', validator=v.positive_int)
    INSECURE_SSL = K('OVEHOSTED_ENGINE/insecureSSL', answer_file=True)
    # the engine adds this host itself and runs this deploy over SSH (engine-driven
    # hosted-engine host deploy): the deploy neither adds the host nor needs the admin password
    HOST_ADDED_BY_ENGINE = K('OVEHOSTED_ENGINE/hostAddedByEngine', kind='bool')
    # closeup results (not asked, not written)
    CA_CERT = K('OVEHOSTED_ENGINE/caCert')              # the engine CA, PEM text
    CA_FINGERPRINT = K('OVEHOSTED_ENGINE/caFingerprint')  # SHA-256, AA:BB:...
    CA_SUBJECT = K('OVEHOSTED_ENGINE/caSubject')
    HEALTH_TIMEOUT = K('OVEHOSTED_ENGINE/healthTimeout', validator=v.positive_int)   # seconds
    HOST_UP_TIMEOUT = K('OVEHOSTED_ENGINE/hostUpTimeout', validator=v.positive_int)  # seconds
    # closeup: the engine CA file (installed in the host agent's trusted CAs; the SDK's
    # ca_file and hosted-engine.conf ca_cert)
    CA_FILE = K('OVEHOSTED_ENGINE/caFile')


class StorageEnv:
    DOMAIN_TYPE = K('OVEHOSTED_STORAGE/domainType', answer_file=True,
                    preview='Storage Domain type',
                    validator=v.one_of('nfs', 'nfs3', 'nfs4', 'glusterfs', 'iscsi', 'fc',
                                       'posixfs', 'localfs'))
    NFS_VERSION = K('OVEHOSTED_STORAGE/nfsVersion', answer_file=True,
                    validator=v.one_of('auto', 'v3', 'v4', 'v4_0', 'v4_1', 'v4_2'))
    STORAGE_DOMAIN_CONNECTION = K('OVEHOSTED_STORAGE/storageDomainConnection',
                                  answer_file=True, preview='Storage connection',
                                  validator=v.storage_connection)
    STORAGE_DOMAIN_NAME = K('OVEHOSTED_STORAGE/storageDomainName', answer_file=True,
                            preview='Storage domain name', validator=v.name)
    STORAGE_DATACENTER_NAME = K('OVEHOSTED_STORAGE/storageDatacenterName', answer_file=True,
                                preview='Storage data center name', validator=v.name)
    MNT_OPTIONS = K('OVEHOSTED_STORAGE/mntOptions', answer_file=True, preview='Mount options')
    # glusterfs: the user confirmed a replica 1 volume (oVirt supports replica 3)
    GLUSTER_REPLICA_1_CONFIRMED = K('OVEHOSTED_STORAGE/glusterReplica1Confirmed',
                                    answer_file=True, kind='bool')
    CONNECTION_UUID = K('OVEHOSTED_STORAGE/connectionUUID')
    SD_UUID = K('OVEHOSTED_STORAGE/sdUUID', validator=v.uuid)
    SP_UUID = K('OVEHOSTED_STORAGE/spUUID', validator=v.uuid)
    IMG_UUID = K('OVEHOSTED_STORAGE/imgUUID', validator=v.uuid)
    VOL_UUID = K('OVEHOSTED_STORAGE/volUUID', validator=v.uuid)
    VG_UUID = K('OVEHOSTED_STORAGE/vgUUID', answer_file=True)
    IMAGE_SIZE_GB = K('OVEHOSTED_STORAGE/imgSizeGB', answer_file=True,
                      preview='Image size GB', validator=v.positive_int)
    HOST_ID = K('OVEHOSTED_STORAGE/hostID', answer_file=True, preview='Host ID',
                validator=v.host_id)
    # iSCSI (block storage is refused: not in the preview until a plugin uses them)
    ISCSI_PORTAL = K('OVEHOSTED_STORAGE/iSCSIPortalIPAddress', answer_file=True,
                     validator=v.host_address)
    ISCSI_PORT = K('OVEHOSTED_STORAGE/iSCSIPortalPort', answer_file=True, validator=v.port)
    ISCSI_USER = K('OVEHOSTED_STORAGE/iSCSIPortalUser', answer_file=True)
    ISCSI_PASSWORD = K('OVEHOSTED_STORAGE/iSCSIPortalPassword', secret=True)
    ISCSI_TARGET = K('OVEHOSTED_STORAGE/iSCSITargetName', answer_file=True)
    LUN_ID = K('OVEHOSTED_STORAGE/LunID', answer_file=True)
    METADATA_IMAGE_UUID = K('OVEHOSTED_STORAGE/metadataImageUUID', answer_file=True,
                            validator=v.uuid)
    METADATA_VOLUME_UUID = K('OVEHOSTED_STORAGE/metadataVolumeUUID', answer_file=True,
                             validator=v.uuid)
    LOCKSPACE_IMAGE_UUID = K('OVEHOSTED_STORAGE/lockspaceImageUUID', answer_file=True,
                             validator=v.uuid)
    LOCKSPACE_VOLUME_UUID = K('OVEHOSTED_STORAGE/lockspaceVolumeUUID', answer_file=True,
                              validator=v.uuid)
    CONF_IMAGE_UUID = K('OVEHOSTED_STORAGE/confImageUUID', answer_file=True, validator=v.uuid)
    CONF_VOLUME_UUID = K('OVEHOSTED_STORAGE/confVolUUID', answer_file=True, validator=v.uuid)
    IO_TIMEOUT = K('OVEHOSTED_STORAGE/sanlockIoTimeout', answer_file=True,
                   preview='sanlock I/O timeout', validator=v.io_timeout,
                   preview_text=v.io_timeout_text)
    # the hosted-engine.conf storage values domain.prepare_domain returned (misc)
    DOMAIN_CONF = K('OVEHOSTED_STORAGE/domainConf')
    # an additional host: the files of the configuration volume of the deployed domain
    # ({name: text}: hosted-engine.conf, vm.conf, broker.conf, fhanswers.conf)
    SHARED_CONFIG = K('OVEHOSTED_STORAGE/sharedConfig')


class VMEnv:
    VM_UUID = K('OVEHOSTED_VM/vmUUID', answer_file=True, validator=v.uuid)
    MEM_SIZE_MB = K('OVEHOSTED_VM/vmMemSizeMB', answer_file=True, preview='Memory size MB',
                    validator=v.positive_int)
    VCPUS = K('OVEHOSTED_VM/vmVCpus', answer_file=True, preview='Number of CPUs',
              validator=v.positive_int)
    MAC_ADDR = K('OVEHOSTED_VM/vmMACAddr', answer_file=True, preview='MAC address',
                 validator=v.unicast_mac)
    EMULATED_MACHINE = K('OVEHOSTED_VM/emulatedMachine', answer_file=True)
    OVF_ARCHIVE = K('OVEHOSTED_VM/ovfArchive', answer_file=True, preview='OVF archive')
    CLOUD_INIT_ISO = K('OVEHOSTED_VM/cloudInitISO', answer_file=True,
                       validator=v.one_of('generate', 'existing', 'skip'))
    CLOUDINIT_INSTANCE_HOSTNAME = K('OVEHOSTED_VM/cloudinitInstanceHostName', answer_file=True,
                                    preview='Engine VM host name')
    CLOUDINIT_INSTANCE_DOMAINNAME = K('OVEHOSTED_VM/cloudinitInstanceDomainName',
                                      answer_file=True, preview='Engine VM domain name')
    CLOUDINIT_EXECUTE_ESETUP = K('OVEHOSTED_VM/cloudinitExecuteEngineSetup', answer_file=True,
                                 preview='Run engine-setup automatically')
    CLOUDINIT_VM_STATIC_CIDR = K('OVEHOSTED_VM/cloudinitVMStaticCIDR', answer_file=True,
                                 preview='Engine VM IP address', validator=v.cidr)
    CLOUDINIT_VM_DNS = K('OVEHOSTED_VM/cloudinitVMDNS', answer_file=True,
                         preview='Engine VM DNS servers')
    CLOUDINIT_VM_ETC_HOSTS = K('OVEHOSTED_VM/cloudinitVMETCHOSTS', answer_file=True,
                               preview='Add engine and host to /etc/hosts')
    CLOUDINIT_VM_TZ = K('OVEHOSTED_VM/cloudinitVMTZ', answer_file=True,
                        preview='Engine VM time zone')
    ROOT_SSH_ACCESS = K('OVEHOSTED_VM/rootSshAccess', answer_file=True,
                        preview='Root SSH access',
                        validator=v.one_of('yes', 'no', 'without-password'))
    ROOT_SSH_PUBKEY = K('OVEHOSTED_VM/rootSshPubkey', answer_file=True)
    CLOUDINIT_ROOTPWD = K('OVEHOSTED_VM/cloudinitRootPwd', secret=True)
    # the engine VM's SSH host key, generated by the deploy and given to the VM in its seed
    # (derived, never written): the public key (OpenSSH line) the deploy's SSH client pins,
    # its SHA256 fingerprint, and the private key (only in the seed ISO)
    SSH_HOST_KEY = K('OVEHOSTED_VM/sshHostKey')
    SSH_HOST_KEY_FINGERPRINT = K('OVEHOSTED_VM/sshHostKeyFingerprint')
    SSH_HOST_PRIVATE_KEY = K('OVEHOSTED_VM/sshHostPrivateKey', secret=True)
    # derived in misc (not asked, not written)
    OVF_INFO = K('OVEHOSTED_VM/ovfInfo')          # dict: vcpus, memory_mb, disk_size (bytes)
    SEED_ISO_PATH = K('OVEHOSTED_VM/seedISOPath')
    DOMAIN_XML = K('OVEHOSTED_VM/domainXML')
    VM_CONF = K('OVEHOSTED_VM/vmConf')            # dict, he_storage.heconf.make_vm_conf
    CHANNEL_PATH = K('OVEHOSTED_VM/channelPath')  # unix socket of the setup channel
    # the engine VM's network by cloud-init: dhcp, or static (cloudinitVMStaticCIDR)
    CLOUDINIT_VM_NETWORK = K('OVEHOSTED_VM/cloudinitVMNetwork', answer_file=True,
                             preview='Engine VM network', validator=v.one_of('dhcp', 'static'))
    # the seed ISO given by the user when cloudInitISO=existing
    CDROM = K('OVEHOSTED_VM/vmCDRom', answer_file=True, preview='Existing cloud-init ISO')


class VDSMEnv:
    CONSOLE_TYPE = K('OVEHOSTED_VDSM/consoleType', answer_file=True, preview='Console type',
                     validator=v.one_of('vnc', 'spice'))
    VM_PASSWD = K('OVEHOSTED_VDSM/passwd', secret=True)
    CPU = K('OVEHOSTED_VDSM/cpu', answer_file=True, preview='CPU Type')
    # late_setup: api.client.Client of this host's agent, and its Host.getCapabilities
    CLIENT = K('OVEHOSTED_VDSM/client')
    CAPS = K('OVEHOSTED_VDSM/caps')
    CONNECT_TIMEOUT = K('OVEHOSTED_VDSM/connectTimeout', validator=v.positive_int)


class NotifEnv:
    SMTP_SERVER = K('OVEHOSTED_NOTIF/smtpServer', answer_file=True, preview='SMTP server',
                    validator=v.host_address)
    SMTP_PORT = K('OVEHOSTED_NOTIF/smtpPort', answer_file=True, preview='SMTP port',
                  validator=v.port)
    SOURCE_EMAIL = K('OVEHOSTED_NOTIF/sourceEmail', answer_file=True,
                     preview='Notification source email', validator=v.email)
    DEST_EMAIL = K('OVEHOSTED_NOTIF/destEmail', answer_file=True,
                   preview='Notification destination emails', validator=v.emails)


class SanlockEnv:
    LOCKSPACE_NAME = K('OVEHOSTED_SANLOCK/lockspaceName')


ALL_KEYS = keys_of(CoreEnv, FirstHostEnv, NetworkEnv, EngineEnv, StorageEnv, VMEnv, VDSMEnv,
                   NotifEnv, SanlockEnv)
SECRET_KEYS = [k for k in ALL_KEYS if k.secret]

# Defaults a deploy starts from (plugins set them with setdefault in init).
DEFAULT_BRIDGE = 'ovirtmgmt'
DEFAULT_CLUSTER = 'Default'
DEFAULT_DATACENTER = 'Default'
DEFAULT_ADMIN_USER = 'admin@internal'
DEFAULT_LOCKSPACE = LOCKSPACE_NAME
DEFAULT_STORAGE_DOMAIN_NAME = 'hosted_storage'
DEFAULT_STORAGE_DATACENTER_NAME = 'hosted_datacenter'
DEFAULT_IMAGE_SIZE_GB = 25
MIN_MEM_SIZE_MB = 4096
MIN_VCPUS = 2


class Events:
    """Names of events other plugins order themselves against.

    Each customization section is bracketed by a start and an end event; a question of the
    section is declared after=(start,), before=(end,).
    """
    ANSWERS_READY = 'ohosted.core.answers.ready'
    TITLE_S_STORAGE = 'ohosted.dialog.titles.storage.start'
    TITLE_E_STORAGE = 'ohosted.dialog.titles.storage.end'
    TITLE_S_SYSTEM = 'ohosted.dialog.titles.system.start'
    TITLE_E_SYSTEM = 'ohosted.dialog.titles.system.end'
    TITLE_S_NETWORK = 'ohosted.dialog.titles.network.start'
    TITLE_E_NETWORK = 'ohosted.dialog.titles.network.end'
    TITLE_S_VM = 'ohosted.dialog.titles.vm.start'
    TITLE_E_VM = 'ohosted.dialog.titles.vm.end'
    TITLE_S_ENGINE = 'ohosted.dialog.titles.engine.start'
    TITLE_E_ENGINE = 'ohosted.dialog.titles.engine.end'
    ENGINE_NAMES = 'ohosted.engine.names'
    ENGINE_PASSWORD = 'ohosted.engine.password'
    NOTIFICATIONS = 'ohosted.notifications.config'
    PREVIEW = 'ohosted.core.preview'
    ANSWER_FILES = 'ohosted.core.answerfiles'
    # late_setup
    VDSM_CONNECTED = 'ohosted.vdsm.connected'
    # misc, in this order
    BRIDGE_AVAILABLE = 'ohosted.network.bridge.available'
    FIREWALL_AVAILABLE = 'ohosted.network.firewall.available'
    STORAGE_AVAILABLE = 'ohosted.storage.available'
    IMAGE_AVAILABLE = 'ohosted.vm.image.available'
    SEED_AVAILABLE = 'ohosted.vm.seed.available'
    VM_CONF_AVAILABLE = 'ohosted.vm.conf.available'
    # closeup, in this order
    VM_STARTED = 'ohosted.vm.started'
    BROKER_STARTED = 'ohosted.ha.broker.started'
    ENGINE_RESTORED = 'ohosted.engine.restored'
    ENGINE_SETUP_DONE = 'ohosted.engine.setup.done'
    ENGINE_ALIVE = 'ohosted.engine.alive'
    ENGINE_CA_AVAILABLE = 'ohosted.engine.ca.available'
    HOST_ADDED = 'ohosted.engine.host.up'
    RESTORE_PAUSED = 'ohosted.engine.restore.paused'
    RESTORE_HOST_ID = 'ohosted.engine.restore.hostid'
    HE_CONF_WRITTEN = 'ohosted.ha.conf.written'
    VM_SHUTDOWN = 'ohosted.vm.shutdown'
    HA_STARTED = 'ohosted.ha.started'


# Customization sections in the order they are asked: (title, start event, end event).
SECTIONS = (
    ('STORAGE CONFIGURATION', Events.TITLE_S_STORAGE, Events.TITLE_E_STORAGE),
    ('SYSTEM CONFIGURATION', Events.TITLE_S_SYSTEM, Events.TITLE_E_SYSTEM),
    ('NETWORK CONFIGURATION', Events.TITLE_S_NETWORK, Events.TITLE_E_NETWORK),
    ('VM CONFIGURATION', Events.TITLE_S_VM, Events.TITLE_E_VM),
    ('HOSTED ENGINE CONFIGURATION', Events.TITLE_S_ENGINE, Events.TITLE_E_ENGINE),
)
