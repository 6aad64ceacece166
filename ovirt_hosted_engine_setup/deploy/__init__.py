"""The deploy wing: what ``hosted-engine --deploy`` and ``ovirt-hosted-engine-cleanup`` use.

The deploy's answers and keys (constants, validators), its storage and network checks, the
appliance, the cloud-init seed, the engine VM definition, access to the engine's REST API,
the host agent as the deploy reaches it, the firewall, the HA services and the cleanup
(deploy.cleanup). The otopi-style plugins under plugins/ drive these modules; the hosted-engine
storage itself (domain, volumes, configuration volume, lockspace) is he_storage's.
See docs/architecture.md.
"""
