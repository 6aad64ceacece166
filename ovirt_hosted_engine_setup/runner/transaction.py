"""Transactions: elements are prepared (no visible change), then committed or aborted."""
import datetime
import logging
import os
import tempfile

logger = logging.getLogger('otopi.transaction')


class TransactionElement:
    """One reversible piece of work; str() says what it is (shown when it is rolled back)."""

    def __str__(self):
        return type(self).__name__

    def prepare(self):
        """Do everything that can fail, without a visible change."""

    def abort(self):
        """Undo what prepare did."""

    def commit(self):
        """Make the change visible."""


class Transaction:
    """An ordered set of elements. Used as a context manager it commits on success and
    aborts on an exception; the runner's main transaction is prepared at transaction-prepare
    and committed at transaction-commit."""

    def __init__(self):
        self._elements = []
        self._prepared = []
        self.active = False
        self.committed = False
        self.rolled_back = []     # what the last abort undid (str of each element)

    def append(self, element):
        self._elements.append(element)
        if self.active:
            self._prepare_one(element)

    def _prepare_one(self, element):
        logger.debug('preparing transaction element %s', element)
        # listed first: a prepare that fails or is interrupted half-way is aborted too, so an
        # element's abort must cope with a prepare that did not finish
        self._prepared.append(element)
        element.prepare()

    def prepare(self):
        self.active = True
        for element in self._elements:
            if element not in self._prepared:
                self._prepare_one(element)

    def commit(self):
        for element in self._prepared:
            logger.debug('committing transaction element %s', element)
            element.commit()
        self.committed = True
        self._done()

    def abort(self):
        self.rolled_back = [str(e) for e in reversed(self._prepared)]
        for element in reversed(self._prepared):
            try:
                logger.debug('aborting transaction element %s', element)
                element.abort()
            except Exception:
                logger.exception('Aborting transaction element %s failed', element)
        self._done()

    def _done(self):
        self._elements = []
        self._prepared = []
        self.active = False

    def __enter__(self):
        self.prepare()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


class FileTransaction(TransactionElement):
    """Write a whole file: a temporary file in the same directory is written and fsynced at
    prepare; commit keeps a timestamped backup of the replaced file (when ``backup``) and
    renames; abort removes the temporary file and any directory prepare created."""

    def __init__(self, name, content, mode=0o644, owner=None, backup=True, dir_mode=0o755):
        self.name = os.path.abspath(name)
        self.content = content if isinstance(content, bytes) else str(content).encode('utf-8')
        self.mode = mode
        self.owner = owner
        self.backup = backup
        self.dir_mode = dir_mode
        self._tmp = None
        self._created_dirs = []
        self.backup_name = None

    def __str__(self):
        return 'file %s' % self.name

    def prepare(self):
        directory = os.path.dirname(self.name)
        missing = []
        d = directory
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            os.mkdir(d, self.dir_mode)
            self._created_dirs.append(d)
        fd, self._tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(self.name),
                                         suffix='.tmp', dir=directory)
        try:
            os.fchmod(fd, self.mode)
            if self.owner is not None:
                os.fchown(fd, *self.owner)
            os.write(fd, self.content)
            os.fsync(fd)
        finally:
            os.close(fd)

    def commit(self):
        if self.backup and os.path.exists(self.name):
            stamp = datetime.datetime.now().strftime('%Y%m%d%H%M%S')
            self.backup_name = '%s.%s' % (self.name, stamp)
            if not os.path.exists(self.backup_name):
                os.link(self.name, self.backup_name)
        os.rename(self._tmp, self.name)
        self._tmp = None
        dfd = os.open(os.path.dirname(self.name), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def abort(self):
        if self._tmp and os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._tmp = None
        for d in reversed(self._created_dirs):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self._created_dirs = []


def write_file(name, content, mode=0o644, backup=True):
    """Write one file through its own transaction (nothing visible if it fails)."""
    with Transaction() as t:
        t.append(FileTransaction(name, content, mode=mode, backup=backup))
