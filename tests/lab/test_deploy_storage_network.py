"""The deploy's storage and network sections in a lab host: answers checked through the real
host agent of host1, the configuration preview, the errors of bad answers (one line, exit 1,
nothing left connected or created), and the management bridge and storage domain of misc
created and removed again when a later misc step fails.

The deploy runs inside host1 from answer files. Most runs load the deploy's core, storage
and network plugins only (the rest of the deploy is not needed to reach the preview or the
storage domain); one run uses the real `hosted-engine --deploy`.
"""
import json
import os
import shutil
import tempfile

import pytest

from ovirt_hosted_engine_setup.runner import config, typed

from .conftest import lab  # noqa: F401 (the module's lab fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGINS = os.path.join(TOP, 'plugins')
EXAMPLE = os.path.join(TOP, 'examples', 'lab-answers.conf')
GATEWAY = '192.168.222.1'
HOST1 = '192.168.222.11'

# runs the deploy's runner as `hosted-engine --deploy` does, with a chosen plugin set
HARNESS = '''
import sys
from ovirt_hosted_engine_setup.deploy import constants
from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.cli import parse_deploy_args
from ovirt_hosted_engine_setup.runner.context import Context
plugin_dir, groups = sys.argv[1], sys.argv[2].split(',')
ctx = Context(groups=groups, plugin_path=[plugin_dir],
              assignments=parse_deploy_args(sys.argv[3:]), keys=constants.ALL_KEYS,
              log_dir=paths.SETUP_LOG_DIR, log_prefix='ovirt-hosted-engine-setup')
sys.exit(ctx.run())
'''

# a later misc step that records what exists, then fails
FAIL_PLUGIN = '''
import json, os, subprocess
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.he_storage import domain, layout
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event

class Plugin(PluginBase):
    @event(stage=Stages.MISC, after=(c.Events.STORAGE_AVAILABLE,),
           before=(c.Events.IMAGE_AVAILABLE,))
    def _fail(self):
        conf = self.environment[c.StorageEnv.DOMAIN_CONF]
        vols = layout.volume_paths(conf)
        seen = {'bridge': subprocess.run(['ip', 'link', 'show', 'ovirtmgmt'],
                                         capture_output=True).returncode == 0,
                'conf': conf,
                'volumes': {k: os.path.exists(v) for k, v in vols.items()},
                'sd_env': self.environment[c.StorageEnv.SD_UUID]}
        with open(os.environ['SEEN_FILE'], 'w') as f:
            json.dump(seen, f)
        raise RuntimeError('injected failure after the storage domain (test)')
'''

STATE = r'''
import json, os, subprocess, sys
mnt = '/rhev/data-center/mnt'
links = json.loads(subprocess.run(['ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0'],
                                  capture_output=True, text=True).stdout or '[]')
routes = subprocess.run(['ip', '-4', 'route', 'show', 'default'], capture_output=True,
                        text=True).stdout
print(json.dumps({
    'mnt': sorted(os.listdir(mnt)) if os.path.isdir(mnt) else [],
    'mounts': [line.split()[1] for line in open('/proc/self/mounts')
               if '/rhev/data-center' in line.split()[1]],
    'bridge': subprocess.run(['ip', 'link', 'show', 'ovirtmgmt'],
                             capture_output=True).returncode == 0,
    'eth0': [a['local'] for l in links for a in l.get('addr_info', [])],
    'routes': routes,
    'storage': sorted(os.listdir(sys.argv[1])) if os.path.isdir(sys.argv[1]) else None,
}))
'''

# a storage domain made as misc makes it (to find it again as an existing domain)
MAKE_DOMAIN = r'''
import json, sys
from ovirt_hosted_engine_setup.api.client import Client
from ovirt_hosted_engine_setup.he_storage import domain, layout
client = Client('localhost', 54321, timeout=120)
if sys.argv[1] == 'create':
    conf = domain.prepare_domain(client, {'storage': sys.argv[2], 'domain_type': 'localfs',
                                                  'vm_disk_size': 1 << 30})
    print(json.dumps(conf))
else:
    domain.destroy_domain(client, json.loads(sys.argv[2]))
client.close()
'''


class Deploy:
    """Answer files and deploy runs inside host1 of the lab."""

    def __init__(self, lab, work):  # noqa: F811
        self.lab = lab
        self.work = work
        self.plugins = os.path.join(work, 'plugins')
        self.harness = os.path.join(work, 'deploy.py')
        self.count = 0
        with open(self.harness, 'w') as f:
            f.write(HARNESS)
        links = {'gr-he-common': ('core', 'titles', 'vdsmd'),
                 'gr-he-setup': ('core', 'storage', 'network', 'additional')}
        for group, names in links.items():
            os.makedirs(os.path.join(self.plugins, group))
            for name in names:
                os.symlink(os.path.join(PLUGINS, group, name),
                           os.path.join(self.plugins, group, name))
        fail = os.path.join(self.plugins, 'gr-he-test', 'fail')
        os.makedirs(fail)
        with open(os.path.join(fail, '__init__.py'), 'w') as f:
            f.write('from . import fail  # noqa: F401\n')
        with open(os.path.join(fail, 'fail.py'), 'w') as f:
            f.write(FAIL_PLUGIN)
        # the keys of the other sections, as the example answer file gives them
        self.base = {key: value for section, key, value, _where, _w in
                     config.parse_file(EXAMPLE) if section == 'environment:default'}
        self.base.update({
            'OVEHOSTED_CORE/confirmSettings': False,
            'OVEHOSTED_CORE/answerFileDir': os.path.join(work, 'answers'),
            'OVEHOSTED_CORE/acceptedWarnings': ['low-memory', 'low-vcpus', 'small-disk'],
            'OVEHOSTED_STORAGE/domainType': 'localfs',
            'OVEHOSTED_STORAGE/storageDomainConnection': self.storage_dir('good'),
            'OVEHOSTED_STORAGE/imgSizeGB': 1,
            'OVEHOSTED_STORAGE/sanlockIoTimeout': 2,
            'OVEHOSTED_NETWORK/bridgeIf': 'eth0',
            'OVEHOSTED_NETWORK/gateway': GATEWAY,
            'OVEHOSTED_NETWORK/network_test': 'ping',
            'OVEHOSTED_NETWORK/host_name': 'host1.lab.test',
        })

    def storage_dir(self, name, create=True):
        path = os.path.join(self.work, 'storage-' + name)
        if create:
            os.makedirs(path, exist_ok=True)
        return path

    def answers(self, **changes):
        """An answer file: the base answers with changes (KEY=None removes KEY)."""
        values = dict(self.base)
        for key, value in changes.items():
            key = key.replace('__', '/')
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        self.count += 1
        path = os.path.join(self.work, 'answers-%d.conf' % self.count)
        with open(path, 'w') as f:
            f.write('[environment:default]\n')
            for key, value in values.items():
                f.write('%s=%s\n' % (key, typed.format(value)))
        return path

    def run(self, answers, stdin='', groups=('gr-he-common', 'gr-he-setup'), env=None,
            real_command=False):
        cmd = (['hosted-engine', '--deploy'] if real_command else
               ['python', self.harness, self.plugins, ','.join(groups)])
        cmd = (['env'] + ['%s=%s' % kv for kv in (env or {}).items()] if env else []) + cmd
        return self.lab.exec('host1', *cmd, '--config-append=%s' % answers, check=False,
                             input=stdin, timeout=600)

    def state(self, storage):
        r = self.lab.exec('host1', 'python', '-c', STATE, storage)
        return json.loads(r.stdout)

    def sh(self, script, check=True):
        return self.lab.exec('host1', 'sh', '-c', script, check=check)


@pytest.fixture(scope='module')
def deploy(lab):  # noqa: F811
    work = tempfile.mkdtemp(prefix='he-deploy-sn-', dir='/var/tmp')
    try:
        yield Deploy(lab, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def errors(r):
    """The [ ERROR ] lines (after a prompt when the error follows a question), without the
    final 'deployment failed/aborted' line."""
    return [line[line.index('[ ERROR ]'):] for line in r.stdout.splitlines()
            if '[ ERROR ]' in line and 'Hosted Engine deployment' not in line]


def one_error(r):
    lines = errors(r)
    assert r.returncode == 1, r.stdout + r.stderr
    assert len(lines) == 1, r.stdout
    return lines[0]


def assert_nothing_left(deploy, storage):
    """No storage connected, no domain written, no bridge, eth0 as the lab made it."""
    st = deploy.state(storage)
    assert st['mnt'] == [] and st['mounts'] == [], st
    assert st['storage'] in ([], None), st
    assert not st['bridge'], st
    assert HOST1 in st['eth0'], st
    assert 'default via %s dev eth0' % GATEWAY in st['routes'], st


def test_good_answers_reach_the_preview(deploy):
    storage = deploy.storage_dir('good')
    r = deploy.run(deploy.answers())
    out = r.stdout
    assert '--== STORAGE CONFIGURATION ==--' in out and '--== NETWORK CONFIGURATION ==--' in out
    assert '[ INFO  ] Checking the storage %s (localfs) through the host agent' % storage in out
    assert 'GiB free' in out
    assert '[WARNING] The VM disk size 1 GB is below the recommended minimum of 25 GB ' \
           '(accepted: small-disk)' in out
    preview = out[out.index('--== CONFIGURATION PREVIEW ==--'):]
    for label, value in (('Storage Domain type', 'localfs'), ('Storage connection', storage),
                         ('Storage domain name', 'hosted_storage'),
                         ('Storage data center name', 'hosted_datacenter'),
                         ('Image size GB', '1'),
                         ('sanlock I/O timeout',
                          '2 s (a crashed host is known dead after 76 s)'),
                         ('Bridge name', 'ovirtmgmt'),
                         ('Bridge interface', 'eth0'), ('Gateway address', GATEWAY),
                         ('Network connectivity check', 'ping'),
                         ('Host address', 'host1.lab.test')):
        assert '%-35s: %s\n' % (label, value) in preview, preview
    assert r.returncode == 1 and '[ ERROR ] Aborted: The answer file ' in out, out
    assert 'declined the deploy: OVEHOSTED_CORE/confirmSettings=bool:False' in out, out
    assert_nothing_left(deploy, storage)


def test_typed_answers_with_their_defaults(deploy):
    storage = deploy.storage_dir('typed')
    answers = deploy.answers(
        OVEHOSTED_STORAGE__domainType=None, OVEHOSTED_STORAGE__storageDomainConnection=None,
        OVEHOSTED_STORAGE__imgSizeGB=None, OVEHOSTED_CORE__acceptedWarnings=['low-memory'],
        OVEHOSTED_STORAGE__sanlockIoTimeout=None,
        OVEHOSTED_STORAGE__storageDomainName=None, OVEHOSTED_STORAGE__storageDatacenterName=None,
        OVEHOSTED_NETWORK__bridgeIf=None, OVEHOSTED_NETWORK__gateway=None,
        OVEHOSTED_NETWORK__network_test=None, OVEHOSTED_NETWORK__host_name=None)
    typed_lines = [
        'iscsi',              # refused: block storage
        'localfs',
        'relative/dir',       # refused: not absolute
        storage,
        '', '',               # domain and data center names: defaults
        '2', 'No',            # a small disk, not accepted: asked again
        '3', 'Yes',           # accepted
        '0', '',              # sanlock I/O timeout: refused, then the default (10)
        'eth9', '',           # unknown NIC, then the default (eth0)
        '192.168.222.254',    # does not answer ping
        '',                   # the default gateway
        'tcp', '192.168.222.1', 'x', '22',
        'localhost', '',      # refused, then the default (this host's FQDN)
    ]
    r = deploy.run(answers, stdin='\n'.join(typed_lines) + '\n')
    out = r.stdout
    assert 'Please specify the storage you would like to use (nfs, glusterfs, posixfs, ' \
           'localfs) [nfs]: ' in out
    assert 'Invalid value: iSCSI storage is block storage, which this host agent ' \
           '(ovirt-hosted-engine-hostd) does not support: use one of nfs, glusterfs, ' \
           'posixfs, localfs' in out
    assert "Invalid value: 'relative/dir' is not an absolute directory" in out
    assert 'Please provide storage domain name [hosted_storage]: ' in out
    assert 'Local storage datacenter name [hosted_datacenter]: ' in out
    assert out.count('Please specify the disk size of the VM in GB [25]: ') == 2
    assert 'Continue with a 2 GB disk? (Yes, No)[No]: ' in out
    assert 'Please specify the sanlock I/O timeout of the hosted-engine lockspace in seconds ' \
           '(the other hosts know a crashed host dead 8 x timeout + 60 s after its last ' \
           'renewal) [10]: ' in out
    assert 'Invalid value: 0 is not a positive number' in out
    assert 'Please indicate a nic to set ovirtmgmt bridge on (eth0)[eth0]: ' in out
    assert "Invalid value: 'eth9' is not one of eth0" in out
    assert 'Please indicate a pingable gateway IP address [%s]: ' % GATEWAY in out
    assert 'Invalid value: The gateway 192.168.222.254 does not answer ping' in out
    assert 'checked (ping, dns, tcp, none)[dns]: ' in out
    assert "Invalid value: 'x' is not a port number" in out
    assert 'Host address [host1' in out
    assert 'Invalid value: localhost is not an address other hosts can reach' in out
    preview = out[out.index('--== CONFIGURATION PREVIEW ==--'):]
    assert '%-35s: %s\n' % ('Image size GB', '3') in preview
    assert '%-35s: %s\n' % ('sanlock I/O timeout', '10 s (a crashed host is known dead after '
                                                  '140 s)') in preview
    assert '%-35s: %s\n' % ('Network connectivity check', 'tcp') in preview
    assert '%-35s: %s\n' % ('Gateway address', GATEWAY) in preview
    assert r.returncode == 1, out
    written = sorted(os.listdir(os.path.join(deploy.work, 'answers')))[-1]
    text = open(os.path.join(deploy.work, 'answers', written)).read()
    for line in ('OVEHOSTED_STORAGE/domainType=str:localfs',
                 'OVEHOSTED_STORAGE/storageDomainConnection=str:%s' % storage,
                 'OVEHOSTED_STORAGE/imgSizeGB=int:3',
                 'OVEHOSTED_STORAGE/sanlockIoTimeout=int:10',
                 'OVEHOSTED_NETWORK/network_test=str:tcp',
                 'OVEHOSTED_NETWORK/network_test_tcp_port=int:22', '    small-disk'):
        assert line in text, text
    assert_nothing_left(deploy, storage)


@pytest.mark.parametrize('changes, words', [
    (dict(OVEHOSTED_STORAGE__domainType='nfs',
          OVEHOSTED_STORAGE__storageDomainConnection='192.168.222.1:/'),
     "invalid value '192.168.222.1:/': '192.168.222.1:/' exports the server root"),
    (dict(OVEHOSTED_STORAGE__domainType='nfs',
          OVEHOSTED_STORAGE__storageDomainConnection='no-path-here'),
     "invalid value 'no-path-here': 'no-path-here' is not host:/path"),
    (dict(OVEHOSTED_STORAGE__domainType='glusterfs',
          OVEHOSTED_STORAGE__storageDomainConnection='/srv/he'),
     "'/srv/he' is a local path: glusterfs storage needs a server, give host:/path"),
    (dict(OVEHOSTED_STORAGE__domainType='iscsi'),
     "iSCSI storage is block storage, which this host agent (ovirt-hosted-engine-hostd) does "
     "not support: use one of nfs, glusterfs, posixfs, localfs"),
    (dict(OVEHOSTED_STORAGE__imgSizeGB=10, OVEHOSTED_CORE__acceptedWarnings=['low-memory']),
     'The VM disk size 10 GB is below the recommended minimum of 25 GB and was not accepted: '
     'give OVEHOSTED_STORAGE/imgSizeGB of at least 25, or accept the warning small-disk'),
    (dict(OVEHOSTED_STORAGE__sanlockIoTimeout=61),
     "OVEHOSTED_STORAGE/sanlockIoTimeout: invalid value 61: 61 s is not a sanlock I/O "
     "timeout: use 1 to 60 seconds (VDSM's default is 10)"),
    (dict(OVEHOSTED_NETWORK__bridgeIf='eth9'),
     "OVEHOSTED_NETWORK/bridgeIf='eth9': 'eth9' is not a NIC of this host: choose one of eth0"),
    (dict(OVEHOSTED_NETWORK__gateway='192.168.222.254'),
     'The gateway 192.168.222.254 does not answer ping ('),
    (dict(OVEHOSTED_NETWORK__host_name='localhost'),
     'localhost is not an address other hosts can reach'),
    (dict(OVEHOSTED_NETWORK__host_name='192.168.222.12'),
     '192.168.222.12 resolves to 192.168.222.12, which is not an address of this host'),
], ids=['host-root', 'malformed', 'gluster-local-path', 'iscsi', 'small-disk-not-accepted',
        'io-timeout-out-of-range',
        'unknown-nic', 'gateway-silent', 'localhost', 'not-this-host'])
def test_bad_answer_file_value(deploy, changes, words):
    # answers a No to the small-disk question when it is asked
    r = deploy.run(deploy.answers(**changes), stdin='No\n')
    line = one_error(r)
    assert words in line, r.stdout
    assert_nothing_left(deploy, deploy.storage_dir('good'))


def test_unreachable_nfs_server(deploy):
    r = deploy.run(deploy.answers(OVEHOSTED_STORAGE__domainType='nfs',
                                  OVEHOSTED_STORAGE__storageDomainConnection='192.168.222.250:/x',
                                  OVEHOSTED_STORAGE__nfsVersion='auto',
                                  OVEHOSTED_STORAGE__mntOptions=''))
    line = one_error(r)
    assert 'Cannot connect the storage 192.168.222.250:/x (nfs): the host agent reports: ' \
           'cannot mount 192.168.222.250:/x' in line, line
    assert 'check the address, that the export exists and is writable' in line
    assert_nothing_left(deploy, deploy.storage_dir('good'))


def test_missing_directory(deploy):
    missing = deploy.storage_dir('missing', create=False)
    r = deploy.run(deploy.answers(OVEHOSTED_STORAGE__storageDomainConnection=missing))
    line = one_error(r)
    assert ('Cannot connect the storage %s (localfs): the host agent reports: path %s does not '
            'exist (code 451)' % (missing, missing)) in line
    assert_nothing_left(deploy, missing)


def test_read_only_storage(deploy):
    ro = deploy.storage_dir('read-only')
    deploy.sh('mount --bind %s %s && mount -o remount,bind,ro %s' % (ro, ro, ro))
    try:
        r = deploy.run(deploy.answers(OVEHOSTED_STORAGE__storageDomainConnection=ro))
    finally:
        deploy.sh('umount %s' % ro)
    line = one_error(r)
    assert 'Cannot connect the storage %s (localfs)' % ro in line
    assert 'is not writable (Read-only file system)' in line
    assert_nothing_left(deploy, ro)


def test_too_small_storage(deploy):
    small = deploy.storage_dir('small')
    deploy.sh('mount -t tmpfs -o size=64m he-test-small %s' % small)
    try:
        r = deploy.run(deploy.answers(OVEHOSTED_STORAGE__storageDomainConnection=small))
        st = deploy.state(small)
    finally:
        deploy.sh('umount %s' % small)
    line = one_error(r)
    assert ('The storage %s has 64.0 MiB free, less than the 1.0 GiB needed for a 1 GB VM disk '
            'with the metadata, lockspace and configuration volumes' % small) in line, line
    assert st['mnt'] == [] and st['storage'] == [], st


@pytest.fixture
def existing_domain(deploy):
    storage = deploy.storage_dir('existing')
    r = deploy.lab.exec('host1', 'python', '-c', MAKE_DOMAIN, 'create', storage, timeout=600)
    conf = r.stdout.strip().splitlines()[-1]
    try:
        yield storage, json.loads(conf)
    finally:
        deploy.lab.exec('host1', 'python', '-c', MAKE_DOMAIN, 'destroy', conf, timeout=600)
        assert deploy.state(storage)['storage'] == []


@pytest.mark.parametrize('reply, words', [
    ('No', '[ ERROR ] Aborted: The storage {storage} already holds the storage domain {sd} '
           '(hosted_storage) and re-deploying over a deployed domain is not supported: add this '
           'host as an additional host, give a clean export, or run ovirt-hosted-engine-cleanup '
           'on the hosts of that domain and clear the storage'),
    # an additional host: this domain's configuration volume was never written (a deploy
    # that did not finish)
    ('Yes', "[ ERROR ] Failed to execute stage 'Environment customization': The configuration "
            "volume of storage domain {sd} on {storage} has no hosted-engine.conf: the first "
            "host's deploy did not complete; finish it on the first host and run this deploy "
            "again"),
])
def test_existing_domain(deploy, existing_domain, reply, words):
    storage, conf = existing_domain
    r = deploy.run(deploy.answers(OVEHOSTED_STORAGE__storageDomainConnection=storage),
                   stdin=reply + '\n')
    assert 'The specified storage location already contains a data domain. Is this an ' \
           'additional host setup? (Yes, No)[Yes]: ' in r.stdout
    line = one_error(r)
    assert line.startswith(words.format(storage=storage, sd=conf['sdUUID'])), line
    st = deploy.state(storage)
    # the domain made before is untouched; the test connection is gone again
    assert st['storage'] == [conf['sdUUID']], st
    assert not st['bridge']


def test_real_command_checks_the_storage(deploy):
    missing = deploy.storage_dir('missing-real', create=False)
    r = deploy.run(deploy.answers(OVEHOSTED_STORAGE__storageDomainConnection=missing),
                   real_command=True)
    line = one_error(r)
    assert 'Cannot connect the storage %s (localfs)' % missing in line, r.stdout
    assert_nothing_left(deploy, missing)


def test_misc_creates_bridge_and_domain_and_removes_them_on_a_later_failure(deploy):
    storage = deploy.storage_dir('rollback')
    seen_file = os.path.join(deploy.work, 'seen.json')
    r = deploy.run(deploy.answers(OVEHOSTED_STORAGE__storageDomainConnection=storage,
                                  OVEHOSTED_CORE__confirmSettings=True),
                   groups=('gr-he-common', 'gr-he-setup', 'gr-he-test'),
                   env={'SEEN_FILE': seen_file})
    out = r.stdout
    seen = json.load(open(seen_file))
    assert seen['bridge'] is True
    assert all(seen['volumes'].values()), seen
    conf = seen['conf']
    assert conf['storage'] == storage and conf['domainType'] == 'localfs'
    assert seen['sd_env'] == conf['sdUUID']
    line = one_error(r)
    assert "Failed to execute stage 'Misc configuration': injected failure" in line
    for words in ('[ INFO  ] Creating the management bridge ovirtmgmt on eth0 '
                  '(192.168.222.11/24)',
                  '[ INFO  ] Creating the storage domain hosted_storage (data center '
                  'hosted_datacenter) on %s' % storage,
                  '[ INFO  ] shared storage: creating the volumes',
                  '[ INFO  ] Storage domain %s ready' % conf['sdUUID'],
                  '[ INFO  ] Removing the storage domain %s created by this deploy'
                  % conf['sdUUID'],
                  '[ INFO  ] Removing the bridge ovirtmgmt created by this deploy'):
        assert words in out, out
    assert out.index('Removing the storage domain') < out.index('Removing the bridge')
    assert_nothing_left(deploy, storage)


def test_example_answer_file_uses_the_checked_keys():
    """The example answer file's storage and network answers pass the same checks."""
    values = {key: value for section, key, value, _where, _w in config.parse_file(EXAMPLE)}
    from ovirt_hosted_engine_setup.deploy import network_checks, storage_checks
    dtype = storage_checks.domain_type(values['OVEHOSTED_STORAGE/domainType'])
    assert storage_checks.connection(
        dtype, values['OVEHOSTED_STORAGE/storageDomainConnection']) == \
        values['OVEHOSTED_STORAGE/storageDomainConnection']
    assert network_checks.gateway_address(values['OVEHOSTED_NETWORK/gateway']) == GATEWAY
    assert network_checks.network_test(values['OVEHOSTED_NETWORK/network_test']) == 'ping'

