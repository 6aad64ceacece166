"""The engine's persistent state in its state directory.

  setup.json       {"fqdn", "organization", "admin": {"user", "scrypt": {...}}, "setup_done",
                    "version"[, "restored": {"version", "date", "fqdn"}]}
  engine.db        the inventory (data centers, clusters, hosts, storage domains, VMs) in
                   SQLite, tables named as oVirt's (see database.py)
  pki/             the certificates (pki.EnginePki)

setup.json is written to a temporary file that is renamed over the old one, so a crash
never leaves half a file; every inventory change is one committed transaction. Both
survive restarts of the engine and of the VM it runs in. An inventory.json left by an
engine set up before the database existed is imported into the database once.

A state directory restored by engine-backup --mode=restore has setup.json with
"restored" and setup_done false: the engine serves it only after engine-setup ran.
"""
import base64
import copy
import hashlib
import hmac
import json
import os
import secrets
import threading

from . import database
from .database import DatabaseError
from .pki import EnginePki

SETUP_FILE = 'setup.json'
INVENTORY_FILE = database.LEGACY_INVENTORY
DB_FILE = database.DB_FILE
ADMIN_USER = 'admin@internal'
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
ENGINE_VERSION = (4, 5, 6)


class StateError(Exception):
    pass


def hash_password(password):
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode('utf-8'), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, dklen=32)
    return {'n': SCRYPT_N, 'r': SCRYPT_R, 'p': SCRYPT_P,
            'salt': base64.b64encode(salt).decode('ascii'),
            'hash': base64.b64encode(digest).decode('ascii')}


def check_password(password, stored):
    try:
        salt = base64.b64decode(stored['salt'])
        want = base64.b64decode(stored['hash'])
        got = hashlib.scrypt(password.encode('utf-8'), salt=salt, n=int(stored['n']),
                             r=int(stored['r']), p=int(stored['p']), dklen=len(want))
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def write_json(path, data, mode=0o600):
    tmp = '%s.tmp.%d' % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    try:
        dfd = os.open(os.path.dirname(path) or '.', os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def read_json(path):
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise StateError('cannot read %s: %s' % (path, e))


def read_setup(state_dir):
    return read_json(os.path.join(state_dir, SETUP_FILE))


def run_setup(state_dir, fqdn, admin_password, organization=None, san=(), renew_pki=False):
    """engine-setup: certificates, admin password, the Default data center and cluster.

    Run again on a set-up state (an upgrade), or on a state restored by engine-backup,
    it keeps the CA, the certificates, the inventory and the FQDN, and sets the admin
    password; renew_pki issues new server and client certificates from the kept CA (as
    engine-setup's PKI renew). Returns what it found: 'new', 'set_up' or 'restored'."""
    if not admin_password:
        raise StateError('the admin password is empty: give a non-empty password')
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    setup_path = os.path.join(state_dir, SETUP_FILE)
    old = read_json(setup_path)
    pki = EnginePki(state_dir)
    restored = bool(old and old.get('restored'))
    if old and old.get('fqdn') != fqdn:
        if restored:
            raise StateError('this engine was restored from a backup of %s: a restored engine '
                             'keeps its FQDN; set OVESETUP_CONFIG/fqdn=str:%s instead of %s'
                             % (old.get('fqdn'), old.get('fqdn'), fqdn))
        raise StateError('the engine is already set up as %s: use a new --state-dir to set up %s'
                         % (old.get('fqdn'), fqdn))
    if restored and not pki.ready():
        raise StateError('the restored engine in %s has no complete PKI (%s): restore the '
                         'backup again with engine-backup --mode=restore' % (state_dir, pki.dir))
    organization = (organization or (old or {}).get('organization')
                    or (fqdn.split('.', 1)[1] if '.' in fqdn else fqdn))
    names = list(san) + ['localhost', '127.0.0.1', '::1']
    if not (old and pki.ready()):
        pki.create(fqdn, organization, san=names)
    elif renew_pki:
        pki.renew(fqdn, organization, san=names)
    try:
        database.open_state_database(state_dir).close()
    except DatabaseError as e:
        raise StateError(str(e))
    record = {
        'fqdn': fqdn, 'organization': organization, 'setup_done': True,
        'version': '.'.join(map(str, ENGINE_VERSION)),
        'admin': {'user': ADMIN_USER, 'scrypt': hash_password(admin_password)},
    }
    if restored:
        record['restored_from'] = old['restored']
    write_json(setup_path, record)
    return 'restored' if restored else 'set_up' if old else 'new'


class State:
    """The loaded state; thread-safe; every change is committed at once.

    The inventory is read from the database on every call (no cache): what the engine
    serves is what the database holds, also after a change made by another process."""

    def __init__(self, state_dir):
        self.dir = state_dir
        self.pki = EnginePki(state_dir)
        self.lock = threading.RLock()
        self.setup = None
        self.db = None
        self._setup_mtime = None
        self.reload()

    @property
    def setup_path(self):
        return os.path.join(self.dir, SETUP_FILE)

    @property
    def db_path(self):
        return os.path.join(self.dir, DB_FILE)

    def reload(self):
        """Read setup.json again if it changed (engine-setup ran meanwhile)."""
        with self.lock:
            try:
                mtime = os.stat(self.setup_path).st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if mtime == self._setup_mtime and self.setup is not None:
                return False
            self._setup_mtime = mtime
            setup = read_json(self.setup_path)
            if not (setup and setup.get('setup_done') and self.pki.ready()):
                self.setup = None
                self.close()
                return False
            if self.db is None:
                try:
                    self.db = database.open_state_database(self.dir)
                except DatabaseError as e:
                    raise StateError(str(e))
            self.setup = setup
            return True

    def close(self):
        with self.lock:
            if self.db is not None:
                self.db.close()
                self.db = None

    @property
    def ready(self):
        return self.setup is not None

    def check_admin(self, user, password):
        with self.lock:
            if not self.ready:
                return False
            admin = self.setup['admin']
            return user == admin['user'] and check_password(password, admin['scrypt'])

    # -- inventory ---------------------------------------------------------

    def _db(self):
        if self.db is None:
            raise StateError('the engine is not set up in %s: run engine-setup' % self.dir)
        return self.db

    def items(self, kind):
        with self.lock:
            return self._db().items(kind)

    def get(self, kind, obj_id):
        with self.lock:
            return self._db().get(kind, obj_id)

    def find(self, kind, name):
        with self.lock:
            return self._db().find(kind, name)

    def put(self, kind, obj):
        with self.lock:
            self._db().put(kind, copy.deepcopy(obj))

    def update(self, kind, obj_id, **changes):
        """Apply changes to a stored object; returns the new copy or None if gone."""
        with self.lock:
            return self._db().update(kind, obj_id, changes)

    def remove(self, kind, obj_id):
        with self.lock:
            return self._db().remove(kind, obj_id)
