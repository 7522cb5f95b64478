"""Several real instances of the app on one database, watched from outside: what the scale-out test
(tests/test_scaleout.py) and benchmark (benchmarks/scaleout.py) start, kill and measure.

- `Cluster` starts gunicorn instances (server_env: each with its own port, upload folder and XDG_RUNTIME_DIR) and
  `flask import` processes beside them, uploads files, and kills one process group with SIGKILL;
- `EventRecorder` is one client of GET /api/events on an instance, keeping each event's name, job and
  receipt time;
- `LeaseWatcher` reads every job's status and lease owner from the database every few tenths of a second,
  so the test can tell who held a job when, and when another process took it over;
- the figures: the most calls in any window of a given length, percentiles, and test files with known valid rows.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from servers import Server, server_env, wait_for
from sqlalchemy import select

from importdash.models import ImportJob, JobStatus, Record, RecordStatus, shown_status

FLASK = Path(sys.executable).parent / "flask"
# Lines of a member's log a failure message leaves out: gunicorn's access log and `flask import`'s progress bar.
ACCESS_OR_PROGRESS = re.compile(r'"(GET|POST|DELETE) /| rows processed |^\s*\[[#.]+\]')
TERMINAL = {status.value for status in JobStatus if status.is_terminal}


def write_contacts(path, rows, tag):
    """Write a CSV of `rows` rows whose emails are unique to `tag`: every 25th invalid, every 20th a repeat of the
    row before it. Return the rows (numbered as the app numbers them, header = 1) that must be delivered."""
    lines, valid, seen = ["name,email,company"], set(), set()
    for n in range(rows):
        if n % 25 == 24:
            email = f"broken{tag}{n}"
        elif n % 20 == 19:
            email = f"{tag}.{n - 1}@example.com"
        else:
            email = f"{tag}.{n}@example.com"
        if "@" in email and email not in seen:
            valid.add(n + 2)
        seen.add(email)
        lines.append(f"Person {n},{email},Company {n % 7}")
    path.write_text("\n".join(lines) + "\n")
    return valid


def epoch(iso):
    """Seconds since the epoch of the API's timestamps (UTC, ending in Z), comparable with time.time()."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def most_calls_in_window(times, window):
    """The most calls whose times fall within any closed window of `window` seconds (times sorted)."""
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] > window:
            start += 1
        most = max(most, end - start + 1)
    return most


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def worker_pid(process_id):
    """The pid of a gunicorn master's (single) worker: the process that runs imports and names job leases."""
    path = Path(f"/proc/{process_id}/task/{process_id}/children")
    children = path.read_text().split() if path.exists() else []
    return int(children[0]) if children else None


class EventRecorder:
    """One client of an instance's /api/events stream, read on a thread of its own until close()."""

    def __init__(self, url, label):
        self.url = url
        self.label = label
        self.events = []  # (name, job id, time.time() at receipt)
        self.connected_at = None  # when the stream's first event (jobs.snapshot) arrived
        self.ended_at = None  # when the stream broke or was closed
        self.error = None
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"sse-{label}", daemon=True)

    def start(self, timeout=30):
        self._thread.start()
        if not self._connected.wait(timeout):
            raise AssertionError(f"{self.label}'s event stream did not start within {timeout} s: {self.error}")

    def close(self, wait=True):
        self._closing.set()
        if wait:
            self._thread.join(timeout=10)

    def first(self, name, job_id):
        """When the stream first received this event for this job, or None."""
        return next((at for event, job, at in list(self.events) if event == name and job == job_id), None)

    def _read(self):
        # The server sends a keep-alive every SSE_KEEPALIVE_SECONDS (1 s here), so the loop sees close() within
        # about a second; a stream silent for the read timeout belongs to a server that stopped.
        try:
            with httpx.stream("GET", f"{self.url}/api/events", timeout=httpx.Timeout(10)) as response:
                response.raise_for_status()
                name, data = None, []
                for line in response.iter_lines():
                    if self._closing.is_set():
                        return
                    if line:
                        field_name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if field_name == "event":
                            name = value
                        elif field_name == "data":
                            data.append(value)
                        continue
                    if name is not None and data:
                        self._received(name, json.loads("\n".join(data)))
                    name, data = None, []
                self.error = "the server ended the stream"
        except Exception as error:  # a killed instance breaks its streams: that ends the recording
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.ended_at = time.time()
            self._connected.set()

    def _received(self, name, payload):
        now = time.time()
        if name == "jobs.snapshot":
            self.connected_at = self.connected_at or now
            self._connected.set()
            return
        job = payload.get("job") if isinstance(payload, dict) else None
        self.events.append((name, job.get("id") if isinstance(job, dict) else None, now))


@dataclass
class Sample:
    at: float  # time.monotonic()
    status: str
    owner: str | None


class LeaseWatcher:
    """Every job's status and lease owner, read from the database every `interval` on a thread of its own."""

    def __init__(self, engine, interval=0.1):
        self.engine = engine
        self.interval = interval
        self.samples = defaultdict(list)  # job id -> [Sample], one per change
        self.error = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-watcher", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stopping.set()
        self._thread.join(timeout=10)

    def latest(self):
        """{job id: its latest Sample}."""
        return {job_id: samples[-1] for job_id, samples in list(self.samples.items()) if samples}

    def read_now(self):
        """Read once more at once (after a kill, say) and return latest()."""
        self._read()
        return self.latest()

    def _loop(self):
        while not self._stopping.wait(self.interval):
            try:
                self._read()
            except Exception as error:  # a busy database: the next read tries again
                self.error = f"{type(error).__name__}: {error}"

    def _read(self):
        with self.engine.connect() as connection:
            rows = connection.execute(select(ImportJob.id, ImportJob.status, ImportJob.lease_owner)).all()
        now = time.monotonic()
        for job_id, status, owner in rows:
            samples = self.samples[job_id]
            if not samples or (samples[-1].status, samples[-1].owner) != (status, owner):
                samples.append(Sample(now, status, owner))


def in_flight_keys(engine, job_ids):
    """The idempotency keys of these jobs' records marked in flight (sent, or about to be, and not yet settled)."""
    if not job_ids:
        return set()
    query = (
        select(ImportJob.key, Record.row)
        .join(Record, Record.job_id == ImportJob.id)
        .where(
            ImportJob.id.in_(job_ids),
            shown_status(Record, ImportJob.settled_through, ImportJob.sent_through) == RecordStatus.IN_FLIGHT.value,
        )
    )
    with engine.connect() as connection:
        return {f"{key}-{row}" for key, row in connection.execute(query)}


def job_keys(engine):
    """{job id: the job's key}, the prefix of its records' idempotency keys."""
    with engine.connect() as connection:
        return dict(connection.execute(select(ImportJob.id, ImportJob.key)).all())


@dataclass
class Member:
    """One process of the cluster: a gunicorn instance, or a `flask import` beside them."""

    label: str
    folder: Path
    server: Server | None = None
    process: subprocess.Popen | None = None  # a `flask import`
    killed_at: float | None = None  # time.monotonic()
    pid: int | None = None  # the process whose pid names its job leases

    @property
    def url(self):
        return self.server.url if self.server else None

    @property
    def group(self):
        return (self.server.process if self.server else self.process).pid

    def alive(self):
        process = self.server.process if self.server else self.process
        return process is not None and process.poll() is None


@dataclass
class Cluster:
    """Instances of the app on one database, with the settings every one of them gets."""

    folder: Path
    database_url: str
    settings: dict
    members: list = field(default_factory=list)

    def environment(self, member_folder):
        """A member's environment (server_env): its own port, upload folder and runtime dir, the cluster's settings."""
        return server_env(member_folder, self.database_url, **self.settings)

    def start_instances(self, count):
        """Start `count` gunicorn instances at once and wait until each answers /health."""
        members = []
        for _ in range(count):
            label = f"instance {len(self.members)}"
            folder = self.folder / label.replace(" ", "-")
            (folder / "uploads").mkdir(parents=True)
            member = Member(label, folder, server=Server(self.environment(folder), folder / "gunicorn.log"))
            self.members.append(member)
            members.append(member)
        with ThreadPoolExecutor(len(members)) as pool:
            list(pool.map(lambda member: member.server.start(), members))
        for member in members:
            wait_for(lambda m=member: worker_pid(m.server.process.pid), timeout=10, what=f"{member.label}'s worker")
            member.pid = worker_pid(member.server.process.pid)
        return members

    def start_cli_import(self, path, mode="batch"):
        """Start `flask --app importdash import PATH` in a process group of its own, as a person at a shell would."""
        label = f"flask import {len(self.members)}"
        folder = self.folder / label.replace(" ", "-")
        (folder / "uploads").mkdir(parents=True)
        with open(folder / "cli.log", "ab") as log:
            process = subprocess.Popen(
                [str(FLASK), "--app", "importdash", "import", str(path), "--mode", mode],
                cwd=folder,
                env=self.environment(folder),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        member = Member(label, folder, process=process, pid=process.pid)
        self.members.append(member)
        return member

    def upload(self, member, path, mode):
        """Upload a file to an instance; return the new job's id."""
        with path.open("rb") as handle:
            response = httpx.post(f"{member.url}/api/import/{mode}", files={"file": (path.name, handle)}, timeout=30)
        assert response.status_code == 202, f"{member.label} refused the upload: {response.status_code} {response.text}"
        return response.json()["job"]["id"]

    def kill(self, member, remove_folder=True):
        """SIGKILL the member's whole process group (gunicorn's master and worker, or the CLI), then delete its
        upload folder: a machine that is gone takes its local files with it."""
        os.killpg(member.group, signal.SIGKILL)
        member.killed_at = time.monotonic()
        (member.server.process if member.server else member.process).wait(timeout=30)
        if remove_folder:
            shutil.rmtree(member.folder / "uploads", ignore_errors=True)

    def member_of(self, owner):
        """The member whose process a lease owner names (hostname:pid:random), or None."""
        if owner is None:
            return None
        return next((member for member in self.members if f":{member.pid}:" in owner), None)

    def survivor(self):
        return next(member for member in self.members if member.server and member.alive())

    def jobs(self):
        """Every job as a live instance's API shows it, by id."""
        response = httpx.get(f"{self.survivor().url}/api/import?limit=1000", timeout=30)
        response.raise_for_status()
        return {job["id"]: job for job in response.json()["jobs"]}

    def stop(self):
        """SIGTERM the instances still running (in parallel) and give a `flask import` still running SIGKILL."""

        def stop(member):
            if not member.alive():
                return
            if member.server is None:
                os.killpg(member.group, signal.SIGKILL)
                member.process.wait(timeout=30)
                return
            try:
                member.server.signal(signal.SIGTERM, timeout=40)
            except subprocess.TimeoutExpired:
                member.server.signal(signal.SIGKILL)

        with ThreadPoolExecutor(max(1, len(self.members))) as pool:
            list(pool.map(stop, self.members))

    def logs(self):
        """The tail of every member's log without its access log and progress bars, for a failure message."""
        parts = []
        for member in self.members:
            log = member.folder / ("gunicorn.log" if member.server else "cli.log")
            with contextlib.suppress(OSError):
                lines = log.read_text(errors="replace").replace("\r", "\n").splitlines()
                kept = [line for line in lines if line.strip() and not ACCESS_OR_PROGRESS.search(line)]
                parts.append(f"--- {member.label}:\n" + "\n".join(kept)[-1500:])
        return "\n".join(parts)
