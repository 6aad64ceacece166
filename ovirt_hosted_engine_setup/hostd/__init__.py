"""The embedded host agent: serves the VDSM JSON-RPC API subset on a plain Linux host."""
