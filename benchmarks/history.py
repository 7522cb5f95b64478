"""Target 6: the history API at size, 10,000 past jobs and 1,000,000 error rows, served by the real server.

The database is filled directly (Core executemany, not through imports, which would take hours): 10,000
finished jobs, of which a few are big (100,000 errors each, like a 1,000,000-row import with its share of
bad rows) and the rest small, with their counts matching their error rows. Then gunicorn (shipped config)
answers, over one keep-alive connection, each request many times:

  GET /api/import                                  the first page of the history (unfinished imports first)
  GET /api/import?offset=...                       a deep page of it (the oldest imports)
  GET /api/import?status=failed                    the history filtered by status, and by mode
  GET /api/import?q=...                            a search of file names
  GET /api/import/<big id>                         a big job with its error counts and first errors
  GET /api/import/<big id>/errors?category=...     a filtered error page (first page, and a deep one)

and the script prints the median and p95 of each (target: median < 50 ms), and each median as a multiple
of GET /health on the same server (the floor of any request: HTTP, Flask, one database round trip).

    .venv/bin/python benchmarks/history.py [--requests 50] [--database-url postgresql://...] [--smoke]

--smoke fills 100 jobs and 1,000 error rows (two big jobs of 300) and sends each request 5 times, one round.
"""

import argparse
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import common
from sqlalchemy import insert

from importdash import create_app
from importdash.extensions import db
from importdash.models import ImportJob, RowError
from importdash.runtime import get_runtime


@dataclass(frozen=True)
class Size:
    """How much history to fill: jobs, how many of them are big, errors per big job, errors in all."""

    jobs: int
    big_jobs: int
    big_job_errors: int
    total_errors: int


FULL = Size(jobs=10_000, big_jobs=5, big_job_errors=100_000, total_errors=1_000_000)
SMOKE = Size(jobs=100, big_jobs=2, big_job_errors=300, total_errors=1_000)
CATEGORY_WEIGHTS = {"duplicate": 5, "missing_value": 3, "invalid_format": 3, "other": 2}
INSERT_BATCH = 20_000
RUNNING_JOBS = 3  # imports held by another process: the history lists them first


def populate(url, size):
    """Fill the database with the jobs and error rows; return (a big job's id, a small job's id)."""
    app = create_app({"DATABASE_URL": url})
    try:
        with app.app_context():
            db.drop_all()
            db.create_all()
            _fill(db.session, size)
            db.session.commit()
            if db.engine.dialect.name == "postgresql":
                # What autovacuum does within a minute of such a load; without statistics the planner takes
                # the fresh table for a small one and sorts a big job's errors instead of reading the index.
                with db.engine.connect() as connection:
                    connection.exec_driver_sql("ANALYZE")
                    connection.commit()  # statistics are stored transactionally
    finally:
        get_runtime(app).runner.shutdown()
        with app.app_context():
            db.engine.dispose()
    return size.jobs - 1, size.jobs  # the newest big job and the newest (small) job


def _fill(session, size):
    rng = random.Random(6)
    big = set(range(size.jobs - 2 * size.big_jobs + 1, size.jobs, 2))  # every other job among the newest ones
    small_errors = (size.total_errors - size.big_jobs * size.big_job_errors) // (size.jobs - size.big_jobs)
    categories = [c for c, weight in CATEGORY_WEIGHTS.items() for _ in range(weight)]
    start = datetime(2026, 1, 1)
    jobs, errors = [], []
    for job_id in range(1, size.jobs + 1):
        error_total = size.big_job_errors if job_id in big else small_errors
        rows = error_total * 8
        counts = dict.fromkeys(CATEGORY_WEIGHTS, 0)
        for number in range(error_total):
            category = categories[rng.randrange(len(categories))]
            counts[category] += 1
            row = 2 + number * 8 + rng.randrange(8)
            email = f"person{job_id}.{row}@example.com"
            errors.append(
                {
                    "job_id": job_id,
                    "row": row,
                    "category": category,
                    "message": f'email "{email}" is a duplicate',
                    "data": {"name": f"Person {row}", "email": email, "company": "Acme Analytics"},
                    "created_at": start,
                }
            )
        created = start + timedelta(minutes=job_id)
        # A few of the oldest still run elsewhere (held by a lease far ahead), so the history lists them first.
        running = job_id <= RUNNING_JOBS
        job = {
            "id": job_id,
            "key": f"{job_id:032x}",
            "mode": ("batch", "stream", "default")[job_id % 3],
            "source": f"contacts-{job_id}.csv",
            "path": f"/nonexistent/{job_id}.csv",
            "status": "processing" if running else "failed" if job_id % 7 == 0 else "completed",
            "lease_owner": "benchmark" if running else None,
            "lease_expires_at": datetime(2100, 1, 1) if running else None,
            "total_records": rows,
            "processed_count": rows,
            "success_count": rows - error_total,
            "failed_count": error_total,
            "rows_read": rows,
            "cursor": rows + 1,
            "created_at": created,
            "started_at": created,
            "completed_at": None if running else created + timedelta(seconds=30),
        }
        # The per-category counters kept on the job, where the schema has them.
        job.update(
            {f"{category}_count": n for category, n in counts.items() if hasattr(ImportJob, f"{category}_count")}
        )
        jobs.append(job)
        if len(errors) >= INSERT_BATCH:
            _flush(session, jobs, errors)
    _flush(session, jobs, errors)


def _flush(session, jobs, errors):
    if jobs:
        session.execute(insert(ImportJob.__table__), jobs)
        jobs.clear()
    if errors:
        session.execute(insert(RowError.__table__), errors)
        errors.clear()
    session.commit()


def timed(server, connection, path, requests):
    """Return the response times of `requests` GETs of path, in ms, after one warm-up request."""
    status, body = server.get(path, connection)
    assert status == 200, (path, status, body)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        times.append(1000 * (time.perf_counter() - started))
        assert response.status == 200, (path, response.status)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--runs", type=int, default=2, help="rounds of requests against the same server")
    parser.add_argument(
        "--database-url", help="fill this database instead of a fresh SQLite file (its tables are dropped!)"
    )
    args = common.parse_args(parser, smoke={"requests": 5, "runs": 1})
    size = SMOKE if args.smoke else FULL
    workdir = common.scratch_dir("history-")
    try:
        url = args.database_url or common.sqlite_url(workdir)
        started = time.perf_counter()
        big_id, small_id = populate(url, size)
        print(
            f"history: {size.jobs:,} jobs and {size.total_errors:,} error rows on "
            f"{'PostgreSQL' if args.database_url else 'SQLite'} (filled in {time.perf_counter() - started:.0f} s)"
        )
        paths = {
            "health (baseline)": "/health",
            "list jobs": "/api/import",
            "list jobs, deep page": f"/api/import?offset={max(size.jobs - 100, 0)}",
            "list jobs, failed": "/api/import?status=failed",
            "list jobs, failed, deep": f"/api/import?status=failed&offset={max(size.jobs // 7 - 100, 0)}",
            "list jobs, stream mode": "/api/import?mode=stream",
            "list jobs, search": "/api/import?q=contacts-99",
            "big job": f"/api/import/{big_id}",
            "big job errors, filtered": f"/api/import/{big_id}/errors?category=invalid_format",
            "same, deep page": f"/api/import/{big_id}/errors?category=invalid_format&offset={size.big_job_errors // 5}",
            "small job": f"/api/import/{small_id}",
            "small job errors, filtered": f"/api/import/{small_id}/errors?category=duplicate",
        }
        with common.Server(workdir, url, rate_per_second=0) as server:
            connection = server.connection()
            try:
                for round_number in range(1, args.runs + 1):
                    medians = {}
                    for name, path in paths.items():
                        times = timed(server, connection, path, args.requests)
                        medians[name] = common.median(times)
                        verdict = (
                            ""
                            if name.startswith("health")
                            else (" ok" if medians[name] < 50 else " MISSED (target < 50 ms)")
                        )
                        print(
                            f"round {round_number}: {name:27} median {medians[name]:6.1f} ms, "
                            f"p95 {common.percentile(times, 0.95):6.1f} ms, "
                            f"{medians[name] / medians['health (baseline)']:5.1f}x health{verdict}",
                            flush=True,
                        )
            finally:
                connection.close()
    finally:
        common.remove(workdir)


if __name__ == "__main__":
    main()
