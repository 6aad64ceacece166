"""The sanlock I/O timeout question of the storage section (first host): its range, the
preview line with the failover floor it implies, and the warning below 5 s on remote storage
(asked when typed; refused from an answer file unless accepted)."""
import logging

import pytest

from ovirt_hosted_engine_setup.deploy import constants as c
from ovirt_hosted_engine_setup.deploy import validators
from ovirt_hosted_engine_setup.he_storage import layout

from .plugin_packages import Context, load

storage = load('gr-he-setup', 'storage').storage


def plugin(dtype, timeout=None, accepted=(), answers=()):
    env = {c.StorageEnv.DOMAIN_TYPE: dtype, c.StorageEnv.IO_TIMEOUT: timeout,
           c.CoreEnv.ACCEPTED_WARNINGS: list(accepted)}
    p = storage.Plugin(Context(env, answers))
    p.logger = logging.getLogger('test')
    return p


def test_the_range_and_the_preview_text():
    assert validators.io_timeout('10') == 10
    for bad in ('0', '61', 'x'):
        with pytest.raises(ValueError):
            validators.io_timeout(bad)
    with pytest.raises(ValueError) as e:
        validators.io_timeout(61)
    assert str(e.value) == ("61 s is not a sanlock I/O timeout: use 1 to 60 seconds "
                            "(VDSM's default is 10)")
    assert validators.io_timeout_text(10) == \
        '10 s (a crashed host is known dead after 140 s)'
    assert c.StorageEnv.IO_TIMEOUT.preview == 'sanlock I/O timeout'
    assert c.StorageEnv.IO_TIMEOUT.preview_text(3) == '3 s (a crashed host is known dead after 84 s)'
    assert layout.failover_floor(layout.DEFAULT_IO_TIMEOUT) == 140


def test_typed_default_and_a_refused_value():
    p = plugin('nfs', answers=['0', ''])
    p._io_timeout()
    assert p.environment[c.StorageEnv.IO_TIMEOUT] == 10
    (name, note, default), (kind, why, _) = p.dialog.asked
    assert name == 'STORAGE_SANLOCK_IO_TIMEOUT' and default == 10
    assert 'dead 8 x timeout + 60 s after its last renewal' in note
    assert kind == 'invalid' and why == '0 is not a positive number'


def test_short_timeout_on_remote_storage_is_asked_again_unless_accepted():
    p = plugin('glusterfs', answers=['3', False, '4', True])
    p._io_timeout()
    env = p.environment
    assert env[c.StorageEnv.IO_TIMEOUT] == 4
    assert [a[0] for a in p.dialog.asked] == [
        'STORAGE_SANLOCK_IO_TIMEOUT', 'STORAGE_ACCEPT_SHORT_IO_TIMEOUT',
        'STORAGE_SANLOCK_IO_TIMEOUT', 'STORAGE_ACCEPT_SHORT_IO_TIMEOUT']
    assert env[c.CoreEnv.ACCEPTED_WARNINGS] == ['short-io-timeout']


def test_short_timeout_from_an_answer_file():
    # local storage: no warning
    p = plugin('localfs', timeout=2)
    p._io_timeout()
    assert p.dialog.asked == [] and p.environment[c.StorageEnv.IO_TIMEOUT] == 2
    # remote, accepted in the answer file: no question
    p = plugin('nfs', timeout='2', accepted=['short-io-timeout'])
    p._io_timeout()
    assert p.dialog.asked == [] and p.environment[c.StorageEnv.IO_TIMEOUT] == 2
    # remote, not accepted: asked once; No ends the deploy with the fix in one line
    p = plugin('nfs', timeout=2, answers=[False])
    with pytest.raises(storage.StorageCheckError) as e:
        p._io_timeout()
    assert str(e.value) == (
        'A sanlock I/O timeout of 2 s on nfs storage was not accepted: give '
        'OVEHOSTED_STORAGE/sanlockIoTimeout of at least 5, or accept the warning '
        'short-io-timeout in OVEHOSTED_CORE/acceptedWarnings')
    # out of range from an answer file
    p = plugin('nfs', timeout=0)
    with pytest.raises(storage.StorageCheckError) as e:
        p._io_timeout()
    assert str(e.value) == 'OVEHOSTED_STORAGE/sanlockIoTimeout=0: 0 is not a positive number'
