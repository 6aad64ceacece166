"""validation of an additional host, before anything changes on it: what the first host
answered must hold on this host too.

- the engine VM's CPU type is one this host supports;
- the engine answers its health page at its FQDN from this host;
- with the admin password, the engine accepts the login and has no host of this name or
  address yet (not when the engine itself adds this host).
The bridge NIC, the gateway and this host's address are checked by the network questions.
"""
import os
import tempfile

from ovirt_hosted_engine_setup.deploy import additional_host as ah
from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import engine_api, engine_vm
from ovirt_hosted_engine_setup.runner import PluginBase, Stages, event


class Plugin(PluginBase):

    @event(stage=Stages.VALIDATION, before=(c.Events.PREVIEW,), condition=ah.additional_host)
    def _validate(self):
        env = self.environment
        cpu = env.get(c.VDSMEnv.CPU)
        if cpu:
            try:
                engine_vm.check_cpu_model(cpu, engine_vm.supported_cpu_models(
                    env[c.VDSMEnv.CAPS] or {}))
            except ValueError as e:
                raise ah.AdditionalHostError(
                    'The engine VM runs with CPU type %s (%s, from the first host), which this '
                    'host cannot run: %s: add a host of the same CPU family' % (
                        cpu, c.VDSMEnv.CPU, e))
        fqdn = env.get(c.NetworkEnv.FQDN)
        if not fqdn:
            raise ah.AdditionalHostError('The first host\'s answers give no engine FQDN (%s): '
                                         'deploy the first host again' % c.NetworkEnv.FQDN)
        base = engine_api.http_base(fqdn)
        ok, reply = engine_api.read_health(base)
        if not ok:
            raise ah.AdditionalHostError(
                'The engine at %s does not answer its health page from this host (%s): check '
                'that this host resolves %s to the engine VM and reaches it, and that the engine '
                'runs (hosted-engine --vm-status on the first host)' % (fqdn, reply, fqdn))
        self.logger.info('The engine at %s is healthy', fqdn)
        if not ah.adds_host(self):
            return
        pem = engine_api.fetch_ca(base)
        fd, ca_file = tempfile.mkstemp(prefix='engine-ca-', suffix='.pem')
        try:
            with os.fdopen(fd, 'w') as f:
                f.write(pem)
            conn = engine_api.connect(engine_api.api_url(fqdn),
                                      env[c.EngineEnv.ADMIN_USERNAME],
                                      env[c.EngineEnv.ADMIN_PASSWORD], ca_file)
            try:
                engine_api.check_cluster(conn, env[c.EngineEnv.DATACENTER_NAME],
                                         env[c.EngineEnv.CLUSTER_NAME])
                engine_api.check_host_absent(conn, env[c.EngineEnv.APP_HOST_NAME],
                                             env[c.NetworkEnv.HOST_NAME])
            finally:
                engine_api.close(conn)
        finally:
            os.unlink(ca_file)
        self.logger.info('The engine accepts the admin login; this host will be added as %s',
                         env[c.EngineEnv.APP_HOST_NAME])
