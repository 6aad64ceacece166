"""GlusterFS replica 3 in the lab (`hosted-engine-lab up --storage gluster`, lab/gluster.py)
and its storage faults, on one lab of 3 hosts:

- the volume: replica 3, one brick per host in the host's own directory, started, with
  oVirt's options; glusterd and the bricks in `status`, the connection in the lab state;
  glusterd in each host's own network namespace;
- every host mounts it (as VDSM does, with the backup volfile servers) and writes with
  O_DIRECT what the others read;
- storage-loss on one host: its I/O hangs (a direct write does not finish) while the others
  keep writing and its management network works; storage-back: it writes again;
- brick-kill: the volume stays writable from every host; brick-back starts the brick;
- crash then restart: glusterd and the brick back, the dead mount detached;
- down: no gluster process left.

Without a lab: the plan (connection string, backup volfile servers, bricks), the nft table,
the parsing of gluster's XML, a lab of fewer than 3 hosts refused.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ovirt_hosted_engine_setup.lab import faults, gluster
from ovirt_hosted_engine_setup.lab.lab import Lab, LabError, ns_id, proc_start

from .conftest import LAB_CLI, LabRunner, module_lab, wait_until

root_only = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

lab = module_lab(3, prefix='he-lab-gluster-', storage='gluster')
HOSTS = ('host1', 'host2', 'host3')
MOUNT = '/rhev/data-center/mnt/glusterSD/host1:_engine'


def fail_line(r):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and 'Traceback' not in r.stderr, (
        r.returncode, r.stdout, r.stderr)
    return lines[0]


def status_rows(lab):
    r = lab.cli('status', check=False)
    out = r.stdout.splitlines()
    head = out[1].split()
    rows = {line.split()[0]: dict(zip(head, line.split())) for line in out[2:]
            if line.split() and line.split()[0] in HOSTS}
    return r.returncode, rows, out


def write(lab, host, name, timeout=20, data='x'):
    """A 4 KiB O_DIRECT write of a file on the volume from `host`: its exit status, or None
    when it has not finished within timeout s. It is then left to finish: a request the
    glusterfs client has taken cannot be interrupted, it ends when gluster answers or gives
    up (network.ping-timeout), or when `down` stops the client."""
    script = ('printf %%4096s %s | tr " " %s | dd of=%s/%s bs=4096 count=1 oflag=direct '
              'conv=fsync status=none' % (data, data, MOUNT, name))
    p = subprocess.Popen(LAB_CLI + ['exec', host, '--', 'sh', '-c', script], env=lab.env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture(scope='module')
def mounted(lab):
    st = json.load(open(os.path.join(lab.dir, 'state.json')))
    for h in HOSTS:
        lab.exec(h, 'mkdir', '-p', MOUNT)
        lab.exec(h, *gluster.mount_command(st['gluster']), timeout=60)
    return lab


# ------------------------------------------------------------------ with a lab

@root_only
def test_volume_replica3_with_ovirt_options(lab):
    st = json.load(open(os.path.join(lab.dir, 'state.json')))
    g = st['gluster']
    assert g['connection'] == 'host1:/engine'
    assert g['backup_volfile_servers'] == 'host2:host3'
    assert g['mount_options'] == 'backup-volfile-servers=host2:host3'
    info = gluster.parse_volume_info(lab.exec('host2', 'gluster', '--mode=script', '--xml',
                                              'volume', 'info', 'engine').stdout)
    assert info['name'] == 'engine' and info['type'] == 'Replicate'
    assert info['status'] == 'Started' and info['replica'] == 3
    assert info['bricks'] == ['%s:%s' % (h, os.path.join(lab.dir, 'hosts', h, 'gluster-bricks',
                                                          'engine')) for h in HOSTS]
    opts = info['options']
    # oVirt's own values, set after the virt group (which says remote-dio disable, ping 20)
    assert opts['performance.strict-o-direct'] == 'on'
    assert opts['network.remote-dio'] == 'off'
    assert opts['storage.owner-uid'] == '36' and opts['storage.owner-gid'] == '36'
    assert opts['network.ping-timeout'] == '30'
    # the virt group applied (values from the machine's /var/lib/glusterd/groups/virt)
    with open('/var/lib/glusterd/groups/virt') as f:
        group = dict(line.strip().split('=', 1) for line in f if '=' in line)
    for key, value in group.items():
        if key not in ('network.remote-dio', 'network.ping-timeout'):
            assert opts.get(key) == value, key
    # status: glusterd and the brick up on every host, the volume's line
    rc, rows, out = status_rows(lab)
    assert rc == 0, out
    for h in HOSTS:
        assert rows[h]['glusterd'] == 'up' and rows[h]['brick'] == 'up', out
    assert ('gluster: volume engine replica 3 on host1, host2, host3   connection '
            'host1:/engine   mount options backup-volfile-servers=host2:host3') in out
    # glusterd lives in the host's network namespace (the lab network only), with the
    # host's own /var/lib/glusterd
    lo = Lab(lab.dir)
    lo.load()
    for h in HOSTS:
        rec = lo.state['hosts'][h]['daemons']['glusterd']
        assert ns_id(rec['pid'], 'net') == lo.state['hosts'][h]['ns']['net']
        assert ns_id(rec['pid'], 'net') != ns_id(os.getpid(), 'net')
        assert ':24007 ' in lab.exec(h, 'ss', '-ltnH', 'sport', '= :24007').stdout
        uuid_file = os.path.join(lab.dir, 'hosts', h, 'var-lib-glusterd', 'glusterd.info')
        assert os.path.isfile(uuid_file)


@root_only
def test_every_host_writes_with_o_direct(mounted):
    lab = mounted
    for i, h in enumerate(HOSTS):
        assert write(lab, h, 'from-%s' % h, data='abc'[i]) == 0
    for i, h in enumerate(HOSTS):
        other = HOSTS[(i + 1) % 3]
        got = lab.exec(other, 'cat', '%s/from-%s' % (MOUNT, h)).stdout
        assert got == 'abc'[i] * 4096
    # the brick root belongs to vdsm:kvm (36:36), as storage.owner-uid/gid say
    assert lab.exec('host1', 'stat', '-c', '%u:%g', MOUNT + '/').stdout.strip() == '36:36'


@root_only
def test_storage_loss_then_back(mounted):
    lab = mounted
    r = lab.cli('fault', 'host2', 'storage-loss')
    assert r.stdout.startswith('host2: storage lost') and '24007' in r.stdout
    assert 'storage faults: host2 storage-loss' in status_rows(lab)[2]
    try:
        # host2's I/O hangs (gluster gives up only after its ping-timeout of 30 s)
        assert write(lab, 'host2', 'lost', timeout=5) != 0
        # the others keep writing
        assert write(lab, 'host1', 'during-loss-1') == 0
        assert write(lab, 'host3', 'during-loss-3') == 0
        # host2's management network works: the gateway, its host agent, SSH's port
        assert lab.exec('host2', 'ping', '-c', '1', '-W', '2', 'gateway',
                        check=False).returncode == 0
        assert lab.exec('host1', 'ovirt-hosted-engine-rpc', '--host', 'host2', '--timeout',
                        '10', 'Host', 'ping2', check=False, timeout=60).returncode == 0
        assert lab.exec('host2', 'ovirt-hosted-engine-rpc', '--host', 'host2', '--timeout',
                        '10', 'Host', 'ping2', check=False, timeout=60).returncode == 0
    finally:
        back = lab.cli('fault', 'host2', 'storage-back', check=False)
    assert back.returncode == 0 and 'storage-loss undone' in back.stdout, back
    assert not [ln for ln in status_rows(lab)[2] if ln.startswith('storage faults')]
    wait_until('host2 writing again', lambda: write(lab, 'host2', 'back', timeout=10) == 0, 60,
             interval=2)
    assert 'storage-loss' in fail_line(lab.cli('fault', 'host2', 'storage-back', check=False))


def timed_write(lab, host, name):
    t0 = time.monotonic()
    assert write(lab, host, name, timeout=60) == 0
    return time.monotonic() - t0


@root_only
def test_storage_slow_then_back(mounted):
    lab = mounted
    rules = lab.exec('host2', 'ip', 'rule', 'show').stdout
    sysctls = lab.exec('host2', 'sysctl', 'net.ipv4.ip_forward',
                       'net.ipv4.conf.all.rp_filter').stdout
    for bad, why in ((['abc'], 'whole number of milliseconds'), (['0'], '1 to 60000 ms'),
                     ([], 'needs a delay')):
        assert why in fail_line(lab.cli('fault', 'host2', 'storage-slow', *bad, check=False))
    assert 'takes no daemon' in fail_line(lab.cli('fault', 'host2', 'crash', '5', check=False))
    r = lab.cli('fault', 'host2', 'storage-slow', '400')
    assert r.stdout.startswith('host2: storage slowed') and 'held 400 ms' in r.stdout, r.stdout
    assert 'storage faults: host2 storage-slow 400 ms' in status_rows(lab)[2]
    try:
        slow = timed_write(lab, 'host2', 'slow')
        fast = timed_write(lab, 'host1', 'not-slow')
        # every request host2 sends waits 400 ms: a write (lookup, open, write, flush) waits
        # for several
        assert slow >= 1.2 and slow > fast + 0.8, (slow, fast)
        # what is not gluster's is not delayed: the gateway, host2's own SSH port
        out = lab.exec('host2', 'ping', '-c', '3', '-i', '0.2', 'gateway').stdout
        assert max(float(t) for t in re.findall(r'time=([0-9.]+) ms', out)) < 200, out
        assert 'already slowed' in fail_line(lab.cli('fault', 'host2', 'storage-slow', '50',
                                                      check=False))
    finally:
        back = lab.cli('fault', 'host2', 'storage-back', check=False)
    assert back.returncode == 0 and 'storage-slow undone' in back.stdout, back
    assert not [ln for ln in status_rows(lab)[2] if ln.startswith('storage faults')]
    assert lab.exec('host2', 'ip', 'rule', 'show').stdout == rules
    assert lab.exec('host2', 'sysctl', 'net.ipv4.ip_forward',
                    'net.ipv4.conf.all.rp_filter').stdout == sysctls
    assert gluster.SLOW_DEVICE not in lab.exec('host2', 'ip', '-o', 'link').stdout
    lo = Lab(lab.dir)
    lo.load()
    assert gluster.SLOW_DAEMON not in lo.state['hosts']['host2']['daemons']
    assert timed_write(lab, 'host2', 'fast-again') < slow - 0.8


@root_only
def test_brick_kill_then_back(mounted):
    lab = mounted
    lo = Lab(lab.dir)
    lo.load()
    before = gluster.brick_pid(lo, 'host3')
    r = lab.cli('fault', 'host3', 'brick-kill')
    assert r.stdout.startswith('host3: brick of volume engine killed (glusterfsd %d'
                               % before), r.stdout
    assert proc_start(before) is None
    rc, rows, out = status_rows(lab)
    assert rc == 1 and rows['host3']['brick'] == 'DEAD' and rows['host3']['glusterd'] == 'up'
    # replica 3 with one brick down: every host still writes
    for h in HOSTS:
        assert write(lab, h, 'brick-down-%s' % h) == 0
    assert 'not running' in fail_line(lab.cli('fault', 'host3', 'brick-kill', check=False))
    r = lab.cli('fault', 'host3', 'brick-back')
    lo.load()
    after = gluster.brick_pid(lo, 'host3')
    assert after and after != before and ('glusterfsd %d' % after) in r.stdout
    rc, rows, out = status_rows(lab)
    assert rc == 0 and rows['host3']['brick'] == 'up', out
    assert 'is running' in fail_line(lab.cli('fault', 'host3', 'brick-back', check=False))


@root_only
def test_crash_then_restart_brings_glusterd_and_brick_back(mounted):
    lab = mounted
    lo = Lab(lab.dir)
    lo.load()
    old = lo.state['hosts']['host3']['daemons']['glusterd']['pid']
    # a slow path to the storage is outside the host: it stays across the crash and the boot
    lab.cli('fault', 'host3', 'storage-slow', '20')
    lo.load()
    delayer = lo.state['hosts']['host3']['daemons'][gluster.SLOW_DAEMON]
    before = [(p, proc_start(p)) for p in gluster.gluster_pids(lo, 'host3')]
    assert before
    lab.cli('fault', 'host3', 'crash')
    assert [p for p, t in before if proc_start(p) == t] == []
    assert gluster.gluster_pids(lo, 'host3') == []
    rc, rows, out = status_rows(lab)
    assert rc == 1 and rows['host3']['glusterd'] == 'DEAD' and rows['host3']['brick'] == 'DEAD'
    # the others keep writing with host3 gone
    assert write(lab, 'host1', 'host3-down') == 0
    r = lab.cli('restart', 'host3')
    line = r.stdout.strip().splitlines()[-1]
    assert 'daemons sanlock, glusterd, virtlogd, libvirtd, hostd, sshd started' in line, line
    assert '1 glusterfs mounts detached' in line and 'started by glusterd' in line, line
    lo.load()
    new = lo.state['hosts']['host3']['daemons']['glusterd']['pid']
    assert new != old
    rc, rows, out = status_rows(lab)
    assert rc == 0 and rows['host3']['glusterd'] == 'up' and rows['host3']['brick'] == 'up', out
    assert proc_start(delayer['pid']) == delayer['start']
    assert '%#x' % gluster.SLOW_MARK in lab.exec('host3', 'ip', 'rule', 'show').stdout
    assert 'storage-slow undone' in lab.cli('fault', 'host3', 'storage-back').stdout
    # a boot finds no mount: host3 mounts again and writes
    assert 'fuse.glusterfs' not in lab.exec('host3', 'cat', '/proc/self/mountinfo').stdout
    st = json.load(open(os.path.join(lab.dir, 'state.json')))
    lab.exec('host3', *gluster.mount_command(st['gluster']), timeout=60)
    assert write(lab, 'host3', 'after-restart') == 0


@root_only
def test_partition_cuts_the_volume_too(mounted):
    lab = mounted
    r = lab.cli('fault', 'host3', 'partition')
    try:
        assert 'the gluster volume unreachable' in r.stdout, r.stdout
        assert write(lab, 'host3', 'partitioned', timeout=5) != 0
        # host1's write waits for host3's brick until gluster gives it up (its
        # network.ping-timeout, 30 s: nothing tells host1 that host3 is gone), then completes
        # on the two others
        assert write(lab, 'host1', 'host3-partitioned', timeout=60) == 0
    finally:
        lab.cli('fault', 'host3', 'heal')
    wait_until('host3 writing again', lambda: write(lab, 'host3', 'healed', timeout=10) == 0,
             60, interval=2)


@root_only
def test_down_leaves_no_gluster_process(mounted):
    lab = mounted
    lo = Lab(lab.dir)
    lo.load()
    recs = [(p, proc_start(p)) for h in HOSTS for p in gluster.gluster_pids(lo, h)]
    names = {os.path.basename(open('/proc/%d/cmdline' % p).read().split('\0')[0])
             for p, _s in recs}
    # glusterd, the bricks (glusterfsd), the self-heal daemons and the mounts (glusterfs)
    assert names == {'glusterd', 'glusterfsd', 'glusterfs'}, names
    lab.cli('down')
    assert [p for p, s in recs if proc_start(p) == s] == []


@root_only
def test_up_gluster_needs_three_hosts(own_lab_dir):
    r = LabRunner(own_lab_dir).cli('up', '--hosts', '2', '--storage', 'gluster', check=False)
    line = fail_line(r)
    assert 'at least 3 hosts' in line and '--hosts 3' in line
    assert not os.path.exists(os.path.join(own_lab_dir, 'state.json'))


# ------------------------------------------------------------------ without a lab

def test_plan():
    g = gluster.plan('/var/tmp/lab', ['host1', 'host2', 'host3', 'host4'])
    assert g['servers'] == ['host1', 'host2', 'host3']
    assert g['connection'] == 'host1:/engine'
    assert g['backup_volfile_servers'] == 'host2:host3'
    assert g['bricks']['host2'] == '/var/tmp/lab/hosts/host2/gluster-bricks/engine'
    assert 'host4' not in g['bricks']
    assert [tuple(o) for o in g['options']][0] == ('group', 'virt')
    assert gluster.serves({'gluster': g}, 'host3') and not gluster.serves({'gluster': g},
                                                                          'host4')
    assert not gluster.serves({}, 'host1')
    assert gluster.mount_point(g) == MOUNT
    assert gluster.mount_command(g) == ['mount', '-t', 'glusterfs', '-o',
                                        'backup-volfile-servers=host2:host3', 'host1:/engine',
                                        MOUNT]
    with pytest.raises(LabError, match='at least 3 hosts'):
        gluster.plan('/var/tmp/lab', ['host1', 'host2'])


def test_storage_faults_need_a_gluster_lab():
    class FakeLab:
        state = {'hosts': {'host1': {}}}
    for call in (lambda: gluster.storage_ports(FakeLab, 'host1'),
                 lambda: gluster.storage_back(FakeLab, 'host1'),
                 lambda: gluster.brick_kill(FakeLab, 'host1'),
                 lambda: gluster.brick_back(FakeLab, 'host1')):
        with pytest.raises(LabError, match='--storage gluster'):
            call()


def test_nft_loss_script():
    text = gluster.nft_loss_script([55407, 24007, 53340])
    assert 'hook output' in text and 'tcp dport { 24007, 53340, 55407 } drop' in text
    # replaces a table of that name (a second storage-loss) and is valid for nft
    assert text.startswith('table inet lab_storage_loss\ndelete table inet lab_storage_loss\n')
    if os.geteuid() == 0:   # applied twice in a scratch network namespace
        with tempfile.NamedTemporaryFile('w', suffix='.nft') as f:
            f.write(text)
            f.flush()
            r = subprocess.run(['unshare', '--net', 'sh', '-c', 'nft -f "$1" && nft -f "$1" && '
                                'nft list ruleset', 'sh', f.name],
                               capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count('table inet lab_storage_loss') == 1, r.stdout


STATUS_XML = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cliOutput><opRet>0</opRet><opErrno>0</opErrno><opErrstr/><volStatus><volumes><volume>
<volName>engine</volName><nodeCount>4</nodeCount>
<node><hostname>host1</hostname><path>/b/host1</path><peerid>a</peerid><status>1</status>
<port>55407</port><ports><tcp>55407</tcp><rdma>N/A</rdma></ports><pid>27089</pid></node>
<node><hostname>host2</hostname><path>/b/host2</path><peerid>b</peerid><status>0</status>
<port>N/A</port><ports><tcp>N/A</tcp><rdma>N/A</rdma></ports><pid>-1</pid></node>
<node><hostname>host3</hostname><path>/b/host3</path><peerid>c</peerid><status>1</status>
<port>58447</port><ports><tcp>58447</tcp><rdma>N/A</rdma></ports><pid>27124</pid></node>
<node><hostname>Self-heal Daemon</hostname><path>localhost</path><peerid>b</peerid>
<status>1</status><port>N/A</port><ports><tcp>N/A</tcp><rdma>N/A</rdma></ports><pid>7</pid>
</node></volume></volumes></volStatus></cliOutput>"""

INFO_XML = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cliOutput><opRet>0</opRet><volInfo><volumes><volume><name>engine</name>
<statusStr>Started</statusStr><typeStr>Replicate</typeStr><replicaCount>3</replicaCount>
<bricks><brick uuid="a">host1:/b/host1<name>host1:/b/host1</name></brick>
<brick uuid="b">host2:/b/host2<name>host2:/b/host2</name></brick></bricks>
<options><option><name>network.ping-timeout</name><value>30</value></option></options>
</volume></volumes></volInfo></cliOutput>"""


def test_parse_volume_status():
    bricks = {'host1': '/b/host1', 'host2': '/b/host2', 'host3': '/b/host3'}
    st = gluster.parse_volume_status(STATUS_XML, bricks)
    assert st == {'host1': {'path': '/b/host1', 'online': True, 'port': 55407, 'pid': 27089},
                  'host2': {'path': '/b/host2', 'online': False, 'port': None, 'pid': None},
                  'host3': {'path': '/b/host3', 'online': True, 'port': 58447, 'pid': 27124}}
    bad = STATUS_XML.replace('<opRet>0</opRet>', '<opRet>-1</opRet>').replace(
        '<opErrstr/>', '<opErrstr>Volume engine is not started</opErrstr>')
    with pytest.raises(LabError, match='not started'):
        gluster.parse_volume_status(bad, bricks)


def test_parse_volume_info_and_pool():
    info = gluster.parse_volume_info(INFO_XML)
    assert info == {'name': 'engine', 'type': 'Replicate', 'status': 'Started', 'replica': 3,
                    'bricks': ['host1:/b/host1', 'host2:/b/host2'],
                    'options': {'network.ping-timeout': '30'}}
    pool = ('UUID\t\t\t\t\tHostname \tState\n'
            'a\thost2    \tConnected \n'
            'b\thost3    \tDisconnected \n'
            'c\tlocalhost\tConnected \n')
    assert gluster.parse_pool(pool) == {'host2': True, 'host3': False}


def test_check_installed(tmp_path):
    with pytest.raises(LabError, match='glusterfs-server and glusterfs-client .*run '
                                       'scripts/bootstrap'):
        gluster.check_installed(str(tmp_path))
    if all(shutil.which(c, path=Lab.env()['PATH']) for c in gluster.COMMANDS):
        gluster.check_installed(Lab.env()['PATH'])


DELAY_CHECK = r"""
import socket, subprocess, sys, threading, time
from ovirt_hosted_engine_setup.lab import gluster
def sh(*cmd):
    subprocess.run(cmd, check=True)
sh('ip', 'link', 'set', 'lo', 'up')
sh('ip', 'addr', 'add', '10.9.9.9/32', 'dev', 'lo')
d = subprocess.Popen([sys.executable, '-m', 'ovirt_hosted_engine_setup.lab.gluster', 'delay',
                      '--device', gluster.SLOW_DEVICE, '--ms', '300'])
while not gluster.has_device(d.pid, gluster.SLOW_DEVICE):
    time.sleep(0.05)
for cmd in gluster.slow_setup_script():
    sh(*cmd)
subprocess.run(['nft', '-f', '-'], input=gluster.nft_slow_script([9999]), text=True,
               check=True)
srv = socket.create_server(('10.9.9.9', 9999))
def echo():
    c, _ = srv.accept()
    c.sendall(c.recv(10))
threading.Thread(target=echo, daemon=True).start()
def rtt(addr):
    t0 = time.monotonic()
    s = socket.create_connection(addr)
    s.sendall(b'x')
    s.recv(10)
    return time.monotonic() - t0
slow = rtt(('10.9.9.9', 9999))
srv2 = socket.create_server(('10.9.9.9', 9998))
threading.Thread(target=lambda: srv2.accept()[0].sendall(b'y'), daemon=True).start()
t0 = time.monotonic()
socket.create_connection(('10.9.9.9', 9998)).recv(1)
fast = time.monotonic() - t0
d.kill()
print(slow, fast)
"""


@root_only
def test_delayer_holds_marked_packets():
    """In a scratch network namespace: the delayer, the rules and the nft table hold what is
    sent to the marked port (the SYN's ACK and the request: 2 x 300 ms), nothing else."""
    r = subprocess.run(['unshare', '--net', sys.executable, '-c', DELAY_CHECK],
                       capture_output=True, text=True, timeout=60,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                           os.path.abspath(__file__)))))
    assert r.returncode == 0, r.stderr
    slow, fast = map(float, r.stdout.splitlines()[-1].split())
    assert slow >= 0.6 and fast < 0.2, (slow, fast)


def test_rule_prefs():
    text = '0:\tfrom all lookup local\n10:\tfrom all fwmark 0x4c47 lookup 147\n' \
        '32766:\tfrom all lookup main\n'
    assert gluster.rule_prefs(text) == {0, 10, 32766}


def test_inject_checks_the_delay():
    for kind, kw, why in (('storage-slow', {}, 'needs a delay'),
                          ('storage-slow', {'ms': 0}, '1 to 60000 ms, not 0'),
                          ('storage-slow', {'ms': 60001}, '1 to 60000 ms'),
                          ('crash', {'ms': 5}, 'takes no delay'),
                          ('storage-loss', {'ms': 5}, 'takes no delay')):
        with pytest.raises(LabError, match=why):
            faults.inject(None, 'host1', kind, **kw)
