"""The machine dialect, driven by a second process that reads the frames and answers."""
import subprocess
import sys

from .conftest import HOSTED_ENGINE

ANSWERS = {
    'DEPLOY_PROCEED': 'Yes',
    'ENGINE_ADMIN_PASSWORD': 'Machine-Pa55',
    'ENGINE_ADMIN_PASSWORD_CONFIRM': 'Machine-Pa55',
    'DIALOG_SMTP_SERVER': 'smtp.example.com',
    'DIALOG_SMTP_PORT': '',          # take the default
    'DIALOG_SENDER_EMAIL': 'he@example.com',
    'DIALOG_DEST_EMAIL': 'ops@example.com',
    'CONFIRM_SETTINGS': 'Yes',
}


def drive(prefix, answers, extra=()):
    """Read frames line by line; answer each ***Q:STRING NAME after its **%QEnd."""
    proc = subprocess.Popen(
        [sys.executable, HOSTED_ENGINE, '--deploy',
         '--otopi-environment=DIALOG/dialect=str:machine'] + list(extra),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=prefix.env, bufsize=1)
    frames = []
    questions = []
    current = None
    for line in proc.stdout:
        line = line.rstrip('\n')
        frames.append(line)
        if line.startswith('**%QStart: '):
            current = {'name': line.split(': ', 1)[1], 'lines': []}
        elif current is not None:
            current['lines'].append(line)
            if line.startswith('**%QEnd: '):
                questions.append(current)
                name = current['name']
                current = None
                if name not in answers:
                    proc.stdin.close()
                    continue
                proc.stdin.write(answers[name] + '\n')
                proc.stdin.flush()
    proc.wait(timeout=60)
    return proc.returncode, frames, questions, proc.stderr.read()


def test_machine_dialect_full_run(prefix):
    code, frames, questions, err = drive(prefix, ANSWERS)
    assert code == 0, '\n'.join(frames) + err
    assert [q['name'] for q in questions] == list(ANSWERS)
    proceed = questions[0]['lines']
    assert '**%QDefault: Yes' in proceed
    assert '**%QValidValues: Yes|No' in proceed
    assert '**%QHidden: FALSE' in proceed
    assert '***Q:STRING DEPLOY_PROCEED' in proceed
    assert any(line.startswith('### Are you sure') for line in proceed)
    assert '**%QHidden: TRUE' in questions[1]['lines']
    assert '***L:INFO Stage: Initializing' in frames
    assert '***L:INFO Hosted Engine successfully set up' in frames
    assert any(f.startswith('**%EventStart STAGE customization METHOD ') for f in frames)
    assert any(f.startswith('**%EventEnd STAGE closeup METHOD ') or
               f.startswith('**%EventEnd STAGE cleanup METHOD ') for f in frames)
    assert frames[-1] == '***TERMINATE'
    assert not any(f.startswith('[') for f in frames)    # no human formatting
    answers = open(prefix.path('/etc/ovirt-hosted-engine/answers.conf')).read()
    assert 'OVEHOSTED_NOTIF/smtpServer=str:smtp.example.com' in answers
    assert 'OVEHOSTED_NOTIF/smtpPort=int:25' in answers
    for path in prefix.all_files():
        assert 'Machine-Pa55' not in open(path).read()


def test_machine_invalid_reply_is_an_error(prefix):
    answers = dict(ANSWERS, DIALOG_SMTP_PORT='not-a-port')
    code, frames, questions, _ = drive(prefix, answers)
    assert code == 1
    assert questions[-1]['name'] == 'DIALOG_SMTP_PORT'     # not asked again
    assert any(f.startswith('***L:ERROR') and 'DIALOG_SMTP_PORT' in f for f in frames)
    assert frames[-1] == '***TERMINATE'


def test_machine_end_of_input_aborts(prefix):
    code, frames, questions, _ = drive(prefix, {'DEPLOY_PROCEED': 'Yes'})
    assert code == 1
    assert any('End of input' in f for f in frames)
    assert len(prefix.all_files()) == 1
