"""The ledger rides out transient database faults and applies each write exactly once (fake clock, no sleeps)."""

import pytest
from fakes import FakeClock
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from importdash.extensions import db
from importdash.models import ImportJob, Record, RowError
from importdash.services.downstream import Outcome
from importdash.services.ledger import DatabaseUnavailable, JobLedger, OutagePolicy
from importdash.services.validator import Contact, Rejection

POLICY = OutagePolicy(deadline=60, backoff_base=0.1, backoff_cap=5)


def contact(row):
    email = f"person{row}@example.com"
    return Contact(row, f"Person {row}", email, email, "Acme", {"email": email})


class Faults:
    """Make the next statements fail as a dropped connection does, or the next commits land but seem to fail."""

    def __init__(self, engine):
        self.engine = engine
        self.statements = 0  # statements to fail before they reach the database
        self.lost_commits = 0  # commits that land, but whose answer is lost on the way back
        self.unreachable = False  # every statement fails until this turns false again
        event.listen(engine, "before_cursor_execute", self._before_execute)

    def _before_execute(self, connection, cursor, statement, parameters, context, executemany):
        if self.unreachable or self.statements:
            self.statements = max(self.statements - 1, 0)
            raise OperationalError(statement, parameters, ConnectionResetError("connection reset by peer"))

    def session(self, session):
        """The session, whose commits may land and then seem to fail."""
        faults = self

        class LosingCommits:
            def __getattr__(self, name):
                return getattr(session, name)

            def commit(self):
                session.commit()
                if faults.lost_commits:
                    faults.lost_commits -= 1
                    raise OperationalError("COMMIT", None, ConnectionResetError("connection reset by peer"))

        return LosingCommits()

    def remove(self):
        event.remove(self.engine, "before_cursor_execute", self._before_execute)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def faults(app):
    faults = Faults(db.engine)
    yield faults
    faults.remove()


@pytest.fixture
def ledger(app, make_job, clock, faults):
    session = faults.session(db.session)
    ledger = JobLedger(
        session, make_job().id, "test-owner", 60, outages=POLICY, clock=clock, sleep=clock.sleep, rand=lambda: 1.0
    )
    assert ledger.claim()
    return ledger


def counts(job_id):
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    records = db.session.scalar(select(func.count()).select_from(Record).where(Record.job_id == job_id))
    errors = db.session.scalar(select(func.count()).select_from(RowError).where(RowError.job_id == job_id))
    return {
        "records": records,
        "errors": errors,
        "processed": job.processed_count,
        "succeeded": job.success_count,
        "failed": job.failed_count,
        "rows_read": job.rows_read,
    }


def test_a_write_whose_statements_fail_is_retried_with_backoff_and_applied_once(ledger, faults, clock):
    faults.statements = 3
    rejection = Rejection(4, "missing_value", "name is missing", {"email": "x@example.com"})

    ledger.stage([contact(2), contact(3), rejection], last_row=4, rows_read=3)

    assert counts(ledger.job_id) == {
        "records": 2,
        "errors": 1,
        "processed": 1,
        "succeeded": 0,
        "failed": 1,
        "rows_read": 3,
    }
    assert clock.sleeps and max(clock.sleeps) <= POLICY.backoff_cap  # it waited between tries, never past the cap


def test_a_commit_that_landed_but_seemed_to_fail_is_not_applied_twice(ledger, faults):
    faults.lost_commits = 1

    records = ledger.stage([contact(2), contact(3)], last_row=3, rows_read=2, in_flight=True)

    assert [record.row for record in records] == [2, 3]  # what the landed commit stored, read back
    assert counts(ledger.job_id)["records"] == 2
    assert db.session.scalar(select(func.count()).select_from(RowError)) == 0  # no "duplicates" of itself

    faults.lost_commits = 1
    ledger.settle([(records[0], Outcome("k2", True, None, None)), (records[1], Outcome("k3", False, "no", None))])

    assert counts(ledger.job_id) == {
        "records": 2,
        "errors": 1,
        "processed": 2,
        "succeeded": 1,
        "failed": 1,
        "rows_read": 2,
    }


@pytest.mark.parametrize("fault", ["lost_commits", "statements"])
def test_a_claim_carrying_the_last_windows_verdicts_applies_them_once_and_claims_the_next(ledger, faults, fault):
    ledger.stage([contact(row) for row in range(2, 6)], last_row=5, rows_read=4)
    first = ledger.claim_for_delivery(2)
    setattr(faults, fault, 1)  # the commit lands and seems to fail, or the write never reaches the database

    second = ledger.claim_for_delivery(
        2,
        after_row=3,
        settled=[(first[0], Outcome("k2", True, None, None)), (first[1], Outcome("k3", False, "no", None))],
    )

    assert [record.row for record in second] == [4, 5]
    assert counts(ledger.job_id) | {"sent": ledger.job().sent_through, "settled": ledger.job().settled_through} == {
        "records": 4,
        "errors": 1,
        "processed": 2,
        "succeeded": 1,
        "failed": 1,
        "rows_read": 4,
        "sent": 5,
        "settled": 2,
    }


def test_after_a_landed_commit_the_ledger_still_tells_the_next_fault_apart(ledger, faults):
    faults.lost_commits = 1
    ledger.stage([contact(2)], last_row=2, rows_read=1)
    faults.statements = 1  # this time the write never reaches the database: it must run again

    ledger.stage([contact(3)], last_row=3, rows_read=1)

    assert counts(ledger.job_id)["records"] == 2


def test_an_outage_longer_than_the_deadline_stops_the_write_and_applies_nothing(ledger, faults, clock):
    faults.unreachable = True

    with pytest.raises(DatabaseUnavailable) as stopped:
        ledger.stage([contact(2)], last_row=2, rows_read=1)

    assert stopped.value.seconds >= POLICY.deadline
    assert sum(clock.sleeps) == pytest.approx(POLICY.deadline)  # never waited past the deadline
    faults.unreachable = False
    assert counts(ledger.job_id)["records"] == 0


def test_a_fault_that_is_not_transient_is_raised_at_once(ledger, clock, monkeypatch):
    def refuse(*args):
        raise IntegrityError("INSERT", None, Exception("constraint"))

    monkeypatch.setattr(ledger.sql, "insert_records", refuse)

    with pytest.raises(IntegrityError):
        ledger.stage([contact(2)], last_row=2, rows_read=1)
    assert clock.sleeps == []


def test_without_an_outage_policy_a_fault_is_raised_at_once(app, make_job, faults):
    ledger = JobLedger(db.session, make_job().id, "request", 60)
    assert ledger.claim()
    faults.statements = 1

    with pytest.raises(OperationalError):
        ledger.stage([contact(2)], last_row=2, rows_read=1)
