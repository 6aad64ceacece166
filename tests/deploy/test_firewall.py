"""The firewall answer of the deploy (OVEHOSTED_NETWORK/firewallManager) applied.

nft runs only inside network namespaces these tests create (``ip netns add``); the
machine's own ruleset is compared before and after. In a namespace the real runner runs the
deploy's firewall plugin (plugins/gr-he-setup/network/firewall.py) with the preview plugin:
the preview says what is opened, misc opens it and records it, a later failing misc step
rolls it back, none leaves the firewall as it is; ovirt-hosted-engine-cleanup removes it.
The question is asked through the real dialog. firewalld is not installed here: its commands
are checked against a stand-in firewall-cmd that keeps firewalld's permanent state in a file.
"""
import io
import json
import os
import subprocess
import sys
import uuid

import pytest

from ovirt_hosted_engine_setup.api.errors import ServerError
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import firewall
from ovirt_hosted_engine_setup.runner import Transaction
from ovirt_hosted_engine_setup.runner.dialog import make_dialog
from ovirt_hosted_engine_setup.runner.log import SecretFilter

from . import plugin_packages

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NETWORK_DIR = os.path.join(TOP, 'plugins', 'gr-he-setup', 'network')
PREVIEW_PLUGIN = os.path.join(TOP, 'plugins', 'gr-he-setup', 'core', 'preview.py')
CLEANUP = os.path.join(TOP, 'bin', 'ovirt-hosted-engine-cleanup')
RECORD = '/var/lib/ovirt-hosted-engine-setup/firewall.json'
PORTS = '22/tcp (SSH), 54321/tcp (host agent), 16514/tcp (libvirt TLS), 5900-6923/tcp ' \
        '(VM consoles, VNC and SPICE)'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='network namespaces need root')


def root_ruleset():
    return subprocess.run(['nft', 'list', 'ruleset'], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope='module', autouse=True)
def root_ruleset_unchanged():
    before = root_ruleset()
    yield
    assert root_ruleset() == before


@pytest.fixture
def netns():
    name = 'he-fw-test-%s' % uuid.uuid4().hex[:8]
    subprocess.run(['ip', 'netns', 'add', name], check=True)
    try:
        yield name
    finally:
        subprocess.run(['ip', 'netns', 'del', name], check=False)


def in_ns(ns, *argv, **kw):
    kw.setdefault('capture_output', True)
    kw.setdefault('text', True)
    kw.setdefault('timeout', 120)
    return subprocess.run(['ip', 'netns', 'exec', ns] + list(argv), **kw)


def ns_table(ns):
    r = in_ns(ns, 'nft', 'list', 'table', 'inet', 'ovirt_hosted_engine')
    return r.stdout if r.returncode == 0 else None


def load_network_plugins():
    return plugin_packages.load('gr-he-setup', 'network')


# -- the ports and the answer -------------------------------------------------------------

def test_ports_of_a_hosted_engine_host(monkeypatch):
    monkeypatch.delenv('OVIRT_HOSTED_ENGINE_HOSTD_PORT', raising=False)
    ports = firewall.host_ports()
    assert firewall.describe_ports(ports) == PORTS
    monkeypatch.setenv('OVIRT_HOSTED_ENGINE_HOSTD_PORT', '54399')
    assert [firewall.port_text(p) for p in firewall.host_ports(ssh_port=2222)] == [
        '2222/tcp', '54399/tcp', '16514/tcp', '5900-6923/tcp']
    rules = firewall.nft_ruleset(ports)
    assert 'policy drop;' in rules and 'tcp dport 54321 accept' in rules
    assert 'tcp dport 5900-6923 accept' in rules and 'ct state established,related accept' in rules
    assert rules.splitlines()[-3].strip() == 'reject with icmpx type admin-prohibited'


class GlusterClient:
    """The host agent's answer to GlusterVolume.list without a server (the local glusterd);
    the verb itself runs against a real glusterd in tests/hostd/test_gluster.py."""

    def __init__(self, error=None):
        self.error = error
        self.calls = []

    def call(self, verb, **params):
        self.calls.append((verb, params))
        if self.error:
            raise self.error
        return {'volumes': {}}


@pytest.mark.parametrize('client,gluster', [
    (GlusterClient(), True),
    (GlusterClient(ServerError(4105, 'gluster volume info failed (exit 1): Connection '
                                     'failed. Please check if gluster daemon is operational.')),
     False),
    (GlusterClient(ServerError(-32601, 'Method not found: GlusterVolume.list')), False),
    (None, False),
])
def test_a_gluster_server_opens_glusterd_and_its_bricks(monkeypatch, client, gluster):
    monkeypatch.delenv('OVIRT_HOSTED_ENGINE_HOSTD_PORT', raising=False)
    plugin = load_network_plugins().firewall.Plugin(FakeContext({c.VDSMEnv.CLIENT: client}))
    ports = [firewall.port_text(p) for p in plugin.ports()]
    assert ports == ['22/tcp', '54321/tcp', '16514/tcp', '5900-6923/tcp'] + (
        ['24007-24008/tcp', '49152-60999/tcp'] if gluster else [])
    plugin.ports()
    if client is not None:
        assert client.calls == [('GlusterVolume.list', {})]     # asked once per deploy
    if gluster:
        assert 'tcp dport 24007-24008 accept comment "glusterd"' in firewall.nft_ruleset(
            plugin.ports())


@pytest.mark.parametrize('value,found,result', [
    ('nftables', 'nftables', 'nftables'), ('NFT', 'nftables', 'nftables'),
    ('none', None, 'none'), ('None', 'firewalld', 'none'),
    ('firewalld', 'firewalld', 'firewalld'),
])
def test_accepted_answers(value, found, result):
    assert firewall.check_manager(value, found) == result


@pytest.mark.parametrize('value,found,message', [
    ('iptables', 'nftables', "iptables is not supported: answer nftables (Debian's iptables "
     "is nftables underneath), firewalld or none"),
    ('ufw', 'nftables', 'not a firewall manager: answer nftables, firewalld or none'),
    ('nftables', None, 'neither nft nor firewalld is on this host: install nftables (apt-get '
     'install nftables) or firewalld, or answer none'),
    ('nftables', 'firewalld', 'firewalld runs on this host and would still reject the ports: '
     'answer firewalld, or none'),
    ('firewalld', 'nftables', 'firewalld is not running on this host: start it (systemctl '
     'start firewalld), or answer nftables or none'),
])
def test_refused_answers(value, found, message):
    with pytest.raises(ValueError) as e:
        firewall.check_manager(value, found)
    assert str(e.value) == message


class FakeContext:
    def __init__(self, env, stdin=''):
        self.environment = env
        self.main_transaction = Transaction()
        self.out = io.StringIO()
        self.dialog = make_dialog('human', env, SecretFilter(), io.StringIO(stdin), self.out)


def ask(monkeypatch, tmp_path, stdin, value=None, with_nft=True):
    """The network section's firewall question; with_nft False: a host without nft and
    without firewalld."""
    if not with_nft:
        empty = tmp_path / 'empty-bin'
        empty.mkdir()
        monkeypatch.setenv('PATH', str(empty))
        monkeypatch.setattr(firewall, 'EXTRA_PATH', '')
    network = load_network_plugins().network
    env = {c.NetworkEnv.FIREWALL_MANAGER: value}
    ctx = FakeContext(env, stdin)
    error = None
    try:
        network.Plugin(ctx)._firewall()
    except network.NetworkCheckError as e:
        error = str(e)
    return env[c.NetworkEnv.FIREWALL_MANAGER], ctx.out.getvalue(), error


def test_question_where_nft_is_installed(monkeypatch, tmp_path):
    value, out, _ = ask(monkeypatch, tmp_path, 'Yes\n')
    assert 'nftables was detected on your computer, do you wish setup to configure it? ' \
           '(Yes, No)[Yes]: ' in out
    assert value == 'nftables'
    assert ask(monkeypatch, tmp_path, 'No\n')[0] == 'none'
    assert ask(monkeypatch, tmp_path, '\n')[0] == 'nftables'


def test_question_without_nft_or_firewalld_refuses_yes(monkeypatch, tmp_path):
    value, out, _ = ask(monkeypatch, tmp_path, 'Yes\nNo\n', with_nft=False)
    assert 'Neither nftables (nft) nor firewalld was found on this host' in out
    assert '(Yes, No)[No]: ' in out
    assert ('[ ERROR ] Invalid value: neither nft nor firewalld is on this host: install '
            'nftables (apt-get install nftables) or firewalld, or answer No\n') in out
    assert value == 'none'


def test_answer_file_value_is_checked(monkeypatch, tmp_path):
    value, out, error = ask(monkeypatch, tmp_path, '', value='iptables')
    assert out == ''
    assert error == ("OVEHOSTED_NETWORK/firewallManager='iptables': iptables is not "
                     "supported: answer nftables (Debian's iptables is nftables underneath), "
                     "firewalld or none")
    assert ask(monkeypatch, tmp_path, '', value='NFTables')[0] == 'nftables'
    _, _, error = ask(monkeypatch, tmp_path, '', value='nftables', with_nft=False)
    assert error == ("OVEHOSTED_NETWORK/firewallManager='nftables': neither nft nor firewalld "
                     "is on this host: install nftables (apt-get install nftables) or "
                     "firewalld, or answer none")


# -- the deploy's plugin run by the runner in a namespace ----------------------------------

RUN = r'''
import io, sys
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.runner.context import Context
out = io.StringIO()
ctx = Context(sys.argv[2].split(','), [sys.argv[1]], assignments=sys.argv[4:],
              keys=c.ALL_KEYS, log_dir=sys.argv[3], log_prefix='fw',
              stdin=io.StringIO(''), stdout=out)
code = ctx.run()
sys.stdout.write(out.getvalue())
sys.exit(code)
'''

PROBE = r'''
import json, os, subprocess
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event


class Plugin(PluginBase):
    @event(stage=Stages.MISC, name='test.probe', after=(c.Events.FIREWALL_AVAILABLE,))
    def _probe(self):
        r = subprocess.run(['nft', 'list', 'table', 'inet', 'ovirt_hosted_engine'],
                           capture_output=True, text=True)
        with open(os.environ['PROBE_OUT'], 'w') as f:
            json.dump({'table': r.stdout if r.returncode == 0 else None,
                       'record': os.path.exists(paths.FIREWALL_RECORD)}, f)
'''

FAIL = r'''
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event


class Plugin(PluginBase):
    @event(stage=Stages.MISC, after=('test.probe',))
    def _fail(self):
        raise RuntimeError('a later step failed')
'''


class Deploy:
    def __init__(self, ns, tmp_path):
        self.ns = ns
        self.tmp = tmp_path
        self.prefix = str(tmp_path / 'root')
        self.plugins = tmp_path / 'plugins'
        for group, files in (('gr-fw', {'firewall': open(os.path.join(NETWORK_DIR,
                                                                      'firewall.py')).read(),
                                        'preview': open(PREVIEW_PLUGIN).read(),
                                        'probe': PROBE}),
                             ('gr-fail', {'fail': FAIL})):
            for name, text in files.items():
                d = self.plugins / group / name
                d.mkdir(parents=True)
                (d / '__init__.py').write_text(text)
        self.env = {k: v for k, v in os.environ.items() if k != 'OVIRT_HOSTED_ENGINE_HOSTD_PORT'}
        self.env.update(OVIRT_HOSTED_ENGINE_PREFIX=self.prefix, TERM='dumb',
                        PROBE_OUT=str(tmp_path / 'probe.json'))
        self.record = self.prefix + RECORD

    def run(self, manager, fail=False):
        groups = 'gr-fw,gr-fail' if fail else 'gr-fw'
        return in_ns(self.ns, sys.executable, '-c', RUN, str(self.plugins), groups,
                     str(self.tmp / 'log'), 'OVEHOSTED_CORE/confirmSettings=bool:True',
                     'OVEHOSTED_NETWORK/firewallManager=str:%s' % manager, env=self.env)

    def probe(self):
        with open(self.tmp / 'probe.json') as f:
            return json.load(f)

    def cleanup(self):
        env = dict(self.env, OVIRT_HOSTED_ENGINE_HOSTD_PORT='1',
                   OVIRT_HOSTED_ENGINE_HOSTD_ROOT=str(self.tmp / 'hostd'),
                   SANLOCK_RUN_DIR=str(self.tmp / 'no-sanlock'))
        return in_ns(self.ns, sys.executable, CLEANUP, '-q', env=env, timeout=300)


@pytest.fixture
def deploy(netns, tmp_path):
    return Deploy(netns, tmp_path)


def test_yes_applies_shows_and_records_then_cleanup_removes(deploy):
    r = deploy.run('nftables')
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    preview = out[out.index('--== CONFIGURATION PREVIEW ==--'):]
    assert '%-35s: %s\n' % ('Firewall manager', 'nftables') in preview
    assert ('%-35s: open 22, 54321, 16514, 5900-6923/tcp; reject other input (nftables)\n'
            % 'Firewall') in preview
    assert '[ INFO  ] Firewall: opened %s (nftables table inet ovirt_hosted_engine; ' \
           'recorded in %s)' % (PORTS, deploy.record) in out
    table = ns_table(deploy.ns)
    assert table is not None and 'policy drop;' in table
    for port in ('22', '54321', '16514', '5900-6923'):
        assert 'tcp dport %s accept' % port in table, table
    record = json.load(open(deploy.record))
    assert record['manager'] == 'nftables' and record['table'] == 'inet ovirt_hosted_engine'
    assert [p['port'] for p in record['ports']] == ['22/tcp', '54321/tcp', '16514/tcp',
                                                    '5900-6923/tcp']
    assert record['ruleset'] == table

    # the same deploy again replaces the table (one table, not two)
    assert deploy.run('nftables').returncode == 0
    assert ns_table(deploy.ns) == table

    r = deploy.cleanup()
    out = r.stdout + r.stderr
    assert '[ INFO  ] 5/6 Firewall: nftables table inet ovirt_hosted_engine deleted' in out, out
    assert ns_table(deploy.ns) is None
    assert not os.path.exists(deploy.record)
    # nothing left: a second cleanup has no firewall step
    out = deploy.cleanup().stdout
    assert 'Firewall' not in out and '5/5 Configuration files' in out, out


def test_a_later_failing_misc_step_rolls_the_firewall_back(deploy):
    r = deploy.run('nftables', fail=True)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and 'a later step failed' in out, out
    during = deploy.probe()
    assert during['record'] and 'tcp dport 54321 accept' in during['table']
    assert ns_table(deploy.ns) is None
    assert not os.path.exists(deploy.record)
    assert 'Firewall rules of this deploy removed (table inet ovirt_hosted_engine deleted)' \
        in open(sorted((deploy.tmp / 'log').iterdir())[-1]).read()


def test_rollback_restores_a_table_left_by_an_earlier_deploy(deploy):
    assert deploy.run('nftables').returncode == 0
    before = ns_table(deploy.ns)
    assert deploy.run('nftables', fail=True).returncode == 1
    assert ns_table(deploy.ns) == before
    assert not os.path.exists(deploy.record)


def test_no_leaves_the_firewall_as_it_is_and_says_so(deploy):
    # a rule of the admin's own stays as it is
    assert in_ns(deploy.ns, 'nft', 'add', 'table', 'inet', 'admin').returncode == 0
    before = in_ns(deploy.ns, 'nft', 'list', 'ruleset').stdout
    r = deploy.run('none')
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert '%-35s: none: the firewall is left as it is\n' % 'Firewall' in out
    assert ('[ INFO  ] The firewall is left as it is (OVEHOSTED_NETWORK/firewallManager=none): '
            'this host needs %s open' % PORTS) in out
    assert in_ns(deploy.ns, 'nft', 'list', 'ruleset').stdout == before
    assert not os.path.exists(deploy.record)
    assert deploy.probe() == {'table': None, 'record': False}


# -- firewalld, against a stand-in firewall-cmd ---------------------------------------------

FAKE_FIREWALL_CMD = r'''#!%s
"""firewall-cmd as firewalld answers it, permanent state in $FAKE_FIREWALLD (JSON)."""
import json, os, sys
path = os.environ['FAKE_FIREWALLD']
st = json.load(open(path))
args = sys.argv[1:]
with open(path + '.log', 'a') as f:
    f.write(' '.join(args) + '\n')
opts = dict(a[2:].split('=', 1) if '=' in a else (a[2:], True) for a in args)
out = []
def fail(code, text):
    sys.stderr.write('Error: %%s\n' %% text)
    sys.exit(code)
if os.environ.get('FAKE_FIREWALLD_FAIL') in opts:
    fail(34, 'INVALID_ZONE')
if 'state' in opts:
    out.append('running')
elif 'get-default-zone' in opts:
    out.append(st['default'])
elif 'get-zones' in opts:
    out.append(' '.join(sorted(st['zones'])))
elif 'reload' in opts:
    st['reloads'] += 1
elif 'get-services' in opts:
    out.append(' '.join(sorted(st['services'])))
elif 'new-service' in opts:
    if opts['new-service'] in st['services']:
        fail(26, 'NAME_CONFLICT')
    st['services'][opts['new-service']] = []
elif 'delete-service' in opts:
    st['services'].pop(opts['delete-service'])
elif 'service' in opts:
    ports = st['services'].get(opts['service'])
    if ports is None:
        fail(101, 'INVALID_SERVICE')
    if 'add-port' in opts:
        ports.append(opts['add-port'])
    elif 'remove-port' in opts:
        ports.remove(opts['remove-port'])
    elif 'get-ports' in opts:
        out.append(' '.join(ports))
elif 'zone' in opts:
    zone = st['zones'][opts['zone']]
    if 'list-services' in opts:
        out.append(' '.join(zone))
    elif 'add-service' in opts:
        if opts['add-service'] not in st['services']:
            fail(101, 'INVALID_SERVICE')
        zone.append(opts['add-service'])
    elif 'remove-service' in opts:
        zone.remove(opts['remove-service'])
json.dump(st, open(path, 'w'))
print('\n'.join(out) if out else 'success')
'''


@pytest.fixture
def firewalld(tmp_path, monkeypatch):
    bin_dir = tmp_path / 'fw-bin'
    bin_dir.mkdir()
    exe = bin_dir / 'firewall-cmd'
    exe.write_text(FAKE_FIREWALL_CMD % sys.executable)
    exe.chmod(0o755)
    state = tmp_path / 'firewalld.json'
    state.write_text(json.dumps({'default': 'public', 'reloads': 0,
                                 'zones': {'public': ['ssh', 'dhcpv6-client'], 'trusted': []},
                                 'services': {'ssh': ['22/tcp'], 'dhcpv6-client': []}}))
    monkeypatch.setenv('PATH', str(bin_dir))
    monkeypatch.setenv('FAKE_FIREWALLD', str(state))
    monkeypatch.setattr(firewall, 'EXTRA_PATH', '')
    return lambda: json.loads(state.read_text())


def test_firewalld_service_in_the_default_zone_applied_and_undone(firewalld, tmp_path):
    assert firewall.detect() == 'firewalld'
    ports = firewall.host_ports(agent_port=54321)
    applied = firewall.apply('firewalld', ports)
    st = firewalld()
    assert st['services']['ovirt-hosted-engine'] == ['22/tcp', '54321/tcp', '16514/tcp',
                                                     '5900-6923/tcp']
    assert st['zones']['public'] == ['ssh', 'dhcpv6-client', 'ovirt-hosted-engine']
    assert st['reloads'] == 1
    record = str(tmp_path / 'state' / 'firewall.json')
    firewall.write_record(applied, record)
    assert json.load(open(record))['zone'] == 'public'
    # rollback of a failed deploy
    applied.undo()
    st = firewalld()
    assert 'ovirt-hosted-engine' not in st['services'] and st['zones']['public'] == [
        'ssh', 'dhcpv6-client']
    # cleanup after a deploy
    firewall.write_record(firewall.apply('firewalld', ports), record)
    assert firewall.pending(record)
    assert firewall.undo_recorded(record) == \
        'firewalld service ovirt-hosted-engine removed from zone public'
    st = firewalld()
    assert 'ovirt-hosted-engine' not in st['services'] and 'ovirt-hosted-engine' not in \
        st['zones']['public']
    assert not os.path.exists(record) and not firewall.pending(record)


def test_firewalld_failure_is_one_line_and_leaves_nothing(firewalld, monkeypatch):
    monkeypatch.setenv('FAKE_FIREWALLD_FAIL', 'add-service')   # firewalld refuses the zone
    with pytest.raises(firewall.FirewallError) as e:
        firewall.apply('firewalld', firewall.host_ports(agent_port=54321))
    assert '\n' not in str(e.value)
    assert str(e.value).startswith('firewall-cmd --permanent --zone=public '
                                   '--add-service=ovirt-hosted-engine failed (exit 34: '
                                   'Error: INVALID_ZONE): answer none')
    assert str(e.value).endswith('answer none and open the ports (%s) by hand' % PORTS)
    st = firewalld()
    assert 'ovirt-hosted-engine' not in st['services']
    assert st['zones']['public'] == ['ssh', 'dhcpv6-client']
