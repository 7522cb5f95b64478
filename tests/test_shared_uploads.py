"""End to end: two real servers on one database. A stream import starts on A; A is killed (kill -9, its whole
process group) mid-import and its upload folder is removed; B takes the import over and completes it, reading
the upload from the database. With local storage the same takeover cannot find the file, as before."""

import os
import shutil
import signal
from collections import Counter

import httpx
import pytest
from scripted_downstream import Reply
from servers import wait_for

from importdash.extensions import db
from importdash.models import ImportJob, JobRun

ROWS = 2000

# Real gunicorn processes are killed; they run on the test's database (SQLite file or PostgreSQL), so db as well.
pytestmark = [pytest.mark.faults, pytest.mark.scale]


@pytest.fixture
def contacts(tmp_path):
    """ROWS rows, every 50th email invalid; returns (path, rows that are valid)."""
    lines, valid = ["name,email,company"], set()
    for n in range(ROWS):
        if n % 50 == 49:
            lines.append(f"Person {n},broken{n},Company {n % 7}")
        else:
            lines.append(f"Person {n},person{n}@example.com,Company {n % 7}")
            valid.add(n + 2)
    path = tmp_path / "contacts.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, valid


@pytest.fixture
def make_server(downstream_server, servers):
    """A real server (not yet started) of its own name: its own upload folder, runtime dir and log; the test's
    database."""

    def make(name, storage):
        return servers.make(
            name,
            WORKERS=1,
            UPLOAD_STORAGE=storage,
            UPLOAD_CHUNK_KB=4,  # the file is many chunks; B reads on from the middle of them
            DOWNSTREAM="webhook",
            WEBHOOK_URL=downstream_server.url,
            RATE_PER_SECOND=0,
            RECORDS_PER_CALL=10,
            DELIVERY_WINDOW=100,
            CHUNK_SIZE=100,
            LEASE_SECONDS=1.5,
            HEARTBEAT_SECONDS=0.5,
            CLAIM_POLL_SECONDS=0.5,
            PROGRESS_INTERVAL_SECONDS=0.2,
        )

    return make


def job_from_api(server, job_id):
    return httpx.get(f"{server.url}/api/import/{job_id}", timeout=5).json()["job"]


def leased_by(job_id):
    db.session.expire_all()
    return db.session.get(ImportJob, job_id).lease_owner


def runs_in_process_group(owner, server):
    """Whether a lease owner (host:pid:tag) is a process of the server's group (gunicorn's worker)."""
    pid = int(owner.split(":")[1])
    try:
        return os.getpgid(pid) == server.process.pid
    except ProcessLookupError:
        return False


def kill_mid_import(make_server, downstream_server, contacts, storage):
    """Start the import on A, start B, kill A mid-delivery and remove A's upload folder; return (B, job id)."""
    path, valid_rows = contacts
    downstream_server.rule = lambda records: Reply(delay=0.05)  # about 200 rows a second: killed mid-way
    first, second = make_server("a", storage), make_server("b", storage)
    first.start()
    with path.open("rb") as handle:
        response = httpx.post(f"{first.url}/api/import/stream", files={"file": (path.name, handle)}, timeout=10)
    assert response.status_code == 202, response.text
    job_id = response.json()["job"]["id"]
    wait_for(lambda: leased_by(job_id) is not None, timeout=30, what="A to take the job", server=first)
    assert runs_in_process_group(leased_by(job_id), first)
    second.start()  # its first sweep finds the job leased by A, and leaves it
    wait_for(lambda: len(downstream_server.accepted_keys()) >= 300, timeout=60, what="delivery", server=first)

    first.signal(signal.SIGKILL)
    shutil.rmtree(first.home / "uploads")
    assert len(set(downstream_server.accepted_keys())) < len(valid_rows), "the import finished before the kill"
    return second, job_id


def test_a_stream_import_killed_on_one_server_is_completed_by_another_from_the_database(
    make_server, downstream_server, contacts
):
    path, valid_rows = contacts
    second, job_id = kill_mid_import(make_server, downstream_server, contacts, "database")

    wait_for(lambda: job_from_api(second, job_id)["status"] != "processing", timeout=90, what="B", server=second)
    job = job_from_api(second, job_id)

    assert job["status"] == "completed", (job, second.log())
    assert (job["total_records"], job["processed_count"], job["success_count"]) == (ROWS, ROWS, len(valid_rows))
    key = db.session.get(ImportJob, job_id).key
    received = Counter(downstream_server.accepted_keys())
    assert set(received) == {f"{key}-{row}" for row in valid_rows}  # every valid row, and no unknown key
    assert sum(received.values()) - len(received) <= 100  # re-sent: at most the chunk A had in flight
    owners = [run.owner for run in db.session.query(JobRun).filter_by(job_id=job_id).order_by(JobRun.id)]
    assert len(owners) >= 2 and runs_in_process_group(owners[-1], second)  # B ran the end of it
    stored = db.session.get(ImportJob, job_id)
    assert stored.path.startswith("db:") and stored.upload_removed_at is not None  # deleted once complete
    second.signal(signal.SIGTERM)


def test_with_local_storage_the_server_that_takes_over_cannot_find_the_file(make_server, downstream_server, contacts):
    second, job_id = kill_mid_import(make_server, downstream_server, contacts, "local")

    wait_for(lambda: job_from_api(second, job_id)["status"] != "processing", timeout=90, what="B", server=second)
    job = job_from_api(second, job_id)

    assert job["status"] == "failed", (job, second.log())
    assert job["error"] == "The file to import is gone (deleted or moved); import it again."
    second.signal(signal.SIGTERM)
