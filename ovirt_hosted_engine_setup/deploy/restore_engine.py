"""The restore of an engine-backup archive inside the new engine VM.

Over SSH as root, with the VM's host key pinned (the deploy gave the VM that key through
its cloud-init seed): the archive is copied into the VM, `engine-backup --mode=restore
--provision-all-databases --restore-permissions` puts the old engine's files and database in
place, the database is fixed up for its new home (restore_backup.fixup_sql: the old engine
VM removed, this host removed if the backup knew it, the old hosted-engine storage domain
renamed), then engine-setup runs with this deploy's answers. Every command's output is
shown as it comes, as engine-setup's is on a normal deploy.

The condition `restoring` says which deploy steps belong to a restore.
"""
import os
import shlex
import time

from . import cloud_init, constants, engine_vm_ssh, restore_backup

REMOTE_DIR = '/root'
RESTORE_LOG = '/var/log/ovirt-engine/engine-backup-restore.log'
ENGINE_PSQL = '/usr/share/ovirt-engine/dbscripts/engine-psql.sh'
RESTORE_COMMAND = ('engine-backup --mode=restore --file={file} --log={log} '
                   '--provision-all-databases --restore-permissions')
ENGINE_SETUP_COMMAND = 'engine-setup --accept-defaults --offline --config-append={answers}'


class RestoreFailed(RuntimeError):
    """A step inside the engine VM failed; the message is one line."""


def restoring(plugin):
    """Condition of the restore steps: --restore-from-file was given."""
    return bool(plugin.environment.get(constants.CoreEnv.RESTORE_FROM_FILE))


def stamp(now=None):
    return time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))


def remote_archive(local_path):
    return '%s/%s' % (REMOTE_DIR, os.path.basename(local_path))


def restore_answers(fqdn, admin_password, renew_pki):
    """engine-setup's answers after a restore: the FQDN it must keep, the admin password
    of this deploy, and whether to renew the engine's certificates."""
    answers = cloud_init.engine_answers(fqdn, admin_password)
    answers['OVESETUP_PKI/renew'] = bool(renew_pki)
    return answers


class EngineVmRestore:
    """The steps run in the engine VM; `show(source, line)` gets every output line."""

    def __init__(self, session, show, logger):
        self.session = session
        self.show = show
        self.logger = logger

    def _run(self, what, command, limit):
        status = self.session.run(command, lambda _stream, line: self.show(what, line),
                                  timeout=limit)
        return status

    def _check(self, what, status, hint):
        if status != 0:
            raise RestoreFailed('%s failed in the engine VM (exit status %s): %s'
                                % (what, status, hint))

    def copy_archive(self, local_path, progress=None):
        remote = remote_archive(local_path)
        self.session.upload(local_path, remote, progress)
        return remote

    def restore(self, remote, limit):
        status = self._run('engine-backup', RESTORE_COMMAND.format(
            file=shlex.quote(remote), log=shlex.quote(RESTORE_LOG)), limit)
        self._check('engine-backup --mode=restore', status,
                    'its output is above; its log is %s in the engine VM' % RESTORE_LOG)

    def psql(self, sql, limit=120):
        out = {'stdout': [], 'stderr': []}

        def collect(stream, line):
            out[stream].append(line)
            self.logger.debug('engine-psql %s: %s', stream, line)
        status = self.session.run('%s -c %s' % (ENGINE_PSQL, shlex.quote(sql)), collect,
                                  timeout=limit)
        if status != 0:
            raise RestoreFailed('fixing up the restored database failed (%s exited %s: %s)'
                                % (ENGINE_PSQL, status,
                                   ' '.join(out['stderr'][-3:]) or 'no output'))
        return restore_backup.parse_rows('\n'.join(out['stdout']))

    def fix_up(self, host_name, host_address, host_unique_id, he_sd_name, when):
        """The database fixed up before the engine starts; returns what changed, as lines."""
        vms, hosts, domains = (self.psql(sql) for sql in restore_backup.fixup_report_sql(
            host_name, host_address, host_unique_id, he_sd_name))
        for sql in restore_backup.fixup_sql(host_name, host_address, host_unique_id,
                                            he_sd_name, when):
            self.psql(sql)
        done = ['the old engine VM %s removed' % row[1] for row in vms]
        done += ['this host, known to the backup as %s (%s), removed' % (row[1], row[2])
                 for row in hosts]
        done += ['the old hosted-engine storage domain %s renamed %s_old_%s'
                 % (row[1], row[1], when) for row in domains]
        return done

    def spm_id(self, host_name):
        """This host's id in its data center as the restored engine gave it (vds_spm_id,
        oVirt's `vds` view), or None when the engine does not know the host."""
        rows = self.psql('SELECT vds_spm_id FROM vds WHERE vds_name = %s;'
                         % restore_backup.sql_quote(host_name, 'host name'))
        if not rows or not rows[0][0].strip():
            return None
        try:
            return int(rows[0][0])
        except ValueError:
            raise RestoreFailed('the restored engine gives this host the id %r: not a number'
                                % rows[0][0])

    def engine_setup(self, answers, limit):
        remote = '%s/ovirt-engine-restore-answers' % REMOTE_DIR
        self.session.write_file(remote, cloud_init.answers_text(answers), mode=0o600)
        try:
            status = self._run('engine-setup', ENGINE_SETUP_COMMAND.format(
                answers=shlex.quote(remote)), limit)
        finally:
            self.session.run('rm -f %s' % shlex.quote(remote), None, timeout=60)
        self._check('engine-setup', status, 'its output is above; its logs are in '
                    '/var/log/ovirt-engine/setup/ in the engine VM')

    def remove(self, remote):
        self.session.run('rm -f %s' % shlex.quote(remote), None, timeout=60)


def connect(fqdn, host_key, password, limit, reporter):
    """The SSH session to the engine VM (engine_vm_ssh), awaited until sshd answers."""
    return engine_vm_ssh.connect(fqdn, host_key, password=password, wait=limit,
                                 reporter=reporter)


# what a failed step raises: one line each
ERRORS = (RestoreFailed, engine_vm_ssh.EngineVMSSHError)
