"""Long waits that say what they wait for, how long it has been and the limit.

    reporter = Reporter(logger)            # callable(what, elapsed, limit)
    domain.prepare_domain(client, spec, reporter)
    value = wait_until(check, 'the engine health page to answer "DB Up"', 300, 5, reporter)

The first call for a ``what`` logs at once, later calls at most every ``every`` seconds, so
a user never watches more than ``every`` seconds of silence.
"""
import logging
import time


class WaitTimeout(Exception):
    """A wait reached its limit; the message names what was awaited and the last state."""


class Reporter:
    def __init__(self, logger=None, every=10.0, level=logging.INFO):
        self.logger = logger or logging.getLogger('ovirt_hosted_engine_setup.progress')
        self.every = every
        self.level = level
        self._last = {}

    def __call__(self, what, elapsed, limit=None, detail=None):
        last = self._last.get(what)
        if last is not None and elapsed - last < self.every:
            return
        self._last[what] = elapsed
        text = 'Waiting for %s: %d s elapsed' % (what, elapsed)
        if limit:
            text += ' (limit %d s)' % limit
        if detail:
            text += ', %s' % detail
        self.logger.log(self.level, '%s', text)


def wait_until(check, what, limit, interval=1.0, reporter=None, clock=time.monotonic,
               sleep=time.sleep):
    """Call ``check()`` every ``interval`` seconds until it returns a true value, and return it.

    ``check`` may return (value, detail): detail (a short text such as the last reply) is
    shown with the progress and in the timeout message. On the limit, raise WaitTimeout.
    """
    t0 = clock()
    detail = None
    while True:
        result = check()
        if isinstance(result, tuple) and len(result) == 2:
            result, detail = result
        if result:
            return result
        elapsed = clock() - t0
        if elapsed >= limit:
            raise WaitTimeout('timed out after %d s waiting for %s%s' % (
                limit, what, ' (last: %s)' % detail if detail else ''))
        if reporter is not None:
            reporter(what, elapsed, limit, detail)
        sleep(min(interval, max(0.0, limit - elapsed)))
