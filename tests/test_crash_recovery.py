"""End to end: the real server (gunicorn with the shipped config) killed mid-delivery, then started again."""

import signal
import time
from collections import Counter

import httpx
import pytest
from scripted_downstream import Reply
from servers import wait_for

from importdash.extensions import db
from importdash.models import ImportJob

ROWS = 800

# Real gunicorn processes are killed and signalled; they run on the test's database (make_server), so db as well.
pytestmark = pytest.mark.faults


@pytest.fixture
def contacts(tmp_path):
    """ROWS rows: every 50th email is invalid, every 40th repeats the row before it; returns (path, valid rows)."""
    lines, valid = ["name,email,company"], set()
    for n in range(ROWS):
        row = n + 2
        if n % 50 == 49:
            email = f"broken{n}"
        elif n % 40 == 39:
            email = f"person{n - 1}@example.com"
        else:
            email = f"person{n}@example.com"
            valid.add(row)
        lines.append(f"Person {n},{email},Company {n % 7}")
    path = tmp_path / "contacts.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, valid


@pytest.fixture
def make_server(downstream_server, servers):
    """A real server (not yet started) on the test's database, with the scripted downstream as its webhook."""

    def make(workers):
        return servers.make(
            "server",
            WORKERS=workers,
            DOWNSTREAM="webhook",
            WEBHOOK_URL=downstream_server.url,
            RATE_PER_SECOND=0,
            RECORDS_PER_CALL=10,
            DELIVERY_WINDOW=100,
            CHUNK_SIZE=100,  # a stream chunk is stored in flight whole: the same bound as a window
            LEASE_SECONDS=1.5,
            HEARTBEAT_SECONDS=0.5,
            PROGRESS_INTERVAL_SECONDS=0.2,
        )

    return make


def start_import(server, path, mode):
    with path.open("rb") as handle:
        response = httpx.post(f"{server.url}/api/import/{mode}", files={"file": (path.name, handle)}, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["job"]["id"]


def job_from_api(server, job_id):
    return httpx.get(f"{server.url}/api/import/{job_id}", timeout=5).json()["job"]


@pytest.mark.parametrize("workers, mode", [(1, "batch"), (2, "stream")])
def test_sigkill_mid_delivery_then_restart_delivers_every_valid_row_once_in_effect(
    make_server, downstream_server, contacts, workers, mode
):
    path, valid_rows = contacts
    downstream_server.rule = lambda records: Reply(delay=0.01)  # slow enough to be killed mid-delivery
    server = make_server(workers)
    server.start()
    job_id = start_import(server, path, mode)
    wait_for(lambda: len(downstream_server.accepted_keys()) >= 200, timeout=60, what="delivery to start", server=server)

    server.signal(signal.SIGKILL)
    accepted_before_restart = len(downstream_server.accepted_keys())
    assert accepted_before_restart < len(valid_rows), "the import finished before the kill"

    server.start()
    wait_for(lambda: job_from_api(server, job_id)["status"] != "processing", timeout=90, what="the job", server=server)
    job = job_from_api(server, job_id)
    server.signal(signal.SIGTERM)

    assert job["status"] == "completed", (job, server.log())
    key = db.session.get(ImportJob, job_id).key
    received = Counter(downstream_server.accepted_keys())
    assert set(received) == {f"{key}-{row}" for row in valid_rows}  # every valid row, and no unknown key
    resent = sum(received.values()) - len(received)
    # Only records the ledger had marked in flight go out again: one delivery window, or one stream chunk.
    assert resent <= 100
    assert (job["total_records"], job["processed_count"], job["success_count"]) == (ROWS, ROWS, len(valid_rows))
    assert job["failed_count"] == ROWS - len(valid_rows)


def test_sigterm_stops_delivery_promptly_and_leaves_the_job_resumable(make_server, downstream_server, contacts):
    path, valid_rows = contacts
    downstream_server.rule = lambda records: Reply(delay=0.01)
    server = make_server(1)
    server.start()
    job_id = start_import(server, path, "batch")
    wait_for(lambda: len(downstream_server.accepted_keys()) >= 200, timeout=60, what="delivery to start", server=server)

    server.signal(signal.SIGTERM, timeout=15)

    assert server.process.returncode == 0, server.log()
    calls_at_exit = len(downstream_server.calls)
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert job.status == "processing" and job.lease_owner is None, server.log()  # resumable, not leased
    assert job.success_count == len(downstream_server.accepted_keys())  # every call made was settled
    time.sleep(0.5)
    assert len(downstream_server.calls) == calls_at_exit  # no call after the exit

    server.start()
    wait_for(lambda: job_from_api(server, job_id)["status"] == "completed", timeout=90, what="the job", server=server)
    server.signal(signal.SIGTERM)
    received = Counter(downstream_server.accepted_keys())
    assert len(received) == len(valid_rows) and max(received.values()) == 1  # a clean stop re-sends nothing
