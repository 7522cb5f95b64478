"""The job's API (services/jobs.py) without HTTP: what each action does to the ledger, and what it announces."""

import io
import os
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from importdash.errors import Conflict, NotFound
from importdash.extensions import db
from importdash.models import ImportJob, JobAction, utcnow
from importdash.runtime import get_runtime
from importdash.services import jobs
from importdash.services.ledger import JobLedger
from importdash.services.reader import FileLimits
from importdash.services.validator import Contact


@pytest.fixture(params=["local", "database"])
def app_config(request):
    """Every test here runs with uploads in a local folder and in the database."""
    return {"UPLOAD_STORAGE": request.param}


def create(app, **options):
    settings = {"mode": "batch", "path": app.config["SAMPLE_FILE"], "source": "sample.csv"} | options
    return jobs.create_job(
        db.session,
        get_runtime(app).broker,
        max_line_length=app.config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(app.config),
        **settings,
    )


def cancel(app, job_id):
    runtime = get_runtime(app)
    return jobs.cancel_job(
        db.session,
        job_id,
        runner=runtime.runner,
        broker=runtime.broker,
        lease_seconds=30,
        notifications=runtime.notification_defaults,
    )


def test_creating_an_import_announces_it_after_the_commit(app):
    broker = get_runtime(app).broker
    with broker.subscribe() as subscription:
        job = create(app)

        event = subscription.get(timeout=0)

    assert (event.name, event.job_id) == ("job.created", job.id)
    assert event.data["job"] == job.to_dict(runs=[])  # no run yet
    assert event.data["error_counts"] == {"duplicate": 0, "missing_value": 0, "invalid_format": 0, "other": 0}


def test_cancelling_a_job_no_process_holds_ends_it_at_once_and_announces_it(app):
    job = create(app)  # never submitted: it waits with no runner
    broker = get_runtime(app).broker
    with broker.subscribe(job.id) as subscription:
        cancelled = cancel(app, job.id)

        asked, ended = subscription.get(timeout=0), subscription.get(timeout=0)

    assert (cancelled.status, cancelled.error, cancelled.lease_owner) == ("cancelled", "cancelled by request", None)
    assert (asked.name, asked.data["job"]["status"], asked.data["job"]["cancel_requested"]) == (
        "job.progress",
        "pending",
        True,
    )
    assert (ended.name, ended.data["job"]["status"]) == ("job.finished", "cancelled")


def test_an_ended_job_cannot_be_cancelled_and_an_unfinished_one_cannot_be_retried(app):
    job = create(app)
    with pytest.raises(Conflict, match="only a completed import"):
        jobs.retry_job(db.session, job.id, category=None, runner=get_runtime(app).runner)
    cancel(app, job.id)

    with pytest.raises(Conflict, match="already ended"):
        cancel(app, job.id)


def test_clearing_is_refused_while_a_job_is_unfinished_and_deletes_everything_after(app):
    job = create(app)
    with pytest.raises(Conflict):
        jobs.clear_all(db.session, running=[], storage=get_runtime(app).storage)
    cancel(app, job.id)

    cleared = jobs.clear_all(db.session, running=[], storage=get_runtime(app).storage)
    assert cleared == {"records": 0, "errors": 0, "jobs": 1, "files": 0}  # the bundled sample is never deleted
    assert os.path.exists(app.config["SAMPLE_FILE"])
    with pytest.raises(NotFound):
        jobs.get_job(db.session, job.id)


def test_an_id_beyond_the_id_column_names_no_job(app):
    with pytest.raises(NotFound):
        jobs.get_job(db.session, 2**63)
    assert jobs.job_state(db.session, 2**63) is None


def upload(app, text="name,email,Phone\nAda,ada@example.com,1\nBob,not-an-email,2\n"):
    path = jobs.spool_upload(io.BytesIO(text.encode()), app.config["UPLOAD_FOLDER"])
    return create(app, path=path, source="contacts.csv", store_in=get_runtime(app).storage)


def stored(app, job):
    """Whether the job's file is still in the store."""
    return get_runtime(app).storage.exists(job.path)


def end(job, ended_ago):
    db.session.execute(
        update(ImportJob).where(ImportJob.id == job.id).values(status="completed", completed_at=utcnow() - ended_ago)
    )
    db.session.commit()


def test_an_ended_imports_upload_is_removed_after_the_retention_and_errors_csv_keeps_its_columns(app):
    job = upload(app)
    end(job, timedelta(hours=2))
    storage = get_runtime(app).storage

    assert jobs.remove_ended_uploads(db.session, storage=storage, retention_hours=3, resume_hours=0) == 0
    assert stored(app, job)
    assert jobs.remove_ended_uploads(db.session, storage=storage, retention_hours=1, resume_hours=0) == 1

    assert not stored(app, job)
    assert jobs.get_job(db.session, job.id).upload_removed_at is not None
    assert jobs.remove_ended_uploads(db.session, storage=storage, retention_hours=0, resume_hours=0) == 0  # once only
    _name, chunks = jobs.export_errors(db.session, job.id, category=None, batch_size=10)
    assert "".join(chunks).splitlines()[0] == "\ufeffrow,category,message,name,email,Phone"


def test_unfinished_imports_and_files_outside_the_upload_folder_are_never_removed(app, write_csv):
    running = upload(app)
    own_file = create(app, path=str(write_csv("name,email\nAda,ada@example.com\n")), source="mine.csv")
    end(own_file, timedelta(hours=5))

    storage = get_runtime(app).storage
    assert jobs.remove_ended_uploads(db.session, storage=storage, retention_hours=0, resume_hours=0) == 0
    assert stored(app, running) and stored(app, own_file)


def test_clearing_deletes_the_uploads_too(app):
    job = upload(app)
    path = job.path
    end(job, timedelta(0))

    cleared = jobs.clear_all(db.session, running=[], storage=get_runtime(app).storage)

    assert cleared["files"] == 1 and not get_runtime(app).storage.exists(path)


def test_purging_deletes_only_imports_that_ended_before_the_moment_with_their_rows_and_files(app):
    old, recent, unfinished = upload(app), upload(app), upload(app)
    old_path = old.path
    end(old, timedelta(days=40))
    end(recent, timedelta(days=1))
    db.session.execute(
        update(ImportJob).where(ImportJob.id == unfinished.id).values(created_at=utcnow() - timedelta(days=90))
    )
    db.session.commit()

    purged = jobs.purge_jobs(db.session, ended_before=utcnow() - timedelta(days=30), storage=get_runtime(app).storage)

    assert purged == {"records": 0, "errors": 0, "jobs": 1, "files": 1}
    assert not get_runtime(app).storage.exists(old_path) and stored(app, recent) and stored(app, unfinished)
    assert {job["id"] for job in jobs.list_jobs(db.session, limit=10)[0]} == {unfinished.id, recent.id}


def test_a_stopped_imports_upload_is_kept_for_the_resume_window(app):
    job = upload(app)
    cancel(app, job.id)
    db.session.execute(
        update(ImportJob).where(ImportJob.id == job.id).values(completed_at=utcnow() - timedelta(hours=5))
    )
    db.session.commit()
    storage = get_runtime(app).storage

    assert jobs.remove_ended_uploads(db.session, storage=storage, retention_hours=0, resume_hours=24) == 0
    assert jobs.remove_ended_uploads(db.session, storage=storage, retention_hours=0, resume_hours=4) == 1


def test_a_cancelled_import_resumes_and_delivers_every_row(app, wait_for_job):
    job = upload(app)
    cancel(app, job.id)

    resumed = jobs.resume_job(db.session, job.id, runner=get_runtime(app).runner)
    assert resumed.status in ("pending", "processing")  # the runner may have taken it already
    assert (resumed.error, resumed.completed_at) == (None, None)
    ended = wait_for_job(job.id)

    assert ended["status"] == "completed", ended["error"]
    assert (ended["processed_count"], ended["success_count"], ended["failed_count"]) == (2, 1, 1)


def test_only_a_failed_or_cancelled_import_can_be_resumed(app, wait_for_job):
    job = create(app)
    with pytest.raises(Conflict, match="only a failed or cancelled import"):
        jobs.resume_job(db.session, job.id, runner=get_runtime(app).runner)


def test_resumed_without_its_upload_it_sends_what_was_staged_and_says_what_was_never_read(app, wait_for_job):
    job = upload(app, "name,email\n" + "".join(f"P{n},p{n}@example.com\n" for n in range(10)))
    path = job.path
    cancel(app, job.id)
    # As if the first run had staged rows 2-5 before it was cancelled, and the upload had then been deleted.
    ledger = JobLedger(db.session, job.id, "earlier-run", 30)
    db.session.execute(update(ImportJob).where(ImportJob.id == job.id).values(status="pending"))
    db.session.commit()
    assert ledger.claim()
    ledger.stage(
        [Contact(row, f"P{row}", f"p{row}@example.com", f"p{row}@example.com", None, {}) for row in range(2, 6)],
        last_row=5,
        rows_read=4,
    )
    ledger.finish(JobAction.CANCEL)
    get_runtime(app).storage.delete(path)
    db.session.execute(update(ImportJob).where(ImportJob.id == job.id).values(upload_removed_at=utcnow()))
    db.session.commit()

    jobs.resume_job(db.session, job.id, runner=get_runtime(app).runner)
    ended = wait_for_job(job.id)

    assert ended["status"] == "completed"
    assert (ended["total_records"], ended["success_count"]) == (4, 4)
    assert "rows after row 5 were never read" in ended["error"]


def test_every_run_is_recorded_with_how_it_ended_and_what_it_delivered(app, client, wait_for_job):
    job = upload(app, "name,email\nAda,ada@example.com\nMal,mal@blocked.example\n")
    get_runtime(app).runner.submit(job.id)
    wait_for_job(job.id)
    jobs.retry_job(db.session, job.id, category=None, runner=get_runtime(app).runner)
    wait_for_job(job.id)

    runs = client.get(f"/api/import/{job.id}").get_json()["runs"]

    assert [(run["kind"], run["outcome"]) for run in runs] == [("import", "completed"), ("retry", "completed")]
    assert [(run["sent"], run["succeeded"], run["refused"]) for run in runs] == [(2, 1, 1), (1, 0, 1)]
    assert all(run["started_at"] <= run["ended_at"] for run in runs)


def test_a_job_that_ends_while_its_page_is_read_is_still_listed(app, make_job):
    running = make_job(status="processing")
    ended = []

    def end_it_first(connection, cursor, statement, parameters, context, executemany):
        # Between the list's counts and its page: the job moves from the unfinished part to the ended one.
        if "FROM import_jobs" in statement and "LIMIT" in statement and not ended:
            ended.append(statement)
            with db.engine.begin() as other:
                other.execute(update(ImportJob).where(ImportJob.id == running.id).values(status="completed"))

    event.listen(db.engine, "before_cursor_execute", end_it_first)
    try:
        listed, total = jobs.list_jobs(db.session, limit=5)
    finally:
        event.remove(db.engine, "before_cursor_execute", end_it_first)

    assert ended, "the job ended while the page was read"
    # Once, as it was or as it is: SQLite reads the list in one snapshot, PostgreSQL reads the page again.
    assert total == 1 and [job["id"] for job in listed] == [running.id]
