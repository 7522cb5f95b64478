"""POST /api/import/preview: what an import would do, with nothing written; starting an import by its token."""

import io
import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from importdash.errors import Conflict
from importdash.extensions import db
from importdash.models import ImportJob, ImportPreview, Record, RowError, utcnow
from importdash.runtime import get_runtime
from importdash.services import jobs
from importdash.services.reader import FileLimits

HEADER = "name,email,company\n"
ROWS = [
    "Ada Lovelace,ada@example.com,Analytical",  # row 2: valid
    "Grace Hopper,grace@example.com,Navy",  # row 3: a stored record holds the email
    ",nobody@example.com,",  # row 4: missing name
    "Alan Turing,not-an-email,",  # row 5: invalid format
    "Ada Again,ADA@example.com,",  # row 6: duplicate of row 2
    "Linus,linus@example.com,",  # row 7: valid
]
FILE = HEADER + "\n".join(ROWS) + "\n"


def upload(client, text=FILE, name="contacts.csv", url="/api/import/preview", **fields):
    data = {"file": (io.BytesIO(text.encode()), name), **fields}
    return client.post(url, data=data, content_type="multipart/form-data")


def written(app):
    """How many jobs, records and error rows there are."""
    return tuple(db.session.scalar(select(func.count()).select_from(model)) for model in (ImportJob, Record, RowError))


def store_record(email):
    job = ImportJob(mode="batch", source="earlier.csv", path="earlier.csv", status="completed")
    db.session.add(job)
    db.session.flush()
    db.session.add(Record(job_id=job.id, row=2, name="Earlier", email=email, email_key=email.lower()))
    db.session.commit()


def kept_uploads(app):
    folder = app.config["UPLOAD_FOLDER"]
    return sorted(name for name in os.listdir(folder) if not name.startswith(".")) if os.path.isdir(folder) else []


def test_a_preview_shows_the_mapping_rows_counts_and_estimate_and_writes_nothing(app, client):
    store_record("grace@example.com")
    before = written(app)

    response = upload(client)

    assert response.status_code == 200, response.get_json()
    preview = response.get_json()["preview"]
    assert written(app) == before
    assert preview["mapping"] == {"name": ["name"], "email": "email", "company": "company", "extra": None}
    assert preview["mapping_required"] is None
    assert preview["columns"] == ["name", "email", "company"]
    assert preview["counts"] == {
        "valid": 2,
        "missing_value": 1,
        "invalid_format": 1,
        "duplicate_in_file": 1,
        "duplicate_stored": 1,
        "total": 6,
    }
    categories = [(row["row"], row["category"]) for row in preview["rows"]]
    assert categories == [
        (2, "valid"),
        (3, "duplicate_stored"),
        (4, "missing_value"),
        (5, "invalid_format"),
        (6, "duplicate_in_file"),
        (7, "valid"),
    ]
    assert preview["rows"][0] | {"message": None} == {
        "row": 2,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "company": "Analytical",
        "extra": None,
        "category": "valid",
        "message": None,
    }
    assert preview["source"] == "contacts.csv" and preview["token"]
    assert db.session.get(ImportPreview, preview["token"]) is not None
    assert len(kept_uploads(app)) == 1


@pytest.mark.parametrize("app_config", [{"RATE_PER_SECOND": 0.5, "RECORDS_PER_CALL": 1}])
def test_the_estimate_is_the_valid_rows_calls_at_the_configured_rate(client):
    estimate = upload(client).get_json()["preview"]["estimate"]
    assert estimate == {"records": 3, "calls": 3, "records_per_call": 1, "rate_per_second": 0.5, "seconds": 6.0}


@pytest.mark.parametrize("app_config", [{"PREVIEW_ROWS": 3, "PREVIEW_LOOKUP_BATCH_SIZE": 2}])
def test_only_the_first_rows_are_shown_and_lookups_in_batches_count_every_row(app, client):
    store_record("linus@example.com")
    preview = upload(client).get_json()["preview"]
    assert [row["row"] for row in preview["rows"]] == [2, 3, 4]
    assert preview["counts"]["duplicate_stored"] == 1 and preview["counts"]["valid"] == 2
    assert preview["counts"]["total"] == 6


def test_under_the_update_policy_the_estimate_includes_the_stored_emails(app, client):
    store_record("grace@example.com")
    preview = upload(client, duplicate_policy="update").get_json()["preview"]
    assert preview["estimate"]["records"] == 3
    assert preview["options"]["duplicate_policy"] == "update"


def test_a_file_that_needs_a_mapping_is_kept_and_previewed_again_by_its_token(app, client):
    text = "Who,Reach,Phone\nAda Lovelace,ada@example.com,123\n"
    first = upload(client, text)
    assert first.status_code == 200
    preview = first.get_json()["preview"]
    required = preview["mapping_required"]
    assert required["columns"] == ["Who", "Reach", "Phone"]
    assert set(required) >= {"message", "columns", "mapping", "suggestions"}
    assert preview["counts"] is None and preview["rows"] == []

    mapping = json.dumps({"name": "Who", "email": "Reach"})
    again = client.post("/api/import/preview", data={"preview": preview["token"], "mapping": mapping})

    assert again.status_code == 200, again.get_json()
    mapped = again.get_json()["preview"]
    assert mapped["token"] == preview["token"]
    assert mapped["mapping_required"] is None
    assert mapped["rows"][0]["name"] == "Ada Lovelace" and mapped["rows"][0]["extra"] == {"Phone": "123"}
    assert mapped["counts"]["valid"] == 1
    assert mapped["options"]["mapping"]["email"] == "Reach"
    assert written(app) == (0, 0, 0)


def test_a_re_preview_keeps_the_options_not_sent(client):
    text = "name;email\nAda;ada@example.com\n"
    token = upload(client, text, delimiter="semicolon").get_json()["preview"]["token"]
    again = client.post("/api/import/preview", data={"preview": token, "duplicate_policy": "update"}).get_json()
    assert again["preview"]["options"]["delimiter"] == "semicolon"
    assert again["preview"]["options"]["duplicate_policy"] == "update"
    assert again["preview"]["counts"]["valid"] == 1


def test_a_refused_file_keeps_nothing(app, client):
    response = upload(client, "name,email\n")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_file"
    assert db.session.scalar(select(func.count()).select_from(ImportPreview)) == 0
    assert kept_uploads(app) == []
    assert os.listdir(app.config["UPLOAD_FOLDER"]) == []  # the spooled copy went too


def test_a_preview_needs_a_file_or_a_token(client):
    response = client.post("/api/import/preview", data={"encoding": "utf-8"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_upload"


def test_an_import_started_by_the_token_reads_the_kept_upload_once(app, client, wait_for_job):
    token = upload(client).get_json()["preview"]["token"]
    kept = kept_uploads(app)

    response = client.post("/api/import/batch", data={"preview": token})

    assert response.status_code == 202, response.get_json()
    job = wait_for_job(response.get_json()["job"]["id"])
    assert job["status"] == "completed" and job["source"] == "contacts.csv"
    assert job["processed_count"] == 6 and job["success_count"] == 3
    assert db.session.get(ImportPreview, token) is None
    assert kept and kept_uploads(app) == []  # the job took the upload over, and it went when the job ended

    again = client.post("/api/import/stream", data={"preview": token})
    assert again.status_code == 404
    assert again.get_json()["error"]["code"] == "preview_not_found"


def test_the_token_start_uses_the_previewed_options(client, wait_for_job):
    text = "Full Name|Mail\nAda Lovelace|ada@example.com\n"
    mapping = json.dumps({"name": "Full Name", "email": "Mail"})
    token = upload(client, text, delimiter="pipe", mapping=mapping).get_json()["preview"]["token"]

    job = client.post("/api/import/stream", data={"preview": token}).get_json()["job"]

    assert job["delimiter"] == "|" and job["mapping"]["email"] == "Mail"
    assert wait_for_job(job["id"])["success_count"] == 1


def test_a_token_with_a_file_is_refused(client):
    token = upload(client).get_json()["preview"]["token"]
    response = upload(client, url="/api/import/batch", preview=token)
    assert response.status_code == 400
    assert "not both" in response.get_json()["error"]["message"]


def test_an_expired_preview_cannot_be_started_and_the_sweep_deletes_it(app, client):
    token = upload(client).get_json()["preview"]["token"]
    db.session.execute(
        update(ImportPreview).where(ImportPreview.token == token).values(expires_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()

    response = client.post("/api/import/batch", data={"preview": token})
    assert response.status_code == 410
    assert response.get_json()["error"]["code"] == "preview_expired"
    assert written(app) == (0, 0, 0)

    removed = get_runtime(app).claimer.queue.remove_ended_uploads()

    assert removed == 1
    assert kept_uploads(app) == []
    db.session.expire_all()
    assert db.session.get(ImportPreview, token) is None
    assert client.post("/api/import/preview", data={"preview": token}).status_code == 404


def test_the_sweep_keeps_previews_whose_time_is_not_up(app, client):
    token = upload(client).get_json()["preview"]["token"]
    assert get_runtime(app).claimer.queue.remove_ended_uploads() == 0
    assert db.session.get(ImportPreview, token) is not None and len(kept_uploads(app)) == 1


def test_an_unknown_token_is_a_404(client):
    response = client.post("/api/import/batch", data={"preview": "no-such-token"})
    assert response.status_code == 404
    assert "Choose the file again" in response.get_json()["error"]["message"]


def test_a_token_starts_one_import_only_even_when_two_requests_race(app, client):
    """The preview is used up in the job's own commit: a request that finds it gone makes no job, and leaves
    the kept upload to whoever used the preview."""
    token = upload(client).get_json()["preview"]["token"]
    preview = db.session.get(ImportPreview, token)
    path, source = preview.path, preview.source
    db.session.delete(preview)  # the other request's commit
    db.session.commit()

    runtime = get_runtime(app)
    with pytest.raises(Conflict):
        jobs.create_job(
            db.session,
            runtime.broker,
            mode="batch",
            path=path,
            source=source,
            max_line_length=app.config["MAX_LINE_LENGTH"],
            file_limits=FileLimits.from_config(app.config),
            store_in=runtime.storage,
            preview_token=token,
        )

    assert written(app) == (0, 0, 0)
    assert runtime.storage.exists(path)
