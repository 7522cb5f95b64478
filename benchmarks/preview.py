"""Target (#13): a preview of a 1,000,000-row file takes no longer than staging the same file in batch mode.

Each round starts the real server (gunicorn, shipped config, rate limit lifted) on a fresh database, imports
the file's first rows untimed (so the file repeats emails already stored), then times, on the same file:
  preview  POST /api/import/preview: the upload, the file's check, every row read, validated and looked up
           among the stored records, the first rows and the counts, the upload kept under a token;
  batch    POST /api/import/batch: the upload and the file's check, then the staging phase until the job's
           total is known (every row validated and written as a record or an error row);
and prints both and the ratio preview / batch (target <= 1.0). The preview goes first: it writes nothing, so
the batch import meets the same stored records.

    .venv/bin/python benchmarks/preview.py [--rows 1000000] [--runs 2] [--database-url postgresql://...] [--smoke]

--smoke runs one round of 1,000 rows after 10 seeded.
"""

import argparse
import time

import common

SEED_ROWS = 10_000  # imported before the timed runs, as in ingest.py
TIMEOUT = 1800


def round_figures(csv_path, seed_path, workdir, database_url):
    """Seed, then time a preview and a batch import's staging of csv_path; return (rows, preview s, batch s)."""
    if database_url:
        common.reset_database(database_url)
    else:
        database_url = common.sqlite_url(workdir)
    with common.Server(workdir, database_url, rate_per_second=0, simulated_latency_ms=0) as server:
        status, body = server.upload("/api/import/batch", seed_path)
        assert status == 202, body
        seeded = server.wait_for_job(body["job"]["id"], timeout=TIMEOUT)
        assert seeded["status"] == "completed", seeded

        started = time.perf_counter()
        status, body = server.upload("/api/import/preview", csv_path)
        previewed = time.perf_counter() - started
        assert status == 200, body
        counts = body["preview"]["counts"]
        assert counts["duplicate_stored"] > 0, counts  # the lookups among stored records were made

        staged_at = []
        started = time.perf_counter()
        status, body = server.upload("/api/import/batch", csv_path)
        assert status == 202, body

        def watch(job):
            if job["total_records"] is not None and not staged_at:
                staged_at.append(time.perf_counter())

        job = server.wait_for_job(body["job"]["id"], timeout=TIMEOUT, poll=0.2, on_poll=watch)
    assert job["status"] == "completed", job
    assert job["total_records"] == counts["total"], (job, counts)
    return counts["total"], previewed, staged_at[0] - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--seed-rows", type=int, default=SEED_ROWS, help="rows imported before each timed round (at least 1)"
    )
    parser.add_argument("--database-url", help="run the app on this database (its tables are dropped!)")
    args = common.parse_args(parser, smoke={"rows": 1_000, "runs": 1, "seed_rows": 10})
    if args.seed_rows < 1:
        parser.error("--seed-rows must be at least 1: the app refuses a file without data rows")
    csv_path, seed_path = common.sample_file(args.rows), common.sample_file(args.seed_rows)
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"preview: {args.rows:,} rows after {args.seed_rows:,} seeded, app on {database}, {args.runs} rounds")

    ratios = []
    for round_number in range(1, args.runs + 1):
        workdir = common.scratch_dir("preview-")
        try:
            rows, previewed, staged = round_figures(csv_path, seed_path, workdir, args.database_url)
        finally:
            common.remove(workdir)
        ratios.append(previewed / staged)
        print(
            f"round {round_number}: preview {previewed:.1f} s = {rows / previewed:,.0f} rows/s, "
            f"batch upload + staging {staged:.1f} s = {rows / staged:,.0f} rows/s; "
            f"preview / batch {previewed / staged:.2f}",
            flush=True,
        )
    print("summary (median, min-max over rounds):")
    spread = f"{common.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
    print(f"  preview / batch upload + staging   {spread}   (target <= 1.0)")


if __name__ == "__main__":
    main()
