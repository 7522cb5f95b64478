"""Targets 3 and 4: how closely imports use the downstream's rate limit, against the bucket's own arithmetic.

  rate-use   20 calls/s, burst 4, one record per call, an upload of 2,000 valid rows (batch and stream):
             calls made / calls the bucket allows over the job's run (target >= 99 %), and the worst window
             of any length against burst + rate x window (target: never more), from call times recorded
             in the simulated downstream;
  default    the bundled 1,000-row import with the default limits (2 calls/s, burst 4, 16 records per
             call): the job's duration / the bucket's minimum for its number of calls (target <= 105 %).

The app runs in this process (create_app and its test client) so the simulator that records the call times
is the one the jobs call. The baseline is the bucket's theoretical figure for the same number of calls.

    .venv/bin/python benchmarks/rate_limit.py [--runs 2] [--only rate-use|default] [--modes batch,stream] [--smoke]

--smoke runs one round quicker: rate-use with 1,000 rows at 100 calls/s, the default import at 20 calls/s.
"""

import argparse
import csv
import io
import time
from datetime import datetime

import common
import generate_sample

import importdash.runtime
from importdash import create_app
from importdash.config import Config
from importdash.runtime import get_runtime
from importdash.services.downstream import SimulatedDownstream, parse_domains
from importdash.services.reader import SourceRow
from importdash.services.validator import Contact, validate

VALID_ROWS = 2_000
# Call times are read in the simulator, a few lines after the bucket granted the token; a window is only
# counted as over the limit when it beats the limit by more than this much clock jitter.
TIMESTAMP_TOLERANCE = 0.002  # seconds


class Recording:
    """Make create_app build a simulated downstream that records its call times, and keep a handle on it."""

    def __init__(self):
        self.downstream = None
        self._original = importdash.runtime.build_downstream

    def __enter__(self):
        def build(config):
            self.downstream = SimulatedDownstream(
                latency_ms=config["SIMULATED_LATENCY_MS"],
                reject_domains=parse_domains(config["SIMULATED_REJECT_DOMAINS"]),
                record_calls=True,
            )
            return self.downstream

        importdash.runtime.build_downstream = build
        return self

    def __exit__(self, *exc_info):
        importdash.runtime.build_downstream = self._original


def valid_rows_csv(count):
    """A CSV of `count` generated rows that are all valid, distinct and accepted by the simulator."""
    blocked = parse_domains(Config.SIMULATED_REJECT_DOMAINS)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(generate_sample.HEADER)
    seen, row = set(), 1
    for cells in generate_sample.generate_rows(count * 2, seed=7):
        row += 1
        if len(cells) != 3:
            continue
        outcome = validate(SourceRow(row, *cells, {}, None))
        if (
            isinstance(outcome, Contact)
            and outcome.email_key not in seen
            and outcome.email_key.split("@")[1] not in blocked
        ):
            seen.add(outcome.email_key)
            writer.writerow(cells)
            if len(seen) == count:
                return out.getvalue().encode()
    raise RuntimeError("not enough valid rows generated")


def run_import(settings, *, upload=None, mode="batch", timeout=600):
    """Run one import in a fresh app; return (job dict, call times, seconds from the request to the end)."""
    workdir = common.scratch_dir("rate-")
    try:
        config = {
            "DATABASE_URL": common.sqlite_url(workdir),
            "UPLOAD_FOLDER": str(workdir / "uploads"),
            "SIMULATED_LATENCY_MS": 0,
            **settings,
        }
        with Recording() as recording:
            app = create_app(config)
        runner = get_runtime(app).runner
        try:
            client = app.test_client()
            started = time.perf_counter()
            if upload is None:
                response = client.post("/api/import")
            else:
                response = client.post(
                    f"/api/import/{mode}",
                    data={"file": (io.BytesIO(upload), "valid.csv")},
                    content_type="multipart/form-data",
                )
            assert response.status_code == 202, response.get_json()
            job_id = response.get_json()["job"]["id"]
            runner.wait(job_id, timeout=timeout)
            elapsed = time.perf_counter() - started
            job = client.get(f"/api/import/{job_id}").get_json()["job"]
        finally:
            runner.shutdown()
        assert job["status"] == "completed", job
        return job, recording.downstream.call_times, elapsed
    finally:
        common.remove(workdir)


def worst_window(times, rate, burst):
    """Return the largest (calls in a window) - (burst + rate x window) over every window of the call times."""
    best_start = float("-inf")  # max over i <= j of rate * t_i - i
    worst = float("-inf")
    for j, moment in enumerate(times):
        best_start = max(best_start, rate * moment - j)
        worst = max(worst, (j + 1 - rate * moment) + best_start - burst)
    return worst


def job_seconds(job):
    started = datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
    completed = datetime.fromisoformat(job["completed_at"].replace("Z", "+00:00"))
    return (completed - started).total_seconds()


def rate_use(mode, upload, rows, rate):
    burst = 4
    job, times, _ = run_import(
        {"RATE_PER_SECOND": rate, "RATE_BURST": burst, "RECORDS_PER_CALL": 1}, upload=upload, mode=mode
    )
    assert job["success_count"] == rows == len(times), (job, len(times))
    run = job_seconds(job)
    span = times[-1] - times[0]
    use_run = len(times) / (burst + rate * run)
    use_span = len(times) / (burst + rate * span)
    excess = worst_window(times, rate, burst)
    ok = use_run >= 0.99 and excess <= rate * TIMESTAMP_TOLERANCE
    print(
        f"rate-use {mode:6}: {len(times):,} calls in {span:.2f} s of calls, {run:.2f} s of job; "
        f"use {use_run:.2%} of what the bucket allows over the job ({use_span:.2%} over the calls); "
        f"worst window {excess:+.3f} calls against burst + rate x window "
        f"(= {1000 * excess / rate:+.2f} ms) -> {'ok' if ok else 'MISSED'}",
        flush=True,
    )
    return use_run, excess


def default_import(rate=None):
    """The bundled import with the default limits, or with only the rate changed (`rate` calls/s)."""
    job, times, elapsed = run_import({} if rate is None else {"RATE_PER_SECOND": rate})
    rate, burst = rate or Config.RATE_PER_SECOND, Config.RATE_BURST
    calls = len(times)
    minimum = max(calls - burst, 0) / rate
    run = job_seconds(job)
    print(
        f"default: {job['total_records']:,} rows, {calls} calls at {rate:g}/s burst {burst}: job {run:.2f} s, "
        f"request to end {elapsed:.2f} s, bucket minimum {minimum:.2f} s -> {run / minimum:.1%} of the minimum "
        f"({elapsed / minimum:.1%} from the request) -> {'ok' if run <= 1.05 * minimum else 'MISSED'}",
        flush=True,
    )
    return run / minimum


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", choices=["rate-use", "default"])
    parser.add_argument("--modes", default="batch,stream")
    parser.add_argument("--rows", type=int, default=VALID_ROWS, help="valid rows uploaded for rate-use")
    parser.add_argument("--rate", type=float, default=20, help="calls/s for rate-use")
    parser.add_argument("--default-rate", type=float, help="calls/s for the default import (default: the app's)")
    args = common.parse_args(parser, smoke={"runs": 1, "rows": 1_000, "rate": 100, "default_rate": 20})
    upload = valid_rows_csv(args.rows)
    uses, excesses, defaults = [], [], []
    for _ in range(args.runs):
        if args.only in (None, "rate-use"):
            for mode in args.modes.split(","):
                use, excess = rate_use(mode, upload, args.rows, args.rate)
                uses.append(use)
                excesses.append(excess)
        if args.only in (None, "default"):
            defaults.append(default_import(args.default_rate))
    if uses:
        print(
            f"summary rate-use: {min(uses):.2%}-{max(uses):.2%} of the allowed rate (target >= 99 %); "
            f"worst window {max(excesses):+.3f} calls over the limit (target <= 0, "
            f"{1000 * TIMESTAMP_TOLERANCE:g} ms timestamp tolerance = {args.rate * TIMESTAMP_TOLERANCE:.2f} calls)"
        )
    if defaults:
        print(f"summary default: {min(defaults):.1%}-{max(defaults):.1%} of the bucket's minimum (target <= 105 %)")


if __name__ == "__main__":
    main()
