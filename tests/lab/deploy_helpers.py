"""Deploys into a test lab: the example answer file adapted to the lab's directory."""
import json
import os
import re

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(TOP, 'examples', 'lab-answers.conf')
DEFAULT_STORAGE = '/var/lib/ovirt-hosted-engine-lab/lab/storage'


def lab_storage(lab):
    with open(os.path.join(lab.dir, 'state.json')) as f:
        return json.load(f).get('storage') or os.path.join(lab.dir, 'storage')


def answers_text(lab, drop=(), extra=None):
    """The example lab answer file for this lab: its storage path, without the keys in
    ``drop`` (so they are asked), with ``extra`` {key: 'type:value'} added or replaced."""
    text = open(EXAMPLE).read().replace(DEFAULT_STORAGE, lab_storage(lab))
    extra = dict(extra or {})
    out = []
    skipping = False
    for line in text.splitlines():
        if skipping and line[:1] in (' ', '\t') and line.strip():
            continue          # continuation of a dropped or replaced multi-str value
        skipping = False
        m = re.match(r'^([A-Z_]+/[A-Za-z0-9_]+)=', line)
        if m and (m.group(1) in drop or m.group(1) in extra):
            skipping = True
            continue
        out.append(line)
    for key, value in extra.items():
        out.append('%s=%s' % (key, value))
    return '\n'.join(out) + '\n'


def write_answers(lab, path, drop=(), extra=None):
    with open(path, 'w') as f:
        f.write(answers_text(lab, drop, extra))
    os.chmod(path, 0o600)
    return str(path)


def deploy(lab, answers_path, *args, check=False, timeout=900, **kw):
    """hosted-engine --deploy inside host1 (CompletedProcess, stdout and stderr as text)."""
    return lab.exec('host1', 'hosted-engine', '--deploy', '--config-append=%s' % answers_path,
                    *args, check=check, timeout=timeout, **kw)


def error_lines(result):
    return [line for line in (result.stdout + result.stderr).splitlines() if '[ ERROR ]' in line]
