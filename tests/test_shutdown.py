"""A restart does not wait for open pages: SIGTERM ends every progress stream at once (browsers reconnect by
themselves), so gunicorn exits in seconds instead of after its graceful timeout. Checked against the real server."""

import os
import signal
import time

import httpx
import pytest
from servers import Servers

pytestmark = [pytest.mark.unit, pytest.mark.faults]

GRACEFUL_TIMEOUT = 30  # gunicorn.conf.py's graceful_timeout: what a stop took while streams held the worker


def first_event(lines):
    """Read a stream up to the end of its first event; return that event's name."""
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line == "" and name is not None:
            return name
    raise AssertionError("the stream ended before its first event")


def test_sigterm_ends_open_streams_cleanly_and_the_server_exits_well_within_its_graceful_timeout(tmp_path):
    servers = Servers(tmp_path, f"sqlite:///{tmp_path / 'shutdown.db'}")
    # One call a second keeps the sample import running (about a minute) while its page is open.
    server = servers.start("server", THREADS=4, RATE_PER_SECOND=1, RATE_BURST=1)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            job = client.post("/api/import").json()["job"]
            with (
                client.stream("GET", f"/api/import/{job['id']}/events") as job_stream,
                client.stream("GET", "/api/events") as all_stream,
            ):
                job_lines, all_lines = job_stream.iter_lines(), all_stream.iter_lines()
                assert first_event(job_lines) == "job.progress"
                assert first_event(all_lines) == "jobs.snapshot"

                started = time.monotonic()
                os.kill(server.process.pid, signal.SIGTERM)  # to the master, as `kill <master pid>` does
                server.process.wait(timeout=GRACEFUL_TIMEOUT + 30)
                took = time.monotonic() - started

                # Each stream ended with the end of its chunked body: a connection cut mid-stream would raise here.
                rest = list(job_lines) + list(all_lines)
        print(f"gunicorn stopped {took:.2f} s after SIGTERM (graceful timeout {GRACEFUL_TIMEOUT} s)")
        assert server.process.returncode == 0, server.log()
        assert took < GRACEFUL_TIMEOUT / 3, f"gunicorn took {took:.1f} s to stop"
        assert "job.finished" not in "\n".join(rest)  # the import was stopped, not finished: it stays resumable
    finally:
        servers.stop()
