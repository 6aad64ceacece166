"""sshd in every lab host: root logins with the lab password from another host, the host's
own keys, /etc/ssh and /etc/shadow, the machine's left untouched, nothing left after down."""
import hashlib
import json
import os
import subprocess
import sys

import pytest

from ovirt_hosted_engine_setup.lab import lab as labmod
from ovirt_hosted_engine_setup.lab import sshd
from ovirt_hosted_engine_setup.lab.lab import pids_in_ns, proc_start

from .conftest import LabRunner, lab_processes, outlived

# Run inside a lab host: log in to argv[1] as root with the password read from stdin (never
# on a command line), run `hostname`; print what happened as JSON.
LOGIN = r'''
import json, sys, paramiko
from ovirt_hosted_engine_setup.deploy.first_host import fingerprint_of
password = sys.stdin.readline().rstrip('\n')
t = paramiko.Transport((sys.argv[1], 22))
t.start_client(timeout=10)
out = {'fingerprint': fingerprint_of(t.get_remote_server_key()),
       'key_type': t.get_remote_server_key().get_name()}
try:
    t.auth_password('root', password)
except paramiko.AuthenticationException as e:
    out['auth'] = 'refused'
else:
    out['auth'] = 'ok'
    ch = t.open_session()
    ch.exec_command('hostname')
    out['stdout'] = ch.makefile('rb').read().decode()
    out['status'] = ch.recv_exit_status()
t.close()
print(json.dumps(out))
'''


def login(lab, from_host, to, password):
    r = lab.exec(from_host, sys.executable, '-c', LOGIN, to, input=password + '\n')
    return json.loads(r.stdout)


def state(lab_dir):
    with open(os.path.join(lab_dir, 'state.json')) as f:
        return json.load(f)


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def lab_sshd_pids(lab_dir):
    """Every sshd of the lab: the recorded daemons and sshd processes in its hosts."""
    st = state(lab_dir)
    pids = set()
    for h in st['hosts'].values():
        rec = h['daemons'].get('sshd')
        if rec and proc_start(rec['pid']) == rec['start']:
            pids.add(rec['pid'])
        for pid in pids_in_ns('mnt', h['ns']['mnt'], h['holder']):
            try:
                with open('/proc/%d/comm' % pid) as f:
                    if f.read().strip() == 'sshd':
                        pids.add(pid)
            except OSError:
                pass
    return pids


def test_root_login_from_another_host(lab):
    out = login(lab, 'host2', 'host1', sshd.ROOT_PASSWORD)
    assert out['auth'] == 'ok'
    assert (out['stdout'], out['status']) == ('host1\n', 0)
    # the key the host offers is the one `ssh-fingerprint` prints
    assert out['key_type'] == 'ssh-ed25519'
    fp = lab.cli('ssh-fingerprint', 'host1').stdout.strip()
    assert out['fingerprint'] == fp
    keygen = subprocess.run(['ssh-keygen', '-lf', os.path.join(
        lab.dir, 'ssh-host-keys', 'host1', 'ssh_host_ed25519_key.pub')],
        capture_output=True, text=True, check=True).stdout.split()[1]
    assert fp == keygen
    # every host has its own key
    assert lab.cli('ssh-fingerprint', 'host2').stdout.strip() != fp
    rsa = lab.cli('ssh-fingerprint', 'host1', '--key-type', 'rsa').stdout.strip()
    assert rsa.startswith('SHA256:') and rsa != fp


def test_wrong_password_refused(lab):
    out = login(lab, 'host2', 'host1', 'not-' + sshd.ROOT_PASSWORD)
    assert out['auth'] == 'refused'
    assert 'stdout' not in out


def test_sshd_listens_on_the_lab_address_only(lab):
    out = lab.exec('host1', 'ss', '-Htln', 'sport = :22').stdout.split()
    assert '192.168.222.11:22' in out
    assert '0.0.0.0:22' not in out and '*:22' not in out


def test_host_has_its_own_etc_ssh_and_shadow(lab):
    conf = lab.exec('host1', 'cat', '/etc/ssh/sshd_config').stdout
    assert 'sshd of lab host host1' in conf and 'PermitRootLogin yes' in conf
    assert 'X11Forwarding no' in conf
    with open('/etc/ssh/sshd_config') as f:
        assert 'lab host' not in f.read()
    root_in_host = lab.exec('host1', 'getent', 'shadow', 'root').stdout.split(':')[1]
    with open('/etc/shadow') as f:
        machine = [ln.split(':')[1] for ln in f.read().splitlines() if ln.startswith('root:')]
    assert root_in_host.startswith('$6$') and [root_in_host] != machine
    # the host's key files are the kept ones, mode 0600
    r = lab.exec('host1', 'stat', '-c', '%a', '/etc/ssh/ssh_host_ed25519_key')
    assert r.stdout.strip() == '600'
    with open(os.path.join(lab.dir, 'ssh-host-keys', 'host1', 'ssh_host_ed25519_key.pub')) as f:
        kept = f.read()
    assert lab.exec('host1', 'cat', '/etc/ssh/ssh_host_ed25519_key.pub').stdout == kept
    # the privilege separation directory is in the host's private /run
    assert lab.exec('host1', 'test', '-d', '/run/sshd', check=False).returncode == 0


def test_status_shows_sshd(lab):
    lines = lab.cli('status').stdout.splitlines()
    col = lines[1].split().index('sshd')
    for ln in lines[2:]:
        assert ln.split()[col] == 'up', ln


def test_ssh_fingerprint_of_an_unknown_host(lab):
    r = lab.cli('ssh-fingerprint', 'host7', check=False)
    assert r.returncode == 1
    assert r.stderr == "hosted-engine-lab: no lab host 'host7': the lab has host1, host2\n"


# ----------------------------------------------------------- a lab of this test's own
# (own_lab_dir: tests/lab/conftest.py)


def test_password_file_stable_keys_and_the_machine_untouched(own_lab_dir, tmp_path):
    """up with --root-password-file, down, up again: the password is the file's, the host
    key stays, the machine's /etc/shadow and /etc/ssh never change, no sshd outlives down."""
    runner = LabRunner(own_lab_dir)
    shadow_before = sha256('/etc/shadow')
    etc_ssh_before = {fn: sha256(os.path.join('/etc/ssh', fn)) for fn in os.listdir('/etc/ssh')
                      if os.path.isfile(os.path.join('/etc/ssh', fn))}
    pwfile = tmp_path / 'pw'
    pwfile.write_text('Other-lab-Pa55\n')
    runner.cli('up', '--hosts', '1', '--no-hostd', '--root-password-file', str(pwfile),
               timeout=600)
    assert sha256('/etc/shadow') == shadow_before
    out = login(runner, 'host1', '192.168.222.11', 'Other-lab-Pa55')
    assert (out['auth'], out['stdout']) == ('ok', 'host1\n')
    assert login(runner, 'host1', '192.168.222.11', sshd.ROOT_PASSWORD)['auth'] == 'refused'
    fp = runner.cli('ssh-fingerprint', 'host1').stdout.strip()
    assert out['fingerprint'] == fp
    # the password is nowhere in the lab's files
    for root, _dirs, files in os.walk(own_lab_dir):
        for fn in files:
            path = os.path.join(root, fn)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, 'rb') as f:
                    assert b'Other-lab-Pa55' not in f.read(), path
    pids = lab_sshd_pids(own_lab_dir)
    assert pids
    st = state(own_lab_dir)
    before = lab_processes(st)
    runner.cli('down')
    assert sha256('/etc/shadow') == shadow_before
    for pid in pids:
        assert proc_start(pid) is None, 'sshd %d outlived down' % pid
    assert outlived(before) == []
    # the same key after down and up; the default password again without the file
    runner.cli('up', '--hosts', '1', '--no-hostd', timeout=600)
    assert runner.cli('ssh-fingerprint', 'host1').stdout.strip() == fp
    out = login(runner, 'host1', 'host1', sshd.ROOT_PASSWORD)
    assert (out['auth'], out['fingerprint']) == ('ok', fp)
    pids = lab_sshd_pids(own_lab_dir)
    runner.cli('down')
    for pid in pids:
        assert proc_start(pid) is None, 'sshd %d outlived down' % pid
    assert sha256('/etc/shadow') == shadow_before
    assert {fn: sha256(os.path.join('/etc/ssh', fn)) for fn in os.listdir('/etc/ssh')
            if os.path.isfile(os.path.join('/etc/ssh', fn))} == etc_ssh_before


def test_sshd_that_fails_to_start_is_reported(own_lab_dir, monkeypatch, capsys):
    """sshd exiting at start: up stops what it started and names sshd and its log."""
    monkeypatch.setattr(sshd, 'command', lambda: [sshd.SSHD, '-D', '-e', '-f',
                                                  '/etc/ssh/no-such-sshd_config'])
    lab = labmod.Lab(own_lab_dir)
    with pytest.raises(labmod.LabError) as e:
        lab.up(1, with_hostd=False)
    log = os.path.join(own_lab_dir, 'hosts', 'host1', 'var-log', 'lab', 'sshd.log')
    assert 'host1: sshd exited at start; its log: %s' % log in str(e.value)
    assert str(e.value).splitlines()[0].endswith(log)
    assert not os.path.exists(os.path.join(own_lab_dir, 'state.json'))


def test_root_password_file_errors(tmp_path):
    empty = tmp_path / 'empty'
    empty.write_text('')
    for path, why in ((str(tmp_path / 'missing'), 'cannot read the root password file'),
                      (str(empty), 'is empty: write the password on its first line')):
        r = subprocess.run([sys.executable, '-m', 'ovirt_hosted_engine_setup.lab.cli',
                            '--lab-dir', str(tmp_path / 'lab'), 'up', '--root-password-file',
                            path], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        assert r.stderr.startswith('hosted-engine-lab: ') and why in r.stderr
        assert len(r.stderr.splitlines()) == 1
        assert not os.path.exists(str(tmp_path / 'lab' / 'state.json'))


def test_shadow_text_replaces_root_only():
    machine = ('root:*:19000:0:99999:7:::\n'
               'daemon:*:19000:0:99999:7:::\n'
               'sshd:!:19000::::::\n')
    out = sshd.shadow_text(machine, '$6$salt$hash').splitlines()
    root = out[0].split(':')
    assert root[:2] == ['root', '$6$salt$hash'] and root[3:5] == ['0', '99999']
    assert len(root) == 9
    assert out[1:] == machine.splitlines()[1:]


# ----------------------------------------------------------- scripts/bootstrap

POLICY = '/usr/sbin/policy-rc.d'


def _fake(path, text):
    path.write_text('#!/bin/sh\n' + text)
    path.chmod(0o755)


def _bootstrap_with_fake_apt(tmp_path, install_ok, sshd_appears):
    """Run scripts/bootstrap with apt-get, dpkg-query, pgrep, deb-systemd-helper and
    update-rc.d replaced: openssh-server is the one missing package; apt-get records
    the policy-rc.d in force while it installs."""
    fake = tmp_path / 'bin'
    fake.mkdir()
    t = str(tmp_path)
    _fake(fake / 'dpkg-query', 'for a; do p=$a; done\n'
          '[ "$p" = openssh-server ] && exit 1\necho "install ok installed"\n')
    _fake(fake / 'apt-get', 'case "$1" in update) exit 0 ;; esac\n'
          'echo "$@" > %s/install-args\n'
          '/usr/sbin/policy-rc.d ssh.service start; echo $? > %s/policy-exit\n'
          'exit %d\n' % (t, t, 0 if install_ok else 100))
    # pgrep: no sshd before the install; after it, this test's own process when an sshd
    # is to "appear" (a pid in the machine's mount namespace)
    _fake(fake / 'pgrep', 'if [ -e %s/pgrep-called ]; then %s\nfi\n'
          'touch %s/pgrep-called; exit 1\n'
          % (t, 'echo %d; exit 0' % os.getpid() if sshd_appears else 'exit 1', t))
    for cmd in ('deb-systemd-helper', 'update-rc.d'):
        _fake(fake / cmd, 'echo "%s $*" >> %s/disabled\n' % (cmd, t))
    env = dict(os.environ, PATH='%s:%s' % (fake, os.environ['PATH']))
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.run(['bash', os.path.join(top, 'scripts', 'bootstrap')], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _policy():
    try:
        with open(POLICY, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        return None


@pytest.mark.skipif(os.geteuid() != 0, reason='bootstrap runs as root')
def test_bootstrap_installs_with_no_daemon_started(tmp_path):
    before = _policy()
    r = _bootstrap_with_fake_apt(tmp_path, install_ok=False, sshd_appears=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (tmp_path / 'install-args').read_text().split()[-1] == 'openssh-server'
    # while apt-get ran, policy-rc.d refused every start; the machine's is back after
    assert (tmp_path / 'policy-exit').read_text().strip() == '101'
    assert _policy() == before
    assert not os.path.exists(POLICY + '.ovirt-he-bootstrap')


@pytest.mark.skipif(os.geteuid() != 0, reason='bootstrap runs as root')
def test_bootstrap_disables_the_machines_ssh_and_fails_if_sshd_started(tmp_path):
    before = _policy()
    r = _bootstrap_with_fake_apt(tmp_path, install_ok=True, sshd_appears=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr == (
        "bootstrap: the machine's sshd started while packages were installed (pid %d): stop it "
        "and check what lets package scripts start daemons (/usr/sbin/policy-rc.d)\n"
        % os.getpid())
    assert (tmp_path / 'disabled').read_text().splitlines() == [
        'deb-systemd-helper disable ssh.service ssh.socket', 'update-rc.d ssh disable']
    assert _policy() == before
