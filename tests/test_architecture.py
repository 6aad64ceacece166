"""The package boundaries of docs/architecture.md, read from the import statements.

Each rule names the packages a package may not import (at module level or inside a
function); a violation names the file, the line and the imported module.
"""
import ast
import os

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = 'ovirt_hosted_engine_setup'

# package -> packages it must not import
FORBIDDEN = {
    'ha': ('hostd', 'deploy', 'lab'),
    'he_storage': ('ha', 'hostd', 'deploy', 'lab', 'runner'),
    'hostd': ('ha', 'deploy', 'lab', 'runner'),
    'api': ('ha', 'hostd', 'deploy', 'lab', 'he_storage', 'runner'),
    'runner': ('ha', 'hostd', 'deploy', 'lab', 'he_storage'),
    'deploy': ('hostd', 'lab'),
}


def _module_of(path, top):
    rel = os.path.relpath(path, top)[:-3].split(os.sep)
    return rel[:-1] if rel[-1] == '__init__' else rel


def imports(path, top=TOP):
    """(line, absolute module name) of every import in a file, relative ones resolved."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    parts = _module_of(path, top)
    package = parts if path.endswith('__init__.py') else parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = '.'.join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ''
            yield node.lineno, mod
            for a in node.names:        # `from pkg import module`
                yield node.lineno, '%s.%s' % (mod, a.name)


def files_of(package, top):
    root = os.path.join(top, PKG, package)
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != '__pycache__']
        for name in files:
            if name.endswith('.py'):
                yield os.path.join(d, name)


def violations(package, forbidden, top=TOP):
    out = []
    for path in files_of(package, top):
        for line, mod in imports(path, top):
            for other in forbidden:
                target = '%s.%s' % (PKG, other)
                if mod == target or mod.startswith(target + '.'):
                    out.append('%s:%d imports %s' % (os.path.relpath(path, top), line, mod))
    return sorted(set(out))


@pytest.mark.parametrize('package', sorted(FORBIDDEN))
def test_package_imports_only_what_it_may(package):
    assert violations(package, FORBIDDEN[package]) == []


def test_the_check_sees_relative_absolute_and_function_level_imports(tmp_path):
    pkg = tmp_path / PKG / 'ha' / 'broker'
    pkg.mkdir(parents=True)
    (pkg / 'x.py').write_text('import os\n\n\ndef f():\n    from ...hostd import sanlock_util\n')
    (pkg / 'y.py').write_text('from %s.hostd.vm import Vm\nfrom ... import paths\n' % PKG)
    assert violations('ha', ('hostd',), str(tmp_path)) == [
        '%s/ha/broker/x.py:5 imports %s.hostd' % (PKG, PKG),
        '%s/ha/broker/x.py:5 imports %s.hostd.sanlock_util' % (PKG, PKG),
        '%s/ha/broker/y.py:1 imports %s.hostd.vm' % (PKG, PKG),
        '%s/ha/broker/y.py:1 imports %s.hostd.vm.Vm' % (PKG, PKG)]

# Modules that moved into packages: none may come back at its old path.
OLD_PATHS = ['%s/%s.py' % (PKG, m) for m in (
    'appliance', 'cloud_init', 'engine_vm', 'engine_api', 'storage_checks', 'network_checks',
    'services', 'validators', 'constants', 'host_agent', 'firewall', 'cleanup')] + [
    '%s/ha/shared_storage.py' % PKG, '%s/ha/heconf.py' % PKG, '%s/hostd/sanlock_util.py' % PKG,
    '%s/he_storage/shared_storage.py' % PKG]


@pytest.mark.parametrize('path', OLD_PATHS)
def test_no_module_at_an_old_path(path):
    assert not os.path.exists(os.path.join(TOP, path))
