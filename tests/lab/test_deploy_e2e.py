"""The first-host deploy's dialog in a one-host lab, before anything is changed: end of input
(Ctrl-D) at the first question of each section aborts with nothing created, the machine
dialect frames the questions of a real deploy for a program, and the example answer file
answers every question. The full deploy, typed through a pseudo-terminal, runs in
tests/lab/test_additional_hosts.py, where the engine then gets more hosts.
"""
import os
import subprocess

import pytest

from .conftest import LAB_CLI, module_lab
from .deploy_helpers import deploy, lab_storage, write_answers

lab = module_lab(1, 'he-deploy-test-')


def in_host(lab, *cmd, **kw):
    return lab.exec('host1', *cmd, **kw)


def nothing_created(lab):
    """No bridge, no storage domain, no configuration: the host as the lab made it."""
    caps = in_host(lab, 'ovirt-hosted-engine-rpc', 'Host', 'getCapabilities').stdout
    assert 'ovirtmgmt' not in caps
    assert os.listdir(lab_storage(lab)) == []
    etc = os.path.join(lab.dir, 'hosts', 'host1', 'etc-ovirt-hosted-engine')
    assert [f for f in os.listdir(etc) if not f.startswith('answers')] == []


# the first question of each section: (its key, the text of the error)
SECTION_FIRST = [
    ('OVEHOSTED_STORAGE/domainType', 'STORAGE_DOMAIN_TYPE'),
    ('OVEHOSTED_NETWORK/bridgeIf', 'NETWORK_BRIDGE_IF'),
    ('OVEHOSTED_VM/ovfArchive', 'OVEHOSTED_VMENV_OVF'),
    ('OVEHOSTED_ENGINE/datacenterName', 'OVEHOSTED_ENGINE_DATACENTER_NAME'),
]


@pytest.mark.parametrize('key,question', SECTION_FIRST)
def test_end_of_input_in_each_section_aborts_with_nothing_created(lab, tmp_path, key, question):
    answers = write_answers(lab, tmp_path / 'a.conf', drop=(key,))
    r = deploy(lab, answers, stdin=subprocess.DEVNULL, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert 'End of input while asking %s' % question in out, out
    assert 'Traceback' not in out
    nothing_created(lab)


def test_machine_dialect_frames_the_questions_of_a_real_deploy(lab, tmp_path):
    drop = ('OVEHOSTED_ENGINE/adminPassword', 'OVEHOSTED_NOTIF/smtpServer',
            'OVEHOSTED_CORE/confirmSettings')
    answers = write_answers(lab, tmp_path / 'a.conf', drop=drop)
    replies = {'ENGINE_ADMIN_PASSWORD': 'Machine-Pa55', 'ENGINE_ADMIN_PASSWORD_CONFIRM':
               'Machine-Pa55', 'DIALOG_SMTP_SERVER': 'smtp.lab.test', 'CONFIRM_SETTINGS': 'No'}
    proc = subprocess.Popen(
        LAB_CLI + ['exec', 'host1', '--', 'hosted-engine', '--deploy',
                   '--config-append=%s' % answers,
                   '--otopi-environment=DIALOG/dialect=str:machine'],
        env=lab.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, bufsize=1)
    frames, asked, current = [], [], None
    for line in proc.stdout:
        line = line.rstrip('\n')
        frames.append(line)
        if line.startswith('**%QStart: '):
            current = line.split(': ', 1)[1]
        elif current and line.startswith('**%QEnd: '):
            asked.append(current)
            proc.stdin.write(replies.get(current, '') + '\n')
            proc.stdin.flush()
            current = None
    assert proc.wait(timeout=120) == 1, '\n'.join(frames)
    assert asked == ['ENGINE_ADMIN_PASSWORD', 'ENGINE_ADMIN_PASSWORD_CONFIRM',
                     'DIALOG_SMTP_SERVER', 'CONFIRM_SETTINGS'], asked
    assert '***L:INFO Stage: Environment customization' in frames
    assert any(f.startswith('###') and 'CONFIGURATION PREVIEW' in f for f in frames)
    assert any(f.startswith('###') and 'smtp.lab.test' in f for f in frames)
    assert frames[-1] == '***TERMINATE'
    assert not any(f.startswith('[ INFO') for f in frames)      # no human formatting
    assert 'Machine-Pa55' not in '\n'.join(frames)
    nothing_created(lab)


def test_example_answer_file_answers_every_question(lab, tmp_path):
    """examples/lab-answers.conf (the README's unattended deploy) asks nothing; stopped at the
    preview here (the full unattended run is scripts/lab-deploy and the deploy benchmark)."""
    answers = write_answers(lab, tmp_path / 'a.conf',
                            extra={'OVEHOSTED_CORE/confirmSettings': 'bool:False'})
    r = deploy(lab, answers, stdin=subprocess.DEVNULL, timeout=300)
    out = r.stdout + r.stderr
    assert ']: ' not in out and 'End of input' not in out, out
    assert '%-35s: %s' % ('Engine FQDN', 'engine.lab.test') in out, out
    assert 'declined the deploy: OVEHOSTED_CORE/confirmSettings=bool:False' in out
    assert r.returncode == 1
    nothing_created(lab)
