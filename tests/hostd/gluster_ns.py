"""A throw-away gluster server and the host agent's gluster verb and GLUSTERFS connections
against it, run inside new network, mount and PID namespaces (tests/hostd/test_gluster.py
starts it under ``unshare --net --mount --pid --fork --mount-proc``).

In the namespaces: loopback with the addresses 10.99.0.1-3 (gluster refuses bricks on
127.0.0.1), a private /var/lib/glusterd, /run and /var/log/glusterfs, a glusterd, and
the volumes ``one`` (one brick: replica 1), ``three`` (replica 3, its bricks on the three
addresses) and ``two`` (replica 2, created but not started). Then the host agent's storage
backend serves GlusterVolume.list and StoragePool.connectStorageServer (GLUSTERFS) as it
does on a host. What it saw is printed as one JSON object; the namespaces die with this
process, and every gluster process with them.

    usage: gluster_ns.py WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys
import time

SERVERS = ('10.99.0.1', '10.99.0.2', '10.99.0.3')


def run(*cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if p.returncode != 0:
        raise SystemExit('%s failed: %s' % (' '.join(cmd), p.stdout))
    return p.stdout


def private_dir(work, path, d=None):
    """A directory of work bind-mounted over path (in this mount namespace only)."""
    d = d or os.path.join(work, path.strip('/').replace('/', '_'))
    os.makedirs(d, exist_ok=True)
    os.makedirs(path, exist_ok=True)
    run('mount', '--bind', d, path)
    return d


def start_gluster(work):
    run('ip', 'link', 'set', 'lo', 'up')
    for address in SERVERS:
        run('ip', 'addr', 'add', address + '/32', 'dev', 'lo')
    state = os.path.join(work, 'glusterd')
    for name in ('groups', 'hooks'):
        # what the package installs there: the private copy starts with it
        src = os.path.join('/var/lib/glusterd', name)
        if os.path.isdir(src) and not os.path.exists(os.path.join(state, name)):
            shutil.copytree(src, os.path.join(state, name), symlinks=True)
    private_dir(work, '/var/lib/glusterd', state)
    private_dir(work, '/run')
    private_dir(work, '/var/log/glusterfs')
    run('glusterd', '-p', '/run/glusterd.pid')
    deadline = time.monotonic() + 30
    while subprocess.run(['gluster', '--mode=script', 'volume', 'list'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
        if time.monotonic() > deadline:
            raise SystemExit('glusterd did not answer within 30 s')
        time.sleep(0.2)
    bricks = os.path.join(work, 'bricks')
    os.makedirs(bricks, exist_ok=True)
    gl = ('gluster', '--mode=script', 'volume')
    run(*gl, 'create', 'one', '%s:%s/one' % (SERVERS[0], bricks), 'force')
    run(*gl, 'create', 'three', 'replica', '3',
        *('%s:%s/three%d' % (s, bricks, i) for i, s in enumerate(SERVERS)), 'force')
    run(*gl, 'create', 'two', 'replica', '2',
        *('%s:%s/two%d' % (s, bricks, i) for i, s in enumerate(SERVERS[:2])), 'force')
    run(*gl, 'start', 'one')
    run(*gl, 'start', 'three')


def client_args(mnt):
    """The command line of the glusterfs client process serving mount point mnt."""
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                args = [a.decode() for a in f.read().split(b'\0') if a]
        except OSError:
            continue
        if args and os.path.basename(args[0]) in ('glusterfs', 'glusterfsd') and mnt in args:
            return args
    return []


def main(work):
    start_gluster(work)
    from ovirt_hosted_engine_setup.api.schema import constant, enum
    from ovirt_hosted_engine_setup.he_storage import layout
    from ovirt_hosted_engine_setup.hostd.api_base import HostContext, VdsmError
    from ovirt_hosted_engine_setup.hostd.storage import StorageBackend
    from ovirt_hosted_engine_setup.hostd.storage.fileutil import is_mounted

    gluster_type = enum('domainType')['GLUSTERFS']
    blank = constant('blankUUID')
    dc = os.path.join(work, 'dc')
    ctx = HostContext(root_dir=os.path.join(work, 'root'), data_center_dir=dc,
                      run_dir=os.path.join(work, 'run'))
    backend = StorageBackend(ctx)
    out = {'lists': {}, 'connections': {}}

    def listed(name, **params):
        try:
            out['lists'][name] = {'result': backend.volumesList(**params)}
        except VdsmError as e:
            out['lists'][name] = {'code': e.code, 'message': e.message}

    listed('one', volumeName='one', remoteServer=SERVERS[0])
    listed('three', volumeName='three', remoteServer=SERVERS[0])
    listed('two', volumeName='two', remoteServer=SERVERS[1])
    listed('nosuch', volumeName='nosuch', remoteServer=SERVERS[0])
    listed('unreachable', volumeName='one', remoteServer='10.99.0.9')
    listed('local-all')

    def connect(name, connection, options=''):
        conn = {'id': blank, 'connection': connection, 'vfs_type': 'glusterfs'}
        if options:
            conn['mnt_options'] = options
        res = backend.connectStorageServer(storagepoolID=blank, domainType=gluster_type,
                                           connectionParams=[conn])
        mnt = layout.mount_point(connection, dc, 'glusterfs')
        seen = {'status': res[0], 'mount_point': mnt, 'mounted': is_mounted(mnt),
                'left': os.path.exists(mnt), 'client': client_args(mnt)}
        if seen['mounted']:
            sd = '3f1a1a6c-5d4e-4b1e-9c7d-0a1b2c3d4e5f'
            os.makedirs(os.path.join(mnt, sd, 'dom_md'))
            with open(os.path.join(mnt, sd, 'dom_md', 'metadata'), 'w') as f:
                f.write('SDUUID=%s\n' % sd)
            seen['domain_dirs'] = backend.sc.domain_dirs()
            shutil.rmtree(os.path.join(mnt, sd))
            res = backend.disconnectStorageServer(storagepoolID=blank,
                                                  domainType=gluster_type,
                                                  connectionParams=[conn])
            seen['disconnect'] = res[0]
            seen['mounted_after'] = is_mounted(mnt)
            seen['left_after'] = os.path.exists(mnt)
        out['connections'][name] = seen

    connect('three', '%s:/three' % SERVERS[0])
    connect('three-own-backup', '%s:/three' % SERVERS[0], 'backup-volfile-servers=%s'
            % SERVERS[2])
    connect('one', '%s:/one' % SERVERS[0])
    # no gluster server there, and no such volume for this host's glusterd either
    connect('unreachable', '10.99.0.9:/nosuch')
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main(sys.argv[1])
