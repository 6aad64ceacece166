"""The engine's persistent state: JSON files in the state directory.

  setup.json       {"fqdn", "organization", "admin": {"user", "scrypt": {...}}, "setup_done", "version"}
  inventory.json   {"data_centers": {id: ...}, "clusters": {...}, "hosts": {...},
                    "storage_domains": {...}, "vms": {...}}
  pki/             the certificates (pki.EnginePki)

Every write goes to a temporary file that is renamed over the old one, so a
crash never leaves half a file; the files survive restarts of the engine and
of the VM it runs in.
"""
import base64
import copy
import hashlib
import hmac
import json
import os
import secrets
import threading
import uuid

from .pki import EnginePki

SETUP_FILE = 'setup.json'
INVENTORY_FILE = 'inventory.json'
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


def initial_inventory():
    dc_id = str(uuid.uuid4())
    cluster_id = str(uuid.uuid4())
    return {
        'data_centers': {dc_id: {'id': dc_id, 'name': 'Default',
                                 'description': 'The default Data Center', 'local': False}},
        'clusters': {cluster_id: {'id': cluster_id, 'name': 'Default',
                                  'description': 'The default server cluster',
                                  'data_center': dc_id}},
        'hosts': {}, 'storage_domains': {}, 'vms': {},
    }


def run_setup(state_dir, fqdn, admin_password, organization=None, san=()):
    """engine-setup: certificates, admin password, the Default data center and cluster.

    Run again on a set-up state, it replaces the admin password only (the
    CA, the certificates and the inventory are kept, as engine-setup keeps
    them on an upgrade)."""
    if not admin_password:
        raise StateError('the admin password is empty: give a non-empty password')
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    setup_path = os.path.join(state_dir, SETUP_FILE)
    old = read_json(setup_path)
    pki = EnginePki(state_dir)
    organization = organization or (fqdn.split('.', 1)[1] if '.' in fqdn else fqdn)
    if old and old.get('fqdn') != fqdn:
        raise StateError('the engine is already set up as %s: use a new --state-dir to set up %s'
                         % (old.get('fqdn'), fqdn))
    if not (old and pki.ready()):
        pki.create(fqdn, organization, san=list(san) + ['localhost', '127.0.0.1', '::1'])
    inv_path = os.path.join(state_dir, INVENTORY_FILE)
    if read_json(inv_path) is None:
        write_json(inv_path, initial_inventory())
    write_json(setup_path, {
        'fqdn': fqdn, 'organization': organization, 'setup_done': True,
        'version': '.'.join(map(str, ENGINE_VERSION)),
        'admin': {'user': ADMIN_USER, 'scrypt': hash_password(admin_password)},
    })


class State:
    """The loaded state; thread-safe; changes are written at once."""

    def __init__(self, state_dir):
        self.dir = state_dir
        self.pki = EnginePki(state_dir)
        self.lock = threading.RLock()
        self.setup = None
        self.inventory = None
        self._setup_mtime = None
        self.reload()

    @property
    def setup_path(self):
        return os.path.join(self.dir, SETUP_FILE)

    @property
    def inventory_path(self):
        return os.path.join(self.dir, INVENTORY_FILE)

    def reload(self):
        """Read the files again if setup.json changed (engine-setup ran meanwhile)."""
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
                self.inventory = None
                return False
            self.setup = setup
            self.inventory = read_json(self.inventory_path) or initial_inventory()
            return True

    @property
    def ready(self):
        return self.setup is not None

    def check_admin(self, user, password):
        with self.lock:
            if not self.ready:
                return False
            admin = self.setup['admin']
            return user == admin['user'] and check_password(password, admin['scrypt'])

    def save(self):
        with self.lock:
            write_json(self.inventory_path, self.inventory)

    # -- inventory helpers -------------------------------------------------

    def items(self, kind):
        with self.lock:
            return [copy.deepcopy(v) for v in self.inventory[kind].values()]

    def get(self, kind, obj_id):
        with self.lock:
            v = self.inventory[kind].get(obj_id)
            return copy.deepcopy(v) if v is not None else None

    def find(self, kind, name):
        with self.lock:
            for v in self.inventory[kind].values():
                if v.get('name') == name:
                    return copy.deepcopy(v)
        return None

    def put(self, kind, obj):
        with self.lock:
            self.inventory[kind][obj['id']] = copy.deepcopy(obj)
            self.save()

    def update(self, kind, obj_id, **changes):
        """Apply changes to a stored object; returns the new copy or None if gone."""
        with self.lock:
            obj = self.inventory[kind].get(obj_id)
            if obj is None:
                return None
            if any(obj.get(k) != v for k, v in changes.items()):
                obj.update(changes)
                self.save()
            return copy.deepcopy(obj)

    def remove(self, kind, obj_id):
        with self.lock:
            gone = self.inventory[kind].pop(obj_id, None)
            if gone is not None:
                self.save()
            return gone
