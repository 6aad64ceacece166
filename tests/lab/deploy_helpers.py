"""Deploys into a test lab: the example answer file adapted to the lab's directory, and a
deploy typed on a pseudo-terminal."""
import json
import os
import re
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(TOP, 'examples', 'lab-answers.conf')
GLUSTER_EXAMPLE = os.path.join(TOP, 'examples', 'lab-gluster-answers.conf')
DEFAULT_STORAGE = '/var/lib/ovirt-hosted-engine-lab/lab/storage'


def lab_state(lab):
    with open(os.path.join(lab.dir, 'state.json')) as f:
        return json.load(f)


def lab_storage(lab):
    return lab_state(lab).get('storage') or os.path.join(lab.dir, 'storage')


def lab_gluster(lab):
    """The lab's gluster volume (`up --storage gluster`: {connection, bricks, ...}) or None."""
    return lab_state(lab).get('gluster')


def domain_root(lab):
    """Where the storage domain's files are seen from the machine: the lab's storage
    directory, or, on gluster, the first server's brick (replica 3: every brick holds them
    whole; the domain's small files are within gluster's first shard)."""
    g = lab_gluster(lab)
    return g['bricks'][g['servers'][0]] if g else lab_storage(lab)


def _example_text(lab, path):
    """An example answer file for this lab's storage: its directory, or its gluster volume."""
    text = open(path).read()
    g = lab_gluster(lab)
    if not g:
        return text.replace(DEFAULT_STORAGE, lab_storage(lab))
    if path == EXAMPLE:
        text = open(GLUSTER_EXAMPLE).read()
    text = re.sub(r'(?m)^OVEHOSTED_STORAGE/domainType=.*$',
                  'OVEHOSTED_STORAGE/domainType=str:glusterfs', text)
    text = re.sub(r'(?m)^OVEHOSTED_STORAGE/mntOptions=.*\n', '', text)
    return re.sub(r'(?m)^OVEHOSTED_STORAGE/storageDomainConnection=.*$',
                  'OVEHOSTED_STORAGE/storageDomainConnection=str:%s\n'
                  'OVEHOSTED_STORAGE/mntOptions=str:' % g['connection'], text)


def answers_text(lab, drop=(), extra=None):
    """The example lab answer file for this lab: its storage path, without the keys in
    ``drop`` (so they are asked), with ``extra`` {key: 'type:value'} added or replaced."""
    text = _example_text(lab, EXAMPLE)
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


def type_deploy(lab, host, table, log, timeout=900, args=()):
    """hosted-engine --deploy in `host` on a pseudo-terminal, as a person types it: each
    question whose text is in table [(text, answer)] gets that answer (the first text found
    in the output wins); a question the table does not know gets Enter (its default) and is
    listed as 'default: <its text>'. Returns (succeeded, exit status, [questions asked])."""
    import pexpect
    from .conftest import LAB_CLI
    env = dict(lab.env, TERM='dumb')
    for k in ('SSH_CONNECTION', 'SSH_CLIENT', 'TMUX', 'STY'):
        env.pop(k, None)
    child = pexpect.spawn(sys.executable, LAB_CLI[1:] + ['exec', host, '--', 'hosted-engine',
                                                           '--deploy'] + list(args),
                          env=env, encoding='utf-8', timeout=timeout, dimensions=(60, 220))
    child.logfile_read = log
    texts = [t for t, _ in table]
    asked = []
    while True:
        i = child.expect_exact(texts + [']: ', 'Hosted Engine successfully set up',
                                        'Hosted Engine deployment failed', pexpect.EOF])
        if i < len(texts):
            child.expect_exact(': ')
            asked.append(texts[i])
            child.sendline(table[i][1])
        elif i == len(texts):
            asked.append('default: ' + child.before.splitlines()[-1][-80:])
            child.sendline('')
        else:
            ok = i == len(texts) + 1
            child.expect(pexpect.EOF)
            child.close()
            return ok, child.exitstatus, asked


def wait_for(what, check, limit, interval=3):
    """Call check() -> (ok, detail) until ok; AssertionError with the last detail after
    limit seconds."""
    start = time.monotonic()
    last = None
    while True:
        ok, last = check()
        if ok:
            return last
        if time.monotonic() - start > limit:
            raise AssertionError('%s: not within %d s (last: %s)' % (what, limit, last))
        time.sleep(interval)


ADDITIONAL_EXAMPLE = os.path.join(TOP, 'examples', 'lab-additional-host-answers.conf')


def write_additional_answers(lab, path, host, host_id):
    """examples/lab-additional-host-answers.conf for lab host `host` (hostK) of this lab:
    its storage path, host id `host_id`, its own address and name in the engine."""
    text = _example_text(lab, ADDITIONAL_EXAMPLE)
    text = re.sub(r'(?m)^OVEHOSTED_STORAGE/hostID=.*$',
                  'OVEHOSTED_STORAGE/hostID=int:%d' % host_id, text)
    text = re.sub(r'(?m)^OVEHOSTED_NETWORK/host_name=.*$',
                  'OVEHOSTED_NETWORK/host_name=str:%s.lab.test' % host, text)
    text = re.sub(r'(?m)^OVEHOSTED_ENGINE/appHostName=.*$',
                  'OVEHOSTED_ENGINE/appHostName=str:%s' % host, text)
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, 0o600)
    return str(path)


def deploy_ha_hosts(lab, workdir, count, io_timeout, say=print):
    """The engine deployed unattended on host1 (examples/lab-answers.conf, or
    examples/lab-gluster-answers.conf in a lab with a gluster volume; the sanlock I/O
    timeout `io_timeout`), then host2..host<count> joined at once as additional HA hosts
    (examples/lab-additional-host-answers.conf, host id K for hostK). Returns {host: seconds
    its deploy took}; AssertionError with the end of the output of a deploy that failed."""
    from ovirt_hosted_engine_setup.he_storage import layout
    times = {}
    extra = {}
    if lab_gluster(lab) and io_timeout < layout.REMOTE_IO_TIMEOUT_WARNING:
        # the deploy's warning for a short timeout on remote storage, accepted
        m = re.search(r'(?m)^OVEHOSTED_CORE/acceptedWarnings=(multi-str:\n(?:[ \t]+\S+\n)*)',
                      answers_text(lab))
        extra['OVEHOSTED_CORE/acceptedWarnings'] = m.group(1) + '    short-io-timeout'
    answers = write_answers(lab, os.path.join(workdir, 'host1-answers.conf'), extra=extra)
    t0 = time.monotonic()
    r = deploy(lab, answers, '--otopi-environment=OVEHOSTED_STORAGE/sanlockIoTimeout=int:%d'
               % io_timeout, stdin=subprocess.DEVNULL)
    times['host1'] = time.monotonic() - t0
    if r.returncode != 0:
        raise AssertionError('the deploy of host1 failed (exit %d):\n%s'
                             % (r.returncode, (r.stdout + r.stderr)[-4000:]))
    say('host1 deployed in %.0f s' % times['host1'])
    results = {}

    def join(host, host_id):
        path = write_additional_answers(lab, os.path.join(workdir, '%s-answers.conf' % host),
                                        host, host_id)
        start = time.monotonic()
        results[host] = lab.exec(host, 'hosted-engine', '--deploy',
                                 '--config-append=%s' % path, check=False, timeout=900,
                                 stdin=subprocess.DEVNULL)
        times[host] = time.monotonic() - start
    threads = [threading.Thread(target=join, args=('host%d' % k, k))
               for k in range(2, count + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for host in sorted(results):
        r = results[host]
        if r.returncode != 0:
            raise AssertionError('the additional-host deploy of %s failed (exit %d):\n%s'
                                 % (host, r.returncode, (r.stdout + r.stderr)[-4000:]))
        say('%s joined in %.0f s' % (host, times[host]))
    return times



def vm_lease_io_timeout(lab):
    """(io_timeout, path) of the lockspace holding the engine VM's lease, read from the
    storage: the storage domain's own lockspace (dom_md/ids of the sdUUID in host1's
    hosted-engine.conf), the io_timeout its live hosts' delta leases carry."""
    from ovirt_hosted_engine_setup.he_storage import delta_leases
    sd = None
    with open(os.path.join(lab.dir, 'hosts', 'host1', 'etc-ovirt-hosted-engine',
                           'hosted-engine.conf')) as f:
        for line in f:
            key, sep, value = line.strip().partition('=')
            if sep and key.strip() == 'sdUUID':
                sd = value.strip()
    path = os.path.join(domain_root(lab), sd, 'dom_md', 'ids')
    timeouts = {lease.io_timeout for lease in delta_leases.read_delta_leases(path, sd).values()
                if lease.held}
    if len(timeouts) != 1:
        raise AssertionError('the held leases of %s carry io_timeouts %s, expected one'
                             % (path, sorted(timeouts)))
    return timeouts.pop(), path
