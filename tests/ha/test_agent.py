"""ovirt-ha-agent: configuration errors, waiting for a missing broker, the loop
against a real host agent (ovirt-hosted-engine-hostd on loopback), AgentStopped
on SIGTERM, and the systemd units."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ovirt_hosted_engine_setup.ha import core

from .agent_broker import ScriptedBroker
from .agent_proc import TOP, AgentProc, Hostd

VMID = '6a7e5c1e-2f3b-4c5d-8e9f-0a1b2c3d4e5f'
NOT_RUNNING = {'vm': 'down', 'health': 'bad', 'detail': 'unknown',
               'reason': 'vm not running on this host'}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the host agent tests run as root')


@pytest.fixture
def base():
    d = tempfile.mkdtemp(prefix='ha-agent-')
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def hostd(base):
    os.makedirs(os.path.join(base, 'hostd'))
    h = Hostd(os.path.join(base, 'hostd')).start()
    yield h
    assert h.stop() == 0


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('%s did not happen within %d s' % (what, timeout))
        time.sleep(0.1)


# -- configuration ---------------------------------------------------------------------

def test_missing_conf_is_one_line_and_exit_1(base):
    agent = AgentProc(base, os.path.join(base, 'broker.socket'))
    r = agent.run()
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert agent.conf_path in lines[0] and 'hosted-engine --deploy' in lines[0]


@pytest.mark.parametrize('conf, words', [
    ({'host_id': 'abc', 'vmid': VMID}, ['host_id', '1 to 250']),
    ({'host_id': '1'}, ['vmid']),
])
def test_bad_conf_names_the_file(base, conf, words):
    agent = AgentProc(base, os.path.join(base, 'broker.socket'), conf=conf)
    r = agent.run()
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert agent.conf_path in lines[0]
    for w in words:
        assert w in lines[0]
    assert 'Traceback' not in r.stderr


def test_bad_agent_conf_is_a_warning(base, hostd):
    """agent.conf problems are logged and the defaults used; the agent runs."""
    sock = os.path.join(base, 'broker.socket')
    broker = ScriptedBroker(sock).start()
    agent = AgentProc(base, sock, host_agent='127.0.0.1:%d' % hostd.port,
                      host_agent_root=hostd.root, conf={'host_id': '1', 'vmid': VMID})
    os.makedirs(os.path.join(agent.prefix, 'etc/ovirt-hosted-engine-ha'))
    with open(os.path.join(agent.prefix, 'etc/ovirt-hosted-engine-ha/agent.conf'), 'w') as f:
        f.write('[score]\nbase-score=lots\n')
    try:
        agent.start()
        agent.wait_log('base-score=lots: not a number, using 3400')
        agent.wait_log('connected to the host agent')
    finally:
        assert agent.stop() == 0
        broker.stop()


# -- start, loop, stop -------------------------------------------------------------------

def test_waits_for_broker_then_runs_and_publishes_agent_stopped(base, hostd):
    """A missing broker is waited for (a line per attempt, no exit); then the loop
    publishes through the broker; SIGTERM publishes AgentStopped and exits 0."""
    sock = os.path.join(base, 'broker.socket')
    agent = AgentProc(base, sock, host_agent='127.0.0.1:%d' % hostd.port,
                      host_agent_root=hostd.root, conf={'host_id': '1', 'vmid': VMID})
    agent.start()
    broker = None
    try:
        log = agent.wait_log('waiting for the broker (attempt 2', timeout=20)
        assert 'waiting for the broker (attempt 1' in log
        assert agent.proc.poll() is None
        broker = ScriptedBroker(sock)
        broker.engine_health = NOT_RUNNING
        broker.start()
        agent.wait_log('connected to the broker', timeout=20)
        agent.wait_log('connected to the host agent', timeout=20)
        wait_for(lambda: any(p['state'] == core.DOWN for p in broker.published()), 20,
                 'EngineDown published')
        first = [p for p in broker.published() if p['state'] == core.DOWN][0]
        assert first['engine_status'] == NOT_RUNNING
        assert first['stopped'] is False and first['score'] == 3400
        methods = set(broker.methods())
        assert {'status', 'monitors', 'read_area', 'vm_lease_owner', 'put_host',
                'notify'} <= methods
        assert ('notify', {'type': 'state_transition', 'detail': 'StartState-ReinitializeFSM'}) \
            in broker.calls
        # no start within the 60 s of history
        assert core.START_VM not in [p['state'] for p in broker.published()]
    finally:
        rc = agent.stop()
        if broker:
            broker.stop()
    assert rc == 0, agent.read_log()[-3000:]
    last = broker.published()[-1]
    assert last['state'] == core.AGENT_STOPPED
    assert last['stopped'] is True and last['score'] == 0
    assert 'published AgentStopped' in agent.read_log()


def test_broker_without_engine_health_means_no_action(base, hostd):
    """Until the broker has an engine health value the local VM is unknown: no action."""
    sock = os.path.join(base, 'broker.socket')
    broker = ScriptedBroker(sock).start()
    agent = AgentProc(base, sock, host_agent='127.0.0.1:%d' % hostd.port,
                      host_agent_root=hostd.root, conf={'host_id': '1', 'vmid': VMID})
    try:
        agent.start()
        wait_for(lambda: any(p['state'] == core.UNKNOWN_VM for p in broker.published()), 20,
                 'UnknownLocalVmState published')
        broker.engine_health = NOT_RUNNING
        agent.wait_log('state UnknownLocalVmState -> ReinitializeFSM', timeout=20)
        agent.wait_log('state ReinitializeFSM -> EngineDown', timeout=20)
    finally:
        assert agent.stop() == 0
        broker.stop()


def test_host_agent_down_slows_the_loop(base, hostd):
    """The host agent stops answering: the local VM is unknown and the loop runs every 30 s."""
    sock = os.path.join(base, 'broker.socket')
    broker = ScriptedBroker(sock).start()
    broker.engine_health = NOT_RUNNING
    agent = AgentProc(base, sock, host_agent='127.0.0.1:%d' % hostd.port,
                      host_agent_root=hostd.root, conf={'host_id': '1', 'vmid': VMID})
    try:
        agent.start()
        agent.wait_log('state ReinitializeFSM -> EngineDown', timeout=20)
        assert hostd.stop() == 0
        agent.wait_log('the host agent is not reachable', timeout=20)
        agent.wait_log('-> UnknownLocalVmState', timeout=20)
        n = len(broker.published())
        time.sleep(5)
        assert len(broker.published()) <= n + 1
    finally:
        assert agent.stop() == 0
        broker.stop()
    assert broker.published()[-1]['state'] == core.AGENT_STOPPED


# -- systemd units ----------------------------------------------------------------------

@pytest.mark.skipif(not shutil.which('systemd-analyze'), reason='systemd-analyze is missing')
def test_units_verify(base):
    """The units pass systemd-analyze verify (ExecStart pointed at this checkout's code,
    since the checkout is not installed in /usr/bin)."""
    units = {}
    for name, module in (('ovirt-ha-broker', 'ovirt_hosted_engine_setup.ha.broker.daemon'),
                         ('ovirt-ha-agent', 'ovirt_hosted_engine_setup.ha.agent')):
        with open(os.path.join(TOP, 'templates', name + '.service')) as f:
            text = f.read()
        units[name] = text
        assert 'ExecStart=/usr/bin/%s\n' % name in text
        text = text.replace('ExecStart=/usr/bin/%s' % name,
                            'ExecStart=%s -m %s' % (sys.executable, module))
        with open(os.path.join(base, name + '.service'), 'w') as f:
            f.write(text)
    r = subprocess.run(['systemd-analyze', 'verify', '--man=no',
                        os.path.join(base, 'ovirt-ha-broker.service'),
                        os.path.join(base, 'ovirt-ha-agent.service')],
                       capture_output=True, text=True, cwd=base, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'ovirt-ha' not in r.stdout + r.stderr, r.stdout + r.stderr
    agent = units['ovirt-ha-agent']
    for line in ('Requires=ovirt-ha-broker.service', 'After=ovirt-ha-broker.service',
                 'Restart=on-failure', 'RestartSec=10', 'Type=simple'):
        assert line + '\n' in agent
    assert int(agent.split('TimeoutStopSec=')[1].split()[0]) >= 60
    broker = units['ovirt-ha-broker']
    for line in ('Wants=sanlock.service', 'Restart=on-failure', 'Type=simple'):
        assert line + '\n' in broker
    assert 'vdsmd.service' in broker and 'ovirt-hosted-engine-hostd.service' in broker
