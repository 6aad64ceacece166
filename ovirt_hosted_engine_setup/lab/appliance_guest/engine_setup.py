#!/usr/bin/python3
"""engine-setup of the lab appliance (/usr/bin/engine-setup in the image).

A stand-in for oVirt's engine-setup, with the same command line for what the
hosted-engine deploy uses and otopi-like output:

    engine-setup [--offline] [--accept-defaults] --config-append=FILE [...]

FILE is an otopi answer file: a section [environment:default] with lines
KEY=type:value (type str, int, bool or none). The keys read:
    OVESETUP_CONFIG/fqdn            the engine's FQDN (default: the host name)
    OVESETUP_CONFIG/adminPassword   the password of admin@internal (required)
    OVESETUP_PKI/organization       organization of the certificates (optional)
    OVESETUP_PKI/renew              bool: issue new engine certificates from the kept CA
                                    (an engine set up before, or restored from a backup)
Other OVESETUP_* keys are accepted and logged; keys of other sections are ignored.

After engine-backup --mode=restore it finds the restored engine and keeps its CA,
inventory and FQDN (an answer file naming another FQDN is refused), sets the admin
password of the answers and starts the engine.

It sets up the lab engine's state in /var/lib/ovirt-engine-lab (CA, certificates,
admin password hash, made by the lab engine's own setup code), starts the lab
engine (/usr/libexec/ovirt-engine-lab/start-engine) and waits until its health
page answers "DB Up". Exit 0 with "Execution of setup completed successfully",
1 with "[ ERROR ] ..." lines otherwise. The answer values are logged to
/var/log/ovirt-engine/setup/ with passwords masked.
"""
import configparser
import os
import subprocess
import sys
import time
import urllib.request

STATE_DIR = '/var/lib/ovirt-engine-lab'
START_ENGINE = '/usr/libexec/ovirt-engine-lab/start-engine'
LOG_DIR = '/var/log/ovirt-engine/setup'
HEALTH_URL = 'http://127.0.0.1/ovirt-engine/services/health'
HEALTH_TIMEOUT = 300
ENGINE_PID = '/run/ovirt-engine-lab.pid'
ENGINE_LOG = '/var/log/ovirt-engine-lab.log'
ENGINE_MODULE = 'ovirt_hosted_engine_setup.lab.engine'
SECRET_WORDS = ('password', 'passwd', 'secret')
ANSWER_TYPES = ('str', 'int', 'bool', 'none')


class SetupError(Exception):
    pass


class Output:
    def __init__(self, log_path):
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        self.log_path = log_path
        self.log = open(log_path, 'a', encoding='utf-8')

    def _emit(self, text):
        sys.stdout.write(text + '\n')
        sys.stdout.flush()
        self.log.write('%s %s\n' % (time.strftime('%Y-%m-%d %H:%M:%S'), text))
        self.log.flush()

    def info(self, msg):
        self._emit('[ INFO  ] %s' % msg)

    def warning(self, msg):
        self._emit('[WARNING] %s' % msg)

    def error(self, msg):
        self._emit('[ ERROR ] %s' % msg)

    def plain(self, msg):
        self._emit('          %s' % msg)

    def stage(self, name):
        self.info('Stage: %s' % name)

    def debug(self, msg):
        self.log.write('%s DEBUG %s\n' % (time.strftime('%Y-%m-%d %H:%M:%S'), msg))
        self.log.flush()


def parse_args(argv):
    opts = {'offline': False, 'accept_defaults': False, 'config_append': []}
    it = iter(argv)
    for arg in it:
        if arg == '--offline':
            opts['offline'] = True
        elif arg == '--accept-defaults':
            opts['accept_defaults'] = True
        elif arg.startswith('--config-append='):
            opts['config_append'].append(arg.split('=', 1)[1])
        elif arg == '--config-append':
            value = next(it, None)
            if value is None:
                raise SetupError('--config-append needs a file: --config-append=FILE')
            opts['config_append'].append(value)
        else:
            raise SetupError('unknown option %r: engine-setup takes --offline, '
                             '--accept-defaults and --config-append=FILE' % arg)
    return opts


def parse_value(path, key, raw):
    if ':' not in raw:
        raise SetupError('invalid value in answer file %s: %s=%s (write KEY=type:value, type '
                         'one of %s)' % (path, key, _mask(key, raw), ', '.join(ANSWER_TYPES)))
    typ, value = raw.split(':', 1)
    if typ == 'str':
        return value
    if typ == 'int':
        try:
            return int(value)
        except ValueError:
            pass
    elif typ == 'bool':
        if value in ('True', 'False'):
            return value == 'True'
    elif typ == 'none':
        if value in ('None', ''):
            return None
    raise SetupError('invalid value in answer file %s: %s=%s (write KEY=type:value, type one '
                     'of %s)' % (path, key, _mask(key, raw), ', '.join(ANSWER_TYPES)))


def _secret(key):
    return any(w in key.lower() for w in SECRET_WORDS)


def _mask(key, value):
    return '**FILTERED**' if _secret(key) else value


def read_answers(paths):
    env = {}
    for path in paths:
        cp = configparser.RawConfigParser(delimiters=('=',), comment_prefixes=('#', ';'),
                                          strict=False)
        cp.optionxform = str
        try:
            with open(path, encoding='utf-8') as f:
                cp.read_file(f)
        except OSError as e:
            raise SetupError('cannot read the answer file %s: %s' % (path, e.strerror or e))
        except configparser.Error as e:
            raise SetupError('the answer file %s is not an otopi answer file (%s): it needs a '
                             '[environment:default] section of KEY=type:value lines'
                             % (path, str(e).splitlines()[0]))
        if not cp.has_section('environment:default'):
            raise SetupError('the answer file %s has no [environment:default] section' % path)
        for key, raw in cp.items('environment:default'):
            env[key] = parse_value(path, key, raw.strip())
    return env


def engine_pid():
    try:
        with open(ENGINE_PID) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _log_tail():
    try:
        with open(ENGINE_LOG, encoding='utf-8', errors='replace') as f:
            lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        return lines[-1] if lines else 'its log is empty'
    except OSError:
        return 'no log'


def wait_health(out, timeout=HEALTH_TIMEOUT):
    start = time.monotonic()
    last = 'no answer yet'
    while True:
        try:
            with urllib.request.urlopen(HEALTH_URL, timeout=5) as r:
                body = r.read().decode('utf-8', 'replace').strip()
            if 'DB Up' in body:
                return body
            last = body
        except OSError as e:
            last = str(getattr(e, 'reason', e))
        if engine_pid() is None:
            raise SetupError('the engine service exited (%s); see %s' % (_log_tail(), ENGINE_LOG))
        if time.monotonic() - start > timeout:
            raise SetupError('the engine did not become healthy within %d s (last reply: %s); '
                             'see %s' % (timeout, last, ENGINE_LOG))
        time.sleep(1)


def ca_fingerprint(path):
    r = subprocess.run(['openssl', 'x509', '-in', path, '-noout', '-fingerprint', '-sha256'],
                       capture_output=True, text=True)
    return r.stdout.strip().split('=', 1)[-1] if r.returncode == 0 else 'unknown'


def setup(opts, out):
    out.stage('Initializing')
    out.stage('Environment setup')
    out.plain('Configuration files: %s' % ', '.join(opts['config_append']))
    out.plain('Log file: %s' % out.log_path)
    out.plain('Version: otopi-1.10 (lab engine appliance)')
    env = read_answers(opts['config_append'])
    for key in sorted(env):
        out.debug('ENV %s=%s' % (key, _mask(key, '%s:%r' % (type(env[key]).__name__,
                                                             env[key]))))
    out.stage('Environment packages setup')
    out.stage('Programs detection')
    import importlib.util
    if importlib.util.find_spec(ENGINE_MODULE + '.__main__') is None:
        raise SetupError('the lab engine (%s) is not in this appliance: rebuild it with '
                         'python -m ovirt_hosted_engine_setup.lab.appliance --force'
                         % ENGINE_MODULE)
    out.stage('Environment customization')
    from ovirt_hosted_engine_setup.lab.engine import state as engine_state
    try:
        previous = engine_state.read_setup(STATE_DIR) or {}
    except engine_state.StateError as e:
        raise SetupError(str(e))
    restored = previous.get('restored') if not previous.get('setup_done') else None
    fqdn = (env.get('OVESETUP_CONFIG/fqdn') or (restored or {}).get('fqdn')
            or os.uname().nodename)
    if '.' not in fqdn:
        raise SetupError('the engine FQDN %r is not fully qualified: set '
                         'OVESETUP_CONFIG/fqdn=str:engine.example.com' % fqdn)
    password = env.get('OVESETUP_CONFIG/adminPassword')
    if not password or not isinstance(password, str):
        raise SetupError('no admin password: set OVESETUP_CONFIG/adminPassword=str:... in the '
                         'answer file')
    organization = env.get('OVESETUP_PKI/organization') or None
    renew = env.get('OVESETUP_PKI/renew')
    if renew not in (None, True, False):
        raise SetupError('OVESETUP_PKI/renew must be bool:True or bool:False, not %r' % (renew,))
    out.stage('Setup validation')
    done = bool(previous)
    out.stage('Transaction setup')
    out.stage('Misc configuration')
    if restored:
        out.info('Found a restored engine in %s: %s, backed up from engine %s; keeping its '
                 'CA, inventory and FQDN' % (STATE_DIR, restored.get('fqdn'),
                                             restored.get('version')))
    elif done:
        out.info('The engine is already set up in %s: keeping its CA and data' % STATE_DIR)
    else:
        out.info('Creating CA: %s/pki/ca.pem' % STATE_DIR)
        out.info('Creating the engine state in %s' % STATE_DIR)
    if renew and done:
        out.info('Renewing the engine certificates (the engine CA is kept)')
    try:
        engine_state.run_setup(STATE_DIR, fqdn, password, organization=organization,
                               renew_pki=bool(renew))
    except engine_state.StateError as e:
        raise SetupError(str(e))
    out.stage('Package installation')
    out.stage('Transaction commit')
    out.stage('Closing up')
    out.info('Starting engine service')
    if engine_pid() is None:
        r = subprocess.run([START_ENGINE], capture_output=True, text=True)
        out.debug('%s: %s %s' % (START_ENGINE, r.stdout.strip(), r.stderr.strip()))
        if r.returncode != 0:
            raise SetupError('the engine service did not start: %s'
                             % (r.stderr.strip() or 'exit status %d' % r.returncode))
    out.info('Waiting for the engine health page')
    wait_health(out)
    out.plain('--== SUMMARY ==--')
    out.plain('Web access is enabled at:')
    out.plain('    http://%s:80/ovirt-engine' % fqdn)
    out.plain('    https://%s:443/ovirt-engine' % fqdn)
    out.plain('Internal CA %s' % ca_fingerprint(os.path.join(STATE_DIR, 'pki', 'ca.pem')))
    out.plain('--== END OF SUMMARY ==--')
    out.stage('Clean up')
    out.plain('Log file is located at %s' % out.log_path)
    out.stage('Pre-termination')
    out.stage('Termination')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    log_path = os.path.join(LOG_DIR, 'ovirt-engine-setup-%s.log' % time.strftime('%Y%m%d%H%M%S'))
    out = Output(log_path)
    try:
        opts = parse_args(argv)
        if not opts['config_append']:
            raise SetupError('no answer file: run engine-setup --offline '
                             '--config-append=FILE (this appliance does not ask questions)')
        setup(opts, out)
    except SetupError as e:
        out.error(str(e))
        out.error('Execution of setup failed')
        return 1
    except Exception as e:  # a failure of the engine's own code: one line, details in the log
        import traceback
        out.debug(traceback.format_exc())
        out.error('Failed to execute stage: %s (details in %s)' % (e, log_path))
        out.error('Execution of setup failed')
        return 1
    out.info('Execution of setup completed successfully')
    return 0


if __name__ == '__main__':
    sys.exit(main())
