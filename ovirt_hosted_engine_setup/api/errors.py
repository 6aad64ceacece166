"""Errors the host agent API client raises, and the error codes callers tell apart."""
from .schema import error_code

# The host agent's "Virtual machine does not exist" (VDSM's noVM): the HA agent, the
# broker, the hosted-engine verbs and cleanup take it for "no engine VM on this host".
NO_SUCH_VM = error_code('noVM')


class ApiError(Exception):
    """Base of the client's errors."""


class ConnectionFailed(ApiError):
    """The host agent could not be reached, or the connection broke."""


class CallTimeout(ApiError):
    """No answer to a call within its timeout."""


class ServerError(ApiError):
    """The host agent answered with a JSON-RPC error."""

    def __init__(self, code, message):
        super().__init__('code %s: %s' % (code, message))
        self.code = code
        self.message = message
