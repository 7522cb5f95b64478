"""Scale-out: three instances on one database against one, for the rate limit, live events and takeover.

For 1 and then 3 instances (the shipped gunicorn config, one worker each) on one database, with a real HTTP
downstream that records every call: IMPORTS uploads (the last one a stream import) spread over the instances,
and a client on every instance's /api/events. Once half the calls are made, one instance gets SIGKILL; with one
instance it is started again at once (the reference: a restart), with three the others take its imports over.
For each the script prints

  rate      the calls per second of every process together, from the first call to the kill, as a share of
            the allowed rate (100 %: the limit is used, never exceeded), and the worst window of any length in
            the whole run against burst + rate x window (<= 0: never over the limit);
  events    the latency from each import's commit (its created_at and completed_at) to its job.created and
            job.finished on the streams of the instances that did not commit it: p50 and p99, and how many
            never came (with one instance: on its own stream, the reference);
  takeover  seconds from the kill until another process (with one instance: the restarted one) holds each of
            the killed one's imports, the slowest, against LEASE_SECONDS;

and, last, three instances' figures as multiples of one instance's.

    .venv/bin/python benchmarks/scaleout.py [--imports 13] [--rows 200] [--rate 20] [--database-url URL]
        [--redis-url URL] [--smoke]

--database-url runs both on that PostgreSQL database (its tables are dropped!), else each on a fresh SQLite
file; --redis-url gives the instances IMPORTDASH_REDIS_URL. --smoke runs 5 imports of 100 rows at 40 calls/s,
in about half a minute, and fails only if an import does not complete.
"""

import argparse
import math
import re
import sys
import time
from collections import Counter

import common

sys.path.insert(0, str(common.ROOT / "tests"))  # the scale-out test's harness: real instances, watched from outside

from cluster import (  # noqa: E402
    TERMINAL,
    Cluster,
    EventRecorder,
    LeaseWatcher,
    epoch,
    job_keys,
    percentile,
    write_contacts,
)
from scripted_downstream import ScriptedDownstream  # noqa: E402
from servers import wait_for  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

LEASE_SECONDS = 3
BURST = 5
RECORDS_PER_CALL = 4
SETTINGS = {
    "WORKERS": 1,
    "THREADS": 4,
    "DOWNSTREAM": "webhook",
    "RATE_BURST": BURST,
    "RECORDS_PER_CALL": RECORDS_PER_CALL,
    "DELIVERY_WINDOW": 20,
    "CHUNK_SIZE": 20,
    "MAX_JOBS": 16,  # every import runs at once, so a takeover never waits for a free runner
    "LEASE_SECONDS": LEASE_SECONDS,
    "HEARTBEAT_SECONDS": 1,
    "CLAIM_POLL_SECONDS": 0.5,
    "EVENT_RELAY_POLL_SECONDS": 0.2,
    "PROGRESS_INTERVAL_SECONDS": 0.5,
    "SSE_KEEPALIVE_SECONDS": 1,
    # Names of the benchmark's own on a Redis (and in a PostgreSQL database) other runs may share at the same time.
    "RATE_LIMIT_KEY_PREFIX": "importdash-bench-scaleout",
    "EVENT_RELAY_CHANNEL": "importdash-bench-scaleout-events",
}


def engine_for(url):
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    return create_engine(url, **({"connect_args": {"check_same_thread": False}} if url.startswith("sqlite") else {}))


def worst_window(times, rate, burst):
    """The largest (calls in a window) - (burst + rate x window) over every window of the sorted call times."""
    best_start, worst = float("-inf"), float("-inf")
    for j, moment in enumerate(times):
        best_start = max(best_start, rate * moment - j)
        worst = max(worst, (j + 1 - rate * moment) + best_start - burst)
    return worst


def run(instances, args):
    """One round with `instances` instances; return its figures."""
    workdir = common.scratch_dir(f"scaleout-{instances}-")
    url = args.database_url or common.sqlite_url(workdir)
    common.reset_database(url)  # the schema first: instances starting at once would each try to build it
    downstream = ScriptedDownstream()
    settings = SETTINGS | {"WEBHOOK_URL": downstream.url, "RATE_PER_SECOND": args.rate}
    if instances > 1:
        settings["UPLOAD_STORAGE"] = "database"
    if args.redis_url:
        settings["REDIS_URL"] = args.redis_url
    cluster = Cluster(workdir, url, settings)
    engine = engine_for(url)
    recorders, watcher = [], LeaseWatcher(engine)
    try:
        members = cluster.start_instances(instances)
        recorders = [EventRecorder(member.url, member.label) for member in members]
        for recorder in recorders:
            recorder.start()
        watcher.start()
        files = workdir / "files"
        files.mkdir()
        valid, origin = {}, {}
        for n in range(args.imports):
            mode = "stream" if n == args.imports - 1 else "batch"
            path = files / f"{mode}-{n:02d}.csv"
            rows = write_contacts(path, args.rows, tag=f"j{n}")
            member = members[n % instances]
            job_id = cluster.upload(member, path, mode)
            valid[job_id], origin[job_id] = rows, member
        expected_calls = sum(math.ceil(len(rows) / RECORDS_PER_CALL) for rows in valid.values())

        victim = members[len(members) // 2]
        wait_for(lambda: len(downstream.calls) >= expected_calls / 2, timeout=600, what="half the calls")
        cluster.kill(victim, remove_folder=False)
        held = {
            job_id: sample.owner
            for job_id, sample in watcher.read_now().items()
            if sample.status not in TERMINAL and cluster.member_of(sample.owner) is victim
        }
        if instances == 1:  # the reference: the same machine starts its server again
            victim.server.start()
            victim.pid = None
            recorder = EventRecorder(victim.url, f"{victim.label} restarted")
            recorder.start()
            recorders.append(recorder)

        def ended():
            latest = watcher.latest()
            return all(job_id in latest and latest[job_id].status in TERMINAL for job_id in valid)

        wait_for(ended, timeout=600, what="every import to end")
        jobs = cluster.jobs()
        time.sleep(1)  # the last events' time to arrive
    finally:
        for recorder in recorders:
            recorder.close(wait=False)
        for recorder in recorders:
            recorder.close()
        watcher.stop()
        cluster.stop()
        downstream.close()

    failed = {job_id: job["status"] for job_id, job in jobs.items() if job["status"] != "completed"}
    if failed:
        raise RuntimeError(f"imports that did not complete: {failed}; see {workdir}")
    keys = job_keys(engine)
    engine.dispose()
    received = Counter(downstream.accepted_keys())
    expected = {f"{keys[job_id]}-{row}" for job_id, rows in valid.items() for row in rows}
    if set(received) != expected:
        raise RuntimeError(f"{len(expected - set(received))} records lost, {len(set(received) - expected)} unknown")

    times = sorted(call.received_at for call in downstream.calls)
    before_kill = [moment for moment in times if moment < victim.killed_at]
    finished_by = {}
    for job_id, samples in watcher.samples.items():
        owners = [sample.owner for sample in samples if sample.owner is not None]
        finished_by[job_id] = cluster.member_of(owners[-1]) if owners else None
    latencies, due, missing = [], 0, 0
    for job_id, job in jobs.items():
        for name, stamp, committer in (
            ("job.created", job["created_at"], origin[job_id]),
            ("job.finished", job["completed_at"], finished_by.get(job_id)),
        ):
            committed = epoch(stamp)
            for recorder in recorders:
                own = committer is not None and recorder.url == committer.url
                if instances > 1 and own:
                    continue  # with several instances only the other instances' streams count
                got = recorder.first(name, job_id)
                opened = recorder.connected_at is not None and recorder.connected_at < committed
                alive = recorder.ended_at is None or recorder.ended_at > committed + 2
                if not opened or (got is None and not alive):
                    continue  # a stream opened later, or one the kill broke before the event was due
                due += 1
                if got is None:
                    missing += 1
                else:
                    latencies.append(got - committed)
    takeovers = []
    for job_id, owner in held.items():
        after = [s for s in watcher.samples[job_id] if s.at > victim.killed_at]
        moved = next((s for s in after if s.status in TERMINAL or (s.owner is not None and s.owner != owner)), None)
        takeovers.append(moved.at - victim.killed_at if moved else float("inf"))
    common.remove(workdir)
    return {
        "calls": len(times),
        # While every instance runs: the calls after the first burst, against what the rate allows in that time.
        "rate_use": (len(before_kill) - BURST) / (args.rate * (before_kill[-1] - before_kill[0])),
        "excess": worst_window(times, args.rate, BURST),
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "missing": missing,
        "due": due,
        "takeover": max(takeovers, default=float("nan")),
        "held": len(held),
        "twice": sum(received.values()) - len(received),
    }


def describe(instances, figures, rate):
    where = "cross-process" if instances > 1 else "same instance"
    takeover = "restart" if instances == 1 else "takeover"
    return (
        f"{instances} instance{'s' if instances > 1 else ' '}: {figures['calls']} calls at "
        f"{figures['rate_use']:.0%} of the allowed {rate:g}/s; worst window {figures['excess']:+.1f} calls against "
        f"burst + rate x window; events ({where}) p50 {1000 * figures['p50']:.0f} ms p99 "
        f"{1000 * figures['p99']:.0f} ms, {figures['missing']} of {figures['due']} never came; {takeover} of "
        f"{figures['held']} imports {figures['takeover']:.1f} s = {figures['takeover'] / LEASE_SECONDS:.2f}x "
        f"LEASE_SECONDS; {figures['twice']} records delivered twice"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imports", type=int, default=13, help="uploads, the last one a stream import")
    parser.add_argument("--rows", type=int, default=200, help="rows per file (92 %% of them valid)")
    parser.add_argument("--rate", type=float, default=20, help="the downstream's rate limit, calls/s")
    parser.add_argument("--database-url", help="run on this PostgreSQL database (its tables are dropped!)")
    parser.add_argument("--redis-url", help="give the instances this IMPORTDASH_REDIS_URL")
    args = common.parse_args(parser, smoke={"imports": 5, "rows": 100, "rate": 40})
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{args.imports} imports of {args.rows} rows on {database}{' + Redis' if args.redis_url else ''}", flush=True)
    rounds = {}
    for instances in (1, 3):
        rounds[instances] = run(instances, args)
        print(describe(instances, rounds[instances], args.rate), flush=True)
    one, three = rounds[1], rounds[3]
    print(
        f"summary, 3 instances against 1: call rate {three['rate_use'] / one['rate_use']:.2f}x (target 1.00x: one "
        f"limit for all), event latency p50 {three['p50'] / one['p50']:.1f}x p99 {three['p99'] / one['p99']:.1f}x "
        f"({three['missing']} of {three['due']} cross-process events never came), takeover "
        f"{three['takeover'] / one['takeover']:.2f}x the restart"
    )


if __name__ == "__main__":
    main()
