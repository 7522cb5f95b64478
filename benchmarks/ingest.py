"""Issue #17's ingest targets: the app's imports as ratios to fair references run in the same script and round.

Each round runs, on the same generated file and after the same 10,000 rows were imported before (so some rows
duplicate stored ones), and interleaved so that the machine's noise hits references and app alike:
  fair reference  the database's own fast path with the app's validation (below);
  batch           the real server (gunicorn, shipped config), rate limit lifted, simulated latency 0: the upload,
                  staging (from the end of the upload until the job's total is known) and the whole import;
  stream          the same in stream mode;
  preloaded batch with --preload N: the batch import again, into a records table that already holds N records.

The fair reference is, on SQLite, csv.reader + the app's validate() + executemany (INSERT OR IGNORE) through a
UNIQUE email index, in 50,000-row transactions with error rows; on PostgreSQL (--database-url), csv.reader +
validate() + binary COPY of the valid contacts into an unlogged staging table, then ONE
INSERT ... SELECT ... ON CONFLICT (email_key) DO NOTHING merge into a table with a unique email index, whose
skipped rows become duplicate error rows in the same statement; validation errors are COPYed as error rows. It
runs on the same PostgreSQL server, in a schema of its own (bench_reference) that the app's reset never touches.
PostgreSQL also prints, as context with no target, "COPY + merge" (the CSV COPYed by the server, no validation,
then the same merge) and "pgloader + merge" when pgloader is on PATH.

    .venv/bin/python benchmarks/ingest.py [--rows 1000000] [--runs 2] [--database-url postgresql://...]
        [--preload 5000000] [--modes batch,stream] [--extra-columns 5] [--smoke]

--smoke runs one round of 1,000 rows after 10 seeded, and into 5,000 preloaded records (5 to 1, as the issue's
1,000,000 rows into 5,000,000); it fails only if something breaks.
"""

import argparse
import csv
import json
import random
import shutil
import sqlite3
import subprocess
import time

import common
import generate_sample

from importdash.services.reader import SourceRow
from importdash.services.validator import Contact, validate

SEED_ROWS = 10_000  # imported before the timed run, so the timed file repeats emails already stored
SQLITE_BATCH = 50_000  # rows per SQLite reference transaction
REFERENCE_SCHEMA = "bench_reference"  # the PostgreSQL references' tables live here, apart from the app's
PRELOAD_BATCH = 50_000  # records per executemany while preloading SQLite
TIMEOUT = 3600

# Targets from issue #17, as shares of the same round's fair reference (or, for preloaded, of the empty table).
TARGETS = {
    ("SQLite", "staging"): 0.7,
    ("SQLite", "whole"): 0.5,
    ("PostgreSQL", "staging"): 0.8,
    ("PostgreSQL", "whole"): 0.5,
    "preloaded": 0.9,
}


# --- SQLite fair reference ---------------------------------------------------------------------------------


def sqlite_reference(csv_path, seed_path, workdir):
    """csv + validate() + executemany through a UNIQUE email index: import seed_path untimed, then csv_path
    timed; return (rows, seconds)."""
    connection = sqlite3.connect(workdir / "reference.db", isolation_level=None)
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
    _sqlite_import(connection, seed_path, job_id=1)
    started = time.perf_counter()
    rows = _sqlite_import(connection, csv_path, job_id=2)
    seconds = time.perf_counter() - started
    connection.close()
    return rows, seconds


def read_validated(path):
    """Yield validate()'s verdict (Contact or Rejection) for each data row of a CSV file, as the app reads it."""
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        keys = next(reader)
        width = len(keys)
        row = 1
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
            yield validate(source)


def _sqlite_import(connection, path, job_id):
    batch, rows = [], 0
    for item in read_validated(path):
        batch.append(item)
        rows += 1
        if len(batch) == SQLITE_BATCH:
            _sqlite_store(connection, batch, job_id)
            batch = []
    if batch:
        _sqlite_store(connection, batch, job_id)
    return rows


def _sqlite_store(connection, batch, job_id):
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


# --- PostgreSQL references -----------------------------------------------------------------------------------


def libpq_url(database_url):
    """The SQLAlchemy URL as libpq takes it (no +driver)."""
    scheme, _, rest = database_url.partition("://")
    return f"{scheme.split('+')[0]}://{rest}"


def _pg_connect(database_url, **options):
    import psycopg

    return psycopg.connect(libpq_url(database_url), **options)


def _pg_reset_reference(connection):
    """Fresh reference tables: records with a unique email index, error rows, and an unlogged staging table."""
    schema = REFERENCE_SCHEMA
    connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    connection.execute(f"CREATE SCHEMA {schema}")
    connection.execute(
        f"CREATE TABLE {schema}.records (id bigserial PRIMARY KEY, job_id integer, row integer, name text,"
        " email text, email_key text, company text, extra jsonb, status text)"
    )
    connection.execute(f"CREATE UNIQUE INDEX ON {schema}.records (email_key)")
    connection.execute(
        f"CREATE TABLE {schema}.import_errors (id bigserial PRIMARY KEY, job_id integer, row integer,"
        " category text, message text, data jsonb)"
    )
    connection.execute(
        f"CREATE UNLOGGED TABLE {schema}.staging (row integer, name text, email text, email_key text,"
        " company text, extra jsonb)"
    )
    # COPY + merge: the CSV's cells as the server reads them, numbered in file order.
    connection.execute(
        f"CREATE UNLOGGED TABLE {schema}.raw (row bigint GENERATED ALWAYS AS IDENTITY, name text, email text,"
        " company text)"
    )


def _pg_merge(connection, job_id, source):
    """The one merge: stage into records, skipping stored emails (the first row of a repeated email wins), and
    turn every skipped row into a duplicate error row, in one statement."""
    schema = REFERENCE_SCHEMA
    connection.execute(f"ANALYZE {schema}.{source}")
    connection.execute(
        f"""
        WITH stored AS (
            INSERT INTO {schema}.records (job_id, row, name, email, email_key, company, extra, status)
            SELECT %(job)s, row, name, email, email_key, company, extra, 'pending' FROM {schema}.{source} ORDER BY row
            ON CONFLICT (email_key) DO NOTHING
            RETURNING row
        )
        INSERT INTO {schema}.import_errors (job_id, row, category, message, data)
        SELECT %(job)s, s.row, 'duplicate', 'email "' || s.email || '" is a duplicate',
               jsonb_build_object('name', s.name, 'email', s.email, 'company', s.company)
        FROM {schema}.{source} s WHERE NOT EXISTS (SELECT 1 FROM stored WHERE stored.row = s.row)
        """,
        {"job": job_id},
    )


def _pg_fair_import(connection, path, job_id):
    """csv + validate() + binary COPY of the contacts into staging, the merge, and COPY of the rejected rows."""
    from psycopg.types.json import Jsonb

    schema = REFERENCE_SCHEMA
    rows, errors = 0, []
    with connection.transaction():
        connection.execute(f"TRUNCATE {schema}.staging")
        with connection.cursor().copy(
            f"COPY {schema}.staging (row, name, email, email_key, company, extra) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int4", "text", "text", "text", "text", "jsonb"])
            for item in read_validated(path):
                rows += 1
                if isinstance(item, Contact):
                    extra = Jsonb(item.extra) if item.extra else None
                    copy.write_row((item.row, item.name, item.email, item.email_key, item.company, extra))
                else:
                    errors.append((job_id, item.row, item.category, item.message, Jsonb(item.data)))
        _pg_merge(connection, job_id, "staging")
        with connection.cursor().copy(
            f"COPY {schema}.import_errors (job_id, row, category, message, data) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int4", "int4", "text", "text", "jsonb"])
            for error in errors:
                copy.write_row(error)
    return rows


def postgres_reference(csv_path, seed_path, database_url):
    """The fair reference on PostgreSQL: import seed_path untimed, then csv_path timed; return (rows, seconds)."""
    with _pg_connect(database_url, autocommit=True) as connection:
        _pg_reset_reference(connection)
        _pg_fair_import(connection, seed_path, job_id=1)
        started = time.perf_counter()
        rows = _pg_fair_import(connection, csv_path, job_id=2)
        seconds = time.perf_counter() - started
        _pg_drop_reference(connection)
    return rows, seconds


def _pg_drop_reference(connection):
    connection.execute(f"DROP SCHEMA IF EXISTS {REFERENCE_SCHEMA} CASCADE")


def copyable_file(path):
    """The file without its ragged rows (0.4 %), written once beside it: COPY refuses a row of the wrong width,
    and the COPY + merge reference validates nothing. Returns (path, data rows)."""
    target = path.with_name(path.stem + "-copyable.csv")
    if not target.exists():
        partial = target.with_suffix(".partial")
        with (
            open(path, encoding="utf-8-sig", newline="") as source,
            open(partial, "w", encoding="utf-8", newline="") as out,
        ):
            reader, writer = csv.reader(source), csv.writer(out, lineterminator="\n")
            header = next(reader)
            writer.writerow(header[:3])
            writer.writerows(cells[:3] for cells in reader if len(cells) == len(header))
        partial.rename(target)
    with open(target, encoding="utf-8", newline="") as file:
        return target, sum(1 for _ in csv.reader(file)) - 1


def _pg_copy_import(connection, path, job_id):
    """COPY the CSV as it is (parsed by the server), then the same merge with email_key = lower(trim(email))."""
    schema = REFERENCE_SCHEMA
    with connection.transaction():
        connection.execute(f"TRUNCATE {schema}.raw RESTART IDENTITY")
        with (
            connection.cursor().copy(
                f"COPY {schema}.raw (name, email, company) FROM STDIN (FORMAT CSV, HEADER true)"
            ) as copy,
            open(path, "rb") as file,
        ):
            while chunk := file.read(1 << 20):
                copy.write(chunk)
        _pg_stage_raw(connection)
        _pg_merge(connection, job_id, "staging")


def _pg_stage_raw(connection):
    """Give the raw cells the staging table's shape (row numbers as in the file, email key), in SQL."""
    schema = REFERENCE_SCHEMA
    connection.execute(f"TRUNCATE {schema}.staging")
    connection.execute(
        f"INSERT INTO {schema}.staging (row, name, email, email_key, company)"
        f" SELECT row + 1, name, email, lower(trim(email)), company FROM {schema}.raw"
    )


def copy_merge_reference(csv_path, seed_path, database_url):
    """COPY + merge (no validation): seed untimed, then the file timed; return (rows, seconds)."""
    csv_path, rows = copyable_file(csv_path)
    seed_path, _ = copyable_file(seed_path)
    with _pg_connect(database_url, autocommit=True) as connection:
        _pg_reset_reference(connection)
        _pg_copy_import(connection, seed_path, job_id=1)
        started = time.perf_counter()
        _pg_copy_import(connection, csv_path, job_id=2)
        seconds = time.perf_counter() - started
        _pg_drop_reference(connection)
    return rows, seconds


def pgloader_reference(csv_path, seed_path, database_url):
    """pgloader loads the CSV (without its ragged rows, as COPY + merge) into the raw table, then the same merge,
    timed together; the seed goes in untimed. Return (rows, seconds)."""
    csv_path, rows = copyable_file(csv_path)
    seed_path, _ = copyable_file(seed_path)
    with _pg_connect(database_url, autocommit=True) as connection:
        _pg_reset_reference(connection)
        for job_id, path in ((1, seed_path), (2, csv_path)):
            started = time.perf_counter()
            connection.execute(f"TRUNCATE {REFERENCE_SCHEMA}.raw RESTART IDENTITY")
            # A command file, because only it can name the target columns (the table numbers the rows; pgloader's
            # parallel batches may number them out of file order, which changes only which repeat is kept).
            command = common.BENCH_DIR / "pgloader-reference.load"
            command.write_text(
                f"LOAD CSV FROM '{path}' (name, email, company)\n"
                f"  INTO {libpq_url(database_url)} TARGET TABLE {REFERENCE_SCHEMA}.raw\n"
                "  TARGET COLUMNS (name, email, company)\n"
                "  WITH skip header = 1, fields optionally enclosed by '\"', fields terminated by ',';\n"
            )
            try:
                subprocess.run(["pgloader", "--quiet", str(command)], check=True, capture_output=True)
            finally:
                command.unlink()
            loaded = connection.execute(f"SELECT count(*) FROM {REFERENCE_SCHEMA}.raw").fetchone()[0]
            if job_id == 2 and loaded != rows:
                raise RuntimeError(f"pgloader loaded {loaded} of {rows} rows of {path}")
            with connection.transaction():
                _pg_stage_raw(connection)
                _pg_merge(connection, job_id, "staging")
            seconds = time.perf_counter() - started
        _pg_drop_reference(connection)
    return rows, seconds


# --- the app ---------------------------------------------------------------------------------------------------


def preload_records(database_url, count, seed=17):
    """Fill the app's records table with `count` delivered records of one completed job, fast (COPY on PostgreSQL,
    executemany on SQLite), with emails that no sample file holds (each carries +preload) but that sort among
    theirs, so the new rows land all over the unique email index as they would in a table grown by real imports.

    The job is made through the app's ImportJob model and the records' columns are read from its Record table, so
    columns added meanwhile take their defaults (a NOT NULL column with none stops the run, naming it).
    """
    from importdash import create_app
    from importdash.extensions import db
    from importdash.models import ImportJob, Record, RecordStatus, utcnow
    from importdash.runtime import get_runtime

    app = create_app({"DATABASE_URL": database_url})
    try:
        with app.app_context():
            now = utcnow()
            last_row = count + 1
            job = ImportJob(
                mode="batch",
                source="preloaded.csv",
                path="preloaded.csv",
                status="completed",
                total_records=count,
                estimated_total=count,
                processed_count=count,
                success_count=count,
                rows_read=count,
                cursor=last_row,
                created_at=now,
                started_at=now,
                completed_at=now,
            )
            # Where jobs have delivery watermarks (one write per record), a delivered record is stored once, pending
            # and never attempted, and the job's watermarks say it succeeded; before them it was stored succeeded.
            watermarks = hasattr(ImportJob, "settled_through")
            if watermarks:
                job.sent_through = job.settled_through = last_row
            db.session.add(job)
            db.session.commit()
            job_id = job.id
            given = {
                "job_id": lambda n: job_id,
                "row": lambda n: n + 2,
                "name": None,
                "email": None,
                "email_key": None,
                "company": lambda n: "Preload Analytics Ltd",
                "status": lambda n: (RecordStatus.PENDING if watermarks else RecordStatus.SUCCEEDED).value,
                "attempts": lambda n: 0 if watermarks else 1,
            }
            columns, makers = [], []
            for column in Record.__table__.columns:
                if column.name in given:
                    columns.append(column.name)
                    makers.append(given[column.name])
                elif column.primary_key or column.server_default is not None or column.nullable:
                    continue
                elif column.default is not None and column.default.is_scalar:
                    columns.append(column.name)
                    makers.append(lambda n, value=column.default.arg: value)
                else:
                    raise RuntimeError(f"preload: records.{column.name} needs a value this script does not know")
            rng = random.Random(seed)
            firsts = [generate_sample._ascii(name) for name in generate_sample.FIRST_NAMES]
            lasts = [generate_sample._ascii(name) for name in generate_sample.LAST_NAMES]

            def rows():
                for n in range(count):
                    first, last = rng.choice(firsts), rng.choice(lasts)
                    email = f"{first}.{last}{n}+preload@{rng.choice(generate_sample.DOMAINS)}"
                    values = {"name": f"{first.title()} {last.title()}", "email": email, "email_key": email}
                    pairs = zip(columns, makers, strict=True)
                    yield tuple(values[name] if maker is None else maker(n) for name, maker in pairs)

            engine = db.engine
            raw = engine.raw_connection()
            try:
                if engine.dialect.name == "postgresql":
                    cursor = raw.driver_connection.cursor()
                    with cursor.copy(f"COPY records ({', '.join(columns)}) FROM STDIN") as copy:
                        for values in rows():
                            copy.write_row(values)
                    raw.driver_connection.commit()
                    raw.driver_connection.autocommit = True
                    raw.driver_connection.execute("VACUUM ANALYZE records")  # a table that has stood a while
                    raw.driver_connection.autocommit = False
                else:
                    sqlite = raw.driver_connection
                    sqlite.execute("PRAGMA cache_size=-262144")  # 256 MB, for this connection only
                    statement = f"INSERT INTO records ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                    batch = []
                    for values in rows():
                        batch.append(values)
                        if len(batch) == PRELOAD_BATCH:
                            sqlite.executemany(statement, batch)
                            batch = []
                    sqlite.executemany(statement, batch)
                    sqlite.commit()  # no ANALYZE: the app never runs one on SQLite, and its plans would change
            finally:
                raw.close()
            engine.dispose()
    finally:
        get_runtime(app).runner.shutdown()


def app_import(mode, csv_path, seed_path, workdir, database_url, *, preload=0):
    """Import seed_path, then time csv_path through the server; return a dict of figures."""
    if database_url:
        common.reset_database(database_url)
    else:
        database_url = common.sqlite_url(workdir)
    if preload:
        started = time.perf_counter()
        preload_records(database_url, preload)
        print(f"  (preloaded {preload:,} records in {time.perf_counter() - started:.1f} s)", flush=True)
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

        job = server.follow_job(body["job"]["id"], timeout=TIMEOUT, on_event=watch)
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


def _in_scratch(prefix, run):
    workdir = common.scratch_dir(prefix)
    try:
        return run(workdir)
    finally:
        common.remove(workdir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--modes", default="batch,stream")
    parser.add_argument(
        "--seed-rows", type=int, default=SEED_ROWS, help="rows imported before each timed import (at least 1)"
    )
    parser.add_argument(
        "--database-url",
        help="run the app and the PostgreSQL references on this database (the app's tables are dropped!)",
    )
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        help="also time a batch import into a records table already holding this many records (0: skip)",
    )
    parser.add_argument(
        "--extra-columns",
        type=int,
        default=0,
        help="columns beyond name, email and company in each file, kept as the records' extra fields",
    )
    args = common.parse_args(parser, smoke={"rows": 1_000, "runs": 1, "seed_rows": 10, "preload": 5_000})
    if args.seed_rows < 1:
        parser.error("--seed-rows must be at least 1: the app refuses a file without data rows")
    csv_path = common.sample_file(args.rows, extra_columns=args.extra_columns)
    seed_path = common.sample_file(args.seed_rows, extra_columns=args.extra_columns)
    modes = args.modes.split(",")
    database = "PostgreSQL" if args.database_url else "SQLite"
    pgloader = shutil.which("pgloader") if args.database_url else None
    print(
        f"ingest: {args.rows:,} rows ({args.extra_columns} extra columns) after {args.seed_rows:,} seeded, "
        f"app and references on {database}, {args.runs} rounds"
        + (f", preloaded table of {args.preload:,} records" if args.preload else "")
    )
    if args.database_url and not pgloader:
        print("pgloader + merge: skipped (pgloader is not on PATH)")

    references = {"fair": [], "copy": [], "pgloader": []}
    ratios = {(mode, phase): [] for mode in modes for phase in ("staging", "whole")}
    ratios["preloaded"] = []
    batch_whole = []  # the app's batch rows/s per round, to set against the context references
    for round_number in range(1, args.runs + 1):
        if args.database_url:
            rows, seconds = postgres_reference(csv_path, seed_path, args.database_url)
        else:
            rows, seconds = _in_scratch("reference-", lambda workdir: sqlite_reference(csv_path, seed_path, workdir))
        fair = rows / seconds
        references["fair"].append(fair)
        print(f"round {round_number}: fair reference {fair:,.0f} rows/s ({seconds:.1f} s)", flush=True)
        empty_whole = None
        for mode in modes:
            figures = _in_scratch(
                f"{mode}-", lambda workdir, mode=mode: app_import(mode, csv_path, seed_path, workdir, args.database_url)
            )
            staging_rate = figures["rows"] / figures["staging"]
            whole_rate = figures["rows"] / figures["whole"]
            ratios[(mode, "staging")].append(staging_rate / fair)
            ratios[(mode, "whole")].append(whole_rate / fair)
            if mode == "batch":
                empty_whole = whole_rate
                batch_whole.append(whole_rate)
            print(
                f"round {round_number}: {mode:6} upload {figures['upload']:.1f} s, "
                f"staged {figures['staging']:.1f} s = {staging_rate:,.0f} rows/s ({staging_rate / fair:.2f}), "
                f"whole import {figures['whole']:.1f} s = {whole_rate:,.0f} rows/s ({whole_rate / fair:.2f}); "
                f"{figures['succeeded']:,} delivered, {figures['failed']:,} errors",
                flush=True,
            )
            if args.database_url and mode == modes[0]:
                # The context references between the app's runs, so they share the round's noise too.
                rows, seconds = copy_merge_reference(csv_path, seed_path, args.database_url)
                references["copy"].append(rows / seconds)
                print(f"round {round_number}: COPY + merge {rows / seconds:,.0f} rows/s ({seconds:.1f} s)", flush=True)
                if pgloader:
                    rows, seconds = pgloader_reference(csv_path, seed_path, args.database_url)
                    references["pgloader"].append(rows / seconds)
                    print(
                        f"round {round_number}: pgloader + merge {rows / seconds:,.0f} rows/s ({seconds:.1f} s)",
                        flush=True,
                    )
        if args.preload:
            figures = _in_scratch(
                "preloaded-",
                lambda workdir: app_import(
                    "batch", csv_path, seed_path, workdir, args.database_url, preload=args.preload
                ),
            )
            whole_rate = figures["rows"] / figures["whole"]
            if empty_whole is None:  # batch was not among --modes: time the empty table here
                empty = _in_scratch(
                    "batch-", lambda workdir: app_import("batch", csv_path, seed_path, workdir, args.database_url)
                )
                empty_whole = empty["rows"] / empty["whole"]
            ratios["preloaded"].append(whole_rate / empty_whole)
            print(
                f"round {round_number}: batch into {args.preload:,} preloaded records: whole import "
                f"{figures['whole']:.1f} s = {whole_rate:,.0f} rows/s ({whole_rate / empty_whole:.2f} of the empty "
                f"table's {empty_whole:,.0f})",
                flush=True,
            )

    print(f"summary on {database} (median, min-max over rounds):")
    print(f"  fair reference         {common.spread(references['fair'])} rows/s")
    for name, label in (("copy", "COPY + merge"), ("pgloader", "pgloader + merge")):
        if references[name]:
            line = f"  {label:22} {common.spread(references[name])} rows/s"
            if batch_whole:
                shares = [app / ref for app, ref in zip(batch_whole, references[name], strict=True)]
                line += f"; batch whole is {_ratio_spread(shares)} of it (context, no target)"
            print(line)
    for mode in modes:
        for phase in ("staging", "whole"):
            if phase == "staging" and mode != "batch":
                continue  # a stream delivers while it stages: its staging is not a phase of its own
            target = TARGETS[(database, phase)]
            print(
                f"  {mode + ' ' + phase:22} {_ratio_spread(ratios[(mode, phase)])} of the fair reference "
                f"(target >= {target})"
            )
    if ratios["preloaded"]:
        print(
            f"  batch whole into {args.preload:,} preloaded records {_ratio_spread(ratios['preloaded'])} of the same "
            f"into an empty table (target >= {TARGETS['preloaded']})"
        )


def _ratio_spread(values):
    """'median (min-max)' of ratios, two decimals."""
    return f"{common.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    main()
