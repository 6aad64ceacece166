"""The cloud-init NoCloud seed ISO of the engine VM (misc), checked before the preview.

Where the generated ISO lives: /var/lib/ovirt-hosted-engine-setup/seed/<vm uuid>-seed.iso,
mode 0600 on this host only. It holds the engine admin password (in the engine-setup
answers), so it is not put on the shared storage where every host could read it. The
directory is mode 0711: libvirt gives the file to the qemu user when the VM starts, and
qemu must be able to reach it without being able to list the directory. The ISO is removed
when the deploy ends (cleanup), successful or not; the engine VM needs it only for its
first boot, and closeup detaches it (environment key OVEHOSTED_VM/seedISOPath).
"""
import ipaddress
import os
import socket

from ovirt_hosted_engine_setup.deploy import cloud_init
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import first_host
from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.runner import (PluginBase, Priority, Stages,
                                              TransactionElement, event)

SEED_DIR = os.path.join(paths.SETUP_STATE_DIR, 'seed')


def seed_path(vm_uuid, directory=None):
    return os.path.join(directory or SEED_DIR, '%s-seed.iso' % vm_uuid)


def _ipv4(name):
    """The first IPv4 address of name (an address is returned as is), or None."""
    try:
        return str(ipaddress.IPv4Address(name))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    return infos[0][4][0] if infos else None


def host_entry(env):
    """(address, [names]) of this host for the VM's /etc/hosts, or None."""
    name = env.get(c.NetworkEnv.HOST_NAME) or (env.get(c.VDSMEnv.CAPS) or {}).get('hostname') \
        or socket.getfqdn()
    addr = _ipv4(name)
    if addr is None or ipaddress.IPv4Address(addr).is_loopback:
        bridge = env.get(c.NetworkEnv.BRIDGE_NAME) or c.DEFAULT_BRIDGE
        caps = env.get(c.VDSMEnv.CAPS) or {}
        info = (caps.get('bridges') or {}).get(bridge) or (caps.get('nics') or {}).get(
            env.get(c.NetworkEnv.BRIDGE_IF) or '') or {}
        addr = info.get('addr') or None
    if not addr:
        return None
    names = [name] + ([name.split('.', 1)[0]] if '.' in name else [])
    return addr, names


def seed_spec(env):
    """The SeedSpec of the deploy's answers (validated by build_seed_iso)."""
    fqdn = env[c.NetworkEnv.FQDN]
    static = env.get(c.VMEnv.CLOUDINIT_VM_NETWORK) == 'static' and \
        env.get(c.VMEnv.CLOUDINIT_VM_STATIC_CIDR)
    cidr = env[c.VMEnv.CLOUDINIT_VM_STATIC_CIDR] if static else None
    gateway = _ipv4(env[c.NetworkEnv.GATEWAY]) if static and env.get(c.NetworkEnv.GATEWAY) \
        else None
    dns = [d for d in str(env.get(c.VMEnv.CLOUDINIT_VM_DNS) or '').split(',') if d] \
        if static else []
    etc_hosts = []
    if env.get(c.VMEnv.CLOUDINIT_VM_ETC_HOSTS):
        if cidr:
            etc_hosts.append((cidr.split('/')[0], [fqdn, fqdn.split('.', 1)[0]]))
        entry = host_entry(env)
        if entry:
            etc_hosts.append(entry)
    host_key = None
    if env.get(c.VMEnv.SSH_HOST_PRIVATE_KEY):
        host_key = cloud_init.SshHostKey(private=env[c.VMEnv.SSH_HOST_PRIVATE_KEY],
                                         public=env[c.VMEnv.SSH_HOST_KEY])
    run = bool(env.get(c.VMEnv.CLOUDINIT_EXECUTE_ESETUP))
    answers = {}
    if run:
        answers = cloud_init.engine_answers(fqdn, env.get(c.EngineEnv.ADMIN_PASSWORD) or '')
    return cloud_init.SeedSpec(
        instance_id=env[c.VMEnv.VM_UUID], hostname=fqdn,
        root_password=env.get(c.VMEnv.CLOUDINIT_ROOTPWD) or None,
        root_ssh_pubkey=env.get(c.VMEnv.ROOT_SSH_PUBKEY) or None,
        root_ssh_access=env.get(c.VMEnv.ROOT_SSH_ACCESS) or 'yes',
        ip=cidr, gateway=gateway, dns=dns, mac=env.get(c.VMEnv.MAC_ADDR),
        etc_hosts=etc_hosts, engine_answers=answers, run_engine_setup=run,
        timezone=env.get(c.VMEnv.CLOUDINIT_VM_TZ) or None, ssh_host_key=host_key)


def remove(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


class RemoveSeed(TransactionElement):
    """Rollback of the seed ISO: remove it."""

    def __init__(self, path):
        self.path = path

    def __str__(self):
        return 'seed ISO %s' % self.path

    def abort(self):
        remove(self.path)


class Plugin(PluginBase):

    def __init__(self, context):
        super().__init__(context)
        self.generated = None

    def _mode(self):
        return self.environment.get(c.VMEnv.CLOUD_INIT_ISO)

    @event(stage=Stages.VALIDATION,
           condition=lambda self: first_host(self) and self._mode() == 'generate')
    def _check_seed(self):
        """Every seed value checked together before anything changes on the host."""
        env = self.environment
        if not env.get(c.VMEnv.SSH_HOST_PRIVATE_KEY):
            # the engine VM's SSH host key, made here and given to the VM in the seed: this
            # deploy (and the admin, from the fingerprint) can trust the VM's sshd from the
            # first connection on
            key = cloud_init.generate_host_key('root@%s' % env[c.NetworkEnv.FQDN])
            env[c.VMEnv.SSH_HOST_PRIVATE_KEY] = key.private
            env[c.VMEnv.SSH_HOST_KEY] = key.public
            env[c.VMEnv.SSH_HOST_KEY_FINGERPRINT] = key.fingerprint
            self.logger.info('The engine VM\'s SSH host key will be %s', key.fingerprint)
        if env.get(c.VMEnv.CLOUDINIT_EXECUTE_ESETUP) and not env.get(c.EngineEnv.ADMIN_PASSWORD):
            raise ValueError('engine-setup is to run in the engine VM but there is no engine '
                             'admin password: give %s' % c.EngineEnv.ADMIN_PASSWORD)
        try:
            seed_spec(env).validate()
        except cloud_init.SeedError as e:
            raise ValueError('Invalid cloud-init settings: %s' % e)

    @event(stage=Stages.MISC, name=c.Events.SEED_AVAILABLE,
           after=(c.Events.IMAGE_AVAILABLE,), before=(c.Events.VM_CONF_AVAILABLE,),
           condition=first_host)
    def _seed(self):
        env = self.environment
        mode = self._mode()
        if mode == 'existing':
            env[c.VMEnv.SEED_ISO_PATH] = env[c.VMEnv.CDROM]
            self.logger.info('Using the cloud-init ISO %s', env[c.VMEnv.CDROM])
            return
        if mode != 'generate':
            env[c.VMEnv.SEED_ISO_PATH] = None
            return
        os.makedirs(SEED_DIR, mode=0o711, exist_ok=True)
        os.chmod(SEED_DIR, 0o711)
        path = seed_path(env[c.VMEnv.VM_UUID])
        self.logger.info('Creating the cloud-init seed ISO')
        try:
            cloud_init.build_seed_iso(seed_spec(env), path)
        except cloud_init.SeedError as e:
            raise RuntimeError('Cannot create the cloud-init seed: %s' % e)
        self.generated = path
        self.context.main_transaction.append(RemoveSeed(path))
        env[c.VMEnv.SEED_ISO_PATH] = path
        self.logger.debug('cloud-init seed ISO written to %s (mode 0600)', path)

    @event(stage=Stages.CLEANUP, priority=Priority.LAST,
           condition=lambda self: self.generated is not None)
    def _remove_seed(self):
        if remove(self.generated):
            self.logger.debug('cloud-init seed ISO %s removed', self.generated)
