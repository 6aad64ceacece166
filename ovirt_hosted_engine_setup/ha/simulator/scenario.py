"""Scenario files: a timed command list and a golden log.

A scenario is a directory with
- ``cmdlist``: header lines, then timed commands, ``#`` comments allowed:
      hosts N            cluster size (1..64)
      duration S         simulated seconds (default 900)
      bound S|none       longest time the engine may be unhealthy (required)
      vm-on H|none       where the engine VM runs at time 0 (default 1)
      hostid H ID        host H uses host id ID (collision tests)
      slots N            host slots deploy initialised (default max(N, 8))
      lease-read on|off  agents read the VM lease owner before starting (default on);
                         off leaves the lease alone to arbitrate start races, as in oVirt
      <time> <command> [args...]
  commands: crash H, power-on H, vm-crash H, vm-kill H, vm-poweroff H, vm-pause H,
  engine-unhealthy H on|off, net H FRACTION, gateway-all FRACTION, bridge H up|down,
  cpu H LOAD, mem H MB, storage H lost|ok, storage-delay H SECONDS, agent-stop H,
  agent-kill H, agent-start H, agent-restart H, broker-slow H SECONDS, broker-restart H,
  hostagent H down|up, clock-jump H SECONDS, corrupt SLOT garbage|torn|crc|too-new|wrong-id,
  global-maint on|off, local-maint H on|off, flap-net H PERIOD UNTIL LOW, guest-hang H on|off
  broker-slow: the broker's host monitors give no value (its engine health still
  answers) for SECONDS; broker-restart: no monitor value at all, engine health
  included, for 15 s (the agent then sees its VM state as unknown).
- ``log.expect``: the golden log (state transitions, VM events, faults, storage warnings).

Every run also checks the invariants: never two engine VMs running, the engine
unhealthy no longer than ``bound``, never back and forth for score: the VM never
moves for score back to a host it left for score less than the dwell time
before (world.back_and_forth).
"""
import os
from dataclasses import dataclass, field

from .. import metadata
from . import world


class ScenarioError(Exception):
    pass


@dataclass
class Scenario:
    name: str
    hosts: int = 1
    duration: int = 900
    bound: int = None
    vm_on: int = 1
    slots: int = None
    lease_read: bool = True
    hostids: dict = field(default_factory=dict)
    commands: list = field(default_factory=list)   # (time, line number, words)


def parse_cmdlist(name, text):
    sc = Scenario(name)
    have_bound = False
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        words = line.split()
        try:
            if words[0].isdigit():
                sc.commands.append((int(words[0]), no, words[1:]))
            elif words[0] == 'hosts':
                sc.hosts = int(words[1])
            elif words[0] == 'duration':
                sc.duration = int(words[1])
            elif words[0] == 'bound':
                have_bound = True
                sc.bound = None if words[1] == 'none' else int(words[1])
            elif words[0] == 'vm-on':
                sc.vm_on = None if words[1] == 'none' else int(words[1])
            elif words[0] == 'slots':
                sc.slots = int(words[1])
            elif words[0] == 'lease-read':
                sc.lease_read = words[1] == 'on'
            elif words[0] == 'hostid':
                sc.hostids[int(words[1])] = int(words[2])
            else:
                raise ScenarioError('unknown header %r' % words[0])
        except (IndexError, ValueError) as e:
            raise ScenarioError('%s line %d: %s' % (name, no, e))
    if not 1 <= sc.hosts <= 64:
        raise ScenarioError('%s: hosts must be 1..64' % name)
    if not have_bound:
        raise ScenarioError('%s: no "bound" line' % name)
    sc.commands.sort(key=lambda c: (c[0], c[1]))
    return sc


def _corrupt(cluster, slot, kind):
    old = cluster.area[slot]
    if kind == 'garbage':
        data = bytes((i * 37 + slot * 11) % 251 + 1 for i in range(metadata.SLOT_SIZE))
    elif kind == 'torn':
        # new header sector, old extra lines: a write that stopped half way
        rec = metadata.parse_host_slot(slot, old)
        ts = rec.timestamp + 10 if isinstance(rec, metadata.HostRecord) else 1
        fresh = metadata.serialize_host(slot, ts, 0, {'vm': 'down'}, 'torn')
        data = fresh[:metadata.HEADER_SIZE] + (old[metadata.HEADER_SIZE:] if rec else
                                               b'timestamp=0\n'.ljust(3584, b'\0'))
    elif kind == 'crc':
        i = old.index(b'|', 6) + 1 if b'|' in old[:20] else 10
        data = old[:i] + (b'9' if old[i:i + 1] != b'9' else b'8') + old[i + 1:]
    elif kind == 'too-new':
        data = b'7' + old[1:] if old[:1] else b'7|1|0'.ljust(metadata.SLOT_SIZE, b'\0')
    elif kind == 'wrong-id':
        other = slot % cluster.slots + 1
        rec = metadata.parse_host_slot(slot, old)
        data = metadata.serialize_host(other, getattr(rec, 'timestamp', 1), 3400,
                                       {'vm': 'up', 'health': 'good'}, 'impostor')
    else:
        raise ScenarioError('unknown corruption %r' % kind)
    cluster.write_slot(slot, data)


def apply(cluster, words):
    cmd, args = words[0], words[1:]
    c = cluster
    arg = args[0] if args else None
    h = c.host(arg) if arg and cmd not in ('gateway-all', 'corrupt', 'global-maint') else None
    c.emit('cmd', ' '.join(words))
    if cmd in ('crash', 'power-off'):
        h.powered = False
        h.agent_running = False      # the agent dies with its host: nothing published
        h.agent = None
        h.agent_start_at = None
        h.id_held = h.id_held  # the delta lease on disk simply stops being renewed
        if h.vm_running:
            h.vm_running = False
            h.vm_shutdown_at = None
            h.vm_last_exit = None
            c.emit(h.name, 'VM gone with the host')
    elif cmd == 'power-on':
        h.powered = True
        h.boot_at = c.t
        h.id_held = False
        h.vm_last_exit = None
        h.agent_start_at = c.t + world.HOST_BOOT
    elif cmd in ('vm-crash', 'vm-kill'):
        if h.vm_running:
            c.vm_stop(h, 'unexpected', 'VM crashed' if cmd == 'vm-crash' else 'VM killed')
    elif cmd == 'vm-poweroff':
        if h.vm_running:
            c.vm_stop(h, 'clean', 'VM powered off by the administrator')
    elif cmd == 'vm-pause':
        h.vm_paused = h.vm_running
    elif cmd == 'engine-unhealthy':
        h.engine_unhealthy = args[1] == 'on'
    elif cmd == 'net':
        h.network = float(args[1])
    elif cmd == 'gateway-all':
        for x in c.hosts:
            x.network = float(arg)
    elif cmd == 'bridge':
        h.bridge = args[1] == 'up'
    elif cmd == 'cpu':
        h.cpu = float(args[1])
    elif cmd == 'mem':
        h.mem_free = int(args[1])
    elif cmd == 'storage':
        h.storage_ok = args[1] == 'ok'
    elif cmd == 'storage-delay':
        h.storage_delay = float(args[1])
    elif cmd in ('agent-stop', 'agent-kill'):
        c.stop_agent(h, publish=(cmd == 'agent-stop'))
    elif cmd == 'agent-start':
        h.agent_start_at = c.t
    elif cmd == 'agent-restart':
        c.stop_agent(h)
        h.agent_start_at = c.t + 1
    elif cmd == 'broker-slow':
        h.broker_slow_until = c.t + int(args[1])
    elif cmd == 'broker-restart':
        h.broker_restart_until = c.t + world.BROKER_RESTART
    elif cmd == 'hostagent':
        h.hostagent_ok = args[1] == 'up'
    elif cmd == 'clock-jump':
        h.ts_offset += int(args[1])
    elif cmd == 'corrupt':
        _corrupt(c, int(arg), args[1])
    elif cmd == 'global-maint':
        c.write_slot(0, metadata.serialize_global(arg == 'on'))
    elif cmd == 'local-maint':
        h.local_maint = args[1] == 'on'
    elif cmd == 'flap-net':
        h.flap = (int(args[1]), int(args[2]), float(args[3]), c.t)
    elif cmd == 'guest-hang':
        h.guest_hang = args[1] == 'on'
    else:
        raise ScenarioError('unknown command %r' % cmd)


@dataclass
class Result:
    name: str
    log: list
    violations: list
    longest_down: int
    decide_calls: int          # agent loops run on all hosts (one decide() each)
    vm_owner: str = None       # the host running the engine VM at the end, if any


def run(sc, cfg=None):
    """Run scenario ``sc``; the agents' own log lines are not shown (the scenario log
    holds the transitions, VM events, faults and storage warnings)."""
    agent_log = world.AGENT_LOG
    was = agent_log.disabled
    agent_log.disabled = True
    try:
        return _run(sc, cfg)
    finally:
        agent_log.disabled = was


def _run(sc, cfg=None):
    c = world.Cluster(sc.hosts, slots=sc.slots, cfg=cfg)
    c.lease_read = sc.lease_read
    for idx, hid in sc.hostids.items():
        c.host(idx).host_id = hid
    if sc.vm_on is not None:
        h = c.host(sc.vm_on)
        h.vm_running = True
        h.vm_started_at = -10 * world.BOOT_TIME
        c.lease_holder = h
    # sanlock host ids are held from before time 0 (a running cluster)
    for h in c.hosts:
        if not [o for o in c.hosts if o is not h and o.host_id == h.host_id and o.id_held]:
            h.id_held = True
            h.last_renew = 0
    cmds = list(sc.commands)
    i = 0
    for t in range(sc.duration + 1):
        c.t = t
        while i < len(cmds) and cmds[i][0] <= t:
            try:
                apply(c, cmds[i][2])
            except (IndexError, ValueError) as e:
                raise ScenarioError('%s line %d: %s' % (sc.name, cmds[i][1], e))
            i += 1
        c.tick()
    c.finish()
    violations = list(c.violations)
    if sc.bound is not None and c.longest_down > sc.bound:
        violations.append('engine unhealthy for %ds, bound %ds' % (c.longest_down, sc.bound))
    return Result(sc.name, c.log, violations, c.longest_down, c.loops,
                  c.vm_owner_seen)


def load(directory):
    name = os.path.basename(os.path.normpath(directory))
    with open(os.path.join(directory, 'cmdlist')) as f:
        return parse_cmdlist(name, f.read())


def expected_log(directory):
    try:
        with open(os.path.join(directory, 'log.expect')) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return None
