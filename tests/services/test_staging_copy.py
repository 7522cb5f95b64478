"""Staging through COPY on PostgreSQL: the temporary table and the driver's own cursor survive a dropped
connection and a rolled-back transaction, and store what the statements did before."""

from datetime import datetime

import pytest
from fakes import FakeClock
from sqlalchemy import select, text

from importdash.extensions import db
from importdash.models import Record, RowError
from importdash.services.dialects import PostgresqlStatements
from importdash.services.ledger import JobLedger, OutagePolicy
from importdash.services.validator import Contact, Rejection

POLICY = OutagePolicy(deadline=60, backoff_base=0.1, backoff_cap=5)


def contact(row, email=None, extra=None):
    email = email or f"person{row}@example.com"
    return Contact(row, f"Person {row}", email, email.strip().lower(), None, {"email": email}, extra)


@pytest.fixture
def ledger(app, make_job):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    clock = FakeClock()
    ledger = JobLedger(
        db.session, make_job().id, "test-owner", 60, outages=POLICY, clock=clock, sleep=clock.sleep, rand=lambda: 1.0
    )
    assert ledger.claim()
    return ledger


def stored(job_id):
    db.session.expire_all()
    records = db.session.execute(
        select(Record.row, Record.email_key, Record.extra, Record.status).where(Record.job_id == job_id)
    ).all()
    errors = db.session.execute(
        select(RowError.row, RowError.category, RowError.data).where(RowError.job_id == job_id)
    ).all()
    return sorted(records), sorted(errors)


def test_a_connection_dropped_before_the_copy_is_replaced_and_the_batch_stored_once(ledger, monkeypatch):
    original = PostgresqlStatements.insert_records
    drops = []

    def dropping(self, session, *args):
        if not drops:  # the first try: the server ends this session's connection, as a restart or a proxy would
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
            with db.engine.connect() as other:
                drops.append(other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar())
        return original(self, session, *args)

    monkeypatch.setattr(PostgresqlStatements, "insert_records", dropping)
    rejection = Rejection(4, "missing_value", "name is missing", {"email": "x@example.com"})

    ledger.stage([contact(2, extra={"plan": "pro"}), contact(3), rejection], last_row=4, rows_read=3)

    assert drops == [True]
    records, errors = stored(ledger.job_id)
    assert records == [
        (2, "person2@example.com", {"plan": "pro"}, "pending"),
        (3, "person3@example.com", None, "pending"),
    ]
    assert errors == [(4, "missing_value", {"email": "x@example.com"})]


def test_a_rolled_back_transaction_that_created_the_staging_table_leaves_the_next_one_working(ledger):
    connection = db.session.connection()
    connection.exec_driver_sql("DROP TABLE IF EXISTS pg_temp.staged_records")
    db.session.commit()
    assert list(ledger.sql.insert_records(db.session, ledger.job_id, [contact(2)], "pending")) == [2]
    db.session.rollback()  # the table created in that transaction is gone with it

    ledger.stage([contact(2), contact(3)], last_row=3, rows_read=2)
    ledger.stage([contact(4)], last_row=4, rows_read=1)  # the table is left empty by the commit

    records, _ = stored(ledger.job_id)
    assert [row for row, *_ in records] == [2, 3, 4]


def test_of_two_rows_with_one_email_the_first_is_stored_and_the_second_is_a_duplicate(ledger):
    ledger.stage([contact(2, "Same@Example.com"), contact(3), contact(4, " same@example.com")], last_row=4, rows_read=3)

    records, errors = stored(ledger.job_id)
    assert [(row, key) for row, key, *_ in records] == [(2, "same@example.com"), (3, "person3@example.com")]
    assert [(row, category) for row, category, _ in errors] == [(4, "duplicate")]


def test_error_rows_without_data_hold_json_null_as_before(ledger):
    error = {"row": 5, "category": "other", "message": "refused", "data": None}
    ledger.sql.insert_errors(db.session, ledger.job_id, [error], datetime(2026, 1, 1))
    data = db.session.execute(text('SELECT data::text FROM import_errors WHERE "row" = 5')).scalar()
    db.session.rollback()
    assert data == "null"
