"""Imports delivered over HTTP to a scripted downstream on loopback: throttling, outages, refusals, slowness."""

import time
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from scripted_downstream import Reply
from sqlalchemy import select

from importdash.extensions import db
from importdash.models import ImportJob, RowError
from importdash.runtime import get_runtime
from importdash.services.delivery import UNAVAILABLE

ROWS = 40


@pytest.fixture
def app_config(downstream_server):
    return {
        "DOWNSTREAM": "webhook",
        "WEBHOOK_URL": downstream_server.url,
        "WEBHOOK_AUTHORIZATION": "Bearer test-token",
        "WEBHOOK_TIMEOUT_SECONDS": 0.3,
        "RECORDS_PER_CALL": 10,
        "DELIVERY_MAX_ATTEMPTS": 3,
        "RETRY_BACKOFF_BASE_SECONDS": 0.01,
        "RETRY_BACKOFF_CAP_SECONDS": 0.05,
        "BREAKER_THRESHOLD": 0,
        "BREAKER_COOLDOWN_SECONDS": 0.2,
    }


@pytest.fixture
def import_contacts(client, write_csv, wait_for_job):
    """Import ROWS valid contacts in batch mode and return the finished job and the keys it should deliver."""

    def run():
        path = write_csv("name,email\n" + "\n".join(f"P {n},p{n}@example.com" for n in range(ROWS)) + "\n")
        with path.open("rb") as handle:
            job_id = client.post("/api/import/batch", data={"file": (handle, path.name)}).get_json()["job"]["id"]
        job = wait_for_job(job_id)
        key = db.session.get(ImportJob, job_id).key
        return job, [f"{key}-{row}" for row in range(2, ROWS + 2)]

    return run


def gap_after_first_call(server):
    """Seconds between the first call and the next, as the server saw them arrive."""
    return server.calls[1].received_at - server.calls[0].received_at


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_waits_as_retry_after_says_and_fails_nothing(downstream_server, import_contacts, form):
    in_two_seconds = format_datetime(datetime.fromtimestamp(time.time() + 2, UTC), usegmt=True)
    retry_after = "1" if form == "seconds" else in_two_seconds
    downstream_server.push(Reply(status=429, headers={"Retry-After": retry_after}))

    job, keys = import_contacts()

    assert job["status"] == "completed" and (job["success_count"], job["failed_count"]) == (ROWS, 0)
    assert sorted(downstream_server.accepted_keys()) == sorted(keys)
    assert gap_after_first_call(downstream_server) >= 0.9
    first, second = downstream_server.calls[:2]
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


def test_an_outage_pauses_delivery_shows_a_notice_and_completes_when_the_downstream_returns(
    app, downstream_server, import_contacts
):
    get_runtime(app).deliverer.breaker.threshold = 2  # open after two failed calls in a row, probe every 0.2 s
    downstream_server.push(*[Reply(status=503) for _ in range(5)])
    events = get_runtime(app).broker.subscribe()

    job, keys = import_contacts()

    assert job["status"] == "completed" and (job["success_count"], job["failed_count"]) == (ROWS, 0)
    assert sorted(downstream_server.accepted_keys()) == sorted(keys)
    notices = []
    while (event := events.get(timeout=0)) is not None:
        notices.append(event.data["job"]["notice"])
    events.close()
    assert UNAVAILABLE in notices
    assert notices[-1] is None and job["notice"] is None


def test_503s_beyond_the_attempts_fail_the_records_with_the_reason(downstream_server, import_contacts):
    downstream_server.push(*[Reply(status=503, body={"error": {"message": "maintenance"}}) for _ in range(3)])

    job, keys = import_contacts()

    assert (job["success_count"], job["failed_count"]) == (ROWS - 10, 10)
    messages = set(db.session.scalars(select(RowError.message).where(RowError.job_id == job["id"])))
    assert messages == {"the downstream answered 503 Service Unavailable: maintenance (gave up after 3 attempts)"}


def test_a_400_fails_the_calls_records_at_once_and_refusals_fail_single_records(downstream_server, import_contacts):
    downstream_server.rule = lambda records: Reply(
        refuse={record["key"]: "unknown company" for record in records if record["email"] == "p15@example.com"}
    )
    downstream_server.push(Reply(status=400, body={"error": {"message": "bad batch"}}))

    job, keys = import_contacts()

    assert (job["success_count"], job["failed_count"]) == (ROWS - 11, 11)
    query = select(RowError.row, RowError.category, RowError.message).where(RowError.job_id == job["id"])
    errors = db.session.execute(query).all()
    assert {(row, category) for row, category, _ in errors} == {(row, "other") for row in [*range(2, 12), 17]}
    assert {message for row, _, message in errors if row < 12} == {"the downstream answered 400 Bad Request: bad batch"}
    assert [message for row, _, message in errors if row == 17] == ["unknown company"]
    assert len(downstream_server.calls) == 4  # the 400 was not retried


def test_a_slow_answer_is_retried_with_the_same_keys(downstream_server, import_contacts):
    downstream_server.push(Reply(delay=0.6))

    job, keys = import_contacts()

    assert job["status"] == "completed" and job["success_count"] == ROWS
    first, second = downstream_server.calls[:2]
    # The server did the slow call's work after the client gave up; the retry carries the same keys.
    assert first.records == second.records
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.headers["Authorization"] == "Bearer test-token"
    assert set(downstream_server.accepted_keys()) == set(keys)


def test_the_payload_carries_extra_fields_and_an_update_goes_out_marked_under_a_new_key(
    client, write_csv, wait_for_job, downstream_server
):
    def run(text, **fields):
        path = write_csv(text)
        with path.open("rb") as handle:
            response = client.post("/api/import/batch", data={"file": (handle, path.name), **fields})
        assert response.status_code == 202, response.get_json()
        job = wait_for_job(response.get_json()["job"]["id"])
        return job, db.session.get(ImportJob, job["id"]).key

    first, first_key = run("name,email,company,phone\nAda,ada@example.com,AE,+44 1\nAlan,alan@example.com,,\n")
    assert first["success_count"] == 2
    ada, alan = downstream_server.calls[0].records
    assert ada == {
        "key": f"{first_key}-2",
        "operation": "create",
        "version": 1,
        "name": "Ada",
        "email": "ada@example.com",
        "company": "AE",
        "extra": {"phone": "+44 1"},
    }
    assert alan["extra"] == {"phone": ""}  # a kept column's empty cell is kept as the empty text it was

    second, second_key = run(
        "name,email,company,phone\nAda King,ADA@example.com,AE,+44 2\nAlan,alan@example.com,,\n",
        duplicate_policy="update",
    )

    assert (second["success_count"], second["failed_count"]) == (1, 1)
    (update,) = downstream_server.calls[1].records
    assert update == {
        "key": f"{second_key}-2-v2",
        "operation": "update",
        "version": 2,
        "name": "Ada King",
        "email": "ada@example.com",
        "company": "AE",
        "extra": {"phone": "+44 2"},
    }
    (unchanged,) = db.session.scalars(select(RowError).where(RowError.job_id == second["id"])).all()
    assert (unchanged.row, unchanged.category) == (3, "duplicate")
    assert unchanged.message.startswith("unchanged: ")
