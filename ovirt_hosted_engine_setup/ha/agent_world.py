"""What ovirt-ha-agent sees of its host: the world the one agent loop runs in.

The agent loop (ha/agent_loop.py) observes and acts only through an
``AgentWorld``:

- the broker's local socket API (docs/ha-services.md): ``broker(method, **params)``
  (status, monitors, vm_lease_owner, put_host, notify) and ``read_area()`` (the
  metadata area the broker's read_area gives, parsed by ha/metadata.py), raising
  BrokerUnavailable or BrokerError;
- the host agent API (VDSM's, or ovirt-hosted-engine-hostd's) for the engine VM:
  ``host_agent(method, **params)`` (VM.getStats, VM.create, VM.destroy,
  VM.shutdown), raising the api.errors exceptions;
- the local files: ha.conf (local maintenance, as Host.setHaMaintenanceMode
  writes it), the local copy of vm.conf, and the configuration volume on shared
  storage that vm.conf is refreshed from;
- the monotonic clock and the wait between loops.

``HostWorld`` is the real one the daemon (ha/agent.py) passes: a BrokerClient,
a host agent client, the files and ``time.monotonic``. The simulator
(ha/simulator/world.py) passes one simulated world per virtual host, backed
by its virtual cluster.
"""
import base64
import binascii
import logging
import threading
import time
from typing import Protocol

from ..he_storage.heconf import write as write_atomic
from . import metadata

log = logging.getLogger('ovirt_hosted_engine_setup.ha.agent')


class AgentWorld(Protocol):
    vm_conf_path: str        # where the local copy of vm.conf lives (named in messages)

    def connect_broker(self) -> str:
        """Ping the broker; its address. Raises BrokerUnavailable or BrokerError."""

    def broker(self, method, **params):
        """One broker call; its result. Raises BrokerUnavailable or BrokerError."""

    def read_area(self, max_hosts=None):
        """The metadata area (metadata.AreaView) from the broker's read_area, bounded to
        the host slots the broker names (else ``max_hosts``, as the status gave it).
        Raises BrokerUnavailable or BrokerError, ValueError (or KeyError, TypeError) when
        the reply is malformed."""

    def connect_host_agent(self) -> str:
        """Ping the host agent; its address. Raises api.errors.ApiError."""

    def host_agent(self, method, **params):
        """One host agent verb; its result. Raises api.errors.ApiError."""

    def drop_host_agent(self):
        """Forget the host agent connection (after a transport error)."""

    def read_ha_conf(self):
        """ha.conf's text, None when there is none. Raises OSError."""

    def read_vm_conf(self):
        """The local vm.conf's text, None when there is none. Raises OSError."""

    def write_vm_conf(self, text):
        """Replace the local vm.conf (mode 0600). Raises OSError."""

    def read_config_volume(self):
        """vm.conf from the configuration volume; None when the configuration names no
        volume. Raises any error the volume gives."""

    def monotonic(self) -> float:
        """The host's monotonic clock, seconds."""

    def wait(self, seconds) -> bool:
        """Wait; True when the agent is asked to stop."""

    def stopping(self) -> bool:
        """Whether the agent is asked to stop."""

    def close(self):
        """Close the broker and host agent connections."""


class HostWorld:
    """The real host: the broker socket, the host agent API, files, the monotonic clock."""

    def __init__(self, *, broker, host_agent_factory, vm_conf_path, ha_conf_path,
                 config_volume=None, stop_event=None, clock=time.monotonic):
        self.broker_client = broker
        self.host_agent_factory = host_agent_factory
        self.client = None
        self.vm_conf_path = vm_conf_path
        self.ha_conf_path = ha_conf_path
        self.config_volume = config_volume     # callable -> vm.conf text, or None
        self.stop_event = stop_event or threading.Event()
        self.clock = clock

    # -- the broker --------------------------------------------------------------
    def connect_broker(self):
        self.broker_client.call('ping')
        return self.broker_client.socket_path

    def broker(self, method, **params):
        return self.broker_client.call(method, **params)

    def read_area(self, max_hosts=None):
        res = self.broker_client.call('read_area')
        try:
            data = base64.b64decode(res['area'], validate=True)
        except binascii.Error as e:
            raise ValueError(str(e))
        return metadata.parse_area(data, int(res.get('max_hosts') or max_hosts or 0))

    # -- the host agent ------------------------------------------------------------
    def _client(self):
        if self.client is None:
            self.client = self.host_agent_factory()
        return self.client

    def connect_host_agent(self):
        client = self._client()
        try:
            client.ping(timeout=30)
        except Exception:
            self.drop_host_agent()
            raise
        return '%s:%d' % (client.host, client.port)

    def host_agent(self, method, **params):
        return self._client().call(method, **params)

    def drop_host_agent(self):
        if self.client is not None:
            client, self.client = self.client, None
            try:
                client.close()
            except Exception:   # closing a broken connection must not stop the agent
                log.debug('closing the host agent client failed', exc_info=True)

    # -- files ---------------------------------------------------------------------
    @staticmethod
    def _read(path):
        try:
            with open(path, encoding='utf-8') as f:
                return f.read()
        except FileNotFoundError:
            return None

    def read_ha_conf(self):
        return self._read(self.ha_conf_path)

    def read_vm_conf(self):
        return self._read(self.vm_conf_path)

    def write_vm_conf(self, text):
        write_atomic(self.vm_conf_path, text.encode('utf-8'), 0o600)

    def read_config_volume(self):
        return None if self.config_volume is None else self.config_volume()

    # -- time ----------------------------------------------------------------------
    def monotonic(self):
        return self.clock()

    def wait(self, seconds):
        return self.stop_event.wait(seconds)

    def stopping(self):
        return self.stop_event.is_set()

    def close(self):
        try:
            if self.broker_client is not None:
                self.broker_client.close()
        finally:
            self.drop_host_agent()
