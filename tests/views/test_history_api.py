"""Reading imports, their errors and the records through the JSON API."""

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
        "total_records",
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

    someone = all_records["records"][0]
    found = client.get(f"/api/records?q={someone['email'].upper()}").get_json()
    assert someone["id"] in [record["id"] for record in found["records"]]
    assert set(someone) == {"id", "job_id", "row", "name", "email", "company", "status", "attempts", "response"}
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


def test_clearing_is_refused_while_an_import_runs(client, make_job):
    make_job(status="processing")
    response = client.delete("/api/records?confirm=true")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"


def test_health_reports_the_database(client):
    assert client.get("/health").get_json() == {"status": "ok", "database": "ok"}


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
