"""Enable and start, or stop, the hosted-engine HA services (ovirt-ha-broker, ovirt-ha-agent).

    start_ha_services()     # systemctl enable --now ..., or the lab's `ha start`
    stop_ha_services()

How, in this order:
- in a lab host (OVIRT_HE_LAB_HOST set): ``hosted-engine-lab ha start|stop <host>`` (the
  lab runs the daemons inside the host's namespaces; a systemd of the machine running
  the lab must not be used there);
- with systemd (/run/systemd/system exists): ``systemctl enable --now`` / ``systemctl stop``;
- otherwise: ServiceError telling the user to start the two services by hand.

Each failure is a ServiceError whose str() is one line: the command, its last output
line and what to do.
"""
import logging
import os
import shutil
import subprocess
import sys

log = logging.getLogger(__name__)

HA_SERVICES = ('ovirt-ha-broker', 'ovirt-ha-agent')
SYSTEMD_RUN_DIR = '/run/systemd/system'
LAB_HOST_ENV = 'OVIRT_HE_LAB_HOST'
LAB_COMMAND = 'hosted-engine-lab'
TIMEOUT = 180


class ServiceError(RuntimeError):
    """One line for the user."""


def _find(name, environ, bin_dir):
    """An executable: in bin_dir (the running interpreter's bin directory: the venv's
    commands) first, else on environ's PATH."""
    if bin_dir:
        candidate = os.path.join(bin_dir, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name, path=environ.get('PATH', os.defpath))


def command(action, environ=None, systemd_dir=SYSTEMD_RUN_DIR, bin_dir=None):
    """The argv that starts (action 'start') or stops ('stop') the HA services here."""
    if action not in ('start', 'stop'):
        raise ValueError('action must be start or stop, not %r' % (action,))
    environ = os.environ if environ is None else environ
    if bin_dir is None:
        bin_dir = os.path.dirname(sys.executable)
    lab_host = environ.get(LAB_HOST_ENV)
    if lab_host:
        lab = _find(LAB_COMMAND, environ, bin_dir)
        if lab is None:
            raise ServiceError('%s is not installed here (this is lab host %s): install the '
                               'project in its virtualenv, or start %s by hand'
                               % (LAB_COMMAND, lab_host, ' and '.join(HA_SERVICES)))
        return [lab, 'ha', action, lab_host]
    if os.path.isdir(systemd_dir):
        systemctl = _find('systemctl', environ, None) or 'systemctl'
        if action == 'start':
            return [systemctl, 'enable', '--now'] + list(HA_SERVICES)
        return [systemctl, 'stop'] + list(reversed(HA_SERVICES))
    raise ServiceError('This host does not run systemd (no %s): %s %s by hand '
                       '(ovirt-ha-broker first, then ovirt-ha-agent)'
                       % (systemd_dir, action, ' and '.join(HA_SERVICES)))


def _run(argv, environ, what):
    log.debug('running %s', argv)
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=dict(environ),
                           timeout=TIMEOUT)
    except FileNotFoundError:
        raise ServiceError('%s: command not found: %s the HA services (%s) by hand'
                           % (argv[0], what, ' and '.join(HA_SERVICES)))
    except subprocess.TimeoutExpired:
        raise ServiceError('%s did not finish within %d s: check the HA services with '
                           'systemctl status %s' % (' '.join(argv), TIMEOUT,
                                                    ' '.join(HA_SERVICES)))
    out = (r.stdout or '').strip()
    if out:
        log.debug('%s output:\n%s', argv[0], out)
    if r.returncode != 0:
        last = out.splitlines()[-1].strip() if out else 'no output'
        raise ServiceError('%s failed (exit %d: %s): %s the HA services (%s) by hand and look '
                           'at /var/log/ovirt-hosted-engine-ha/'
                           % (' '.join(argv), r.returncode, last, what,
                              ' and '.join(HA_SERVICES)))
    return out


def start_ha_services(environ=None, systemd_dir=SYSTEMD_RUN_DIR, bin_dir=None):
    """Enable and start ovirt-ha-broker and ovirt-ha-agent; return the argv used."""
    environ = os.environ if environ is None else environ
    argv = command('start', environ, systemd_dir, bin_dir)
    _run(argv, environ, 'start')
    return argv


def stop_ha_services(environ=None, systemd_dir=SYSTEMD_RUN_DIR, bin_dir=None):
    """Stop ovirt-ha-agent and ovirt-ha-broker; return the argv used."""
    environ = os.environ if environ is None else environ
    argv = command('stop', environ, systemd_dir, bin_dir)
    _run(argv, environ, 'stop')
    return argv
