"""Build the sanlock container workaround library (see sanlock_preload.c).

Lab and test tooling only: the product never preloads anything into sanlock.
"""
import hashlib
import os
import subprocess

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sanlock_preload.c')
CACHE_DIR = os.environ.get('OVIRT_HE_LAB_CACHE', '/var/lib/ovirt-hosted-engine-lab')


def preload_path(cache_dir=None):
    """Where the library built from the current source is (built or not)."""
    cache_dir = cache_dir or CACHE_DIR
    with open(SOURCE, 'rb') as f:
        digest = hashlib.sha1(f.read()).hexdigest()[:12]
    return os.path.join(cache_dir, 'sanlock-rlimit-%s.so' % digest)


def ensure_preload(cache_dir=None):
    """Compile the library if needed; return its path."""
    out = preload_path(cache_dir)
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        tmp = out + '.tmp%d' % os.getpid()
        subprocess.run(['gcc', '-shared', '-fPIC', '-O2', '-o', tmp, SOURCE, '-ldl'],
                       check=True)
        os.rename(tmp, out)
    return out
