"""engine-setup of the lab engine: initialise its state directory.

    python3 -m ovirt_hosted_engine_setup.lab.engine.setup --state-dir D --fqdn F \
        --admin-password-file P [--organization O] [--san NAME]...

The admin password is read from a file (never from the command line, so it
does not show in process lists); the file's trailing newline is dropped.
"""
import argparse
import re
import sys

from .pki import PkiError
from .state import StateError, run_setup

FQDN_RE = re.compile(r'^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)'
                     r'(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$')


def main(argv=None):
    p = argparse.ArgumentParser(prog='python3 -m ovirt_hosted_engine_setup.lab.engine.setup',
                                description='Set up the lab engine: CA, certificates, admin '
                                            'password, the Default data center and cluster.')
    p.add_argument('--state-dir', required=True)
    p.add_argument('--fqdn', required=True, help="the engine's fully qualified name")
    p.add_argument('--admin-password-file', required=True,
                   help='file holding the password of admin@internal')
    p.add_argument('--organization', help='organization of the certificates '
                                          '(default: the FQDN without its host part)')
    p.add_argument('--san', action='append', default=[],
                   help='another name or address for the HTTPS certificate (repeatable)')
    a = p.parse_args(argv)
    if not FQDN_RE.match(a.fqdn):
        print('error: %r is not a valid host name: give the engine FQDN, e.g. '
              'engine.example.com' % a.fqdn, file=sys.stderr)
        return 1
    try:
        with open(a.admin_password_file, encoding='utf-8') as f:
            password = f.read().rstrip('\r\n')
    except OSError as e:
        print('error: cannot read the admin password file %s: %s' % (
            a.admin_password_file, e.strerror or e), file=sys.stderr)
        return 1
    try:
        run_setup(a.state_dir, a.fqdn, password, organization=a.organization, san=a.san)
    except (StateError, PkiError, OSError) as e:
        print('error: engine setup failed: %s' % e, file=sys.stderr)
        return 1
    print('The engine %s is set up in %s' % (a.fqdn, a.state_dir))
    return 0


if __name__ == '__main__':
    sys.exit(main())
