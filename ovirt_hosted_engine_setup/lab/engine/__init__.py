"""The lab engine: the part of oVirt's engine (SSO, REST API, PKI resources,
health page) that a hosted-engine deploy uses, for the lab appliance.

Standard library only (plus PyYAML and the project's host agent API client),
certificates made with the openssl command line, so it runs inside the small
lab appliance image.

    python3 -m ovirt_hosted_engine_setup.lab.engine.setup --state-dir D --fqdn F --admin-password-file P
    python3 -m ovirt_hosted_engine_setup.lab.engine --state-dir D [--http-port 80 --https-port 443]
"""
