"""engine-psql of the lab engine: SQL statements against the engine's database.

    python3 -m ovirt_hosted_engine_setup.lab.engine.psql --state-dir D -c SQL [-c SQL]...

In the appliance it is /usr/share/ovirt-engine/dbscripts/engine-psql.sh (state directory
/var/lib/ovirt-engine-lab), as oVirt's engine-psql.sh runs psql on the engine database.
All the statements run in one transaction: rows of each statement that returns rows are
printed one per line, columns joined by `|` (NULL as an empty string), as `psql -A -t`
prints them. An SQL error rolls everything back, prints `ERROR:  <message>` on stderr
and exits 1. The engine reads its inventory from the database on every request, so what
a statement changes is what the engine serves next.
"""
import argparse
import os
import sqlite3
import sys

from . import database


class PsqlError(Exception):
    pass


def split_statements(sql):
    """The statements of a text, each complete (as sqlite3.complete_statement says)."""
    out = []
    start = 0
    for i, ch in enumerate(sql):
        if ch == ';' and sqlite3.complete_statement(sql[start:i + 1]):
            stmt = sql[start:i + 1].strip()
            if stmt.strip(';').strip():
                out.append(stmt)
            start = i + 1
    tail = sql[start:].strip()
    if tail:
        out.append(tail)
    return out


def _cell(v):
    if v is None:
        return ''
    if isinstance(v, bytes):
        return '\\x' + v.hex()
    return str(v)


def run(state_dir, commands, write=sys.stdout.write):
    """Run the statements of all commands in one transaction; rows go to write()."""
    path = os.path.join(state_dir, database.DB_FILE)
    if not os.path.exists(path):
        raise PsqlError('the engine database does not exist in %s: restore a backup or run '
                        'engine-setup first' % state_dir)
    try:
        db = database.Database(path)
    except database.DatabaseError as e:
        raise PsqlError(str(e))
    conn = db.conn
    try:
        conn.execute('BEGIN IMMEDIATE')
        try:
            for sql in commands:
                for stmt in split_statements(sql):
                    cur = conn.execute(stmt)
                    if cur.description is not None:
                        for row in cur.fetchall():
                            write('|'.join(_cell(v) for v in row) + '\n')
            conn.execute('COMMIT')
        except BaseException:
            if conn.in_transaction:
                conn.execute('ROLLBACK')
            raise
    finally:
        db.close()


def main(argv=None):
    p = argparse.ArgumentParser(prog='engine-psql.sh',
                                description="Run SQL statements on the lab engine's database.")
    p.add_argument('--state-dir', required=True, help="the engine's state directory")
    p.add_argument('-c', '--command', action='append', required=True, dest='commands',
                   help='SQL statements (repeatable; all run in one transaction)')
    a = p.parse_args(argv)
    try:
        run(a.state_dir, a.commands)
    except sqlite3.Error as e:
        print('ERROR:  %s' % e, file=sys.stderr)
        return 1
    except PsqlError as e:
        print('psql: error: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
