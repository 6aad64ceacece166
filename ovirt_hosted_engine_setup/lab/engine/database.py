"""The lab engine's database: its inventory in SQLite, one file in the state directory.

The tables are named as oVirt names them, for the columns engine-psql fix-ups and
reports touch; these columns are authoritative (a plain SQL UPDATE or DELETE on them is
what the engine then serves). The lab's other fields of an object live in the JSON
column `extra`.

  storage_pool           (id, name, description, is_local)          data centers
  cluster                (cluster_id, name, description, storage_pool_id)
  vds_static             (vds_id, vds_name, host_name, port, cluster_id, vds_spm_id,
                          vds_unique_id)                             hosts
  storage_domain_static  (id, storage_name, storage_domain_type, storage_type)
  vm_static              (vm_guid, vm_name, origin, cluster_id)      VMs

Enumerations are stored with oVirt's numbers (StorageDomainType, StorageType,
OriginType). Every change is its own transaction, committed at once
(journal_mode=WAL, synchronous=FULL: a commit is on disk when it returns); nothing is
cached, so a change made by another process (engine-psql) is what the next read sees.
"""
import json
import os
import sqlite3
import uuid

DB_FILE = 'engine.db'
LEGACY_INVENTORY = 'inventory.json'
SCHEMA_VERSION = 1
BUSY_TIMEOUT = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS storage_pool (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT,
    is_local INTEGER NOT NULL DEFAULT 0, extra TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS cluster (
    cluster_id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT,
    storage_pool_id TEXT, extra TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS vds_static (
    vds_id TEXT PRIMARY KEY, vds_name TEXT NOT NULL, host_name TEXT, port INTEGER,
    cluster_id TEXT, vds_spm_id INTEGER, vds_unique_id TEXT,
    extra TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS storage_domain_static (
    id TEXT PRIMARY KEY, storage_name TEXT NOT NULL, storage_domain_type INTEGER,
    storage_type INTEGER, extra TEXT NOT NULL DEFAULT '{}');
CREATE VIEW IF NOT EXISTS vds AS SELECT vds_id, vds_name, host_name, port, cluster_id,
    vds_spm_id, vds_unique_id FROM vds_static;
CREATE TABLE IF NOT EXISTS vm_static (
    vm_guid TEXT PRIMARY KEY, vm_name TEXT NOT NULL, origin INTEGER NOT NULL DEFAULT 3,
    cluster_id TEXT, extra TEXT NOT NULL DEFAULT '{}');
"""

# oVirt's numbers (org.ovirt.engine.core.common.businessentities)
STORAGE_DOMAIN_TYPES = {'master': 0, 'data': 1, 'iso': 2, 'export': 3, 'image': 4,
                        'volume': 5, 'unknown': 6, 'managed_block_storage': 7}
STORAGE_TYPES = {'unknown': 0, 'nfs': 1, 'fcp': 2, 'iscsi': 3, 'localfs': 4, 'posixfs': 6,
                 'glusterfs': 7, 'glance': 8, 'cinder': 9, 'managed_block_storage': 10}
ORIGINS = {'rhev': 0, 'vmware': 1, 'xen': 2, 'ovirt': 3, 'external': 4, 'hosted_engine': 5,
           'managed_hosted_engine': 6, 'kvm': 7, 'physical_machine': 8, 'hyperv': 9,
           'kubevirt': 10}
HOSTED_ENGINE_VM = 'HostedEngine'


class DatabaseError(Exception):
    pass


class _Text:
    enum = None

    def encode(self, v):
        return None if v is None else str(v)

    def decode(self, v):
        return v


class _Int(_Text):
    def encode(self, v):
        if v is None or v == '':
            return None
        try:
            return int(v)
        except (TypeError, ValueError):
            raise DatabaseError('%r is not a number' % (v,))


class _Bool(_Text):
    def encode(self, v):
        return 1 if v else 0

    def decode(self, v):
        return bool(v)


class _Enum(_Text):
    def __init__(self, names):
        self.enum = names
        self.numbers = {n: name for name, n in names.items()}

    def encode(self, v):
        return None if v is None else self.enum.get(str(v).lower())

    def decode(self, v):
        return self.numbers.get(v, str(v))


TEXT, INT, BOOL = _Text(), _Int(), _Bool()


class Table:
    def __init__(self, name, key, columns, name_column):
        self.name = name
        self.key = key
        self.columns = columns            # [(dict key, column, codec)]
        self.name_column = name_column

    def to_row(self, obj):
        """The row of a lab object: (key, {column: value}, extra json)."""
        rest = dict(obj)
        obj_id = rest.pop('id')
        cols = {}
        extra = {}
        for key, column, codec in self.columns:
            v = rest.pop(key, None)
            cols[column] = codec.encode(v)
            if codec.enum is not None and v is not None and cols[column] is None:
                extra[key] = v      # a value oVirt has no number for: kept as the lab has it
        extra.update(rest)
        return str(obj_id), cols, json.dumps(extra, sort_keys=True)

    def from_row(self, row):
        obj = json.loads(row['extra'] or '{}')
        obj['id'] = row[self.key]
        for key, column, codec in self.columns:
            v = row[column]
            if v is not None:
                obj[key] = codec.decode(v)
        return obj


TABLES = {
    'data_centers': Table('storage_pool', 'id', [
        ('name', 'name', TEXT), ('description', 'description', TEXT),
        ('local', 'is_local', BOOL)], 'name'),
    'clusters': Table('cluster', 'cluster_id', [
        ('name', 'name', TEXT), ('description', 'description', TEXT),
        ('data_center', 'storage_pool_id', TEXT)], 'name'),
    'hosts': Table('vds_static', 'vds_id', [
        ('name', 'vds_name', TEXT), ('address', 'host_name', TEXT), ('port', 'port', INT),
        ('cluster', 'cluster_id', TEXT), ('spm_id', 'vds_spm_id', INT),
        ('unique_id', 'vds_unique_id', TEXT)], 'vds_name'),
    'storage_domains': Table('storage_domain_static', 'id', [
        ('name', 'storage_name', TEXT),
        ('type', 'storage_domain_type', _Enum(STORAGE_DOMAIN_TYPES)),
        ('storage_type', 'storage_type', _Enum(STORAGE_TYPES))], 'storage_name'),
    'vms': Table('vm_static', 'vm_guid', [
        ('name', 'vm_name', TEXT), ('origin', 'origin', _Enum(ORIGINS)),
        ('cluster', 'cluster_id', TEXT)], 'vm_name'),
}
KINDS = tuple(TABLES)


def _with_defaults(kind, obj):
    """Columns the lab's objects do not carry themselves, derived as oVirt fills them."""
    obj = dict(obj)
    if kind == 'vms' and obj.get('origin') is None:
        # the VM the hosted-engine deploy created is the managed hosted engine VM
        obj['origin'] = ('managed_hosted_engine' if obj.get('name') == HOSTED_ENGINE_VM
                         else 'ovirt')
    if kind == 'hosts' and not obj.get('unique_id'):
        hw = (obj.get('capabilities') or {}).get('hardware_uuid')
        if hw:
            obj['unique_id'] = hw    # oVirt's vds_unique_id: the host's hardware UUID
    return obj


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


def connect(path):
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=FULL."""
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute('PRAGMA journal_mode=WAL')
        conn.execute('PRAGMA synchronous=FULL')
    except sqlite3.Error as e:
        raise DatabaseError('cannot open the engine database %s: %s' % (path, e))
    return conn


class Database:
    """The inventory tables; the caller serialises the threads that share one."""

    def __init__(self, path):
        self.path = path
        self.conn = connect(path)
        try:
            self.conn.executescript(SCHEMA)
        except sqlite3.Error as e:
            self.conn.close()
            raise DatabaseError('the engine database %s is not usable: %s' % (path, e))

    def close(self):
        self.conn.close()

    # -- transactions ------------------------------------------------------

    def transaction(self):
        return _Transaction(self.conn)

    @property
    def user_version(self):
        return self.conn.execute('PRAGMA user_version').fetchone()[0]

    def set_user_version(self, v):
        self.conn.execute('PRAGMA user_version=%d' % int(v))

    def counts(self):
        return {kind: self.conn.execute('SELECT count(*) FROM %s' % t.name).fetchone()[0]
                for kind, t in TABLES.items()}

    def empty(self):
        return not any(self.counts().values())

    # -- objects -----------------------------------------------------------

    def items(self, kind):
        t = TABLES[kind]
        rows = self.conn.execute('SELECT * FROM %s' % t.name).fetchall()
        return [t.from_row(r) for r in rows]

    def get(self, kind, obj_id):
        t = TABLES[kind]
        row = self.conn.execute('SELECT * FROM %s WHERE %s = ?' % (t.name, t.key),
                                (str(obj_id),)).fetchone()
        return t.from_row(row) if row is not None else None

    def find(self, kind, name):
        t = TABLES[kind]
        row = self.conn.execute('SELECT * FROM %s WHERE %s = ? ORDER BY rowid LIMIT 1'
                                % (t.name, t.name_column), (name,)).fetchone()
        return t.from_row(row) if row is not None else None

    def _write(self, kind, obj):
        t = TABLES[kind]
        obj_id, cols, extra = t.to_row(_with_defaults(kind, obj))
        names = [t.key] + list(cols) + ['extra']
        self.conn.execute('INSERT OR REPLACE INTO %s (%s) VALUES (%s)'
                          % (t.name, ', '.join(names), ', '.join('?' * len(names))),
                          [obj_id] + list(cols.values()) + [extra])

    def put(self, kind, obj):
        with self.transaction():
            self._write(kind, obj)

    def update(self, kind, obj_id, changes):
        """Apply changes; the new object, or None if it is gone."""
        with self.transaction():
            obj = self.get(kind, obj_id)
            if obj is None:
                return None
            if any(obj.get(k) != v for k, v in changes.items()):
                obj.update(changes)
                self._write(kind, obj)
                obj = self.get(kind, obj_id)
            return obj

    def remove(self, kind, obj_id):
        t = TABLES[kind]
        with self.transaction():
            obj = self.get(kind, obj_id)
            if obj is not None:
                self.conn.execute('DELETE FROM %s WHERE %s = ?' % (t.name, t.key),
                                  (str(obj_id),))
            return obj

    def load(self, inventory):
        """Write a whole inventory ({kind: {id: object}}) in the current transaction."""
        for kind in KINDS:
            for obj in (inventory.get(kind) or {}).values():
                self._write(kind, obj)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on an exception); nests as one."""

    def __init__(self, conn):
        self.conn = conn
        self.outer = False

    def __enter__(self):
        if not self.conn.in_transaction:
            self.conn.execute('BEGIN IMMEDIATE')
            self.outer = True
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.outer:
            return False
        if exc_type is None:
            self.conn.execute('COMMIT')
        else:
            self.conn.execute('ROLLBACK')
        return False


def open_state_database(state_dir):
    """The database of a state directory, created on first use.

    A new database gets the inventory of inventory.json when the state directory has
    one (an engine set up before the database existed: imported once, the file is then
    renamed inventory.json.imported), else the Default data center and cluster."""
    path = os.path.join(state_dir, DB_FILE)
    db = Database(path)
    try:
        os.chmod(path, 0o600)
        if db.user_version == 0:
            legacy = os.path.join(state_dir, LEGACY_INVENTORY)
            inventory = None
            if os.path.exists(legacy):
                try:
                    with open(legacy, encoding='utf-8') as f:
                        inventory = json.load(f)
                except (OSError, ValueError) as e:
                    raise DatabaseError('cannot import %s into the engine database: %s'
                                        % (legacy, e))
            with db.transaction():
                if db.empty():
                    db.load(inventory if inventory is not None else initial_inventory())
                db.set_user_version(SCHEMA_VERSION)
            if inventory is not None:
                os.rename(legacy, legacy + '.imported')
    except Exception:
        db.close()
        raise
    return db
