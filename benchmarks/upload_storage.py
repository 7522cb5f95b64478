"""Upload storage: a stream import's upload time and peak server RSS with each UPLOAD_STORAGE, large file against
small, and each storage against local (the baseline, in the same round).

Each storage and size runs in a fresh server (gunicorn, shipped config, rate limit lifted, simulated latency 0)
on a fresh database. Figures: the seconds from the request's first byte to its 202 (spool, check, store), the
worker's peak RSS (VmHWM) once the upload is stored, and again once the import, which reads the stored file, has
completed. Flat memory means the large file's peaks are about the small file's, whatever the storage. "s3" runs
against a local moto server when moto is installed (the test extras).

    .venv/bin/python benchmarks/upload_storage.py [--runs 1] [--small 100000] [--large 1600000]
        [--storages local,database,s3] [--database-url ...] [--smoke]

--smoke runs one round of 1,000 rows against 2,000. 1,600,000 rows is about 96 MB (MAX_UPLOAD_MB is 100).
"""

import argparse
import contextlib
import logging
import os
import time

import common

TIMEOUT = 3600


@contextlib.contextmanager
def s3_settings():
    """A local S3 server and a bucket, with dummy credentials in the environment the server inherits."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    port = common.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="importdash-bench")
        yield {"s3_bucket": "importdash-bench", "s3_endpoint_url": endpoint}
    finally:
        server.stop()


def one_run(storage, rows, database_url, extra):
    """Upload and import a `rows`-row file in a fresh server; return (upload s, idle kB, peak after upload kB,
    peak after import kB)."""
    csv_path = common.sample_file(rows)
    workdir = common.scratch_dir("storage-")
    try:
        if database_url:
            common.reset_database(database_url)
        url = database_url or common.sqlite_url(workdir)
        settings = {"rate_per_second": 0, "simulated_latency_ms": 0, "upload_storage": storage} | extra
        with common.Server(workdir, url, **settings) as server:
            idle = server.rss_kb()
            started = time.perf_counter()
            status, body = server.upload("/api/import/stream", csv_path)
            uploaded = time.perf_counter() - started
            assert status == 202, body
            after_upload = server.rss_kb("VmHWM")
            job = server.wait_for_job(body["job"]["id"], timeout=TIMEOUT, poll=0.5)
            after_import = server.rss_kb("VmHWM")
    finally:
        common.remove(workdir)
    assert job["status"] == "completed" and job["processed_count"] == rows, job
    return uploaded, idle, after_upload, after_import


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_600_000)
    parser.add_argument("--storages", default="local,database,s3")
    parser.add_argument("--database-url", help="run the app on this database (its tables are dropped!)")
    args = common.parse_args(parser, smoke={"runs": 1, "small": 1_000, "large": 2_000})
    storages = args.storages.split(",")
    sizes = {rows: common.sample_file(rows).stat().st_size / 2**20 for rows in (args.small, args.large)}
    print(
        f"upload storage: stream import of {args.large:,} rows ({sizes[args.large]:.1f} MB) against "
        f"{args.small:,} rows ({sizes[args.small]:.1f} MB); upload seconds and peak worker RSS"
    )
    with contextlib.ExitStack() as stack:
        extra = {storage: {} for storage in storages}
        if "s3" in storages:
            try:
                extra["s3"] = stack.enter_context(s3_settings())
            except ImportError:
                print("s3: skipped (moto is not installed; pip install -e '.[test]')")
                storages.remove("s3")
        for round_number in range(1, args.runs + 1):
            baseline = None
            for storage in storages:
                small = one_run(storage, args.small, args.database_url, extra[storage])
                large = one_run(storage, args.large, args.database_url, extra[storage])
                baseline = baseline or large
                print(
                    f"round {round_number} {storage:>8}: idle {large[1] / 1024:.0f} MB; "
                    f"upload {small[0]:.2f} s -> {large[0]:.2f} s ({large[0] / baseline[0]:.2f}x local); "
                    f"peak after upload {small[2] / 1024:.0f} -> {large[2] / 1024:.0f} MB "
                    f"({large[2] / small[2]:.3f}x small); "
                    f"after import {small[3] / 1024:.0f} -> {large[3] / 1024:.0f} MB "
                    f"({large[3] / small[3]:.3f}x small)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
