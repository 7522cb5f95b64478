"""Pause, unpause and priority (services/jobs.py, the ledger and the importer), on SQLite and PostgreSQL: a paused
job is never claimed and counts as unfinished, a running one pauses at its heartbeat leaving nothing stranded, and
waiting jobs are claimed highest priority first."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from fakes import shown_statuses
from sqlalchemy import create_engine, insert, select, text, update

from importdash.errors import ApiError, Conflict
from importdash.extensions import db
from importdash.models import ImportJob, JobAction, JobRun, utcnow
from importdash.runtime import get_runtime
from importdash.services import jobs
from importdash.services.downstream import SimulatedDownstream
from importdash.services.importer import StopReason, StopSignal
from importdash.services.ledger import CLAIM_ORDER, JobLedger, Lease, claim_jobs, claimable, claimable_job_ids
from importdash.services.reader import FileLimits


@pytest.fixture
def app_config():
    # Every check renews the lease, so a pause asked through the database is seen at the next one.
    return {"RECORDS_PER_CALL": 5, "DELIVERY_WINDOW": 20, "HEARTBEAT_SECONDS": 0}


def pause(app, job_id):
    runtime = get_runtime(app)
    return jobs.pause_job(db.session, job_id, runner=runtime.runner, broker=runtime.broker)


def unpause(app, job_id):
    runtime = get_runtime(app)
    return jobs.unpause_job(db.session, job_id, runner=runtime.runner, broker=runtime.broker)


def fresh(job_id):
    db.session.expire_all()
    return db.session.get(ImportJob, job_id)


# Priority.


def test_claims_take_the_highest_priority_first_then_the_oldest(app, make_job):
    now = utcnow()
    old_low = make_job(status="pending", priority=-5, created_at=now - timedelta(minutes=9)).id
    old_normal = make_job(status="pending", created_at=now - timedelta(minutes=8)).id
    new_high = make_job(status="pending", priority=7, created_at=now).id
    new_normal = make_job(status="pending", created_at=now - timedelta(minutes=1)).id
    also_high = make_job(status="pending", priority=7, created_at=now).id  # same moment: the lower id first

    assert claimable_job_ids(db.session) == [new_high, also_high, old_normal, new_normal, old_low]
    assert claim_jobs(db.session, Lease("a", 30), limit=3) == sorted([new_high, also_high, old_normal])
    assert claim_jobs(db.session, Lease("b", 30), limit=1) == [new_normal]


def test_a_new_priority_changes_the_order_of_waiting_jobs(app, make_job):
    first, second = make_job(status="pending").id, make_job(status="pending").id

    changed = jobs.set_priority(db.session, second, priority=3, broker=get_runtime(app).broker)

    assert changed.priority == 3
    assert claimable_job_ids(db.session) == [second, first]


@pytest.mark.parametrize("value", [11, -11, "high", "1.5", True, None, 2.0, ""])
def test_a_priority_is_a_whole_number_from_minus_10_to_10(value):
    with pytest.raises(ApiError, match="priority must be a whole number from -10 to 10"):
        jobs.check_priority(value)


@pytest.mark.parametrize("value, number", [(10, 10), (-10, -10), ("3", 3), (" -2 ", -2), ("+4", 4)])
def test_a_priority_may_come_as_a_number_or_a_forms_text(value, number):
    assert jobs.check_priority(value) == number


def test_a_claim_reads_the_head_of_the_claim_order_index_not_the_whole_history(app):
    # A busy queue: thousands of ended imports and a backlog waiting; the planners see it as it is. A claim must
    # take the first few in order without sorting the whole backlog.
    ended = [{"mode": "batch", "source": "a.csv", "path": "a.csv", "status": "completed"} for _ in range(5000)]
    db.session.execute(insert(ImportJob), ended)
    waiting = [{"mode": "batch", "source": "b.csv", "path": "b.csv", "priority": n % 5} for n in range(2000)]
    db.session.execute(insert(ImportJob), waiting)
    db.session.commit()
    with db.engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()
    query = select(ImportJob.id).where(claimable()).order_by(*CLAIM_ORDER).limit(4)
    sql = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN" if db.engine.dialect.name == "sqlite" else "EXPLAIN"

    plan = " ".join(str(row[-1]) for row in db.session.execute(text(f"{explain} {sql}")))

    assert "ix_import_jobs_claim_order" in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan  # read in order, not sorted


# Pause and unpause a job no run holds.


def test_a_waiting_job_is_paused_at_once_never_claimed_and_unpaused_waits_again(app, make_job):
    job_id = make_job(status="pending").id
    broker = get_runtime(app).broker
    with broker.subscribe(job_id) as subscription:
        paused = pause(app, job_id)
        event = subscription.get(timeout=0)

    assert (paused.status, paused.pause_requested, paused.lease_owner) == ("paused", False, None)
    assert (event.name, event.data["job"]["status"]) == ("job.progress", "paused")
    assert claimable_job_ids(db.session) == []
    assert claim_jobs(db.session, Lease("a", 30), limit=5) == []
    assert not JobLedger(db.session, job_id, "a", 30).claim()  # a run started by id cannot take it either
    with pytest.raises(Conflict, match="paused already"):
        pause(app, job_id)

    get_runtime(app).claimer.stop()  # no claim in the background: what unpause leaves is what is read
    unpaused = jobs.unpause_job(db.session, job_id, runner=NoRunner(), broker=broker)

    assert (unpaused.status, unpaused.pause_requested) == ("pending", False)
    assert claimable_job_ids(db.session) == [job_id]
    with pytest.raises(Conflict, match="only a paused import can be unpaused"):
        jobs.unpause_job(db.session, job_id, runner=NoRunner(), broker=broker)


class NoRunner:
    """A runner with no free slot: a job it is given waits in the database."""

    def submit(self, job_id):
        return None

    def pause(self, job_id):
        pass


def test_a_job_whose_process_died_is_paused_at_once(app, make_job):
    gone = utcnow() - timedelta(seconds=5)
    job_id = make_job(status="processing", lease_owner="dead:1:x", lease_expires_at=gone).id

    assert pause(app, job_id).status == "paused"


def test_an_ended_or_cancelling_job_cannot_be_paused(app, make_job):
    ended = make_job(status="completed").id
    cancelling = make_job(status="processing", cancel_requested=True, lease_owner="b", lease_expires_at=later()).id

    with pytest.raises(Conflict, match="already ended"):
        pause(app, ended)
    with pytest.raises(Conflict, match="being cancelled"):
        pause(app, cancelling)


def later():
    return utcnow() + timedelta(minutes=5)


def test_a_paused_job_counts_as_unfinished_for_clearing_deleting_and_purging(app, make_job):
    job_id = make_job(status="pending", completed_at=utcnow() - timedelta(days=30)).id
    pause(app, job_id)
    storage = get_runtime(app).storage

    with pytest.raises(Conflict, match=rf"Import #{job_id} \(contacts.csv\) is paused; unpause it and let it"):
        jobs.clear_all(db.session, running=[], storage=storage)
    with pytest.raises(Conflict, match="is paused"):
        jobs.delete_job(db.session, job_id, running=[], storage=storage)
    assert jobs.purge_jobs(db.session, ended_before=utcnow(), storage=storage)["jobs"] == 0
    listed, _total = jobs.list_jobs(db.session, limit=10, status="paused")
    assert [job["id"] for job in listed] == [job_id]


def test_a_paused_job_is_listed_with_the_unfinished_ones_first(app, make_job):
    paused = make_job(status="pending", created_at=utcnow() - timedelta(days=1)).id
    pause(app, paused)
    done = make_job(status="completed").id

    listed, _total = jobs.list_jobs(db.session, limit=10)

    assert [job["id"] for job in listed] == [paused, done]


def test_a_paused_job_is_cancelled_at_once(app, make_job):
    job_id = make_job(status="pending").id
    pause(app, job_id)

    runtime = get_runtime(app)
    cancelled = jobs.cancel_job(
        db.session,
        job_id,
        runner=runtime.runner,
        broker=runtime.broker,
        lease_seconds=30,
        notifications=runtime.notification_defaults,
    )

    assert (cancelled.status, cancelled.pause_requested) == ("cancelled", False)


# A job a run holds.


def test_a_job_another_process_holds_is_asked_to_pause_at_its_heartbeat(app, make_job):
    job_id = make_job(status="processing", lease_owner="other:1:x", lease_expires_at=later()).id
    holder = JobLedger(db.session, job_id, "other:1:x", lease_seconds=30)

    asked = pause(app, job_id)

    assert (asked.status, asked.pause_requested) == ("processing", True)
    assert holder.renew_lease() is JobAction.PAUSE
    with pytest.raises(Conflict, match="pausing at its next check"):
        unpause(app, job_id)
    db.session.execute(update(ImportJob).where(ImportJob.id == job_id).values(cancel_requested=True))
    db.session.commit()
    assert holder.renew_lease() is JobAction.CANCEL  # a cancel wins: the job ends either way


class StreamWatchingRunner:
    """A runner holding the job here, which takes what the job's stream was told by the time it is asked to stop."""

    def __init__(self, subscription):
        self.subscription = subscription
        self.told = None

    def pause(self, job_id):
        self.told = self.subscription.get(timeout=0)

    cancel = pause


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_a_request_to_stop_is_announced_before_the_run_here_is_told(app, make_job, action):
    # The run announces its stop (paused, cancelled) after it is told: the request's announcement, read before,
    # must not come after that one and leave its stream, and the page, on "processing".
    job_id = make_job(status="processing", lease_owner="here:1:x", lease_expires_at=later()).id
    runtime = get_runtime(app)
    with runtime.broker.subscribe(job_id) as subscription:
        runner = StreamWatchingRunner(subscription)
        if action == "pause":
            jobs.pause_job(db.session, job_id, runner=runner, broker=runtime.broker)
        else:
            jobs.cancel_job(
                db.session,
                job_id,
                runner=runner,
                broker=runtime.broker,
                lease_seconds=30,
                notifications=runtime.notification_defaults,
            )

    assert runner.told is not None, "the run was told before its stream"
    assert runner.told.data["job"]["status"] == "processing"
    assert runner.told.data["job"][f"{action}_requested"] is True


def test_the_stop_signal_puts_a_cancel_before_a_pause_and_a_pause_before_a_shutdown():
    shutdown = threading.Event()
    signal = StopSignal(shutdown)
    shutdown.set()
    assert signal.reason is StopReason.SHUTDOWN
    signal.pause()
    assert signal.reason is StopReason.PAUSE
    signal.cancel()
    assert signal.reason is StopReason.CANCEL


class PausingDownstream(SimulatedDownstream):
    """Keep every key the downstream accepted; after the n-th call, ask for a pause as another process would:
    straight in the database, on a connection of its own."""

    def __init__(self, *, database_url, job_id, pause_after_calls, **options):
        super().__init__(**options)
        self.engine = create_engine(database_url)
        self.job_id = job_id
        self.pause_after_calls = pause_after_calls
        self.received = []
        self.lock = threading.Lock()

    def send(self, records):
        outcomes = super().send(records)
        with self.lock:
            self.received.extend(outcome.key for outcome in outcomes if outcome.ok)
        if self.calls == self.pause_after_calls:
            with self.engine.begin() as connection:
                connection.execute(update(ImportJob).where(ImportJob.id == self.job_id).values(pause_requested=True))
        return outcomes


@pytest.mark.parametrize("mode", ["batch", "stream", "default"])
def test_a_running_job_pauses_at_its_heartbeat_frees_its_slot_and_unpaused_delivers_every_row_once(
    app, write_csv, wait_for_job, mode
):
    path = write_csv("name,email\n" + "".join(f"P{n},p{n}@example.com\n" for n in range(60)))
    runtime = get_runtime(app)
    runtime.claimer.stop()  # only the runs this test starts
    job = jobs.create_job(
        db.session,
        runtime.broker,
        max_line_length=app.config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(app.config),
        mode=mode,
        path=str(path),
        source="contacts.csv",
    )
    downstream = PausingDownstream(
        database_url=app.config["SQLALCHEMY_DATABASE_URI"],
        job_id=job.id,
        pause_after_calls=3,
        latency_ms=0,
        reject_domains="",
    )
    runtime.deliverer.downstream = downstream
    try:
        runtime.runner.submit(job.id)
        paused = wait_for_job(job.id)

        assert paused["status"] == "paused" and not paused["pause_requested"]
        assert 0 < paused["success_count"] < 60
        assert runtime.runner.active_jobs() == [] and runtime.runner.free_slots() == runtime.runner.max_workers
        held = fresh(job.id)
        assert (held.lease_owner, held.lease_expires_at) == (None, None)
        assert claimable_job_ids(db.session) == []
        first_run = db.session.scalars(select(JobRun).where(JobRun.job_id == job.id)).one()
        assert first_run.outcome == "paused" and first_run.ended_at is not None

        unpause(app, job.id)
        ended = wait_for_job(job.id)
    finally:
        downstream.engine.dispose()

    assert ended["status"] == "completed", ended["error"]
    assert ended["processed_count"] == ended["success_count"] == ended["total_records"] == 60
    # The pause was seen before a call went out, so nothing was in flight at the downstream: each key once.
    received = Counter(downstream.received)
    assert set(received) == {f"{held.key}-{row}" for row in range(2, 62)}
    assert max(received.values()) == 1
    statuses = Counter(shown_statuses(db.session, job.id).values())
    assert statuses == {"succeeded": 60}
    runs = list(db.session.scalars(select(JobRun).where(JobRun.job_id == job.id).order_by(JobRun.id)))
    assert [(run.kind, run.outcome) for run in runs] == [("import", "paused"), ("import", "completed")]
