"""Build throw-away plugin groups and run the runner on them in-process."""
import io
import itertools
import os
import textwrap

from ovirt_hosted_engine_setup.runner.context import Context

_counter = itertools.count()

HEADER = ('from ovirt_hosted_engine_setup.runner import (PluginBase, Stages, Priority, '
          'event, AbortError, FileTransaction)\n')


def make_group(tmp_path, plugins):
    """plugins: {plugin dir name: source of its __init__.py}; returns (group, path)."""
    group = 'gr-test-%d' % next(_counter)
    base = tmp_path / 'plugins'
    for name, source in plugins.items():
        d = base / group / name
        d.mkdir(parents=True)
        (d / '__init__.py').write_text(HEADER + textwrap.dedent(source))
    return group, str(base)


class Run:
    def __init__(self, context, code, output):
        self.context = context
        self.code = code
        self.output = output
        self.env = context.environment
        self.log_file = context.log_file
        self.log = open(self.log_file).read() if self.log_file and os.path.exists(
            self.log_file) else ''


def run(tmp_path, plugins, assignments=(), stdin='', keys=(), groups=None):
    group, path = make_group(tmp_path, plugins)
    out = io.StringIO()
    ctx = Context(groups=groups or [group], plugin_path=[path], assignments=assignments,
                  keys=keys, log_dir=str(tmp_path / 'log'), log_prefix='test',
                  stdin=io.StringIO(stdin), stdout=out)
    code = ctx.run()
    return Run(ctx, code, out.getvalue())
