"""Print figures for webhook delivery and the errors.csv and results.csv exports (never run as a test).

    .venv/bin/python benchmarks/delivery_and_export.py [--rows 20000] [--errors 200000] [--results 200000] [--smoke]

Delivery: a batch import of --rows contacts to a webhook on loopback that accepts everything at once, with
the rate limit lifted, so the figure is this side's cost per record (HTTP, settling, counting).
Export: --errors error rows streamed as errors.csv, then the peak Python memory of a second, traced download.
Results: --results delivered records streamed as results.csv, and the same for a tenth as many: the ratio of the
two peaks is about 1 when memory stays flat (the reference run is the small one, in the same script).
--smoke delivers 1,000 rows and exports 1,000 errors and 1,000 records.
"""

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import common  # noqa: E402
from scripted_downstream import ScriptedDownstream  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from importdash import create_app  # noqa: E402
from importdash.extensions import db  # noqa: E402
from importdash.models import ImportJob, Record, RowError, utcnow  # noqa: E402
from importdash.runtime import get_runtime, stop_background  # noqa: E402


def measure_delivery(folder, rows, records_per_call):
    path = Path(folder) / "contacts.csv"
    path.write_text("name,email\n" + "".join(f"Person {n},person{n}@example.com\n" for n in range(rows)))
    server = ScriptedDownstream()
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{folder}/delivery.db",
            "UPLOAD_FOLDER": f"{folder}/uploads",
            "DOWNSTREAM": "webhook",
            "WEBHOOK_URL": server.url,
            "RATE_PER_SECOND": 0,
            "RECORDS_PER_CALL": records_per_call,
        }
    )
    try:
        with app.app_context(), path.open("rb") as handle:
            started = time.perf_counter()
            response = app.test_client().post("/api/import/batch", data={"file": (handle, "contacts.csv")})
            job_id = response.get_json()["job"]["id"]
            get_runtime(app).runner.wait(job_id, timeout=600)
            elapsed = time.perf_counter() - started
            job = db.session.get(ImportJob, job_id)
            assert job.success_count == rows, job.to_dict()
    finally:
        stop_background(app, wait=True)
        server.close()
    calls = len(server.calls)
    print(
        f"delivery: {rows} rows, {records_per_call} per call, {calls} calls in {elapsed:.2f} s "
        f"= {rows / elapsed:,.0f} records/s, {calls / elapsed:,.0f} calls/s"
    )


def measure_export(folder, errors):
    app = create_app({"DATABASE_URL": f"sqlite:///{folder}/export.db", "UPLOAD_FOLDER": f"{folder}/uploads"})
    with app.app_context():
        job = ImportJob(mode="batch", source="x.csv", path=app.config["SAMPLE_FILE"], status="completed")
        db.session.add(job)
        db.session.commit()
        now = utcnow()
        for start in range(0, errors, 10_000):
            db.session.execute(
                insert(RowError.__table__),
                [
                    {
                        "job_id": job.id,
                        "row": n + 2,
                        "category": "invalid_format",
                        "message": f"email x{n} is not valid",
                        "data": {"name": f"=Person {n}", "email": f"x{n}", "company": "Acme"},
                        "created_at": now,
                    }
                    for n in range(start, min(start + 10_000, errors))
                ],
            )
        db.session.commit()
        client = app.test_client()
        started = time.perf_counter()
        size = _download(client, f"/api/import/{job.id}/errors.csv")
        elapsed = time.perf_counter() - started
        tracemalloc.start()  # a second, traced download: tracing slows it, so it is not the one timed
        _download(client, f"/api/import/{job.id}/errors.csv")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    stop_background(app, wait=True)
    print(
        f"export: {errors} errors, {size / 1e6:.1f} MB in {elapsed:.2f} s = {errors / elapsed:,.0f} rows/s, "
        f"peak Python memory {peak / 1e6:.1f} MB"
    )


def measure_results_export(folder, records):
    """Time results.csv for the records, and compare its peak memory with a reference run of a tenth as many."""
    app = create_app({"DATABASE_URL": f"sqlite:///{folder}/results.db", "UPLOAD_FOLDER": f"{folder}/uploads"})
    with app.app_context():
        client = app.test_client()
        figures = {}
        for count in (max(records // 10, 1), records):
            job = ImportJob(mode="batch", source="x.csv", path=app.config["SAMPLE_FILE"], status="completed")
            db.session.add(job)
            db.session.commit()
            for start in range(0, count, 10_000):
                db.session.execute(
                    insert(Record.__table__),
                    [
                        {
                            "job_id": job.id,
                            "row": n + 2,
                            "name": f"=Person {n}",
                            "email": f"p{n}@example.com",
                            "email_key": f"{job.id}-p{n}@example.com",
                            "company": "Acme",
                            "status": "succeeded",
                            "attempts": 1,
                            "response": {"status": "accepted", "id": f"sim-{n:012x}"},
                        }
                        for n in range(start, min(start + 10_000, count))
                    ],
                )
            db.session.commit()
            started = time.perf_counter()
            size = _download(client, f"/api/import/{job.id}/results.csv")
            elapsed = time.perf_counter() - started
            tracemalloc.start()  # a second, traced download: tracing slows it, so it is not the one timed
            _download(client, f"/api/import/{job.id}/results.csv")
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            figures[count] = (size, elapsed, peak)
    stop_background(app, wait=True)
    (small, (_, _, small_peak)), (large, (size, elapsed, peak)) = sorted(figures.items())
    print(
        f"results: {large} records, {size / 1e6:.1f} MB in {elapsed:.2f} s = {large / elapsed:,.0f} rows/s, "
        f"peak Python memory {peak / 1e6:.1f} MB = {peak / small_peak:.2f}x the peak for {small} records "
        f"({large / small:.0f}x as many)"
    )


def _download(client, url):
    """Read a streamed response chunk by chunk, as a browser would, and return its size in bytes."""
    response = client.get(url, buffered=False)
    try:
        return sum(len(chunk) for chunk in response.response)
    finally:
        response.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--records-per-call", type=int, default=16)
    parser.add_argument("--errors", type=int, default=200_000)
    parser.add_argument("--results", type=int, default=200_000)
    args = common.parse_args(parser, smoke={"rows": 1_000, "errors": 1_000, "results": 1_000})
    with tempfile.TemporaryDirectory() as folder:
        measure_delivery(folder, args.rows, args.records_per_call)
        measure_export(folder, args.errors)
        measure_results_export(folder, args.results)


if __name__ == "__main__":
    main()
