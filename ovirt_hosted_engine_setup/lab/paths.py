"""Where the lab keeps its files.

OVIRT_HE_LAB_CACHE (default /var/lib/ovirt-hosted-engine-lab): built artefacts
shared by every lab (the sanlock container workaround library, the guest image,
the downloaded kernel package).
OVIRT_HE_LAB_DIR (default <cache>/lab): one lab's state (pids, namespaces,
per-host directories, the shared storage directory, the lab CA).
"""
import os

DEFAULT_BASE = '/var/lib/ovirt-hosted-engine-lab'


def base_dir():
    return os.environ.get('OVIRT_HE_LAB_CACHE', DEFAULT_BASE)


def cache_dir():
    return base_dir()


def images_dir():
    return os.path.join(base_dir(), 'images')


def lab_dir():
    return os.environ.get('OVIRT_HE_LAB_DIR') or os.path.join(base_dir(), 'lab')


def checkout_dir():
    """The source tree this package runs from."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def venv_bin():
    """The bin directory of the checkout's virtualenv (where the project's commands are)."""
    cand = os.path.join(checkout_dir(), '.venv', 'bin')
    if os.path.isdir(cand):
        return cand
    import sys
    return os.path.dirname(os.path.abspath(sys.executable))
