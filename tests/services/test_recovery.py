"""Jobs outlive their process: orphaned jobs are found and resumed, shutdown leaves them resumable."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from fakes import shown_statuses
from sqlalchemy import func, select, update

from importdash import create_app
from importdash.extensions import db
from importdash.models import ImportJob, Record, RowError, utcnow
from importdash.runtime import get_runtime, stop_background
from importdash.services.downstream import SimulatedDownstream
from importdash.services.importer import Importer, ImportSettings, JobContext, StopSignal
from importdash.services.jobs import create_job
from importdash.services.ledger import JobLedger, claimable_job_ids
from importdash.services.reader import FileLimits


class ProcessDied(BaseException):
    """Stands in for SIGKILL: nothing in the job catches it, so nothing is cleaned up."""


class ReceivingDownstream(SimulatedDownstream):
    """Keep every key the downstream accepted; optionally 'kill the process' right after the n-th call lands."""

    def __init__(self, *, die_after_calls=None, **options):
        super().__init__(**options)
        self.die_after_calls = die_after_calls
        self.received = []
        self.lock = threading.Lock()

    def send(self, records):
        outcomes = super().send(records)
        with self.lock:
            self.received.extend(outcome.key for outcome in outcomes if outcome.ok)
        if self.die_after_calls is not None and self.calls >= self.die_after_calls:
            raise ProcessDied
        return outcomes


@pytest.fixture
def app_config():
    return {"RECORDS_PER_CALL": 5, "DELIVERY_WINDOW": 20, "CHUNK_SIZE": 30}


@pytest.fixture
def contacts(write_csv):
    """100 rows: every tenth has a bad email; every rejected.example address is refused downstream."""
    lines = ["name,email"]
    for n in range(100):
        email = "not-an-email" if n % 10 == 9 else f"p{n}@{'rejected' if n % 25 == 0 else 'ok'}.example"
        lines.append(f"Person {n},{email}")
    return write_csv("\n".join(lines) + "\n")


def valid_rows():
    return {n + 2 for n in range(100) if n % 10 != 9}


def use_downstream(app, downstream):
    get_runtime(app).deliverer.downstream = downstream
    return downstream


def run_until_the_process_dies(app, job_id, downstream):
    """Run the job under another process's name until the downstream 'kills' it, then let its lease expire."""
    ledger = JobLedger(db.session, job_id, "dead-host:4242:00000000", app.config["LEASE_SECONDS"])
    assert ledger.claim()
    context = JobContext(
        session=db.session,
        owner=ledger.owner,
        settings=ImportSettings.from_config(app.config),
        deliverer=get_runtime(app).deliverer,
        broker=get_runtime(app).broker,
        storage=get_runtime(app).storage,
    )
    importer = Importer(ledger, context, StopSignal(threading.Event()))
    with pytest.raises(ProcessDied):
        importer.run()
    db.session.rollback()
    assert job_id not in claimable_job_ids(db.session)  # its lease is still live
    db.session.execute(
        update(ImportJob).where(ImportJob.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def assert_exactly_once_effect(job, downstream):
    received = Counter(downstream.received)
    accepted_rows = {n + 2 for n in range(100) if n % 10 != 9 and n % 25 != 0}
    assert set(received) == {f"{job.key}-{row}" for row in accepted_rows}
    assert job.status == "completed", job.error
    assert (job.total_records, job.processed_count) == (100, 100)
    assert job.success_count == len(accepted_rows)
    assert job.success_count + job.failed_count == job.processed_count
    error_rows = list(db.session.scalars(select(RowError.row).where(RowError.job_id == job.id)))
    assert len(error_rows) == len(set(error_rows)) == 100 - len(accepted_rows)
    records = db.session.scalar(select(func.count()).select_from(Record).where(Record.job_id == job.id))
    assert records == len(valid_rows())
    return received


@pytest.mark.parametrize("mode, die_after_calls", [("batch", 3), ("stream", 8), ("default", 5)])
def test_a_job_whose_process_died_mid_delivery_is_taken_over_and_resends_only_what_was_in_flight(
    app, contacts, mode, die_after_calls, wait_for_job
):
    downstream = ReceivingDownstream(die_after_calls=die_after_calls, latency_ms=0, reject_domains="rejected.example")
    use_downstream(app, downstream)
    job = create_job(
        db.session,
        get_runtime(app).broker,
        max_line_length=app.config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(app.config),
        mode=mode,
        path=str(contacts),
        source="contacts.csv",
    )
    run_until_the_process_dies(app, job.id, downstream)
    downstream.die_after_calls = None
    in_flight_rows = {row for row, status in shown_statuses(db.session, job.id).items() if status == "in_flight"}

    assert get_runtime(app).claimer.claim() == [job.id]
    wait_for_job(job.id)

    received = assert_exactly_once_effect(db.session.get(ImportJob, job.id), downstream)
    resent = {key for key, count in received.items() if count > 1}
    assert resent, "the call that landed as the process died is sent again"
    assert resent <= {f"{job.key}-{row}" for row in in_flight_rows}
    assert max(received.values()) == 2


def test_a_stream_import_resumes_after_its_last_staged_row(app, contacts, wait_for_job):
    downstream = use_downstream(
        app, ReceivingDownstream(die_after_calls=7, latency_ms=0, reject_domains="rejected.example")
    )
    job = create_job(
        db.session,
        get_runtime(app).broker,
        max_line_length=app.config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(app.config),
        mode="stream",
        path=str(contacts),
        source="contacts.csv",
    )
    run_until_the_process_dies(app, job.id, downstream)
    db.session.expire_all()
    cursor = db.session.get(ImportJob, job.id).cursor
    assert cursor == 61  # two chunks of 30 rows (rows 2-61) were staged before the process died
    downstream.die_after_calls = None

    get_runtime(app).claimer.claim()
    wait_for_job(job.id)

    # Re-reading from the top would have staged rows twice: as duplicates of themselves, or as a clash on (job, row).
    assert_exactly_once_effect(db.session.get(ImportJob, job.id), downstream)


def test_claimable_jobs_are_unfinished_jobs_with_free_or_expired_leases(app, make_job):
    past, future = utcnow() - timedelta(seconds=5), utcnow() + timedelta(seconds=60)
    free = make_job(status="pending").id
    expired = make_job(status="processing", lease_owner="gone", lease_expires_at=past).id
    make_job(status="processing", lease_owner="alive", lease_expires_at=future)
    make_job(status="completed")
    make_job(status="cancelled", lease_owner=None)

    assert claimable_job_ids(db.session) == [free, expired]


def test_shutdown_stops_after_the_call_in_flight_and_another_process_finishes_the_job(app, contacts):
    downstream = use_downstream(app, ReceivingDownstream(latency_ms=30, reject_domains="rejected.example"))
    job = create_job(
        db.session,
        get_runtime(app).broker,
        max_line_length=app.config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(app.config),
        mode="batch",
        path=str(contacts),
        source="contacts.csv",
    )
    get_runtime(app).runner.submit(job.id)
    while downstream.calls < 3:
        threading.Event().wait(0.01)

    stop_background(app, wait=True)

    db.session.expire_all()
    stopped = db.session.get(ImportJob, job.id)
    assert stopped.status == "processing" and stopped.lease_owner is None and stopped.notice is None
    assert 0 < stopped.processed_count < 100
    assert Counter(downstream.received).most_common(1)[0][1] == 1  # nothing sent twice so far

    restarted = create_app(dict(app.config))
    try:
        get_runtime(restarted).deliverer.downstream = downstream
        get_runtime(restarted).claimer.start()
        get_runtime(restarted).runner.wait(job.id, timeout=30)
    finally:
        stop_background(restarted, wait=True)
        with restarted.app_context():
            db.engine.dispose()
    db.session.expire_all()
    received = assert_exactly_once_effect(db.session.get(ImportJob, job.id), downstream)
    assert max(received.values()) == 1  # a clean stop settles every call it made: nothing is sent twice
