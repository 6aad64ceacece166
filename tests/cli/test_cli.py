"""The `hosted-engine` command line: verbs, options and bad input found before the deploy
touches the host (full deploys run in the lab: tests/lab/test_deploy_*.py)."""
import os

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


def test_restore_from_missing_file(prefix, tmp_path):
    r = prefix.run('--deploy', '--restore-from-file=%s' % (tmp_path / 'none.tar'))
    assert r.returncode == 1
    assert 'none.tar does not exist' in one_error_line(r)
    assert prefix.all_files() == []


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
    after = [f for f in prefix.all_files() if not f.endswith('.log')]
    assert after == before
