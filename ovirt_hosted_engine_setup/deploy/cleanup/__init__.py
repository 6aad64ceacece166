"""ovirt-hosted-engine-cleanup: undo what a hosted-engine deploy left on this host."""
