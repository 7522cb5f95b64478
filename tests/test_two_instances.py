"""End to end: two real servers on one database share the work. A killed one's import is resumed by the other
within its lease plus a poll, and a job posted to a busy one is picked up by the idle one within a second."""

import os
import signal
import time
from collections import Counter

import httpx
import pytest
from scripted_downstream import Reply
from servers import wait_for

from importdash.extensions import db
from importdash.models import ImportJob

# Real gunicorn processes are killed; two app instances on the test's database.
pytestmark = [pytest.mark.faults, pytest.mark.scale]

SLACK = 3  # timing bounds below are the design's, times this, for a loaded 2-core machine
LEASE_SECONDS = 3
CLAIM_POLL_SECONDS = 0.5
ROWS = 600


@pytest.fixture
def contacts(tmp_path):
    """ROWS rows with distinct, valid emails; returns (path, the rows' numbers)."""
    path = tmp_path / "contacts.csv"
    path.write_text("name,email\n" + "".join(f"Person {n},person{n}@example.com\n" for n in range(ROWS)))
    return path, {n + 2 for n in range(ROWS)}


@pytest.fixture
def make_servers(downstream_server, servers, tmp_path):
    """Start n real servers on the test's database and one upload folder, each allowed one job at a time."""

    def make(count):
        return [
            servers.start(
                f"server{n}",
                UPLOAD_FOLDER=tmp_path / "uploads",
                DOWNSTREAM="webhook",
                WEBHOOK_URL=downstream_server.url,
                RATE_PER_SECOND=0,
                RECORDS_PER_CALL=10,
                DELIVERY_WINDOW=50,
                MAX_JOBS=1,
                LEASE_SECONDS=LEASE_SECONDS,
                HEARTBEAT_SECONDS=0.5,
                CLAIM_POLL_SECONDS=CLAIM_POLL_SECONDS,
                PROGRESS_INTERVAL_SECONDS=0.2,
            )
            for n in range(count)
        ]

    return make


def start_import(server, path):
    with path.open("rb") as handle:
        response = httpx.post(f"{server.url}/api/import/batch", files={"file": (path.name, handle)}, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["job"]["id"]


def lease_owner(job_id):
    db.session.expire_all()
    return db.session.get(ImportJob, job_id).lease_owner


def holder(job_id, servers):
    """The server whose worker holds the job's lease (the owner names the worker's pid), or None."""
    owner = lease_owner(job_id)
    if owner is None:
        return None
    pid = int(owner.split(":")[1])
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return None
    return next((server for server in servers if server.process.pid == group), None)


def logs(servers):
    return "\n".join(server.log() for server in servers)


def test_a_killed_servers_import_is_resumed_by_the_other_within_its_lease(make_servers, downstream_server, contacts):
    path, rows = contacts
    downstream_server.rule = lambda records: Reply(delay=0.05)  # 60 calls: about 3 s of delivery
    servers = make_servers(2)
    job_id = start_import(servers[0], path)
    wait_for(lambda: len(downstream_server.accepted_keys()) >= 100, timeout=30, what="delivery", server=servers[0])
    dying = holder(job_id, servers)
    survivor = next(server for server in servers if server is not dying)

    dying.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(
        lambda: holder(job_id, [survivor]) is survivor,
        timeout=(LEASE_SECONDS + 5) * SLACK,
        what="the other server to take the import over",
        server=survivor,
    )
    takeover = time.monotonic() - killed_at
    print(f"takeover after kill -9: {takeover:.2f} s (lease {LEASE_SECONDS} s, poll {CLAIM_POLL_SECONDS} s)")

    wait_for(
        lambda: httpx.get(f"{survivor.url}/api/import/{job_id}").json()["job"]["status"] == "completed",
        timeout=60,
        what="the import to complete",
        server=survivor,
    )
    key = db.session.get(ImportJob, job_id).key
    received = Counter(downstream_server.accepted_keys())
    assert set(received) == {f"{key}-{row}" for row in rows}  # every row, once in effect
    assert sum(received.values()) - len(received) <= 50  # re-sent: at most the window that was in flight


def test_a_job_posted_to_a_busy_server_is_picked_up_by_the_idle_one_within_a_second(
    make_servers, downstream_server, contacts
):
    path, _rows = contacts
    downstream_server.rule = lambda records: Reply(delay=0.1)  # the first import keeps its server busy for 6 s
    servers = make_servers(2)
    first = start_import(servers[0], path)
    wait_for(lambda: holder(first, servers) is not None, timeout=10, what="the first import to start")
    busy = holder(first, servers)
    idle = next(server for server in servers if server is not busy)

    # Rows of its own, so that it is still delivering when it is checked (a file of the first's emails would end
    # at once, every row a duplicate, and let go of its lease).
    more = path.with_name("more.csv")
    more.write_text("name,email\n" + "".join(f"Other {n},other{n}@example.com\n" for n in range(ROWS)))
    posted_at = time.monotonic()
    second = start_import(busy, more)
    wait_for(lambda: lease_owner(second) is not None, timeout=SLACK, what="the idle server to claim it", server=idle)
    pickup = time.monotonic() - posted_at
    print(f"pickup of a job posted to a busy server: {pickup:.2f} s (poll {CLAIM_POLL_SECONDS} s)")

    assert holder(second, servers) is idle, logs(servers)
    assert holder(first, servers) is busy  # each runs one: MAX_JOBS=1
    assert pickup <= 1 * SLACK
    for server in servers:
        server.signal(signal.SIGTERM)
