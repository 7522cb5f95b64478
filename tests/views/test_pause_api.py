"""Pause, unpause and prioritise imports through the JSON API."""

from datetime import timedelta

import pytest

from importdash.extensions import db
from importdash.models import ImportJob, JobAction, utcnow
from importdash.services.ledger import JobLedger


def later():
    return utcnow() + timedelta(minutes=5)


def test_a_waiting_import_pauses_at_once_and_unpauses_to_wait_again(app, client, make_job):
    app.extensions["importdash"].claimer.stop()  # nothing claims it meanwhile: what unpause leaves is what is read
    job_id = make_job(status="pending").id

    paused = client.post(f"/api/import/{job_id}/pause")

    assert paused.status_code == 200
    assert (paused.get_json()["job"]["status"], paused.get_json()["job"]["pause_requested"]) == ("paused", False)
    again = client.post(f"/api/import/{job_id}/pause")
    assert again.status_code == 409 and again.get_json()["error"]["message"] == f"Import #{job_id} is paused already."
    unpaused = client.post(f"/api/import/{job_id}/unpause")
    assert unpaused.status_code == 202
    assert unpaused.get_json()["job"]["status"] in ("pending", "processing", "completed")  # a free slot takes it


def test_pausing_an_import_another_process_runs_asks_it_at_its_heartbeat(client, make_job):
    job_id = make_job(status="processing", lease_owner="other:1:x", lease_expires_at=later()).id

    response = client.post(f"/api/import/{job_id}/pause")

    assert response.status_code == 202
    job = response.get_json()["job"]
    assert (job["status"], job["pause_requested"]) == ("processing", True)
    assert JobLedger(db.session, job_id, "other:1:x", lease_seconds=30).renew_lease() is JobAction.PAUSE
    refused = client.post(f"/api/import/{job_id}/unpause")
    assert refused.status_code == 409 and "pausing at its next check" in refused.get_json()["error"]["message"]


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_an_ended_import_cannot_be_paused_nor_unpaused(client, make_job, status):
    job_id = make_job(status=status).id

    paused, unpaused = client.post(f"/api/import/{job_id}/pause"), client.post(f"/api/import/{job_id}/unpause")

    assert (paused.status_code, paused.get_json()["error"]["code"]) == (409, "conflict")
    assert f"already ended ({status})" in paused.get_json()["error"]["message"]
    assert unpaused.status_code == 409 and "only a paused import" in unpaused.get_json()["error"]["message"]


def test_pausing_or_unpausing_an_unknown_import_is_a_404(client):
    assert client.post("/api/import/999/pause").status_code == 404
    assert client.post("/api/import/999/unpause").status_code == 404
    assert client.post("/api/import/999/priority", json={"priority": 1}).status_code == 404


def test_records_cannot_be_cleared_nor_the_import_deleted_while_an_import_is_paused(client, make_job):
    job_id = make_job(status="pending").id
    client.post(f"/api/import/{job_id}/pause")

    cleared = client.delete("/api/records?confirm=true")
    deleted = client.delete(f"/api/import/{job_id}")

    assert cleared.status_code == 409 and cleared.get_json()["error"]["details"] == {"job_id": job_id}
    assert deleted.status_code == 409 and "is paused" in deleted.get_json()["error"]["message"]
    assert client.post(f"/api/import/{job_id}/cancel").get_json()["job"]["status"] == "cancelled"
    assert client.delete("/api/records?confirm=true").status_code == 200


def test_the_history_lists_paused_imports_first_and_filters_by_them(client, make_job):
    paused = make_job(status="pending", created_at=utcnow() - timedelta(days=1)).id
    client.post(f"/api/import/{paused}/pause")
    done = make_job(status="completed").id

    everything = [job["id"] for job in client.get("/api/import").get_json()["jobs"]]
    only_paused = client.get("/api/import?status=paused").get_json()

    assert everything == [paused, done]
    assert ([job["id"] for job in only_paused["jobs"]], only_paused["total"]) == ([paused], 1)


# Priority


def test_an_imports_priority_is_set_and_read_back(client, make_job):
    job_id = make_job(status="pending").id
    assert client.get(f"/api/import/{job_id}").get_json()["job"]["priority"] == 0

    response = client.post(f"/api/import/{job_id}/priority", json={"priority": 7})

    assert response.status_code == 200 and response.get_json()["job"]["priority"] == 7
    assert client.get(f"/api/import/{job_id}").get_json()["job"]["priority"] == 7


@pytest.mark.parametrize(
    "body, code",
    [
        ({"priority": 11}, "invalid_parameter"),
        ({"priority": "high"}, "invalid_parameter"),
        ({"priority": True}, "invalid_parameter"),
        ({"priority": None}, "invalid_parameter"),
        ({}, "invalid_body"),
        ([7], "invalid_body"),
    ],
)
def test_a_bad_priority_is_a_400_that_says_what_is_allowed(client, make_job, body, code):
    job_id = make_job(status="pending").id

    response = client.post(f"/api/import/{job_id}/priority", json=body)

    assert (response.status_code, response.get_json()["error"]["code"]) == (400, code)
    assert db.session.get(ImportJob, job_id).priority == 0


def test_an_upload_starts_with_the_priority_of_its_form(client, write_csv):
    path = write_csv("name,email\nAda,ada@example.com\n")
    with path.open("rb") as handle:
        response = client.post("/api/import/batch", data={"file": (handle, "a.csv"), "priority": "-3"})

    assert response.status_code == 202 and response.get_json()["job"]["priority"] == -3


@pytest.mark.parametrize("priority", ["11", "soon", "1.5"])
def test_an_upload_with_a_bad_priority_is_refused_and_starts_nothing(client, write_csv, priority):
    path = write_csv("name,email\nAda,ada@example.com\n")
    with path.open("rb") as handle:
        response = client.post("/api/import/batch", data={"file": (handle, "a.csv"), "priority": priority})

    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "invalid_parameter")
    assert client.get("/api/import").get_json()["total"] == 0


def test_a_preview_takes_no_priority(client, write_csv):
    path = write_csv("name,email\nAda,ada@example.com\n")
    with path.open("rb") as handle:
        response = client.post("/api/import/preview", data={"file": (handle, "a.csv"), "priority": "1"})

    assert response.status_code == 400 and "Unknown form field 'priority'" in response.get_json()["error"]["message"]
