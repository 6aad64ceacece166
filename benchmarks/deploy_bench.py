#!/usr/bin/env python3
"""Benchmark of the first-host deploy and of an additional host's deploy in the lab.

Starts a two-host lab in its own directory, runs the unattended deploy from
examples/lab-answers.conf inside host1, then the additional-host deploy of host2 from
examples/lab-additional-host-answers.conf, and prints:
- the wall time from the first prompt (the deploy's first line) to "Hosted Engine
  successfully set up", against the 3-minute target;
- the time of each runner stage and of each deploy step (from the deploy log: the runner
  logs "STAGE <stage> METHOD <plugin.method>" when each event starts);
- the baseline measured in the same run: the engine VM's own work, from its start to
  engine-setup's success message on the setup channel (booting the appliance and
  setting up the engine inside it), which the installer cannot make faster; the ratio
  total / baseline is the installer's overhead factor;
- the additional host's wall time, the time of each of its steps, and the ratio to the
  first host's wall time measured in the same run.

Packages, the venv and the appliance must be in place (scripts/bootstrap); the lab is
stopped at the end.

Run: /work/main/.venv/bin/python benchmarks/deploy_bench.py [--keep-lab]
"""
import argparse
import datetime
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from tests.lab.deploy_helpers import DEFAULT_STORAGE, EXAMPLE  # noqa: E402

ADDITIONAL = os.path.join(TOP, 'examples', 'lab-additional-host-answers.conf')

PY = os.path.join(TOP, '.venv', 'bin', 'python')
LAB = [PY, '-m', 'ovirt_hosted_engine_setup.lab.cli']
TARGET = 180.0
LOG_LINE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) DEBUG \S+ \S+ '
                      r'STAGE (\S+) METHOD (\S+)')
STAGE_LINE = re.compile(r'Stage: (.+)$')


def stamp(text):
    return datetime.datetime.strptime(text, '%Y-%m-%d %H:%M:%S,%f').timestamp()


def run_deploy(env, answers, host='host1'):
    """Run the deploy; return [(seconds since start, line)] of its output and the exit code."""
    cmd = LAB + ['exec', host, '--', 'hosted-engine', '--deploy',
                 '--config-append=%s' % answers]
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        lines.append((time.time() - t0, line.rstrip('\n')))
        sys.stdout.write('  | ' + line)
    return t0, lines, proc.wait()


def events_from_log(path):
    out = []
    with open(path, errors='replace') as f:
        for line in f:
            m = LOG_LINE.match(line)
            if m:
                out.append((stamp(m.group(1)), m.group(2), m.group(3)))
    return out


def wall_time(lines):
    """Seconds from the deploy's first line to its success line (else its last line)."""
    done = [t for t, line in lines if 'Hosted Engine successfully set up' in line]
    return done[0] if done else lines[-1][0]


def setup_log(lab_dir, host):
    """The newest deploy log of a lab host."""
    return sorted(glob.glob(os.path.join(lab_dir, 'hosts', host, 'var-log',
                                         'ovirt-hosted-engine-setup', '*.log')))[-1]


def print_steps(events, end):
    print('\n%-14s %-62s %8s' % ('stage', 'step', 'seconds'))
    by_stage = {}
    for i, (t, stage, label) in enumerate(events):
        nxt = events[i + 1][0] if i + 1 < len(events) else end
        d = max(0.0, nxt - t)
        by_stage[stage] = by_stage.get(stage, 0.0) + d
        if d >= 0.5:
            print('%-14s %-62s %8.1f' % (stage, label.replace('ovirt_he_plugins.', '')[-62:], d))
    print('\n%-14s %8s' % ('stage', 'seconds'))
    for stage, d in by_stage.items():
        print('%-14s %8.1f' % (stage, d))


def additional_host(env, lab_dir, first_total):
    """host2 joins: its wall time, its steps, the ratio to the first host's deploy."""
    answers = os.path.join(lab_dir, 'additional.conf')
    with open(ADDITIONAL) as f:
        text = f.read().replace(DEFAULT_STORAGE, os.path.join(lab_dir, 'storage'))
    with open(answers, 'w') as f:
        f.write(text)
    os.chmod(answers, 0o600)
    t0, lines, code = run_deploy(env, answers, 'host2')
    if code != 0:
        print('the additional-host deploy failed (exit %d): no figures' % code)
        return 1
    total = wall_time(lines)
    print('\nAdditional host (host2) wall time, first line to "Hosted Engine successfully set '
          'up": %.1f s; additional / first host (same run) = %.2f'
          % (total, total / max(first_total, 0.001)))
    print_steps(events_from_log(setup_log(lab_dir, 'host2')), t0 + total)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--keep-lab', action='store_true', help='leave the lab up at the end')
    args = p.parse_args()
    lab_dir = tempfile.mkdtemp(prefix='he-deploy-bench-', dir='/var/tmp')
    env = dict(os.environ, OVIRT_HE_LAB_DIR=lab_dir)
    answers = os.path.join(lab_dir, 'answers.conf')
    try:
        subprocess.run(LAB + ['up', '--hosts', '2'], env=env, check=True)
        with open(EXAMPLE) as f:
            text = f.read().replace(DEFAULT_STORAGE, os.path.join(lab_dir, 'storage'))
        with open(answers, 'w') as f:
            f.write(text)
        os.chmod(answers, 0o600)
        t0, lines, code = run_deploy(env, answers)
        if code != 0:
            print('the deploy failed (exit %d): no figures' % code)
            return 1
        total = wall_time(lines)
        events = events_from_log(setup_log(lab_dir, 'host1'))
        print('\nDeploy wall time, first line to "Hosted Engine successfully set up": '
              '%.1f s (target < %.0f s: %s)' % (total, TARGET,
                                                 'met' if total < TARGET else 'NOT met'))
        print_steps(events, t0 + total)
        # the baseline: the engine VM's own work, from the start of the VM start step to the
        # end of the engine-setup channel step (the event that follows it)
        starts = [k for k, (_t, st, label) in enumerate(events)
                  if st == 'closeup' and label.endswith('._start_vm')]
        setup = [k for k, (_t, st, label) in enumerate(events)
                 if st == 'closeup' and label.endswith('._engine_setup')]
        if starts and setup and setup[0] + 1 < len(events):
            baseline = events[setup[0] + 1][0] - events[starts[0]][0]
            print('\nBaseline (same run): engine VM start to engine-setup success in the VM: '
                  '%.1f s; total / baseline = %.2f' % (baseline, total / max(baseline, 0.001)))
        else:
            print('\nBaseline: the VM start and engine-setup steps were not found in the log')
        return additional_host(env, lab_dir, total)
    finally:
        if not args.keep_lab:
            subprocess.run(LAB + ['down'], env=env)
            shutil.rmtree(lab_dir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
