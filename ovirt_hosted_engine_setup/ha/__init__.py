"""The hosted-engine HA services: a pure decision core (core, score, metadata,
liveness) shared by the agent daemon, the broker and the simulator."""
