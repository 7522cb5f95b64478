"""The ledger's writes on this test run's database (SQLite, or PostgreSQL when its URL is set)."""

from datetime import datetime, timedelta

import pytest
from fakes import shown_statuses
from sqlalchemy import select, update

from importdash.extensions import db
from importdash.models import ImportJob, JobAction, JobRun, JobStatus, Record, RowError, utcnow
from importdash.services.downstream import Outcome
from importdash.services.ledger import JobLedger, LeaseLost
from importdash.services.validator import Contact, Rejection


def contact(row, email=None):
    email = email or f"person{row}@example.com"
    return Contact(row, f"Person {row}", email, email.strip().lower(), "Acme", {"email": email})


@pytest.fixture
def ledger(app, make_job):
    job = make_job()
    ledger = JobLedger(db.session, job.id, "test-owner", lease_seconds=60)
    assert ledger.claim()
    return ledger


def statuses(job_id):
    return shown_statuses(db.session, job_id)


def test_claims_start_after_the_given_row_and_move_the_sent_watermark_past_what_they_return(ledger):
    ledger.stage([contact(row) for row in range(2, 12)], last_row=11, rows_read=10)
    ledger.claim_for_delivery(4)  # rows 2-5 go out

    claimed = ledger.claim_for_delivery(3, after_row=5)

    assert [record.row for record in claimed] == [6, 7, 8]
    assert [row for row, status in statuses(ledger.job_id).items() if status == "in_flight"] == list(range(2, 9))
    assert ledger.job().sent_through == 8


def test_records_left_in_flight_are_claimed_again_in_row_order_with_pending_ones(ledger):
    ledger.stage([contact(row) for row in (2, 3)], last_row=3, rows_read=2, in_flight=True)
    ledger.stage([contact(row) for row in (4, 5)], last_row=5, rows_read=2)

    claimed = ledger.claim_for_delivery(10)

    assert [record.row for record in claimed] == [2, 3, 4, 5]
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


def test_a_plain_success_writes_nothing_to_its_record_the_settled_watermark_tells_it(ledger):
    ledger.stage([contact(row) for row in (2, 3, 4, 5)], last_row=5, rows_read=4)
    two, three, four, five = ledger.claim_for_delivery(10)

    ledger.settle(
        [
            (two, Outcome("k2", True, None, None)),
            (three, Outcome("k3", False, "refused", None)),
            (four, Outcome("k4", True, None, None)),
        ]
    )

    db.session.expire_all()
    stored = dict(db.session.execute(select(Record.row, Record.status).where(Record.job_id == ledger.job_id)).all())
    assert stored == {2: "pending", 3: "failed", 4: "pending", 5: "pending"}  # one write each: the insert
    assert statuses(ledger.job_id) == {2: "succeeded", 3: "failed", 4: "succeeded", 5: "in_flight"}
    job = db.session.get(ImportJob, ledger.job_id)
    assert (job.settled_through, job.sent_through) == (4, 5)
    assert (job.processed_count, job.success_count, job.failed_count) == (3, 2, 1)  # committed with the watermark


def test_verdicts_passed_to_the_next_write_are_committed_with_it_and_only_then(ledger):
    ledger.stage([contact(2), contact(3)], last_row=3, rows_read=2, in_flight=True)
    two, three = ledger.claim_for_delivery(10)
    assert statuses(ledger.job_id) == {2: "in_flight", 3: "in_flight"}  # a crash here re-sends both

    ledger.stage([contact(4)], last_row=4, rows_read=1, settled=[(two, Outcome("k2", True, None, None))])
    ledger.set_total(settled=[(three, Outcome("k3", False, "refused", None))])

    assert statuses(ledger.job_id) == {2: "succeeded", 3: "failed", 4: "pending"}
    job = db.session.get(ImportJob, ledger.job_id)
    assert (job.total_records, job.processed_count, job.success_count, job.failed_count) == (3, 2, 1, 1)


def test_error_rows_keep_their_data_time_and_counts(ledger):
    rejection = Rejection(3, "missing_value", 'missing "email"', {"name": "Ann", "email": "", "company": None})
    records = ledger.stage(
        [contact(2), rejection, contact(4, email="person2@example.com")], last_row=4, rows_read=3, in_flight=True
    )

    assert [(record.row, record.attempts) for record in records] == [(2, 0)]
    errors = db.session.scalars(select(RowError).where(RowError.job_id == ledger.job_id).order_by(RowError.row)).all()
    assert [(e.row, e.category) for e in errors] == [(3, "missing_value"), (4, "duplicate")]
    assert errors[0].data == {"name": "Ann", "email": "", "company": None}
    assert errors[1].message == 'email "person2@example.com" duplicates row 2 of this file'
    assert all(isinstance(e.created_at, datetime) for e in errors)
    job = db.session.get(ImportJob, ledger.job_id)
    assert (job.missing_value_count, job.duplicate_count, job.processed_count, job.failed_count) == (1, 1, 2, 2)


def test_a_retried_record_moves_from_failed_to_succeeded_and_its_error_row_goes(ledger):
    ledger.stage([contact(2), contact(3)], last_row=3, rows_read=2)
    ledger.set_total()
    two, three = ledger.claim_for_delivery(10)
    ledger.settle([(two, Outcome("k2", False, "busy", None)), (three, Outcome("k3", False, "busy", None))])
    db.session.execute(update(Record).where(Record.job_id == ledger.job_id).values(status="pending"))
    db.session.commit()

    two, three = ledger.claim_for_delivery(10)
    ledger.settle([(two, Outcome("k2", True, None, None)), (three, Outcome("k3", False, "still busy", None))])

    job = db.session.get(ImportJob, ledger.job_id)
    assert (job.processed_count, job.success_count, job.failed_count, job.other_count) == (2, 1, 1, 1)
    errors = db.session.scalars(select(RowError).where(RowError.job_id == ledger.job_id)).all()
    assert [(error.row, error.message) for error in errors] == [(3, "still busy")]
    assert statuses(ledger.job_id) == {2: "succeeded", 3: "failed"}


def test_a_cancelled_job_ends_its_undelivered_records_cancelled_and_releases_the_lease(ledger):
    ledger.stage([contact(row) for row in (2, 3, 4)], last_row=4, rows_read=3)
    (two,) = ledger.claim_for_delivery(1)

    status = ledger.finish(JobAction.CANCEL, settled=[(two, Outcome("k2", True, None, None))])

    assert status is JobStatus.CANCELLED
    assert statuses(ledger.job_id) == {2: "succeeded", 3: "cancelled", 4: "cancelled"}
    job = db.session.get(ImportJob, ledger.job_id)
    assert (job.status, job.error, job.lease_owner, job.success_count) == ("cancelled", "cancelled by request", None, 1)
    assert job.completed_at is not None
    # Every row has its one outcome: processed = succeeded + failed + cancelled.
    assert (job.processed_count, job.success_count, job.failed_count, job.cancelled_count) == (3, 1, 0, 2)


def test_a_cancelled_retry_leaves_the_job_completed_and_unsent_retries_failed(ledger):
    ledger.stage([contact(2)], last_row=2, rows_read=1)
    (two,) = ledger.claim_for_delivery(10)
    ledger.settle([(two, Outcome("k2", False, "busy", None))])
    db.session.execute(update(Record).where(Record.job_id == ledger.job_id).values(status="pending"))
    db.session.execute(update(ImportJob).where(ImportJob.id == ledger.job_id).values(retries=1))
    db.session.commit()

    assert ledger.finish(JobAction.CANCEL) is JobStatus.COMPLETED
    assert statuses(ledger.job_id) == {2: "failed"}
    assert db.session.get(ImportJob, ledger.job_id).error is None


def test_release_frees_the_lease_and_leaves_the_job_resumable(ledger):
    ledger.release()

    job = db.session.get(ImportJob, ledger.job_id)
    assert (job.status, job.lease_owner, job.lease_expires_at) == ("processing", None, None)
    assert JobLedger(db.session, ledger.job_id, "another-process", lease_seconds=60).claim()


def test_a_live_lease_keeps_other_processes_out_and_an_expired_one_lets_them_in(ledger):
    other = JobLedger(db.session, ledger.job_id, "another-process", lease_seconds=60)
    assert not other.claim()

    db.session.execute(
        update(ImportJob).where(ImportJob.id == ledger.job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()

    assert other.claim()
    with pytest.raises(LeaseLost):
        ledger.stage([contact(2)], last_row=2, rows_read=1)
    assert statuses(ledger.job_id) == {}  # the write that found the lease gone was rolled back


def test_renewing_the_lease_extends_it_and_reports_a_cancel_request(ledger):
    db.session.execute(
        update(ImportJob).where(ImportJob.id == ledger.job_id).values(lease_expires_at=utcnow(), cancel_requested=True)
    )
    db.session.commit()

    assert ledger.renew_lease() is JobAction.CANCEL
    assert ledger.job().lease_expires_at > utcnow() + timedelta(seconds=50)


def test_a_finished_job_cannot_be_claimed_again(ledger):
    ledger.finish(JobAction.COMPLETE)

    assert not JobLedger(db.session, ledger.job_id, "test-owner", lease_seconds=60).claim()
    assert not JobLedger(db.session, ledger.job_id, "another-process", lease_seconds=60).claim()


def test_a_duplicate_of_another_import_names_it_and_counts_once(app, make_job, ledger):
    ledger.stage([contact(2)], last_row=2, rows_read=1)
    second = JobLedger(db.session, make_job().id, "test-owner", lease_seconds=60)
    assert second.claim()

    second.stage([contact(5, email="PERSON2@EXAMPLE.COM")], last_row=5, rows_read=1)

    (error,) = db.session.scalars(select(RowError).where(RowError.job_id == second.job_id)).all()
    assert error.message == f'email "PERSON2@EXAMPLE.COM" was already imported (import #{ledger.job_id}, row 2)'
    job = db.session.get(ImportJob, second.job_id)
    assert (job.duplicate_count, job.failed_count, job.rows_read, job.cursor) == (1, 1, 1, 5)


def test_a_run_that_stopped_without_a_word_is_closed_by_the_next_one(ledger):
    first = ledger.start_run()
    successor = JobLedger(db.session, ledger.job_id, "next-process", lease_seconds=60)
    db.session.execute(update(ImportJob).where(ImportJob.id == ledger.job_id).values(lease_expires_at=utcnow()))
    db.session.commit()
    assert successor.claim()

    second = successor.start_run()
    ledger_rows = {run.id: run for run in db.session.scalars(select(JobRun).where(JobRun.job_id == ledger.job_id))}

    assert ledger_rows[first].outcome == "interrupted" and "without finishing" in ledger_rows[first].reason
    assert ledger_rows[second].ended_at is None and ledger_rows[second].kind == "import"
    successor.finish(JobAction.COMPLETE)
    db.session.expire_all()
    assert db.session.get(JobRun, second).outcome == "completed"


def test_a_cancelled_record_no_longer_holds_its_email_and_a_resume_sends_it_back_through_dedupe(app, make_job, ledger):
    ledger.stage([contact(2, "ada@example.com"), contact(3, "bob@example.com")], last_row=3, rows_read=2)
    ledger.finish(JobAction.CANCEL)
    cancelled = db.session.get(ImportJob, ledger.job_id)
    assert (cancelled.processed_count, cancelled.cancelled_count) == (2, 2)
    later = JobLedger(db.session, make_job().id, "later-import", lease_seconds=60)
    assert later.claim()

    later.stage([contact(7, "ADA@example.com")], last_row=7, rows_read=1)  # stored: the cancelled Ada lets go

    assert statuses(later.job_id) == {7: "pending"}
    db.session.execute(update(ImportJob).where(ImportJob.id == ledger.job_id).values(status="pending"))
    db.session.commit()
    resumed = JobLedger(db.session, ledger.job_id, "resumed", lease_seconds=60)
    assert resumed.claim()

    assert resumed.requeue_cancelled() == 1

    assert statuses(ledger.job_id) == {3: "pending"}  # Bob goes out again; Ada was taken meanwhile
    keys = set(db.session.scalars(select(Record.email_key).where(Record.job_id == ledger.job_id)))
    assert keys == {"bob@example.com"}
    (error,) = db.session.scalars(select(RowError).where(RowError.job_id == ledger.job_id)).all()
    assert (error.row, error.category) == (2, "duplicate")
    assert (
        error.message
        == f'email "ada@example.com" was imported by import #{later.job_id} (row 7) while this import was stopped'
    )
    job = db.session.get(ImportJob, ledger.job_id)
    # Bob is no longer processed (he goes out again); Ada is processed once, as a duplicate, and neither is cancelled.
    assert (job.processed_count, job.failed_count, job.duplicate_count, job.cancelled_count) == (1, 1, 1, 0)


def test_a_finally_refused_record_lets_go_of_its_email_and_a_retry_sends_it_back_through_dedupe(app, make_job, ledger):
    ledger.stage([contact(2, "ada@example.com"), contact(3, "bob@example.com")], last_row=3, rows_read=2)
    ledger.set_total()
    two, three = ledger.claim_for_delivery(10)
    ledger.settle([(two, Outcome("k2", False, "busy", None)), (three, Outcome("k3", False, "busy", None))])
    ledger.finish(JobAction.COMPLETE)
    later = JobLedger(db.session, make_job().id, "later-import", lease_seconds=60)
    assert later.claim()
    later.stage([contact(9, "ada@example.com")], last_row=9, rows_read=1)
    assert statuses(later.job_id) == {9: "pending"}  # stored: the refused Ada let go of her email

    db.session.execute(update(ImportJob).where(ImportJob.id == ledger.job_id).values(status="pending", retries=1))
    db.session.commit()
    retry = JobLedger(db.session, ledger.job_id, "retry", lease_seconds=60)
    assert retry.claim()
    assert retry.requeue_refused() == 1

    assert statuses(ledger.job_id) == {3: "pending"}
    errors = {e.row: e for e in db.session.scalars(select(RowError).where(RowError.job_id == ledger.job_id))}
    assert (errors[2].category, errors[3].category) == ("duplicate", "other")
    assert f"imported by import #{later.job_id} (row 9)" in errors[2].message
    job = db.session.get(ImportJob, ledger.job_id)
    assert (job.processed_count, job.failed_count, job.other_count, job.duplicate_count) == (2, 2, 1, 1)
    (bob,) = db.session.scalars(select(Record).where(Record.job_id == ledger.job_id)).all()
    assert bob.email_key == "bob@example.com"  # holds its email again while it is sent


def test_a_refused_record_stored_before_superseded_marks_existed_is_retried_as_it_is(ledger):
    ledger.stage([contact(2, "ada@example.com")], last_row=2, rows_read=1)
    db.session.execute(update(Record).where(Record.job_id == ledger.job_id).values(status="failed", attempts=1))
    db.session.commit()  # as an upgraded database holds it: refused, its key unmarked

    assert ledger.requeue_refused() == 1
    assert statuses(ledger.job_id) == {2: "pending"}
    assert db.session.scalar(select(Record.email_key).where(Record.job_id == ledger.job_id)) == "ada@example.com"
