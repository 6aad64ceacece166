"""The lab engine's inventory in SQLite: oVirt's tables, authoritative columns, the import
of an older inventory.json, durability."""
import json
import os
import sqlite3

import pytest

from ovirt_hosted_engine_setup.lab.engine import database
from ovirt_hosted_engine_setup.lab.engine.state import State, run_setup, write_json

from .engine_proc import ADMIN_PASSWORD, FQDN


@pytest.fixture
def state(tmp_path):
    d = str(tmp_path / 'state')
    run_setup(d, FQDN, ADMIN_PASSWORD)
    st = State(d)
    yield st
    st.close()


def sql(state, statement, *args):
    conn = sqlite3.connect(os.path.join(state.dir, 'engine.db'))
    try:
        with conn:
            return conn.execute(statement, args).fetchall()
    finally:
        conn.close()


def test_setup_makes_the_default_data_center_and_cluster_in_ovirt_tables(state):
    assert sql(state, 'SELECT name FROM storage_pool') == [('Default',)]
    dc_id = sql(state, 'SELECT id FROM storage_pool')[0][0]
    assert sql(state, 'SELECT name, storage_pool_id FROM cluster') == [('Default', dc_id)]
    cl = state.find('clusters', 'Default')
    assert cl['data_center'] == dc_id
    assert not os.path.exists(os.path.join(state.dir, 'inventory.json'))


def test_objects_map_to_the_named_columns(state):
    cl = state.items('clusters')[0]['id']
    state.put('hosts', {'id': 'h1', 'name': 'host1', 'address': '192.168.222.11',
                        'port': 54321, 'cluster': cl, 'spm_id': 2, 'status': 'up',
                        'capabilities': {'hardware_uuid': 'HW-UUID-1', 'cpu_cores': 2}})
    state.put('storage_domains', {'id': 'sd1', 'name': 'hosted_storage', 'type': 'data',
                                  'storage_type': 'nfs', 'status': 'active'})
    state.put('vms', {'id': 'v1', 'name': 'HostedEngine', 'status': 'up'})
    state.put('vms', {'id': 'v2', 'name': 'web', 'status': 'down'})
    state.put('vms', {'id': 'v3', 'name': 'he-old', 'origin': 'hosted_engine'})
    assert sql(state, 'SELECT vds_id, vds_name, host_name, port, cluster_id, vds_spm_id, '
                      'vds_unique_id FROM vds_static') == [
        ('h1', 'host1', '192.168.222.11', 54321, cl, 2, 'HW-UUID-1')]
    assert sql(state, 'SELECT storage_name, storage_domain_type, storage_type FROM '
                      'storage_domain_static') == [('hosted_storage', 1, 1)]
    # oVirt's OriginType: 3 ovirt, 5 hosted_engine, 6 managed_hosted_engine
    assert sql(state, 'SELECT vm_guid, origin FROM vm_static ORDER BY vm_guid') == [
        ('v1', 6), ('v2', 3), ('v3', 5)]
    h = state.get('hosts', 'h1')
    assert (h['address'], h['spm_id'], h['unique_id'], h['capabilities']['cpu_cores']) == (
        '192.168.222.11', 2, 'HW-UUID-1', 2)
    assert state.get('vms', 'v2')['origin'] == 'ovirt'


def test_sql_changes_are_what_the_state_serves(state):
    """No cache: a plain SQL UPDATE/DELETE by another connection is what the next read
    returns, through the same State object."""
    cl = state.items('clusters')[0]['id']
    state.put('hosts', {'id': 'h1', 'name': 'host1', 'address': '10.0.0.1', 'cluster': cl,
                        'spm_id': 1})
    state.put('storage_domains', {'id': 'sd1', 'name': 'hosted_storage', 'type': 'data'})
    state.put('vms', {'id': 'v1', 'name': 'HostedEngine', 'status': 'up'})
    sql(state, "UPDATE vds_static SET host_name = '10.0.0.9', vds_spm_id = 4")
    sql(state, "UPDATE storage_domain_static SET storage_name = storage_name || '_old'")
    sql(state, 'DELETE FROM vm_static WHERE origin IN (5, 6)')
    h = state.get('hosts', 'h1')
    assert (h['address'], h['spm_id']) == ('10.0.0.9', 4)
    assert state.find('storage_domains', 'hosted_storage_old')['id'] == 'sd1'
    assert state.find('storage_domains', 'hosted_storage') is None
    assert state.items('vms') == []
    # an update through the State keeps the SQL change it does not touch
    state.update('hosts', 'h1', status='up')
    assert state.get('hosts', 'h1')['address'] == '10.0.0.9'


def test_update_and_remove(state):
    cl = state.items('clusters')[0]['id']
    state.put('hosts', {'id': 'h1', 'name': 'host1', 'address': 'a', 'cluster': cl})
    got = state.update('hosts', 'h1', status='maintenance', spm_id=3)
    assert (got['status'], got['spm_id']) == ('maintenance', 3)
    assert state.update('hosts', 'nope', status='up') is None
    assert state.remove('hosts', 'h1')['name'] == 'host1'
    assert state.remove('hosts', 'h1') is None
    assert state.items('hosts') == []


def test_changes_are_committed_at_once_and_survive(state):
    state.put('vms', {'id': 'v9', 'name': 'kept', 'status': 'down'})
    # another process's view, with the first connection still open
    assert sql(state, "SELECT vm_name FROM vm_static WHERE vm_guid = 'v9'") == [('kept',)]
    state.close()
    again = State(state.dir)
    try:
        assert again.get('vms', 'v9')['name'] == 'kept'
        conn = again.db.conn
        assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
        assert conn.execute('PRAGMA synchronous').fetchone()[0] == 2     # FULL
    finally:
        again.close()


def test_older_inventory_json_is_imported_once(tmp_path):
    d = str(tmp_path / 'state')
    run_setup(d, FQDN, ADMIN_PASSWORD)
    # an engine set up before the database: setup.json, pki/ and inventory.json
    os.unlink(os.path.join(d, 'engine.db'))
    for suffix in ('-wal', '-shm'):
        if os.path.exists(os.path.join(d, 'engine.db' + suffix)):
            os.unlink(os.path.join(d, 'engine.db' + suffix))
    inv = database.initial_inventory()
    cl = next(iter(inv['clusters']))
    inv['hosts']['h1'] = {'id': 'h1', 'name': 'old-host', 'address': '10.1.1.1',
                          'cluster': cl, 'spm_id': 1, 'status': 'up'}
    inv['vms']['v1'] = {'id': 'v1', 'name': 'HostedEngine', 'status': 'up'}
    write_json(os.path.join(d, 'inventory.json'), inv)
    st = State(d)
    try:
        assert st.get('hosts', 'h1')['address'] == '10.1.1.1'
        assert st.get('vms', 'v1')['origin'] == 'managed_hosted_engine'
        assert [c['id'] for c in st.items('clusters')] == [cl]
    finally:
        st.close()
    assert not os.path.exists(os.path.join(d, 'inventory.json'))
    assert os.path.exists(os.path.join(d, 'inventory.json.imported'))
    # imported once: a change made since is not undone by a second open
    sql(State(d), "DELETE FROM vds_static")
    st = State(d)
    try:
        assert st.items('hosts') == []
    finally:
        st.close()


def test_no_database_before_setup(tmp_path):
    d = str(tmp_path / 'state')
    os.makedirs(d)
    st = State(d)
    assert not st.ready
    assert not os.path.exists(os.path.join(d, 'engine.db'))


def test_restored_state_is_not_served_before_engine_setup(tmp_path):
    d = str(tmp_path / 'state')
    run_setup(d, FQDN, ADMIN_PASSWORD)
    with open(os.path.join(d, 'setup.json')) as f:
        record = json.load(f)
    record.update(setup_done=False, restored={'fqdn': FQDN, 'version': '4.5.6'})
    write_json(os.path.join(d, 'setup.json'), record)
    assert not State(d).ready
    assert run_setup(d, FQDN, 'new-' + ADMIN_PASSWORD) == 'restored'
    st = State(d)
    try:
        assert st.ready and st.check_admin('admin@internal', 'new-' + ADMIN_PASSWORD)
        assert st.setup['restored_from']['version'] == '4.5.6'
    finally:
        st.close()
