"""Event relay: commit-to-receipt latency of a job's events across processes (target: p99 under 1 s).

One server (the shipped gunicorn config) serves N clients on GET /api/import/<id>/events; this script is another
process on the same database, as `flask import` or a second instance is: it creates the job, then commits
progress (processed_count = 1, 2, ...) every --interval seconds and publishes each commit as the app does
(jobs.publish_job: its own streams at once, the others through the relay), and ends the job. Each client's
receipt of each state is set against the moment this script committed it (same machine, same clock). The
relay is the one the configuration picks: the outbox table on SQLite (read every EVENT_RELAY_POLL_SECONDS),
LISTEN/NOTIFY with --database-url, Redis pub/sub with --redis-url. The reference is the same server's
in-process figure, which benchmarks/sse.py measures (p99 about 30 ms with 200 streams).

  .venv/bin/python benchmarks/relay.py [--clients 200] [--updates 200] [--interval 0.05]
      [--database-url postgresql://...] [--redis-url redis://...] [--smoke]

--smoke runs 10 clients and 20 updates, and fails unless every client got job.finished.
"""

import argparse
import json
import sys
import time
import uuid

import common
from sqlalchemy import update

TERMINAL = common.TERMINAL


def relay_settings(args):
    settings = {"event_relay_channel": f"importdash-bench-relay-{uuid.uuid4().hex[:8]}"}
    if args.poll_seconds is not None:
        settings["event_relay_poll_seconds"] = args.poll_seconds
    if args.redis_url:
        settings |= {"event_relay": "redis", "redis_url": args.redis_url}
    return settings


def run(args):
    """Run one round; print its figures and return how many clients got the terminal event."""
    from importdash import create_app
    from importdash.extensions import db
    from importdash.models import ImportJob, utcnow
    from importdash.runtime import get_runtime, stop_background
    from importdash.services import jobs
    from importdash.services.reader import FileLimits

    workdir = common.scratch_dir("relay-")
    url = args.database_url or common.sqlite_url(workdir)
    if args.database_url:
        common.reset_database(url)
    settings = relay_settings(args)
    publisher = None
    try:
        with common.Server(
            workdir,
            url,
            threads=args.clients + 32,
            sse_max_streams=args.clients + 8,
            lease_sweep_seconds=0,  # the job below is this script's: the server must not take it over
            **settings,
        ) as server:
            publisher = create_app(
                {"DATABASE_URL": url, "UPLOAD_FOLDER": str(workdir / "uploads")}
                | {name.upper(): value for name, value in settings.items()}
            )
            runtime = get_runtime(publisher)
            with publisher.app_context():
                session = db.session
                job = jobs.create_job(
                    session,
                    runtime.broker,
                    mode="batch",
                    path=publisher.config["SAMPLE_FILE"],
                    source="relay-bench.csv",
                    max_line_length=publisher.config["MAX_LINE_LENGTH"],
                    file_limits=FileLimits.from_config(publisher.config),
                )
                job_id = job.id
                selector, streams = common.open_streams(server.port, f"/api/import/{job_id}/events", args.clients)
                try:
                    common.pump(selector, time.time() + 2)  # everyone connected and got the first state
                    committed = {}  # processed_count -> when its commit returned
                    for count in range(1, args.updates + 1):
                        finish = count == args.updates
                        values = {"processed_count": count, "status": "completed" if finish else "processing"}
                        if finish:
                            values["completed_at"] = utcnow()
                        session.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values))
                        session.commit()
                        committed[count] = time.time()
                        jobs.publish_job(runtime.broker, session, job_id, TERMINAL if finish else "job.progress")
                        common.pump(selector, time.time() + args.interval)
                    common.pump(selector, time.time() + 10, lambda: all(s.finished for s in streams))
                finally:
                    for stream in streams:
                        stream.close()
                    db.session.remove()
    finally:
        if publisher is not None:
            stop_background(publisher, wait=True)
            with publisher.app_context():
                db.engine.dispose()
        common.remove(workdir)
    finished = sum(s.finished for s in streams)
    # For every commit and every client: how long until the client was shown that state or a newer one. A
    # receiving process reads the newest state, so one event may show several commits at once; each counts.
    latencies = []
    for stream in streams:
        shown = [(json.loads(data)["job"]["processed_count"], received) for _name, data, received in stream.events]
        for count, at in committed.items():
            received = next((when for seen, when in shown if seen >= count), None)
            if received is not None:
                latencies.append(1000 * (received - at))
    kind = "Redis pub/sub" if args.redis_url else "PostgreSQL NOTIFY" if args.database_url else "SQLite outbox"
    poll = publisher.config["EVENT_RELAY_POLL_SECONDS"]
    extra = "" if args.redis_url or args.database_url else f", polled every {1000 * poll:.0f} ms"
    print(
        f"relay ({kind}{extra}): {args.clients} subscribers on another process, {finished} got {TERMINAL} "
        f"(target: all); commit-to-receipt over {len(latencies):,} commits x clients: "
        f"median {common.median(latencies):.1f} ms, "
        f"p99 {common.percentile(latencies, 0.99):.1f} ms (target < 1000), max {max(latencies):.1f} ms",
        flush=True,
    )
    return finished


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--updates", type=int, default=200, help="progress commits published by this process")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between two commits")
    parser.add_argument("--poll-seconds", type=float, help="EVENT_RELAY_POLL_SECONDS (SQLite; default: Config's)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--database-url", help="PostgreSQL URL (its tables are dropped); default: a new SQLite file")
    parser.add_argument("--redis-url", help="relay through Redis pub/sub instead of the database")
    args = common.parse_args(parser, smoke={"clients": 10, "updates": 20, "runs": 1})
    for _ in range(args.runs):
        finished = run(args)
        if args.smoke and finished != args.clients:
            sys.exit(f"smoke: {finished} of {args.clients} clients got {TERMINAL}")


if __name__ == "__main__":
    main()
