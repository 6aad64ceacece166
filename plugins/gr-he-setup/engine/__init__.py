"""HOSTED ENGINE CONFIGURATION (data center, cluster, this host's name, the admin password,
notifications) and the closeup engine steps: VM start, engine-setup, health page, engine CA,
this host added to the engine."""
from . import closeup, engine, names, vm_start  # noqa: F401
