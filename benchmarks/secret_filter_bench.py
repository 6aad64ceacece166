#!/usr/bin/env python3
"""Benchmark of the log's secret filter: lines per second with a small and a large environment.

Filtering a log line must cost what the number of secrets costs, not what the size of the
environment costs (an answer file with hundreds of thousands of keys must not slow every log
line down). Both runs have the same secrets (declared secret keys, a preseeded password
answer, CORE/logFilterKeys and typed passwords); the large one also has --keys other keys.
Prints lines/s of each and their ratio (near 1 when the cost does not depend on the size).

Run: /work/main/.venv/bin/python benchmarks/secret_filter_bench.py [--lines N] [--keys N]
"""
import argparse
import logging
import os
import statistics
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from ovirt_hosted_engine_setup.runner import log as runlog  # noqa: E402
from ovirt_hosted_engine_setup.runner.context import Context  # noqa: E402
from ovirt_hosted_engine_setup.runner.keys import EnvKey  # noqa: E402

SECRET_KEYS = [EnvKey('OVEHOSTED_ENGINE/adminPassword', secret=True),
               EnvKey('OVEHOSTED_VM/cloudinitRootPwd', secret=True),
               EnvKey('OVEHOSTED_STORAGE/iSCSIPortalPassword', secret=True)]


def context(extra_keys):
    ctx = Context(groups=[], plugin_path=[], keys=SECRET_KEYS)
    ctx._defaults()
    env = ctx.environment
    for i in range(extra_keys):
        env['OVEHOSTED_BENCH/key%07d' % i] = 'value number %d of the answer file' % i
    env['OVEHOSTED_ENGINE/adminPassword'] = 'AdminS3cret'
    env['OVEHOSTED_VM/cloudinitRootPwd'] = 'RootS3cret'
    env['QUESTION/1/ROOT_PASSWORD'] = 'Pre5eeded'
    env['CORE/logFilterKeys'].append('OVEHOSTED_BENCH/listed')
    env['OVEHOSTED_BENCH/listed'] = 'L1sted'
    env['CORE/logFilter'].append('Typ3dSecret')
    ctx.secret_filter.set_source(ctx._secret_values)
    return ctx


def lines_per_second(ctx, lines):
    formatter = runlog.FilteringFormatter(ctx.secret_filter)
    records = [logging.LogRecord('otopi.bench', logging.DEBUG, __file__, i,
                                 'line %d: value %s, password %s, other %s',
                                 (i, 'value number 7', 'AdminS3cret', 'Pre5eeded'), None)
               for i in range(lines)]
    out = None
    t0 = time.perf_counter()
    for record in records:
        out = formatter.format(record)
    elapsed = time.perf_counter() - t0
    assert 'AdminS3cret' not in out and 'Pre5eeded' not in out, out
    return lines / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lines', type=int, default=50000)
    parser.add_argument('--keys', type=int, default=500000,
                        help='keys of the large environment (default 500000)')
    args = parser.parse_args()
    small = context(10)
    large = context(args.keys)
    print('environment sizes: small %d keys, large %d keys; %d secrets'
          % (len(small.environment), len(large.environment), len(small._secret_values())))
    # alternate the two, five rounds, and take the median: the machine may be shared
    results = {'small': [], 'large': []}
    for _ in range(5):
        for name, ctx in (('small', small), ('large', large)):
            results[name].append(lines_per_second(ctx, args.lines))
    s = statistics.median(results['small'])
    g = statistics.median(results['large'])
    print('small environment: %10.0f lines/s' % s)
    print('large environment: %10.0f lines/s' % g)
    print('ratio large/small: %.2f (1.00 = the size of the environment costs nothing)' % (g / s))


if __name__ == '__main__':
    main()
