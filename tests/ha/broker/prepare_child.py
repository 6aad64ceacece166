"""Prepare a hosted-engine storage domain through a host agent, in a process of its
own (the lockspace is written by python3-sanlock, which talks to the daemon of
$SANLOCK_RUN_DIR, read once per process); print the hosted-engine.conf values as JSON.

    prepare_child.py PORT HOSTD_ROOT STORAGE_DIR IO_TIMEOUT
"""
import json
import sys

from ovirt_hosted_engine_setup.api.client import Client
from ovirt_hosted_engine_setup.he_storage import domain


def main(argv):
    port, root, storage, io_timeout = int(argv[0]), argv[1], argv[2], int(argv[3])
    with Client('127.0.0.1', port, hostd_root=root, timeout=120, connect_timeout=10) as c:
        values = domain.prepare_domain(c, {
            'storage': storage, 'domain_type': 'localfs', 'vm_disk_size': 1 << 20,
            'host_id': 1, 'io_timeout': io_timeout})
    print(json.dumps(values))


if __name__ == '__main__':
    main(sys.argv[1:])
