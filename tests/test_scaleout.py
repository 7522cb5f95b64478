"""End to end: several real instances of the app on one database, one of them killed mid-import, behave as one.

Each variant starts real processes on the test's database: three gunicorn instances (PostgreSQL, with Redis or
without), or one gunicorn instance on a SQLite file with `flask import` processes beside it. Twelve batch
imports and one stream import are spread over them, every instance's /api/events is followed by a client of
the test's own, and a real HTTP downstream records each call's time and record keys. Mid-way one process
group gets SIGKILL and its upload folder is deleted. Then:

- every import completes, and the downstream got exactly the valid rows' keys: none lost, none unknown, and a
  key twice only if it was in flight in the killed process;
- in every window of 1, 2, 5, 10 and 30 s the downstream saw at most burst + rate x window calls, all
  processes together (the rate is low, so the limit binds and one process's own limit would not do);
- every live stream got each import's job.created and job.finished within EVENT_LIMIT of its commit,
  wherever the import was created or finished;
- the killed process's imports were taken over within TAKEOVER_LIMIT.

Every failed check is reported together, with the figures, which are also kept in test-artifacts/scaleout.txt.
"""

import math
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from cluster import (
    TERMINAL,
    Cluster,
    EventRecorder,
    LeaseWatcher,
    epoch,
    in_flight_keys,
    job_keys,
    most_calls_in_window,
    percentile,
    write_contacts,
)
from servers import PROJECT_ROOT, wait_for
from sqlalchemy import create_engine

# Real gunicorn and flask processes are started and one is killed; they run on the test's database.
pytestmark = [pytest.mark.scale, pytest.mark.faults]

SLACK = 3  # shared, noisy machines: time limits are asserted with this factor; the figures printed are the real ones
FIGURES = PROJECT_ROOT / "test-artifacts" / "scaleout.txt"
TEST_REDIS_URL = os.environ.get("IMPORTDASH_TEST_REDIS_URL")

INSTANCES = 3
BATCH_IMPORTS, STREAM_IMPORTS = 12, 1
ROWS = 100  # per file: 92 valid rows (every 25th invalid, every 20th a repeat), so 23 calls of 4 records
RECORDS_PER_CALL = 4
# About 300 calls at 10 calls/s: the imports deliver for about 30 s, so the limit binds all along and the
# kill lands in the middle. Nothing else is slowed down (no simulated latency, a downstream that answers at once).
RATE, BURST = 10, 5
WINDOWS = (1, 2, 5, 10, 30)
# A call reaches the downstream a little after its token was granted (an HTTP request from one of many threads
# on a busy machine), so a window may hold the calls of a slightly longer one: the bound allows for this much
# (3 calls at 10/s; three processes each keeping a limit of their own would make about three times the calls).
ARRIVAL_JITTER_SECONDS = 0.1 * SLACK
KILL_AFTER_SECONDS = 10  # the kill comes this long after the first import starts, or mid-way if that is sooner
LEASE_SECONDS = 3
EVENT_LIMIT = 1.5 * SLACK  # seconds from an import's commit to its event on every instance's stream
TAKEOVER_LIMIT = (LEASE_SECONDS + 5) * SLACK  # seconds from the kill until another process runs its imports
END_TIMEOUT = 150  # seconds for every import to end after the kill

SETTINGS = {
    "WORKERS": 1,
    "THREADS": 4,  # one stream and a few requests per instance; 2 cores serve every instance
    "DOWNSTREAM": "webhook",
    "RATE_PER_SECOND": RATE,
    "RATE_BURST": BURST,
    "RECORDS_PER_CALL": RECORDS_PER_CALL,
    "DELIVERY_WINDOW": 20,  # what a killed process leaves in flight, and so what may go out twice
    "CHUNK_SIZE": 20,  # a stream chunk is stored in flight whole: the same bound as a window
    # Room for every import at once: a takeover never waits for a runner to come free, so the time it takes is the
    # lease's and the claim's.
    "MAX_JOBS": 16,
    "LEASE_SECONDS": LEASE_SECONDS,
    "HEARTBEAT_SECONDS": 1,
    "CLAIM_POLL_SECONDS": 0.5,
    "EVENT_RELAY_POLL_SECONDS": 0.2,
    "PROGRESS_INTERVAL_SECONDS": 0.5,
    "SSE_KEEPALIVE_SECONDS": 1,  # the test's stream clients see their close() within a second
    # Names of this test's own on a Redis (and in a PostgreSQL database) other test runs may share at the same time.
    "RATE_LIMIT_KEY_PREFIX": "importdash-test-scale",
    "EVENT_RELAY_CHANNEL": "importdash-test-scale-events",
}


@dataclass(frozen=True)
class Variant:
    name: str
    dialect: str
    redis: bool
    instances: int  # gunicorn instances
    cli_imports: int  # batch imports run by `flask import` processes beside them

    @property
    def settings(self):
        extra = {}
        if self.instances > 1:
            extra["UPLOAD_STORAGE"] = "database"  # uploads every instance can read, whichever received them
        if self.redis:
            extra["REDIS_URL"] = TEST_REDIS_URL
        return SETTINGS | extra


VARIANTS = [
    Variant("postgresql+redis", "postgresql", redis=True, instances=INSTANCES, cli_imports=0),
    Variant("postgresql", "postgresql", redis=False, instances=INSTANCES, cli_imports=0),
    Variant("sqlite+cli", "sqlite", redis=False, instances=1, cli_imports=3),
]


def redis_answers(url):
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def engine(app):
    """An engine of the test's own on the test's database, for the lease watcher's thread."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    options = {"connect_args": {"check_same_thread": False}} if url.startswith("sqlite") else {}
    engine = create_engine(url, **options)
    yield engine
    engine.dispose()


@pytest.fixture
def cluster(app, tmp_path, downstream_server):
    cluster = Cluster(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"], {"WEBHOOK_URL": downstream_server.url})
    yield cluster
    cluster.stop()


def skip_unless_runs_here(variant, app):
    dialect = "postgresql" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") else "sqlite"
    if variant.dialect == "postgresql" and dialect != "postgresql":
        pytest.skip("runs in the PostgreSQL pass: set IMPORTDASH_TEST_DATABASE_URL=postgresql://...")
    if variant.dialect == "sqlite" and dialect != "sqlite":
        pytest.skip("runs in the SQLite pass (IMPORTDASH_TEST_DATABASE_URL unset): a server and the CLI on one file")
    if variant.redis:
        if not TEST_REDIS_URL:
            pytest.skip("needs Redis: set IMPORTDASH_TEST_REDIS_URL=redis://127.0.0.1:6379/0")
        if not redis_answers(TEST_REDIS_URL):
            pytest.fail(f"IMPORTDASH_TEST_REDIS_URL is set but Redis does not answer PING at {TEST_REDIS_URL}")


def record(line):
    print(line)
    FIGURES.parent.mkdir(exist_ok=True)
    with FIGURES.open("a") as figures:
        figures.write(line + "\n")


# A few minutes for the three variants: each runs about a minute, more on a loaded machine.
@pytest.mark.timeout(300)
@pytest.mark.parametrize("variant", VARIANTS, ids=[variant.name for variant in VARIANTS])
def test_instances_share_one_rate_limit_relay_events_and_take_over_a_killed_ones_imports(
    app, engine, cluster, downstream_server, tmp_path, variant
):
    skip_unless_runs_here(variant, app)
    began = time.monotonic()
    cluster.settings |= variant.settings
    files = tmp_path / "files"
    files.mkdir()
    plan = [("batch", f"{variant.name}-batch-{n:02d}.csv") for n in range(BATCH_IMPORTS)]
    plan += [("stream", f"{variant.name}-stream-{n:02d}.csv") for n in range(STREAM_IMPORTS)]
    valid_rows = {name: write_contacts(files / name, ROWS, tag=f"j{n}") for n, (_, name) in enumerate(plan)}

    instances = cluster.start_instances(variant.instances)
    recorders = {member.label: EventRecorder(member.url, member.label) for member in instances}
    for recorder in recorders.values():
        recorder.start()
    watcher = LeaseWatcher(engine)
    watcher.start()

    # The imports: the first ones by `flask import` beside the server, the rest uploaded round-robin; the stream
    # import goes to the instance that is killed (the middle one), or to the only instance.
    started = time.monotonic()
    origin = {}  # file name -> the member that created its import
    clis = [cluster.start_cli_import(files / name) for _, name in plan[: variant.cli_imports]]
    origin |= {name: cli for (_, name), cli in zip(plan, clis, strict=False)}
    victim = instances[len(instances) // 2] if len(instances) > 1 else None
    uploaded = {}
    for n, (mode, name) in enumerate(plan[variant.cli_imports :]):
        member = victim if mode == "stream" and victim else instances[n % len(instances)]
        uploaded[cluster.upload(member, files / name, mode)] = name
        origin[name] = member

    # The kill: at KILL_AFTER_SECONDS or half-way through the calls, once the process to kill holds an import. A
    # `flask import` runs one import, which may be over before then: it is killed once its calls have begun.
    expected_calls = sum(math.ceil(len(rows) / RECORDS_PER_CALL) for rows in valid_rows.values())
    candidates = [victim] if victim else clis
    keys = {}

    def delivering(job_id):
        if job_id not in keys:
            keys.update(job_keys(engine))
        prefix = f"{keys.get(job_id)}-"
        return any(key.startswith(prefix) for key in downstream_server.accepted_keys())

    def holder(cli_delivering=False):
        for job_id, sample in watcher.latest().items():
            member = cluster.member_of(sample.owner)
            if sample.status in TERMINAL or member not in candidates or not member.alive():
                continue
            if not cli_delivering or (member.server is None and delivering(job_id)):
                return member
        return None

    def time_to_kill():
        due = time.monotonic() - started >= KILL_AFTER_SECONDS or len(downstream_server.calls) >= expected_calls / 2
        return holder() is not None if due else holder(cli_delivering=True) is not None

    failures = []
    try:
        wait_for(time_to_kill, timeout=60, what="a process to kill holding an import")
        victim = holder(cli_delivering=True) or holder() or victim or clis[0]
    except AssertionError:
        victim = victim or clis[0]
        owners = sorted({str(sample.owner) for sample in watcher.latest().values()})
        failures.append(
            f"{victim.label} (pid {victim.pid}) held no running import to kill: the kill came too late, or lease "
            f"owners no longer name the process (hostname:pid:random); owners seen: {owners}"
        )
    cluster.kill(victim)
    killed_after = victim.killed_at - started
    at_kill = watcher.read_now()
    owned = {job for job, sample in at_kill.items() if cluster.member_of(sample.owner) is victim}
    queued = {
        job
        for job, sample in at_kill.items()
        if sample.owner is None and sample.status not in TERMINAL and origin.get(uploaded.get(job)) is victim
    }
    in_flight = in_flight_keys(engine, owned)

    ended = False
    try:
        wait_for(
            lambda: len(watcher.latest()) == len(plan) and all(s.status in TERMINAL for s in watcher.latest().values()),
            timeout=END_TIMEOUT,
            what="every import to end",
        )
        ended = True
    except AssertionError:
        unfinished = sorted(job for job, sample in watcher.latest().items() if sample.status not in TERMINAL)
        failures.append(f"imports {unfinished} had not ended {END_TIMEOUT} s after the kill")
    survivors = [recorder for label, recorder in recorders.items() if label != victim.label]
    jobs = cluster.jobs()

    def every_finish_seen():
        return all(recorder.first("job.finished", job) for recorder in survivors for job in jobs)

    if ended:  # the last events have EVENT_LIMIT to arrive
        try:
            wait_for(every_finish_seen, timeout=EVENT_LIMIT, what="job.finished on every stream")
        except AssertionError:
            pass  # reported by the event check below
    for recorder in recorders.values():
        recorder.close(wait=False)
    for recorder in recorders.values():
        recorder.close()
    watcher.stop()
    cli_exits = [cli.process.poll() for cli in clis if cli is not victim]
    cluster.stop()

    # Which import came from which file, and who created and finished each.
    by_name = {job["source"]: job for job in jobs.values()}
    missing_jobs = sorted(set(valid_rows) - set(by_name))
    if missing_jobs:
        failures.append(f"no import was created for {missing_jobs}")
    names = {job_id: job["source"] for job_id, job in jobs.items()}
    created_by = {job_id: origin[name] for job_id, name in names.items() if name in origin}
    finished_by = {}
    for job_id, samples in watcher.samples.items():
        owners = [sample.owner for sample in samples if sample.owner is not None]
        finished_by[job_id] = cluster.member_of(owners[-1]) if owners else None

    # 1. Every import completes with its counts.
    for job_id, job in sorted(jobs.items()):
        expected = len(valid_rows.get(job["source"], ()))
        if job["status"] != "completed":
            failures.append(
                f"import #{job_id} ({job['source']}, from {getattr(created_by.get(job_id), 'label', '?')}) ended "
                f"{job['status']}: "
                f"{job['error']}"
            )
        elif (job["processed_count"], job["success_count"]) != (ROWS, expected):
            failures.append(
                f"import #{job_id} completed with {job['processed_count']} rows processed and "
                f"{job['success_count']} delivered; expected {ROWS} and {expected}"
            )

    # 2. The downstream got every valid row's key, none it should not have, and repeats only of what was in flight.
    keys = job_keys(engine)
    expected_keys = {
        f"{keys[job_id]}-{row}" for job_id, name in names.items() for row in valid_rows.get(name, ()) if job_id in keys
    }
    received = Counter(downstream_server.accepted_keys())
    lost, unknown = expected_keys - set(received), set(received) - expected_keys
    repeated = {key for key, count in received.items() if count > 1}
    repeated_not_in_flight = repeated - in_flight
    if lost:
        failures.append(f"{len(lost)} of {len(expected_keys)} valid records never reached the downstream")
    if unknown:
        failures.append(f"the downstream got {len(unknown)} keys of no valid record, e.g. {sorted(unknown)[:3]}")
    if repeated_not_in_flight:
        failures.append(
            f"{len(repeated_not_in_flight)} records went out more than once without being in flight in the killed "
            f"process, e.g. {sorted(repeated_not_in_flight)[:3]}"
        )
    duplicates = sum(received.values()) - len(received)

    # 3. One rate limit for all: no window holds more calls than the bucket allows for it.
    times = sorted(call.received_at for call in downstream_server.calls)
    windows = []
    for window in WINDOWS:
        most = most_calls_in_window(times, window)
        bound = math.floor(BURST + RATE * (window + ARRIVAL_JITTER_SECONDS))
        windows.append(f"{window} s {most}/{bound}")
        if most > bound:
            failures.append(
                f"the rate limit was exceeded: {most} calls within {window} s, where burst + rate x window allows "
                f"{BURST + RATE * window:g} (+{ARRIVAL_JITTER_SECONDS:g} s of arrival jitter: {bound})"
            )
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    aggregate = (len(times) - 1) / span if span else 0.0

    # 4. Each import's job.created and job.finished reach every stream that was open, within EVENT_LIMIT.
    latencies, missing, late, due = [], [], [], 0
    for job_id, job in sorted(jobs.items()):
        for name, stamp, origin_member in (
            ("job.created", job["created_at"], created_by.get(job_id)),
            ("job.finished", job["completed_at"], finished_by.get(job_id)),
        ):
            if stamp is None:
                continue  # an import that never ended is reported above
            committed = epoch(stamp)
            own = recorders.get(origin_member.label) if origin_member else None
            seen_at_origin = own.first(name, job_id) if own else None
            if seen_at_origin is not None and not -0.5 < seen_at_origin - committed < 600:
                committed = seen_at_origin  # the API's clock and this one disagree: trust the origin's stream
            for label, recorder in recorders.items():
                got = recorder.first(name, job_id)
                opened_before = recorder.connected_at is not None and recorder.connected_at < committed
                open_long_enough = recorder.ended_at is None or recorder.ended_at > committed + EVENT_LIMIT
                if not opened_before or (got is None and not open_long_enough):
                    continue  # a stream opened later, or one the kill broke before the event was due
                due += 1
                where = f"{label}'s stream, import #{job_id} from {origin_member.label if origin_member else '?'}"
                if got is None:
                    missing.append(f"{name} never reached {where}")
                    continue
                if recorder is not own:
                    latencies.append(got - committed)
                if got - committed > EVENT_LIMIT:
                    late.append(f"{name} reached {where} {got - committed:.1f} s after its commit")
    if missing:
        failures.append(f"{len(missing)} of {due} events never reached a stream that was open, e.g. {missing[:3]}")
    if late:
        failures.append(f"{len(late)} of {due} events came later than {EVENT_LIMIT:g} s, e.g. {late[:3]}")

    # 5. The killed process's imports are taken over within TAKEOVER_LIMIT.
    takeovers = {}
    for job_id in sorted(owned | queued):
        after = [s for s in watcher.samples[job_id] if s.at > victim.killed_at]
        took_over = next(
            (
                s
                for s in after
                if s.status in TERMINAL or (s.owner is not None and cluster.member_of(s.owner) is not victim)
            ),
            None,
        )
        if took_over is None:
            failures.append(f"import #{job_id} of the killed {victim.label} was never taken over")
        else:
            takeovers[job_id] = took_over.at - victim.killed_at
    if not owned:
        failures.append(f"the killed {victim.label} held no import's lease: takeover was not tested")
    slowest = max(takeovers.values(), default=float("nan"))
    if slowest > TAKEOVER_LIMIT:
        failures.append(f"an import of the killed {victim.label} was taken over {slowest:.1f} s after the kill")

    record(
        f"{variant.name}: {len(plan)} imports on {variant.instances} instance(s)"
        f"{f' and {variant.cli_imports} flask import' if variant.cli_imports else ''}, {victim.label} killed at "
        f"{killed_after:.1f} s holding {len(owned)} leased and {len(queued)} queued imports; "
        f"calls {len(times)} at {aggregate:.1f}/s (rate {RATE}/s, burst {BURST}); most calls per window "
        f"(bound): {', '.join(windows)}; events {due - len(missing)}/{due} received, {len(late)} late, cross-process "
        f"latency p50 {1000 * percentile(latencies, 0.5):.0f} ms p99 {1000 * percentile(latencies, 0.99):.0f} ms; "
        f"takeover {slowest:.1f} s (limit {TAKEOVER_LIMIT:g}); {duplicates} records delivered twice "
        f"({len(in_flight)} in flight at the kill); {len(lost)} lost, {len(unknown)} unknown; "
        f"flask import exits {cli_exits}; {time.monotonic() - began:.0f} s"
    )
    if watcher.error:
        print(f"(the lease watcher's last read error: {watcher.error})")
    assert not failures, f"{variant.name}:\n- " + "\n- ".join(failures) + "\n" + cluster.logs()
