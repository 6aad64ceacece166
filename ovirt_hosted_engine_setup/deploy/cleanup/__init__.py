"""ovirt-hosted-engine-cleanup: undo a hosted-engine deploy on this host.

- leftovers: what a deploy left (hosted-engine.conf, the answers, the storage domain, the
  engine VM, the generated files), as the files and the host agent tell it;
- processes: stopping the HA daemons;
- lockspace: leaving the ``hosted-engine`` sanlock lockspace;
- steps: the steps in order and their one-line reports (Cleanup);
- cli: the command line, the log file, main().

What each step does: docs/cleanup-and-safety.md and steps.py.
"""


PROG = 'ovirt-hosted-engine-cleanup'


class StepFailed(Exception):
    """A step failed; str() is one line naming the problem and the fix."""


class StepSkipped(Exception):
    """A step could not run (the host agent is down); str() says why and what to do."""


def reason(exc):
    msg = getattr(exc, 'message', None) or str(exc).split('; ')[0]
    code = getattr(exc, 'code', None)
    return ('code %s: %s' % (code, msg)) if code is not None else msg
