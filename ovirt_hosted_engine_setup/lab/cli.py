"""hosted-engine-lab: namespaced lab hosts on one machine.

    hosted-engine-lab up --hosts N [--sanlock-io-timeout SECONDS]
                                        start host1..hostN (sanlock, virtlogd, libvirtd, hostd,
                                        sshd); hostd's io timeout for the storage domains'
                                        lockspaces (default 10)
    hosted-engine-lab up --hosts 3 --storage gluster
                                        the same, with glusterd on host1..host3 and a
                                        replica 3 volume `engine` (lab/gluster.py)
    hosted-engine-lab status            each host, its address and its daemons; the lab
                                        DNS server
    hosted-engine-lab exec HOST -- CMD  run CMD inside HOST (project commands on PATH)
    hosted-engine-lab down              stop everything the lab started
    hosted-engine-lab ssh-fingerprint HOST
                                        the SHA256 fingerprint of HOST's SSH host key
    hosted-engine-lab ha-prepare        hosted-engine storage + VM definition, no engine
    hosted-engine-lab ha start|stop [HOST...]
                                        the HA services (ovirt-ha-broker, ovirt-ha-agent):
                                        `systemctl start|stop` in the hosts, whose
                                        systemctl is the lab's service manager
    hosted-engine-lab fault HOST KIND [DAEMON]
                                        a real fault in a host: crash, freeze, thaw,
                                        partition, heal, vm-kill, kill DAEMON; with
                                        gluster: storage-loss, storage-slow MS,
                                        storage-back, brick-kill, brick-back
                                        (lab/faults.py, lab/gluster.py)
    hosted-engine-lab restart HOST      boot a host again, as after a reboot
    hosted-engine-lab soak --seed N --rounds K
                                        random faults with the HA invariants checked
                                        (lab/soak.py, lab/invariants.py)
    hosted-engine-lab standalone-engine up [--populate] | backup FILE | down
                                        a standalone engine on the lab network
                                        (lab/standalone_engine.py)

The lab's state directory is OVIRT_HE_LAB_DIR (default
/var/lib/ovirt-hosted-engine-lab/lab); docs/lab.md describes the lab.
"""
import argparse
import logging
import os
import sys

from ovirt_hosted_engine_setup.he_storage import layout
from ovirt_hosted_engine_setup.lab import lab as labmod
from ovirt_hosted_engine_setup.lab import faults, gluster, sshd
from ovirt_hosted_engine_setup.lab import standalone_engine as standalone

log = logging.getLogger('ovirt_hosted_engine_setup.lab')


def build_parser():
    p = argparse.ArgumentParser(prog='hosted-engine-lab',
                                description='Lab hosts for ovirt-hosted-engine-setup on one machine.')
    p.add_argument('--lab-dir', default=None,
                   help='state directory of the lab (default: $OVIRT_HE_LAB_DIR or '
                        '/var/lib/ovirt-hosted-engine-lab/lab)')
    sub = p.add_subparsers(dest='command', required=True)
    up = sub.add_parser('up', help='start the lab hosts')
    up.add_argument('--hosts', type=int, default=2, help='number of hosts (default 2)')
    up.add_argument('--no-hostd', action='store_true',
                    help='do not start the host agent in the hosts')
    up.add_argument('--root-password-file', metavar='FILE', default=None,
                    help="the hosts' root password for SSH, on the first line of FILE "
                         '(default: %s)' % sshd.ROOT_PASSWORD)
    up.add_argument('--sanlock-io-timeout', metavar='SECONDS', default=None,
                    help="sanlock's I/O timeout every host agent gives the storage domains' "
                         'lockspaces it writes and joins, the lockspace of the engine VM\'s '
                         "lease among them (VDSM's [sanlock] io_timeout; %d to %d, default %d)"
                         % (layout.MIN_IO_TIMEOUT, layout.MAX_IO_TIMEOUT,
                            layout.DEFAULT_IO_TIMEOUT))
    up.add_argument('--storage', choices=labmod.STORAGE_KINDS, default='dir',
                    help="the hosts' shared storage: dir, one local directory every host "
                         'sees (default), or gluster, a replica 3 Gluster volume on host1, '
                         'host2 and host3 (needs --hosts 3 or more)')
    sub.add_parser('status', help='show the hosts and their daemons')
    ex = sub.add_parser('exec', help='run a command inside a lab host')
    ex.add_argument('host')
    ex.add_argument('cmd', nargs=argparse.REMAINDER)
    sub.add_parser('down', help='stop everything the lab started')
    fp = sub.add_parser('ssh-fingerprint', help="print the SHA256 fingerprint of a host's SSH "
                                                'host key, as ssh-keygen -lf prints it')
    fp.add_argument('host')
    fp.add_argument('--key-type', choices=sshd.KEY_TYPES, default='ed25519',
                    help='which host key (default ed25519, the one SSH clients choose)')
    prep = sub.add_parser('ha-prepare', help='prepare the hosted-engine shared storage with the '
                                             'lab guest as engine VM and configure every host '
                                             'for the HA services (no engine, no deploy)')
    prep.add_argument('--io-timeout', type=int, default=None,
                      help='sanlock io timeout of the hosted-engine lockspace')
    ha = sub.add_parser('ha', help='start or stop the HA services in lab hosts (systemctl '
                                   'start|stop in each host)')
    ha.add_argument('action', choices=('start', 'stop'))
    ha.add_argument('hosts', nargs='*', help='hosts (default: all)')
    fault = sub.add_parser('fault', help='inject a real fault into a lab host: crash, freeze, '
                                         'thaw, partition, heal, vm-kill, kill DAEMON; in a '
                                         'gluster lab storage-loss, storage-slow MS, '
                                         'storage-back, brick-kill, brick-back (docs/lab.md, '
                                         '"Faults")')
    fault.add_argument('host')
    fault.add_argument('kind', help='one of %s' % ', '.join(faults.KINDS))
    fault.add_argument('daemon', nargs='?', default=None, metavar='DAEMON|MS',
                       help='for kill: one of %s; for storage-slow: the delay in milliseconds'
                       % ', '.join(faults.KILL_DAEMONS))
    rs = sub.add_parser('restart', help='boot a lab host again, as after a reboot (what still '
                                        'runs there is killed first)')
    rs.add_argument('host')
    soak = sub.add_parser('soak', help='random faults against a lab running the engine under '
                                       'HA on 3 hosts or more, the invariants checked after '
                                       'each round')
    soak.add_argument('--seed', type=int, required=True, help='seed of the random draws')
    soak.add_argument('--rounds', type=int, required=True, help='number of rounds')
    se = sub.add_parser('standalone-engine', help='a standalone engine (outside any VM) on '
                                                  'the lab network, with the engine FQDN and '
                                                  'address: up [--populate], backup FILE, down')
    se_sub = se.add_subparsers(dest='se_command', required=True)
    se_up = se_sub.add_parser('up', help='set up and start the standalone engine')
    se_up.add_argument('--populate', action='store_true',
                       help='add a data center, a cluster, the lab hosts but host1, a data '
                            'storage domain and two VMs through the REST API')
    se_up.add_argument('--admin-password-file', metavar='FILE', default=None,
                       help='the password of admin@internal, on the first line of FILE '
                            '(default: %s for a new engine; an engine set up before keeps '
                            'its own)' % standalone.ADMIN_PASSWORD)
    se_up.add_argument('--root-password-file', metavar='FILE', default=None,
                       help="the lab hosts' root password for SSH as given to up, on the first "
                            'line of FILE (default: %s)' % sshd.ROOT_PASSWORD)
    se_bk = se_sub.add_parser('backup', help='stop the engine and back it up with '
                                             'engine-backup --mode=backup into FILE')
    se_bk.add_argument('file')
    se_sub.add_parser('down', help='stop the standalone engine and remove its namespace')
    sim = sub.add_parser('simulate', add_help=False,
                         help='run HA simulator scenarios: [SCENARIO...] | --show SCENARIO')
    sim.add_argument('args', nargs=argparse.REMAINDER)
    return p


def _seconds(value, option):
    """A whole number of seconds given on the command line (None when not given)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise labmod.LabError('%s must be a whole number of seconds, not %r' % (option, value))


def _milliseconds(value):
    """The delay of storage-slow, a whole number of milliseconds."""
    try:
        return int(value)
    except ValueError:
        raise labmod.LabError('the delay of storage-slow is a whole number of milliseconds, '
                              'not %r' % value)


def _status(lab):
    rows = lab.status()
    if rows is None:
        print('no lab is up in %s' % lab.dir)
        return 3
    st = lab.state
    dns = lab.dns_alive()   # the lab DNS server (lab/dns.py), on the gateway address
    print('lab: %s   storage: %s   network: %s.0/%d (gateway %s)   dns: %s   '
          'sanlock io_timeout: %d s'
          % (lab.dir, st['storage'], st['subnet'], st['prefix'], st['gateway'],
             '-' if dns is None else ('up' if dns else 'DEAD'), lab.sanlock_io_timeout()))
    g = st.get('gluster')
    columns = labmod.DAEMONS + ((labmod.GLUSTERD, 'brick') if g else ())
    print('%-8s %-16s %-8s %s' % ('HOST', 'ADDRESS', 'NS', '  '.join(
        '%-9s' % d for d in columns)))
    ok = dns is not False
    for name, addr, holder, daemons in rows:
        cells = []
        for d in columns:
            v = daemons[d]
            cells.append('%-9s' % ('-' if v is None else ('up' if v else 'DEAD')))
            ok = ok and v is not False
        ok = ok and holder
        print('%-8s %-16s %-8s %s' % (name, addr, 'up' if holder else 'DEAD', '  '.join(cells)))
    if g:   # the volume: what a deploy's answer file and the tests use (lab/gluster.py)
        print(gluster.status_line(g))
        if gluster.faults_line(st):
            print(gluster.faults_line(st))
    se = standalone.StandaloneEngine(lab).status()
    if se is not None:
        print('standalone engine: %s   %s %s   namespace: %s%s' % (
            'stopped' if se['engine'] is None else
            'up (pid %d)' % se['pid'] if se['engine'] else 'DEAD',
            labmod.ENGINE_FQDN, labmod.ENGINE_ADDRESS,
            '-' if se['namespace'] is None else 'up' if se['namespace'] else 'DEAD',
            '   backed up to %s' % se['backup'] if se['backup'] else ''))
        ok = ok and se['namespace'] is not False and se['engine'] is not False
    return 0 if ok else 1


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['simulate']:
        # the HA simulator needs no lab: a virtual cluster running the real decision core
        from ovirt_hosted_engine_setup.ha.simulator.cli import main as simulate
        return simulate(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        lab = labmod.Lab(args.lab_dir)
        if args.command == 'up':
            password = None
            if args.root_password_file:
                password = sshd.read_password_file(args.root_password_file)
            lab.up(args.hosts, with_hostd=not args.no_hostd, root_password=password,
                   sanlock_io_timeout=_seconds(args.sanlock_io_timeout,
                                               '--sanlock-io-timeout'),
                   storage=args.storage)
            return 0
        if args.command == 'ssh-fingerprint':
            print(lab.ssh_fingerprint(args.host, args.key_type))
            return 0
        if args.command == 'down':
            standalone.StandaloneEngine(lab).down(quiet=True)
            lab.down()
            return 0
        if args.command == 'standalone-engine':
            se = standalone.StandaloneEngine(lab)
            if args.se_command == 'up':
                if args.root_password_file and not args.populate:
                    raise labmod.LabError('--root-password-file is for the hosts --populate '
                                          'adds: add --populate, or leave it out')
                se.up(admin_password=standalone.read_secret_file(
                          args.admin_password_file, 'admin password')
                      if args.admin_password_file else None,
                      root_password=standalone.read_secret_file(
                          args.root_password_file, 'root password')
                      if args.root_password_file else None,
                      populate=args.populate)
            elif args.se_command == 'backup':
                se.backup(args.file)
            else:
                se.down()
            return 0
        if args.command == 'status':
            return _status(lab)
        if args.command == 'ha':
            if args.action == 'start':
                lab.ha_start(args.hosts)
            else:
                lab.ha_stop(args.hosts)
            return 0
        if args.command == 'fault':
            daemon, ms = args.daemon, None
            if args.kind == 'storage-slow' and daemon is not None:
                daemon, ms = None, _milliseconds(daemon)
            with lab.locked():
                print(faults.inject(lab, args.host, args.kind, daemon, ms=ms))
            return 0
        if args.command == 'restart':
            with lab.locked():
                print(faults.restart(lab, args.host), flush=True)
            return 0
        if args.command == 'soak':
            from ovirt_hosted_engine_setup.lab import soak
            if args.rounds < 1:
                raise labmod.LabError('--rounds must be 1 or more')
            return soak.Soak(lab, args.seed, args.rounds).run()
        if args.command == 'ha-prepare':
            names = lab.host_names()
            cmd = [os.path.join(labmod.paths.venv_bin(), 'python'), '-m',
                   'ovirt_hosted_engine_setup.lab.ha_prepare', '--hosts', ','.join(names)]
            if args.io_timeout:
                cmd += ['--io-timeout', str(args.io_timeout)]
            env = dict(lab.exec_env(names[0]), OVIRT_HE_LAB_DIR=lab.dir)
            argv = lab.exec_argv(names[0], cmd, cwd='/')
            sys.stdout.flush()
            os.execvpe(argv[0], argv, env)
        if args.command == 'exec':
            cmd = args.cmd
            if cmd and cmd[0] == '--':
                cmd = cmd[1:]
            argv = lab.exec_argv(args.host, cmd)
            env = lab.exec_env(args.host)
            sys.stdout.flush()
            os.execvpe(argv[0], argv, env)
    except (labmod.LabError, sshd.SshdError) as e:
        sys.stderr.write('hosted-engine-lab: %s\n' % e)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == '__main__':
    sys.exit(main())
