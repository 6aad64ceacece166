"""The lab DNS server: dnsmasq on the gateway address in the lab network namespace answers
the lab's names (forward and reverse) to the lab hosts, whose resolv.conf names it; unknown
names are NXDOMAIN at once; the machine's resolv.conf never changes; down leaves no dnsmasq."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ovirt_hosted_engine_setup.lab import cli, dns
from ovirt_hosted_engine_setup.lab import lab as labmod
from ovirt_hosted_engine_setup.lab.lab import proc_start

from .conftest import LabRunner, lab_processes, outlived

# Run inside a lab host: one A query per name in argv to the first nameserver of the host's
# /etc/resolv.conf; print {name: {rcode, addresses, seconds}} as JSON.
QUERY = r'''
import json, random, socket, struct, sys, time
server = [ln.split()[1] for ln in open('/etc/resolv.conf') if ln.startswith('nameserver')][0]
def skip_name(msg, off):
    while msg[off] and msg[off] < 0xc0:
        off += 1 + msg[off]
    return off + (2 if msg[off] else 1)
out = {'server': server}
for name in sys.argv[1:]:
    qid = random.randrange(65536)
    query = struct.pack('>6H', qid, 0x0100, 1, 0, 0, 0) + b''.join(
        bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\0' + struct.pack('>2H', 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    t0 = time.monotonic()
    s.sendto(query, (server, 53))
    msg = s.recv(4096)
    seconds = time.monotonic() - t0
    rid, flags, _qd, ancount = struct.unpack('>4H', msg[:8])
    assert rid == qid
    off = skip_name(msg, 12) + 4
    addresses = []
    for _ in range(ancount):
        off = skip_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack('>2HIH', msg[off:off + 10])
        off += 10
        if rtype == 1:
            addresses.append(socket.inet_ntoa(msg[off:off + 4]))
        off += rdlen
    out[name] = {'rcode': flags & 0xf, 'addresses': addresses, 'seconds': seconds}
print(json.dumps(out))
'''
NOERROR, NXDOMAIN = 0, 3


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def state(lab_dir):
    with open(os.path.join(lab_dir, 'state.json')) as f:
        return json.load(f)


def dnsmasq_of(lab_dir):
    """Pids of dnsmasq processes serving the lab in lab_dir (by their command line)."""
    out = []
    for name in os.listdir('/proc'):
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as f:
                argv = f.read().decode(errors='replace').split('\0')
        except (OSError, ValueError):
            continue
        if name.isdigit() and proc_start(int(name)) is not None and \
                os.path.basename(argv[0]) == 'dnsmasq' and any(lab_dir in a for a in argv):
            out.append(int(name))
    return out


def listening_sockets(net_pid):
    """{(proto, local address)} of the bound UDP and listening TCP sockets in a network
    namespace, from /proc (kernel hex notation)."""
    out = set()
    for proto in ('udp', 'udp6', 'tcp', 'tcp6'):
        with open('/proc/%d/net/%s' % (net_pid, proto)) as f:
            for line in list(f)[1:]:
                cols = line.split()
                if proto.startswith('udp') or cols[3] == '0A':
                    out.add((proto, cols[1]))
    return out


@pytest.fixture(scope='module')
def dns_lab():
    """A lab of two hosts (no host agent); the machine's resolv.conf as it was before."""
    lab_dir = tempfile.mkdtemp(prefix='he-lab-dns-', dir='/var/tmp')
    runner = LabRunner(lab_dir)
    runner.resolv_before = read_bytes('/etc/resolv.conf')
    try:
        runner.cli('up', '--hosts', '2', '--no-hostd', timeout=300)
        yield runner
    finally:
        runner.cli('down', check=False, timeout=120)
        shutil.rmtree(lab_dir, ignore_errors=True)


def test_lab_names_answered_from_a_lab_host(dns_lab):
    r = dns_lab.exec('host1', sys.executable, '-c', QUERY, 'host2.lab.test', 'engine.lab.test',
                     'host1', 'gateway.lab.test', 'nothere.lab.test', 'www.example.com')
    out = json.loads(r.stdout)
    # the host's resolver configuration names the lab DNS server
    assert out['server'] == '192.168.222.1'
    for name, address in (('host2.lab.test', '192.168.222.12'),
                          ('engine.lab.test', '192.168.222.200'),
                          ('host1', '192.168.222.11'), ('gateway.lab.test', '192.168.222.1')):
        assert (out[name]['rcode'], out[name]['addresses']) == (NOERROR, [address]), name
    # unknown names: NXDOMAIN at once, nothing is forwarded
    for name in ('nothere.lab.test', 'www.example.com'):
        assert (out[name]['rcode'], out[name]['addresses']) == (NXDOMAIN, []), name
        assert out[name]['seconds'] < 1.0, out[name]


def test_reverse_lookups(dns_lab):
    # busybox's nslookup (busybox-static, the guest image's) asks the server given
    for address, name in (('192.168.222.12', 'host2.lab.test'),
                          ('192.168.222.200', 'engine.lab.test')):
        r = dns_lab.exec('host2', 'busybox', 'nslookup', address, '192.168.222.1')
        assert 'name = %s' % name in r.stdout, r.stdout
    r = dns_lab.exec('host2', 'busybox', 'nslookup', '192.168.222.99', '192.168.222.1',
                     check=False)
    assert 'NXDOMAIN' in r.stdout and 'name =' not in r.stdout


def test_host_resolver_asks_the_lab_dns_server(dns_lab):
    conf = dns_lab.exec('host2', 'cat', '/etc/resolv.conf').stdout
    assert conf.splitlines()[1:] == ['search lab.test', 'nameserver 192.168.222.1']
    # a name in no /etc/hosts: the host's resolver (glibc, getent) asks the lab DNS
    # server, which says at once that it does not exist
    t0 = time.monotonic()
    r = dns_lab.exec('host2', 'getent', 'ahostsv4', 'no-such-name.example', check=False)
    assert r.returncode == 2 and time.monotonic() - t0 < 5
    with open(os.path.join(dns_lab.dir, 'dns', 'dnsmasq.log')) as f:
        log = f.read()
    assert 'query[A] no-such-name.example from 192.168.222.12' in log
    # the machine's resolver configuration is its own
    assert read_bytes('/etc/resolv.conf') == dns_lab.resolv_before


def test_one_list_of_names(dns_lab):
    """The hosts' /etc/hosts and the DNS server's hosts file hold the same lab names."""
    etc_hosts = dns_lab.exec('host1', 'cat', '/etc/hosts').stdout.splitlines()
    dns_hosts = read_bytes(os.path.join(dns_lab.dir, 'dns', 'hosts')).decode().splitlines()
    assert [ln for ln in etc_hosts if 'localhost' not in ln] == dns_hosts
    assert dns_hosts == ['192.168.222.1\tgateway.lab.test gateway',
                         '192.168.222.11\thost1.lab.test host1',
                         '192.168.222.12\thost2.lab.test host2',
                         '192.168.222.200\tengine.lab.test engine']


def test_dnsmasq_in_the_lab_network_on_the_gateway_only(dns_lab):
    st = state(dns_lab.dir)
    rec = st['dns']
    assert proc_start(rec['pid']) == rec['start']
    with open('/proc/%d/comm' % rec['pid']) as f:
        assert f.read().strip() == 'dnsmasq'
    assert os.readlink('/proc/%d/ns/net' % rec['pid']) == st['net']['ns']['net']
    # port 53 on 192.168.222.1 (UDP and TCP), nothing else: no DHCP, no IPv6, no other address
    assert listening_sockets(st['net']['pid']) == {('udp', '01DEA8C0:0035'),
                                                   ('tcp', '01DEA8C0:0035')}
    # the machine's own network namespace has no socket of the lab DNS server
    assert ('udp', '01DEA8C0:0035') not in listening_sockets(os.getpid())
    with open('/proc/%d/cmdline' % rec['pid']) as f:
        argv = f.read().split('\0')
    assert '--no-resolv' in argv and '--pid-file=' in argv and '--no-hosts' in argv


def test_status_shows_the_dns_server(dns_lab):
    r = dns_lab.cli('status')
    assert '(gateway 192.168.222.1)   dns: up   ' in r.stdout.splitlines()[0] + '   '


def test_status_of_a_dead_dns_server(dns_lab, capsys):
    class Dead(labmod.Lab):
        def load(self):
            st = super().load()
            st['dns']['start'] += 1   # a record no running process matches
            return st

    assert cli._status(Dead(dns_lab.dir)) == 1
    assert '   dns: DEAD   ' in capsys.readouterr().out.splitlines()[0] + '   '


def test_down_leaves_no_dnsmasq(dns_lab):
    st = state(dns_lab.dir)
    rec = st['dns']
    assert dnsmasq_of(dns_lab.dir) == [rec['pid']]
    before = lab_processes(st)
    assert rec['pid'] in [r['pid'] for r in before]
    dns_lab.cli('down')
    assert proc_start(rec['pid']) is None
    assert dnsmasq_of(dns_lab.dir) == []
    assert outlived(before) == []
    assert read_bytes('/etc/resolv.conf') == dns_lab.resolv_before


# ----------------------------------------------------------- a lab of this test's own
# (own_lab_dir: tests/lab/conftest.py)


def test_dnsmasq_that_fails_to_start_is_reported(own_lab_dir, monkeypatch):
    """dnsmasq exiting at start (here: an address the lab network does not have): up stops
    what it started and names dnsmasq and its log."""
    real = dns.command
    monkeypatch.setattr(dns, 'command', lambda hosts, address: real(hosts, '192.168.222.254'))
    with pytest.raises(labmod.LabError) as e:
        labmod.Lab(own_lab_dir).up(1, with_hostd=False)
    log = os.path.join(own_lab_dir, 'dns', 'dnsmasq.log')
    first = str(e.value).splitlines()[0]
    assert first == 'the lab DNS server (dnsmasq) exited at start; its log: %s' % log
    # the log's last lines follow
    assert 'failed to create listening socket for 192.168.222.254' in str(e.value)
    assert not os.path.exists(os.path.join(own_lab_dir, 'state.json'))
    assert dnsmasq_of(own_lab_dir) == []


def test_dnsmasq_without_the_lab_names_is_reported(own_lab_dir, monkeypatch):
    """dnsmasq up but unable to read the lab's hosts file: up fails and says so."""
    real = dns.write_files

    def write_files(*a, **kw):
        out = real(*a, **kw)
        os.unlink(out[0])
        return out

    monkeypatch.setattr(dns, 'write_files', write_files)
    with pytest.raises(labmod.LabError) as e:
        labmod.Lab(own_lab_dir).up(1, with_hostd=False)
    hosts = os.path.join(own_lab_dir, 'dns', 'hosts')
    log = os.path.join(own_lab_dir, 'dns', 'dnsmasq.log')
    assert str(e.value).splitlines()[0] == (
        'the lab DNS server (dnsmasq) could not read the lab names (failed to load names from '
        '%s: No such file or directory); its log: %s' % (hosts, log))
    # the running dnsmasq was stopped with the rest
    assert not os.path.exists(os.path.join(own_lab_dir, 'state.json'))
    assert dnsmasq_of(own_lab_dir) == []


# ----------------------------------------------------------- no lab

def test_resolv_conf_script_follows_a_link_into_run(tmp_path):
    """A resolv.conf that links into /run (systemd-resolved) is covered in the host's
    private /run; the lines work in a scratch mount namespace."""
    lab_resolv = tmp_path / 'resolv.conf'
    lab_resolv.write_text(dns.resolv_conf_text('192.168.222.1', 'lab.test'))
    link = tmp_path / 'etc-resolv.conf'
    os.symlink('/run/lab-dns-test/resolve/stub-resolv.conf', str(link))
    lines = dns.resolv_conf_script(str(lab_resolv), str(link))
    r = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
                        'set -e; mount -t tmpfs lab-test /run\n%s\ncat %s'
                        % ('\n'.join(lines), link)], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout) == (0, lab_resolv.read_text()), r.stderr
    assert not os.path.exists('/run/lab-dns-test')
    # a regular file is covered where it is; no file at all: nothing to cover
    plain = tmp_path / 'plain'
    plain.write_text('nameserver 192.0.2.53\n')
    assert dns.resolv_conf_script(str(lab_resolv), str(plain)) == [
        'mount --bind %s %s' % (lab_resolv, plain)]
    assert dns.resolv_conf_script(str(lab_resolv), str(tmp_path / 'missing')) is None
