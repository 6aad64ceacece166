#!/usr/bin/env python3
"""Benchmark of the HA decision core and the simulator.

Prints decide() calls per second (a 4-host and a 64-host view), metadata
slot serialise/parse rates, and simulator throughput over every scenario in
tests/ha/scenarios (scenarios per second, simulated seconds per second).
Run: /work/main/.venv/bin/python benchmarks/ha_simulator_bench.py
"""
import os
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from ovirt_hosted_engine_setup.ha import core, liveness, metadata  # noqa: E402
from ovirt_hosted_engine_setup.ha.simulator import cli, scenario  # noqa: E402


def rate(fn, n):
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def main():
    cfg = core.CoreConfig()
    for hosts in (4, 64):
        peers = {i: core.Peer(i, 3400 - i, core.vm_status('down'), 'host%d' % i,
                              liveness=liveness.LIVE) for i in range(2, hosts + 1)}
        state = core.AgentState(name=core.UP, entered=0, started=0)
        up = core.vm_status('up', 'good', 'Up')
        r = rate(lambda i: core.decide(state, core.Observations(
            now=1000 + i, local_vm=up, peers=peers), cfg), 20000)
        print('decide() EngineUp, %2d hosts: %10.0f calls/s' % (hosts, r))
    status = core.vm_status('up', 'good', 'Up')
    print('metadata serialise:        %10.0f slots/s' % rate(
        lambda i: metadata.serialize_host(1, i, 3400, status, 'host1'), 20000))
    blobs = [metadata.serialize_host(1, i, 3400, status, 'host1') for i in range(20000)]
    print('metadata parse:            %10.0f slots/s' % rate(
        lambda i: metadata.parse_host_slot(1, blobs[i]), 20000))
    names = [n for n, _ in cli.scenario_dirs(cli.DEFAULT_DIR, [])]
    scs = [scenario.load(os.path.join(cli.DEFAULT_DIR, n)) for n in names]
    start = time.perf_counter()
    calls = sim_seconds = 0
    for sc in scs:
        res = scenario.run(sc)
        calls += res.decide_calls
        sim_seconds += sc.duration * sc.hosts
    elapsed = time.perf_counter() - start
    print('simulator: %d scenarios in %.2f s: %.1f scenarios/s, %.0f decide() calls/s,'
          ' %.0f simulated host-seconds/s' % (len(scs), elapsed, len(scs) / elapsed,
                                              calls / elapsed, sim_seconds / elapsed))


if __name__ == '__main__':
    main()
