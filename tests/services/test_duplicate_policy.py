"""Extra fields in the ledger and the duplicate policy (skip, update), on this test run's database (SQLite, or
PostgreSQL when its URL is set)."""

import threading

import pytest
from fakes import shown_statuses
from sqlalchemy import select
from sqlalchemy.orm import Session

from importdash.extensions import db
from importdash.models import DuplicatePolicy, ImportJob, Record, RowError
from importdash.services.downstream import Outcome
from importdash.services.ledger import JobLedger
from importdash.services.validator import Contact

UPDATE = DuplicatePolicy.UPDATE


def contact(row, email="ada@example.com", name="Ada", company="AE", extra=None):
    return Contact(row, name, email, email.lower(), company, {"email": email}, extra)


@pytest.fixture
def new_ledger(make_job):
    def make(session=None):
        ledger = JobLedger(session or db.session, make_job().id, "test-owner", lease_seconds=60)
        assert ledger.claim()
        return ledger

    return make


@pytest.fixture
def delivered(new_ledger):
    """A job whose contacts were stored and accepted downstream; returns its ledger."""

    def deliver(*contacts):
        ledger = new_ledger()
        ledger.stage(list(contacts), last_row=contacts[-1].row, rows_read=len(contacts))
        claimed = ledger.claim_for_delivery(100)
        ledger.settle([(record, Outcome(str(record.id), True, None, {"status": "accepted"})) for record in claimed])
        return ledger

    return deliver


def record_of(email):
    db.session.expire_all()
    return db.session.scalar(select(Record).where(Record.email_key == email.lower()))


def errors_of(job_id):
    query = select(RowError.row, RowError.category, RowError.message).where(RowError.job_id == job_id)
    return db.session.execute(query.order_by(RowError.row)).all()


def counts(job_id):
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    return job.processed_count, job.success_count, job.failed_count, job.duplicate_count


def test_extra_fields_are_stored_with_the_record_and_claimed_with_it(new_ledger):
    ledger = new_ledger()
    in_flight = ledger.stage(
        [
            contact(2, extra={"phone": "+44 1", "title": "Countess"}),
            contact(3, email="alan@example.com", extra={"phone": "", "note": 'quote " and, comma'}),
            contact(4, email="grace@example.com"),
        ],
        last_row=4,
        rows_read=3,
        in_flight=True,
    )

    assert [(record.extra, record.version) for record in in_flight] == [
        ({"phone": "+44 1", "title": "Countess"}, 1),
        ({"phone": "", "note": 'quote " and, comma'}, 1),
        (None, 1),
    ]
    assert record_of("ada@example.com").extra == {"phone": "+44 1", "title": "Countess"}
    assert record_of("grace@example.com").extra is None
    assert [record.extra for record in ledger.claim_for_delivery(10)] == [record.extra for record in in_flight]


def test_in_a_big_batch_each_record_keeps_its_own_rows_extra_fields_and_the_first_of_two_rows_wins(new_ledger):
    ledger = new_ledger()
    rows = range(2, 2002)  # the second half repeats the first half's emails
    contacts = [contact(row, email=f"p{row % 1000}@example.com", extra={"row": str(row)}) for row in rows]

    ledger.stage(contacts, last_row=2001, rows_read=2000)

    db.session.expire_all()
    records = db.session.scalars(select(Record).where(Record.job_id == ledger.job_id)).all()
    assert len(records) == 1000
    assert all(record.extra == {"row": str(record.row)} and record.row < 1002 for record in records)
    assert len(errors_of(ledger.job_id)) == 1000


def test_under_update_a_changed_row_updates_the_delivered_record_which_moves_to_the_new_job(delivered, new_ledger):
    first = delivered(contact(2, extra={"phone": "1"}), contact(3, email="alan@example.com"))
    before = counts(first.job_id)
    second = new_ledger()

    second.stage(
        [contact(7, name="Ada King", company=None, extra={"phone": "2"})], last_row=7, rows_read=1, on_duplicate=UPDATE
    )

    record = record_of("ada@example.com")
    assert (record.job_id, record.row, record.name, record.company, record.extra) == (
        second.job_id,
        7,
        "Ada King",
        None,
        {"phone": "2"},
    )
    assert (record.version, record.status, record.attempts, record.response) == (2, "pending", 0, None)
    assert errors_of(second.job_id) == []
    assert counts(first.job_id) == before == (2, 2, 0, 0)  # the first import's counts stay as they were
    (claimed,) = second.claim_for_delivery(10)
    assert (claimed.row, claimed.version, claimed.extra) == (7, 2, {"phone": "2"})
    second.settle([(claimed, Outcome("k", True, None, {"status": "accepted"}))])
    assert counts(second.job_id) == (1, 1, 0, 0)


def test_under_update_a_row_that_changes_nothing_is_a_duplicate_saying_unchanged(delivered, new_ledger):
    first = delivered(contact(2, extra={"phone": "1"}))
    second = new_ledger()

    second.stage(
        [contact(5, email="ADA@example.com", extra={"phone": "1"})], last_row=5, rows_read=1, on_duplicate=UPDATE
    )

    assert errors_of(second.job_id) == [
        (
            5,
            "duplicate",
            f'unchanged: email "ADA@example.com" was already imported (import #{first.job_id}, row 2) '
            "with these same fields",
        )
    ]
    assert record_of("ada@example.com").version == 1
    assert counts(second.job_id) == (1, 0, 1, 1)


def test_under_skip_a_changed_row_stays_a_duplicate(delivered, new_ledger):
    first = delivered(contact(2))
    second = new_ledger()

    second.stage([contact(5, name="Ada King")], last_row=5, rows_read=1)

    assert errors_of(second.job_id) == [
        (5, "duplicate", f'email "ada@example.com" was already imported (import #{first.job_id}, row 2)')
    ]
    assert (record_of("ada@example.com").name, record_of("ada@example.com").version) == ("Ada", 1)


def test_a_record_still_undelivered_in_another_import_is_not_taken_from_it(new_ledger):
    first = new_ledger()
    first.stage([contact(2)], last_row=2, rows_read=1)  # pending: the first import has not sent it yet
    second = new_ledger()

    second.stage([contact(4, name="Ada King")], last_row=4, rows_read=1, on_duplicate=UPDATE)

    ((row, category, message),) = errors_of(second.job_id)
    assert (row, category) == (4, "duplicate")
    assert message.startswith(f'email "ada@example.com" was already imported (import #{first.job_id}, row 2) and is')
    assert "not delivered yet" in message
    record = record_of("ada@example.com")
    assert (record.job_id, record.name, record.version) == (first.job_id, "Ada", 1)


def test_under_update_a_repeated_email_within_the_file_stays_a_duplicate_of_its_first_row(delivered, new_ledger):
    delivered(contact(2))
    second = new_ledger()

    in_flight = second.stage(
        [contact(3, name="Ada King"), contact(4, name="Ada Queen")],
        last_row=4,
        rows_read=2,
        in_flight=True,
        on_duplicate=UPDATE,
    )
    second.stage([contact(9, name="Ada Byron")], last_row=9, rows_read=1, on_duplicate=UPDATE)

    assert [(record.row, record.name, record.version) for record in in_flight] == [(3, "Ada King", 2)]
    assert errors_of(second.job_id) == [
        (4, "duplicate", 'email "ada@example.com" duplicates row 3 of this file'),
        (9, "duplicate", 'email "ada@example.com" duplicates row 3 of this file'),
    ]
    assert record_of("ada@example.com").name == "Ada King"
    assert shown_statuses(db.session, second.job_id) == {3: "in_flight"}


def test_an_update_delivered_and_updated_again_counts_its_versions(delivered, new_ledger):
    delivered(contact(2))
    for version, name in ((2, "Ada King"), (3, "Ada Byron")):
        ledger = new_ledger()
        ledger.stage([contact(2, name=name)], last_row=2, rows_read=1, on_duplicate=UPDATE)
        (claimed,) = ledger.claim_for_delivery(10)
        assert (claimed.version, claimed.name) == (version, name)
        ledger.settle([(claimed, Outcome("k", True, None, {"status": "accepted"}))])
    assert record_of("ada@example.com").version == 3


def test_two_imports_updating_one_email_at_once_each_end_with_one_outcome_per_row(app, delivered, make_job):
    def stage(job_id, name, start, failures):
        with app.app_context(), Session(db.engine) as session:
            ledger = JobLedger(session, job_id, "test-owner", lease_seconds=60)
            try:
                assert ledger.claim()
                start.wait()
                ledger.stage([contact(2, name=name)], last_row=2, rows_read=1, on_duplicate=UPDATE)
            except Exception as error:  # reported below: an assert in a thread would pass unseen
                failures.append(error)

    delivered(contact(2))
    for round_number in range(5):
        job_ids = [make_job().id, make_job().id]
        start = threading.Barrier(2)
        failures = []
        threads = [
            threading.Thread(target=stage, args=(job_id, f"Ada {round_number}-{n}", start, failures))
            for n, job_id in enumerate(job_ids)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert failures == []
        record = record_of("ada@example.com")
        assert record.job_id in job_ids and record.version == 2 + round_number
        (loser,) = [job_id for job_id in job_ids if job_id != record.job_id]
        ((_, category, message),) = errors_of(loser)
        assert category == "duplicate" and "not delivered yet" in message
        assert errors_of(record.job_id) == []
        # Deliver it, so the next round updates a delivered record again.
        ledger = JobLedger(db.session, record.job_id, "test-owner", lease_seconds=60)
        (claimed,) = ledger.claim_for_delivery(10)
        ledger.settle([(claimed, Outcome("k", True, None, {"status": "accepted"}))])
