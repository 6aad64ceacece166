"""Exceptions of the runner."""


class RunnerError(Exception):
    """A problem the user can fix: shown as one line, no traceback on screen."""


class PluginLoadError(RunnerError):
    """Plugins could not be loaded or ordered (exit code 2)."""


class ConfigError(RunnerError):
    """An answer file or command-line value is invalid."""


class AbortError(Exception):
    """The run was aborted on purpose (a 'No' to a confirmation); sets BASE/aborted."""


class DialogEOF(RunnerError):
    """End of input while a question was asked (Ctrl-D)."""


class SignalReceived(BaseException):
    """A terminating signal arrived (INT, TERM, HUP, QUIT, PIPE).

    Not an Exception, so that a plugin's ``except Exception`` (a retry loop, a wait) cannot
    swallow it: it ends the run wherever it arrives."""

    def __init__(self, signum, name):
        super().__init__('Interrupted by signal %s' % name)
        self.signum = signum
        self.name = name
