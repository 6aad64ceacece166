"""ovirt-ha-agent: configuration errors, waiting for a missing broker, the loop
against a real host agent (ovirt-hosted-engine-hostd on loopback), AgentStopped
on SIGTERM, and the systemd units."""
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import daemon_proc
import pytest

from ovirt_hosted_engine_setup.ha import core

from .agent_broker import ScriptedBroker
from .agent_proc import TOP, AgentProc, Hostd, python

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
    return daemon_proc.wait_for(what, predicate, timeout, 0.1)


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
        broker.live_ids = [1, 2]       # another host is live in the lockspace
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
        # no start within the 60 s of history while another host is live, and the log says why
        agent.wait_log('EngineDown: waiting for 60 s of metadata history before starting the '
                       'VM: sanlock shows host id 2 live', timeout=30)
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


def test_a_starting_broker_does_not_slow_the_loop(base, hostd):
    """While the broker has yet to connect the storage and join the lockspace, the agent
    keeps looping (every 2 s in its first minute), not backing off as from a dead sanlock:
    it starts the VM within seconds of the broker joining."""
    sock = os.path.join(base, 'broker.socket')
    broker = ScriptedBroker(sock).start()
    broker.engine_health = NOT_RUNNING
    broker.storage_connected = False
    agent = AgentProc(base, sock, host_agent='127.0.0.1:%d' % hostd.port,
                      host_agent_root=hostd.root, conf={'host_id': '1', 'vmid': VMID})
    try:
        agent.start()
        agent.wait_log('host id 1 is not held in the hosted-engine lockspace: storage not '
                       'connected', timeout=20)
        n = broker.methods().count('status')
        time.sleep(6)
        assert broker.methods().count('status') >= n + 2
        broker.storage_connected = True
        # (no vm.conf here: the start fails, which is not what this test is about)
        agent.wait_log('state EngineDown -> EngineStart', timeout=20)
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


# -- actions, one at a time -------------------------------------------------------------

def test_actions_against_the_host_agent(base, hostd):
    """Each action against the real host agent and the scripted broker; failures become
    ActionResults or log lines, never exceptions."""
    from ovirt_hosted_engine_setup.ha.agent_loop import Agent
    from ovirt_hosted_engine_setup.ha.broker_client import BrokerClient
    sock = os.path.join(base, 'broker.socket')
    broker = ScriptedBroker(sock).start()
    vm_conf = os.path.join(base, 'vm.conf')
    a = Agent(conf={'vmid': VMID, 'host_id': '1'}, core_config=core.CoreConfig(),
              broker=BrokerClient(sock), host_agent_factory=lambda: hostd.client(),
              vm_conf_path=vm_conf, ha_conf_path=os.path.join(base, 'ha.conf'))
    try:
        r = a.start_vm(core.StartVM(), None)
        assert not r.ok and r.action == 'start' and 'no VM definition' in r.message
        with open(vm_conf, 'w') as f:
            f.write('vmId=%s\nmemSize=512\nxmlBase64=not base64!\n' % VMID)
        a._load_local_vm_conf()
        assert a.cfg.vm_mem_mb == 512
        r = a.start_vm(core.StartVM(), None)
        assert not r.ok and 'xmlBase64' in r.message and vm_conf in r.message
        assert a.power_off_vm() == core.ActionResult('poweroff', True)
        r = a.shutdown_vm(core.ShutdownVM())
        assert not r.ok and r.action == 'shutdown' and r.code == 1
        broker.fail['notify'] = ('smtp-error', 'the mail server is down')
        a.notify(core.Notify(core.UP, core.STOP))
        assert ('notify', {'type': 'state_transition', 'detail': 'EngineUp-EngineStop'}) \
            in broker.calls
        published = core.Published(3400, NOT_RUNNING, core.DOWN)
        assert a.publish(published, core.AgentState(core.DOWN))
        broker.held = False
        assert not a.publish(published, core.AgentState(core.DOWN))
        assert a.local_maintenance() is False
        with open(os.path.join(base, 'ha.conf'), 'w') as f:
            f.write('local_maintenance=True\nlocal_maintenance_manual=True\n')
        assert a.local_maintenance() is True
    finally:
        a.close()
        broker.stop()


def test_local_vm_after_an_action_comes_from_the_host_agent():
    """An engine health value taken before the agent's last VM action is not believed:
    the host agent's own record is used for that loop."""
    from ovirt_hosted_engine_setup.ha.agent_loop import Agent, monitors_from
    a = Agent(conf={'vmid': VMID, 'host_id': '1'}, core_config=core.CoreConfig(), broker=None,
              host_agent_factory=None, vm_conf_path='/nonexistent/vm.conf',
              ha_conf_path='/nonexistent/ha.conf')
    up_good = {'vm': 'up', 'health': 'good', 'detail': 'Up', 'reason': None}
    assert a.choose_local_vm(100.0, up_good, 5.0, True, {'status': 'Up'}) == up_good
    a.last_action_at = 98.0
    stale = a.choose_local_vm(100.0, up_good, 5.0, True, {'status': 'Down', 'exitCode': 0,
                                                           'exitMessage': 'Admin shut down'})
    assert stale == {'vm': 'down', 'health': 'bad', 'detail': 'Down',
                     'reason': 'Admin shut down'}
    assert a.choose_local_vm(100.0, up_good, 1.0, True, None) == up_good
    assert a.choose_local_vm(100.0, None, None, True, None)['vm'] == 'unknown'
    assert a.choose_local_vm(100.0, up_good, 0.0, False, None)['reason'] == \
        'host agent not reachable'
    assert monitors_from({'network': None, 'engine_health': up_good}) is None
    m = monitors_from({'network': 1.0, 'bridge_up': True, 'mem_free_mb': 100, 'cpu_load': 0.1,
                       'storage_valid': None, 'storage_delay': None})
    assert m.complete() and m.storage_valid is False


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


# -- the real broker, host agent, sanlock and libvirt -------------------------------------

PREPARE = r'''
import json, sys
from ovirt_hosted_engine_setup.api.client import Client
from ovirt_hosted_engine_setup.he_storage import config_volume, domain, layout, volumes
with Client('127.0.0.1', int(sys.argv[1]), hostd_root=sys.argv[2], timeout=60) as c:
    print(json.dumps(domain.prepare_domain(c, json.loads(sys.argv[3]))))
'''
HEALTH_BODY = b'DB Up!Welcome to Health Status!'


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == '/ovirt-engine/services/health'
        self.send_response(200 if ok else 404)
        self.end_headers()
        if ok:
            self.wfile.write(HEALTH_BODY)

    def log_message(self, *args):
        pass


@pytest.fixture
def stack(base):
    """sanlock, libvirtd, hostd, a prepared hosted-engine domain with the VM definition in
    its configuration volume, the engine's health page on loopback, and ovirt-ha-broker."""
    if not shutil.which('libvirtd') or not os.path.exists('/usr/bin/qemu-system-x86_64'):
        pytest.skip('libvirtd and qemu-system-x86 are needed')
    from ovirt_hosted_engine_setup.he_storage import config_volume, heconf, layout
    from ovirt_hosted_engine_setup.lab import images
    try:
        images.guest_image()
    except images.ImageMissing as e:
        pytest.skip(str(e))
    daemons = load_daemons()
    stop = []
    try:
        sl = daemons.SanlockDaemon(os.path.join(base, 'sanlock'), 'ha-agent-test').start()
        stop.append(sl.stop)
        lv = daemons.LibvirtHost(os.path.join(base, 'libvirt'), sl.run_dir).start()
        stop.append(lv.stop)
        hd = Hostd(os.path.join(base, 'hostd'), extra=[
            '--sanlock-run-dir', sl.run_dir, '--sanlock-io-timeout', '1',
            '--monitor-interval', '0.5', '--libvirt-uri', lv.uri])
        os.makedirs(hd.base)
        hd.start()
        stop.append(hd.stop)
        storage = os.path.join(base, 'storage')
        os.makedirs(storage)
        env = dict(os.environ, SANLOCK_RUN_DIR=sl.run_dir)
        spec = {'storage': storage, 'domain_type': 'localfs', 'vm_disk_size': 96 << 20,
                'host_id': 1, 'io_timeout': 1}
        p = subprocess.run([python(), '-c', PREPARE, str(hd.port), hd.root,
                            json.dumps(spec)], capture_output=True, text=True, timeout=240,
                           cwd=TOP, env=env, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr[-3000:]
        conf = json.loads(p.stdout.strip().splitlines()[-1])
        page = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Health)
        threading.Thread(target=page.serve_forever, daemon=True).start()
        stop.append(page.shutdown)
        dc = os.path.join(hd.base, 'dc')
        vp = layout.volume_paths(conf, dc)
        images.copy_disk(os.path.join(storage, conf['sdUUID'], 'images', conf['vm_disk_id'],
                                      conf['vm_disk_vol_id']))
        xml = images.domain_xml('HostedEngine', VMID, disk_path=vp['vm'], lease={
            'lockspace': conf['sdUUID'], 'key': conf['vm_disk_vol_id'], 'path': vp['vm_lease']})
        vm_conf = heconf.render_vm_conf(heconf.make_vm_conf(VMID, xml, mem_mb=256, vcpus=1))
        conf.update(vmid=VMID, host_id='1', fqdn='127.0.0.1:%d' % page.server_address[1],
                    network_test='none', conf=os.path.join(base, 'run', 'vm.conf'))
        he_conf = heconf.render(conf)
        cv = config_volume.ConfigVolume(os.path.join(
            storage, conf['sdUUID'], 'images', conf['conf_image_UUID'], conf['conf_volume_UUID']))
        cv.write({'version': '1\n', 'hosted-engine.conf': he_conf, 'vm.conf': vm_conf},
                 cv.checksum())
        sock = os.path.join(base, 'broker.socket')
        agent = AgentProc(base, sock, host_agent='127.0.0.1:%d' % hd.port,
                          host_agent_root=hd.root, extra=['--data-center-dir', dc])
        with open(agent.conf_path, 'w') as f:
            f.write(he_conf)
        err = open(os.path.join(base, 'broker.stderr'), 'wb')
        broker = subprocess.Popen(
            [python(), '-m', 'ovirt_hosted_engine_setup.ha.broker.daemon',
             '--conf', agent.conf_path, '--socket', sock, '--interval', '1',
             '--log-file', os.path.join(base, 'broker.log'),
             '--host-agent', '127.0.0.1:%d' % hd.port, '--hostd-root', hd.root],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=TOP,
            env=dict(env, OVIRT_HOSTED_ENGINE_PREFIX=agent.prefix), start_new_session=True)

        def stop_broker():
            if broker.poll() is None:
                broker.send_signal(signal.SIGTERM)
                broker.wait(60)
        stop.append(stop_broker)
        wait_for(lambda: os.path.exists(sock), 30, 'the broker socket')
        yield {'agent': agent, 'hostd': hd, 'conf': conf, 'paths': vp, 'broker': broker,
               'vm_conf': vm_conf, 'base': base}
    finally:
        for fn in reversed(stop):
            fn()


def load_daemons():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'ha_agent_tests_daemons', os.path.join(TOP, 'tests', 'hostd', 'daemons.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def own_slot(path, host_id=1):
    from ovirt_hosted_engine_setup.ha import metadata
    from ovirt_hosted_engine_setup.he_storage import volumes
    data = volumes.read_volume(path)
    return metadata.parse_area(data, 4).hosts.get(host_id)


def test_real_broker_starts_the_engine_vm_and_publishes(stack):
    """With the real broker: the VM definition comes from the configuration volume,
    the agent starts the engine VM (with its sanlock lease) through the host agent
    (at once when sanlock shows it alone in the lockspace, else once its 60 s of history
    are over), sees it healthy, publishes into the real
    metadata volume, shuts the VM down for local maintenance, and publishes
    AgentStopped there on SIGTERM."""
    agent, hd, paths = stack['agent'], stack['hostd'], stack['paths']
    agent.start()
    try:
        agent.wait_log('VM definition refreshed from the configuration volume', timeout=30)
        with open(agent.vm_conf) as f:
            assert f.read() == stack['vm_conf']
        assert os.stat(agent.vm_conf).st_mode & 0o777 == 0o600
        agent.wait_log('state ReinitializeFSM -> EngineDown', timeout=60)
        # published; alone in the lockspace, the agent may have gone on to start the VM
        wait_for(lambda: (own_slot(paths['metadata']) or None) and
                 own_slot(paths['metadata']).state in (core.DOWN, core.START_VM, core.STARTING,
                                                       core.UP), 30,
                 'EngineDown (or a later state of the start) in the metadata')
        agent.wait_log('state EngineDown -> EngineStart', timeout=120)
        agent.wait_log('starting the engine VM', timeout=10)
        agent.wait_log('-> EngineUp', timeout=120)
        with hd.client() as c:
            assert c.call('VM.getStats', vmID=VMID)[0]['status'] == 'Up'
        rec = wait_for(lambda: (lambda r: r if r and r.state == core.UP else None)(
            own_slot(paths['metadata'])), 30, 'EngineUp in the metadata')
        assert rec.engine_status == {'vm': 'up', 'health': 'good', 'detail': 'Up',
                                     'reason': None}
        assert rec.score > 0 and not rec.stopped
        # local maintenance (ha.conf, as Host.setHaMaintenanceMode writes it): the VM is shut down
        os.makedirs(os.path.dirname(agent.ha_conf), exist_ok=True)
        with open(agent.ha_conf, 'w') as f:
            f.write('local_maintenance=True\n')
        agent.wait_log('state EngineUp -> LocalMaintenance', timeout=30)
        agent.wait_log('shutting down the engine VM %s (guest delay 120 s)' % VMID, timeout=10)
        with hd.client() as c:
            assert c.call('VM.getStats', vmID=VMID)[0]['status'] == 'Powering down'
        rec = wait_for(lambda: (lambda r: r if r and r.state == core.LOCAL_MAINT else None)(
            own_slot(paths['metadata'])), 30, 'LocalMaintenance in the metadata')
        assert rec.local_maintenance and rec.score == 0
    finally:
        rc = agent.stop()
    assert rc == 0, agent.read_log()[-3000:]
    rec = own_slot(paths['metadata'])
    assert rec.state == core.AGENT_STOPPED and rec.stopped and rec.score == 0
    with hd.client() as c:
        c.call('VM.destroy', vmID=VMID)
