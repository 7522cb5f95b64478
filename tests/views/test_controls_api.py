"""Cancel and retry imports, and download their errors, through the JSON API."""

import csv
import io
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from fakes import shown_statuses
from sqlalchemy import func, select

from importdash import create_app
from importdash.extensions import db
from importdash.models import ImportJob, JobAction, Record, RowError, utcnow
from importdash.runtime import get_runtime, stop_background
from importdash.services.ledger import JobLedger


def wait_until(condition, timeout=10):
    """Poll a condition that a background job makes true (a real thread, so real time)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("timed out waiting for the job")


def job_state(job_id):
    db.session.expire_all()
    return db.session.get(ImportJob, job_id)


def record_statuses(job_id):
    return dict(Counter(shown_statuses(db.session, job_id).values()))


def upload(client, path, mode="batch"):
    with path.open("rb") as handle:
        response = client.post(f"/api/import/{mode}", data={"file": (handle, path.name)})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["job"]["id"]


# Cancel


@pytest.mark.parametrize("app_config", [{"SIMULATED_LATENCY_MS": 20}])
def test_cancel_stops_a_running_import_and_its_undelivered_records_end_cancelled(client, wait_for_job):
    job_id = client.post("/api/import/batch").get_json()["job"]["id"]
    wait_until(lambda: job_state(job_id).success_count > 0)

    response = client.post(f"/api/import/{job_id}/cancel")

    assert response.status_code in (200, 202)
    assert response.get_json()["job"]["cancel_requested"] is True
    job = wait_for_job(job_id)
    assert job["status"] == "cancelled" and job["error"] == "cancelled by request"
    # Every row has one outcome: sent (succeeded or failed), an error row, or cancelled before it was sent.
    assert 0 < job["success_count"] and 0 < job["cancelled_count"]
    assert job["success_count"] + job["failed_count"] + job["cancelled_count"] == job["processed_count"]
    assert job["processed_count"] == job["total_records"]
    statuses = record_statuses(job_id)
    assert statuses["cancelled"] == job["cancelled_count"] and set(statuses) <= {"succeeded", "failed", "cancelled"}
    cancelled_rows = db.session.scalars(select(Record.row).where(Record.job_id == job_id, Record.status == "cancelled"))
    assert not set(cancelled_rows) & set(db.session.scalars(select(RowError.row).where(RowError.job_id == job_id)))


def test_cancel_ends_a_job_that_no_process_holds_at_once(client, make_job):
    job_id = make_job(status="pending").id

    response = client.post(f"/api/import/{job_id}/cancel")

    assert response.status_code == 200
    job = response.get_json()["job"]
    assert (job["status"], job["error"]) == ("cancelled", "cancelled by request")


def test_cancel_reaches_a_job_leased_by_another_process_through_the_database(client, make_job):
    lease_expires_at = utcnow() + timedelta(minutes=1)
    job_id = make_job(status="processing", lease_owner="other-host:1:x", lease_expires_at=lease_expires_at).id

    response = client.post(f"/api/import/{job_id}/cancel")

    assert response.status_code == 202
    assert response.get_json()["job"]["status"] == "processing"
    holder = JobLedger(db.session, job_id, "other-host:1:x", lease_seconds=30)
    assert holder.renew_lease() is JobAction.CANCEL


def test_cancel_stops_a_job_running_in_another_process(app, client, tmp_path):
    other = create_app(dict(app.config) | {"SIMULATED_LATENCY_MS": 20, "HEARTBEAT_SECONDS": 0.05})
    try:
        with other.app_context():
            job_id = other.test_client().post("/api/import/batch").get_json()["job"]["id"]
        wait_until(lambda: job_state(job_id).success_count > 0)

        # 202, or 200 if the other process saw the request at a heartbeat before this answer was made.
        assert client.post(f"/api/import/{job_id}/cancel").status_code in (200, 202)
        get_runtime(other).runner.wait(job_id, timeout=10)
    finally:
        stop_background(other, wait=True)
        with other.app_context():
            db.engine.dispose()
    job = job_state(job_id)
    assert job.status == "cancelled" and 0 < job.cancelled_count
    assert job.success_count + job.failed_count + job.cancelled_count == job.processed_count == job.total_records
    assert record_statuses(job_id)["cancelled"] > 0


def test_cancel_of_a_finished_job_is_a_409(client, make_job):
    job_id = make_job(status="completed").id
    response = client.post(f"/api/import/{job_id}/cancel")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"
    assert "completed" in response.get_json()["error"]["message"]


def test_cancel_of_an_unknown_job_is_a_404(client):
    assert client.post("/api/import/999/cancel").get_json()["error"]["code"] == "not_found"


# Retry


@pytest.fixture
def refused_twice(write_csv):
    """A file whose blocked.example and rejected.example rows the simulated downstream refuses."""
    rows = [f"Ok {n},ok{n}@example.com" for n in range(10)]
    rows += [f"Blocked {n},b{n}@blocked.example" for n in range(3)]
    rows += [f"Rejected {n},r{n}@rejected.example" for n in range(4)]
    rows += ["No email,", "Ok 0 again,OK0@example.com"]
    return write_csv("name,email\n" + "\n".join(rows) + "\n")


def test_retry_resends_failed_deliveries_and_the_counts_follow_each_rows_final_outcome(
    app, client, wait_for_job, refused_twice
):
    job_id = upload(client, refused_twice)
    first = wait_for_job(job_id)
    assert (first["success_count"], first["failed_count"]) == (10, 9)
    get_runtime(app).deliverer.downstream.reject_domains = frozenset({"blocked.example"})  # rejected.example is fixed

    response = client.post(f"/api/import/{job_id}/retry", json={"category": "other"})

    assert response.status_code == 202
    assert response.get_json()["job"]["retries"] == 1
    job = wait_for_job(job_id)
    assert job["status"] == "completed" and job["retries"] == 1 and job["last_retried_at"].endswith("Z")
    assert (job["processed_count"], job["success_count"], job["failed_count"]) == (19, 14, 5)
    detail = client.get(f"/api/import/{job_id}").get_json()
    assert detail["error_counts"] == {"duplicate": 1, "missing_value": 1, "invalid_format": 0, "other": 3}
    assert {error["data"]["email"] for error in detail["errors"] if error["category"] == "other"} == {
        f"b{n}@blocked.example" for n in range(3)
    }
    assert record_statuses(job_id) == {"succeeded": 14, "failed": 3}
    records = client.get(f"/api/records?job={job_id}&limit=100").get_json()["records"]
    attempts = {record["email"]: record["attempts"] for record in records}
    assert attempts["r0@rejected.example"] == 2 and attempts["ok0@example.com"] == 1


def test_retry_without_a_body_means_the_downstream_failures(app, client, wait_for_job, refused_twice):
    job_id = upload(client, refused_twice)
    wait_for_job(job_id)
    get_runtime(app).deliverer.downstream.reject_domains = frozenset()
    assert client.post(f"/api/import/{job_id}/retry").status_code == 202
    assert wait_for_job(job_id)["failed_count"] == 2
    history = client.get("/api/import").get_json()["jobs"][0]
    assert history["retries"] == 1 and history["last_retried_at"] is not None


@pytest.mark.parametrize(
    "body, code",
    [({"category": "duplicate"}, "not_retryable"), ({"category": "typo"}, "invalid_parameter"), ([1], "invalid_body")],
)
def test_retry_refuses_what_cannot_be_retried(client, wait_for_job, refused_twice, body, code):
    job_id = upload(client, refused_twice)
    wait_for_job(job_id)
    response = client.post(f"/api/import/{job_id}/retry", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code


@pytest.mark.parametrize("status", ["pending", "processing", "cancelled", "failed"])
def test_only_a_completed_import_can_be_retried(client, make_job, status):
    response = client.post(f"/api/import/{make_job(status=status).id}/retry")
    assert response.status_code == 409
    assert status in response.get_json()["error"]["message"]


def test_retry_with_nothing_failed_is_a_409(client, make_job):
    response = client.post(f"/api/import/{make_job(status='completed').id}/retry")
    assert response.status_code == 409
    assert "no failed deliveries" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("app_config", [{"RECORDS_PER_CALL": 1}])
def test_cancelling_a_retry_keeps_the_job_completed_and_unsent_failures_failed(app, client, wait_for_job, write_csv):
    path = write_csv("name,email\n" + "\n".join(f"R {n},r{n}@rejected.example" for n in range(40)) + "\n")
    job_id = upload(client, path)
    wait_for_job(job_id)
    downstream = get_runtime(app).deliverer.downstream
    downstream.reject_domains = frozenset()
    downstream.latency_ms = 20

    client.post(f"/api/import/{job_id}/retry")
    wait_until(lambda: job_state(job_id).success_count > 0)
    client.post(f"/api/import/{job_id}/cancel")
    job = wait_for_job(job_id)

    assert job["status"] == "completed" and job["cancel_requested"] is True
    assert 0 < job["success_count"] < 40 and job["success_count"] + job["failed_count"] == 40
    assert record_statuses(job_id) == {"succeeded": job["success_count"], "failed": job["failed_count"]}
    errors = db.session.scalar(select(func.count()).select_from(RowError).where(RowError.job_id == job_id))
    assert errors == job["failed_count"]


# Errors CSV


FORMULAS = {"=1+1": "'=1+1", "+SUM(A1)": "'+SUM(A1)", "-2": "'-2", "@cmd": "'@cmd", "\tTab": "'\tTab", "\rx": "'\rx"}


@pytest.fixture
def messy(write_csv):
    lines = [
        "Name,Email,Company,Phone",
        *(f'"{formula}",bad{n},"{formula}",{n}' for n, formula in enumerate(FORMULAS)),
        "Ada,ada@example.com,Analytical,1",
        "Ada again,ADA@example.com,Analytical,2",
        ",nobody@example.com,,3",
        "Too,many@example.com,fields,4,extra,cells",
        'Mal,mal@blocked.example,=HYPERLINK("http://x"),5',
    ]
    return write_csv("\n".join(lines) + "\n")


@pytest.mark.parametrize("app_config", [{"EXPORT_BATCH_SIZE": 2}])
def test_errors_csv_round_trips_and_neutralises_formulas(client, wait_for_job, messy):
    job_id = upload(client, messy)
    job = wait_for_job(job_id)

    response = client.get(f"/api/import/{job_id}/errors.csv")

    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="import-{job_id}-all-errors.csv"'
    header, *rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert header == ["row", "category", "message", "Name", "Email", "Company", "Phone"]
    assert len(rows) == job["failed_count"] == 10
    by_row = {int(row[0]): row for row in rows}
    for number, neutralised in enumerate(FORMULAS.values()):
        assert by_row[number + 2][1] == "invalid_format"
        assert by_row[number + 2][3] == by_row[number + 2][5] == neutralised
    assert by_row[9] == ["9", "duplicate", by_row[9][2], "Ada again", "ADA@example.com", "Analytical", "2"]
    assert by_row[10][1:] == ["missing_value", "name is missing", "", "nobody@example.com", "", "3"]
    assert by_row[11][3:] == ["Too", "many@example.com", "fields", "4", "extra", "cells"]
    assert by_row[12][1] == "other" and by_row[12][3:6] == ["Mal", "mal@blocked.example", '\'=HYPERLINK("http://x")']

    stored = client.get(f"/api/import/{job_id}/errors?limit=1000").get_json()["errors"]
    assert {error["data"]["Name"] for error in stored if error["row"] < 8} == set(FORMULAS)  # the ledger is unchanged


def test_errors_csv_filters_by_category_and_can_be_imported_again(client, wait_for_job, messy, write_csv):
    job_id = upload(client, messy)
    wait_for_job(job_id)

    response = client.get(f"/api/import/{job_id}/errors.csv?category=missing_value")

    assert response.headers["Content-Disposition"].endswith(f'filename="import-{job_id}-missing_value-errors.csv"')
    header, *rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [row[1] for row in rows] == ["missing_value"]
    fixed_text = response.get_data(as_text=True).replace(",,nobody@example.com", ",Nobody,nobody@example.com")
    fixed = write_csv(fixed_text, "fixed.csv")
    again = wait_for_job(upload(client, fixed))
    assert (again["total_records"], again["success_count"]) == (1, 1)


def test_a_corrected_errors_csv_imports_again_with_its_extra_columns_kept(client, wait_for_job, write_csv):
    first = write_csv(
        "Full Name,E-mail,Phone,Title\n"
        ",nobody@example.com,0044 1,Countess\n"
        "Mal,mal@blocked.example,0044 2,Spy\n"
        "Ada,ada@example.com,0044 3,\n"
    )
    mapping = '{"name": "Full Name", "email": "E-mail"}'  # extra is left out: every other column is kept

    def upload_mapped(path):
        with path.open("rb") as handle:
            response = client.post("/api/import/batch", data={"file": (handle, path.name), "mapping": mapping})
        assert response.status_code == 202, response.get_json()
        return response.get_json()["job"]["id"]

    job_id = upload_mapped(first)
    assert wait_for_job(job_id)["failed_count"] == 2

    exported = client.get(f"/api/import/{job_id}/errors.csv").get_data(as_text=True)
    header, *rows = list(csv.reader(io.StringIO(exported.lstrip("\ufeff"))))
    assert header == ["row", "category", "message", "Full Name", "E-mail", "Phone", "Title"]
    # The refused record's row comes back whole too: its fields under the mapping's columns, its extra fields.
    assert [row[3:] for row in rows] == [
        ["", "nobody@example.com", "0044 1", "Countess"],
        ["Mal", "mal@blocked.example", "0044 2", "Spy"],
    ]
    fixed = exported.replace(",,nobody@example.com", ",Nobody,nobody@example.com").replace(
        "mal@blocked.example", "mal@example.com"
    )
    again = upload_mapped(write_csv(fixed, "fixed.csv"))

    assert wait_for_job(again)["success_count"] == 2
    records = client.get(f"/api/records?job={again}").get_json()["records"]
    assert {record["email"]: record["extra"] for record in records} == {
        "nobody@example.com": {"Phone": "0044 1", "Title": "Countess"},
        "mal@example.com": {"Phone": "0044 2", "Title": "Spy"},
    }
    # An errors.csv of the corrected file has the report's columns once, as the first one had.
    again_header = next(csv.reader(io.StringIO(client.get(f"/api/import/{again}/errors.csv").get_data(as_text=True))))
    assert again_header[3:] == header[3:] and again_header[0].lstrip("\ufeff") == "row"


def test_errors_csv_of_an_unknown_job_or_category_is_a_json_error(client, make_job):
    assert client.get("/api/import/999/errors.csv").status_code == 404
    response = client.get(f"/api/import/{make_job().id}/errors.csv?category=nope")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_parameter"


@pytest.mark.parametrize("app_config", [{"SIMULATED_LATENCY_MS": 20, "RECORDS_PER_CALL": 1}])
def test_rows_a_cancelled_import_never_sent_are_not_already_imported_for_the_next_one(app, client, wait_for_job):
    csv_bytes = ("name,email\n" + "".join(f"P{n},p{n}@example.com\n" for n in range(60))).encode()

    def start():
        response = client.post(
            "/api/import/batch",
            data={"file": (io.BytesIO(csv_bytes), "people.csv")},
            content_type="multipart/form-data",
        )
        return response.get_json()["job"]["id"]

    first = start()
    deadline = time.monotonic() + 10
    while client.get(f"/api/import/{first}").get_json()["job"]["success_count"] < 5:
        assert time.monotonic() < deadline, "delivery did not start"
        time.sleep(0.01)
    client.post(f"/api/import/{first}/cancel")
    cancelled = wait_for_job(first)
    assert cancelled["status"] == "cancelled" and cancelled["success_count"] < 60

    second = wait_for_job(start())

    assert second["status"] == "completed", second["error"]
    assert second["success_count"] == 60 - cancelled["success_count"]  # only the delivered ones are duplicates
    assert second["failed_count"] == cancelled["success_count"]
    # Every row of the cancelled import has one outcome, and its page says which rows the second import took.
    assert cancelled["processed_count"] == 60 == cancelled["success_count"] + cancelled["cancelled_count"]
    reimported = client.get(f"/api/import/{first}/reimported?limit=1000").get_json()
    assert reimported["total"] == cancelled["cancelled_count"] == len(reimported["rows"])
    row = reimported["rows"][0]
    assert row["status"] == "cancelled" and row["imported_by"]["job_id"] == second["id"]
    assert row["email"] == f"p{row['imported_by']['row'] - 2}@example.com" == f"p{row['row'] - 2}@example.com"
    assert client.get(f"/api/import/{second['id']}/reimported").get_json() == {"rows": [], "total": 0}
