"""The engine's bookkeeping of what host agents report, on a real state directory."""
import pytest

from ovirt_hosted_engine_setup.lab.engine import xmlapi
from ovirt_hosted_engine_setup.lab.engine.server import Engine
from ovirt_hosted_engine_setup.lab.engine.state import State, check_password, run_setup

from .engine_proc import ADMIN_PASSWORD, FQDN


@pytest.fixture
def engine(tmp_path):
    run_setup(str(tmp_path / 'state'), FQDN, ADMIN_PASSWORD)
    e = Engine(str(tmp_path / 'state'))
    assert e.refresh()
    return e


def stats(vm_id, status, name='HostedEngine'):
    return {'vmId': vm_id, 'vmName': name, 'status': status, 'memSize': 4096}


def test_vms_follow_the_hosts_that_report_them(engine, tmp_path):
    engine.record_vms('h1', [stats('vm-1', 'Up')])
    vm = engine.state.get('vms', 'vm-1')
    assert (vm['name'], vm['status'], vm['host'], vm['memory_mib']) == ('HostedEngine', 'up',
                                                                        'h1', 4096)
    # h2 reports the VM as Down (its leftover definition): h1 still runs it
    engine.record_vms('h2', [stats('vm-1', 'Down')])
    assert engine.state.get('vms', 'vm-1')['host'] == 'h1'
    # h1 stops reporting it, h2 starts it
    engine.record_vms('h1', [])
    assert engine.state.get('vms', 'vm-1')['status'] == 'down'
    engine.record_vms('h2', [stats('vm-1', 'Powering up')])
    vm = engine.state.get('vms', 'vm-1')
    assert (vm['status'], vm['host']) == ('powering_up', 'h2')
    engine.forget_vms_of('h2')
    assert engine.state.get('vms', 'vm-1')['status'] == 'unknown'
    # written through: a new State on the same directory sees it
    assert State(engine.state.dir).get('vms', 'vm-1')['host'] == 'h2'


def test_password_hash_is_not_the_password(engine):
    admin = engine.state.setup['admin']
    assert ADMIN_PASSWORD not in str(admin)
    assert check_password(ADMIN_PASSWORD, admin['scrypt'])
    assert not check_password(ADMIN_PASSWORD + 'x', admin['scrypt'])
    assert engine.state.check_admin('admin@internal', ADMIN_PASSWORD)
    assert not engine.state.check_admin('root', ADMIN_PASSWORD)


def test_search_syntax():
    fields = {'name': lambda o: o['name'], 'status': lambda o: o['status']}
    objs = [{'name': 'host1', 'status': 'up'}, {'name': 'host2', 'status': 'non_responsive'},
            {'name': 'other', 'status': 'up'}]

    def names(q):
        m = xmlapi.search_filter(q, fields)
        return [o['name'] for o in objs if m(o)]
    assert names('name=host1') == ['host1']
    assert names('name=HOST*') == ['host1', 'host2']
    assert names('name=host* and status=up') == ['host1']
    assert names('status!=up') == ['host2']
    assert names('name="other"') == ['other']
    assert names('') == ['host1', 'host2', 'other']
    with pytest.raises(xmlapi.BadRequest):
        xmlapi.search_filter('color=red', fields)
    with pytest.raises(xmlapi.BadRequest):
        xmlapi.search_filter('name', fields)


def test_install_cut_by_a_restart_is_install_failed(engine):
    """The root password lived in memory only: a restarted engine cannot go on with an
    install; the host is install_failed and says to install it again."""
    cl = engine.state.items('clusters')[0]['id']
    engine.state.put('hosts', {'id': 'h-inst', 'name': 'h', 'address': '127.0.0.1',
                               'cluster': cl, 'status': 'installing', 'install_running': True})
    engine.state.put('hosts', {'id': 'h-up', 'name': 'u', 'address': '127.0.0.2',
                               'cluster': cl, 'status': 'up', 'spm_id': 1})
    engine.monitor = lambda host_id: None       # no host agent to poll here
    engine.start_monitors()
    h = engine.state.get('hosts', 'h-inst')
    assert (h['status'], h['install_running']) == ('install_failed', False)
    assert h['status_detail'] == ('the engine restarted during the installation: install the '
                                  'host again')
    assert h['spm_id'] == 2          # host ids given to hosts of an older inventory
    assert engine.state.get('hosts', 'h-up')['spm_id'] == 1
