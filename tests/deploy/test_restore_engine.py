"""The restore steps run in the engine VM (deploy/restore_engine.py), against a recording
session with the interface of engine_vm_ssh.EngineVMSSH; the real SSH session is tested in
test_engine_vm_ssh.py and the whole restore in tests/lab/test_restore.py."""
import logging
import shlex

import pytest

from ovirt_hosted_engine_setup.deploy import restore_engine


class Session:
    """Records uploads, files and commands; answers each command from `replies`:
    {command prefix: (status, stdout lines, stderr lines)}."""

    def __init__(self, replies=None):
        self.replies = replies or {}
        self.commands = []
        self.files = {}
        self.uploads = []

    def upload(self, local, remote, progress=None, mode=0o600):
        self.uploads.append((local, remote, mode))
        if progress:
            progress(10, 10, 0.1)

    def write_file(self, remote, data, mode=0o600):
        self.files[remote] = (data, mode)

    def run(self, command, on_line=None, timeout=600, stdin=None, check=False):
        self.commands.append(command)
        for prefix, (status, out, err) in self.replies.items():
            if command.startswith(prefix):
                for line in out:
                    on_line and on_line('stdout', line)
                for line in err:
                    on_line and on_line('stderr', line)
                return status
        return 0


def job(session, shown=None):
    shown = [] if shown is None else shown
    return restore_engine.EngineVmRestore(session, lambda what, line: shown.append(
        (what, line)), logging.getLogger('test')), shown


def test_restore_runs_engine_backup_with_the_options_and_shows_its_output():
    s = Session({'engine-backup': (0, ['Preparing to restore:', 'Done.'], [])})
    j, shown = job(s)
    remote = j.copy_archive('/backups/engine 1.tar.gz')
    assert remote == '/root/engine 1.tar.gz' and s.uploads[0][2] == 0o600
    j.restore(remote, 60)
    argv = shlex.split(s.commands[0])
    assert argv[:2] == ['engine-backup', '--mode=restore']
    assert '--file=/root/engine 1.tar.gz' in argv
    assert '--provision-all-databases' in argv and '--restore-permissions' in argv
    assert shown == [('engine-backup', 'Preparing to restore:'), ('engine-backup', 'Done.')]


def test_a_failed_restore_is_one_line_naming_its_log():
    s = Session({'engine-backup': (1, [], ['FATAL: the backup is of a newer engine'])})
    j, shown = job(s)
    with pytest.raises(restore_engine.RestoreFailed) as e:
        j.restore('/root/b.tar.gz', 60)
    assert 'exit status 1' in str(e.value) and restore_engine.RESTORE_LOG in str(e.value)
    assert '\n' not in str(e.value)
    assert shown == [('engine-backup', 'FATAL: the backup is of a newer engine')]


def test_fix_ups_report_what_they_change_then_change_it():
    psql = restore_engine.ENGINE_PSQL
    s = Session({
        '%s -c %s' % (psql, shlex.quote('SELECT vm_guid')): (0, ['1|HostedEngine|6'], []),
        '%s -c %s' % (psql, shlex.quote('SELECT vds_id')): (0, ['2|host1|host1.lab.test'], []),
        '%s -c %s' % (psql, shlex.quote('SELECT id')): (0, ['3|hosted_storage'], []),
    })
    # the prefixes above are the start of the quoted statements
    s.replies = {k.rstrip("'"): v for k, v in s.replies.items()}
    j, _ = job(s)
    done = j.fix_up('host1', 'host1.lab.test', 'uuid-1', 'hosted_storage', '20261203T101010')
    assert done == ['the old engine VM HostedEngine removed',
                    'this host, known to the backup as host1 (host1.lab.test), removed',
                    'the old hosted-engine storage domain hosted_storage renamed '
                    'hosted_storage_old_20261203T101010']
    sql = [shlex.split(c)[2] for c in s.commands]
    assert [x.split()[0] for x in sql] == ['SELECT'] * 3 + ['DELETE', 'DELETE', 'UPDATE']
    assert "vds_unique_id = 'uuid-1'" in sql[4]


def test_a_failed_fix_up_names_the_sql_error():
    s = Session({restore_engine.ENGINE_PSQL: (1, [], ['ERROR:  no such table: vm_static'])})
    j, _ = job(s)
    with pytest.raises(restore_engine.RestoreFailed) as e:
        j.fix_up('host1', 'host1.lab.test', '', 'hosted_storage', '20261203T101010')
    assert 'no such table: vm_static' in str(e.value)


def test_engine_setup_gets_its_answers_in_a_private_file_removed_even_on_failure():
    s = Session({'engine-setup': (1, ['[ ERROR ] it failed'], [])})
    j, shown = job(s)
    answers = restore_engine.restore_answers('engine.lab.test', 's3cret', True)
    with pytest.raises(restore_engine.RestoreFailed):
        j.engine_setup(answers, 60)
    (remote, (text, mode)), = s.files.items()
    assert mode == 0o600 and 'OVESETUP_PKI/renew=bool:True' in text
    assert 'OVESETUP_CONFIG/fqdn=str:engine.lab.test' in text
    assert all('s3cret' not in c for c in s.commands)
    assert s.commands[-1] == 'rm -f %s' % remote
    assert shown == [('engine-setup', '[ ERROR ] it failed')]


def test_spm_id_of_this_host_from_the_restored_engine():
    psql = restore_engine.ENGINE_PSQL
    s = Session({psql: (0, ['3'], [])})
    j, _ = job(s)
    assert j.spm_id("host'1") == 3
    assert shlex.split(s.commands[0])[2] == "SELECT vds_spm_id FROM vds WHERE vds_name = 'host''1';"
    j, _ = job(Session({psql: (0, [], [])}))
    assert j.spm_id('host1') is None
