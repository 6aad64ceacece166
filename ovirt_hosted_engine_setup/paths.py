"""Where hosted-engine keeps its files.

OVIRT_HOSTED_ENGINE_PREFIX (process environment) relocates every path below under a
directory, so tests and development runs never touch the machine's /etc and /var.
"""
import os
import sys

PREFIX = os.environ.get('OVIRT_HOSTED_ENGINE_PREFIX', '').rstrip('/')


def _p(path):
    return PREFIX + path


ETC_DIR = _p('/etc/ovirt-hosted-engine')
HOSTED_ENGINE_CONF = os.path.join(ETC_DIR, 'hosted-engine.conf')
VM_CONF = os.path.join(ETC_DIR, 'vm.conf')
ETC_ANSWER_FILE = os.path.join(ETC_DIR, 'answers.conf')
HA_ETC_DIR = _p('/etc/ovirt-hosted-engine-ha')
SETUP_LOG_DIR = _p('/var/log/ovirt-hosted-engine-setup')
SETUP_STATE_DIR = _p('/var/lib/ovirt-hosted-engine-setup')
ANSWERS_DIR = os.path.join(SETUP_STATE_DIR, 'answers')
# what the deploy opened in the host firewall (JSON), for rollback and cleanup
FIREWALL_RECORD = os.path.join(SETUP_STATE_DIR, 'firewall.json')
# the management NIC as the deploy found it before the bridge (JSON, mode 0600), for cleanup
NETWORK_RECORD = os.path.join(SETUP_STATE_DIR, 'network-before-bridge.json')
HA_STATE_DIR = _p('/var/lib/ovirt-hosted-engine-ha')
HA_CONF = os.path.join(HA_STATE_DIR, 'ha.conf')
HA_RUN_DIR = _p('/run/ovirt-hosted-engine-ha')
HA_LOG_DIR = _p('/var/log/ovirt-hosted-engine-ha')
BROKER_CONF = os.path.join(HA_ETC_DIR, 'broker.conf')
AGENT_CONF = os.path.join(HA_ETC_DIR, 'agent.conf')
NOTIFICATIONS_DIR = os.path.join(HA_ETC_DIR, 'notifications')
# where the host agent mounts storage domains (VDSM's /rhev/data-center)
DATA_CENTER_DIR = _p('/rhev/data-center')

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(_PACKAGE_DIR)


def _data_dir(name):
    """The checkout's copy when running from a checkout, else the installed one."""
    local = os.path.join(_CHECKOUT, name)
    if os.path.isdir(local) and os.path.isfile(os.path.join(_CHECKOUT, 'setup.py')):
        return local
    return os.path.join(sys.prefix, 'share', 'ovirt-hosted-engine-setup', name)


PLUGIN_DIR = _data_dir('plugins')
TEMPLATES_DIR = _data_dir('templates')
