"""Each import mode end to end through the JSON API, with the rate limit lifted."""

import io
import os

import pytest
from fakes import shown_statuses
from sqlalchemy import func, select

from importdash.extensions import db
from importdash.models import Record, RowError
from importdash.runtime import get_runtime
from importdash.services.reader import FileLimits

CATEGORIES = {"duplicate", "missing_value", "invalid_format", "other"}


def assert_counts_consistent(job):
    assert job["success_count"] + job["failed_count"] == job["processed_count"]
    if job["total_records"] is not None:
        assert job["processed_count"] <= job["total_records"]


def assert_error_counts_match_the_error_rows(client, job_id):
    """The per-category counts the ledger keeps on the job equal a count of the job's error rows."""
    counted = dict.fromkeys(CATEGORIES, 0)
    query = select(RowError.category, func.count()).where(RowError.job_id == job_id).group_by(RowError.category)
    counted.update(db.session.execute(query).all())
    assert client.get(f"/api/import/{job_id}").get_json()["error_counts"] == counted
    for category, count in counted.items():
        assert client.get(f"/api/import/{job_id}/errors?category={category}").get_json()["total"] == count


def assert_every_row_accounted_for(job_id):
    """Each row ends as exactly one succeeded record or one error row, never both and never neither."""
    succeeded_rows = {row for row, status in shown_statuses(db.session, job_id).items() if status == "succeeded"}
    error_rows = list(db.session.scalars(select(RowError.row).where(RowError.job_id == job_id)))
    assert len(error_rows) == len(set(error_rows)), "a row has two error rows"
    assert not succeeded_rows & set(error_rows), "a row both succeeded and failed"
    return succeeded_rows | set(error_rows)


def test_default_import_runs_the_bundled_sample_with_every_category(client, wait_for_job):
    response = client.post("/api/import")
    assert response.status_code == 202
    job = response.get_json()["job"]
    assert job["mode"] == "default" and job["source"] == "test-data-1000.csv"
    assert job["total_records"] == 1000

    job = wait_for_job(job["id"])
    assert job["status"] == "completed", job["error"]
    assert job["processed_count"] == job["total_records"] == 1000
    assert_counts_consistent(job)
    assert len(assert_every_row_accounted_for(job["id"])) == 1000
    assert_error_counts_match_the_error_rows(client, job["id"])

    detail = client.get(f"/api/import/{job['id']}").get_json()
    assert set(detail["error_counts"]) == CATEGORIES
    assert all(detail["error_counts"][category] > 0 for category in CATEGORIES)
    assert sum(detail["error_counts"].values()) == job["failed_count"]
    assert len(detail["errors"]) == 100
    first = detail["errors"][0]
    assert set(first) == {"row", "category", "message", "data"}
    assert first["row"] >= 2


@pytest.mark.parametrize("mode", ["batch", "stream"])
def test_upload_import_counts_each_category(client, wait_for_job, mode):
    csv_text = (
        "Name , EMAIL,Company\r\n"
        "Ada,ada@example.com,Analytical\r\n"
        "Bob,bob@example.com,\r\n"
        "Bob again,BOB@example.com ,dupe\r\n"
        ",nobody@example.com,x\r\n"
        "Eve,not-an-email,x\r\n"
        "Mal,mal@blocked.example,x\r\n"
        '"Quoted, Name","q@example.com","Line\nbreak, ""quoted"""\r\n'
        "Too,many,fields,here\r\n"
    )
    response = client.post(
        f"/api/import/{mode}",
        data={"file": (io.BytesIO(csv_text.encode("utf-8-sig")), "../../etc/my contacts.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    job = wait_for_job(response.get_json()["job"]["id"])
    assert job["source"] == "my contacts.csv"
    assert job["status"] == "completed", job["error"]
    assert (job["total_records"], job["success_count"], job["failed_count"]) == (8, 3, 5)

    detail = client.get(f"/api/import/{job['id']}").get_json()
    assert detail["error_counts"] == {"duplicate": 1, "missing_value": 1, "invalid_format": 2, "other": 1}
    assert_error_counts_match_the_error_rows(client, job["id"])
    by_row = {error["row"]: error for error in detail["errors"]}
    assert by_row[4]["category"] == "duplicate" and "row 3" in by_row[4]["message"]
    assert by_row[5]["message"] == "name is missing"
    assert by_row[6]["category"] == "invalid_format" and "not-an-email" in by_row[6]["message"]
    assert by_row[7]["category"] == "other" and "blocked.example" in by_row[7]["message"]
    assert by_row[9]["category"] == "invalid_format"

    records = client.get(f"/api/records?job={job['id']}&q=quoted").get_json()
    assert records["total"] == 1
    assert records["records"][0]["company"] == 'Line\nbreak, "quoted"'


def test_batch_and_stream_default_to_the_sample_without_a_file(client, wait_for_job):
    job = wait_for_job(client.post("/api/import/stream").get_json()["job"]["id"])
    assert job["source"] == "test-data-1000.csv" and job["total_records"] == 1000
    assert job["status"] == "completed"


def test_stream_total_is_unknown_until_the_file_ends(app, client, wait_for_job, write_csv):
    lines = ["name,email"] + [f"Person {n},p{n}@example.com" for n in range(1200)]
    path = write_csv("\n".join(lines) + "\n")
    with path.open("rb") as handle:
        response = client.post("/api/import/stream", data={"file": (handle, "big.csv")})
    job = response.get_json()["job"]
    assert job["total_records"] is None
    job = wait_for_job(job["id"])
    assert job["total_records"] == 1200 and job["success_count"] == 1200


def test_a_file_without_required_columns_is_refused_before_anything_is_written(client):
    response = client.post("/api/import/batch", data={"file": (io.BytesIO(b"who,reach\nA,a@example.com\n"), "x.csv")})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "mapping_required"
    assert "name" in error["message"] and "email" in error["message"]
    assert error["details"]["columns"] == ["who", "reach"]
    assert client.get("/api/import").get_json()["jobs"] == []


def test_an_empty_file_gets_a_clear_error(client):
    response = client.post("/api/import/stream", data={"file": (io.BytesIO(b""), "empty.csv")})
    assert response.status_code == 400
    assert "empty" in response.get_json()["error"]["message"].lower()


def test_an_upload_over_the_cap_gets_413_json(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/api/import/batch", data={"file": (io.BytesIO(b"name,email\n" + b"x" * 4096), "big.csv")})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_a_multipart_request_without_the_file_field_is_refused(client):
    response = client.post("/api/import/batch", data={"upload": (io.BytesIO(b"name,email\n"), "x.csv")})
    assert response.status_code == 400
    assert "'file'" in response.get_json()["error"]["message"]


def test_concurrent_imports_of_overlapping_files_store_each_email_once(app, client, wait_for_job, write_csv):
    shared = [f"Shared {n},shared{n}@example.com" for n in range(300)]
    first = write_csv("name,email\n" + "\n".join(shared + [f"A {n},a{n}@example.com" for n in range(200)]), "a.csv")
    second = write_csv("name,email\n" + "\n".join([f"B {n},b{n}@example.com" for n in range(200)] + shared), "b.csv")
    job_ids = []
    for mode, path in (("batch", first), ("stream", second), ("batch", second)):
        with path.open("rb") as handle:
            job_ids.append(
                client.post(f"/api/import/{mode}", data={"file": (handle, path.name)}).get_json()["job"]["id"]
            )
    jobs = [wait_for_job(job_id) for job_id in job_ids]

    assert all(job["status"] == "completed" for job in jobs)
    assert db.session.scalar(select(func.count()).select_from(Record)) == 700
    assert sum(job["success_count"] for job in jobs) == 700
    duplicates = db.session.scalar(select(func.count()).select_from(RowError).where(RowError.category == "duplicate"))
    assert duplicates == 500 + 300  # the third import repeats all of the second's rows
    for job in jobs:
        assert_counts_consistent(job)
        assert_error_counts_match_the_error_rows(client, job["id"])


def test_every_published_state_keeps_the_counts_consistent(app, client, wait_for_job):
    app.config["RECORDS_PER_CALL"] = 4
    subscription = get_runtime(app).broker.subscribe()
    job_id = client.post("/api/import/batch").get_json()["job"]["id"]
    wait_for_job(job_id)
    seen = 0
    while (event := subscription.get(timeout=0)) is not None and not isinstance(event, Exception):
        if getattr(event, "job_id", None) == job_id:
            assert_counts_consistent(event.data["job"])
            seen += 1
    subscription.close()
    assert seen >= 2


def test_a_file_far_larger_than_one_form_field_is_accepted(client, wait_for_job):
    big = "name,email\n" + "".join(f"Person {n},person{n}@example.com\n" for n in range(12_000))
    assert len(big) > 400_000
    response = client.post("/api/import/batch", data={"file": (io.BytesIO(big.encode()), "big.csv")})
    assert response.status_code == 202, response.get_json()
    assert wait_for_job(response.get_json()["job"]["id"])["success_count"] == 12_000


@pytest.mark.parametrize("mode", ["batch", "stream"])
def test_an_upload_is_deleted_once_its_import_ends_and_errors_csv_still_has_its_columns(
    app, client, wait_for_job, mode
):
    csv_text = "Name,Email,Phone\nAda,ada@example.com,1\nEve,not-an-email,2\n"
    response = client.post(
        f"/api/import/{mode}",
        data={"file": (io.BytesIO(csv_text.encode()), "contacts.csv")},
        content_type="multipart/form-data",
    )
    job = wait_for_job(response.get_json()["job"]["id"])

    assert job["status"] == "completed", job["error"]
    assert os.listdir(app.config["UPLOAD_FOLDER"]) == []
    exported = client.get(f"/api/import/{job['id']}/errors.csv").get_data(as_text=True).splitlines()
    assert exported[0] == "\ufeffrow,category,message,Name,Email,Phone"
    assert exported[1].endswith(",Eve,not-an-email,2")


@pytest.mark.parametrize("app_config", [{"UPLOAD_RETENTION_HOURS": 24}])
def test_with_a_retention_the_upload_is_kept_after_the_import(app, client, wait_for_job):
    response = client.post(
        "/api/import/batch",
        data={"file": (io.BytesIO(b"name,email\nAda,ada@example.com\n"), "contacts.csv")},
        content_type="multipart/form-data",
    )
    wait_for_job(response.get_json()["job"]["id"])

    assert len(os.listdir(app.config["UPLOAD_FOLDER"])) == 1


def test_a_request_repeated_with_its_idempotency_key_gets_the_first_job_back(app, client, wait_for_job):
    def start():
        return client.post(
            "/api/import/batch",
            data={"file": (io.BytesIO(b"name,email\nAda,ada@example.com\n"), "contacts.csv")},
            content_type="multipart/form-data",
            headers={"Idempotency-Key": "nightly-2026-12-01"},
        )

    first = start()
    again = start()

    assert first.status_code == 202 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["job"]["id"] == first.get_json()["job"]["id"]
    assert first.get_json()["job"]["idempotency_key"] == "nightly-2026-12-01"
    assert client.get("/api/import").get_json()["total"] == 1
    wait_for_job(first.get_json()["job"]["id"])
    assert os.listdir(app.config["UPLOAD_FOLDER"]) == []  # the repeat's file was never kept
    assert client.post("/api/import", headers={"Idempotency-Key": "another"}).status_code == 202


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_bad_idempotency_key_is_a_400(client, key):
    response = client.post("/api/import", headers={"Idempotency-Key": key})

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_header"


def test_two_requests_with_one_key_at_once_start_one_job(app):
    import threading

    from importdash.services import jobs

    barrier, answers = threading.Barrier(2), []

    def start():
        with app.app_context():
            barrier.wait()
            try:
                answers.append(
                    jobs.create_job(
                        db.session,
                        get_runtime(app).broker,
                        mode="batch",
                        path=app.config["SAMPLE_FILE"],
                        source="sample.csv",
                        max_line_length=app.config["MAX_LINE_LENGTH"],
                        file_limits=FileLimits.from_config(app.config),
                        idempotency_key="same",
                    ).id
                )
            except jobs.AlreadyStarted as already:
                answers.append(already.job.id)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 2 and answers[0] == answers[1]


def test_an_explicit_mapping_names_the_columns_and_the_rest_are_kept_as_extra_fields(client, wait_for_job):
    content = b"Full Name,E-mail Address,Phone\nAda Lovelace,ada@example.com,+44 1\n"
    mapping = '{"name": "Full Name", "email": "E-mail Address"}'
    response = client.post("/api/import/batch", data={"file": (io.BytesIO(content), "x.csv"), "mapping": mapping})
    assert response.status_code == 202, response.get_json()
    job = wait_for_job(response.get_json()["job"]["id"])
    assert job["success_count"] == 1
    assert job["mapping"] == {"name": ["Full Name"], "email": "E-mail Address", "company": None, "extra": None}


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"mapping": "{not json"}, "not valid JSON"),
        ({"mapping": '{"name": "Full Name"}'}, "cannot be used"),
        ({"format": "docx"}, "format must be one of csv, xlsx, json, ndjson"),
        ({"duplicate_policy": "merge"}, "duplicate_policy must be one of skip, update"),
    ],
)
def test_bad_upload_options_are_refused_with_what_they_need(client, fields, fragment):
    content = b"name,email\nAda,ada@example.com\n"
    response = client.post("/api/import/batch", data={"file": (io.BytesIO(content), "x.csv"), **fields})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_parameter" and fragment in error["message"]
    assert client.get("/api/import").get_json()["total"] == 0


@pytest.mark.parametrize("mode", ["batch", "stream"])
def test_the_records_api_returns_extra_fields_and_an_update_moves_the_record_to_the_updating_import(
    client, wait_for_job, mode
):
    def run(content, **fields):
        response = client.post(f"/api/import/{mode}", data={"file": (io.BytesIO(content), "x.csv"), **fields})
        assert response.status_code == 202, response.get_json()
        return wait_for_job(response.get_json()["job"]["id"])

    first = run(b"name,email,Phone\nAda,ada@example.com,1\nAlan,alan@example.com,\n")
    (ada,) = client.get("/api/records?q=ada").get_json()["records"]
    assert (ada["job_id"], ada["extra"], ada["version"]) == (first["id"], {"Phone": "1"}, 1)

    second = run(b"name,email,Phone\nAda,ada@example.com,2\n", duplicate_policy="update")

    assert (second["duplicate_policy"], second["success_count"]) == ("update", 1)
    (ada,) = client.get(f"/api/records?job={second['id']}").get_json()["records"]
    assert (ada["row"], ada["extra"], ada["version"], ada["status"]) == (2, {"Phone": "2"}, 2, "succeeded")
    assert ada["response"] is None
    assert [r["email"] for r in client.get(f"/api/records?job={first['id']}").get_json()["records"]] == [
        "alan@example.com"
    ]
    assert client.get(f"/api/import/{first['id']}").get_json()["job"]["success_count"] == 2  # its counts stay
