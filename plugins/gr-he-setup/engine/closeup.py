"""closeup, the engine steps: engine-setup's output from the VM's setup channel, the health
page, the engine CA (trusted by the host agent), and this host added to the engine and Up.

Each step is one event named in constants.Events, in this order after VM_STARTED:
ENGINE_SETUP_DONE -> ENGINE_ALIVE -> ENGINE_CA_AVAILABLE -> HOST_ADDED.
"""
import os
import re
import socket

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy.additional_host import adds_host, first_host
from ovirt_hosted_engine_setup.deploy import engine_api, host_agent
from ovirt_hosted_engine_setup.deploy.restore_engine import restoring
from ovirt_hosted_engine_setup import progress
from ovirt_hosted_engine_setup.api.client import DEFAULT_PORT, VDSM_CAFILE
from ovirt_hosted_engine_setup.runner import PluginBase, Priority, Stages, event
from ovirt_hosted_engine_setup.runner.transaction import write_file

from .vm_start import down_detail

HEALTH_INTERVAL = 1
HOST_UP_INTERVAL = 1
_LEVEL = re.compile(r'^\[\s*(INFO|WARNING|ERROR|DEBUG)\s*\]\s?(.*)$')

class Plugin(PluginBase):

    def _reporter(self):
        return progress.Reporter(self.logger)

    def _fqdn(self):
        fqdn = self.environment.get(c.NetworkEnv.FQDN)
        if not fqdn:
            raise RuntimeError('The engine FQDN (%s) is not set: give it in the answer file'
                               % c.NetworkEnv.FQDN)
        return fqdn

    # -- engine-setup in the VM -------------------------------------------------------

    def _show(self, line):
        m = _LEVEL.match(line)
        level, text = (m.group(1), m.group(2)) if m else ('INFO', line)
        if level == 'ERROR':
            self.logger.error('engine-setup: %s', text)
        elif level == 'WARNING':
            self.logger.warning('engine-setup: %s', text)
        elif level == 'DEBUG':
            self.logger.debug('engine-setup: %s', text)
        else:
            self.logger.info('engine-setup: %s', text)

    @event(stage=Stages.CLOSEUP, name=c.Events.ENGINE_SETUP_DONE, priority=Priority.HIGH,
           after=(c.Events.VM_STARTED,),
           condition=lambda self: first_host(self) and not restoring(self))
    def _engine_setup(self):
        env = self.environment
        run_setup = env.get(c.VMEnv.CLOUDINIT_EXECUTE_ESETUP)
        if not run_setup or env.get(c.VMEnv.CLOUD_INIT_ISO) == 'skip':
            self.dialog.note(
                'engine-setup is not run automatically in the engine VM: connect to the VM '
                '(console above, or hosted-engine --console), run engine-setup there with '
                'the FQDN %s; this deploy waits for the engine health page '
                '(limit %s s)' % (env.get(c.NetworkEnv.FQDN), env[c.EngineEnv.HEALTH_TIMEOUT]))
            return
        path = env.get(c.VMEnv.CHANNEL_PATH)
        if not path:
            raise RuntimeError('The engine VM setup channel path (%s) is not set: the misc '
                               'stage did not define it; deploy again' % c.VMEnv.CHANNEL_PATH)
        client = env[c.VDSMEnv.CLIENT]
        vm_id = env[c.VMEnv.VM_UUID]

        def alive():
            stats = host_agent.vm_stats(client, vm_id)
            if stats is None or stats.get('status') == 'Down':
                return False, down_detail(stats)
            return True, 'status %s' % stats.get('status')
        limit = int(env[c.EngineEnv.ENGINE_SETUP_TIMEOUT])
        self.logger.info('Running engine-setup in the engine VM (its output follows; limit '
                         '%d s)', limit)
        base = engine_api.http_base(self._fqdn())

        def healthy():
            ok, reply = engine_api.read_health(base)
            return ok, 'the engine health page answers %r' % reply
        if engine_api.stream_setup_channel(path, self._show, limit, self._reporter(),
                                           alive=alive, finished=healthy):
            self.logger.info('engine-setup finished successfully in the engine VM')

    # -- health page -------------------------------------------------------------------

    @event(stage=Stages.CLOSEUP, name=c.Events.ENGINE_ALIVE, priority=Priority.HIGH,
           after=(c.Events.ENGINE_SETUP_DONE,))
    def _engine_alive(self):
        env = self.environment
        limit = int(env[c.EngineEnv.HEALTH_TIMEOUT])
        reply = engine_api.wait_healthy(engine_api.http_base(self._fqdn()), limit,
                                        HEALTH_INTERVAL, self._reporter())
        self.logger.info('Engine replied: %s', reply)

    # -- the engine CA -------------------------------------------------------------------

    @event(stage=Stages.CLOSEUP, name=c.Events.ENGINE_CA_AVAILABLE, priority=Priority.HIGH,
           after=(c.Events.ENGINE_ALIVE,))
    def _engine_ca(self):
        env = self.environment
        fqdn = self._fqdn()
        pem = engine_api.fetch_ca(engine_api.http_base(fqdn))
        env[c.EngineEnv.CA_CERT] = pem
        env[c.EngineEnv.CA_FINGERPRINT] = engine_api.fingerprint(pem)
        env[c.EngineEnv.CA_SUBJECT] = engine_api.subject(pem)
        self.logger.info('Engine CA: %s, SHA-256 fingerprint %s',
                         env[c.EngineEnv.CA_SUBJECT], env[c.EngineEnv.CA_FINGERPRINT])
        path = host_agent.trusted_ca_path(fqdn)
        try:
            write_file(path, pem, mode=0o644, backup=False)
        except OSError as e:
            raise RuntimeError('Cannot install the engine CA as %s (%s): check the host agent '
                               'directory %s' % (path, e.strerror or e, host_agent.root()))
        env[c.EngineEnv.CA_FILE] = path
        self.logger.info('The host agent now trusts the engine CA (%s)', path)

    # -- this host in the engine ------------------------------------------------------

    def _agent_ca(self):
        """The CA that signed the host agent's certificate (the engine verifies the agent
        with it), or None (the engine then trusts the agent's certificate on first use)."""
        for path in (os.path.join(host_agent.root(), 'pki', 'cacert.pem'), VDSM_CAFILE):
            try:
                with open(path) as f:
                    return f.read()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise RuntimeError('Cannot read the host agent CA %s (%s): check the host '
                                   'agent certificates' % (path, e.strerror or e))
        self.logger.warning('No host agent CA certificate found: the engine will trust the '
                            'host agent certificate on first use')
        return None

    @event(stage=Stages.CLOSEUP, name=c.Events.HOST_ADDED, priority=Priority.HIGH,
           after=(c.Events.ENGINE_CA_AVAILABLE,), condition=adds_host)
    def _add_host(self):
        env = self.environment
        fqdn = self._fqdn()
        name = env[c.EngineEnv.APP_HOST_NAME]
        address = env.get(c.NetworkEnv.HOST_NAME) or socket.getfqdn()
        port = host_agent.port()
        conn = engine_api.connect(engine_api.api_url(fqdn), env[c.EngineEnv.ADMIN_USERNAME],
                                  env[c.EngineEnv.ADMIN_PASSWORD], env[c.EngineEnv.CA_FILE])
        try:
            if restoring(self):
                # the restored engine has the backup's data centers and clusters: one this
                # deploy names and the backup lacks is created
                dc, cluster, created = engine_api.ensure_cluster(
                    conn, env[c.EngineEnv.DATACENTER_NAME], env[c.EngineEnv.CLUSTER_NAME])
                for what in created:
                    self.logger.info('Created %s in the restored engine', what)
            else:
                dc, cluster = engine_api.check_cluster(conn, env[c.EngineEnv.DATACENTER_NAME],
                                                       env[c.EngineEnv.CLUSTER_NAME])
            self.logger.info('Adding this host to the engine as %s (address %s, cluster %s '
                             'of data center %s)', name, address, cluster.name, dc.name)
            host = engine_api.add_host(
                conn, name, address, cluster, ca_pem=self._agent_ca(),
                port=port if port != DEFAULT_PORT else None)
            self.logger.info('Waiting for the host to become operational in the engine. This '
                             'may take several minutes...')
            hint = ('check that the engine VM resolves %s and reaches it on port %d (DNS or '
                    '/etc/hosts, firewall), and look at the host agent log '
                    '/var/log/ovirt-hosted-engine-hostd/hostd.log and at '
                    '/var/log/ovirt-engine/engine.log in the engine VM' % (address, port))
            engine_api.wait_host_up(conn, host.id, int(env[c.EngineEnv.HOST_UP_TIMEOUT]),
                                    HOST_UP_INTERVAL, self._reporter(), name=name, hint=hint)
            self.logger.info('The host %s is now Up in the engine', name)
        finally:
            engine_api.close(conn)
