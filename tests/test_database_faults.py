"""End to end: the real server rides out database faults in the middle of imports, and loses or strands nothing.

A loopback proxy between the server and PostgreSQL resets every connection or goes silent for a while; on
SQLite another process holds the write lock past the busy timeout. Each case ends with the import completed,
every valid row delivered under its key, the counts adding up and no record left pending or in flight. The
figures (time to resume after the fault, re-sent records) are printed and kept in test-artifacts/.
"""

import sqlite3
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from faultproxy import FaultProxy
from scripted_downstream import Reply
from servers import PROJECT_ROOT, wait_for
from sqlalchemy import func, select

from importdash.extensions import db
from importdash.models import ImportJob, Record, awaiting_verdict

pytestmark = pytest.mark.faults

ROWS = 1_500
HEALTH_DEADLINE_SECONDS = 2  # what /health promises while the database is away
SLACK = 3  # shared, noisy machines: deadlines are asserted with this factor; the figures printed are the real ones
FIGURES = PROJECT_ROOT / "test-artifacts" / "database-faults.txt"


@pytest.fixture
def contacts(tmp_path):
    """ROWS rows, every 30th with a bad email; returns (path, the rows that must be delivered)."""
    lines, valid = ["name,email,company"], set()
    for n in range(ROWS):
        bad = n % 30 == 29
        lines.append(f"Person {n},{'broken' if bad else 'person'}{n}{'' if bad else '@example.com'},Co {n % 5}")
        if not bad:
            valid.add(n + 2)
    path = tmp_path / "contacts.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, valid


@pytest.fixture
def start_server(downstream_server, servers):
    """start_server(database_url, **settings): the real server on that URL, the scripted downstream its webhook."""

    def start(database_url, **settings):
        defaults = {
            "DOWNSTREAM": "webhook",
            "WEBHOOK_URL": downstream_server.url,
            "RATE_PER_SECOND": 60,  # the import takes a few seconds: long enough to be hit mid-way
            "RATE_BURST": 4,
            "RECORDS_PER_CALL": 10,
            "DELIVERY_WINDOW": 100,
            "CHUNK_SIZE": 100,
            "PROGRESS_INTERVAL_SECONDS": 0.2,
            "LEASE_SECONDS": 3,
            "HEARTBEAT_SECONDS": 1,
            # Short enough that the longest outage outlasts it: that run stops and the sweep resumes the import.
            "DATABASE_OUTAGE_SECONDS": 20,
            "DATABASE_CONNECT_TIMEOUT_SECONDS": 2,
            "DATABASE_TCP_TIMEOUT_SECONDS": 3,
        }
        return servers.start(f"server-{len(servers.made)}", DATABASE_URL=database_url, **(defaults | settings))

    return start


@pytest.fixture
def proxy(app):
    url = urlsplit(app.config["SQLALCHEMY_DATABASE_URI"])
    if not url.scheme.startswith("postgresql"):
        pytest.skip("the proxy stands in front of PostgreSQL (set IMPORTDASH_TEST_DATABASE_URL)")
    proxy = FaultProxy(url.hostname or "127.0.0.1", url.port or 5432)
    yield proxy
    proxy.close()


def through(proxy, app):
    """The test database's URL, through the proxy."""
    url = urlsplit(app.config["SQLALCHEMY_DATABASE_URI"])
    credentials = f"{url.username}@" if url.username else ""
    return urlunsplit(url._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}"))


def start_import(server, path, mode):
    with path.open("rb") as handle:
        response = httpx.post(f"{server.url}/api/import/{mode}", files={"file": (path.name, handle)}, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["job"]["id"]


def health(server):
    """(status, seconds) of one /health request."""
    started = time.monotonic()
    response = httpx.get(f"{server.url}/health", timeout=30)
    return response.status_code, time.monotonic() - started


def assert_nothing_lost(job_id, downstream, valid_rows, server):
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert job.status == "completed", (job.status, job.error, server.log())
    received = Counter(downstream.accepted_keys())
    assert set(received) == {f"{job.key}-{row}" for row in valid_rows}  # every valid row, under its own key
    assert (job.total_records, job.processed_count) == (ROWS, ROWS)
    assert job.success_count == len(valid_rows) and job.success_count + job.failed_count == job.processed_count
    stranded = db.session.scalar(
        select(func.count()).select_from(Record).where(Record.job_id == job_id, awaiting_verdict(job.settled_through))
    )
    assert stranded == 0
    return sum(received.values()) - len(received)  # records delivered more than once


def record(line):
    print(line)
    FIGURES.parent.mkdir(exist_ok=True)
    with FIGURES.open("a") as figures:
        figures.write(line + "\n")


@pytest.mark.parametrize("mode", ["batch", "stream"])
@pytest.mark.parametrize(
    ("fault", "seconds"),
    [("reset", 0.3), ("reset", 10), ("silent", 10), ("reset", 90)],
    ids=["reset-0.3s", "reset-10s", "silent-10s", "reset-90s"],
)
def test_an_import_rides_out_a_database_fault_and_loses_nothing(
    app, proxy, start_server, downstream_server, contacts, fault, seconds, mode
):
    path, valid_rows = contacts
    server = start_server(through(proxy, app))
    job_id = start_import(server, path, mode)
    wait_for(lambda: len(downstream_server.accepted_keys()) >= 200, timeout=60, what="delivery to start", server=server)

    getattr(proxy, fault)()
    fault_began = time.monotonic()
    if seconds >= 1:  # a shorter fault is over before a probe could tell
        status, took = health(server)
        assert status == 503, server.log()
        assert took < HEALTH_DEADLINE_SECONDS * SLACK, f"/health took {took:.1f} s during the outage"
    time.sleep(max(0.0, seconds - (time.monotonic() - fault_began)))
    delivered_during = len(downstream_server.accepted_keys())
    proxy.restore()
    back = time.monotonic()

    def progressing():
        return len(downstream_server.accepted_keys()) > delivered_during or finished()

    def finished():
        return httpx.get(f"{server.url}/api/import/{job_id}", timeout=10).json()["job"]["status"] != "processing"

    wait_for(progressing, timeout=120, what="delivery to go on after the fault", server=server)
    resumed_after = time.monotonic() - back
    wait_for(finished, timeout=180, what="the import to end", server=server)
    resent = assert_nothing_lost(job_id, downstream_server, valid_rows, server)
    if seconds >= 1:
        record(
            f"{fault} {seconds:g} s, {mode}: resumed {resumed_after:.1f} s after the database came back; "
            f"{resent} records delivered twice; /health answered 503 in {took:.2f} s"
        )
    else:
        record(f"{fault} {seconds:g} s, {mode}: resumed {resumed_after:.1f} s after; {resent} records delivered twice")


@pytest.mark.parametrize("mode", ["batch", "stream"])
def test_on_sqlite_an_import_waits_out_a_write_lock_held_past_the_busy_timeout(
    app, start_server, downstream_server, contacts, mode
):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite lock")
    path, valid_rows = contacts
    downstream_server.rule = lambda records: Reply()
    server = start_server(app.config["SQLALCHEMY_DATABASE_URI"], SQLITE_BUSY_TIMEOUT_MS=200)
    job_id = start_import(server, path, mode)
    wait_for(lambda: len(downstream_server.accepted_keys()) >= 200, timeout=60, what="delivery to start", server=server)

    holder = sqlite3.connect(Path(db.engine.url.database), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write: 15 busy timeouts' worth
    time.sleep(3)
    delivered_during = len(downstream_server.accepted_keys())
    holder.execute("ROLLBACK")
    holder.close()
    back = time.monotonic()

    wait_for(
        lambda: (
            len(downstream_server.accepted_keys()) > delivered_during
            or httpx.get(f"{server.url}/api/import/{job_id}", timeout=10).json()["job"]["status"] != "processing"
        ),
        timeout=60,
        what="delivery to go on after the lock",
        server=server,
    )
    resumed_after = time.monotonic() - back
    wait_for(
        lambda: httpx.get(f"{server.url}/api/import/{job_id}", timeout=10).json()["job"]["status"] != "processing",
        timeout=120,
        what="the import to end",
        server=server,
    )
    resent = assert_nothing_lost(job_id, downstream_server, valid_rows, server)
    record(f"sqlite lock 3 s, {mode}: resumed {resumed_after:.1f} s after; {resent} records delivered twice")
