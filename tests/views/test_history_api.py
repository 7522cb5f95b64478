"""Reading imports, their errors and the records through the JSON API."""

from datetime import datetime

import pytest


@pytest.fixture
def finished_job(client, wait_for_job):
    return wait_for_job(client.post("/api/import/batch").get_json()["job"]["id"])


def test_jobs_are_listed_newest_first_and_paged(client, make_job):
    ids = [make_job(source=f"file{n}.csv").id for n in range(3)]
    listing = client.get("/api/import?limit=2").get_json()
    assert [job["id"] for job in listing["jobs"]] == ids[::-1][:2]
    assert listing["total"] == 3
    assert [job["id"] for job in client.get("/api/import?limit=2&offset=2").get_json()["jobs"]] == [ids[0]]


def at(minute):
    return datetime(2026, 1, 1, 12, minute)


def ids(client, query=""):
    return [job["id"] for job in client.get(f"/api/import{query}").get_json()["jobs"]]


def test_unfinished_imports_come_first_then_the_others_newest_first(client, make_job):
    old_running = make_job(status="processing", created_at=at(1)).id
    done = [make_job(status="completed", created_at=at(minute)).id for minute in (2, 3, 4)]
    waiting = make_job(status="pending", created_at=at(5)).id
    failed = make_job(status="failed", created_at=at(6)).id

    order = [waiting, old_running, failed, *done[::-1]]
    assert ids(client) == order
    # The pages follow the same order, across the border between the two parts.
    pages = [ids(client, f"?limit=2&offset={offset}") for offset in (0, 2, 4, 6)]
    assert pages == [order[0:2], order[2:4], order[4:6], []]
    assert ids(client, "?limit=3&offset=1") == order[1:4]
    assert client.get("/api/import?limit=2&offset=4").get_json()["total"] == 6


def test_the_history_filters_by_status_and_mode_and_finds_file_names(client, make_job):
    march = make_job(status="completed", mode="batch", source="March contacts.csv").id
    april = make_job(status="failed", mode="stream", source="april_contacts.csv").id
    make_job(status="completed", mode="stream", source="leads.csv")
    percent = make_job(status="completed", mode="default", source="100%_real.csv").id

    assert ids(client, "?status=failed") == [april]
    assert ids(client, "?mode=batch") == [march]
    assert sorted(ids(client, "?q=CONTACTS")) == sorted([march, april])
    assert ids(client, "?q=contacts&mode=stream") == [april]
    assert ids(client, "?q=contacts&status=completed&mode=stream") == []
    # Wildcards of LIKE are plain characters here.
    assert ids(client, "?q=%25") == [percent]
    assert ids(client, "?q=l_contacts") == [april]
    assert ids(client, "?q=h_contacts") == []
    listing = client.get("/api/import?q=contacts&limit=1").get_json()
    assert listing["total"] == 2 and len(listing["jobs"]) == 1
    assert ids(client, "?status=&mode=&q=") == ids(client)


@pytest.mark.parametrize(
    "query, message",
    [
        ("status=done", "status must be one of pending, processing, completed, failed, cancelled, paused; got 'done'"),
        ("mode=fast", "mode must be one of default, batch, stream; got 'fast'"),
        ("q=" + "x" * 256, "q must be at most 255 characters"),
        ("q=a%00b", "q must not contain NUL characters"),
    ],
)
def test_bad_history_filters_are_a_400_naming_the_problem(client, query, message):
    response = client.get(f"/api/import?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"] == {"code": "invalid_parameter", "message": message}


def test_job_shape(client, make_job):
    job = client.get(f"/api/import/{make_job().id}").get_json()["job"]
    assert set(job) == {
        "id",
        "mode",
        "status",
        "outcome",
        "source",
        "started_by",
        "idempotency_key",
        "encoding",
        "delimiter",
        "file_format",
        "sheet",
        "mapping",
        "duplicate_policy",
        "template_id",
        "total_records",
        "estimated_total",
        "processed_count",
        "success_count",
        "failed_count",
        "cancelled_count",
        "created_at",
        "started_at",
        "completed_at",
        "duration_seconds",
        "error",
        "notice",
        "cancel_requested",
        "pause_requested",
        "priority",
        "retries",
        "last_retried_at",
        "delivered_count",
    }
    assert job["status"] == "pending" and job["created_at"].endswith("Z")
    assert (job["started_by"], job["encoding"], job["delimiter"]) == ("anonymous", "utf-8-sig", ",")


def test_errors_are_paged_and_filtered_by_category(client, finished_job):
    job_id = finished_job["id"]
    everything = client.get(f"/api/import/{job_id}/errors?limit=1000").get_json()
    assert everything["total"] == finished_job["failed_count"] == len(everything["errors"])
    rows = [error["row"] for error in everything["errors"]]
    assert rows == sorted(rows)

    duplicates = client.get(f"/api/import/{job_id}/errors?category=duplicate&limit=5&offset=1").get_json()
    assert len(duplicates["errors"]) == 5
    assert {error["category"] for error in duplicates["errors"]} == {"duplicate"}
    assert duplicates["total"] == client.get(f"/api/import/{job_id}").get_json()["error_counts"]["duplicate"]


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=100000", "offset=-1", "category=spelling"])
def test_bad_paging_and_filters_get_400(client, make_job, query):
    response = client.get(f"/api/import/{make_job().id}/errors?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_parameter"


def test_unknown_job_is_404_json(client):
    response = client.get("/api/import/999")
    assert response.status_code == 404
    assert response.get_json() == {"error": {"code": "not_found", "message": "No import #999."}}


def test_records_are_searchable_and_filterable(client, finished_job):
    job_id = finished_job["id"]
    all_records = client.get(f"/api/records?job={job_id}&limit=1000").get_json()
    assert all_records["total"] == finished_job["success_count"] + finished_job["failed_count"] - _validation_errors(
        client, job_id
    )
    failed = client.get(f"/api/records?job={job_id}&status=failed").get_json()
    assert failed["records"] and {record["status"] for record in failed["records"]} == {"failed"}
    assert all(record["response"]["status"] == "rejected" for record in failed["records"])
    # A success is stored only as the job's watermark; the API shows it as succeeded, filters on it, and counts it.
    succeeded = client.get(f"/api/records?job={job_id}&status=succeeded&limit=1000").get_json()
    assert succeeded["total"] == finished_job["success_count"] == len(succeeded["records"])
    assert {(record["status"], record["attempts"]) for record in succeeded["records"]} == {("succeeded", 1)}
    assert client.get(f"/api/records?job={job_id}&status=pending").get_json()["total"] == 0

    someone = all_records["records"][0]
    found = client.get(f"/api/records?q={someone['email'].upper()}").get_json()
    assert someone["id"] in [record["id"] for record in found["records"]]
    assert set(someone) == {
        "id",
        "job_id",
        "row",
        "name",
        "email",
        "company",
        "extra",
        "version",
        "status",
        "attempts",
        "response",
    }
    assert client.get("/api/records?status=nope").status_code == 400
    assert client.get("/api/records?job=abc").status_code == 400


def _validation_errors(client, job_id):
    counts = client.get(f"/api/import/{job_id}").get_json()["error_counts"]
    return counts["duplicate"] + counts["missing_value"] + counts["invalid_format"]


def test_clearing_records_needs_confirmation(client, finished_job):
    response = client.delete("/api/records")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "confirmation_required"

    response = client.delete("/api/records?confirm=true")
    assert response.status_code == 200
    assert response.get_json()["deleted"]["jobs"] == 1
    assert client.get("/api/records").get_json()["total"] == 0
    assert client.get("/api/import").get_json()["jobs"] == []


def test_clearing_is_refused_while_an_import_runs_and_names_it(client, make_job):
    make_job(status="completed")
    running = make_job(status="processing", source="big.csv")
    make_job(status="pending")
    response = client.delete("/api/records?confirm=true")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "import_running" and error["details"]["job_id"] == running.id
    assert error["message"] == (
        f"Import #{running.id} (big.csv) is still running (and 1 other); wait for it to finish or cancel it first."
    )


def test_health_reports_the_database(client):
    assert client.get("/health").get_json() == {"status": "ok", "database": "ok"}


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
