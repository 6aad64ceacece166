"""A standalone engine becomes a hosted engine (`hosted-engine --deploy
--restore-from-file`), in a three-host lab, as docs/restore.md tells an admin to do it:

- the standalone engine (outside any VM, at engine.lab.test) is populated: the data center
  Legacy and its cluster, host2 and host3 Up, a data storage domain, two VMs; it is backed
  up with engine-backup and stopped;
- bad input on host1, each one line naming the problem and the fix, exit 1, nothing made
  on the host or the storage: not a tar, truncated, a member missing, an md5 that does not
  match, a backup of a newer engine, another FQDN, a directory, the old engine still
  answering; a restore that fails inside the engine VM (its output shown, the cleanup
  printed, and the cleanup brings host1 back);
- the restore deploy on host1 (examples/lab-answers.conf and
  examples/lab-restore-answers.conf): the backup copied into the engine VM over SSH (its
  host key pinned), restored, the database fixed up, engine-setup; the engine VM healthy
  under the HA services; the engine's API lists the backup's data center, cluster, hosts,
  storage domain and VMs, plus host1 Up and the HostedEngine VM;
- host2, a host of the backup, becomes a hosted-engine host as the closing message says:
  reinstalled from the engine with deploy_hosted_engine=true; both hosts then publish
  their scores.
"""
import io
import json
import os
import subprocess
import tarfile

import pytest

from ovirt_hosted_engine_setup.deploy import restore_backup
from ovirt_hosted_engine_setup.lab import appliance
from ovirt_hosted_engine_setup.lab import sshd as lab_sshd
from ovirt_hosted_engine_setup.lab import standalone_engine as standalone
from ovirt_hosted_engine_setup.lab.engine.state import ENGINE_VERSION

from .conftest import module_lab
from .deploy_helpers import TOP, error_lines, lab_storage, wait_for

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root'),
              pytest.mark.timeout(900)]

EXAMPLES = os.path.join(TOP, 'examples')
ADMIN_PW = 'lab-admin-Pa55'         # examples/lab-answers.conf's, the standalone's default
CA = '/var/lib/ovirt-hosted-engine-hostd/pki/trusted-cas/engine-engine.lab.test.pem'
BACKUP = []                          # the standalone engine's backup, once made
RESTORED = []

lab = module_lab(3, 'he-restore-test-')


def answers(lab, tmp_path, name, extra=()):
    """examples/lab-answers.conf then examples/lab-restore-answers.conf for this lab's
    storage, with extra lines: one file."""
    text = ''.join(open(os.path.join(EXAMPLES, f)).read() + '\n'
                   for f in ('lab-answers.conf', 'lab-restore-answers.conf'))
    text = text.replace('/var/lib/ovirt-hosted-engine-lab/lab/storage', lab_storage(lab))
    text = text.replace('/var/lib/ovirt-hosted-engine-lab/images/'
                        'ovirt-engine-appliance-lab.ova', appliance.ova_path())
    # one [environment:default] section: the second header would start the same section
    head, _, rest = text.partition('[environment:default]')
    text = head + '[environment:default]' + rest.replace('[environment:default]', '')
    path = tmp_path / name
    path.write_text(text + ''.join(line + '\n' for line in extra))
    os.chmod(path, 0o600)
    return str(path)


def deploy(lab, backup, answer_file, timeout=900):
    return lab.exec('host1', 'hosted-engine', '--deploy', '--restore-from-file=%s' % backup,
                    '--config-append=%s' % answer_file, check=False, timeout=timeout,
                    stdin=subprocess.DEVNULL)


SDK = r'''
import json, sys
import ovirtsdk4 as sdk
import ovirtsdk4.types as types
args = json.loads(sys.argv[1])
c = sdk.Connection(url="https://engine.lab.test/ovirt-engine/api", username="admin@internal",
                   password=sys.stdin.readline().strip(), ca_file=%r, timeout=120)
s = c.system_service()
hosts = s.hosts_service()
out = {}
if args["op"] == "list":
    out["dcs"] = sorted(d.name for d in s.data_centers_service().list())
    out["clusters"] = sorted(x.name for x in s.clusters_service().list())
    out["hosts"] = {h.name: {"status": h.status.value,
                             "configured": h.hosted_engine.configured
                             if h.hosted_engine else None,
                             "score": h.hosted_engine.score if h.hosted_engine else None}
                    for h in hosts.list(all_content=True)}
    out["domains"] = sorted(d.name for d in s.storage_domains_service().list())
    out["vms"] = sorted(v.name for v in s.vms_service().list())
elif args["op"] == "redeploy":
    h = next(h for h in hosts.list() if h.name == args["name"])
    hs = hosts.host_service(h.id)
    hs.deactivate()
    import time
    for _ in range(120):
        if hs.get().status == types.HostStatus.MAINTENANCE:
            break
        time.sleep(1)
    hs.install(root_password=sys.stdin.readline().strip(), deploy_hosted_engine=True)
print(json.dumps(out))
c.close()
''' % CA


def sdk(lab, op, **args):
    args['op'] = op
    r = lab.exec('host1', 'python3', '-c', SDK, json.dumps(args), check=False, timeout=300,
                 input='%s\n%s\n' % (ADMIN_PW, lab_sshd.ROOT_PASSWORD))
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def vm_status(lab, host):
    r = lab.exec(host, 'hosted-engine', '--vm-status', '--json', check=False, timeout=120)
    try:
        return json.loads(r.stdout) if r.returncode == 0 else {}
    except ValueError:
        return {}


def nothing_made(lab):
    """Nothing on host1 or the storage: no domain directory, no bridge, no configuration."""
    storage = lab_storage(lab)
    domains = [d for d in os.listdir(storage) if len(d) == 36]
    bridge = lab.exec('host1', 'ip', 'link', 'show', 'ovirtmgmt', check=False).returncode == 0
    conf = lab.exec('host1', 'test', '-e', '/etc/ovirt-hosted-engine/hosted-engine.conf',
                    check=False).returncode == 0
    return not domains and not bridge and not conf, (domains, bridge, conf)


def test_standalone_engine_populated_and_backed_up(lab, tmp_path_factory):
    r = lab.cli('standalone-engine', 'up', '--populate', timeout=600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    backup = str(tmp_path_factory.mktemp('backup') / 'engine-backup.tar.gz')
    r = lab.cli('standalone-engine', 'backup', backup, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    info = restore_backup.check_archive(backup)
    assert info.fqdn == 'engine.lab.test'
    assert info.version == ENGINE_VERSION
    BACKUP.append(backup)


@pytest.fixture
def backup():
    if not BACKUP:
        pytest.skip('the standalone engine was not backed up')
    return BACKUP[0]


def rewritten(backup, path, change):
    """A copy of the backup with its members changed by change({name: bytes}) (md5sum not
    recomputed unless change does it)."""
    with tarfile.open(backup) as t:
        members = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    change(members)
    with tarfile.open(path, 'w:gz') as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return str(path)


def with_md5(members):
    import hashlib
    lines = ['%s  %s' % (hashlib.md5(members[n]).hexdigest(), n)
             for n in sorted(members) if n != './md5sum']
    members['./md5sum'] = ('\n'.join(lines) + '\n').encode()


def test_bad_input_is_refused_before_anything_changes(lab, backup, tmp_path):
    good = answers(lab, tmp_path, 'good.conf')
    newer = '.'.join(str(n) for n in (ENGINE_VERSION[0] + 1,) + tuple(ENGINE_VERSION[1:]))
    size = os.path.getsize(backup)
    with open(backup, 'rb') as f:
        head = f.read(size // 2)
    (tmp_path / 'truncated.tar.gz').write_bytes(head)
    (tmp_path / 'notatar.tar.gz').write_bytes(b'not a backup\n' * 100)

    def drop_db(m):
        del m['./db/engine_backup.db']

    def corrupt(m):
        m['./files'] = m['./files'][:-1] + bytes([m['./files'][-1] ^ 1])

    def newer_version(m):
        m['./version'] = (newer + '\n').encode()
        with_md5(m)
    cases = {
        'not-a-tar': (str(tmp_path / 'notatar.tar.gz'), good, 'is not a tar archive'),
        'truncated': (str(tmp_path / 'truncated.tar.gz'), good, 'truncated'),
        'member-missing': (rewritten(backup, tmp_path / 'nodb.tar.gz', drop_db), good,
                           'is not a complete engine backup'),
        'md5-mismatch': (rewritten(backup, tmp_path / 'bad.tar.gz', corrupt), good,
                         'is corrupted'),
        'newer-version': (rewritten(backup, tmp_path / 'newer.tar.gz', newer_version), good,
                          'newer than the appliance'),
        'other-fqdn': (backup, answers(lab, tmp_path, 'fqdn.conf',
                                       ['OVEHOSTED_NETWORK/fqdn=str:other.lab.test']),
                       'the backup is of engine engine.lab.test'),
        'directory': (str(tmp_path), good, 'is a directory'),
    }
    failures = []
    for name, (archive, answer_file, words) in cases.items():
        r = deploy(lab, archive, answer_file, timeout=300)
        errors = error_lines(r)
        if not (r.returncode == 1 and errors and words in errors[0] and len(errors) <= 2
                and (len(errors) == 1 or 'nothing was changed on this host' in errors[1])):
            failures.append('%s: rc %s, %s' % (name, r.returncode, errors or r.stdout[-800:]))
    # the old engine still answering at its FQDN
    lab.cli('standalone-engine', 'up', timeout=300)
    try:
        r = deploy(lab, backup, good, timeout=300)
        errors = error_lines(r)
        if not (r.returncode == 1 and errors and 'still answers' in errors[0]
                and 'stop the old engine first' in errors[0]):
            failures.append('old-engine-up: rc %s, %s' % (r.returncode,
                                                           errors or r.stdout[-800:]))
    finally:
        lab.cli('standalone-engine', 'down', timeout=300)
    assert not failures, '\n'.join(failures)
    ok, what = nothing_made(lab)
    assert ok, what


def test_a_restore_failing_in_the_engine_vm_shows_why_and_the_cleanup(lab, backup, tmp_path):
    """An archive the host-side check accepts (its md5s match) whose database dump the
    engine's engine-backup cannot load: its output is shown, the deploy fails in one line,
    the cleanup command is printed, and the cleanup brings host1 back."""
    def bad_dump(m):
        m['./db/engine_backup.db'] = b'CREATE TABLE broken (;\n'
        with_md5(m)
    archive = rewritten(backup, tmp_path / 'baddump.tar.gz', bad_dump)
    assert restore_backup.check_archive(archive).fqdn == 'engine.lab.test'
    r = deploy(lab, archive, answers(lab, tmp_path, 'restore.conf'))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-6000:]
    assert 'engine-backup: FATAL' in out, out[-6000:]
    errors = error_lines(r)
    assert any('engine-backup --mode=restore failed in the engine VM (exit status 1)' in e
               for e in errors), errors
    assert 'ovirt-hosted-engine-cleanup' in out
    assert 'Traceback' not in out
    c = lab.exec('host1', 'ovirt-hosted-engine-cleanup', '-q', '--remove-storage', check=False,
                 timeout=600)
    assert c.returncode == 0, c.stdout + c.stderr
    wait_for('host1 clean again', lambda: nothing_made(lab), 60)


def test_restore_deploy_ends_with_the_backups_engine_under_ha(lab, backup, tmp_path):
    r = deploy(lab, backup, answers(lab, tmp_path, 'restore.conf'))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-8000:]
    assert 'engine-backup: ' in out and 'engine-setup: ' in out, out[-8000:]
    assert 'The backup is restored and engine-setup finished in the engine VM' in out
    assert 'reinstall each from the engine' in out and 'ssh-keygen -R engine.lab.test' in out
    assert ADMIN_PW not in out

    def healthy():
        st = vm_status(lab, 'host1')
        good = any(v.get('engine-status', {}).get('health') == 'good'
                   for k, v in st.items() if k.isdigit())
        return good, st
    wait_for('the engine healthy under HA', healthy, 300)
    inv = sdk(lab, 'list')
    assert 'Legacy' in inv['dcs'] and 'LegacyCluster' in inv['clusters'], inv
    assert inv['hosts']['host1']['status'] == 'up', inv
    for h in ('host2', 'host3'):
        assert h in inv['hosts'], inv
    assert standalone.POPULATE_SD in inv['domains'], inv
    assert set(standalone.POPULATE_VMS) <= set(inv['vms']) and 'HostedEngine' in inv['vms'], inv
    RESTORED.append(inv)


def test_a_host_of_the_backup_becomes_a_hosted_engine_host(lab):
    if not RESTORED:
        pytest.skip('the restore deploy did not finish')

    def up():
        inv = sdk(lab, 'list')
        return inv['hosts']['host2']['status'] == 'up', inv['hosts']
    wait_for('host2 Up in the restored engine', up, 300)
    sdk(lab, 'redeploy', name='host2')

    def joined():
        inv = sdk(lab, 'list')
        h = inv['hosts']['host2']
        return h['status'] == 'up' and h['configured'], inv['hosts']
    wait_for('host2 deployed as a hosted-engine host', joined, 600)

    def both_live():
        st = vm_status(lab, 'host2')
        live = {k: v for k, v in st.items() if k.isdigit() and v.get('live-data')}
        return len(live) == 2, st
    wait_for('both hosts live in --vm-status', both_live, 300)
