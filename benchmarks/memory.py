"""Target 2: a Stream import's peak server RSS on a 1,000,000-row file against its peak on a 100,000-row file.

Each size runs in a fresh server (gunicorn, shipped config, rate limit lifted, simulated latency 0) on a
fresh SQLite database, so each peak (the worker's VmHWM from /proc, which covers every moment, not just the
samples) belongs to that import alone. The baseline is the small file's peak in the same round, and the
worker's RSS right after start-up is printed for scale. Targets: large peak <= 1.2 x small peak, and
< 200 MB.

    .venv/bin/python benchmarks/memory.py [--runs 2] [--small 100000] [--large 1000000] [--database-url ...] [--smoke]

--smoke runs one round of 1,000 rows against 2,000.
"""

import argparse

import common

TIMEOUT = 1800


def peak_rss(rows, database_url):
    """Run one stream import of a `rows`-row file in a fresh server; return (idle kB, peak kB, job)."""
    csv_path = common.sample_file(rows)
    workdir = common.scratch_dir("memory-")
    try:
        if database_url:
            common.reset_database(database_url)
        url = database_url or common.sqlite_url(workdir)
        with common.Server(workdir, url, rate_per_second=0, simulated_latency_ms=0) as server:
            idle = server.rss_kb()
            status, body = server.upload("/api/import/stream", csv_path)
            assert status == 202, body
            job = server.wait_for_job(body["job"]["id"], timeout=TIMEOUT, poll=0.5)
            peak = server.rss_kb("VmHWM")
    finally:
        common.remove(workdir)
    assert job["status"] == "completed" and job["processed_count"] == rows, job
    return idle, peak, job


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="run the app on this database (its tables are dropped!)")
    args = common.parse_args(parser, smoke={"runs": 1, "small": 1_000, "large": 2_000})
    print(f"memory: stream import peak worker RSS, {args.large:,} rows against {args.small:,} rows")
    ratios, larges = [], []
    for round_number in range(1, args.runs + 1):
        idle, small, _ = peak_rss(args.small, args.database_url)
        _, large, _ = peak_rss(args.large, args.database_url)
        ratios.append(large / small)
        larges.append(large / 1024)
        print(
            f"round {round_number}: idle {idle / 1024:.1f} MB, peak {small / 1024:.1f} MB on {args.small:,} rows, "
            f"{large / 1024:.1f} MB on {args.large:,} rows -> {large / small:.3f}x",
            flush=True,
        )
    print(
        f"summary: large/small peak {min(ratios):.3f}-{max(ratios):.3f}x (target <= 1.2x); "
        f"large peak {min(larges):.1f}-{max(larges):.1f} MB (target < 200 MB)"
    )


if __name__ == "__main__":
    main()
