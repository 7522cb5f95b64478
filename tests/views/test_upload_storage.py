"""Uploads through the API with each storage (UPLOAD_STORAGE): the import reads the stored copy, the upload
folder only ever holds a request being checked, and the copy goes when the import ends."""

import io
import os

import pytest
from sqlalchemy import func, select

from importdash.extensions import db
from importdash.models import ImportJob, UploadChunk
from importdash.runtime import get_runtime
from importdash.services import jobs

CSV = "Name,Email,Phone\n" + "".join(f"P{n},p{n}@example.com,{n}\n" for n in range(300)) + "Eve,not-an-email,9\n"
PREFIXES = {"local": "local:", "database": "db:", "s3": "s3:"}


@pytest.fixture(params=["local", "database", "s3"])
def storage_kind(request):
    return request.param


@pytest.fixture
def app_config(storage_kind, request):
    settings = {"UPLOAD_STORAGE": storage_kind, "CHUNK_SIZE": 50, "UPLOAD_CHUNK_KB": 1}  # several chunks per file
    if storage_kind == "s3":
        settings |= request.getfixturevalue("s3_server")
    return settings


def post(client, mode, content=None):
    content = CSV.encode() if content is None else content
    return client.post(
        f"/api/import/{mode}", data={"file": (io.BytesIO(content), "contacts.csv")}, content_type="multipart/form-data"
    )


def stored_files(app, storage_kind):
    """What the store holds: files in the folder, uploads in the database, or objects in the bucket."""
    if storage_kind == "local":
        return len(os.listdir(app.config["UPLOAD_FOLDER"]))
    if storage_kind == "database":
        return db.session.scalar(select(func.count(func.distinct(UploadChunk.upload_key))))
    s3 = get_runtime(app).storage._stores["s3"]
    return s3.client.list_objects_v2(Bucket=s3.bucket).get("KeyCount", 0)


@pytest.mark.parametrize("mode", ["batch", "stream"])
def test_an_upload_is_stored_read_from_the_store_and_deleted_when_the_import_ends(
    app, client, wait_for_job, storage_kind, mode
):
    response = post(client, mode)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["job"]["id"]
    path = db.session.get(ImportJob, job_id).path

    job = wait_for_job(job_id)

    assert path.startswith(PREFIXES[storage_kind])
    assert job["status"] == "completed", job["error"]
    assert (job["total_records"], job["success_count"], job["failed_count"]) == (301, 300, 1)
    assert stored_files(app, storage_kind) == 0
    assert os.listdir(app.config["UPLOAD_FOLDER"]) == []  # the spooled request is gone too
    exported = client.get(f"/api/import/{job_id}/errors.csv").get_data(as_text=True).splitlines()
    assert exported[1].endswith(",Eve,not-an-email,9")


def test_a_refused_upload_never_reaches_the_store(app, client, storage_kind):
    response = post(client, "batch", b"who,where\n1,2\n")

    assert response.status_code == 400
    assert stored_files(app, storage_kind) == 0 and os.listdir(app.config["UPLOAD_FOLDER"]) == []


def test_a_repeated_request_keeps_one_stored_copy(app, client, storage_kind):
    headers = {"Idempotency-Key": "once"}
    data = {"file": (io.BytesIO(CSV.encode()), "contacts.csv")}
    first = client.post("/api/import/batch", data=data, content_type="multipart/form-data", headers=headers)
    data = {"file": (io.BytesIO(CSV.encode()), "contacts.csv")}
    again = client.post("/api/import/batch", data=data, content_type="multipart/form-data", headers=headers)

    assert (first.status_code, again.status_code) == (202, 200)
    get_runtime(app).runner.wait(first.get_json()["job"]["id"], timeout=30)
    assert stored_files(app, storage_kind) == 0


@pytest.mark.parametrize("app_config", [{"UPLOAD_STORAGE": "database", "UPLOAD_CHUNK_KB": 1}])
def test_a_resumed_import_whose_stored_file_is_gone_says_so(app, client, wait_for_job):
    job_id = post(client, "stream").get_json()["job"]["id"]
    runtime = get_runtime(app)
    wait_for_job(job_id)
    path = db.session.get(ImportJob, job_id).path
    # As if the import had stopped half-way and its stored file had then been lost (not deleted by retention,
    # which would have said so on the job).
    job = jobs.get_job(db.session, job_id)
    job.status, job.cursor, job.total_records, job.upload_removed_at = "failed", 100, None, None
    db.session.commit()
    runtime.storage.delete(path)

    jobs.resume_job(db.session, job_id, runner=runtime.runner)
    ended = wait_for_job(job_id)

    assert ended["status"] == "failed"
    assert ended["error"] == "The file to import is gone (deleted or moved); import it again."


@pytest.mark.parametrize("app_config", [{"UPLOAD_STORAGE": "database", "UPLOAD_CHUNK_KB": 1}])
def test_flask_import_with_database_storage_imports_a_stored_copy_and_leaves_the_file_alone(app, runner, write_csv):
    path = write_csv(CSV)
    result = runner.invoke(args=["import", str(path), "--mode", "stream"])

    assert result.exit_code == 0, result.output
    assert "completed: 301 of 301 rows processed" in result.output
    job = db.session.scalars(select(ImportJob)).one()
    get_runtime(app).runner.wait(job.id, timeout=30)  # its run deletes the copy right after it ends the job
    db.session.expire_all()
    assert job.path.startswith("db:") and job.upload_removed_at is not None  # the copy went as the import ended
    assert path.read_text() == CSV and db.session.scalar(select(func.count()).select_from(UploadChunk)) == 0


@pytest.mark.parametrize("app_config", [{"UPLOAD_STORAGE": "local"}])
def test_flask_import_with_local_storage_reads_the_file_in_place(app, runner, write_csv):
    path = write_csv(CSV)

    assert runner.invoke(args=["import", str(path)]).exit_code == 0
    assert db.session.scalars(select(ImportJob.path)).one() == str(path) and path.exists()


def test_a_preview_keeps_its_upload_in_the_store_and_the_import_started_by_its_token_reads_it(
    app, client, wait_for_job, storage_kind
):
    text = "Who|Reach\n" + "".join(f"P{n}|p{n}@example.com\n" for n in range(300))
    response = client.post(
        "/api/import/preview",
        data={"file": (io.BytesIO(text.encode()), "contacts.csv"), "delimiter": "pipe"},
        content_type="multipart/form-data",
    )
    preview = response.get_json()["preview"]
    assert preview["mapping_required"] is not None
    assert stored_files(app, storage_kind) == 1

    mapping = '{"name": "Who", "email": "Reach"}'
    again = client.post("/api/import/preview", data={"preview": preview["token"], "mapping": mapping}).get_json()
    assert again["preview"]["counts"]["valid"] == 300  # read back from the store

    job = client.post("/api/import/stream", data={"preview": preview["token"]}).get_json()["job"]
    assert db.session.get(ImportJob, job["id"]).path.startswith(PREFIXES[storage_kind])
    assert wait_for_job(job["id"])["success_count"] == 300
    assert stored_files(app, storage_kind) == 0
