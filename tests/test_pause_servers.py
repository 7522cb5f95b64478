"""End to end: two real servers on one database. A pause asked of one reaches the import the other runs, at its
heartbeat, through the database; that server's slot frees for the next import, and once unpaused the import
completes with every row delivered once in effect."""

from collections import Counter

import httpx
import pytest
from fakes import shown_statuses
from scripted_downstream import Reply
from servers import wait_for
from sqlalchemy import select

from importdash.extensions import db
from importdash.models import ImportJob, JobRun, RowError

pytestmark = pytest.mark.scale  # several app instances at once

ROWS = 600
WINDOW = 50  # DELIVERY_WINDOW: what a run may have claimed in flight when it stops
TIMEOUT = 60


@pytest.fixture
def contacts(tmp_path):
    """ROWS rows with distinct, valid emails; returns (path, the rows' numbers)."""
    path = tmp_path / "contacts.csv"
    path.write_text("name,email\n" + "".join(f"Person {n},person{n}@example.com\n" for n in range(ROWS)))
    return path, {n + 2 for n in range(ROWS)}


@pytest.fixture
def two_servers(downstream_server, servers, tmp_path):
    """Two real servers on the test's database and one upload folder, each with one runner slot."""
    return [
        servers.start(
            name,
            UPLOAD_FOLDER=tmp_path / "uploads",
            DOWNSTREAM="webhook",
            WEBHOOK_URL=downstream_server.url,
            RATE_PER_SECOND=0,
            RECORDS_PER_CALL=10,
            DELIVERY_WINDOW=WINDOW,
            MAX_JOBS=1,
            LEASE_SECONDS=3,
            HEARTBEAT_SECONDS=0.3,
            CLAIM_POLL_SECONDS=0.5,
            PROGRESS_INTERVAL_SECONDS=0.2,
        )
        for name in ("a", "b")
    ]


def start_import(server, path):
    with path.open("rb") as handle:
        response = httpx.post(f"{server.url}/api/import/batch", files={"file": (path.name, handle)}, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["job"]["id"]


def job(job_id):
    db.session.expire_all()
    return db.session.get(ImportJob, job_id)


def runs(job_id):
    db.session.expire_all()
    return list(db.session.scalars(select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id)))


def pid_of(owner):
    return int(owner.split(":")[1])


def test_a_pause_asked_of_one_server_pauses_the_import_another_runs_and_unpaused_it_completes_once(
    two_servers, downstream_server, contacts
):
    server_a, server_b = two_servers
    path, rows = contacts
    downstream_server.rule = lambda records: Reply(delay=0.05)  # 60 calls: about 3 s of delivery
    job_id = start_import(server_b, path)  # B has a free slot: it runs the import itself
    wait_for(lambda: len(downstream_server.accepted_keys()) >= 100, timeout=TIMEOUT, what="delivery", server=server_b)
    running_on = pid_of(job(job_id).lease_owner)

    response = httpx.post(f"{server_a.url}/api/import/{job_id}/pause", timeout=10)

    assert response.status_code in (200, 202), response.text  # 200 if B paused it before A answered
    wait_for(lambda: job(job_id).status == "paused", timeout=TIMEOUT, what="the import to pause", server=server_b)
    paused = job(job_id)
    assert (paused.lease_owner, paused.lease_expires_at, paused.pause_requested) == (None, None, False)
    assert [run.outcome for run in runs(job_id)] == ["paused"]
    assert pid_of(runs(job_id)[0].owner) == running_on
    sent_while_running = len(downstream_server.accepted_keys())
    assert sent_while_running < ROWS

    # The slot the paused import held is free: a second import posted to its server runs there at once.
    other_path = path.with_name("others.csv")
    other_path.write_text("name,email\n" + "".join(f"Other {n},other{n}@example.com\n" for n in range(20)))
    other_id = start_import(server_b, other_path)
    wait_for(lambda: job(other_id).status == "completed", timeout=TIMEOUT, what="the second import", server=server_b)
    assert job(job_id).status == "paused"  # never claimed meanwhile, by either server
    assert len(runs(job_id)) == 1

    unpaused = httpx.post(f"{server_a.url}/api/import/{job_id}/unpause", timeout=10)

    assert unpaused.status_code == 202, unpaused.text
    wait_for(lambda: job(job_id).status == "completed", timeout=TIMEOUT, what="the import to complete", server=server_a)
    done = job(job_id)
    assert done.processed_count == done.success_count == done.total_records == ROWS
    key = done.key
    received = Counter(key_ for key_ in downstream_server.accepted_keys() if key_.startswith(f"{key}-"))
    assert set(received) == {f"{key}-{row}" for row in rows}  # every row, once in effect
    assert sum(received.values()) - len(received) <= WINDOW  # re-sent: at most what was in flight
    statuses = Counter(shown_statuses(db.session, job_id).values())
    assert statuses == {"succeeded": ROWS}
    assert db.session.scalars(select(RowError.id).where(RowError.job_id == job_id)).all() == []
    assert [run.outcome for run in runs(job_id)] == ["paused", "completed"]
