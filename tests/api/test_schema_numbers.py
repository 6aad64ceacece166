"""No number of the API schema is written a second time in the product: domain types, volume
formats, allocations, domain classes, the blank UUID and error codes are read from
ovirt_hosted_engine_setup/api/schema.yaml (through api/schema.py)."""
import ast
import os
import re

from ovirt_hosted_engine_setup.api.schema import constant, enum, get_schema

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRODUCT = ('ovirt_hosted_engine_setup', 'plugins', 'bin')
SCHEMA_ENUM_PARAMS = ('domainType', 'domainClass', 'volFormat', 'preallocate', 'storageType')
# names of constants that hold an error code of the API
ERROR_NAME = re.compile(r'^ERR_|(^|_)(NO_VM|NO_SUCH_VM|DOES_NOT_EXIST|UNKNOWN_TASK)$')


def _python_files():
    for top in PRODUCT:
        for root, dirs, files in os.walk(os.path.join(TOP, top)):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            for f in files:
                path = os.path.join(root, f)
                if f.endswith('.py'):
                    yield path
                elif top == 'bin':
                    with open(path, 'rb') as fh:
                        if b'python' in fh.readline():
                            yield path


def _trees():
    for path in _python_files():
        with open(path, encoding='utf-8') as f:
            yield os.path.relpath(path, TOP), ast.parse(f.read(), path)


def _int(node):
    return isinstance(node, ast.Constant) and type(node.value) is int


def second_writings(trees):
    """'file:line: what' for every number of the schema written again in trees."""
    blank = constant('blankUUID')
    type_names = {n.lower() for n in enum('domainType')}
    type_numbers = {str(v) for v in enum('domainType').values()}
    out = []
    for rel, tree in trees:
        for node in ast.walk(tree):
            where = '%s:%d' % (rel, getattr(node, 'lineno', 0))
            if isinstance(node, ast.Constant) and node.value == blank:
                out.append('%s: the blank UUID' % where)
            elif isinstance(node, ast.keyword) and node.arg in SCHEMA_ENUM_PARAMS and \
                    _int(node.value):
                out.append('%s: %s=%d' % (where, node.arg, node.value.value))
            elif isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values):
                    if isinstance(k, ast.Constant) and k.value in type_numbers and \
                            isinstance(v, ast.Constant) and v.value in type_names:
                        out.append('%s: domain type %r: %r' % (where, k.value, v.value))
            elif isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'VdsmError' \
                    and node.args and _int(node.args[0]):
                out.append('%s: VdsmError(%d, ...)' % (where, node.args[0].value))
            elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and \
                    node.left.attr == 'code':
                for c in node.comparators:
                    if _int(c) and c.value in get_schema().errors:
                        out.append('%s: .code compared with %d' % (where, c.value))
            elif isinstance(node, ast.Assign) and _int(node.value) and \
                    node.value.value in get_schema().errors:
                for t in node.targets:
                    if isinstance(t, ast.Name) and ERROR_NAME.search(t.id):
                        out.append('%s: %s = %d' % (where, t.id, node.value.value))
    return sorted(out, key=lambda w: (w.split(':')[0], int(w.split(':')[1])))


def test_the_checks_find_what_they_look_for():
    tree = ast.parse("BLANK = '00000000-0000-0000-0000-000000000000'\n"
                     "c.call(domainType=4, volFormat=5)\n"
                     "MD = {'1': 'nfs', 'NFS': 'nfs'}\n"
                     "raise VdsmError(358, 'no domain')\n"
                     "STORAGE_DOMAIN_DOES_NOT_EXIST = 358\n"
                     "NO_SUCH_VM = 1\n"
                     "TIMEOUT = 358\n"
                     "if e.code == 1 or e.code != 358 or p.returncode == 1: pass\n")
    assert second_writings([('x.py', tree)]) == [
        'x.py:1: the blank UUID', 'x.py:2: domainType=4', 'x.py:2: volFormat=5',
        "x.py:3: domain type '1': 'nfs'", 'x.py:4: VdsmError(358, ...)',
        'x.py:5: STORAGE_DOMAIN_DOES_NOT_EXIST = 358', 'x.py:6: NO_SUCH_VM = 1',
        'x.py:8: .code compared with 1', 'x.py:8: .code compared with 358']


def test_product_writes_no_schema_number_twice():
    assert second_writings(_trees()) == []
