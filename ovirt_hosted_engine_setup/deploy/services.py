"""Enable and start, or stop, the hosted-engine HA services (ovirt-ha-broker, ovirt-ha-agent).

    start_ha_services()     # systemctl enable --now ovirt-ha-broker ovirt-ha-agent
    start_broker()          # systemctl enable --now ovirt-ha-broker
    restart_broker()        # systemctl restart ovirt-ha-broker
    stop_ha_services()      # systemctl stop ovirt-ha-agent ovirt-ha-broker
    active_ha_services()    # systemctl is-active of each: the ones running
    disable_ha_services()   # systemctl disable ovirt-ha-agent ovirt-ha-broker

The deploy starts the broker early with start_broker() (it joins the hosted-engine lockspace
while engine-setup runs) and both services at the hand-over with start_ha_services();
ovirt-hosted-engine-cleanup stops them with stop_ha_services().

With systemd (/run/systemd/system exists): ``systemctl`` from PATH; otherwise a
ServiceError telling the user to start the two services by hand. (A lab host answers
these calls with its own service manager: docs/lab.md.)

Each failure is a ServiceError whose str() is one line: the command, its last output
line and what to do.
"""
import logging
import os
import shutil
import subprocess

log = logging.getLogger(__name__)

HA_SERVICES = ('ovirt-ha-broker', 'ovirt-ha-agent')
SYSTEMD_RUN_DIR = '/run/systemd/system'
TIMEOUT = 180


class ServiceError(RuntimeError):
    """One line for the user."""


def command(action, environ=None, systemd_dir=SYSTEMD_RUN_DIR, units=HA_SERVICES):
    """The argv that starts (action 'start': enables and starts), stops ('stop') or restarts
    ('restart') the HA services here (units: some of HA_SERVICES, in their start order)."""
    if action not in ('start', 'stop', 'restart'):
        raise ValueError('action must be start, stop or restart, not %r' % (action,))
    environ = os.environ if environ is None else environ
    if os.path.isdir(systemd_dir):
        systemctl = shutil.which('systemctl', path=environ.get('PATH', os.defpath)) or 'systemctl'
        if action == 'start':
            return [systemctl, 'enable', '--now'] + list(units)
        if action == 'restart':
            return [systemctl, 'restart'] + list(units)
        return [systemctl, 'stop'] + list(reversed(units))
    raise ServiceError('This host does not run systemd (no %s): %s %s by hand '
                       '(ovirt-ha-broker first, then ovirt-ha-agent)'
                       % (systemd_dir, action, ' and '.join(units)))


def _run(argv, environ, what, ok=(0,)):
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
    if r.returncode not in ok:
        last = out.splitlines()[-1].strip() if out else 'no output'
        raise ServiceError('%s failed (exit %d: %s): %s the HA services (%s) by hand and look '
                           'at /var/log/ovirt-hosted-engine-ha/'
                           % (' '.join(argv), r.returncode, last, what,
                              ' and '.join(HA_SERVICES)))
    return out


def start_ha_services(environ=None, systemd_dir=SYSTEMD_RUN_DIR):
    """Enable and start ovirt-ha-broker and ovirt-ha-agent; return the argv used."""
    environ = os.environ if environ is None else environ
    argv = command('start', environ, systemd_dir)
    _run(argv, environ, 'start')
    return argv


def start_broker(environ=None, systemd_dir=SYSTEMD_RUN_DIR):
    """Enable and start ovirt-ha-broker alone; return the argv used."""
    environ = os.environ if environ is None else environ
    argv = command('start', environ, systemd_dir, units=HA_SERVICES[:1])
    _run(argv, environ, 'start')
    return argv


def restart_broker(environ=None, systemd_dir=SYSTEMD_RUN_DIR):
    """Restart ovirt-ha-broker (it reads hosted-engine.conf when it starts); return the
    argv used."""
    environ = os.environ if environ is None else environ
    argv = command('restart', environ, systemd_dir, units=HA_SERVICES[:1])
    _run(argv, environ, 'restart')
    return argv


def stop_ha_services(environ=None, systemd_dir=SYSTEMD_RUN_DIR, missing_ok=False):
    """Stop ovirt-ha-agent and ovirt-ha-broker; return the argv used. With missing_ok,
    services that are not installed (systemctl's exit status 5) are no error."""
    environ = os.environ if environ is None else environ
    argv = command('stop', environ, systemd_dir)
    _run(argv, environ, 'stop', ok=(0, 5) if missing_ok else (0,))
    return argv


def active_ha_services(environ=None, systemd_dir=SYSTEMD_RUN_DIR):
    """The HA services that run now (``systemctl is-active``), in the order they stop."""
    environ = os.environ if environ is None else environ
    systemctl = command('stop', environ, systemd_dir)[0]
    active = []
    for name in reversed(HA_SERVICES):
        try:
            r = subprocess.run([systemctl, 'is-active', '--quiet', name],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=dict(environ), timeout=60)
        except FileNotFoundError:
            raise ServiceError('%s: command not found: stop the HA services (%s) by hand'
                               % (systemctl, ' and '.join(HA_SERVICES)))
        except subprocess.TimeoutExpired:
            raise ServiceError('%s is-active %s did not answer within 60 s: check the HA '
                               'services with systemctl status %s'
                               % (systemctl, name, ' '.join(HA_SERVICES)))
        if r.returncode == 0:
            active.append(name)
    return active


def disable_ha_services(environ=None, systemd_dir=SYSTEMD_RUN_DIR):
    """``systemctl disable`` of both services; True when done. A failure is logged only:
    the services are stopped already, and the next deploy enables them again."""
    environ = os.environ if environ is None else environ
    argv = [command('stop', environ, systemd_dir)[0], 'disable'] + list(reversed(HA_SERVICES))
    try:
        _run(argv, environ, 'disable')
    except ServiceError as e:
        log.info('%s', e)
        return False
    return True
