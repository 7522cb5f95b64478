"""Comparing two 100,000-row imports (issue #16): counts, pages and the CSV, against a plain read of both imports.

The database is filled directly (Core executemany): import A stores 100,000 records; import B, read after it
under global dedupe, has 70 % of A's emails again as duplicate error rows (a tenth of them with another company),
20 % new emails as records and 10 % rows without an email. Then, in this process on the app's services:

  reference      a plain SELECT of both imports' source rows (records and error rows), every row fetched
  counts         compare_counts: the counts per kind of difference (one streamed pass over the matched pairs)
  page only_b    compare_page of rows only in B, first page and a deep one
  page changed   compare_page of changed rows, first page
  csv            every chunk of compare_csv; then again, untimed, with the peak Python memory it allocated

and prints each time and its ratio to the reference, the same round. The CSV's peak memory is printed beside
the CSV's size, after its first chunks and at its end: flat memory means the same peak at both.

    .venv/bin/python benchmarks/compare.py [--rows 100000] [--runs 2] [--database-url postgresql://...] [--smoke]

--smoke compares two imports of 1,000 rows, one round.
"""

import argparse
import time
import tracemalloc

import common
from sqlalchemy import insert, select, union_all

from importdash import create_app
from importdash.extensions import db
from importdash.models import ImportJob, Record, RowError
from importdash.runtime import get_runtime
from importdash.services import compare

INSERT_BATCH = 20_000
EARLY_CHUNKS = 5  # the CSV's memory is measured after this many chunks (of 1,000 rows) and at its end
COLUMNS = ["name", "email", "company"]


def populate(session, rows):
    """Insert the two imports; return their ids."""
    a = ImportJob(mode="batch", source="a.csv", path="a.csv", status="completed", columns=COLUMNS, total_records=rows)
    b = ImportJob(mode="batch", source="b.csv", path="b.csv", status="completed", columns=COLUMNS, total_records=rows)
    session.add_all([a, b])
    session.flush()
    records, errors = [], []
    for row in range(2, rows + 2):
        email = f"person{row}@a.example"
        records.append(_record(a.id, row, f"Person {row}", email, "Acme"))
        share = row % 10
        if share < 7:  # A's email again: a duplicate error row, a tenth of them with another company
            company = "Globex" if row % 100 < 7 else "Acme"
            data = {"name": f"Person {row}", "email": email.upper(), "company": company}
            errors.append({"job_id": b.id, "row": row, "category": "duplicate", "message": "dup", "data": data})
        elif share < 9:
            records.append(_record(b.id, row, f"New {row}", f"new{row}@b.example", "Initech"))
        else:
            data = {"name": f"Nobody {row}", "email": "", "company": "Initech"}
            errors.append({"job_id": b.id, "row": row, "category": "missing_value", "message": "missing", "data": data})
        if len(records) + len(errors) >= INSERT_BATCH:
            _flush(session, records, errors)
    _flush(session, records, errors)
    session.commit()
    return a.id, b.id


def _record(job_id, row, name, email, company):
    return {
        "job_id": job_id,
        "row": row,
        "name": name,
        "email": email,
        "email_key": email,
        "company": company,
        "status": "succeeded",
        "version": 1,
        "attempts": 1,
    }


def _flush(session, records, errors):
    if records:
        session.execute(insert(Record), records)
    if errors:
        session.execute(insert(RowError), errors)
    records.clear()
    errors.clear()


def reference(session, a, b):
    """Read every source row of both imports, as the comparison must at least."""
    query = union_all(
        select(Record.row, Record.email, Record.name, Record.company, Record.extra).where(Record.job_id.in_([a, b])),
        select(RowError.row, RowError.message, RowError.category, RowError.category, RowError.data).where(
            RowError.job_id.in_([a, b])
        ),
    )
    return sum(1 for _ in session.execute(select(query.subquery())))


def timed(action):
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def csv_with_memory(session, a, b):
    """Read the whole CSV; return its size, and the peak Python memory after its first chunks and at its end (the
    same peak when memory is flat)."""
    tracemalloc.start()
    try:
        _, chunks = compare.compare_csv(session, a, b)
        size = 0
        early_peak = None
        for number, chunk in enumerate(chunks, start=1):
            size += len(chunk.encode())
            if number == EARLY_CHUNKS:
                early_peak = tracemalloc.get_traced_memory()[1]
        peak = tracemalloc.get_traced_memory()[1]
        return size, early_peak or peak, peak
    finally:
        tracemalloc.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in each import")
    parser.add_argument("--runs", type=int, default=2, help="rounds of measurements on the same database")
    parser.add_argument(
        "--database-url", help="fill this database instead of a fresh SQLite file (its tables are dropped!)"
    )
    args = common.parse_args(parser, smoke={"rows": 1_000, "runs": 1})
    workdir = common.scratch_dir("compare-")
    url = args.database_url or common.sqlite_url(workdir)
    app = create_app({"DATABASE_URL": url})
    try:
        with app.app_context():
            db.drop_all()
            db.create_all()
            started = time.perf_counter()
            a, b = populate(db.session, args.rows)
            if db.engine.dialect.name == "postgresql":
                with db.engine.connect() as connection:  # what autovacuum would do soon after such a load
                    connection.exec_driver_sql("ANALYZE")
                    connection.commit()
            print(
                f"compare: two imports of {args.rows:,} rows on {'PostgreSQL' if args.database_url else 'SQLite'} "
                f"(filled in {time.perf_counter() - started:.1f} s)"
            )
            session = db.session
            deep = args.rows // 10  # a page a tenth of the way in
            for round_number in range(1, args.runs + 1):
                base, read = timed(lambda: reference(session, a, b))
                session.rollback()
                steps = {
                    "counts": lambda: compare.compare_counts(session, a, b)["counts"],
                    "page only_b": lambda: compare.compare_page(
                        session, a, b, difference="only_b", limit=100, offset=0
                    ),
                    "page only_b, deep": lambda: compare.compare_page(
                        session, a, b, difference="only_b", limit=100, offset=deep
                    ),
                    "page changed": lambda: compare.compare_page(
                        session, a, b, difference="changed", limit=100, offset=0
                    ),
                    "csv": lambda: sum(len(chunk.encode()) for chunk in compare.compare_csv(session, a, b)[1]),
                }
                print(f"round {round_number}: reference (plain SELECT of {read:,} rows) {base * 1000:8.1f} ms")
                for name, step in steps.items():
                    seconds, result = timed(step)
                    session.rollback()
                    line = f"round {round_number}: {name:18} {seconds * 1000:8.1f} ms, {seconds / base:5.2f}x reference"
                    if name == "counts":
                        line += f"  {result}"
                    elif name == "csv":
                        line += f"  {result / 1e6:.2f} MB of CSV"
                    elif not result:
                        raise SystemExit(f"compare: {name} returned no rows")
                    print(line, flush=True)
                # Apart from the timings: tracemalloc slows Python down several times over.
                size, early, peak = csv_with_memory(session, a, b)
                session.rollback()
                print(
                    f"round {round_number}: csv memory: {size / 1e6:.2f} MB of CSV; peak Python memory "
                    f"{early / 1e6:.1f} MB after its first {EARLY_CHUNKS} chunks, {peak / 1e6:.1f} MB at its end",
                    flush=True,
                )
            db.drop_all()
    finally:
        get_runtime(app).runner.shutdown()
        with app.app_context():
            db.engine.dispose()
        common.remove(workdir)


if __name__ == "__main__":
    main()
