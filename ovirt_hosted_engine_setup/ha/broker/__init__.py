"""ovirt-ha-broker: storage I/O on the hosted-engine volumes, this host's id
in the ``hosted-engine`` sanlock lockspace, the local monitors, mail
notifications, and the local socket API of docs/ha-services.md.

Modules:
- store: MetadataStore(path): read_area() (O_DIRECT, bounded to max_hosts),
  write_slot(slot, data) (O_DIRECT|O_SYNC); buffered fallback where direct
  I/O is refused;
- lockspace: Lockspace(path, host_id, io_timeout): joins in the background,
  held(), live_ids(), stop(); read_lease_owner();
- monitors: HostAgent (the host agent API client shared by the monitors),
  Monitor threads, ValueStore, network/bridge/memory/cpu/storage/engine checks;
- engine_health: engine_status(vm_stats, page_ok) (pure), fetch_health(fqdn);
- storage: connect(client, conf) -> StoragePaths(metadata, lockspace, vm_lease);
- server: Server(path, methods): JSON lines on a UNIX socket (mode 0600);
- broker: Broker(conf, broker_conf_path, ...): the API methods, wiring the above;
- daemon: main(argv), the ovirt-ha-broker command.
"""
