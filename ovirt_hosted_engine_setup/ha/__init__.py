"""The hosted-engine HA services: a pure decision core shared by the agent
daemon, the broker, the CLI and the simulator.

Modules (no I/O in any of them):
- metadata: the shared metadata area (4096-byte slots, slot 0 the global
  block): serialize_host(), serialize_global(), parse_host_slot(),
  parse_global(), parse_area(data, max_hosts) / parse_slots(slots, max_hosts)
  -> AreaView(global_maintenance, hosts, skipped), area_size(max_hosts),
  status_report(view, live_ids) for ``--vm-status --json``.
- score: ScoreConfig (oVirt's defaults), parse_score_config(agent_conf_text)
  -> (ScoreConfig, warnings), Monitors, compute_score().
- liveness: observe(), judge() -> LIVE/STALE/DEAD from metadata timestamps and
  sanlock's view of the lockspace, merge_last_good() for corrupted slots.
- core: AgentState, Observations, CoreConfig, decide(state, obs, cfg) ->
  Decision(next_state, actions, published, reason, watch: follow in WATCH_INTERVAL s
  while waiting for a stale engine host to be declared dead, and while the VM started
  here boots); actions StartVM,
  ShutdownVM(delay, message), PowerOffVM, Notify(old_state, new_state),
  PublishMetadata(published); ActionResult to report an action's outcome in
  the next loop; observe_area(memory, view, own_id, now, sanlock_live) ->
  (peers, global_maintenance, memory); agent_stopped() for the exit block.
- simulator: a virtual cluster running core.decide(); simulator.cli.main(argv).

One agent loop, as the agent daemon and the simulator run it:
    view = metadata.parse_area(read_area(), max_hosts)   # None if unreadable
    peers, gm, memory = core.observe_area(memory, view, host_id, monotonic(), live_ids)
    d = core.decide(state, core.Observations(now=monotonic(), local_vm=..., monitors=...,
                    peers=peers, global_maintenance=gm, local_maintenance=...,
                    lockspace_held=..., result=last_result, host_id=host_id,
                    sanlock_live=live_ids, vm_lease_owner=...), cfg)
    state = d.next_state; carry out d.actions in order; last_result = their outcome.
"""
