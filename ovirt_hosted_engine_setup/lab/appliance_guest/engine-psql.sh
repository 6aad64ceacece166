#!/bin/sh
# engine-psql.sh of the lab appliance (/usr/share/ovirt-engine/dbscripts/engine-psql.sh):
# SQL statements against the lab engine's database (docs/lab-engine.md).
exec /usr/bin/python3 -P -m ovirt_hosted_engine_setup.lab.engine.psql \
    --state-dir /var/lib/ovirt-engine-lab "$@"
