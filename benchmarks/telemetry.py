"""Print what metrics and traces cost an import: its rows/s with them on, as a share of the same import with them off.

Each round imports the same generated file three times in this process, each on a fresh SQLite database, with the
simulated downstream (no latency), the rate limit lifted and one record per call (the most calls, so the most hooks):
  off       no instruments, no tracer (each hook is one `is None` check), the reference;
  metrics   the instruments as under gunicorn: prometheus_client's multiprocess mode, values written to files;
  traces    metrics, and spans batched to an OTLP/HTTP receiver on loopback (one per run, chunk and call).
The order of the three turns with each round, so drift on a shared machine does not always favour one. Each import
is measured in wall-clock rows/s and in rows per CPU second of this process (all its threads, the span exporter's
included): on a shared, loaded machine the CPU figure is the steadier one, and the ratios are printed for both.

    .venv/bin/python benchmarks/telemetry.py [--rows 50000] [--runs 3] [--records-per-call 1] [--smoke]

--smoke runs one round of 1,000 rows.
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# The instruments write to files as in every gunicorn worker: prometheus_client chooses that mode when it is imported.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="importdash-bench-metrics-")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402

from importdash import create_app  # noqa: E402
from importdash.extensions import db  # noqa: E402
from importdash.models import ImportJob  # noqa: E402
from importdash.runtime import get_runtime, stop_background  # noqa: E402
from importdash.services.telemetry import NO_TELEMETRY  # noqa: E402

MODES = ("off", "metrics", "traces")


class TraceReceiver:
    """An OTLP/HTTP endpoint on loopback that takes every export and counts its bytes."""

    def __init__(self):
        self.exports = self.bytes = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                owner.bytes += len(self.rfile.read(int(self.headers["Content-Length"])))
                owner.exports += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        host, port = self._server.server_address
        self.url = f"http://{host}:{port}"

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def measure(mode, csv_path, rows, records_per_call, receiver):
    """Import the file with the mode's telemetry; return (wall-clock seconds, CPU seconds)."""
    folder = common.scratch_dir(f"telemetry-{mode}-")
    config = {
        "DATABASE_URL": common.sqlite_url(folder),
        "UPLOAD_FOLDER": str(folder / "uploads"),
        "RATE_PER_SECOND": 0,
        "SIMULATED_LATENCY_MS": 0,
        "RECORDS_PER_CALL": records_per_call,
    }
    if mode == "traces":
        config["OTLP_ENDPOINT"] = receiver.url
    app = create_app(config)
    runtime = get_runtime(app)
    if mode == "off":
        runtime.deliverer.telemetry = NO_TELEMETRY  # the runner hands the deliverer's telemetry to each job
    try:
        with app.app_context(), csv_path.open("rb") as handle:
            started, cpu_started = time.perf_counter(), time.process_time()
            response = app.test_client().post("/api/import/stream", data={"file": (handle, csv_path.name)})
            job_id = response.get_json()["job"]["id"]
            runtime.runner.wait(job_id, timeout=1800)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            job = db.session.get(ImportJob, job_id)
            if job.status != "completed" or job.processed_count != rows:
                raise SystemExit(f"{mode}: the import did not complete: {job.to_dict([])}")
    finally:
        stop_background(app, wait=True)  # sends the spans still batched
        with app.app_context():
            db.engine.dispose()
        common.remove(folder)
    return elapsed, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records-per-call", type=int, default=1)
    args = common.parse_args(parser, smoke={"rows": 1_000, "runs": 1})
    csv_path = common.sample_file(args.rows)
    receiver = TraceReceiver()
    ratios = {(mode, clock): [] for mode in MODES[1:] for clock in ("wall", "cpu")}
    try:
        # One untimed import first: the first in a process also pays for imports, caches and the app's first start.
        measure("traces", csv_path, args.rows, args.records_per_call, receiver)
        for round_number in range(args.runs):
            shift = round_number % len(MODES)
            order = MODES[shift:] + MODES[:shift]
            rates = {}
            for mode in order:
                seconds, cpu_seconds = measure(mode, csv_path, args.rows, args.records_per_call, receiver)
                rates[mode, "wall"], rates[mode, "cpu"] = args.rows / seconds, args.rows / cpu_seconds
            line = ", ".join(
                f"{mode} {rates[mode, 'wall']:,.0f} rows/s ({rates[mode, 'cpu']:,.0f} per CPU s)" for mode in MODES
            )
            for mode, clock in ratios:
                ratios[mode, clock].append(rates[mode, clock] / rates["off", clock])
            shares = ", ".join(f"{mode} {clock} {ratios[mode, clock][-1]:.0%}" for mode, clock in ratios)
            print(f"round {round_number + 1}: {line}; of off: {shares}")
    finally:
        receiver.close()
        common.remove(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    summary = ", ".join(
        f"{mode} {common.median(values):.0%} of off's {clock} rate ({min(values):.0%}-{max(values):.0%})"
        for (mode, clock), values in ratios.items()
    )
    print(f"telemetry, {args.rows} rows, {args.records_per_call} record(s) per call: {summary}")
    print(f"traces: {receiver.exports} OTLP exports, {receiver.bytes / 1e6:.1f} MB received")


if __name__ == "__main__":
    main()
