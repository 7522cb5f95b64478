"""End to end: the real server (gunicorn with the shipped config) killed mid-delivery, then started again."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from scripted_downstream import Reply

from importdash.extensions import db
from importdash.models import ImportJob

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
ROWS = 800

# Real gunicorn processes are killed and signalled; they run on the test's database (make_server), so db as well.
pytestmark = pytest.mark.faults


class Server:
    """gunicorn -c gunicorn.conf.py wsgi:app in its own process group, so the whole group can be killed."""

    def __init__(self, env, log_path):
        self.env = env
        self.log_path = log_path
        self.url = f"http://{env['IMPORTDASH_BIND']}"
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(lambda: self._healthy(), timeout=30, what="the server to start", server=self)

    # gunicorn may take its whole graceful_timeout (30 s) to stop on SIGTERM; leave room beyond it.
    def signal(self, signum, timeout=60):
        os.killpg(self.process.pid, signum)
        self.process.wait(timeout=timeout)

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def _healthy(self):
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False


def wait_for(condition, *, timeout, what, server=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{server.log()}" if server else ""))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
def make_server(app, tmp_path, downstream_server):
    """Start the real server on the test's database, with the scripted downstream as its webhook."""
    servers = []

    def make(workers):
        env = os.environ | {
            "IMPORTDASH_BIND": f"127.0.0.1:{free_port()}",
            "IMPORTDASH_WORKERS": str(workers),
            "IMPORTDASH_THREADS": "8",
            "IMPORTDASH_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "IMPORTDASH_UPLOAD_FOLDER": str(tmp_path / "uploads"),
            "IMPORTDASH_DOWNSTREAM": "webhook",
            "IMPORTDASH_WEBHOOK_URL": downstream_server.url,
            "IMPORTDASH_RATE_PER_SECOND": "0",
            "IMPORTDASH_RECORDS_PER_CALL": "10",
            "IMPORTDASH_DELIVERY_WINDOW": "100",
            "IMPORTDASH_CHUNK_SIZE": "100",  # a stream chunk is stored in flight whole: the same bound as a window
            "IMPORTDASH_LEASE_SECONDS": "1.5",
            "IMPORTDASH_HEARTBEAT_SECONDS": "0.5",
            "IMPORTDASH_LEASE_SWEEP_SECONDS": "0.5",
            "IMPORTDASH_PROGRESS_INTERVAL_SECONDS": "0.2",
            "XDG_RUNTIME_DIR": str(tmp_path),  # gunicorn's control socket, apart from any other gunicorn's
        }
        server = Server(env, tmp_path / "gunicorn.log")
        servers.append(server)
        return server

    yield make
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            server.signal(signal.SIGKILL)


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
