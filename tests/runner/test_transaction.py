"""Transactions and file writes."""
import os

import pytest

from ovirt_hosted_engine_setup.runner.transaction import (FileTransaction, Transaction,
                                                          write_file)

from .helpers import run


def test_file_transaction_commit_keeps_backup(tmp_path):
    target = tmp_path / 'conf'
    target.write_text('old')
    with Transaction() as t:
        t.append(FileTransaction(str(target), 'new', mode=0o640))
        assert target.read_text() == 'old'        # invisible before commit
    assert target.read_text() == 'new'
    assert oct(target.stat().st_mode & 0o777) == '0o640'
    backups = [p for p in os.listdir(tmp_path) if p.startswith('conf.')]
    assert len(backups) == 1 and (tmp_path / backups[0]).read_text() == 'old'


def test_file_transaction_abort_leaves_nothing(tmp_path):
    target = tmp_path / 'new' / 'dir' / 'conf'
    with pytest.raises(RuntimeError):
        with Transaction() as t:
            t.append(FileTransaction(str(target), 'content'))
            raise RuntimeError('later step failed')
    assert not (tmp_path / 'new').exists()
    assert os.listdir(tmp_path) == []


def test_write_file_mode(tmp_path):
    write_file(str(tmp_path / 'a'), 'x', mode=0o600)
    assert oct((tmp_path / 'a').stat().st_mode & 0o777) == '0o600'
    assert os.listdir(tmp_path) == ['a']


def test_main_transaction_aborted_on_failure(tmp_path):
    target = tmp_path / 'out' / 'file.conf'
    src = '''
class Plugin(PluginBase):
    @event(stage=Stages.MISC)
    def write(self):
        self.context.main_transaction.append(FileTransaction(%r, 'data'))

    @event(stage=Stages.MISC, priority=Priority.LOW)
    def fail(self):
        raise RuntimeError('failure after the write')
''' % str(target)
    r = run(tmp_path, {'p': src})
    assert r.code == 1
    assert not (tmp_path / 'out').exists()


def test_main_transaction_committed_on_success(tmp_path):
    target = tmp_path / 'out' / 'file.conf'
    src = '''
class Plugin(PluginBase):
    @event(stage=Stages.MISC)
    def write(self):
        self.context.main_transaction.append(FileTransaction(%r, 'data'))
        self.environment['TEST/visible_in_misc'] = __import__('os').path.exists(%r)
''' % (str(target), str(target))
    r = run(tmp_path, {'p': src})
    assert r.code == 0
    assert r.env['TEST/visible_in_misc'] is False
    assert target.read_text() == 'data'


def test_prepare_failing_half_way_is_aborted(tmp_path):
    """A prepare that fails (or is interrupted) after creating its temporary file and
    directories is aborted too: nothing is left."""
    class Failing(FileTransaction):
        def prepare(self):
            super().prepare()
            raise OSError('disk full')

    with pytest.raises(OSError):
        with Transaction() as t:
            t.append(FileTransaction(str(tmp_path / 'a' / 'first'), 'x'))
            t.append(Failing(str(tmp_path / 'b' / 'second'), 'y'))
    assert os.listdir(tmp_path) == []
