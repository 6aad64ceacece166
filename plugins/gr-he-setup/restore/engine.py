"""closeup of a restore: the backup restored inside the new engine VM (ENGINE_RESTORED,
after VM_STARTED and before the engine's health page is awaited), an optional pause once
this host is Up in the restored engine (RESTORE_PAUSED), and the closing messages."""
import os
import re
import socket
import tempfile
import time

from ovirt_hosted_engine_setup import progress
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import restore_engine
from ovirt_hosted_engine_setup.deploy.restore_engine import restoring
from ovirt_hosted_engine_setup.he_storage import domain as he_domain
from ovirt_hosted_engine_setup.runner import PluginBase, Priority, Stages, event

PAUSE_LIMIT = 24 * 3600     # seconds the deploy waits for the pause's lock file to go
PAUSE_POLL = 2
_LEVEL = re.compile(r'^\[\s*(INFO|WARNING|ERROR|DEBUG)\s*\]\s?(.*)$')


def _human(n):
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return '%d %s' % (n, unit) if unit == 'bytes' else '%.1f %s' % (n, unit)
        n /= 1024.0


class Plugin(PluginBase):

    def __init__(self, context):
        super().__init__(context)
        self._rejoin = None

    def _show(self, source, line):
        m = _LEVEL.match(line)
        level, text = (m.group(1), m.group(2)) if m else (
            'ERROR' if line.startswith('FATAL') else 'INFO', line)
        log = {'ERROR': self.logger.error, 'WARNING': self.logger.warning,
               'DEBUG': self.logger.debug}.get(level, self.logger.info)
        log('%s: %s', source, text)

    @event(stage=Stages.CLOSEUP, name=c.Events.ENGINE_RESTORED, priority=Priority.HIGH,
           after=(c.Events.VM_STARTED,), before=(c.Events.ENGINE_SETUP_DONE,),
           condition=restoring)
    def _restore(self):
        env = self.environment
        fqdn = env[c.NetworkEnv.FQDN]
        path = env[c.CoreEnv.RESTORE_FROM_FILE]
        limit = int(env[c.EngineEnv.ENGINE_SETUP_TIMEOUT])
        reporter = progress.Reporter(self.logger)
        self.logger.info('Connecting to the engine VM %s over SSH (host key %s)', fqdn,
                         env[c.VMEnv.SSH_HOST_KEY_FINGERPRINT])
        try:
            session = restore_engine.connect(fqdn, env[c.VMEnv.SSH_HOST_KEY],
                                             env[c.VMEnv.CLOUDINIT_ROOTPWD], limit, reporter)
            try:
                self._run(session, path, fqdn, limit, reporter)
            finally:
                session.close()
        except restore_engine.RestoreFailed as e:
            raise RuntimeError(str(e))
        except restore_engine.ERRORS as e:
            raise RuntimeError('Restoring the backup in the engine VM failed: %s' % e)

    def _run(self, session, path, fqdn, limit, reporter):
        env = self.environment
        job = restore_engine.EngineVmRestore(session, self._show, self.logger)
        what = 'the backup to be copied into the engine VM'

        def copied(done, total, elapsed):
            reporter(what, elapsed, None, '%d%% of %s' % (100 * done // max(1, total),
                                                       _human(total)))
        self.logger.info('Copying the backup %s into the engine VM', os.path.basename(path))
        t0 = time.monotonic()
        remote = job.copy_archive(path, copied)
        self.logger.info('Backup copied into the engine VM in %.0f s', time.monotonic() - t0)
        self.logger.info('Restoring the backup in the engine VM (engine-backup\'s output '
                         'follows; limit %d s)', limit)
        try:
            job.restore(remote, limit)
        finally:
            job.remove(remote)
        caps = env.get(c.VDSMEnv.CAPS) or {}
        for line in job.fix_up(env[c.EngineEnv.APP_HOST_NAME],
                               env.get(c.NetworkEnv.HOST_NAME) or socket.getfqdn(),
                               caps.get('uuid') or '',
                               env[c.StorageEnv.STORAGE_DOMAIN_NAME], restore_engine.stamp()):
            self.logger.info('Restored database: %s', line)
        self.logger.info('Running engine-setup in the engine VM (its output follows; limit '
                         '%d s)', limit)
        job.engine_setup(restore_engine.restore_answers(
            fqdn, env[c.EngineEnv.ADMIN_PASSWORD], env[c.CoreEnv.RENEW_PKI_ON_RESTORE]), limit)
        self.logger.info('The backup is restored and engine-setup finished in the engine VM')

    @event(stage=Stages.CLOSEUP, name=c.Events.RESTORE_HOST_ID, priority=Priority.HIGH,
           after=(c.Events.HOST_ADDED,),
           before=(c.Events.RESTORE_PAUSED, c.Events.HE_CONF_WRITTEN), condition=restoring)
    def _host_id(self):
        """The hosted-engine host id becomes the id the restored engine gave this host in
        its data center (oVirt's hosted-engine hosts use their SPM id): the engine deploys
        the backup's other hosts with their own ids, which must never be this host's."""
        env = self.environment
        fqdn = env[c.NetworkEnv.FQDN]
        limit = int(env[c.EngineEnv.ENGINE_SETUP_TIMEOUT])
        try:
            session = restore_engine.connect(fqdn, env[c.VMEnv.SSH_HOST_KEY],
                                             env[c.VMEnv.CLOUDINIT_ROOTPWD], limit,
                                             progress.Reporter(self.logger))
            try:
                job = restore_engine.EngineVmRestore(session, self._show, self.logger)
                spm_id = job.spm_id(env[c.EngineEnv.APP_HOST_NAME])
            finally:
                session.close()
        except restore_engine.RestoreFailed as e:
            raise RuntimeError(str(e))
        except restore_engine.ERRORS as e:
            raise RuntimeError('Reading this host\'s id from the restored engine failed: %s'
                               % e)
        host_id = int(env[c.StorageEnv.HOST_ID])
        if spm_id is None:
            raise RuntimeError('The restored engine does not list this host (%s) although it '
                               'was added: look at /var/log/ovirt-engine/engine.log in the '
                               'engine VM' % env[c.EngineEnv.APP_HOST_NAME])
        if spm_id == host_id:
            return
        self.logger.info('The restored engine gives this host the id %d in its data center: '
                         'the hosted-engine host id becomes %d (was %d) when the engine VM is '
                         'down', spm_id, spm_id, host_id)
        env[c.StorageEnv.HOST_ID] = spm_id
        env[c.StorageEnv.DOMAIN_CONF] = dict(env[c.StorageEnv.DOMAIN_CONF],
                                             host_id=str(spm_id))
        self._rejoin = spm_id

    @event(stage=Stages.CLOSEUP, priority=Priority.HIGH, after=(c.Events.VM_SHUTDOWN,),
           before=(c.Events.HA_STARTED,),
           condition=lambda self: restoring(self) and self._rejoin is not None)
    def _change_host_id(self):
        env = self.environment
        sd = env[c.StorageEnv.DOMAIN_CONF]['sdUUID']
        try:
            he_domain.change_host_id(env[c.VDSMEnv.CLIENT], sd, self._rejoin,
                                     progress.Reporter(self.logger))
        except he_domain.StorageError as e:
            raise RuntimeError('Joining the storage domain with host id %d failed: %s'
                               % (self._rejoin, e))
        self.logger.info('This host monitors the storage domain with host id %d',
                         self._rejoin)

    @event(stage=Stages.CLOSEUP, name=c.Events.RESTORE_PAUSED, priority=Priority.HIGH,
           after=(c.Events.HOST_ADDED, c.Events.RESTORE_HOST_ID),
           before=(c.Events.HE_CONF_WRITTEN,),
           condition=lambda self: restoring(self) and
           self.environment.get(c.CoreEnv.PAUSE_ON_RESTORE))
    def _pause(self):
        env = self.environment
        fd, lock = tempfile.mkstemp(prefix='he_setup_lock_', dir=env.get(c.CoreEnv.TEMPDIR)
                                    or '/var/tmp')
        os.close(fd)
        self.dialog.note(
            'The deploy is paused: this host is Up in the restored engine. Connect to '
            'https://%s/ovirt-engine/ to review and remediate the restored environment; the '
            'deploy goes on when you delete the lock file %s (rm %s)'
            % (env[c.NetworkEnv.FQDN], lock, lock))

        def gone():
            return not os.path.exists(lock), 'lock file %s present' % lock
        try:
            progress.wait_until(gone, 'the lock file to be deleted', PAUSE_LIMIT, PAUSE_POLL,
                                progress.Reporter(self.logger, every=300))
        except progress.WaitTimeout:
            raise RuntimeError('The deploy stayed paused for %d hours: the lock file %s was '
                               'not deleted; run ovirt-hosted-engine-cleanup and deploy again'
                               % (PAUSE_LIMIT // 3600, lock))
        self.logger.info('The lock file is gone: the deploy goes on')

    @event(stage=Stages.CLOSEUP, priority=Priority.LOW, after=(c.Events.HA_STARTED,),
           condition=restoring)
    def _closing(self):
        fqdn = self.environment[c.NetworkEnv.FQDN]
        self.dialog.note(
            'The engine %s is restored from its backup and runs as a hosted engine on this '
            'host. Other hosts of the restored engine are not hosted-engine hosts yet: '
            'reinstall each from the engine (Hosts > the host > Installation > Reinstall, '
            'Hosted Engine: Deploy) so that the engine VM can run there too.' % fqdn)
        self.dialog.note(
            'The engine VM has new SSH host keys: on machines that logged in to the old '
            'engine, remove its entry from known_hosts (ssh-keygen -R %s).' % fqdn)
