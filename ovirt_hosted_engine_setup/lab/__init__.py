"""The lab: namespaced hosts on one machine, each with its own sanlock, libvirtd and host agent."""
