"""logsetup.py, the one logging set-up of the commands and the HA daemons, through the
functions the broker, the agent, the hosted-engine verbs and cleanup call."""
import logging
import os

import pytest

from ovirt_hosted_engine_setup import logsetup
from ovirt_hosted_engine_setup.ha import agent, cli_common
from ovirt_hosted_engine_setup.ha.broker import daemon as broker_daemon


@pytest.fixture(autouse=True)
def root_logger():
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield root
    for h in root.handlers:
        if h not in saved:
            h.close()
    root.handlers[:] = saved
    root.setLevel(level)


def test_daemon_logs_follow_logrotate(tmp_path, capsys):
    # the broker kept writing into the moved file before it shared the agent's set-up
    for setup, name in ((broker_daemon.setup_logging, 'broker.log'),
                        (agent.setup_logging, 'agent.log')):
        path = tmp_path / 'logs' / name
        setup(str(path), False)
        log = logging.getLogger('test.%s' % name)
        log.info('before rotation')
        log.debug('not at INFO')
        os.rename(path, str(path) + '.1')
        log.info('after rotation')
        assert 'before rotation' in open(str(path) + '.1').read()
        text = path.read_text()
        assert 'after rotation' in text and 'before rotation' not in text
        assert 'not at INFO' not in text
        err = capsys.readouterr().err
        assert 'before rotation' in err and 'after rotation' in err


def test_daemon_debug_and_filters(tmp_path):
    seen = []
    logsetup.daemon_log(str(tmp_path / 'd.log'), debug=True, filters=[seen.append])
    logging.getLogger('x').debug('a debug line')
    assert 'a debug line' in (tmp_path / 'd.log').read_text()
    assert len(seen) == 2      # the file and stderr


def test_daemon_without_its_file(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(OSError):
        logsetup.daemon_log(str(blocker / 'sub' / 'x.log'))
    with pytest.raises(agent.ConfigError) as e:
        agent.setup_logging(str(blocker / 'sub' / 'agent.log'))
    assert 'give --log-file with a writable path' in str(e.value)


def test_command_log(tmp_path, monkeypatch):
    path = tmp_path / 'cli' / 'hosted-engine-cli.log'
    monkeypatch.setattr(cli_common, 'LOG_FILE', str(path))
    assert cli_common.setup_logging() == str(path)
    logging.getLogger('ovirt_hosted_engine_setup.ha.cli').info('a verb ran')
    logging.getLogger('y').debug('below INFO')
    text = path.read_text()
    assert 'INFO [ovirt_hosted_engine_setup.ha.cli] a verb ran' in text
    assert 'below INFO' not in text
    assert len(logging.getLogger().handlers) == 1
    blocker = tmp_path / 'file'
    blocker.write_text('')
    assert logsetup.command_log(str(blocker / 'x.log'), logging.DEBUG) is None
    assert isinstance(logging.getLogger().handlers[0], logging.NullHandler)
