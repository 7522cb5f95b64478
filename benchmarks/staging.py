"""Batch staging alone (read, validate, store records and error rows) in process, against the fair reference.

    .venv/bin/python benchmarks/staging.py [--rows 200000] [--runs 3] [--extra 0] [--database-url postgresql://...]
        [--profile] [--app-only] [--smoke]

The app runs a batch import in this process with its delivery left out, and is timed inside the importer's
staging step (Importer._stage: reading, validate(), JobLedger.stage), so no upload or polling is counted.
The reference, run just before it in each round on the same file, is issue #17's fair one:
  SQLite      csv.reader, validate(), executemany into a table with a UNIQUE email index, error rows too,
              one transaction;
  PostgreSQL  csv.reader, validate(), COPY into a staging table (error rows COPY'd too), then one
              INSERT ... SELECT ... ON CONFLICT (email_key) DO NOTHING.
Each round prints rows/s and the app's share of the reference's rows/s (target: >= 0.8 on PostgreSQL, >= 0.7
on SQLite), and the CPU time of the importing thread, which the shared machine disturbs less than wall time
(on PostgreSQL it leaves out the server's work). --profile prints the cProfile of the staging steps.
--database-url: that PostgreSQL database's tables are dropped.
"""

import argparse
import cProfile
import csv
import json
import pstats
import sys
import time

import common

from importdash.services.reader import SourceRow
from importdash.services.validator import Contact, validate


def read_validated(path):
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        keys = next(reader)
        width = len(keys)
        row = 1
        for cells in reader:
            row += 1
            if len(cells) == width:
                extra = dict(zip(keys[3:], cells[3:], strict=True)) or None
                source = SourceRow(row, *cells[:3], dict(zip(keys, cells, strict=False)), None, extra)
            else:
                padded = cells + [None] * width
                source = SourceRow(
                    row, padded[0], padded[1], padded[2], dict(zip(keys, cells, strict=False)), "ragged row"
                )
            yield validate(source)


def sqlite_reference(path, workdir):
    import sqlite3

    db = workdir / "ref.db"
    db.unlink(missing_ok=True)
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(
        "CREATE TABLE records (id INTEGER PRIMARY KEY, job_id INTEGER, row INTEGER, name TEXT, email TEXT,"
        " email_key TEXT UNIQUE, company TEXT, extra TEXT, status TEXT)"
    )
    connection.execute(
        "CREATE TABLE import_errors (id INTEGER PRIMARY KEY, job_id INTEGER, row INTEGER, category TEXT,"
        " message TEXT, data TEXT)"
    )
    started, cpu = time.perf_counter(), time.thread_time()
    contacts, errors, rows = [], [], 0
    for item in read_validated(path):
        rows += 1
        if isinstance(item, Contact):
            contacts.append(
                (
                    1,
                    item.row,
                    item.name,
                    item.email,
                    item.email_key,
                    item.company,
                    item.extra and json.dumps(item.extra),
                )
            )
        else:
            errors.append((1, item.row, item.category, item.message, json.dumps(item.data)))
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT OR IGNORE INTO records (job_id, row, name, email, email_key, company, extra, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
        contacts,
    )
    connection.executemany(
        "INSERT INTO import_errors (job_id, row, category, message, data) VALUES (?, ?, ?, ?, ?)", errors
    )
    connection.execute("COMMIT")
    seconds = time.perf_counter() - started
    print(f"   reference cpu {rows / (time.thread_time() - cpu):,.0f} rows/s", file=sys.stderr)
    connection.close()
    return rows, seconds


def postgresql_reference(path, url):
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS ref_records, ref_errors, ref_staged")
        connection.execute(
            "CREATE TABLE ref_records (id serial PRIMARY KEY, job_id int, row int, name text, email text,"
            " email_key text UNIQUE, company text, extra json, status text)"
        )
        connection.execute(
            "CREATE TABLE ref_errors (id serial PRIMARY KEY, job_id int, row int, category text, message text,"
            " data json)"
        )
        connection.execute(
            "CREATE UNLOGGED TABLE ref_staged (row int, name text, email text, email_key text, company text,"
            " extra json)"
        )
        started = time.perf_counter()
        rows = 0
        with connection.transaction(), connection.cursor() as cursor:
            with (
                cursor.copy("COPY ref_staged FROM STDIN") as staged,
            ):
                errors = []
                for item in read_validated(path):
                    rows += 1
                    if isinstance(item, Contact):
                        staged.write_row(
                            (
                                item.row,
                                item.name,
                                item.email,
                                item.email_key,
                                item.company,
                                item.extra and json.dumps(item.extra),
                            )
                        )
                    else:
                        errors.append((1, item.row, item.category, item.message, json.dumps(item.data)))
            with cursor.copy("COPY ref_errors (job_id, row, category, message, data) FROM STDIN") as copy:
                for error in errors:
                    copy.write_row(error)
            cursor.execute(
                "INSERT INTO ref_records (job_id, row, name, email, email_key, company, extra, status)"
                " SELECT 1, row, name, email, email_key, company, extra, 'pending' FROM ref_staged ORDER BY row"
                " ON CONFLICT (email_key) DO NOTHING"
            )
        seconds = time.perf_counter() - started
        connection.execute("DROP TABLE IF EXISTS ref_records, ref_errors, ref_staged")
    return rows, seconds


def app_staging(path, workdir, url, profile=False):
    """A batch import in process, delivery left out; return (rows, seconds spent in Importer._stage)."""
    from importdash import create_app
    from importdash.extensions import db
    from importdash.models import ImportJob
    from importdash.runtime import get_runtime, stop_background
    from importdash.services import importer

    if url:
        common.reset_database(url)
    else:
        url = f"sqlite:///{workdir}/app.db"
        (workdir / "app.db").unlink(missing_ok=True)
    spent = [0.0, 0.0]
    original = importer.Importer._stage
    profiler = cProfile.Profile() if profile else None

    def timed(self, rows, in_flight=False):
        if profiler:
            profiler.enable()
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(self, rows, in_flight)
        finally:
            spent[0] += time.perf_counter() - started
            spent[1] += time.thread_time() - cpu
            if profiler:
                profiler.disable()

    importer.Importer._stage = timed
    original_deliver = importer.Importer._deliver
    importer.Importer._deliver = lambda self, **kw: None
    app = create_app(
        {"DATABASE_URL": url, "UPLOAD_FOLDER": f"{workdir}/uploads", "RATE_PER_SECOND": 0, "SIMULATED_LATENCY_MS": 0}
    )
    try:
        with app.app_context(), open(path, "rb") as handle:
            response = app.test_client().post("/api/import/batch", data={"file": (handle, "contacts.csv")})
            job_id = response.get_json()["job"]["id"]
            get_runtime(app).runner.wait(job_id, timeout=1200)
            job = db.session.get(ImportJob, job_id)
            rows = job.total_records
            assert rows, job.to_dict()
            summary = (job.status, job.success_count, job.failed_count, job.processed_count)
    finally:
        stop_background(app, wait=True)
        importer.Importer._stage = original
        importer.Importer._deliver = original_deliver
        with app.app_context():
            db.engine.dispose()
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    print("   job (status, succeeded, failed, processed):", summary, file=sys.stderr)
    print(f"   cpu {rows / spent[1]:,.0f} rows/s ({spent[1]:.2f} s)", file=sys.stderr)
    return rows, spent[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--extra", type=int, default=0, help="columns kept as extra fields")
    parser.add_argument("--database-url", help="PostgreSQL (its tables are dropped); default a SQLite file")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the app's staging")
    parser.add_argument("--app-only", action="store_true", help="leave the reference out")
    args = common.parse_args(parser, smoke={"rows": 1_000, "runs": 1})
    path = common.sample_file(args.rows, extra_columns=args.extra)
    workdir = common.scratch_dir("stage-")
    ratios = []
    for run in range(args.runs):
        if not args.app_only:
            if args.database_url:
                ref_rows, ref_seconds = postgresql_reference(path, args.database_url)
            else:
                ref_rows, ref_seconds = sqlite_reference(path, workdir)
            ref_rate = ref_rows / ref_seconds
        rows, seconds = app_staging(path, workdir, args.database_url, profile=args.profile)
        rate = rows / seconds
        if args.app_only:
            print(f"run {run}: app {rate:,.0f} rows/s ({seconds:.2f} s)", flush=True)
            continue
        ratios.append(rate / ref_rate)
        print(
            f"run {run}: reference {ref_rate:,.0f} rows/s, app staging {rate:,.0f} rows/s ({seconds:.2f} s),"
            f" ratio {rate / ref_rate:.2f}",
            flush=True,
        )
    common.remove(workdir)
    if ratios:
        print("ratios", " ".join(f"{r:.2f}" for r in ratios), "median", f"{common.median(ratios):.2f}")


if __name__ == "__main__":
    main()
