"""The ledger's bulk statements, one class per database dialect, chosen once per ledger; and the database's clock.

Each class does the same four things in one statement (or one driver call) each, the way its database and
driver do them fastest: store new records (with their extra fields as JSON) and tell which rows were stored,
store error rows, store the downstream's verdicts, and refresh the planner's statistics.

`database_now()` and `lease_expiry(seconds)` are SQL expressions for the time on the database's own clock, so
that leases are given and judged by one clock however far the machines' clocks drift apart.
"""

import json
from datetime import datetime

from sqlalchemy import ColumnElement, DateTime, Float, bindparam, func, literal, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from ..models import Record


class PostgresqlStatements:
    """Arrays: psycopg sends each list as one parameter, and unnest() turns them back into rows.

    An executemany is one statement per row to psycopg, and a multi-row VALUES statement (SQLAlchemy's
    insertmanyvalues) carries thousands of placeholders that psycopg parses in Python: most of the time of a
    big PostgreSQL import went there.
    """

    # The extra fields come as one JSON array, not a json[]: an array literal of JSON texts, every quote in them
    # escaped, took two thirds of the statement's time. Its elements join the rows by position, and the rows go
    # in in file order, so of two rows with one email the first is stored, as without the join.
    INSERT_RECORDS = text(
        'INSERT INTO records (job_id, "row", name, email, email_key, company, extra, status, attempts)'
        ' SELECT :job_id, staged."row", staged.name, staged.email, staged.email_key, staged.company,'
        " CASE WHEN json_typeof(kept.extra) = 'null' THEN NULL ELSE kept.extra END, :status, 0"
        " FROM unnest(CAST(:rows AS integer[]), CAST(:names AS text[]), CAST(:emails AS text[]),"
        " CAST(:email_keys AS text[]), CAST(:companies AS text[])) WITH ORDINALITY"
        ' AS staged("row", name, email, email_key, company, position)'
        " JOIN json_array_elements(CAST(:extras AS json)) WITH ORDINALITY AS kept(extra, position) USING (position)"
        ' ORDER BY position ON CONFLICT (email_key) DO NOTHING RETURNING "row", id'
    )
    INSERT_ERRORS = text(
        'INSERT INTO import_errors (job_id, "row", category, message, data, created_at)'
        ' SELECT :job_id, error."row", error.category, error.message, error.data, :created_at'
        " FROM unnest(CAST(:rows AS integer[]), CAST(:categories AS text[]), CAST(:messages AS text[]),"
        ' CAST(:data AS json[])) AS error("row", category, message, data)'
    )
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
        """INSERT ... ON CONFLICT (email_key) DO NOTHING; return {row: id} of the contacts stored."""
        arrays = {
            "rows": [contact.row for contact in contacts],
            "names": [contact.name for contact in contacts],
            "emails": [contact.email for contact in contacts],
            "email_keys": [contact.email_key for contact in contacts],
            "companies": [contact.company for contact in contacts],
            "extras": json.dumps([contact.extra for contact in contacts]),
        }
        return dict(session.execute(self.INSERT_RECORDS, {"job_id": job_id, "status": status, **arrays}).all())

    def insert_errors(self, session: Session, job_id: int, errors: list[dict], created_at: datetime) -> None:
        """Insert error rows, each {"row", "category", "message", "data"}."""
        session.execute(
            self.INSERT_ERRORS,
            {
                "job_id": job_id,
                "created_at": created_at,
                "rows": [error["row"] for error in errors],
                "categories": [error["category"] for error in errors],
                "messages": [error["message"] for error in errors],
                "data": [json.dumps(error["data"]) for error in errors],
            },
        )

    def restore_keys(self, session: Session, job_id: int, *, superseded: str, status: str, mark: str) -> int:
        """Give the job's superseded records their email keys back, where no other record took the email
        meanwhile, in the given status; return how many."""
        parameters = {"job_id": job_id, "superseded": superseded, "status": status, "mark": mark}
        return session.execute(self.RESTORE_KEYS, parameters).rowcount

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


class SqliteStatements:
    """sqlite3's executemany binds each row in C, and json_each() reads many rows from one JSON parameter."""

    INSERT_RECORDS = (
        'INSERT INTO records (job_id, "row", name, email, email_key, company, extra, status, attempts)'
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (email_key) DO NOTHING"
    )
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
        """
        session.connection().exec_driver_sql(
            self.INSERT_RECORDS,
            [
                (job_id, c.row, c.name, c.email, c.email_key, c.company, _json_or_null(c.extra), status)
                for c in contacts
            ],
        )
        stored = select(Record.row, Record.id).where(
            Record.job_id == job_id, Record.row.between(contacts[0].row, contacts[-1].row)
        )
        return dict(session.execute(stored).all())

    def insert_errors(self, session: Session, job_id: int, errors: list[dict], created_at: datetime) -> None:
        """Insert error rows, each {"row", "category", "message", "data"}."""
        payload = json.dumps([[e["row"], e["category"], e["message"], e["data"]] for e in errors])
        session.execute(self.INSERT_ERRORS, {"job_id": job_id, "created_at": created_at, "errors": payload})

    def restore_keys(self, session: Session, job_id: int, *, superseded: str, status: str, mark: str) -> int:
        """Give the job's superseded records their email keys back, where no other record took the email
        meanwhile, in the given status; return how many."""
        parameters = {"job_id": job_id, "superseded": superseded, "status": status, "mark": mark}
        return session.execute(self.RESTORE_KEYS, parameters).rowcount

    def update_records(self, session: Session, verdicts: list[tuple]) -> None:
        """Set each record's status and response, [(id, status, response)], and count the attempt."""
        session.execute(self.UPDATE_RECORDS, {"verdicts": json.dumps(verdicts)})

    def refresh_statistics(self, session: Session) -> None:
        """Nothing to do: SQLite plans these queries from the indexes alone."""

    def released_key(self, email_key: ColumnElement[str], mark: str) -> ColumnElement[str]:
        """The email key a superseded record's key was made from (its part before the mark)."""
        return func.substr(email_key, 1, func.instr(email_key, mark) - 1)


def _json_or_null(value: dict | None) -> str | None:
    """A contact's extra fields as the JSON text a column holds; SQL NULL (not JSON null) for none."""
    return None if not value else json.dumps(value)


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
