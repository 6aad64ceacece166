"""Run HA simulator scenarios: ``main([SCENARIO...])``, ``--show SCENARIO``, ``--update``.

Prints one line per scenario with its result and a closing ``N passed, M failed``;
exits 1 if any failed.
"""
import argparse
import difflib
import os
import sys
import time

from . import scenario

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), 'tests', 'ha', 'scenarios')


def scenario_dirs(base, names):
    if not names:
        names = sorted(n for n in os.listdir(base)
                       if os.path.isfile(os.path.join(base, n, 'cmdlist')))
    return [(n, n if os.path.isdir(n) and os.path.isfile(os.path.join(n, 'cmdlist'))
             else os.path.join(base, n)) for n in names]


def check(directory):
    """Run one scenario; return (ok, message, result)."""
    try:
        sc = scenario.load(directory)
    except FileNotFoundError:
        return False, 'no such scenario (no cmdlist)', None
    except scenario.ScenarioError as e:
        return False, 'bad cmdlist: %s' % e, None
    try:
        res = scenario.run(sc)
    except scenario.ScenarioError as e:
        return False, str(e), None
    if res.violations:
        return False, 'invariant violated: ' + '; '.join(res.violations[:3]), res
    expect = scenario.expected_log(directory)
    if expect is None:
        return False, 'no log.expect (run with --update to create it)', res
    if expect != res.log:
        diff = list(difflib.unified_diff(expect, res.log, 'log.expect', 'log', n=0, lineterm=''))
        return False, 'log differs:\n    ' + '\n    '.join(diff[2:14]), res
    return True, 'ok (engine down at most %ds)' % res.longest_down, res


def main(argv=None):
    p = argparse.ArgumentParser(prog='simulate', description='Run the HA simulator scenarios.')
    p.add_argument('scenarios', nargs='*', metavar='SCENARIO')
    p.add_argument('--dir', default=DEFAULT_DIR, help='directory holding the scenarios')
    p.add_argument('--show', metavar='SCENARIO', help='print the log of one scenario')
    p.add_argument('--update', action='store_true', help='rewrite log.expect (development only)')
    args = p.parse_args(argv)
    if args.show:
        (_, d), = scenario_dirs(args.dir, [args.show])
        try:
            res = scenario.run(scenario.load(d))
        except (FileNotFoundError, scenario.ScenarioError) as e:
            print('simulate: cannot run %s: %s' % (args.show, e), file=sys.stderr)
            return 1
        print('\n'.join(res.log))
        for v in res.violations:
            print('INVARIANT VIOLATED: ' + v)
        return 1 if res.violations else 0
    if not os.path.isdir(args.dir):
        print('simulate: no scenario directory %s' % args.dir, file=sys.stderr)
        return 1
    passed = failed = 0
    start = time.monotonic()
    for name, d in scenario_dirs(args.dir, args.scenarios):
        ok, msg, res = check(d)
        if args.update and res is not None and not res.violations:
            with open(os.path.join(d, 'log.expect'), 'w') as f:
                f.write('\n'.join(res.log) + '\n')
            ok, msg = True, 'updated'
        print('%-50s %s %s' % (name, 'PASS' if ok else 'FAIL', msg), flush=True)
        passed += ok
        failed += not ok
    print('%d passed, %d failed' % (passed, failed))
    if os.environ.get('HA_SIMULATE_TIMING'):
        print('%.2fs' % (time.monotonic() - start))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
