"""Issue #17's delivery target: the app's delivery to a loopback webhook against a plain httpx loop posting the
same bodies to the same receiver, run alternately in the same script.

Each round, on a file of --rows valid contacts with unique emails:
  reference  one httpx.Client posting {"records": [...]} calls of 16 records each, shaped as the app's (key,
             operation, version, name, email, company, extra) with the app's Idempotency-Key header, one after
             the other, reading each answer as JSON;
  app        a batch import through the real server (gunicorn, shipped config) with IMPORTDASH_DOWNSTREAM=webhook,
             the rate limit lifted: its delivery phase runs from the moment the job's total is known (staging
             done) to the job's end.
Both post to one receiver in a subprocess: a threaded stdlib HTTP/1.1 server (keep-alive) that reads each body
and answers 200 {"results": []} (every record accepted). The figure is the app's delivered records/s as a share
of the reference's in the same round (target >= 0.85).

    .venv/bin/python benchmarks/delivery.py [--rows 200000] [--runs 3] [--database-url postgresql://...] [--smoke]

--smoke runs one round of 1,000 records; it fails only if something breaks.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import common
import httpx

from importdash.services.webhook import call_key

RECEIVE_FLAG = "--receive"  # runs this file as the receiver (the script starts it so; not for people)
TIMEOUT = 3600
BODY = json.dumps({"results": []}).encode()
# The whole answer in one write: headers and body sent apart wait on the client's delayed ACK (about 40 ms).
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


class _Receiver(BaseHTTPRequestHandler):
    """Read the body and accept every record; nothing else, so the receiver costs as little as it can."""

    protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool expects
    disable_nagle_algorithm = True

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.wfile.write(ANSWER)

    def log_message(self, *args):
        pass


def serve():
    """The receiver's process: bind a free port, print it, serve until killed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Receiver:
    """The receiver as a subprocess of this script."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, __file__, RECEIVE_FLAG], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/records"

    def cpu_seconds(self):
        """User plus system CPU time the receiver has used so far: its share of a run shows whether it limits."""
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def contacts_file(rows):
    """A file of `rows` valid contacts with unique emails, written once under the bench folder."""
    common.BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = common.BENCH_DIR / f"delivery-{rows}.csv"
    if not path.exists():
        partial = path.with_suffix(".partial")
        with open(partial, "w", encoding="utf-8") as file:
            file.write("name,email,company\n")
            for n in range(rows):
                file.write(f"Person {n},person{n}@example.com,Company {n % 100}\n")
        partial.rename(path)
    return path


def reference(url, rows, records_per_call):
    """Post the file's records as the app would, one call after another; return seconds."""
    prefix = "0" * 32 + "-1"  # a job's key and id, as the app's record keys start
    with httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0)) as client:
        client.post(url, json={"records": []}, headers={"Idempotency-Key": call_key([])})  # connected, untimed
        started = time.perf_counter()
        for start in range(0, rows, records_per_call):
            records = [
                {
                    "key": f"{prefix}-{n + 2}",
                    "operation": "create",
                    "version": 1,
                    "name": f"Person {n}",
                    "email": f"person{n}@example.com",
                    "company": f"Company {n % 100}",
                    "extra": {},
                }
                for n in range(start, min(start + records_per_call, rows))
            ]
            response = client.post(url, json={"records": records}, headers={"Idempotency-Key": call_key(records)})
            response.raise_for_status()
            response.json()
        return time.perf_counter() - started


def app_delivery(receiver, path, workdir, database_url, records_per_call):
    """A batch import of the file through the server to the receiver; return (records, staging s, delivery s, the
    receiver's CPU seconds per second of delivery)."""
    if database_url:
        common.reset_database(database_url)
    else:
        database_url = common.sqlite_url(workdir)
    settings = {
        "downstream": "webhook",
        "webhook_url": receiver.url,
        "rate_per_second": 0,
        "records_per_call": records_per_call,
    }
    with common.Server(workdir, database_url, **settings) as server:
        staged_at = []
        started = time.perf_counter()
        status, body = server.upload("/api/import/batch", path)
        assert status == 202, body

        def watch(job):
            if job["total_records"] is not None and not staged_at:
                staged_at.append(time.perf_counter())
                staged_at.append(receiver.cpu_seconds())

        job = server.follow_job(body["job"]["id"], timeout=TIMEOUT, on_event=watch)
        finished = time.perf_counter()
        cpu = receiver.cpu_seconds() - staged_at[1]
    assert job["status"] == "completed" and job["success_count"] == job["total_records"], job
    delivery = finished - staged_at[0]
    return job["success_count"], staged_at[0] - started, delivery, cpu / delivery


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records-per-call", type=int, default=16)
    parser.add_argument("--database-url", help="run the app on this database (its tables are dropped!)")
    args = common.parse_args(parser, smoke={"rows": 1_000, "runs": 1})
    path = contacts_file(args.rows)
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"delivery: {args.rows:,} records, {args.records_per_call} per call, to a loopback webhook, app on "
        f"{database}, {args.runs} rounds"
    )
    receiver = Receiver()
    shares, references = [], []
    try:
        for round_number in range(1, args.runs + 1):
            # Reference, app, reference: the app's run sits between two, and is set against their mean.
            cpu = receiver.cpu_seconds()
            seconds = reference(receiver.url, args.rows, args.records_per_call)
            before, before_cpu = args.rows / seconds, (receiver.cpu_seconds() - cpu) / seconds
            workdir = common.scratch_dir("delivery-")
            try:
                records, staging, delivery, receiver_cpu = app_delivery(
                    receiver, path, workdir, args.database_url, args.records_per_call
                )
            finally:
                common.remove(workdir)
            after = args.rows / reference(receiver.url, args.rows, args.records_per_call)
            base = (before + after) / 2
            rate = records / delivery
            references.append(base)
            shares.append(rate / base)
            print(
                f"round {round_number}: reference {before:,.0f} and {after:,.0f} records/s (receiver busy "
                f"{before_cpu:.0%} of a core); app staged in {staging:.1f} s, delivered {records:,} in "
                f"{delivery:.1f} s = {rate:,.0f} records/s (receiver busy {receiver_cpu:.0%}), "
                f"{rate / base:.2f} of the reference",
                flush=True,
            )
    finally:
        receiver.close()
    print("summary (median, min-max over rounds):")
    print(f"  reference          {common.spread(references)} records/s")
    print(
        f"  app delivery       {common.median(shares):.2f} ({min(shares):.2f}-{max(shares):.2f}) of the reference "
        "(target >= 0.85)"
    )


if __name__ == "__main__":
    if sys.argv[1:] == [RECEIVE_FLAG]:
        serve()
    else:
        main()
