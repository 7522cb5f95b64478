"""The ledger's bulk statements, one class per database dialect, chosen once per ledger; and the database's clock.

Each class does the same four things in one statement (or one driver call) each, the way its database and
driver do them fastest: store new records (with their extra fields as JSON) and tell which rows were stored,
store error rows, store the downstream's verdicts, and refresh the planner's statistics. Each also says how a
batch import's staging may cache more of the database's pages.

`database_now()` and `lease_expiry(seconds)` are SQL expressions for the time on the database's own clock, so
that leases are given and judged by one clock however far the machines' clocks drift apart.
"""

import json
import sqlite3
from contextlib import contextmanager, nullcontext, suppress
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, DateTime, Float, bindparam, func, literal, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

# Delivery's read (JobLedger.claim_for_delivery): up to a limit of the job's records waiting for a verdict
# (models.awaiting_verdict) after a row, in row order, as the driver returns them: SQLAlchemy's rows cost more than
# the query. The columns are ledger.CLAIMED_COLUMNS, then the stored status. {} is each dialect's placeholder.
WAITING_RECORDS = (
    'SELECT id, "row", name, email, company, extra, version, attempts, status FROM records'
    " WHERE job_id = {job_id} AND \"row\" > {after_row} AND status IN ('pending', 'in_flight')"
    ' AND (attempts > 0 OR "row" > {settled_through}) ORDER BY "row" LIMIT {limit}'
)
_WAITING_PARAMETERS = ("job_id", "after_row", "settled_through", "limit")


class PostgresqlStatements:
    """Binary COPY for what is stored in bulk; arrays (psycopg sends each list as one parameter, and unnest() turns
    them back into rows) for the rest.

    An executemany is one statement per row to psycopg, and a multi-row VALUES statement (SQLAlchemy's
    insertmanyvalues) carries thousands of placeholders that psycopg parses in Python: most of the time of a
    big PostgreSQL import went there. Arrays of text, too, are built in Python, every element quoted and
    escaped; binary COPY rows are written by psycopg's C code, each value as it is.
    """

    # New records go through a temporary table, since COPY cannot skip a row the unique email index refuses.
    # It lives as long as the connection, so it is created when missing (a new connection, or a transaction that
    # created it rolled back), and emptied at every commit: a retried transaction finds it empty or gone.
    STAGE_RECORDS = (
        "CREATE TEMPORARY TABLE IF NOT EXISTS staged_records"
        ' ("row" integer, name text, email text, email_key text, company text, extra json) ON COMMIT DELETE ROWS;'
        " DELETE FROM pg_temp.staged_records"
    )
    COPY_RECORDS = (
        'COPY pg_temp.staged_records ("row", name, email, email_key, company, extra) FROM STDIN (FORMAT BINARY)'
    )
    # Binary text is what json's binary format is too, so the JSON columns take the text json.dumps() made.
    RECORD_TYPES = ["int4", "text", "text", "text", "text", "text"]
    # In row order, which is file order: of two rows with one email the first is stored.
    INSERT_RECORDS = (
        'INSERT INTO records (job_id, "row", name, email, email_key, company, extra, status, attempts)'
        ' SELECT %s, "row", name, email, email_key, company, extra, %s, 0 FROM pg_temp.staged_records'
        ' ORDER BY "row" ON CONFLICT (email_key) DO NOTHING RETURNING "row", id'
    )
    COPY_ERRORS = 'COPY import_errors (job_id, "row", category, message, data, created_at) FROM STDIN (FORMAT BINARY)'
    ERROR_TYPES = ["int4", "int4", "text", "text", "text", "timestamp"]
    RESTORE_KEYS = text(
        "UPDATE records SET email_key = split_part(email_key, :mark, 1), status = :status"
        " WHERE job_id = :job_id AND status = :superseded AND NOT EXISTS"
        " (SELECT 1 FROM records AS holder WHERE holder.id <> records.id"
        " AND holder.email_key = split_part(records.email_key, :mark, 1))"
    )
    UPDATE_RECORDS = text(
        "UPDATE records SET status = verdict.status, response = verdict.response, attempts = records.attempts + 1"
        " FROM unnest(CAST(:ids AS integer[]), CAST(:statuses AS text[]), CAST(:responses AS json[]))"
        " AS verdict(id, status, response) WHERE records.id = verdict.id"
    )

    def insert_records(self, session: Session, job_id: int, contacts: list, status: str) -> dict[int, int]:
        """COPY into the temporary table, then INSERT ... ON CONFLICT (email_key) DO NOTHING from it; return
        {row: id} of the contacts stored."""
        dumps = json.dumps
        with _driver_cursor(session) as cursor:
            cursor.execute(self.STAGE_RECORDS)
            with cursor.copy(self.COPY_RECORDS) as copy:
                copy.set_types(self.RECORD_TYPES)
                write_row = copy.write_row
                for c in contacts:
                    write_row(
                        (c.row, c.name, c.email, c.email_key, c.company, None if c.extra is None else dumps(c.extra))
                    )
            cursor.execute(self.INSERT_RECORDS, (job_id, status))
            return dict(cursor.fetchall())

    def insert_errors(self, session: Session, job_id: int, errors: list[dict], created_at: datetime) -> None:
        """Insert error rows, each {"row", "category", "message", "data"}, with one binary COPY."""
        dumps = json.dumps
        with _driver_cursor(session) as cursor, cursor.copy(self.COPY_ERRORS) as copy:
            copy.set_types(self.ERROR_TYPES)
            write_row = copy.write_row
            for e in errors:
                write_row((job_id, e["row"], e["category"], e["message"], dumps(e["data"]), created_at))

    def restore_keys(self, session: Session, job_id: int, *, superseded: str, status: str, mark: str) -> int:
        """Give the job's superseded records their email keys back, where no other record took the email
        meanwhile, in the given status; return how many."""
        parameters = {"job_id": job_id, "superseded": superseded, "status": status, "mark": mark}
        return session.execute(self.RESTORE_KEYS, parameters).rowcount

    WAITING_RECORDS = WAITING_RECORDS.format(**{name: f"%({name})s" for name in _WAITING_PARAMETERS})

    def waiting_records(self, session: Session, job_id: int, *, after_row: int, settled_through: int, limit: int):
        """The job's records waiting for a verdict after a row, as tuples (WAITING_RECORDS); psycopg reads JSON."""
        parameters = {"job_id": job_id, "after_row": after_row, "settled_through": settled_through, "limit": limit}
        with _driver_cursor(session) as cursor:
            cursor.execute(self.WAITING_RECORDS, parameters)
            return cursor.fetchall()

    def update_records(self, session: Session, verdicts: list[tuple]) -> None:
        """Set each record's status and response, [(id, status, response)], and count the attempt."""
        session.execute(
            self.UPDATE_RECORDS,
            {
                "ids": [record_id for record_id, _, _ in verdicts],
                "statuses": [status for _, status, _ in verdicts],
                "responses": [json.dumps(response) for _, _, response in verdicts],
            },
        )

    def refresh_statistics(self, session: Session) -> None:
        """ANALYZE records, so the planner knows how many a staged job holds.

        Autovacuum analyses a table a minute or so after a big load, if it runs at all. Until then the planner
        expects a few hundred records for the job, and answers each claim by reading every undelivered record
        after the last one sent and sorting them all, instead of reading the (job_id, row) index in order up
        to the limit: a batch of 1,000,000 rows spent over 5 minutes delivering instead of 1.
        """
        session.execute(text("ANALYZE records"))

    def released_key(self, email_key: ColumnElement[str], mark: str) -> ColumnElement[str]:
        """The email key a superseded record's key was made from (its part before the mark)."""
        return func.split_part(email_key, mark, 1)

    def widened_cache(self, session: Session, megabytes: float):
        """Nothing to widen: the server's shared buffers cache every connection's pages."""
        return nullcontext()


class SqliteStatements:
    """sqlite3's executemany binds each row in C, and json_each() reads many rows from one JSON parameter."""

    INSERT_RECORDS = (
        'INSERT INTO records (job_id, "row", name, email, email_key, company, extra, status, attempts)'
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (email_key) DO NOTHING"
    )
    STORED_ROWS = 'SELECT "row", id FROM records WHERE job_id = ? AND "row" BETWEEN ? AND ?'
    INSERT_ERRORS = text(
        'INSERT INTO import_errors (job_id, "row", category, message, data, created_at)'
        " SELECT :job_id, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),"
        " json_quote(json_extract(value, '$[3]')), :created_at FROM json_each(:errors)"
    ).bindparams(bindparam("created_at", type_=DateTime()))
    RESTORE_KEYS = text(
        "UPDATE records SET email_key = CASE WHEN instr(email_key, :mark) > 0"
        " THEN substr(email_key, 1, instr(email_key, :mark) - 1) ELSE email_key END, status = :status"
        " WHERE job_id = :job_id AND status = :superseded AND NOT EXISTS (SELECT 1 FROM records AS holder"
        " WHERE holder.id <> records.id AND holder.email_key = substr(records.email_key, 1,"
        " CASE WHEN instr(records.email_key, :mark) > 0 THEN instr(records.email_key, :mark) - 1"
        " ELSE length(records.email_key) END))"
    )
    UPDATE_RECORDS = text(
        "UPDATE records SET status = json_extract(value, '$[1]'), response = json_quote(json_extract(value, '$[2]')),"
        " attempts = attempts + 1 FROM json_each(:verdicts) WHERE records.id = json_extract(value, '$[0]')"
    )

    def insert_records(self, session: Session, job_id: int, contacts: list, status: str) -> dict[int, int]:
        """INSERT ... ON CONFLICT (email_key) DO NOTHING; return {row: id} of the contacts stored.

        The rows stored are read back by their numbers: contacts come in row order, and a job's rows are unique.
        Both go through sqlite3's own cursor: SQLAlchemy's rows for the read-back took longer than the read.
        """
        dumps = json.dumps
        with _driver_cursor(session) as cursor:
            cursor.executemany(
                self.INSERT_RECORDS,
                [
                    (
                        job_id,
                        c.row,
                        c.name,
                        c.email,
                        c.email_key,
                        c.company,
                        dumps(c.extra) if c.extra else None,
                        status,
                    )
                    for c in contacts
                ],
            )
            cursor.execute(self.STORED_ROWS, (job_id, contacts[0].row, contacts[-1].row))
            return dict(cursor.fetchall())

    def insert_errors(self, session: Session, job_id: int, errors: list[dict], created_at: datetime) -> None:
        """Insert error rows, each {"row", "category", "message", "data"}."""
        payload = json.dumps([[e["row"], e["category"], e["message"], e["data"]] for e in errors])
        session.execute(self.INSERT_ERRORS, {"job_id": job_id, "created_at": created_at, "errors": payload})

    def restore_keys(self, session: Session, job_id: int, *, superseded: str, status: str, mark: str) -> int:
        """Give the job's superseded records their email keys back, where no other record took the email
        meanwhile, in the given status; return how many."""
        parameters = {"job_id": job_id, "superseded": superseded, "status": status, "mark": mark}
        return session.execute(self.RESTORE_KEYS, parameters).rowcount

    WAITING_RECORDS = WAITING_RECORDS.format(**{name: f":{name}" for name in _WAITING_PARAMETERS})

    def waiting_records(self, session: Session, job_id: int, *, after_row: int, settled_through: int, limit: int):
        """The job's records waiting for a verdict after a row, as tuples (WAITING_RECORDS), extra fields read from
        their JSON text."""
        parameters = {"job_id": job_id, "after_row": after_row, "settled_through": settled_through, "limit": limit}
        with _driver_cursor(session) as cursor:
            cursor.execute(self.WAITING_RECORDS, parameters)
            rows = cursor.fetchall()
        loads = json.loads
        return [row if row[5] is None else (*row[:5], loads(row[5]), *row[6:]) for row in rows]

    def update_records(self, session: Session, verdicts: list[tuple]) -> None:
        """Set each record's status and response, [(id, status, response)], and count the attempt."""
        session.execute(self.UPDATE_RECORDS, {"verdicts": json.dumps(verdicts)})

    def refresh_statistics(self, session: Session) -> None:
        """Nothing to do: SQLite plans these queries from the indexes alone."""

    def released_key(self, email_key: ColumnElement[str], mark: str) -> ColumnElement[str]:
        """The email key a superseded record's key was made from (its part before the mark)."""
        return func.substr(email_key, 1, func.instr(email_key, mark) - 1)

    @contextmanager
    def widened_cache(self, session: Session, megabytes: float):
        """Widen the page cache of the connection the session keeps (extensions.run_session), then narrow it back.

        A session that takes a pooled connection per transaction is left as it is: the pragma would stay on
        whichever connection it ran on, and its next transaction may run on another. The pragma goes to the driver
        connection, outside the session's transaction, so a rollback neither undoes it nor is needed for it.
        """
        connection = session.get_bind()
        if not isinstance(connection, Connection):
            yield
            return
        driver_connection = connection.connection.driver_connection
        (usual,) = driver_connection.execute("PRAGMA cache_size").fetchone()
        driver_connection.execute(f"PRAGMA cache_size=-{int(megabytes * 1024)}")  # negative: in kB, not pages
        try:
            yield
        finally:
            with suppress(sqlite3.ProgrammingError):  # closed: the connection was dropped, and its cache with it
                driver_connection.execute(f"PRAGMA cache_size={int(usual)}")


@contextmanager
def _driver_cursor(session: Session):
    """A cursor of the session's own driver connection, in the session's transaction, for what SQLAlchemy cannot
    say (COPY) or says slowly (many small result rows).

    A driver error is handled as SQLAlchemy handles one from its own statements: wrapped in its exception class
    (so a lost connection is an OperationalError, transient to the ledger), and a dropped connection
    invalidated, for the pool to replace.
    """
    connection = session.connection()
    dialect = connection.dialect
    driver_connection = connection.connection.driver_connection
    try:
        cursor = driver_connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
    except dialect.loaded_dbapi.Error as error:
        dropped = dialect.is_disconnect(error, driver_connection, None)
        if dropped:
            connection.invalidate(error)
        raise DBAPIError.instance(
            None, None, error, dialect.loaded_dbapi.Error, connection_invalidated=dropped, dialect=dialect
        ) from error


def statements_for(session: Session) -> PostgresqlStatements | SqliteStatements:
    """The bulk statements of the session's database."""
    return PostgresqlStatements() if session.get_bind().dialect.name == "postgresql" else SqliteStatements()


# The database's clock, as the naive UTC timestamps the DateTime columns hold.
#
# PostgreSQL: statement_timestamp() is when the statement began, the same for every row it touches, and unlike
# now() it does not stand still for the length of a long transaction (a staging commit may take seconds).
#
# SQLite: 'now' is likewise fixed for the length of one statement. SQLAlchemy stores a DateTime as the text
# 'YYYY-MM-DD HH:MM:SS.ffffff' and compares them as text, so the database's time is written in that same shape:
# strftime's %f gives seconds with three decimals, and three zeros make them the six digits SQLAlchemy writes
# and reads back as microseconds. Same length, same fields: text order is time order.
_POSTGRESQL_NOW = "(statement_timestamp() AT TIME ZONE 'UTC')"
_SQLITE_TIME = "(strftime('%Y-%m-%d %H:%M:%f', 'now'{modifier}) || '000')"


class database_now(FunctionElement):
    """The current time on the database's clock (UTC)."""

    type = DateTime()
    inherit_cache = True


class lease_expiry(FunctionElement):
    """The database's current time plus a number of seconds (UTC): when a lease given now runs out."""

    type = DateTime()
    inherit_cache = True

    def __init__(self, seconds: float):
        super().__init__(literal(float(seconds), Float()))


@compiles(database_now, "postgresql")
def _database_now_postgresql(element, compiler, **kw):
    return _POSTGRESQL_NOW


@compiles(lease_expiry, "postgresql")
def _lease_expiry_postgresql(element, compiler, **kw):
    return f"({_POSTGRESQL_NOW} + make_interval(secs => {compiler.process(element.clauses, **kw)}))"


@compiles(database_now, "sqlite")
def _database_now_sqlite(element, compiler, **kw):
    return _SQLITE_TIME.format(modifier="")


@compiles(lease_expiry, "sqlite")
def _lease_expiry_sqlite(element, compiler, **kw):
    # A modifier such as '1.500000 seconds' (printf, so that a small number is never written as 1e-05).
    return _SQLITE_TIME.format(modifier=f", printf('%.6f seconds', {compiler.process(element.clauses, **kw)})")
