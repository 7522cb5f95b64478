"""What a job's page reads and does through the JSON API (issue #14): how an import ended, its own timings beside its
retries, searching its errors, exporting its results, and deleting it."""

import csv
import io
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from importdash.extensions import db
from importdash.models import ImportJob, JobRun, Record, RowError
from importdash.runtime import get_runtime
from importdash.services import jobs


def upload(client, path, mode="batch"):
    with path.open("rb") as handle:
        response = client.post(f"/api/import/{mode}", data={"file": (handle, path.name)})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["job"]["id"]


@pytest.fixture
def refused(write_csv):
    """10 rows the simulated downstream takes, 3 it refuses (blocked.example), 1 duplicate and 1 missing email."""
    rows = [f"Ok {n},ok{n}@example.com" for n in range(10)]
    rows += [f"Blocked {n},b{n}@blocked.example" for n in range(3)]
    rows += ["No email,", "Ok 0 again,OK0@example.com"]
    return write_csv("name,email\n" + "\n".join(rows) + "\n")


# How an import ended


@pytest.mark.parametrize(
    "status, succeeded, failed, outcome",
    [
        ("completed", 5, 0, "completed"),
        ("completed", 5, 2, "completed_with_failures"),
        ("completed", 0, 7, "nothing_succeeded"),
        ("processing", 0, 7, None),
        ("cancelled", 3, 0, None),
    ],
)
def test_the_api_tells_three_endings_of_a_completed_import_apart(client, make_job, status, succeeded, failed, outcome):
    job_id = make_job(status=status, success_count=succeeded, failed_count=failed).id
    assert client.get(f"/api/import/{job_id}").get_json()["job"]["outcome"] == outcome
    assert client.get("/api/import").get_json()["jobs"][0]["outcome"] == outcome


# Retry: the import's own timings, each retry a run of its own


def test_a_retry_keeps_the_imports_own_duration_and_is_listed_as_a_run_of_its_own(app, client, wait_for_job, refused):
    job_id = upload(client, refused)
    wait_for_job(job_id)
    get_runtime(app).deliverer.downstream.reject_domains = frozenset({"other.example"})  # blocked.example takes them
    assert client.post(f"/api/import/{job_id}/retry").status_code == 202
    wait_for_job(job_id)
    # The import ran for 10 s; the retry came an hour later: the job's first start to last end is an hour.
    start = datetime(2026, 1, 1, 9, 0, 0)
    first, retry = db.session.scalars(select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id)).all()
    first.started_at, first.ended_at = start, start + timedelta(seconds=10)
    retry.started_at, retry.ended_at = start + timedelta(hours=1), start + timedelta(hours=1, seconds=2)
    db.session.execute(update(ImportJob).where(ImportJob.id == job_id).values(started_at=start))
    db.session.commit()

    detail = client.get(f"/api/import/{job_id}").get_json()

    job = detail["job"]
    assert (job["duration_seconds"], job["delivered_count"]) == (10.0, 13)  # 10 taken and 3 refused at first
    assert (job["outcome"], job["success_count"], job["failed_count"]) == ("completed_with_failures", 13, 2)
    assert [(run["kind"], run["sent"], run["succeeded"], run["refused"]) for run in detail["runs"]] == [
        ("import", 13, 10, 3),
        ("retry", 3, 3, 0),
    ]
    assert client.get("/api/import").get_json()["jobs"][0]["duration_seconds"] == 10.0
    state = jobs.job_state(db.session, job_id)
    assert state["runs"] == detail["runs"] and state["retryable"] == 0  # nothing is left to retry


def test_the_state_says_how_many_failed_deliveries_a_retry_would_send(client, wait_for_job, refused):
    job_id = upload(client, refused)
    wait_for_job(job_id)
    state = jobs.job_state(db.session, job_id)
    assert state["retryable"] == 3
    assert state["error_counts"]["other"] == 3 and state["job"]["outcome"] == "completed_with_failures"


# Searching the errors


def test_errors_are_searched_in_their_messages_values_and_row_numbers(client, wait_for_job, write_csv):
    path = write_csv(
        "name,email,company\n"
        "Ann,ann@example.com,Acme\n"
        "Bob,not-an-email,Zeta_Corp\n"  # row 3: invalid format
        "Cy,,Acme\n"  # row 4: missing email
        "Dee,also bad,100% Inc\n"  # row 5: invalid format
    )
    job_id = upload(client, path)
    wait_for_job(job_id)

    def search(q, **params):
        body = client.get(f"/api/import/{job_id}/errors", query_string={"q": q, **params}).get_json()
        return [error["row"] for error in body["errors"]], body["total"]

    assert search("NOT-AN") == ([3], 1)  # a value, ignoring case
    assert search("IS missing") == ([4], 1)  # the message
    assert search("5") == ([5], 1)  # a row number
    assert search("%") == ([5], 1)  # LIKE's wildcards are taken literally
    assert search("_corp") == ([3], 1)
    assert search("a", category="invalid_format", limit=1) == ([3], 2)
    assert search("a", category="invalid_format", limit=1, offset=1) == ([5], 2)
    assert search("nowhere") == ([], 0)
    assert search("") == ([3, 4, 5], 3)  # no search: the job's counters give the total
    nul = client.get(f"/api/import/{job_id}/errors", query_string={"q": "a\x00"})
    assert nul.status_code == 400 and nul.get_json()["error"]["code"] == "invalid_parameter"


# Exporting the results


def test_results_csv_lists_each_delivered_row_with_the_downstreams_answer(client, wait_for_job, write_csv):
    path = write_csv("name,email,company\nAnn,ann@example.com,=SUM(A1)\nBob,bob@blocked.example,\nCy,,\n")
    job_id = upload(client, path)
    wait_for_job(job_id)

    response = client.get(f"/api/import/{job_id}/results.csv")

    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="import-{job_id}-results.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).removeprefix("\ufeff"))))
    assert [(row["row"], row["email"], row["status"], row["attempts"]) for row in rows] == [
        ("2", "ann@example.com", "succeeded", "1"),
        ("3", "bob@blocked.example", "failed", "1"),
    ]  # row 4 never became a record: it is an error row, in errors.csv
    assert rows[0]["company"] == "'=SUM(A1)"  # a formula is neutralised
    assert rows[0]["response"] == ""  # the simulator says nothing about a record it accepts
    assert "blocked" in rows[1]["response"]


@pytest.mark.parametrize("app_config", [{"EXPORT_BATCH_SIZE": 2}])
def test_results_csv_reads_the_records_a_batch_at_a_time(client, wait_for_job, write_csv):
    path = write_csv("name,email\n" + "".join(f"P {n},p{n}@example.com\n" for n in range(5)))
    job_id = upload(client, path)
    wait_for_job(job_id)
    response = client.get(f"/api/import/{job_id}/results.csv", buffered=False)
    chunks = list(response.iter_encoded())
    response.close()
    assert len(chunks) == 3  # 2 + 2 + 1 rows, each batch its own chunk
    lines = b"".join(chunks).decode().splitlines()
    assert [line.split(",")[2] for line in lines[1:]] == [f"p{n}@example.com" for n in range(5)]


def test_results_csv_of_an_unknown_import_is_a_json_404(client):
    response = client.get("/api/import/999/results.csv")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


# Deleting one import


@pytest.mark.parametrize("app_config", [{"UPLOAD_RETENTION_HOURS": 24}])  # its upload is kept after it completes
def test_deleting_an_import_removes_its_records_errors_runs_and_file_and_frees_its_emails(
    app, client, wait_for_job, refused
):
    kept = upload(client, refused)
    wait_for_job(kept)
    job_id = upload(client, refused)
    wait_for_job(job_id)  # every row a duplicate of the first import's
    first_path = db.session.get(ImportJob, kept).path
    assert get_runtime(app).storage.exists(first_path)

    response = client.delete(f"/api/import/{kept}")

    assert response.status_code == 200
    assert response.get_json()["deleted"] == {"records": 13, "errors": 5, "jobs": 1, "files": 1}
    assert client.get(f"/api/import/{kept}").status_code == 404
    for model in (Record, RowError, JobRun):
        assert db.session.scalar(select(func.count()).select_from(model).where(model.job_id == kept)) == 0
    assert not get_runtime(app).storage.exists(first_path)
    assert client.get(f"/api/import/{job_id}").status_code == 200  # the other import stays
    again = wait_for_job(upload(client, refused))
    assert again["success_count"] == 10  # its emails are no longer duplicates


@pytest.mark.parametrize("status", ["pending", "processing"])
def test_an_unfinished_import_cannot_be_deleted(client, make_job, status):
    job_id = make_job(status=status).id
    response = client.delete(f"/api/import/{job_id}")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "conflict"
    assert status in response.get_json()["error"]["message"]
    assert client.get(f"/api/import/{job_id}").status_code == 200


def test_deleting_an_unknown_import_is_a_404(client):
    assert client.delete("/api/import/999").get_json()["error"]["code"] == "not_found"


def test_the_delete_command_asks_for_confirmation_and_deletes_one_import(runner, make_job):
    job_id = make_job(status="completed").id
    other = make_job(status="completed").id
    refused = runner.invoke(args=["delete", str(job_id)])
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert db.session.get(ImportJob, job_id) is not None

    result = runner.invoke(args=["delete", str(job_id), "--yes"])

    assert result.exit_code == 0, result.output
    assert f"Deleted import #{job_id}" in result.output
    db.session.expire_all()
    assert db.session.get(ImportJob, job_id) is None and db.session.get(ImportJob, other) is not None
    running = make_job(status="processing").id
    blocked = runner.invoke(args=["delete", str(running), "--yes"])
    assert blocked.exit_code == 1 and "processing" in blocked.output


# The estimated total of a stream


def test_an_upload_gets_an_estimate_of_its_rows_from_its_files_lines(client, wait_for_job):
    content = ("name,email\n" + "".join(f"P {n},p{n}@example.com\n" for n in range(7))).encode()
    response = client.post("/api/import/stream", data={"file": (io.BytesIO(content), "s.csv")})
    job = response.get_json()["job"]
    assert job["estimated_total"] == 7 and job["total_records"] is None
    assert wait_for_job(job["id"])["total_records"] == 7


def test_the_bundled_sample_is_counted_not_estimated(client):
    job = client.post("/api/import").get_json()["job"]
    assert job["total_records"] == 1000 and job["estimated_total"] is None
