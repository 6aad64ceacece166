"""The HA simulator: a virtual cluster running the real decision core (see world.py)."""
