"""Leaving the ``hosted-engine`` sanlock lockspace: every host id this host holds in it.

Through python3-sanlock in a child process (with a timeout: a rem_lockspace that hangs on
storage must not hang the command), or `sanlock client` where python3-sanlock is missing.
"""
import json
import logging
import shutil
import subprocess
import sys

from ...he_storage import layout

log = logging.getLogger('ovirt_hosted_engine_setup.deploy.cleanup')


LOCKSPACE = layout.LOCKSPACE_NAME
LOCKSPACE_TIMEOUT = 90  # seconds for leaving the sanlock lockspace
# Run in a child process: the sanlock client library keeps its daemon connection settings
# for the life of a process, and a rem_lockspace that hangs on storage must not hang this
# command (the child has a timeout).
REM_LOCKSPACE = r'''
import errno, json, sys
try:
    import sanlock
except ImportError:
    print(json.dumps({"unavailable": "python3-sanlock is not installed"}))
    sys.exit(0)
name = sys.argv[1].encode()
out = {"left": [], "busy": [], "errors": []}
try:
    spaces = sanlock.get_lockspaces()
except sanlock.SanlockException as e:
    if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
        out["no_daemon"] = str(e)
    else:
        out["errors"].append("cannot list the lockspaces: %s" % e)
    print(json.dumps(out))
    sys.exit(0)
for ls in spaces:
    if ls["lockspace"] != name:
        continue
    desc = {"host_id": ls["host_id"], "path": ls["path"].decode("utf-8", "replace")}
    try:
        sanlock.rem_lockspace(ls["lockspace"], ls["host_id"], ls["path"], offset=ls["offset"],
                              wait=True, unused=True)
        out["left"].append(desc)
    except sanlock.SanlockException as e:
        if e.errno == errno.ENOENT:
            continue
        if e.errno == errno.EBUSY:
            out["busy"].append(desc)
        else:
            out["errors"].append("host id %s on %s: %s" % (desc["host_id"], desc["path"], e))
print(json.dumps(out))
'''


def split_sanlock_spec(spec):
    """'name:host_id:path:offset' of `sanlock client status` (':' in names escaped as '\\:')
    -> [name, host_id, path, offset]."""
    parts, cur, i = [], '', 0
    while i < len(spec):
        ch = spec[i]
        if ch == '\\' and i + 1 < len(spec):
            cur += spec[i + 1]
            i += 2
            continue
        if ch == ':':
            parts.append(cur)
            cur = ''
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return parts


def lockspaces_of_status(text, name=LOCKSPACE):
    """[(host_id, path, offset, spec)] of lockspace ``name`` in `sanlock client status`."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] != 's':
            continue
        parts = split_sanlock_spec(fields[1])
        if len(parts) == 4 and parts[0] == name:
            out.append((int(parts[1]), parts[2], int(parts[3]), fields[1]))
    return out


def _leave_with_command(name):
    """The `sanlock client` way, for hosts without python3-sanlock."""
    if not shutil.which('sanlock'):
        return {'no_daemon': 'neither python3-sanlock nor the sanlock command is installed'}
    p = subprocess.run(['sanlock', 'client', 'status'], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        return {'no_daemon': (p.stderr or p.stdout).strip()}
    out = {'left': [], 'busy': [], 'errors': []}
    for host_id, path, _offset, spec in lockspaces_of_status(p.stdout, name):
        r = subprocess.run(['sanlock', 'client', 'rem_lockspace', '-s', spec],
                           capture_output=True, text=True, timeout=LOCKSPACE_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        desc = {'host_id': host_id, 'path': path}
        text = (r.stdout + r.stderr).strip()
        if r.returncode == 0:
            out['left'].append(desc)
        elif '-16' in text:
            out['busy'].append(desc)
        else:
            out['errors'].append('host id %s on %s: %s' % (host_id, path, text.splitlines()[-1:]))
    return out


def leave_lockspace(name=LOCKSPACE):
    """Leave every host id this host holds in lockspace ``name``.

    Returns {'left': [...], 'busy': [...], 'errors': [...]} or {'no_daemon': reason}."""
    try:
        p = subprocess.run([sys.executable, '-c', REM_LOCKSPACE, name], capture_output=True,
                           text=True, timeout=LOCKSPACE_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {'left': [], 'busy': [], 'errors': [
            'sanlock did not release the lockspace within %d s' % LOCKSPACE_TIMEOUT]}
    if p.returncode != 0:
        log.info('sanlock helper failed: %s', p.stderr)
        return {'left': [], 'busy': [], 'errors': [
            'the sanlock helper failed: %s' % (p.stderr.strip().splitlines() or ['?'])[-1]]}
    result = json.loads(p.stdout.strip().splitlines()[-1])
    if 'unavailable' in result:
        return _leave_with_command(name)
    return result
