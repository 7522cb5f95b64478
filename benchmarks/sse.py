"""Target 5: 200 concurrent SSE subscribers on one gunicorn process (the shipped config, threads enough).

live   one server (rate 20 calls/s, so the import runs for a while and publishes progress), an upload of
       a 5,000-row file, and 200 clients on GET /api/import/<id>/events, all read by one selector loop in
       this process. Every client must get the job's terminal event (job.finished); the latency from the
       commit behind each event to its receipt (the server stamps each event with its commit time, see
       sse_app.py; same machine, same clock) must be under 20 ms at the median and 100 ms at p99.
idle   a second server whose rate (one call per 50 s) keeps its import waiting in the token bucket, 200
       streams open on it: the worker's CPU over a quiet spell must stay under 5 % of a core. The
       baseline is the same worker's CPU over the same spell with no stream open.

  .venv/bin/python benchmarks/sse.py [--clients 200] [--idle-seconds 10] [--smoke]

--smoke runs one round of 10 clients on a 1,000-row import and 2 idle seconds, and fails unless every client
got job.finished and every idle stream stayed open (what the targets ask besides speed).
"""

import argparse
import json
import sys
import time

import common
from common import open_streams, pump
from sse_app import STAMP

ROWS = 5_000
TERMINAL = common.TERMINAL


def live(clients, rows=ROWS, timeout=600):
    """Run the live part and print its figures; return how many clients got the terminal event."""
    workdir = common.scratch_dir("sse-")
    try:
        with common.Server(
            workdir,
            common.sqlite_url(workdir),
            app="sse_app:app",
            threads=clients + 32,
            sse_max_streams=clients + 8,
            rate_per_second=20,
            rate_burst=4,
        ) as server:
            status, body = server.upload("/api/import/batch", common.sample_file(rows))
            assert status == 202, body
            job_id = body["job"]["id"]
            selector, streams = open_streams(server.port, f"/api/import/{job_id}/events", clients)
            try:
                pump(selector, time.time() + timeout, lambda: all(s.finished for s in streams))
            finally:
                for stream in streams:
                    stream.close()
    finally:
        common.remove(workdir)
    finished = sum(s.finished for s in streams)
    # Only events committed after the client subscribed: a replay of older ones (on connect) is not latency.
    latencies = [
        1000 * (received - data[STAMP])
        for s in streams
        for _, data, received in ((n, json.loads(d), r) for n, d, r in s.events)
        if data.get(STAMP, 0) >= s.opened_at
    ]
    progress = [len([e for e in s.events if e[0] == "job.progress"]) for s in streams]
    print(
        f"live: {clients} subscribers, {finished} got {TERMINAL} (target: all); "
        f"{min(progress)}-{max(progress)} progress events each; commit-to-receipt latency over "
        f"{len(latencies):,} events: median {common.median(latencies):.1f} ms (target < 20), "
        f"p99 {common.percentile(latencies, 0.99):.1f} ms (target < 100), max {max(latencies):.1f} ms",
        flush=True,
    )
    return finished


def idle(clients, seconds):
    """Run the idle part and print its figures; return how many streams were still open at its end."""
    workdir = common.scratch_dir("sse-idle-")
    try:
        with common.Server(
            workdir,
            common.sqlite_url(workdir),
            app="sse_app:app",
            threads=clients + 32,
            sse_max_streams=clients + 8,
            rate_per_second=0.02,
            rate_burst=1,
        ) as server:
            status, body = server.post("/api/import/batch")  # the bundled sample; one call per 50 s
            assert status == 202, body
            time.sleep(3)  # staging done, the job now waits for tokens
            before = server.cpu_seconds()
            time.sleep(seconds)
            baseline = (server.cpu_seconds() - before) / seconds
            selector, streams = open_streams(server.port, f"/api/import/{body['job']['id']}/events", clients)
            try:
                pump(selector, time.time() + 3)  # everyone connected and served its first frames
                before = server.cpu_seconds()
                pump(selector, time.time() + seconds)
                busy = (server.cpu_seconds() - before) / seconds
                still_open = sum(not s.closed for s in streams)
            finally:
                for stream in streams:
                    stream.close()
    finally:
        common.remove(workdir)
    print(
        f"idle: {still_open} of {clients} streams open, worker CPU {100 * busy:.2f} % of a core over {seconds} s "
        f"(target < 5 %); with no stream open {100 * baseline:.2f} %",
        flush=True,
    )
    return still_open


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--idle-seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=ROWS, help="rows of the live part's import")
    args = common.parse_args(parser, smoke={"clients": 10, "idle_seconds": 2, "runs": 1, "rows": 1_000})
    for _ in range(args.runs):
        finished = live(args.clients, args.rows, timeout=60 if args.smoke else 600)
        still_open = idle(args.clients, args.idle_seconds)
        if args.smoke and (finished, still_open) != (args.clients, args.clients):
            sys.exit(
                f"smoke: {finished} clients got {TERMINAL} and {still_open} idle streams stayed open, of {args.clients}"
            )


if __name__ == "__main__":
    main()
