"""A staged plugin runner with the observable behaviour of oVirt's otopi.

Plugins are classes derived from PluginBase whose methods decorated with @event run in
the 17 stages; they share one environment dict, ask questions through the dialog and
make changes through transactions.
"""
from .constants import BaseEnv, CoreEnv, DialogEnv, ExitCodes, Priority, Stages  # noqa: F401
from .errors import AbortError, ConfigError, PluginLoadError, RunnerError  # noqa: F401
from .events import event  # noqa: F401
from .keys import EnvKey, keys_of  # noqa: F401
from .plugin import PluginBase  # noqa: F401
from .transaction import FileTransaction, Transaction, TransactionElement  # noqa: F401
