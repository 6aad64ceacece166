"""Test order for the whole suite: the longest lab modules first.

scripts/run-tests runs the modules on two workers, each module whole on one worker
(pytest-xdist --dist loadfile), handed out in collection order. Collected alphabetically,
the longest modules (a deployed lab each, 6 to 23 minutes) would start last and the suite
would end with one worker busy and the other idle; started first, they run beside the many short
modules instead. The order of the tests within a module is kept.
"""

LONGEST_FIRST = (
    'tests/lab/test_faults_ha.py',
    'tests/lab/test_gluster_ha.py',
    'tests/lab/test_additional_hosts.py',
    'tests/lab/test_restore.py',
    'tests/lab/test_ha_lab.py',
)


def module_rank(path):
    """0.. for the modules of LONGEST_FIRST, in that order; after them every other one."""
    for rank, name in enumerate(LONGEST_FIRST):
        if path.endswith(name):
            return rank
    return len(LONGEST_FIRST)


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: module_rank(str(item.fspath)))     # stable: keeps the rest
