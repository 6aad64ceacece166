"""Run the real `hosted-engine` command with its files relocated under a temporary prefix."""
import glob
import os
import subprocess
import sys

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOSTED_ENGINE = os.path.join(TOP, 'bin', 'hosted-engine')


class Prefix:
    """Paths of one relocated installation (OVIRT_HOSTED_ENGINE_PREFIX)."""

    def __init__(self, root):
        self.root = str(root)

    def path(self, p):
        return self.root + p

    @property
    def env(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ('SSH_CONNECTION', 'SSH_CLIENT', 'TMUX', 'STY')}
        env['OVIRT_HOSTED_ENGINE_PREFIX'] = self.root
        env['TERM'] = 'dumb'
        return env

    def logs(self):
        return sorted(glob.glob(self.path('/var/log/ovirt-hosted-engine-setup/*.log')))

    def answer_files(self):
        return sorted(glob.glob(self.path('/var/lib/ovirt-hosted-engine-setup/answers/*')))

    def all_files(self):
        out = []
        for dirpath, _, files in os.walk(self.root):
            out.extend(os.path.join(dirpath, f) for f in files)
        return sorted(out)

    def run(self, *args, stdin='', env=None):
        return subprocess.run([sys.executable, HOSTED_ENGINE] + list(args), input=stdin,
                              capture_output=True, text=True, env=env or self.env, timeout=60)


@pytest.fixture
def prefix(tmp_path):
    return Prefix(tmp_path / 'root')
