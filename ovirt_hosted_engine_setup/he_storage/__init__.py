"""The hosted-engine storage, used alike by the deploy, the HA services and the cleanup.

shared_storage: connecting a host, provisioning the storage domain and its four images
(VM disk, HA metadata, lockspace, configuration volume), direct-I/O volume access and the
configuration volume; heconf: hosted-engine.conf and vm.conf; sanlock_util: the sanlock
calls (lockspaces, resources) that the HA verbs and the host agent make.
Nothing here imports the deploy wing or the host agent. See docs/architecture.md.
"""
