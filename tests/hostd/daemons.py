"""Real daemons for the host agent backend tests: sanlock, and libvirtd + virtlogd
in a private mount namespace. Each is started and stopped by pid.

The sanlock daemon runs with an LD_PRELOAD library: a workaround for restricted
containers (sanlock cannot raise RLIMIT_MEMLOCK there, see
ovirt_hosted_engine_setup/lab/sanlock_preload.c); real hosts run sanlock as a service.
"""
import os
import subprocess

from daemon_proc import stop_pid, wait_for

from ovirt_hosted_engine_setup.lab.preload import ensure_preload


class SanlockDaemon:
    """sanlock daemon -D -w 0 with its own SANLOCK_RUN_DIR."""

    def __init__(self, run_dir, name='host'):
        self.run_dir = run_dir
        self.name = name
        self.proc = None

    def start(self):
        os.makedirs(self.run_dir, exist_ok=True)
        env = dict(os.environ, SANLOCK_RUN_DIR=self.run_dir, LD_PRELOAD=ensure_preload())
        self.log = open(os.path.join(self.run_dir, 'sanlock.out'), 'wb')
        self.proc = subprocess.Popen(
            ['sanlock', 'daemon', '-D', '-w', '0', '-U', 'root', '-G', 'root', '-l', '0',
             '-e', self.name], env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        sock = os.path.join(self.run_dir, 'sanlock.sock')
        wait_for('sanlock daemon start',
                 lambda: os.path.exists(sock) or self.proc.poll() is not None, 20, 0.1)
        if self.proc.poll() is not None:
            raise RuntimeError('sanlock daemon exited: see %s' % self.log.name)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # Force: leave every lockspace, then exit.
            subprocess.run(['sanlock', 'shutdown', '-f', '1'], timeout=30,
                           env=dict(os.environ, SANLOCK_RUN_DIR=self.run_dir),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                stop_pid(self.proc.pid, timeout=5)
        if self.proc:
            self.proc.wait()
        self.proc = None


LIBVIRT_SCRIPT = r'''
set -e
b="$1"
mount --bind "$b/run" /run
for d in etc/libvirt var/lib/libvirt var/log/libvirt var/cache/libvirt; do
    mount --bind "$b/$d" "/$d"
done
mkdir -p /run/libvirt
virtlogd -d
libvirtd -d
'''


class LibvirtHost:
    """virtlogd + libvirtd in a private mount namespace with their own /run,
    /etc/libvirt (sanlock lock driver configured), /var/lib/libvirt, /var/log/libvirt
    and /var/cache/libvirt under base; libvirtd's sanlock client uses the sanlock
    daemon of sanlock_run_dir. Reach it with self.uri."""

    def __init__(self, base, sanlock_run_dir):
        self.base = base
        self.sanlock_run_dir = sanlock_run_dir
        self.uri = 'qemu:///system?socket=%s/run/libvirt/libvirt-sock' % base

    def _config(self):
        for d in ('run', 'var/lib/libvirt', 'var/log/libvirt', 'var/cache/libvirt'):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        etc = os.path.join(self.base, 'etc/libvirt')
        os.makedirs(os.path.dirname(etc), exist_ok=True)
        if not os.path.isdir(etc):
            subprocess.run(['cp', '-a', '/etc/libvirt', etc], check=True)
        autostart = os.path.join(etc, 'qemu/networks/autostart')
        if os.path.isdir(autostart):
            for f in os.listdir(autostart):
                os.unlink(os.path.join(autostart, f))
        with open(os.path.join(etc, 'qemu.conf'), 'a') as f:
            f.write('\nlock_manager = "sanlock"\nuser = "root"\ngroup = "root"\n'
                    'dynamic_ownership = 0\nsecurity_driver = "none"\n'
                    'vnc_listen = "127.0.0.1"\nspice_listen = "127.0.0.1"\n')
        with open(os.path.join(etc, 'qemu-sanlock.conf'), 'w') as f:
            f.write('auto_disk_leases = 0\nrequire_lease_for_disks = 0\n')

    def _pid(self, name):
        try:
            with open(os.path.join(self.base, 'run', name)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start(self):
        self._config()
        env = dict(os.environ, SANLOCK_RUN_DIR=self.sanlock_run_dir)
        p = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
                            LIBVIRT_SCRIPT, 'libvirt-host', self.base], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if p.returncode != 0:
            self.stop()
            raise RuntimeError('libvirtd start failed: %s' % p.stdout)
        sock = os.path.join(self.base, 'run/libvirt/libvirt-sock')
        wait_for('libvirtd socket', lambda: os.path.exists(sock), 30, 0.1)
        return self

    def stop(self):
        for name in ('libvirtd.pid', 'virtlogd.pid'):
            pid = self._pid(name)
            if pid:
                stop_pid(pid, timeout=15)

