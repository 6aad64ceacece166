"""What the VM questions share: asking a key or validating its preset value the same way,
yes/no values, and warnings that need the user's confirmation."""
import logging
import re

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.runner import AbortError, typed

SECTION = dict(after=(c.Events.TITLE_S_VM,), before=(c.Events.TITLE_E_VM,))
# events of the VM section, in the order they run
E_OVF = 'ohosted.vm.ovf'
E_SIZING = 'ohosted.vm.sizing'
E_CLOUDINIT = 'ohosted.vm.cloudinit'

logger = logging.getLogger('otopi.plugins.ovirt_he_plugins.gr_he_setup.vm')


def ask(plugin, key, name, note, validator, default=None, **kw):
    """Ask key when it has no value; else validate the given one with the same validator.

    Returns (value, typed): typed is True when the user answered now. A bad preset value
    raises ValueError naming the key, the value and the reason.
    """
    env = plugin.environment
    if env.get(key) is None:
        env[key] = plugin.dialog.query_string(name, note, default=default, validator=validator,
                                              **kw)
        return env[key], plugin.dialog.last_answer_typed
    try:
        result = validator(env[key]) if validator is not None else None
    except ValueError as e:
        raise ValueError('Invalid %s=%s: %s' % (key, env[key], e))
    if result is not None:
        env[key] = result
    return env[key], False


def to_bool(value, key):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in typed.TRUE_WORDS:        # the runner's one table of bool spellings
        return True
    if text in typed.FALSE_WORDS:
        return False
    raise ValueError('Invalid %s=%s: give bool:True or bool:False' % (key, value))


def ask_yes_no(plugin, key, name, note, default):
    env = plugin.environment
    if env.get(key) is None:
        env[key] = plugin.dialog.query_yes_no(name, note, default=default)
    else:
        env[key] = to_bool(env[key], key)
    return env[key]


def accepted_warnings(env):
    value = env.get(c.CoreEnv.ACCEPTED_WARNINGS) or []
    if isinstance(value, str):
        value = [w for w in re.split(r'[,\s]+', value) if w]
    return list(value)


def confirm_warning(plugin, warning_id, text):
    """Warn; ask to continue (default No) unless warning_id is already accepted.

    Returns True when accepted (and records the id in OVEHOSTED_CORE/acceptedWarnings).
    """
    env = plugin.environment
    accepted = accepted_warnings(env)
    if warning_id in accepted:
        plugin.logger.warning('%s (accepted: %s)', text, warning_id)
        return True
    plugin.logger.warning('%s', text)
    ok = plugin.dialog.query_yes_no(
        'OVEHOSTED_ACCEPT_%s' % warning_id.upper().replace('-', '_'),
        'Do you want to continue anyway?', default=False)
    if ok:
        env[c.CoreEnv.ACCEPTED_WARNINGS] = accepted + [warning_id]
    return ok


def refused(text, warning_id, key):
    return AbortError('%s: not accepted; give %s a larger value, or accept it by listing %s '
                      'in %s' % (text, key, warning_id, c.CoreEnv.ACCEPTED_WARNINGS))
