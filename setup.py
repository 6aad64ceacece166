"""Packaging for ovirt-hosted-engine-setup (Python)."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def tree(src, dest):
    """data_files entries for every file under src, installed under dest."""
    out = []
    for root, dirs, files in os.walk(os.path.join(HERE, src)):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        rel = os.path.relpath(root, HERE)
        sub = os.path.relpath(root, os.path.join(HERE, src))
        target = os.path.normpath(os.path.join(dest, sub))
        paths = [os.path.join(rel, f) for f in sorted(files)
                 if not f.endswith('.pyc')]
        if paths:
            out.append((target, paths))
    return out


setup(
    name='ovirt-hosted-engine-setup',
    version='0.1.0',
    description='Installer and HA services for an oVirt engine running as a VM on the hosts it manages',
    packages=find_packages(include=['ovirt_hosted_engine_setup', 'ovirt_hosted_engine_setup.*']),
    package_data={'ovirt_hosted_engine_setup': ['*.yaml', '*/*.yaml', '*/*.c']},
    data_files=(
        tree('plugins', 'share/ovirt-hosted-engine-setup/plugins')
        + tree('templates', 'share/ovirt-hosted-engine-setup/templates')
        + [('share/man/man8', ['man/hosted-engine.8', 'man/ovirt-hosted-engine-setup.8',
                               'man/ovirt-hosted-engine-cleanup.8'])]
    ),
    entry_points={
        'console_scripts': [
            # bin/hosted-engine runs the same from a checkout without installing
            'hosted-engine = ovirt_hosted_engine_setup.cli:main',
            'ovirt-hosted-engine-setup = ovirt_hosted_engine_setup.cli:setup_main',
            'ovirt-hosted-engine-cleanup = ovirt_hosted_engine_setup.deploy.cleanup.cli:main',
            'ovirt-hosted-engine-hostd = ovirt_hosted_engine_setup.hostd.daemon:main',
            'ovirt-hosted-engine-rpc = ovirt_hosted_engine_setup.api.rpc_cli:main',
            'hosted-engine-lab = ovirt_hosted_engine_setup.lab.cli:main',
            'ovirt-ha-broker = ovirt_hosted_engine_setup.ha.broker.daemon:main',
            'ovirt-ha-agent = ovirt_hosted_engine_setup.ha.agent:main',
        ],
    },
    # paramiko: the additional-host deploy reads the first host's answer file over SFTP
    install_requires=['paramiko>=3'],
    python_requires='>=3.9',
)
