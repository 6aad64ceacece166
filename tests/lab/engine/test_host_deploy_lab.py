"""Engine-driven hosted-engine host deploy over SSH, in the lab.

The lab engine runs inside host1 (its state set up by the engine's setup module, the
hosted_storage domain known as a first host's deploy leaves it) and adds host2 with
deploy_hosted_engine=true and host2's root password: the engine logs in over SSH (host2's
sshd, its key checked against `hosted-engine-lab ssh-fingerprint host2`), installs the
engine CA where host2's agent trusts it, writes the answer file and runs `hosted-engine
--deploy --config-append=FILE </dev/null` there. In host2's own mount namespace,
`hosted-engine` and `ovirt-hosted-engine-cleanup` are replaced by a recorder that keeps
what it was given (arguments, the answer file, its mode, its stdin) and fails or succeeds
as the test says: this checks the engine's side of the contract up to the point where the
host-side flow runs."""
import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from daemon_proc import TOP, free_port, wait_for
from ovirt_hosted_engine_setup.lab import sshd as lab_sshd
from ovirt_hosted_engine_setup.lab.engine import host_deploy
from ovirt_hosted_engine_setup.lab.engine.state import State

from ..conftest import LAB_CLI
from .engine_proc import ADMIN_PASSWORD, FQDN, engine_setup

HOST2 = '192.168.222.12'
STORAGE = '/var/lib/ovirt-hosted-engine-lab/lab/storage'
LAST_ERROR = "[ ERROR ] Failed to execute stage 'Misc configuration': test failure 4711"

RECORDER = r"""#!/bin/sh
# records how the engine ran this command on the host, then exits as told
out=%(out)s/$(basename "$0")
mkdir -p "$out"
printf '%%s\n' "$@" > "$out/args"
readlink /proc/self/fd/0 > "$out/stdin"
for a in "$@"; do
    case "$a" in --config-append=*)
        f="${a#--config-append=}"
        echo "$f" > "$out/path"
        stat -c %%a "$f" > "$out/mode"
        cp "$f" "$out/answers";;
    esac
done
echo "[ INFO  ] Stage: Initializing"
echo "[ INFO  ] recorder of $(basename "$0") on $(hostname)"
rc=$(cat %(out)s/exit-status)
if [ "$rc" != 0 ]; then
    echo "[ ERROR ] an earlier error" >&2
    echo "%(last)s"
    echo "[ INFO  ] Stage: Clean up"
fi
exit "$rc"
"""


def engine_state(eng):
    """The engine's inventory, read from its database."""
    return State(eng.state_dir)


class LabEngine:
    """The lab engine process inside host1 and SDK calls made from inside host1."""

    def __init__(self, lab, base):
        self.lab = lab
        self.base = base
        self.state_dir = os.path.join(base, 'state')
        self.https_port = free_port()
        self.http_port = free_port()
        self.pid_file = os.path.join(base, 'engine.pid')
        self.proc = None

    def start(self):
        self.stderr = open(os.path.join(self.base, 'engine.stderr'), 'w')
        self.proc = subprocess.Popen(
            LAB_CLI + ['exec', 'host1', '--', 'python3', '-m',
                       'ovirt_hosted_engine_setup.lab.engine',
                       '--state-dir', self.state_dir, '--address', '127.0.0.1',
                       '--http-port', str(self.http_port), '--https-port', str(self.https_port),
                       '--pid-file', self.pid_file, '--monitor-interval', '1', '--debug'],
            env=self.lab.env, stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
            cwd=TOP)
        wait_for('the lab engine in host1', lambda: os.path.exists(self.pid_file)
                 or self.proc.poll() is not None, 30)
        assert self.proc.poll() is None, open(self.stderr.name).read()

    def stop(self):
        if self.proc is None:
            return None
        with open(self.pid_file) as f:
            os.kill(int(f.read()), signal.SIGTERM)
        rc = self.proc.wait(30)
        self.stderr.close()
        return rc

    def log(self):
        with open(os.path.join(self.state_dir, 'engine.log')) as f:
            return f.read()

    def sdk(self, body, timeout=120):
        """Run body (Python, with conn and types) in host1; return what it prints as JSON."""
        code = ('import json, sys, time\nimport ovirtsdk4 as sdk\ntypes = sdk.types\n'
                'conn = sdk.Connection(url="https://127.0.0.1:%d/ovirt-engine/api", '
                'username="admin@internal", password=sys.stdin.readline().rstrip("\\n"), '
                'ca_file=%r)\n'
                'def wait(hid, status, limit=40):\n'
                '    svc = conn.system_service().hosts_service().host_service(hid)\n'
                '    end = time.monotonic() + limit\n'
                '    h = svc.get()\n'
                '    while h.status.value != status and time.monotonic() < end:\n'
                '        time.sleep(0.3)\n'
                '        h = svc.get()\n'
                '    return {"status": h.status.value, "detail": h.status_detail,\n'
                '            "fingerprint": h.ssh.fingerprint if h.ssh else None,\n'
                '            "id": h.id}\n'
                % (self.https_port, os.path.join(self.state_dir, 'pki', 'ca.pem')) + body
                + '\nconn.close()\n')
        r = self.lab.exec('host1', 'python3', '-c', code, input=ADMIN_PASSWORD + '\n',
                          check=False, timeout=timeout)
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def setup(lab):
    base = tempfile.mkdtemp(prefix='engine-host-deploy-', dir='/var/tmp')
    out = os.path.join(base, 'recorded')
    os.makedirs(out)
    r = engine_setup(os.path.join(base, 'state'))
    assert r.returncode == 0, r.stderr
    # the hosted-engine storage domain, as the engine imports it from the first host
    State(os.path.join(base, 'state')).put('storage_domains', {
        'id': 'c3b3c2a4-1111-4222-8333-444455556666', 'name': 'hosted_storage', 'type': 'data',
        'storage_type': 'localfs', 'address': '', 'path': STORAGE, 'status': 'active'})
    # the recorder replaces the commands in host2 only (its own mount namespace)
    mounted = []
    for cmd in ('hosted-engine', 'ovirt-hosted-engine-cleanup'):
        fake = os.path.join(base, cmd)
        with open(fake, 'w') as f:
            f.write(RECORDER % {'out': out, 'last': LAST_ERROR})
        os.chmod(fake, 0o755)
        target = os.path.join(TOP, '.venv', 'bin', cmd)
        lab.exec('host2', 'mount', '--bind', fake, target)
        mounted.append(target)
    eng = LabEngine(lab, base)
    eng.out = out
    eng.start()
    yield eng
    try:
        assert eng.stop() == 0, open(eng.stderr.name).read()[-3000:]
    finally:
        for target in mounted:
            lab.exec('host2', 'umount', target, check=False)
        shutil.rmtree(base, ignore_errors=True)


def recorded(eng, cmd, name):
    with open(os.path.join(eng.out, cmd, name)) as f:
        return f.read()


def set_exit(eng, status):
    with open(os.path.join(eng.out, 'exit-status'), 'w') as f:
        f.write('%d\n' % status)


def test_engine_deploys_host2_over_ssh(lab, setup):
    eng = setup
    fp = lab.cli('ssh-fingerprint', 'host2').stdout.strip()
    assert fp.startswith('SHA256:')

    # 1. the deploy on the host fails: install_failed with its last error line
    set_exit(eng, 1)
    h = eng.sdk(
        'h = conn.system_service().hosts_service().add(types.Host(name="host2", address=%r, '
        'root_password=%r, ssh=types.Ssh(fingerprint=%r), cluster=types.Cluster(name="Default")),'
        ' deploy_hosted_engine=True)\n'
        'first = h.status.value\n'
        'r = wait(h.id, "install_failed")\n'
        'r["first"] = first\n'
        'print(json.dumps(r))' % (HOST2, lab_sshd.ROOT_PASSWORD, fp))
    assert h['first'] == 'installing'
    assert h['status'] == 'install_failed', h
    assert h['detail'] == ('hosted-engine --deploy failed on %s (exit status 1): %s'
                           % (HOST2, LAST_ERROR))
    assert h['fingerprint'] == fp
    spm_id = engine_state(eng).get('hosts', h['id'])['spm_id']
    assert spm_id == 1           # the first host of the data center in this engine
    # the answer file: 0600, the contract, in a directory removed afterwards
    assert recorded(eng, 'hosted-engine', 'args').split('\n')[:2] == [
        '--deploy', '--config-append=' + recorded(eng, 'hosted-engine', 'path').strip()]
    assert recorded(eng, 'hosted-engine', 'mode').strip() == '600'
    assert recorded(eng, 'hosted-engine', 'stdin').strip() == '/dev/null'
    assert recorded(eng, 'hosted-engine', 'answers') == host_deploy.answer_file(
        'localfs', STORAGE, spm_id, HOST2)
    assert not os.path.exists(os.path.dirname(recorded(eng, 'hosted-engine', 'path').strip()))
    # its output is in the engine log line by line; the password nowhere
    log = eng.log()
    assert 'host host2: hosted-engine --deploy: [ INFO  ] recorder of hosted-engine on host2' \
        in log
    assert 'host host2: engine CA installed' in log
    assert lab_sshd.ROOT_PASSWORD not in log
    assert lab_sshd.ROOT_PASSWORD not in json.dumps(
        {kind: engine_state(eng).items(kind) for kind in ('hosts', 'storage_domains', 'vms')})

    # 2. installed again with a deploy that succeeds: the engine CA it installed over SSH
    # lets the engine reach host2's agent, and the host comes up
    set_exit(eng, 0)
    up = eng.sdk(
        'svc = conn.system_service().hosts_service().host_service(%r)\n'
        'svc.install(root_password=%r, deploy_hosted_engine=True)\n'
        'print(json.dumps(wait(%r, "up")))' % (h['id'], lab_sshd.ROOT_PASSWORD, h['id']))
    assert up['status'] == 'up', up
    with open(os.path.join(eng.state_dir, 'pki', 'ca.pem')) as f:
        ca = f.read()
    trusted = lab.exec('host2', 'cat', '/var/lib/ovirt-hosted-engine-hostd/pki/trusted-cas/'
                       'engine-%s.pem' % FQDN).stdout
    assert trusted == ca

    # 3. undeploy: only in maintenance; ovirt-hosted-engine-cleanup -q runs on the host
    res = eng.sdk(
        'svc = conn.system_service().hosts_service().host_service(%r)\n'
        'try:\n'
        '    svc.install(root_password=%r, undeploy_hosted_engine=True)\n'
        '    refused = None\n'
        'except sdk.Error as e:\n'
        '    refused = e.code\n'
        'svc.deactivate()\n'
        'svc.install(root_password=%r, undeploy_hosted_engine=True, activate=False)\n'
        'time.sleep(0.5)\n'
        'r = wait(%r, "maintenance")\n'
        'r["refused"] = refused\n'
        'svc.remove()\n'
        'print(json.dumps(r))' % (h['id'], lab_sshd.ROOT_PASSWORD, lab_sshd.ROOT_PASSWORD,
                                  h['id']))
    assert res['refused'] == 409
    assert res['status'] == 'maintenance', res
    assert recorded(eng, 'ovirt-hosted-engine-cleanup', 'args') == '-q\n'
    assert recorded(eng, 'ovirt-hosted-engine-cleanup', 'stdin').strip() == '/dev/null'
    assert 'host host2: installation ended successfully; the host stays in maintenance' \
        in eng.log()


def test_wrong_root_password_is_install_failed(lab, setup):
    eng = setup
    h = eng.sdk(
        'h = conn.system_service().hosts_service().add(types.Host(name="host2-again", '
        'address=%r, root_password="not-the-password", cluster=types.Cluster(name="Default")),'
        ' deploy_hosted_engine=True)\n'
        'r = wait(h.id, "install_failed")\n'
        'conn.system_service().hosts_service().host_service(h.id).remove()\n'
        'print(json.dumps(r))' % HOST2)
    assert h['status'] == 'install_failed'
    assert h['detail'].startswith('SSH to %s port 22 failed while installing the engine CA: '
                                  % HOST2)
    assert 'Permission denied' in h['detail']
    # trust on first use: the key lab host2 has
    assert h['fingerprint'] == lab.cli('ssh-fingerprint', 'host2').stdout.strip()
    assert 'not-the-password' not in eng.log()
