#!/usr/bin/env python3
"""Write the generated simulator scenarios (cmdlist files) under tests/ha/scenarios/.

The golden logs (log.expect) are produced by running the simulator with
``--update`` and then read and checked by hand; the outcome of the most important
scenarios is also asserted by hand in test_scenarios.py ("hand-written
expectations"), so a regenerated log cannot silently accept a wrong behaviour.
This script only writes cmdlists.
Run: python tests/ha/gen_scenarios.py
"""
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'scenarios')
SIZES = (2, 3, 4, 8, 16, 32, 64)


def scenario(name, text, hosts, bound, duration=900, vm_on=1, extra='', lease_read=True):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    head = '# %s\nhosts %d\nduration %d\nbound %s\n' % (
        text, hosts, duration, bound)
    if not lease_read:
        head += 'lease-read off\n'
    if vm_on != 1:
        head += 'vm-on %s\n' % vm_on
    with open(os.path.join(d, 'cmdlist'), 'w') as f:
        f.write(head + extra.strip() + '\n')


def dur(n, base=900):
    return 600 if n >= 32 else base


def main():
    for n in SIZES:
        scenario('host-crash-active-%d' % n, 'the host running the engine crashes; another host'
                 ' restarts it as soon as sanlock expires its host id', n, 240, dur(n),
                 extra='100 crash 1')
        scenario('host-crash-standby-%d' % n, 'a standby host crashes: nothing moves', n, 0,
                 dur(n), extra='100 crash %d' % n)
        scenario('gateway-loss-all-%d' % n, 'every host loses its gateway: scores drop alike,'
                 ' nothing moves', n, 0, dur(n), extra='100 gateway-all 0.0\n500 gateway-all 1.0')
        scenario('cold-start-race-%d' % n, 'no VM anywhere: all equal hosts try, the VM lease'
                 ' lets exactly one win', n, 150, dur(n), vm_on='none')
        scenario('cold-start-race-lease-only-%d' % n, 'no VM anywhere, agents do not read the'
                 ' lease owner: every equal host tries, the VM lease lets exactly one win', n,
                 150, dur(n), vm_on='none', lease_read=False)
        scenario('vm-crash-%d' % n, 'the engine VM crashes; another host restarts it', n, 150,
                 dur(n), extra='100 vm-crash 1')
    for n in (2, 4, 8):
        scenario('host-crash-power-on-%d' % n, 'the active host crashes and comes back as a'
                 ' standby', n, 240, extra='100 crash 1\n400 power-on 1')
        scenario('vm-kill-%d' % n, 'kill -9 of the engine VM', n, 150, extra='100 vm-kill 1')
        scenario('vm-poweroff-%d' % n, 'hosted-engine --vm-poweroff on the active host: an agent'
                 ' starts the VM again', n, 150, extra='100 vm-poweroff 1')
        scenario('engine-unhealthy-lease-only-%d' % n, 'as engine-unhealthy, agents do not'
                 ' read the lease owner: late starters fail with -243 and back off', n, 480, 1200,
                 extra='100 engine-unhealthy 1 on', lease_read=False)
        scenario('engine-unhealthy-%d' % n, 'the engine stays unhealthy on host1: stopped after'
                 ' 300 s and started on another host', n, 480, 1200,
                 extra='100 engine-unhealthy 1 on')
        scenario('engine-unhealthy-recovers-%d' % n, 'short engine health failure: no action',
                 n, 200, extra='100 engine-unhealthy 1 on\n250 engine-unhealthy 1 off')
        scenario('net-partial-small-%d' % n, '40%% network tests fail on the active host: the'
                 ' penalty stays under the migration margin', n, 0, extra='100 net 1 0.6')
        scenario('net-partial-large-%d' % n, '60%% network tests fail on the active host: the'
                 ' engine moves once, after the hold and dwell time', n, 200, 1200,
                 extra='100 net 1 0.4')
        scenario('net-total-%d' % n, 'the active host loses all its network tests: the engine'
                 ' moves to a better host', n, 200, 1200, extra='100 net 1 0.0')
        scenario('storage-loss-active-%d' % n, 'the active host loses shared storage: sanlock'
                 ' kills the VM at 8N, others restart it at 8N + W', n, 300,
                 extra='100 storage 1 lost')
        scenario('storage-loss-standby-%d' % n, 'a standby host loses shared storage: nothing'
                 ' moves', n, 0, extra='100 storage %d lost\n400 storage %d ok' % (n, n))
        scenario('storage-latency-active-%d' % n, 'storage answers in 15 s on the active host'
                 ' for 3 minutes: no restart loop, no score flip, nothing moves', n, 0,
                 extra='100 storage-delay 1 15\n280 storage-delay 1 0')
        scenario('storage-latency-all-%d' % n, 'slow storage on every host for 5 minutes',
                 n, 0, extra='\n'.join('100 storage-delay %d 12' % i for i in range(1, n + 1))
                 + '\n' + '\n'.join('400 storage-delay %d 0' % i for i in range(1, n + 1)))
        scenario('broker-slow-active-%d' % n, 'the broker on the active host does not answer'
                 ' monitors for 90 s: the score is held', n, 0, extra='100 broker-slow 1 90')
        scenario('broker-restart-%d' % n, 'both brokers restart', n, 0,
                 extra='100 broker-restart 1\n200 broker-restart 2')
        scenario('agent-restart-active-%d' % n, 'the agent on the active host restarts: the VM'
                 ' keeps running', n, 0, extra='100 agent-restart 1')
        scenario('agent-restart-standby-%d' % n, 'a standby agent restarts', n, 0,
                 extra='100 agent-restart 2')
        scenario('agent-kill-active-%d' % n, 'the agent on the active host dies without'
                 ' publishing; the VM keeps running and is not started twice', n, 0,
                 extra='100 agent-kill 1')
        scenario('agent-kill-active-vm-crash-%d' % n, 'the agent on the active host dies, then the'
                 ' VM crashes: the other hosts restart it once the stale claim expires', n, 300,
                 extra='100 agent-kill 1\n200 vm-crash 1')
        scenario('agent-stop-standby-%d' % n, 'a standby agent stops (AgentStopped) and the'
                 ' active host crashes later%s' % (': nobody is left to restart the engine'
                                                   if n == 2 else ''), n,
                 'none' if n == 2 else 240,
                 extra='100 agent-stop 2\n200 crash 1')
        scenario('flapping-net-%d' % n, 'the active host\'s gateway pings flap every 30 s for'
                 ' 20 minutes: the VM moves at most once', n, 200, 1800,
                 extra='100 flap-net 1 30 1300 0.0')
        scenario('flapping-slow-net-%d' % n, 'the active host\'s network fails for 3 minutes'
                 ' at a time, every 6 minutes: one move, then no move back within the dwell',
                 n, 200, 2400, extra='100 flap-net 1 180 2200 0.0\n280 flap-net 2 180 2200 0.0')
        scenario('flapping-net-both-%d' % n, 'gateway pings flap on host1 and host2 out of phase:'
                 ' never two moves within the dwell time', n, 200, 2400,
                 extra='100 flap-net 1 40 2200 0.0\n120 flap-net 2 40 2200 0.0')
        scenario('hostagent-down-active-%d' % n, 'the host agent on the active host is'
                 ' unreachable for 2 minutes: UnknownLocalVmState, nothing moves', n, 0,
                 extra='100 hostagent 1 down\n220 hostagent 1 up')
        scenario('score-tie-crash-%d' % n, 'all standbys score the same when the active host'
                 ' crashes: exactly one wins', n, 240, extra='100 crash 1\n400 power-on 1\n'
                 '700 vm-crash 2' if n > 2 else '100 crash 1\n400 power-on 1')
        scenario('bridge-down-active-%d' % n, 'the management bridge goes down on the active host'
                 ' (-600, under the margin): nothing moves', n, 0, extra='100 bridge 1 down')
        scenario('bridge-and-net-active-%d' % n, 'bridge down and half the network tests failing'
                 ' on the active host: the engine moves once', n, 200, 1200,
                 extra='100 bridge 1 down\n100 net 1 0.5')
        scenario('cpu-load-active-%d' % n, 'CPU load 95%% on the active host: -1000, the engine'
                 ' moves once', n, 200, 1200, extra='100 cpu 1 0.95')
        scenario('mem-low-standby-%d' % n, 'host2 lacks memory for the VM: it is not chosen'
                 ' when the active host crashes', n, 240,
                 extra='50 mem 2 512\n100 crash 1')
        scenario('vm-pause-%d' % n, 'the engine VM pauses: bad health, stop, forced power off,'
                 ' restart', n, 480, 1200, extra='100 vm-pause 1')
        scenario('guest-hang-unhealthy-%d' % n, 'unhealthy engine whose guest ignores shutdown:'
                 ' powered off after the stop timeout', n, 800, 1500,
                 extra='100 guest-hang 1 on\n100 engine-unhealthy 1 on')
        for kind in ('garbage', 'torn', 'crc', 'too-new', 'wrong-id'):
            scenario('corrupt-%s-active-slot-%d' % (kind, n), 'the active host\'s slot is'
                     ' corrupted (%s): skipped with a warning, rewritten next loop' % kind, n, 0,
                     extra='100 corrupt 1 %s' % kind)
        scenario('corrupt-garbage-then-crash-%d' % n, 'garbage in a standby slot, then the active'
                 ' host crashes: failover still works', n, 240,
                 extra='95 corrupt %d garbage\n100 crash 1' % n)
        scenario('corrupt-global-%d' % n, 'garbage in the global block: read as no maintenance'
                 ' with a warning, repaired by the next global maintenance command', n, 0,
                 extra='100 corrupt 0 garbage\n300 global-maint off')
        scenario('corrupt-unused-slot-%d' % n, 'garbage in unused slots inside and beyond the'
                 ' area: only the bounded area is read', n, 0,
                 extra='100 corrupt %d garbage' % (n + 1 if n < 8 else 8))
        scenario('clock-jump-active-%d' % n, 'the active host\'s timestamps jump backwards and'
                 ' forwards: only change matters', n, 0,
                 extra='100 clock-jump 1 -100000\n300 clock-jump 1 500000')
        scenario('clock-jump-standby-crash-%d' % n, 'a standby\'s timestamps jump, then the'
                 ' active host crashes', n, 240, extra='100 clock-jump 2 -5000\n200 crash 1')
    for n in (3, 4, 8):
        scenario('hostid-collision-%d' % n, 'host%d is configured with host id 2: it never'
                 ' acquires it and never starts the VM; failover goes to host2' % n, n, 240,
                 extra='200 crash 1', )
        with open(os.path.join(HERE, 'hostid-collision-%d' % n, 'cmdlist'), 'a') as f:
            f.write('hostid %d 2\n' % n)
    # maintenance in every state
    triggers = {
        'StartState': ('0', ''),
        'EngineUp': ('100', ''),
        'EngineDown': ('100', ''),
        'EngineStarting': ('245', '100 crash 1'),
        'EngineUnexpectedlyDown': ('110', '100 vm-crash 1'),
        'EngineMaybeAway': ('115', '100 vm-poweroff 1'),
        'EngineUpBadHealth': ('130', '100 engine-unhealthy 1 on'),
        'EngineStop': ('420', '100 engine-unhealthy 1 on'),
        'UnknownLocalVmState': ('130', '100 hostagent 1 down\n300 hostagent 1 up'),
        'EngineStart': ('226', '100 crash 1'),
    }
    for state, (at, before) in sorted(triggers.items()):
        for n in (2, 4):
            scenario('global-maint-in-%s-%d' % (state, n), 'global maintenance set in %s and'
                     ' cleared 4 minutes later' % state, n, 'none', 1200,
                     extra='%s\n%s global-maint on\n%d global-maint off'
                     % (before, at, int(at) + 240))
            host = 2 if state == 'EngineDown' else 1
            if state in ('EngineStarting', 'EngineStart'):
                host = 2
            scenario('local-maint-in-%s-%d' % (state, n), 'local maintenance on host%d set in %s'
                     ' and cleared 4 minutes later' % (host, state), n, 'none', 1200,
                     extra='%s\n%s local-maint %d on\n%d local-maint %d off'
                     % (before, at, host, int(at) + 240, host))
    for n in (2, 4, 16):
        scenario('global-maint-vm-crash-%d' % n, 'the VM crashes during global maintenance:'
                 ' nobody restarts it until maintenance ends', n, 'none',
                 extra='50 global-maint on\n100 vm-crash 1\n400 global-maint off')
        scenario('global-maint-host-crash-%d' % n, 'the active host crashes during global'
                 ' maintenance', n, 'none', extra='50 global-maint on\n100 crash 1\n'
                 '400 global-maint off')
        scenario('local-maint-all-standbys-%d' % n, 'every standby in local maintenance, the VM'
                 ' crashes: it restarts where it was', n, 700,
                 extra='\n'.join('50 local-maint %d on' % i for i in range(2, n + 1))
                 + '\n100 vm-crash 1')
    for n in (2, 4):
        scenario('local-maint-guest-hang-%d' % n, 'local maintenance on the active host whose'
                 ' guest ignores the shutdown: powered off after the stop timeout, restarted'
                 ' elsewhere', n, 'none', 1200,
                 extra='100 guest-hang 1 on\n100 local-maint 1 on\n800 local-maint 1 off')
    scenario('single-host-vm-crash-1', 'one host: the VM crashes and the host restarts it after'
             ' the unexpectedly-down back-off', 1, 700, 900, extra='100 vm-crash 1')
    scenario('single-host-cold-start-1', 'one host, no VM: sanlock shows no other live'
             ' host, so it starts without waiting for 60 s of history',
             1, 150, 400, vm_on='none')
    scenario('single-host-agent-restart-1', 'one host, agent restart: the VM is never touched',
             1, 0, 400, extra='100 agent-restart 1')
    scenario('crash-two-hosts-8', 'two hosts crash, including the active one', 8, 240, 900,
             extra='100 crash 1\n110 crash 2')
    scenario('crash-new-active-8', 'the active host crashes, then the new active host crashes',
             8, 480, 1200, extra='100 crash 1\n500 crash 2')
    scenario('network-partition-active-4', 'the active host loses network tests and storage',
             4, 300, 900, extra='100 net 1 0.0\n100 storage 1 lost')
    for n, new_host in ((3, 2), (4, 2), (8, 8)):
        scenario('partition-after-restart-%d' % n, 'the engine VM is killed and restarted on'
                 ' host%d, which loses its gateway 92 s after that start: the engine is healthy'
                 ' on a steady host within 180 s, and does not come back when the gateway'
                 ' returns' % new_host, n, 200, 1200,
                 extra='100 vm-kill 1\n200 net %d 0.0\n600 net %d 1.0' % (new_host, new_host))
    scenario('flapping-back-steady-lower-3', 'host1\'s gateway flaps slowly, the engine leaves'
             ' it for host2, which then loses its gateway: the engine goes to host3, steady but'
             ' scoring 700 less (CPU load), not back to host1, whose score fell within the'
             ' dwell', 3, 300, 1200,
             extra='0 cpu 3 0.75\n100 flap-net 1 180 1100 0.0\n300 net 2 0.0')
    scenario('start-defer-agent-restart-3', 'host2\'s score fell 5 minutes before the engine'
             ' VM is killed; host3 (steady, 400 less) ranks first for host2, but its agent,'
             ' restarted since, did not see host2 fall and waits for host2\'s better score:'
             ' host2 starts the VM after waiting 60 s for host3', 3, 300, 900,
             extra='0 cpu 3 0.6\n100 net 2 0.0\n220 net 2 1.0\n300 agent-restart 3\n'
             '400 vm-kill 1')
    scenario('standby-returns-better-4', 'a host with a bad score recovers: no move for'
             ' equal scores', 4, 0, 900, extra='0 cpu 2 0.95\n300 cpu 2 0.1')


if __name__ == '__main__':
    main()
