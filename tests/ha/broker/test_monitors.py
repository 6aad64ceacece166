"""The monitors against real targets: ping/tcp/dns on loopback, and a real host
agent (ovirt-hosted-engine-hostd on 127.0.0.1) for memory, bridge, CPU load,
storage domain and engine health."""
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import uuid

import pytest

from ovirt_hosted_engine_setup.ha.broker import monitors as mon

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from api.hostd_proc import Hostd  # noqa: E402
from daemon_proc import free_port  # noqa: E402


@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen(16)
    s.settimeout(0.2)
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                c, _ = s.accept()
                c.close()
            except socket.timeout:
                continue
            except OSError:
                return
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield s.getsockname()[1]
    stop.set()
    s.close()
    t.join(5)


def test_network_ping_loopback():
    check = mon.network_check({'network_test': 'ping', 'gateway': '127.0.0.1'})
    assert check() == {'network': 1.0}


def test_network_tcp(listener):
    check = mon.network_check({'network_test': 'tcp', 'tcp_t_address': '127.0.0.1',
                               'tcp_t_port': str(listener)})
    assert check() == {'network': 1.0}
    closed = mon.network_check({'network_test': 'tcp', 'tcp_t_address': '127.0.0.1',
                                'tcp_t_port': str(free_port())}, timeout=1)
    assert closed() == {'network': 0.0}


def test_network_dns_and_none():
    assert mon.network_check({'network_test': 'dns', 'fqdn': 'localhost'})() == {'network': 1.0}
    assert mon.network_check({'network_test': 'dns', 'fqdn': 'localhost:8080'})() == {
        'network': 1.0}
    assert mon.network_check({'network_test': 'none'})() == {'network': 1.0}


def test_network_bad_configuration():
    with pytest.raises(ValueError, match='gateway'):
        mon.network_check({'network_test': 'ping'})
    with pytest.raises(ValueError, match='tcp_t_port'):
        mon.network_check({'network_test': 'tcp', 'tcp_t_address': '127.0.0.1'})
    with pytest.raises(ValueError, match='not one of'):
        mon.network_check({'network_test': 'carrier-pigeon'})


def test_failing_monitor_keeps_value_and_logs_once(caplog):
    store = mon.ValueStore()
    outcomes = iter([{'mem_free_mb': 100}, OSError('boom'), OSError('boom'),
                     OSError('other'), {'mem_free_mb': 50}])

    def func():
        v = next(outcomes)
        if isinstance(v, Exception):
            raise v
        return v
    m = mon.Monitor('mem-free', func, 10, store)
    with caplog.at_level(logging.WARNING, logger=mon.__name__):
        assert m.run_once() is True
        for _ in range(3):
            assert m.run_once() is False
            assert store.get('mem_free_mb') == 100
        assert m.run_once() is True
    assert store.get('mem_free_mb') == 50
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert msgs == ['monitor mem-free: boom; keeping its last value',
                    'monitor mem-free: other; keeping its last value']
    snap = store.snapshot()
    assert snap['mem_free_mb'] == 50 and snap['network'] is None
    assert snap['age']['network'] is None and 0 <= snap['age']['mem_free_mb'] < 5


def test_cpu_load_window(tmp_path):
    stat = tmp_path / 'stat'
    clock = [0.0]

    def write(busy, idle):
        stat.write_text('cpu  %d 0 0 %d 0 0 0 0 0 0\ncpu0 1 2 3 4\n' % (busy, idle))

    cpu = mon.CpuLoad(None, None, window=900, proc_stat=str(stat), clock=lambda: clock[0])
    write(100, 100)
    assert cpu() == {'cpu_load': 0.5}            # since boot
    clock[0] = 10
    write(200, 100)                               # 100 % busy for 10 s
    assert cpu()['cpu_load'] == 0.75              # mean of 0.5 and 1.0
    clock[0] = 2000
    write(200, 200)                               # idle; older samples leave the window
    assert cpu() == {'cpu_load': 0.0}


class FakeAgent:
    """VM.getStats answers as VDSM gives them."""

    def __init__(self, entry):
        self.entry = entry

    def call(self, method, **params):
        assert method == 'VM.getStats' and params == {'vmID': 'vm'}
        return [dict(self.entry, vmId='vm')]


def test_cpu_load_without_the_engine_vm(tmp_path):
    """host load minus (cpuUser + cpuSys) / 100 / CPUs, as oVirt's broker computes it;
    VDSM's initial "0.00" figures are not taken for a real zero."""
    stat = tmp_path / 'stat'
    clock = [0.0]

    def write(busy, idle):
        stat.write_text('cpu  %d 0 0 %d 0 0 0 0 0 0\n' % (busy, idle))
    agent = FakeAgent({'status': 'Up', 'cpuUser': '0.00', 'cpuSys': '0.00',
                       'cpuUsage': '0.00'})
    cpu = mon.CpuLoad(agent, 'vm', window=900, proc_stat=str(stat), clock=lambda: clock[0],
                      ncpu=4)
    write(0, 100)
    assert cpu() == {'cpu_load': 0.0}
    clock[0] = 60
    write(80, 120)                     # host 80 % busy, VDSM's figures still initial
    assert cpu() == {'cpu_load': 0.0}  # kept, not 0.8
    agent.entry = {'status': 'Up', 'cpuUser': '150.00', 'cpuSys': '10.00',
                   'cpuUsage': '123456789000'}
    clock[0] = 120
    write(160, 140)                    # 80 % busy; the VM: 1.6 CPUs of 4 = 0.4
    assert cpu() == {'cpu_load': 0.2}  # mean of 0.0 and 0.8 - 0.4
    agent.entry = {'status': 'Down'}
    clock[0] = 2000
    write(240, 160)                    # 80 % busy, no VM here
    assert cpu() == {'cpu_load': 0.8}


@pytest.fixture(scope='module')
def hostd():
    if os.geteuid() != 0:
        pytest.skip('the host agent runs as root')
    base = tempfile.mkdtemp(prefix='broker-hostd-')
    agent = Hostd(base).start()
    yield agent
    agent.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def agent(hostd):
    a = mon.HostAgent('127.0.0.1', hostd.port, hostd_root=hostd.root, timeout=20)
    yield a
    a.close()


def test_host_agent_monitors(agent):
    mem = mon.memory_check(agent)()
    assert mem['mem_free_mb'] > 0
    stats = agent.call('Host.getStats')
    nets = stats['network']
    for name, entry in nets.items():
        assert mon.bridge_check(agent, name)() == {'bridge_up': entry['state'] == 'up'}
    assert mon.bridge_check(agent, 'no-such-bridge')() == {'bridge_up': False}
    sd = str(uuid.uuid4())
    assert mon.storage_check(agent, sd)() == {'storage_valid': False, 'storage_delay': None}
    cpu = mon.CpuLoad(agent, str(uuid.uuid4()))
    first = cpu()['cpu_load']
    second = cpu()['cpu_load']
    assert 0.0 <= first <= 1.0 and 0.0 <= second <= 1.0


def test_engine_health_without_vm(agent):
    health = mon.EngineHealth(agent, str(uuid.uuid4()), '127.0.0.1:1')
    assert health() == {'engine_health': {'vm': 'down', 'health': 'bad', 'detail': 'unknown',
                                          'reason': 'vm not running on this host'}}


def test_host_agent_unreachable():
    port = free_port()
    a = mon.HostAgent('127.0.0.1', port, timeout=2)
    try:
        assert mon.EngineHealth(a, 'vm', 'localhost')() == {'engine_health': {
            'vm': 'unknown', 'health': 'unknown', 'detail': 'unknown',
            'reason': 'host agent not reachable'}}
        store = mon.ValueStore()
        store.update({'mem_free_mb': 7})
        m = mon.Monitor('mem-free', mon.memory_check(a), 10, store)
        assert m.run_once() is False and store.get('mem_free_mb') == 7
    finally:
        a.close()
