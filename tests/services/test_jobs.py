"""The job's API (services/jobs.py) without HTTP: what each action does to the ledger, and what it announces."""

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


def test_creating_an_import_announces_it_after_the_commit(app):
    broker = get_runtime(app).broker
    with broker.subscribe() as subscription:
        job = create(app)

        event = subscription.get(timeout=0)

    assert (event.name, event.job_id) == ("job.created", job.id)
    assert event.data["job"] == job.to_dict()
    assert event.data["error_counts"] == {"duplicate": 0, "missing_value": 0, "invalid_format": 0, "other": 0}
