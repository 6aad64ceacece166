"""Logging set-up shared by the commands and the HA daemons.

    path = logsetup.command_log(path, logging.INFO)   # hosted-engine verbs, cleanup
    logsetup.daemon_log(path, debug, filters=[...])   # ovirt-ha-agent, ovirt-ha-broker

A command logs to its file only (what the user reads is printed by the command itself);
when the file cannot be opened it logs nowhere and says so by returning None. A daemon
logs to its file (reopened when logrotate moves it) and to stderr, and cannot run
without its file: OSError is left to the caller, which tells the user which path to fix.
"""
import logging
import logging.handlers
import os
import sys

FORMAT = '%(asctime)s %(levelname)s [%(name)s] %(message)s'


def command_log(path, level):
    """Replace the root logger's handlers with one on path; the path, or None when it
    cannot be written (nothing is logged then)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handler = logging.FileHandler(path, encoding='utf-8')
    except OSError:
        root.addHandler(logging.NullHandler())
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    return path


def daemon_log(path, debug=False, fmt=FORMAT, filters=()):
    """The root logger writes to path and to stderr (DEBUG with debug, else INFO); each
    function of filters is called with each handler (e.g. to add a logging filter)."""
    level = logging.DEBUG if debug else logging.INFO
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handlers = [logging.handlers.WatchedFileHandler(path, encoding='utf-8'),
                logging.StreamHandler(sys.stderr)]
    for h in handlers:
        h.setFormatter(logging.Formatter(fmt))
        h.setLevel(level)
        for f in filters:
            f(h)
    root = logging.getLogger()
    root.setLevel(level)
    root.handlers[:] = handlers
