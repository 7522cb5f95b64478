"""End to end: two real servers (gunicorn with the shipped config) on one database, and `flask import` beside them.

A browser on instance B sees what instance A and the CLI run, live: the event relay carries each job's events
between the processes (the outbox on SQLite, NOTIFY on PostgreSQL, Redis pub/sub when IMPORTDASH_TEST_REDIS_URL
is set).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from servers import PROJECT_ROOT, server_env, wait_for

pytestmark = pytest.mark.scale

SLACK = 3  # shared, noisy machines: deadlines are this many times what a run needs
IMPORT_SECONDS = 2  # each import below is paced by its rate limit to run about this long
ROWS = 400
RATE_PER_SECOND = ROWS / 10 / IMPORT_SECONDS  # 10 records per call
FLASK = Path(sys.executable).parent / "flask"
TEST_REDIS_URL = os.environ.get("IMPORTDASH_TEST_REDIS_URL")


class EventStream:
    """An SSE client on a thread of its own that keeps every named event it reads, as (name, data)."""

    def __init__(self, url):
        self.url = url
        self.events = []
        self.ended = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            with httpx.stream("GET", self.url, timeout=httpx.Timeout(10, read=30)) as response:
                assert response.status_code == 200, response.read()
                name, data = None, []
                for line in response.iter_lines():
                    if self._closing.is_set():
                        return
                    if line.startswith("event:"):
                        name = line.partition(":")[2].strip()
                    elif line.startswith("data:"):
                        data.append(line.partition(":")[2].strip())
                    elif not line and data:
                        with self._lock:
                            self.events.append((name, json.loads("\n".join(data))))
                        name, data = None, []
        finally:
            self.ended.set()

    def named(self, name, job_id):
        with self._lock:
            return [data for event, data in self.events if event == name and data["job"]["id"] == job_id]

    def wait_for(self, name, job_id, timeout):
        wait_for(lambda: self.named(name, job_id), timeout=timeout, what=f"{name} of import #{job_id} at {self.url}")
        return self.named(name, job_id)

    def close(self):
        self._closing.set()  # the reader sees it at the next line: a keep-alive comes every second
        self._thread.join(5 * SLACK)


@pytest.fixture(params=["database", "redis"])
def relay_settings(request):
    channel = {"EVENT_RELAY_CHANNEL": f"importdash-test-relay-{uuid.uuid4().hex[:8]}"}
    if request.param == "redis":
        if not TEST_REDIS_URL:
            pytest.skip("the Redis relay needs IMPORTDASH_TEST_REDIS_URL")
        return channel | {"EVENT_RELAY": "redis", "REDIS_URL": TEST_REDIS_URL}
    return channel | {"EVENT_RELAY": "database"}


@pytest.fixture
def shared_settings(tmp_path, relay_settings):
    """The settings every process of the test shares (the test's database besides): one upload folder, one channel."""
    return {
        "UPLOAD_FOLDER": tmp_path / "uploads",
        "RATE_PER_SECOND": RATE_PER_SECOND,
        "RATE_BURST": 1,
        "RECORDS_PER_CALL": 10,
        "PROGRESS_INTERVAL_SECONDS": 0.1,
        "SSE_KEEPALIVE_SECONDS": 1,
    } | relay_settings


@pytest.fixture
def make_server(servers, shared_settings):
    yield lambda name, **settings: servers.start(name, **(shared_settings | settings))
    servers.stop(signal.SIGTERM)


@pytest.fixture
def contacts(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("name,email\n" + "".join(f"Person {n},person{n}@example.com\n" for n in range(ROWS)))
    return path


def open_stream(url, first):
    stream = EventStream(url)
    wait_for(lambda: stream.events or stream.ended.is_set(), timeout=5 * SLACK, what=f"the first event at {url}")
    assert stream.events and stream.events[0][0] == first, stream.events
    return stream


def test_a_browser_on_one_instance_sees_an_import_another_instance_runs(make_server, contacts):
    runs = make_server("a")
    # B never sweeps after its start, so the import is A's to run.
    watches = make_server("b", CLAIM_POLL_SECONDS=0)
    everything = open_stream(f"{watches.url}/api/events", "jobs.snapshot")
    one_job = None
    try:
        with contacts.open("rb") as handle:
            response = httpx.post(f"{runs.url}/api/import/batch", files={"file": (contacts.name, handle)}, timeout=10)
        assert response.status_code == 202, response.text
        job_id = response.json()["job"]["id"]
        one_job = EventStream(f"{watches.url}/api/import/{job_id}/events")

        deadline = IMPORT_SECONDS * 5 * SLACK
        finished = everything.wait_for("job.finished", job_id, timeout=deadline)
        assert everything.named("job.created", job_id)
        progress = everything.named("job.progress", job_id)
        assert any(0 < data["job"]["processed_count"] < ROWS for data in progress), progress
        assert finished[-1]["job"]["status"] == "completed"
        assert finished[-1]["job"]["success_count"] == ROWS

        # The job's own stream on B ends with job.finished, as it does on the instance that runs it.
        assert one_job.ended.wait(5 * SLACK)
        names = [name for name, _data in one_job.events]
        assert names[-1] == "job.finished", names
        assert "job.progress" in names
        assert one_job.events[-1][1]["job"] == finished[-1]["job"]
    finally:
        everything.close()
        if one_job is not None:
            one_job.close()
    assert runs.process.poll() is None and watches.process.poll() is None


def test_an_import_from_the_command_line_appears_live_on_a_server(
    app, make_server, shared_settings, contacts, tmp_path
):
    server = make_server("server")
    cli_env = server_env(tmp_path / "cli", app.config["SQLALCHEMY_DATABASE_URI"], **shared_settings)
    everything = open_stream(f"{server.url}/api/events", "jobs.snapshot")
    try:
        with open(tmp_path / "cli.log", "wb") as log:
            cli = subprocess.Popen(
                [str(FLASK), "--app", "importdash", "import", str(contacts)],
                cwd=PROJECT_ROOT,
                env=cli_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(
                lambda: any(name == "job.created" for name, _data in everything.events),
                timeout=IMPORT_SECONDS * 5 * SLACK,
                what="job.created of the command line's import",
            )
            job_id = next(data["job"]["id"] for name, data in everything.events if name == "job.created")
            # Seen while the command still runs: live, not read back after the fact.
            progress = everything.wait_for("job.progress", job_id, timeout=IMPORT_SECONDS * 5 * SLACK)
            assert cli.poll() is None or any(data["job"]["status"] == "processing" for data in progress)
            finished = everything.wait_for("job.finished", job_id, timeout=IMPORT_SECONDS * 5 * SLACK)
            assert cli.wait(timeout=10 * SLACK) == 0, (tmp_path / "cli.log").read_text()
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
        assert finished[-1]["job"]["status"] == "completed"
        assert finished[-1]["job"]["success_count"] == ROWS
    finally:
        everything.close()
    assert server.process.poll() is None
