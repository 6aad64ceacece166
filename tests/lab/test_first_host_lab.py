"""deploy/first_host.py in the lab: host2 reads host1's answer file over SFTP, as an
additional host's deploy does, pinned to the fingerprint `hosted-engine-lab
ssh-fingerprint host1` prints."""
import json
import sys

from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.lab import sshd

# Run inside a lab host; the password comes on stdin, never on a command line.
FETCH = r'''
import json, sys
from ovirt_hosted_engine_setup.deploy import first_host
password = sys.stdin.readline().rstrip('\n')
address, fingerprint = sys.argv[1], sys.argv[2]
out = {'host_key': first_host.host_key(address)}
try:
    out['text'] = first_host.fetch_answers(address, 22, password, fingerprint)
except first_host.FirstHostError as e:
    out['error'] = str(e)
print(json.dumps(out))
'''

ANSWERS = ('[environment:default]\n'
           'OVEHOSTED_STORAGE/storageDomainName=str:hosted_storage\n'
           'OVEHOSTED_STORAGE/hostID=int:1\n')


def fetch(lab, address, fingerprint, password=sshd.ROOT_PASSWORD):
    r = lab.exec('host2', sys.executable, '-c', FETCH, address, fingerprint,
                 input=password + '\n')
    return json.loads(r.stdout)


def test_host2_fetches_host1s_answer_file(lab):
    lab.exec('host1', 'sh', '-c', 'cat > %s' % paths.ETC_ANSWER_FILE, input=ANSWERS)
    fp = lab.cli('ssh-fingerprint', 'host1').stdout.strip()
    out = fetch(lab, 'host1.lab.test', fp)
    assert out.get('error') is None
    assert out['text'] == ANSWERS
    assert out['host_key'] == ['ssh-ed25519', fp]


def test_another_hosts_fingerprint_is_refused(lab):
    lab.exec('host1', 'sh', '-c', 'cat > %s' % paths.ETC_ANSWER_FILE, input=ANSWERS)
    fp1 = lab.cli('ssh-fingerprint', 'host1').stdout.strip()
    fp2 = lab.cli('ssh-fingerprint', 'host2').stdout.strip()
    out = fetch(lab, 'host1', fp2)
    assert 'text' not in out
    assert out['error'] == (
        'the SSH host key of host1 changed: expected %s, the host offers %s: if host1 was '
        'reinstalled, confirm the new fingerprint; otherwise do not continue' % (fp2, fp1))


def test_wrong_password_and_missing_file(lab):
    fp1 = lab.cli('ssh-fingerprint', 'host1').stdout.strip()
    lab.exec('host1', 'sh', '-c', 'cat > %s' % paths.ETC_ANSWER_FILE, input=ANSWERS)
    out = fetch(lab, 'host1', fp1, password='not-' + sshd.ROOT_PASSWORD)
    assert out['error'] == 'the first host host1 refused the root password: type it again'
    lab.exec('host1', 'rm', '-f', paths.ETC_ANSWER_FILE)
    out = fetch(lab, '192.168.222.11', fp1)
    assert out['error'] == (
        '192.168.222.11 has no /etc/ovirt-hosted-engine/answers.conf: is 192.168.222.11 the '
        'first host of this hosted engine? run the deploy there first')
