"""The ledger's writes on this test run's database (SQLite, or PostgreSQL when its URL is set)."""

from datetime import datetime

import pytest
from sqlalchemy import select

from importdash.extensions import db
from importdash.models import ImportJob, Record, RowError
from importdash.services.downstream import Outcome
from importdash.services.ledger import JobLedger
from importdash.services.validator import Contact, Rejection


def contact(row, email=None):
    email = email or f"person{row}@example.com"
    return Contact(row, f"Person {row}", email, email, "Acme", {"email": email})


@pytest.fixture
def ledger(app, make_job):
    job = make_job()
    ledger = JobLedger(db.session, job.id, "test-owner", lease_seconds=60)
    assert ledger.claim()
    return ledger


def statuses(job_id):
    rows = db.session.execute(select(Record.row, Record.status).where(Record.job_id == job_id).order_by(Record.row))
    return dict(rows.all())


def test_claims_start_after_the_given_row_and_mark_only_what_they_return(ledger):
    ledger.stage([contact(row) for row in range(2, 12)], last_row=11, rows_read=10)

    claimed = ledger.claim_for_delivery(3, after_row=5)

    assert [record["row"] for record in claimed] == [6, 7, 8]
    assert [row for row, status in statuses(ledger.job_id).items() if status == "in_flight"] == [6, 7, 8]


def test_records_left_in_flight_are_claimed_again_in_row_order_with_pending_ones(ledger):
    ledger.stage([contact(row) for row in (2, 3)], last_row=3, rows_read=2, in_flight=True)
    ledger.stage([contact(row) for row in (4, 5)], last_row=5, rows_read=2)

    claimed = ledger.claim_for_delivery(10)

    assert [record["row"] for record in claimed] == [2, 3, 4, 5]
    assert set(statuses(ledger.job_id).values()) == {"in_flight"}


def test_settle_stores_each_verdict_its_response_and_the_attempt(ledger):
    ledger.stage([contact(row) for row in (2, 3, 4)], last_row=4, rows_read=3)
    two, three, four = ledger.claim_for_delivery(10)

    ledger.settle(
        [
            (two, Outcome("k2", True, None, {"status": "accepted", "id": "x"})),
            (three, Outcome("k3", False, "refused", {"status": "rejected", "reason": "refused"})),
            (four, Outcome("k4", True, None, "a bare string")),
        ]
    )

    db.session.expire_all()
    records = {r.row: r for r in db.session.scalars(select(Record).where(Record.job_id == ledger.job_id))}
    assert [records[row].status for row in (2, 3, 4)] == ["succeeded", "failed", "succeeded"]
    assert records[2].response == {"status": "accepted", "id": "x"}
    assert records[3].response == {"status": "rejected", "reason": "refused"}
    assert records[4].response == "a bare string"
    assert {record.attempts for record in records.values()} == {1}
    job = db.session.get(ImportJob, ledger.job_id)
    assert (job.processed_count, job.success_count, job.failed_count, job.other_count) == (3, 2, 1, 1)


def test_a_settle_held_open_is_committed_by_the_next_write(ledger):
    ledger.stage([contact(2)], last_row=2, rows_read=1, in_flight=True)
    (record,) = ledger.claim_for_delivery(10)

    ledger.settle([(record, Outcome("k2", True, None, None))], commit=False)
    ledger.session.rollback()
    assert statuses(ledger.job_id) == {2: "in_flight"}  # not committed: a crash here re-sends the record

    ledger.settle([(record, Outcome("k2", True, None, None))], commit=False)
    ledger.set_total()
    ledger.session.rollback()
    assert statuses(ledger.job_id) == {2: "succeeded"}


def test_error_rows_keep_their_data_time_and_counts(ledger):
    rejection = Rejection(3, "missing_value", 'missing "email"', {"name": "Ann", "email": "", "company": None})
    records = ledger.stage(
        [contact(2), rejection, contact(4, email="person2@example.com")], last_row=4, rows_read=3, in_flight=True
    )

    assert [(record["row"], record["attempts"]) for record in records] == [(2, 0)]
    errors = db.session.scalars(select(RowError).where(RowError.job_id == ledger.job_id).order_by(RowError.row)).all()
    assert [(e.row, e.category) for e in errors] == [(3, "missing_value"), (4, "duplicate")]
    assert errors[0].data == {"name": "Ann", "email": "", "company": None}
    assert errors[1].message == 'email "person2@example.com" duplicates row 2 of this file'
    assert all(isinstance(e.created_at, datetime) for e in errors)
    job = db.session.get(ImportJob, ledger.job_id)
    assert (job.missing_value_count, job.duplicate_count, job.processed_count, job.failed_count) == (1, 1, 2, 2)
