"""Packaging and documentation stay in step with the code."""
import os
import re
import subprocess
import sys

import pytest

from ovirt_hosted_engine_setup import cli, paths
from ovirt_hosted_engine_setup.deploy import constants

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('page', ['hosted-engine.8', 'ovirt-hosted-engine-setup.8'])
def test_man_pages_render(page):
    r = subprocess.run(['man', '-l', '--warnings=all', os.path.join(TOP, 'man', page)],
                       capture_output=True, text=True, env=dict(os.environ, MANWIDTH='100'))
    assert r.returncode == 0, r.stderr
    assert 'NAME' in r.stdout and 'SYNOPSIS' in r.stdout
    bad = [line for line in r.stderr.splitlines() if 'cannot adjust' not in line]
    assert bad == []


def test_every_verb_documented_in_man_page():
    text = open(os.path.join(TOP, 'man', 'hosted-engine.8')).read().replace('\\-', '-')
    for verb in cli.VERBS:
        assert verb.option in text, verb.option


def test_plugins_found_from_checkout():
    assert paths.PLUGIN_DIR == os.path.join(TOP, 'plugins')
    for group in cli.DEPLOY_GROUPS:
        assert os.path.isdir(os.path.join(paths.PLUGIN_DIR, group))


def test_every_spec_key_is_defined():
    """The environment keys of the deploy spec all exist, flagged as the spec says; one
    deliberate difference: the bridge NIC, this host's address and its name in the engine are
    asked, so they go to the answer file too, and a written answer file replays without a
    question (oVirt asks them again). The additional-host keys are oVirt's (1.x and 3.6);
    the host id goes to the answer file, as oVirt 1.x wrote it."""
    names = {str(k) for k in constants.ALL_KEYS}
    answer = {str(k) for k in constants.ALL_KEYS if k.answer_file}
    spec = {
        'OVEHOSTED_CORE': ['deployProceed*', 'screenProceed*', 'confirmSettings*',
                           'userAnswerFile', 'etcAnswerFile', 'restoreFromFile',
                           'checkRequirements', 'tempDir', 'skipTTYCheck',
                           'isAdditionalHost*', 'additionalHostReDeployment*',
                           'renewPKIonRestore*', 'pauseonRestore*'],
        'OVEHOSTED_FIRST_HOST': ['fetchAnswer*', 'fqdn*', 'sshdPort*', 'rootPassword',
                                 'skipSharedStorageAF*'],
        'OVEHOSTED_NETWORK': ['fqdn*', 'bridgeName*', 'bridgeIf*', 'gateway*',
                              'firewallManager*', 'network_test*',
                              'network_test_tcp_address*', 'network_test_tcp_port*',
                              'host_name*', 'sshdPort'],
        'OVEHOSTED_ENGINE': ['clusterName*', 'datacenterName*', 'adminUsername',
                             'adminPassword', 'appHostName*', 'engineSetupTimeout',
                             'insecureSSL*'],
        'OVEHOSTED_STORAGE': ['domainType*', 'storageDomainConnection*', 'storageDomainName*',
                              'storageDatacenterName*', 'mntOptions*', 'connectionUUID',
                              'sdUUID', 'spUUID', 'imgUUID', 'volUUID', 'vgUUID*',
                              'imgSizeGB*', 'hostID*', 'iSCSIPortalIPAddress*',
                              'iSCSIPortalPort*', 'iSCSIPortalUser*', 'iSCSITargetName*',
                              'LunID*', 'iSCSIPortalPassword', 'metadataImageUUID*',
                              'metadataVolumeUUID*', 'lockspaceImageUUID*',
                              'lockspaceVolumeUUID*', 'confImageUUID*', 'confVolUUID*'],
        'OVEHOSTED_VM': ['vmUUID*', 'vmMemSizeMB*', 'vmVCpus*', 'vmMACAddr*',
                         'emulatedMachine*', 'ovfArchive*', 'cloudInitISO*',
                         'cloudinitInstanceHostName*', 'cloudinitInstanceDomainName*',
                         'cloudinitExecuteEngineSetup*', 'cloudinitVMStaticCIDR*',
                         'cloudinitVMDNS*', 'cloudinitVMETCHOSTS*', 'cloudinitVMTZ*',
                         'rootSshAccess*', 'rootSshPubkey*', 'cloudinitRootPwd'],
        'OVEHOSTED_VDSM': ['consoleType*', 'cpu*', 'passwd'],
        'OVEHOSTED_NOTIF': ['smtpServer*', 'smtpPort*', 'sourceEmail*', 'destEmail*'],
        'OVEHOSTED_SANLOCK': ['lockspaceName'],
    }
    for group, keys in spec.items():
        for k in keys:
            name = '%s/%s' % (group, k.rstrip('*'))
            assert name in names, name
            assert (name in answer) == k.endswith('*'), name
    secrets = {str(k) for k in constants.SECRET_KEYS}
    assert secrets == {'OVEHOSTED_ENGINE/adminPassword', 'OVEHOSTED_STORAGE/iSCSIPortalPassword',
                       'OVEHOSTED_FIRST_HOST/rootPassword',
                       'OVEHOSTED_VM/cloudinitRootPwd', 'OVEHOSTED_VDSM/passwd',
                       'OVEHOSTED_VM/sshHostPrivateKey'}


def test_setup_py_lists_man_pages_and_commands():
    text = open(os.path.join(TOP, 'setup.py')).read()
    assert "'hosted-engine = ovirt_hosted_engine_setup.cli:main'" in text
    for page in os.listdir(os.path.join(TOP, 'man')):
        assert 'man/%s' % page in text
    assert re.search(r'ovirt-hosted-engine-setup = ovirt_hosted_engine_setup\.cli:setup_main',
                     text)


def test_installed_command_runs():
    """The command the venv installed (not the checkout's bin/) works."""
    exe = os.path.join(os.path.dirname(sys.executable), 'hosted-engine')
    r = subprocess.run([exe, '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and '--deploy' in r.stdout
