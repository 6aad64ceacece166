"""ovirt-ha-broker as a process, against a real host agent (ovirt-hosted-engine-hostd
on 127.0.0.1), a real sanlock daemon and a hosted-engine storage domain on a local
directory prepared through the host agent; driven through its socket with BrokerClient."""
import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
from aiosmtpd.controller import Controller

from ovirt_hosted_engine_setup.ha import metadata
from ovirt_hosted_engine_setup.ha.broker_client import BrokerClient, BrokerError

from .conftest import TOP, needs_root
from .httpd import HealthServer

sys.path.insert(0, os.path.join(TOP, 'tests'))
from api.hostd_proc import Hostd  # noqa: E402
from daemon_proc import DaemonProc, free_port, python, wait_for  # noqa: E402
from hostd.daemons import SanlockDaemon  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
IO_TIMEOUT = 1
PASSWORD = 'smtp-Secret-4711'


class Sink:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return '250 OK queued'


class BrokerProc(DaemonProc):
    NAME = 'broker'
    STOP_TIMEOUT = 40

    def __init__(self, base, conf, hostd, sanlock_run_dir, broker_conf=None):
        self.base = base
        self.socket = os.path.join(base, 'ha-run', 'broker.socket')
        self.log_file = os.path.join(base, 'broker.log')
        self.cmd = [python(), '-m', 'ovirt_hosted_engine_setup.ha.broker.daemon',
                    '--conf', conf, '--broker-conf',
                    broker_conf or os.path.join(base, 'broker.conf'),
                    '--socket', self.socket, '--log-file', self.log_file, '--interval', '1',
                    '--host-agent', '127.0.0.1:%d' % hostd.port, '--hostd-root', hostd.root,
                    '--debug']
        self.env = dict(os.environ, SANLOCK_RUN_DIR=sanlock_run_dir)
        self.proc = None

    def start(self):
        self.spawn(self.cmd, os.path.join(self.base, 'broker.stderr'), env=self.env, mode='wb')
        return self.wait_ready(lambda: os.path.exists(self.socket), 30)


@pytest.fixture(scope='module')
def cluster():
    needs_root()
    base = tempfile.mkdtemp(prefix='broker-daemon-', dir='/var/tmp')
    sanlock = SanlockDaemon(os.path.join(base, 'sanlock'), 'broker-host1').start()
    hostd = None
    health = HealthServer().__enter__()
    try:
        hostd = Hostd(os.path.join(base, 'hostd'), extra=[
            '--sanlock-run-dir', sanlock.run_dir, '--sanlock-io-timeout', str(IO_TIMEOUT),
            '--monitor-interval', '1'])
        os.makedirs(hostd.base, exist_ok=True)
        hostd.start()
        storage = os.path.join(base, 'storage')
        os.makedirs(storage)
        r = subprocess.run([python(), os.path.join(HERE, 'prepare_child.py'), str(hostd.port),
                            hostd.root, storage, str(IO_TIMEOUT)], cwd=TOP,
                           env=dict(os.environ, SANLOCK_RUN_DIR=sanlock.run_dir),
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr[-3000:]
        values = json.loads(r.stdout.strip().splitlines()[-1])
        values.update(fqdn=health.fqdn, vmid=str(uuid.uuid4()), gateway='127.0.0.1',
                      network_test='ping', bridge='ovirtmgmt', vm_disk_id=values['vm_disk_id'])
        conf = os.path.join(base, 'hosted-engine.conf')
        with open(conf, 'w') as f:
            f.write(''.join('%s=%s\n' % kv for kv in sorted(values.items())))
        yield {'base': base, 'sanlock': sanlock, 'hostd': hostd, 'conf': conf,
               'values': values, 'health': health}
    finally:
        if hostd is not None:
            hostd.stop()
        health.__exit__(None, None, None)
        sanlock.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope='module')
def smtp():
    sink = Sink()
    for _ in range(5):
        port = free_port()
        controller = Controller(sink, hostname='127.0.0.1', port=port)
        try:
            controller.start()
            break
        except (OSError, RuntimeError):
            continue
    else:
        raise RuntimeError('cannot start the SMTP test server')
    yield port, sink
    controller.stop()


@pytest.fixture(scope='module')
def broker(cluster, smtp):
    base = cluster['base']
    with open(os.path.join(base, 'broker.conf'), 'w') as f:
        f.write('[email]\nsmtp-server=127.0.0.1\nsmtp-port=%d\nsource-email=ha@host1.test\n'
                'destination-emails=admin@test\nsmtp-password=%s\nsmtp-timeout=5\n'
                '[notify]\nstate_transition=maintenance|start\n'
                % (smtp[0], PASSWORD))
    proc = BrokerProc(base, cluster['conf'], cluster['hostd'], cluster['sanlock'].run_dir)
    proc.start()
    client = BrokerClient(proc.socket, timeout=30)
    yield proc, client
    client.close()
    proc.stop()


def held(client):
    return client.call('status')['lockspace']['held']


def test_status_and_monitors(broker):
    proc, c = broker
    assert c.call('ping') is True
    assert stat.S_IMODE(os.stat(proc.socket).st_mode) == 0o600
    st = wait_for('storage connected', lambda: (lambda s: s if s['storage']['connected']
                                                else None)(c.call('status')), 30)
    assert st['host_id'] == 1 and st['max_hosts'] == 250 and st['storage']['error'] is None
    assert st['hostname'] == socket.gethostname()
    wait_for('lockspace held', lambda: held(c), 30)

    def complete():
        m = c.call('monitors')
        return m if all(m[k] is not None for k in ('network', 'bridge_up', 'mem_free_mb',
                                                   'cpu_load', 'storage_valid',
                                                   'engine_health')) else None
    m = wait_for('monitor values', complete, 30)
    assert m['network'] == 1.0
    assert m['bridge_up'] is False             # no ovirtmgmt bridge on this machine
    assert m['mem_free_mb'] > 0 and 0.0 <= m['cpu_load'] <= 1.0
    assert m['engine_health'] == {'vm': 'down', 'health': 'bad', 'detail': 'unknown',
                                  'reason': 'vm not running on this host'}
    m = wait_for('storage valid', lambda: (lambda m: m if m['storage_valid'] else None)(
        c.call('monitors')), 30)
    assert m['storage_delay'] >= 0
    assert set(m['age']) >= {'network', 'engine_health'}
    assert all(0 <= a < 30 for a in m['age'].values())
    # with the host agent up from the start, no monitor ever failed
    assert 'keeping its last value' not in proc.read_log()


def read(c):
    r = c.call('read_area')
    data = base64.b64decode(r['area'])
    assert len(data) == (r['max_hosts'] + 1) * metadata.SLOT_SIZE
    return r, metadata.parse_area(data, r['max_hosts'])


def test_put_host_then_read_area(broker):
    proc, c = broker
    wait_for('lockspace held', lambda: held(c), 60)
    status = {'vm': 'down', 'health': 'bad', 'detail': 'unknown', 'reason': 'vm not running'}
    assert c.call('put_host', score=3400, engine_status=status, state='EngineDown',
                  local_maintenance=False, stopped=False, timeout='Thu Jan  1 00:00:00 1970',
                  vm_conf_refresh_time=5) is True
    time.sleep(1.1)
    assert c.call('put_host', score=3000, engine_status=status, state='EngineDown',
                  local_maintenance=True, stopped=False, timeout='',
                  vm_conf_refresh_time=6) is True
    r, view = read(c)
    rec = view.hosts[1]
    assert rec.score == 3000 and rec.engine_status == status and rec.local_maintenance
    assert rec.hostname == socket.gethostname() and rec.state == 'EngineDown'
    assert rec.extra['vm_conf_refresh_time'] == '6'
    assert r['max_hosts'] == 250 and r['read_delay'] >= 0
    assert r['sanlock_live'] == [1]
    wait_for('own slot live', lambda: c.call('read_area')['liveness'].get('1') == 'live', 10)


def test_global_maintenance(broker):
    proc, c = broker
    wait_for('lockspace held', lambda: held(c), 60)
    assert c.call('set_global_maintenance', enabled=True) is True
    assert read(c)[1].global_maintenance is True
    assert c.call('set_global_maintenance', enabled=False) is True
    assert read(c)[1].global_maintenance is False


def test_clean_slot(broker, cluster):
    proc, c = broker
    wait_for('lockspace held', lambda: held(c), 60)
    status = {'vm': 'down', 'health': 'bad', 'detail': 'unknown', 'reason': None}
    c.call('put_host', score=3400, engine_status=status, state='EngineDown')
    time.sleep(1.1)
    c.call('put_host', score=3400, engine_status=status, state='EngineDown')
    wait_for('own slot live', lambda: c.call('read_area')['liveness'].get('1') == 'live', 10)
    with pytest.raises(BrokerError) as e:
        c.call('clean_slot', host_id=1, force=False)
    assert e.value.code == 'host-live'
    with pytest.raises(BrokerError) as e:
        c.call('clean_slot', host_id=251, force=False)
    assert e.value.code == 'bad-host-id'
    # another host's slot that nobody updates (no host id 2 in the lockspace): cleaned
    md = c.call('status')
    assert md['lockspace']['live_ids'] == [1]
    r = c.call('read_area')
    other = metadata.serialize_host(2, 12345, 2400, status, 'host2', state='EngineDown')
    path = _metadata_path(cluster)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, other, 2 * metadata.SLOT_SIZE)
        os.fsync(fd)
    finally:
        os.close(fd)
    r, view = read(c)
    assert 2 in view.hosts and r['liveness']['2'] == 'dead'
    assert c.call('clean_slot', host_id=2, force=False) is True
    assert 2 not in read(c)[1].hosts
    assert c.call('clean_slot', host_id=1, force=True) is True
    assert 1 not in read(c)[1].hosts


def _metadata_path(cluster):
    v = cluster['values']
    return os.path.join(v['storage'], v['sdUUID'], 'images', v['metadata_image_UUID'],
                        v['metadata_volume_UUID'])


def test_vm_lease_owner_and_notify(broker, smtp):
    proc, c = broker
    assert c.call('vm_lease_owner') is None
    out = c.call('notify', type='state_transition', detail='EngineDown-EngineStart')
    assert out['sent'] is True, out
    assert len(smtp[1].envelopes) == 1
    assert 'EngineDown-EngineStart' in smtp[1].envelopes[0].content.decode('utf-8', 'replace')
    out = c.call('notify', type='state_transition', detail='EngineUp-EngineDown')
    assert out['sent'] is False and 'filtered' in out['reason']
    assert PASSWORD not in proc.read_log()


def test_bad_requests_keep_the_broker_up(broker):
    proc, c = broker
    with pytest.raises(BrokerError) as e:
        c.call('no_such_method')
    assert e.value.code == 'unknown-method'
    with pytest.raises(BrokerError) as e:
        c.call('put_host', score=1)
    assert e.value.code == 'bad-params'
    assert c.call('ping') is True


def test_images_prepared_again_after_teardown(broker, cluster):
    """The metadata image torn down under the broker (as by a host agent restart or a
    disconnect): reads fail, then the broker prepares the images again by itself."""
    proc, c = broker
    v = cluster['values']
    read(c)
    with cluster['hostd'].client() as api:
        api.call('Image.teardown', storagepoolID=v['spUUID'], storagedomainID=v['sdUUID'],
                 imageID=v['metadata_image_UUID'], volumeID=v['metadata_volume_UUID'])
    with pytest.raises(BrokerError) as e:
        c.call('read_area')
    assert e.value.code == 'storage-error'

    def readable():
        try:
            return read(c)
        except BrokerError:
            return None
    wait_for('area readable again', readable, 20)
    assert 'preparing the hosted-engine images again' in proc.read_log()


def test_sigterm_leaves_lockspace_and_socket(cluster, broker):
    proc, c = broker
    wait_for('lockspace held', lambda: held(c), 60)
    c.close()
    assert proc.stop() == 0, proc.read_log()[-3000:]
    assert not os.path.exists(proc.socket)
    out = subprocess.run(['sanlock', 'client', 'gets'], capture_output=True, text=True,
                         env=dict(os.environ, SANLOCK_RUN_DIR=cluster['sanlock'].run_dir),
                         timeout=30).stdout
    assert 'hosted-engine' not in out
    assert cluster['values']['sdUUID'] in out      # the VM lease lockspace is the host agent's
    assert 'ovirt-ha-broker stopped' in proc.read_log()


def test_bad_configuration(tmp_path):
    r = subprocess.run([python(), '-m', 'ovirt_hosted_engine_setup.ha.broker.daemon', '--conf',
                        str(tmp_path / 'missing.conf'), '--log-file', str(tmp_path / 'b.log')],
                       cwd=TOP, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert r.stderr.count('\n') == 1 and 'missing.conf' in r.stderr and 'Traceback' not in r.stderr
    bad = tmp_path / 'hosted-engine.conf'
    bad.write_text('host_id=zero\nsdUUID=x\nvmid=y\n')
    r = subprocess.run([python(), '-m', 'ovirt_hosted_engine_setup.ha.broker.daemon', '--conf',
                        str(bad), '--log-file', str(tmp_path / 'b.log')],
                       cwd=TOP, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and r.stderr.count('\n') == 1 and 'host_id' in r.stderr
    bad.write_text('host_id=1\n')
    r = subprocess.run([python(), '-m', 'ovirt_hosted_engine_setup.ha.broker.daemon', '--conf',
                        str(bad), '--log-file', str(tmp_path / 'b.log')],
                       cwd=TOP, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and 'sdUUID' in r.stderr and r.stderr.count('\n') == 1


def test_host_agent_down_broker_waits(tmp_path):
    """No host agent: the broker keeps serving, reports why the storage is not connected
    and the engine as not reachable, keeps retrying, and stops cleanly."""
    needs_root()
    conf = tmp_path / 'hosted-engine.conf'
    sd = str(uuid.uuid4())
    conf.write_text('host_id=1\nsdUUID=%s\nvmid=%s\nstorage=%s\ndomainType=localfs\n'
                    'connectionUUID=%s\nnetwork_test=none\nfqdn=localhost\n'
                    % (sd, uuid.uuid4(), tmp_path, uuid.uuid4()))

    class NoHostd:
        port = free_port()
        root = str(tmp_path / 'no-hostd')
    proc = BrokerProc(str(tmp_path), str(conf), NoHostd, str(tmp_path / 'no-sanlock'))
    proc.start()
    try:
        with BrokerClient(proc.socket, timeout=10) as c:
            st = wait_for('storage error', lambda: (lambda s: s if s['storage']['error'] and
                                                    'not connected yet' not in
                                                    s['storage']['error'] else None)(
                c.call('status')), 20)
            assert st['storage']['connected'] is False
            assert st['lockspace']['held'] is False and st['max_hosts'] is None
            m = wait_for('engine health', lambda: (lambda m: m if m['engine_health'] else None)(
                c.call('monitors')), 20)
            assert m['network'] == 1.0
            assert m['engine_health']['reason'] == 'host agent not reachable'
            assert m['mem_free_mb'] is None
            with pytest.raises(BrokerError) as e:
                c.call('put_host', score=0, engine_status={}, state='StartState')
            assert e.value.code == 'storage-not-connected'
            with pytest.raises(BrokerError) as e:
                c.call('read_area')
            assert e.value.code == 'storage-not-connected'
            time.sleep(2)
            assert proc.proc.poll() is None
    finally:
        assert proc.stop() == 0
    assert not os.path.exists(proc.socket)
    assert 'cannot connect the hosted-engine storage yet' in proc.read_log()
