"""The job's API (services/jobs.py) without HTTP: what each action does to the ledger, and what it announces."""

import pytest

from importdash.errors import Conflict, NotFound
from importdash.extensions import db
from importdash.runtime import get_runtime
from importdash.services import jobs


def create(app, **options):
    return jobs.create_job(
        db.session,
        get_runtime(app).broker,
        path=app.config["SAMPLE_FILE"],
        source="sample.csv",
        max_line_length=app.config["MAX_LINE_LENGTH"],
        **{"mode": "batch"} | options,
    )


def cancel(app, job_id):
    runtime = get_runtime(app)
    return jobs.cancel_job(db.session, job_id, runner=runtime.runner, broker=runtime.broker, lease_seconds=30)


def test_creating_an_import_announces_it_after_the_commit(app):
    broker = get_runtime(app).broker
    with broker.subscribe() as subscription:
        job = create(app)

        event = subscription.get(timeout=0)

    assert (event.name, event.job_id) == ("job.created", job.id)
    assert event.data["job"] == job.to_dict()
    assert event.data["error_counts"] == {"duplicate": 0, "missing_value": 0, "invalid_format": 0, "other": 0}


def test_cancelling_a_job_no_process_holds_ends_it_at_once_and_announces_it(app):
    job = create(app)  # never submitted: it waits with no runner
    broker = get_runtime(app).broker
    with broker.subscribe(job.id) as subscription:
        cancelled = jobs.cancel_job(db.session, job.id, runner=get_runtime(app).runner, broker=broker, lease_seconds=30)

        event = subscription.get(timeout=0)

    assert (cancelled.status, cancelled.error, cancelled.lease_owner) == ("cancelled", "cancelled by request", None)
    assert (event.name, event.data["job"]["status"]) == ("job.finished", "cancelled")


def test_an_ended_job_cannot_be_cancelled_and_an_unfinished_one_cannot_be_retried(app):
    job = create(app)
    with pytest.raises(Conflict, match="only a completed import"):
        jobs.retry_job(db.session, job.id, category=None, runner=get_runtime(app).runner)
    jobs.cancel_job(
        db.session, job.id, runner=get_runtime(app).runner, broker=get_runtime(app).broker, lease_seconds=30
    )

    with pytest.raises(Conflict, match="already ended"):
        cancel(app, job.id)


def test_clearing_is_refused_while_a_job_is_unfinished_and_deletes_everything_after(app):
    job = create(app)
    with pytest.raises(Conflict):
        jobs.clear_all(db.session, running=[])
    jobs.cancel_job(
        db.session, job.id, runner=get_runtime(app).runner, broker=get_runtime(app).broker, lease_seconds=30
    )

    assert jobs.clear_all(db.session, running=[]) == {"records": 0, "errors": 0, "jobs": 1}
    with pytest.raises(NotFound):
        jobs.get_job(db.session, job.id)


def test_an_id_beyond_the_id_column_names_no_job(app):
    with pytest.raises(NotFound):
        jobs.get_job(db.session, 2**63)
    assert jobs.job_state(db.session, 2**63) is None
