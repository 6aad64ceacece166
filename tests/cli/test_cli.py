"""The `hosted-engine` command line: verbs, options, unattended runs and bad input."""
import os

UNATTENDED = '''[environment:default]
OVEHOSTED_CORE/deployProceed=bool:True
OVEHOSTED_CORE/confirmSettings=bool:True
OVEHOSTED_ENGINE/adminPassword=str:File-Pa55word
OVEHOSTED_NOTIF/smtpServer=str:localhost
OVEHOSTED_NOTIF/smtpPort=int:25
OVEHOSTED_NOTIF/sourceEmail=str:root@localhost
OVEHOSTED_NOTIF/destEmail=str:root@localhost
'''


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


def test_unattended_deploy_from_answer_file(prefix, tmp_path):
    conf = tmp_path / 'answers.conf'
    conf.write_text(UNATTENDED)
    r = prefix.run('--deploy', '--config-append=%s' % conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '(Yes, No)' not in r.stdout and ']: ' not in r.stdout
    assert 'Hosted Engine successfully set up' in r.stdout
    for path in prefix.all_files():
        assert 'File-Pa55word' not in open(path).read(), path


def test_written_answer_file_replays_unattended(prefix, tmp_path):
    conf = tmp_path / 'answers.conf'
    conf.write_text(UNATTENDED)
    assert prefix.run('--deploy', '--config-append=%s' % conf).returncode == 0
    written = prefix.path('/etc/ovirt-hosted-engine/answers.conf')
    secrets = tmp_path / 'secrets.conf'
    secrets.write_text('[environment:default]\nOVEHOSTED_ENGINE/adminPassword=str:x-Pa55\n')
    r = prefix.run('--deploy', '--config-append=%s' % written,
                   '--config-append=%s' % secrets)
    assert r.returncode == 0, r.stdout
    assert ']: ' not in r.stdout


def test_password_on_command_line_appears_nowhere(prefix, tmp_path):
    conf = tmp_path / 'answers.conf'
    conf.write_text(UNATTENDED.replace('File-Pa55word', 'ignored'))
    r = prefix.run('--deploy', '--config-append=%s' % conf,
                   '--generate-answer=%s' % (tmp_path / 'gen.conf'),
                   '--otopi-environment=OVEHOSTED_ENGINE/adminPassword=str:CmdLine-Pa55')
    assert r.returncode == 0, r.stdout
    files = prefix.all_files() + [str(tmp_path / 'gen.conf')]
    assert any(f.endswith('.log') for f in files)
    for path in files:
        text = open(path).read()
        assert 'CmdLine-Pa55' not in text, path
    log = prefix.logs()[0]
    assert "OVEHOSTED_ENGINE/adminPassword=str:'**FILTERED**'" in open(log).read()
    assert 'CmdLine-Pa55' not in r.stdout


def test_unknown_deploy_option(prefix):
    r = prefix.run('--deploy', '--no-such-option')
    assert r.returncode == 1
    assert 'Unknown option --no-such-option' in one_error_line(r)
    assert prefix.all_files() == []


def test_restore_from_missing_file(prefix, tmp_path):
    r = prefix.run('--deploy', '--restore-from-file=%s' % (tmp_path / 'none.tar'))
    assert r.returncode == 1
    assert 'none.tar does not exist' in one_error_line(r)
    assert prefix.all_files() == []


def test_restore_from_file_is_stored_as_realpath(prefix, tmp_path):
    backup = tmp_path / 'backup.tar'
    backup.write_text('x')
    os.symlink(backup, tmp_path / 'link.tar')
    conf = tmp_path / 'answers.conf'
    conf.write_text(UNATTENDED)
    r = prefix.run('--deploy', '--restore-from-file=%s' % (tmp_path / 'link.tar'),
                   '--config-append=%s' % conf)
    assert 'Restore from backup file           : %s' % backup in r.stdout


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


def test_example_lab_answer_file_runs_unattended(prefix):
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), 'examples', 'lab-answers.conf')
    r = prefix.run('--deploy', '--config-append=%s' % example)
    assert r.returncode == 0, r.stdout
    assert ']: ' not in r.stdout
