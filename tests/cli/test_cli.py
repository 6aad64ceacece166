"""The `hosted-engine` command line: verbs, options and bad input found before the deploy
touches the host (full deploys run in the lab: tests/lab/test_deploy_*.py)."""
import os

import pytest

def one_error_line(result):
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if 'ERROR' in line or 'hosted-engine:' in line]
    assert len(lines) == 1, result.stdout + result.stderr
    assert 'Traceback' not in result.stdout + result.stderr
    return lines[0]


def test_help_lists_working_verbs(prefix):
    r = prefix.run('--help')
    assert r.returncode == 0
    assert '--deploy' in r.stdout and '--check-deployed' in r.stdout
    r = prefix.run('--deploy', '--help')
    assert r.returncode == 0 and '--config-append=FILE' in r.stdout


def test_no_verb_and_bad_verb(prefix):
    r = prefix.run()
    assert r.returncode == 1 and 'Usage:' in r.stderr
    r = prefix.run('--frobnicate')
    assert r.returncode == 1 and 'unknown command --frobnicate' in r.stderr


def test_unknown_deploy_option(prefix):
    r = prefix.run('--deploy', '--no-such-option')
    assert r.returncode == 1
    assert 'Unknown option --no-such-option' in one_error_line(r)
    assert prefix.all_files() == []


def _only_log_left(prefix):
    return [f for f in prefix.all_files() if not f.endswith('.log')] == []


def test_restore_from_file_bad_archive_refused_before_anything(prefix, tmp_path):
    """--restore-from-file: the archive is checked at setup, before any question and any
    change; a bad one is one line naming it and the fix (tests/deploy/test_restore_backup.py
    has every refusal)."""
    backup = tmp_path / 'engine-backup.tar.gz'
    backup.write_bytes(b'backup')
    for arg, words in (('--restore-from-file=%s' % backup, 'is not a tar archive'),
                       ('--restore-from-file=%s' % (tmp_path / 'none.tar'), 'does not exist'),
                       ('--restore-from-file=%s' % tmp_path, 'is a directory')):
        r = prefix.run('--deploy', arg)
        assert r.returncode == 1
        errors = [line for line in r.stdout.splitlines() if '[ ERROR ]' in line]
        assert len(errors) == 2 and words in errors[0], r.stdout
        assert 'nothing was changed on this host' in errors[1]
        assert 'Are you sure you want to continue' not in r.stdout
        assert 'Traceback' not in r.stdout + r.stderr
        assert _only_log_left(prefix)
    r = prefix.run('--deploy', '--restore-from-file')
    assert r.returncode == 1
    assert one_error_line(r) == ('hosted-engine: --restore-from-file needs a value: '
                                 '--restore-from-file=VALUE')
    help_text = prefix.run('--deploy', '--help').stdout
    assert 'engine-backup --mode=backup archive' in help_text


def test_every_preview_row_is_read_by_a_plugin():
    """A key shown in the configuration preview is used by the deploy: some plugin other than
    the preview and the defaults reads it."""
    import glob
    import re

    from ovirt_hosted_engine_setup.deploy import constants
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sources = {}
    for f in glob.glob(os.path.join(top, 'plugins', '**', '*.py'), recursive=True):
        if not f.endswith(os.path.join('core', 'preview.py')) and \
                not f.endswith(os.path.join('core', 'core.py')):
            with open(f) as fh:
                sources[f] = fh.read()
    unused = []
    for cls in (constants.CoreEnv, constants.NetworkEnv, constants.EngineEnv,
                constants.StorageEnv, constants.VMEnv, constants.VDSMEnv, constants.NotifEnv,
                constants.SanlockEnv):
        for attr, key in vars(cls).items():
            if getattr(key, 'preview', None):
                use = re.compile(r'\b%s\.%s\b' % (cls.__name__, attr))
                if not any(use.search(text) for text in sources.values()):
                    unused.append(str(key))
    assert unused == []


def test_block_storage_refusal_lists_every_supported_type():
    import pytest

    from ovirt_hosted_engine_setup.deploy import storage_checks
    for dtype in ('iscsi', 'fc'):
        with pytest.raises(ValueError) as e:
            storage_checks.domain_type(dtype)
        assert str(e.value).endswith('does not support: use one of %s'
                                     % ', '.join(storage_checks.SUPPORTED_TYPES))


def test_misspelt_bool_in_answer_file_runs_nothing(prefix, tmp_path):
    """bool:Flase was read as True and a full deploy ran: now an error before anything."""
    conf = tmp_path / 'a.conf'
    conf.write_text('[environment:default]\nOVEHOSTED_CORE/skipTTYCheck=bool:True\n'
                    'OVEHOSTED_CORE/deployProceed=bool:Flase\n')
    r = prefix.run('--deploy', '--config-append=%s' % conf)
    assert r.returncode == 1
    line = one_error_line(r)
    assert "line 3: OVEHOSTED_CORE/deployProceed: 'Flase' is not a bool" in line
    assert 'True, False, yes, no, y, n, t, f, 1, 0 (any case)' in line
    assert 'Stage:' not in r.stdout and _only_log_left(prefix)


def test_misspelt_bool_on_command_line_runs_nothing(prefix):
    r = prefix.run('--deploy', '--otopi-environment=OVEHOSTED_CORE/confirmSettings=bool:ture')
    assert r.returncode == 1
    assert "command line: OVEHOSTED_CORE/confirmSettings: 'ture' is not a bool" in \
        one_error_line(r)
    assert 'Stage:' not in r.stdout and _only_log_left(prefix)


def test_string_for_a_bool_key_is_an_error(prefix, tmp_path):
    conf = tmp_path / 'a.conf'
    conf.write_text('[environment:default]\nOVEHOSTED_CORE/deployProceed=str:No\n')
    r = prefix.run('--deploy', '--config-append=%s' % conf)
    assert r.returncode == 1
    line = one_error_line(r)
    assert 'line 2: OVEHOSTED_CORE/deployProceed: str:No is a str value' in line
    assert 'takes a bool' in line
    assert 'Stage:' not in r.stdout and _only_log_left(prefix)


def test_answer_file_declining_is_named_and_unknown_key_warned(prefix, tmp_path):
    conf = tmp_path / 'a.conf'
    conf.write_text('[environment:default]\nOVEHOSTED_CORE/skipTTYCheck=bool:True\n'
                    'OVEHOSTED_STORAGE/storageDomainConection=str:nfs.example.com:/he\n'
                    'OVEHOSTED_CORE/deployProceed=bool:no\n')
    r = prefix.run('--deploy', '--config-append=%s' % conf)
    assert r.returncode == 1
    assert ('[WARNING] %s line 3: OVEHOSTED_STORAGE/storageDomainConection: unknown key, '
            'nothing reads it; did you mean OVEHOSTED_STORAGE/storageDomainConnection?'
            % conf) in r.stdout
    assert ('[ ERROR ] Aborted: The answer file %s line 4 declined the deploy: '
            'OVEHOSTED_CORE/deployProceed=bool:False; nothing was changed on this host'
            % conf) in r.stdout
    assert 'Aborted by user' not in r.stdout
    assert _only_log_left(prefix)


@pytest.mark.parametrize('special', ['/dev/zero', '/dev/urandom', 'fifo', 'big'])
def test_answer_file_not_regular_or_too_large_is_refused(prefix, tmp_path, special):
    if special == 'fifo':
        special = str(tmp_path / 'fifo')
        os.mkfifo(special)
    elif special == 'big':
        special = str(tmp_path / 'big.conf')
        with open(special, 'w') as f:
            f.write('[environment:default]\n' + '#' * (1 << 20))
    r = prefix.run('--deploy', '--config-append=%s' % special)
    assert r.returncode == 1
    line = one_error_line(r)
    assert special in line
    assert 'not a regular file' in line or 'more than answer files may have (1 MiB)' in line
    assert 'Stage:' not in r.stdout and _only_log_left(prefix)


def test_malformed_environment_assignment(prefix):
    r = prefix.run('--deploy', '--otopi-environment=OVEHOSTED_VM/vmVCpus')
    assert r.returncode == 1
    assert 'is not KEY=type:value' in one_error_line(r)
    assert [f for f in prefix.all_files() if not f.endswith('.log')] == []


def test_invalid_value_for_validated_key_in_answer_file(prefix, tmp_path):
    conf = tmp_path / 'bad.conf'
    conf.write_text('[environment:default]\nOVEHOSTED_NOTIF/smtpPort=int:99999\n')
    r = prefix.run('--deploy', '--config-append=%s' % conf)
    assert r.returncode == 1
    line = one_error_line(r)
    assert 'line 2' in line and 'OVEHOSTED_NOTIF/smtpPort' in line and '99999' in line
    assert [f for f in prefix.all_files() if not f.endswith('.log')] == []


def test_bad_answer_file_line(prefix, tmp_path):
    conf = tmp_path / 'bad.conf'
    conf.write_text('[environment:default]\nOVEHOSTED_VM/vmVCpus=4\n')
    r = prefix.run('--deploy', '--config-append=%s' % conf)
    assert r.returncode == 1
    assert 'missing type' in one_error_line(r)


def test_check_deployed(prefix):
    assert prefix.run('--check-deployed').returncode == 1
    conf = prefix.path('/etc/ovirt-hosted-engine/hosted-engine.conf')
    os.makedirs(os.path.dirname(conf))
    with open(conf, 'w') as f:
        f.write('fqdn=engine.example.com\nvmid=0b4e9c3a-3f57-4bd8-a3e8-2f0c1a6c2d11\n')
    assert prefix.run('--check-deployed').returncode == 0


def test_existing_deployment_is_refused_before_anything_changes(prefix, tmp_path):
    conf = prefix.path('/etc/ovirt-hosted-engine/hosted-engine.conf')
    os.makedirs(os.path.dirname(conf))
    with open(conf, 'w') as f:
        f.write('fqdn=engine.example.com\nvmid=0b4e9c3a-3f57-4bd8-a3e8-2f0c1a6c2d11\n')
    answers = tmp_path / 'a.conf'
    answers.write_text('[environment:default]\nOVEHOSTED_CORE/deployProceed=bool:True\n'
                       'OVEHOSTED_CORE/skipTTYCheck=bool:True\n')
    before = prefix.all_files()
    r = prefix.run('--deploy', '--config-append=%s' % answers)
    assert r.returncode == 1
    failed = [line for line in r.stdout.splitlines() if 'Failed to execute stage' in line]
    assert len(failed) == 1 and 'Traceback' not in r.stdout + r.stderr, r.stdout
    line = failed[0]
    assert 'already a hosted-engine host' in line and 'ovirt-hosted-engine-cleanup' in line
    assert ('[ ERROR ] Hosted Engine deployment failed: nothing was changed on this host: fix '
            'the value or problem named above and run the deploy again') in r.stdout
    assert 're-deploy from scratch' not in r.stdout
    after = [f for f in prefix.all_files() if not f.endswith('.log')]
    assert after == before


def test_failure_advice_says_whether_this_host_was_changed():
    """The final line of a failed deploy: the cleanup hint only when the transaction was
    committed (closeup), else nothing was changed (what misc created was rolled back)."""
    import importlib.util
    import types

    from ovirt_hosted_engine_setup.runner.transaction import Transaction, TransactionElement
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'core_under_test', os.path.join(top, 'plugins', 'gr-he-common', 'core', 'core.py'))
    core = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(core)

    class Bridge(TransactionElement):
        def __str__(self):
            return 'management bridge ovirtmgmt on eth0'

    def advice(transaction):
        return core.Plugin(types.SimpleNamespace(main_transaction=transaction)).failure_advice()

    t = Transaction()
    assert advice(t).startswith('nothing was changed on this host: fix the value or problem')
    t.append(Bridge())
    t.prepare()
    t.abort()
    assert advice(t).startswith('what this run created was rolled back (management bridge '
                                'ovirtmgmt on eth0), so nothing was changed on this host')
    t = Transaction()
    t.append(Bridge())
    t.prepare()
    t.commit()
    assert 'run ovirt-hosted-engine-cleanup, then hosted-engine --deploy again' in advice(t)


def test_interrupted_after_the_commit_says_to_clean_up(caplog):
    import importlib.util
    import logging
    import types

    from ovirt_hosted_engine_setup.runner.constants import BaseEnv
    from ovirt_hosted_engine_setup.runner.transaction import Transaction
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'core_under_test2', os.path.join(top, 'plugins', 'gr-he-common', 'core', 'core.py'))
    core = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(core)
    for committed in (False, True):
        t = Transaction()
        t.prepare()
        if committed:
            t.commit()
        else:
            t.abort()
        env = {BaseEnv.INTERRUPTED: 'SIGINT', BaseEnv.ABORTED: False, BaseEnv.ERROR: True}
        caplog.clear()
        with caplog.at_level(logging.INFO):
            core.Plugin(types.SimpleNamespace(main_transaction=t, environment=env))._terminate()
        text = caplog.text
        if committed:
            assert 'Hosted Engine deployment interrupted: this host was changed: run ' \
                   'ovirt-hosted-engine-cleanup' in text
        else:
            assert text == ''          # the runner's one line says everything


def test_endless_input_without_line_end_is_bounded(prefix):
    """`hosted-engine --deploy < /dev/zero`: the answer is read up to its limit, not forever."""
    import subprocess
    import sys

    from .conftest import HOSTED_ENGINE
    with open('/dev/zero', 'rb') as zero:
        r = subprocess.run([sys.executable, HOSTED_ENGINE, '--deploy'], stdin=zero,
                           capture_output=True, text=True, env=prefix.env, timeout=60)
    assert r.returncode == 1
    assert "The answer to DEPLOY_PROCEED is longer than 65536 characters" in r.stdout, r.stdout
    assert 'Traceback' not in r.stdout + r.stderr
    assert _only_log_left(prefix)
