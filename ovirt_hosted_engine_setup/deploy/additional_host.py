"""What an additional host's deploy uses: which deploy steps it runs, the first host's
answers taken into this host's answers, and the hosted-engine configuration read from the
configuration volume of the deployed storage domain.

An additional host joins a storage domain the first host deployed: it skips what exists
already (VM sizing, appliance, cloud-init, the domain and its lockspace, engine-setup) and
does what each host does (bridge, storage connection and domain monitoring, the host in the
engine, hosted-engine.conf with its own host id, the HA services).
"""
import contextlib
import os
import uuid

from . import constants as c
from . import storage_checks
from .. import paths
from ..he_storage import StorageError, config_volume, domain, heconf, layout
from ..runner import config as answer_config
from ..runner.errors import ConfigError

# Keys an additional host never takes from the first host's answers: they belong to the
# host that answered them (its id, its name and address in the engine), to the run itself,
# or to how this host reaches the storage and the first host.
NOT_TAKEN = frozenset(str(k) for k in (
    c.StorageEnv.HOST_ID, c.StorageEnv.DOMAIN_TYPE, c.StorageEnv.STORAGE_DOMAIN_CONNECTION,
    c.StorageEnv.NFS_VERSION, c.StorageEnv.MNT_OPTIONS,
    c.EngineEnv.APP_HOST_NAME, c.EngineEnv.HOST_ADDED_BY_ENGINE, c.NetworkEnv.HOST_NAME,
))
NOT_TAKEN_GROUPS = ('OVEHOSTED_CORE/', 'OVEHOSTED_FIRST_HOST/')

# the images an additional host checks the first host's answers against
IMAGE_KEYS = ((c.StorageEnv.METADATA_IMAGE_UUID, 'metadata_image_UUID'),
              (c.StorageEnv.LOCKSPACE_IMAGE_UUID, 'lockspace_image_UUID'),
              (c.StorageEnv.CONF_IMAGE_UUID, 'conf_image_UUID'))


class AdditionalHostError(RuntimeError):
    """One line: what is wrong and what to do."""


def is_additional(env):
    return bool(env.get(c.CoreEnv.IS_ADDITIONAL_HOST))


def first_host(plugin):
    """Event condition: the steps only the first host's deploy runs."""
    return not is_additional(plugin.environment)


def additional_host(plugin):
    """Event condition: the steps only an additional host's deploy runs."""
    return is_additional(plugin.environment)


def adds_host(plugin):
    """Event condition: this deploy adds the host to the engine (not when the engine
    itself adds the host and runs this deploy over SSH)."""
    return not plugin.environment.get(c.EngineEnv.HOST_ADDED_BY_ENGINE)


def taken(key):
    return key not in NOT_TAKEN and not key.startswith(NOT_TAKEN_GROUPS)


def merge_answers(context, text, source):
    """Take the first host's answers (answer-file text) into the environment: every
    answer-file key this host may share, unless this host's own answer file or command line
    gave it. Returns the keys taken. AdditionalHostError when the text is not an answer file
    or a value fails its check."""
    try:
        entries = answer_config.parse_text(text, source)
    except ConfigError as e:
        raise AdditionalHostError('The first host\'s answers (%s) cannot be read: %s: deploy '
                                  'the first host again, or fetch its answers over SSH' % (
                                      source, e))
    env = context.environment
    took = []
    for section, key, value, where, _warning in entries:
        definition = context.keys.get(key)
        if (section != 'environment:default' or definition is None
                or not definition.answer_file or not taken(key)):
            continue
        if context.origin(key) is not None:
            continue        # this host's own answer wins
        if value is not None and definition.validator is not None:
            try:
                definition.validator(value)
            except (TypeError, ValueError) as e:
                raise AdditionalHostError('%s: invalid value %r: %s: fix the first host\'s '
                                          'answers' % (where, value, e))
        env[key] = value
        took.append(key)
    return took


def check_same_domain(env, domain_conf, source):
    """The first host's answers must come from the deploy of this storage domain."""
    for key, name in IMAGE_KEYS:
        given = env.get(key)
        if given and domain_conf.get(name) and given != domain_conf[name]:
            raise AdditionalHostError(
                'The first host\'s answers (%s) are from a deploy of another storage domain: '
                'its %s is %s, the storage domain %s on %s has %s: fetch the answers of the '
                'first host of this storage domain' % (source, key, given,
                                                       domain_conf['sdUUID'],
                                                       domain_conf['storage'],
                                                       domain_conf[name]))


def read_configuration(client, sd_uuid, storage_conf, data_center_dir=paths.DATA_CENTER_DIR):
    """{file name: text} of the configuration volume of storage domain sd_uuid (the storage
    connected), with hosted-engine.conf checked to describe that domain.

    storage_conf: this host's connection ({'storage', 'domainType'}). AdditionalHostError
    when the volume is missing, unreadable or lacks hosted-engine.conf, vm.conf or broker.conf."""
    where = 'storage domain %s on %s' % (sd_uuid, storage_conf['storage'])
    try:
        found = domain.find_conf_volume(client, sd_uuid)
    except StorageError as e:
        raise AdditionalHostError('Cannot look for the configuration volume of %s: %s'
                                  % (where, e))
    if found is None:
        raise AdditionalHostError(
            'The %s has no configuration volume: the first host\'s deploy did not complete; '
            'finish it (or run ovirt-hosted-engine-cleanup there and deploy again)' % where)
    img, vol = found
    path = layout.volume_paths(dict(storage_conf, sdUUID=sd_uuid, vm_disk_id='-',
                                    vm_disk_vol_id='-', metadata_image_UUID='-',
                                    metadata_volume_UUID='-', lockspace_image_UUID='-',
                                    lockspace_volume_UUID='-', conf_image_UUID=img,
                                    conf_volume_UUID=vol), data_center_dir)['conf']
    try:
        files = config_volume.ConfigVolume(path).read()
    except StorageError as e:
        raise AdditionalHostError('The configuration volume of %s cannot be read: %s' % (where,
                                                                                          e))
    for name in ('hosted-engine.conf', 'vm.conf', 'broker.conf'):
        if not files.get(name):
            raise AdditionalHostError(
                'The configuration volume of %s has no %s: the first host\'s deploy did not '
                'complete; finish it on the first host and run this deploy again'
                % (where, name))
    try:
        conf = first_host_conf(files)
    except heconf.ConfError as e:
        raise AdditionalHostError('The hosted-engine.conf in the configuration volume of %s is '
                                  'damaged (%s): write it again from the first host with '
                                  'hosted-engine --set-shared-config' % (where, e))
    if conf.get('sdUUID') != sd_uuid or conf.get('conf_volume_UUID') != vol:
        raise AdditionalHostError(
            'The configuration volume of %s describes storage domain %s: it was copied from '
            'another deploy; deploy the first host again' % (where, conf.get('sdUUID')))
    return files


def first_host_conf(files):
    """The first host's hosted-engine.conf (a dict) from the configuration volume's files
    (read_configuration checked that it parses)."""
    return heconf.parse(files['hosted-engine.conf'], 'hosted-engine.conf')


def host_conf(first_conf, host_id, storage_conf, ca_file=None):
    """This host's hosted-engine.conf (a dict): the first host's, with this host's id, its
    own connection text and mount options, and the engine CA where this host keeps it."""
    conf = dict(first_conf)
    conf['host_id'] = str(int(host_id))
    conf['storage'] = storage_conf['storage']
    if 'mnt_options' in storage_conf:
        conf['mnt_options'] = storage_conf['mnt_options'] or ''
    if ca_file:
        conf['ca_cert'] = ca_file
    return conf


def installed_here():
    """True when this host already has a hosted-engine.conf (it was deployed)."""
    return os.path.exists(paths.HOSTED_ENGINE_CONF)


def storage_conf(env):
    """This host's connection to the storage ({'storage', 'domainType', 'mnt_options'})."""
    dtype = env[c.StorageEnv.DOMAIN_TYPE]
    return {'storage': env[c.StorageEnv.STORAGE_DOMAIN_CONNECTION], 'domainType': dtype,
            'mnt_options': storage_checks.mount_options(
                dtype, env.get(c.StorageEnv.NFS_VERSION), env.get(c.StorageEnv.MNT_OPTIONS))}


@contextlib.contextmanager
def connected(client, conf, logger):
    """The storage connected while the block runs (left connected when it already was)."""
    type_id = layout.DOMAIN_TYPES[conf['domainType']]
    params = layout.connection_params(conf, str(uuid.uuid4()))
    mnt = layout.mount_point(conf['storage'], paths.DATA_CENTER_DIR, conf['domainType'])
    was = os.path.islink(mnt) or os.path.ismount(mnt)
    res = client.call('StoragePool.connectStorageServer', storagepoolID=layout.BLANK_UUID,
                      domainType=type_id, connectionParams=[params])
    status = (res or [{}])[0]
    if status.get('status') != 0:
        raise AdditionalHostError('Cannot connect the storage %s: %s (code %s): check that this '
                                  'host reaches it' % (conf['storage'], status.get('message'),
                                                       status.get('status')))
    try:
        yield
    finally:
        if not was:
            try:
                client.call('StoragePool.disconnectStorageServer',
                            storagepoolID=layout.BLANK_UUID, domainType=type_id,
                            connectionParams=[params])
            except Exception as e:
                logger.warning('Disconnecting the storage %s failed: %s', conf['storage'], e)
