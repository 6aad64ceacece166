#!/usr/bin/env python3
"""Benchmark of the HA services.

1. `hosted-engine --vm-status` latency with 250 populated metadata slots (text and
   JSON), read directly from a metadata volume, against the baseline of one plain
   `hosted-engine --check-deployed` run in the same session (interpreter start-up).
2. With --idle SECONDS (default 600; 0 skips it; needs root and scripts/bootstrap):
   a 2-host lab with the HA services running the lab engine VM; CPU time and resident
   memory of ovirt-ha-broker and ovirt-ha-agent on each host over the idle window,
   against the host agent (ovirt-hosted-engine-hostd) measured over the same window.
Simulator throughput: benchmarks/ha_simulator_bench.py.

Run: /work/main/.venv/bin/python benchmarks/ha_services_bench.py [--idle SECONDS] [--runs N]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from ovirt_hosted_engine_setup.ha import core, metadata  # noqa: E402

HOSTED_ENGINE = [os.path.join(TOP, '.venv', 'bin', 'python'), os.path.join(TOP, 'bin',
                                                                           'hosted-engine')]
LAB = [os.path.join(TOP, '.venv', 'bin', 'python'), '-m', 'ovirt_hosted_engine_setup.lab.cli']
CLK_TCK = os.sysconf('SC_CLK_TCK')
PAGE = os.sysconf('SC_PAGE_SIZE')


def timed(cmd, env, runs):
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        out.append(time.perf_counter() - t0)
        if r.returncode not in (0, 1):
            raise SystemExit('%s failed (%d): %s' % (' '.join(cmd), r.returncode, r.stderr))
    return out


def vm_status_bench(runs):
    prefix = tempfile.mkdtemp(prefix='he-bench-', dir='/var/tmp')
    try:
        storage = os.path.join(prefix, 'storage')
        os.makedirs(storage)
        conf = {'fqdn': 'engine.bench.test', 'vmid': '11111111-1111-1111-1111-111111111111',
                'storage': storage, 'domainType': 'localfs', 'host_id': '1',
                'sdUUID': '22222222-2222-2222-2222-222222222222',
                'spUUID': '00000000-0000-0000-0000-000000000000',
                'metadata_image_UUID': '33333333-3333-3333-3333-333333333333',
                'metadata_volume_UUID': '44444444-4444-4444-4444-444444444444',
                'lockspace_image_UUID': '55555555-5555-5555-5555-555555555555',
                'lockspace_volume_UUID': '66666666-6666-6666-6666-666666666666',
                'conf_image_UUID': '77777777-7777-7777-7777-777777777777',
                'conf_volume_UUID': '88888888-8888-8888-8888-888888888888',
                'vm_disk_id': '99999999-9999-9999-9999-999999999999',
                'vm_disk_vol_id': 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa',
                'conf': '/run/ovirt-hosted-engine-ha/vm.conf', 'gateway': '127.0.0.1',
                'bridge': 'ovirtmgmt', 'network_test': 'none'}
        etc = os.path.join(prefix, 'etc', 'ovirt-hosted-engine')
        os.makedirs(etc)
        from ovirt_hosted_engine_setup.he_storage import heconf
        with open(os.path.join(etc, 'hosted-engine.conf'), 'w') as f:
            f.write(heconf.render(conf))
        env = dict(os.environ, OVIRT_HOSTED_ENGINE_PREFIX=prefix)
        # the volume paths as the CLI computes them under the prefix
        code = ('import json; from ovirt_hosted_engine_setup.he_storage import heconf, layout;'
                'from ovirt_hosted_engine_setup import paths;'
                'c = heconf.load(paths.HOSTED_ENGINE_CONF);'
                'print(json.dumps(layout.volume_paths(c, paths.DATA_CENTER_DIR)))')
        vp = json.loads(subprocess.run([HOSTED_ENGINE[0], '-c', code], env=env, cwd=TOP,
                                       capture_output=True, text=True, check=True).stdout)
        md = vp['metadata']
        os.makedirs(os.path.dirname(md), exist_ok=True)
        up = core.vm_status('up', 'good', 'Up')
        down = core.vm_status('down', 'bad', 'unknown', 'vm not running on this host')
        area = bytearray(1 << 20)
        area[:metadata.SLOT_SIZE] = metadata.serialize_global(False)
        for hid in range(1, 251):
            area[hid * metadata.SLOT_SIZE:(hid + 1) * metadata.SLOT_SIZE] = \
                metadata.serialize_host(hid, 1000 + hid, 3400, up if hid == 1 else down,
                                        'host%d.bench.test' % hid, state='EngineDown')
        with open(md, 'wb') as f:
            f.write(area)
        base = timed(HOSTED_ENGINE + ['--check-deployed'], env, runs)
        text = timed(HOSTED_ENGINE + ['--vm-status'], env, runs)
        js = timed(HOSTED_ENGINE + ['--vm-status', '--json'], env, runs)
        r = subprocess.run(HOSTED_ENGINE + ['--vm-status', '--json'], env=env,
                           capture_output=True, text=True)
        hosts = len([k for k in json.loads(r.stdout) if k != 'global_maintenance'])
        b = statistics.median(base)
        print('--vm-status with %d populated slots (median of %d runs, broker down):' % (
            hosts, runs))
        print('  baseline --check-deployed   %7.1f ms' % (b * 1000))
        for name, xs in (('--vm-status', text), ('--vm-status --json', js)):
            m = statistics.median(xs)
            print('  %-26s %7.1f ms  (%.2fx baseline, +%.1f ms)' % (name, m * 1000, m / b,
                                                                   (m - b) * 1000))
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def proc_sample(pid):
    with open('/proc/%d/stat' % pid) as f:
        data = f.read()
    fields = data[data.rindex(')') + 2:].split()
    ticks = int(fields[11]) + int(fields[12])
    with open('/proc/%d/statm' % pid) as f:
        rss = int(f.read().split()[1]) * PAGE
    return ticks, rss


def lab(*args, timeout=900, check=True, env=None):
    r = subprocess.run(LAB + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout, cwd=TOP)
    if check and r.returncode != 0:
        raise SystemExit('hosted-engine-lab %s failed: %s%s' % (' '.join(args), r.stdout,
                                                                 r.stderr))
    return r


def idle_bench(seconds):
    lab_dir = tempfile.mkdtemp(prefix='he-bench-lab-', dir='/var/tmp')
    env = dict(os.environ, OVIRT_HE_LAB_DIR=lab_dir)
    try:
        lab('up', '--hosts', '2', env=env)
        lab('ha-prepare', env=env)
        lab('ha', 'start', env=env)
        t0 = time.monotonic()
        while True:
            r = lab('exec', 'host1', '--', 'hosted-engine', '--vm-status', '--json',
                    env=env, check=False)
            if r.returncode == 0 and any(
                    isinstance(v, dict) and v['engine-status'].get('health') == 'good'
                    for v in json.loads(r.stdout).values()):
                break
            if time.monotonic() - t0 > 600:
                raise SystemExit('the engine VM did not come up: %s' % r.stdout)
            time.sleep(5)
        print('engine VM healthy %.0f s after the HA services started' % (time.monotonic() - t0))
        with open(os.path.join(lab_dir, 'state.json')) as f:
            st = json.load(f)
        pids = {(h, 'hostd'): hs['daemons']['hostd']['pid'] for h, hs in st['hosts'].items()}
        # the HA services are units of each host's service manager (docs/lab.md)
        from ovirt_hosted_engine_setup.lab.lab import Lab
        the_lab = Lab(lab_dir)
        for h in st['hosts']:
            for d in ('ha-broker', 'ha-agent'):
                pids[(h, d)] = the_lab.service(h, 'ovirt-' + d)['pid']
        before = {k: proc_sample(p) for k, p in pids.items()}
        t1 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t1
        after = {k: proc_sample(p) for k, p in pids.items()}
        print('idle for %.0f s with the engine VM running:' % wall)
        for host in sorted(st['hosts']):
            base_cpu = (after[(host, 'hostd')][0] - before[(host, 'hostd')][0]) / CLK_TCK / wall
            for d in ('ha-broker', 'ha-agent', 'hostd'):
                cpu = (after[(host, d)][0] - before[(host, d)][0]) / CLK_TCK / wall
                rss = after[(host, d)][1]
                ratio = (' (%.2fx the host agent)' % (cpu / base_cpu)) if base_cpu and \
                    d != 'hostd' else ''
                print('  %s %-10s CPU %6.3f%%%s  RSS %6.1f MiB' % (host, d, cpu * 100, ratio,
                                                                  rss / 1048576))
    finally:
        lab('down', env=env, check=False)
        shutil.rmtree(lab_dir, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--idle', type=int, default=600, help='idle window in the lab, seconds '
                   '(0: skip the lab part)')
    p.add_argument('--runs', type=int, default=15)
    args = p.parse_args()
    vm_status_bench(args.runs)
    if args.idle:
        idle_bench(args.idle)


if __name__ == '__main__':
    main()
