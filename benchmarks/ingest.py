"""Target 1: ingest throughput of a 1,000,000-row file uploaded over the HTTP API, against a stdlib baseline.

Each round runs, on the same generated file and after the same 10,000 rows were imported before (so some
rows duplicate stored ones):
  baseline  csv.reader, the app's validation rules, INSERT OR IGNORE through a unique email index with
            stdlib sqlite3.executemany in 50,000-row transactions, 64 MB page cache, error rows inserted too,
            columns beyond name, email and company stored as JSON (--extra-columns);
  batch     the real server (gunicorn, shipped config), rate limit lifted, simulated latency 0: the upload,
            the staging phase (until the total is known) and the whole import;
  stream    the same in stream mode.
and prints rows/s and each figure as a share of the baseline's rows/s in the same round.

    .venv/bin/python benchmarks/ingest.py [--rows 1000000] [--runs 2] [--database-url postgresql://...]
        [--extra-columns 5] [--smoke]

--smoke runs one round of 1,000 rows after 10 seeded (the same 1 % as the full run).
"""

import argparse
import csv
import json
import sqlite3
import time

import common

from importdash.services.reader import SourceRow
from importdash.services.validator import Contact, validate

SEED_ROWS = 10_000  # imported before the timed run, so the timed file repeats emails already stored
BASELINE_BATCH = 50_000  # rows per baseline transaction
TIMEOUT = 1800


def baseline(csv_path, seed_path, workdir):
    """Import seed_path untimed, then csv_path timed; return (rows, seconds)."""
    connection = sqlite3.connect(workdir / "baseline.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA cache_size=-65536")  # 64 MB
    connection.execute(
        "CREATE TABLE records (id INTEGER PRIMARY KEY, job_id INTEGER, row INTEGER, name TEXT, email TEXT,"
        " email_key TEXT UNIQUE, company TEXT, extra TEXT, status TEXT)"
    )
    connection.execute(
        "CREATE TABLE import_errors (id INTEGER PRIMARY KEY, job_id INTEGER, row INTEGER, category TEXT,"
        " message TEXT, data TEXT)"
    )
    _baseline_import(connection, seed_path, job_id=1)
    started = time.perf_counter()
    rows = _baseline_import(connection, csv_path, job_id=2)
    seconds = time.perf_counter() - started
    connection.close()
    return rows, seconds


def _baseline_import(connection, path, job_id):
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        keys = next(reader)
        width = len(keys)
        batch, row, rows = [], 1, 0
        for cells in reader:
            row += 1
            if len(cells) == width:
                extra = dict(zip(keys[3:], cells[3:], strict=True)) or None  # the columns kept as extra fields
                source = SourceRow(row, *cells[:3], dict(zip(keys, cells, strict=False)), None, extra)
            else:
                padded = cells + [None] * width
                source = SourceRow(
                    row, padded[0], padded[1], padded[2], dict(zip(keys, cells, strict=False)), "ragged row"
                )
            batch.append(validate(source))
            rows += 1
            if len(batch) == BASELINE_BATCH:
                _baseline_store(connection, batch, job_id)
                batch = []
        if batch:
            _baseline_store(connection, batch, job_id)
    return rows


def _baseline_store(connection, batch, job_id):
    contacts = [item for item in batch if isinstance(item, Contact)]
    errors = [
        (job_id, item.row, item.category, item.message, json.dumps(item.data))
        for item in batch
        if not isinstance(item, Contact)
    ]
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT OR IGNORE INTO records (job_id, row, name, email, email_key, company, extra, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
        [(job_id, c.row, c.name, c.email, c.email_key, c.company, c.extra and json.dumps(c.extra)) for c in contacts],
    )
    stored = {
        row
        for (row,) in connection.execute(
            "SELECT row FROM records WHERE job_id = ? AND row BETWEEN ? AND ?", (job_id, batch[0].row, batch[-1].row)
        )
    }
    errors.extend(
        (job_id, c.row, "duplicate", f'email "{c.email}" is a duplicate', json.dumps(c.data))
        for c in contacts
        if c.row not in stored
    )
    connection.executemany(
        "INSERT INTO import_errors (job_id, row, category, message, data) VALUES (?, ?, ?, ?, ?)", errors
    )
    connection.execute("COMMIT")


def app_import(mode, csv_path, seed_path, workdir, database_url):
    """Import seed_path, then time csv_path through the server; return a dict of figures."""
    if database_url:
        common.reset_database(database_url)
    else:
        database_url = common.sqlite_url(workdir)
    with common.Server(workdir, database_url, rate_per_second=0, simulated_latency_ms=0) as server:
        status, body = server.upload(f"/api/import/{mode}", seed_path)
        assert status == 202, body
        seeded = server.wait_for_job(body["job"]["id"], timeout=TIMEOUT)
        assert seeded["status"] == "completed", seeded

        staged_at = []
        started = time.perf_counter()
        status, body = server.upload(f"/api/import/{mode}", csv_path)
        uploaded = time.perf_counter()
        assert status == 202, body

        def watch(job):
            if job["total_records"] is not None and not staged_at:
                staged_at.append(time.perf_counter())

        job = server.wait_for_job(body["job"]["id"], timeout=TIMEOUT, poll=0.2, on_poll=watch)
        finished = time.perf_counter()
    assert job["status"] == "completed", job
    assert job["processed_count"] == job["total_records"], job
    return {
        "rows": job["total_records"],
        "upload": uploaded - started,
        "staging": staged_at[0] - uploaded,  # from the job's creation (upload done) until its total is known
        "whole": finished - started,  # upload included
        "succeeded": job["success_count"],
        "failed": job["failed_count"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--modes", default="batch,stream")
    parser.add_argument(
        "--seed-rows", type=int, default=SEED_ROWS, help="rows imported before each timed import (at least 1)"
    )
    parser.add_argument("--database-url", help="run the app on this database (its tables are dropped!)")
    parser.add_argument(
        "--extra-columns",
        type=int,
        default=0,
        help="columns beyond name, email and company in each file, kept as the records' extra fields",
    )
    args = common.parse_args(parser, smoke={"rows": 1_000, "runs": 1, "seed_rows": 10})
    if args.seed_rows < 1:
        parser.error("--seed-rows must be at least 1: the app refuses a file without data rows")
    csv_path = common.sample_file(args.rows, extra_columns=args.extra_columns)
    seed_path = common.sample_file(args.seed_rows, extra_columns=args.extra_columns)
    modes = args.modes.split(",")
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"ingest: {args.rows:,} rows ({args.extra_columns} extra columns) after {args.seed_rows:,} seeded, "
        f"app on {database}, {args.runs} rounds"
    )

    results = {"baseline": [], **{mode: [] for mode in modes}}
    for round_number in range(1, args.runs + 1):
        workdir = common.scratch_dir("baseline-")
        try:
            rows, seconds = baseline(csv_path, seed_path, workdir)
        finally:
            common.remove(workdir)
        base_rate = rows / seconds
        results["baseline"].append(base_rate)
        print(f"round {round_number}: baseline {base_rate:,.0f} rows/s ({seconds:.1f} s)", flush=True)
        for mode in modes:
            workdir = common.scratch_dir(f"{mode}-")
            try:
                figures = app_import(mode, csv_path, seed_path, workdir, args.database_url)
            finally:
                common.remove(workdir)
            staging_rate = figures["rows"] / figures["staging"]
            whole_rate = figures["rows"] / figures["whole"]
            results[mode].append((staging_rate / base_rate, whole_rate / base_rate))
            print(
                f"round {round_number}: {mode:6} upload {figures['upload']:.1f} s, "
                f"staged {figures['staging']:.1f} s = {staging_rate:,.0f} rows/s ({staging_rate / base_rate:.0%}), "
                f"whole import {figures['whole']:.1f} s = {whole_rate:,.0f} rows/s ({whole_rate / base_rate:.0%}); "
                f"{figures['succeeded']:,} delivered, {figures['failed']:,} errors",
                flush=True,
            )

    print("summary (median, min-max over rounds; share of the same round's baseline):")
    print(f"  baseline           {common.spread(results['baseline'])} rows/s")
    for mode in modes:
        staging = [100 * s for s, _ in results[mode]]
        whole = [100 * w for _, w in results[mode]]
        if mode == "batch":
            print(f"  batch staging      {common.spread(staging)} %   (target >= 50 %)")
        print(f"  {mode:6} whole       {common.spread(whole)} %   (target >= 25 %)")


if __name__ == "__main__":
    main()
