"""Errors the host agent API client raises."""


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
