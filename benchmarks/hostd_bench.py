#!/usr/bin/env python3
"""Benchmark of the embedded host agent's API over TLS.

Starts its own ovirt-hosted-engine-hostd (temporary root, free loopback port)
and prints:
  - a baseline: round trips of a small message through a plain TLS echo server
    using the same certificates (the cost of TLS + loopback alone);
  - Host.ping2 round trips through the API client (calls/s, p50, p99), one
    client sequentially and several clients in parallel;
  - the time of the otopi-era storage sequence over the API, on a local
    directory with a real sanlock daemon (skipped with a note when the storage
    verbs or sanlock are not available).

Run as root: /work/main/.venv/bin/python benchmarks/hostd_bench.py [--calls N]
Every process it starts is stopped by pid at the end.
"""
import argparse
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from ovirt_hosted_engine_setup.api.client import Client  # noqa: E402
from ovirt_hosted_engine_setup.api.errors import ServerError  # noqa: E402
from ovirt_hosted_engine_setup.api.schema import constant, enum  # noqa: E402
from ovirt_hosted_engine_setup.hostd import pki  # noqa: E402

BLANK = constant('blankUUID')
LOCALFS = enum('domainType')['LOCALFS']
DATA = enum('domainClass')['Data']
RAW = enum('volFormat')['RAW']
SPARSE = enum('preallocate')['SPARSE']


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def figures(label, samples, wall):
    samples = sorted(samples)
    p50 = samples[len(samples) // 2]
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    rate = len(samples) / wall
    print('%-34s %8d calls %9.0f calls/s  p50 %7.3f ms  p99 %7.3f ms'
          % (label, len(samples), rate, p50 * 1000, p99 * 1000))
    return rate, p50, p99


def tls_echo_baseline(paths, calls):
    """Round trips of a ping2-sized message through a TLS echo server."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(paths.ca_cert)
    sctx.load_cert_chain(paths.server_cert, paths.server_key)
    lsock = socket.socket()
    lsock.bind(('127.0.0.1', 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]

    def serve():
        conn, _ = lsock.accept()
        with sctx.wrap_socket(conn, server_side=True) as c:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                c.sendall(data)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.load_verify_locations(paths.ca_cert)
    cctx.load_cert_chain(paths.client_cert, paths.client_key)
    msg = (b'SEND\ndestination:jms.topic.vdsm_requests\ncontent-length:90\n\n'
           + b'{"jsonrpc": "2.0", "method": "Host.ping2", "params": {}, "id": "%s"}' % (
               str(uuid.uuid4()).encode()[:20]) + b'\0')
    with cctx.wrap_socket(socket.create_connection(('127.0.0.1', port))) as c:
        samples = []
        start = time.perf_counter()
        for _ in range(calls):
            t0 = time.perf_counter()
            c.sendall(msg)
            got = 0
            while got < len(msg):
                got += len(c.recv(65536))
            samples.append(time.perf_counter() - t0)
        wall = time.perf_counter() - start
    lsock.close()
    t.join(5)
    return figures('baseline: TLS echo round trip', samples, wall)


def ping_sequential(port, root, calls):
    with Client('127.0.0.1', port, hostd_root=root, timeout=30) as c:
        for _ in range(50):
            c.Host.ping2()
        samples = []
        start = time.perf_counter()
        for _ in range(calls):
            t0 = time.perf_counter()
            c.Host.ping2()
            samples.append(time.perf_counter() - t0)
        wall = time.perf_counter() - start
    return figures('Host.ping2, 1 client', samples, wall)


def ping_parallel(port, root, calls, clients):
    samples = []
    lock = threading.Lock()
    per = max(1, calls // clients)
    conns = [Client('127.0.0.1', port, hostd_root=root, timeout=30) for _ in range(clients)]

    def work(c):
        mine = []
        for _ in range(per):
            t0 = time.perf_counter()
            c.Host.ping2()
            mine.append(time.perf_counter() - t0)
        with lock:
            samples.extend(mine)
    threads = [threading.Thread(target=work, args=(c,)) for c in conns]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    for c in conns:
        c.close()
    return figures('Host.ping2, %d clients' % clients, samples, wall)


def wait_task(c, task, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = c.Task.getStatus(taskID=task)
        if st['taskState'] == 'finished':
            if st['taskResult'] != 'success':
                raise RuntimeError('task %s failed: %s' % (task, st))
            c.Task.clear(taskID=task)
            return
        time.sleep(0.1)
    raise RuntimeError('task %s did not finish' % task)


def storage_sequence(c, storage):
    """The otopi-era deploy storage sequence; returns {step: seconds}."""
    sd, sp, img, vol, conn = (str(uuid.uuid4()) for _ in range(5))
    steps = []

    def step(name, fn):
        t0 = time.perf_counter()
        out = fn()
        steps.append((name, time.perf_counter() - t0))
        return out
    step('connectStorageServer', lambda: c.StoragePool.connectStorageServer(
        storagepoolID=BLANK, domainType=LOCALFS,
        connectionParams=[{'id': conn, 'connection': storage}]))
    step('StorageDomain.create', lambda: c.StorageDomain.create(
        storagedomainID=sd, domainType=LOCALFS, typeArgs=storage, name='hosted_storage',
        domainClass=DATA, version=5))
    step('StoragePool.create', lambda: c.StoragePool.create(
        storagepoolID=sp, name='hosted_datacenter', masterSdUUID=sd, masterVersion=1,
        domainList=[sd], **constant('leaseTimings')))
    step('StoragePool.connect', lambda: c.StoragePool.connect(
        storagepoolID=sp, hostID=1, scsiKey=sp, masterSdUUID=sd, masterVersion=1,
        domainDict={sd: 'active'}))

    def monitor():
        c.Host.startMonitoringDomain(sdUUID=sd, hostID=1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = c.Host.getStorageRepoStats(domains=[sd]).get(sd, {})
            if st.get('acquired'):
                return
            time.sleep(0.2)
        raise RuntimeError('host id not acquired on %s' % sd)
    step('startMonitoringDomain (acquired)', monitor)
    step('spmStart (task)', lambda: wait_task(c, c.StoragePool.spmStart(
        storagepoolID=sp, maxHostID=250, domVersion=5, **constant('spmStartNoPrevious'))))
    step('StorageDomain.activate', lambda: c.StorageDomain.activate(
        storagedomainID=sd, storagepoolID=sp))
    step('Volume.create 1 GiB sparse (task)', lambda: wait_task(c, c.Volume.create(
        volumeID=vol, storagepoolID=sp, storagedomainID=sd, imageID=img, size=str(1 << 30),
        volFormat=RAW, preallocate=SPARSE, diskType='HEVD', desc='hosted-engine', srcImgUUID=BLANK,
        srcVolUUID=BLANK)))
    step('Image.prepare', lambda: c.Image.prepare(
        storagepoolID=sp, storagedomainID=sd, imageID=img, volumeID=vol))
    step('spmStop', lambda: c.StoragePool.spmStop(storagepoolID=sp))
    step('StoragePool.disconnect', lambda: c.StoragePool.disconnect(
        storagepoolID=sp, hostID=1, scsiKey=sp))
    step('stopMonitoringDomain', lambda: c.Host.stopMonitoringDomain(sdUUID=sd))
    return steps


def start_sanlock(run_dir):
    from ovirt_hosted_engine_setup.lab.preload import ensure_preload
    os.makedirs(run_dir, exist_ok=True)
    # LD_PRELOAD: container workaround (sanlock cannot raise RLIMIT_MEMLOCK here).
    env = dict(os.environ, SANLOCK_RUN_DIR=run_dir, LD_PRELOAD=ensure_preload())
    log = open(os.path.join(run_dir, 'sanlock.out'), 'wb')
    proc = subprocess.Popen(['sanlock', 'daemon', '-D', '-w', '0', '-U', 'root', '-G', 'root',
                             '-l', '0', '-e', 'bench-host'], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 20
    while not os.path.exists(os.path.join(run_dir, 'sanlock.sock')):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError('sanlock daemon did not start (see %s)' % log.name)
        time.sleep(0.1)
    return proc


def stop(proc, timeout=20):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--calls', type=int, default=2000)
    ap.add_argument('--clients', type=int, default=4)
    ap.add_argument('--no-storage', action='store_true', help='skip the storage sequence')
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix='hostd-bench-')
    sanlock = hostd = None
    try:
        root = os.path.join(base, 'root')
        paths = pki.ensure_pki(root, 'localhost')
        sanlock_run = os.path.join(base, 'sanlock')
        storage_note = None
        if args.no_storage:
            storage_note = 'skipped (--no-storage)'
        elif os.geteuid() != 0 or not shutil.which('sanlock'):
            storage_note = 'skipped: needs root and the sanlock daemon (run scripts/bootstrap)'
        else:
            try:
                sanlock = start_sanlock(sanlock_run)
            except (RuntimeError, OSError) as e:
                storage_note = 'skipped: %s' % e
        port = free_port()
        cmd = [sys.executable, '-m', 'ovirt_hosted_engine_setup.hostd.daemon', '--foreground',
               '--address', '127.0.0.1', '--port', str(port), '--root', root,
               '--run-dir', os.path.join(base, 'run'),
               '--data-center-dir', os.path.join(base, 'dc'),
               '--log-file', os.path.join(base, 'hostd.log'),
               '--ha-conf', os.path.join(base, 'ha.conf'),
               '--sanlock-run-dir', sanlock_run, '--sanlock-io-timeout', '2',
               '--monitor-interval', '1']
        hostd = subprocess.Popen(cmd, cwd=TOP, stdin=subprocess.DEVNULL,
                                 env=dict(os.environ, SANLOCK_RUN_DIR=sanlock_run),
                                 start_new_session=True)
        pidfile = os.path.join(base, 'run', 'hostd.pid')
        deadline = time.monotonic() + 30
        while not os.path.exists(pidfile):
            if hostd.poll() is not None or time.monotonic() > deadline:
                raise SystemExit('hostd did not start; see %s' % os.path.join(base, 'hostd.log'))
            time.sleep(0.05)

        print('host agent API over TLS on loopback (%d CPUs)' % os.cpu_count())
        base_rate, base_p50, _ = tls_echo_baseline(paths, args.calls)
        rate, p50, p99 = ping_sequential(port, root, args.calls)
        prate, _, _ = ping_parallel(port, root, args.calls, args.clients)
        print('ratios: ping2 p50 / TLS echo p50 = %.1fx; TLS echo calls/s / ping2 calls/s = %.1fx;'
              ' %d clients / 1 client throughput = %.2fx'
              % (p50 / base_p50, base_rate / rate, args.clients, prate / rate))

        if storage_note is None:
            storage = os.path.join(base, 'storage')
            os.makedirs(storage)
            with Client('127.0.0.1', port, hostd_root=root, timeout=300) as c:
                try:
                    t0 = time.perf_counter()
                    steps = storage_sequence(c, storage)
                    total = time.perf_counter() - t0
                except ServerError as e:
                    if e.code == -32601:
                        steps, total = None, None
                        print('storage sequence: skipped: %s' % e.message)
                    else:
                        raise
            if steps:
                print('storage sequence (local directory, sanlock io timeout 2 s): %.2f s' % total)
                for name, secs in steps:
                    print('  %-36s %8.3f s' % (name, secs))
        else:
            print('storage sequence: %s' % storage_note)
    finally:
        stop(hostd)
        if sanlock is not None:
            subprocess.run(['sanlock', 'shutdown', '-f', '1'], timeout=30,
                           env=dict(os.environ, SANLOCK_RUN_DIR=os.path.join(base, 'sanlock')),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stop(sanlock)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
