"""Issue #12: the stores a rate limit can be shared through, measured against the in-process bucket.

Each candidate runs in P processes x T threads (spawned interpreters, each with its own clients), every thread
taking grants as fast as the limit lets it and noting when each came:

  capacity  rate 1,000,000/s: grants/s the store can hand out at all, against the in-process bucket's
            (one process; nothing shared) as the reference;
  limit     rate R, burst B for S seconds: grants against what the limit allows over the run (target ~100 %);
            the worst window of any length, and of 0.1, 1 and 2 s, against burst + rate x W (target: never
            more, beyond a few ms of scheduling jitter); and fairness, each thread's grants against the mean
            (target within +-20 % over 30 s).

Candidates: process (the reference: one process's TokenBucket, as before issue #12); sqlite and postgresql
(importdash's DatabaseLimitStore: GCRA reservations in the database); redis-gcra (importdash's RedisLimitStore:
pyrate-limiter's GCRA state); redis-limits (the `limits` library's moving window, which counts whole seconds: at a
burst below the rate it can only say "R per second", shown against the same bound).

    .venv/bin/python benchmarks/rate_limit_stores.py [--seconds 30] [--rate 50] [--burst 5] [--processes 3]
        [--threads 2] [--database-url postgresql://...] [--redis-url redis://127.0.0.1:6379/0] [--smoke]

--database-url adds the PostgreSQL candidate (its schema is brought to the head revision; rows of
rate_limits named for this run are left behind, nothing is dropped); --redis-url (or IMPORTDASH_TEST_REDIS_URL)
adds the Redis ones, under keys starting with importdash-bench-rl.
"""

import argparse
import multiprocessing
import os
import threading
import time
import uuid

import common

from importdash.config import Config
from importdash.services.bucket import TokenBucket
from importdash.services.limit_store import DatabaseLimitStore, OutageBackoff, RedisLimitStore

CAPACITY_RATE = 1_000_000
CAPACITY_BURST = 1_000
CAPACITY_SECONDS = 3
WINDOWS = (0.1, 1, 2)
REDIS_PREFIX = "importdash-bench-rl"
GRANT_TOLERANCE = Config.RATE_LIMIT_GRANT_TOLERANCE_SECONDS


def _acquirer(kind, url, name, rate, burst):
    """A function that blocks until one grant is taken, and a function that closes what it opened."""
    backoff = OutageBackoff(base=0.05, cap=1.0)
    if kind == "process":
        bucket = TokenBucket(rate=rate, capacity=burst)
        return bucket.acquire, lambda: None
    if kind in ("sqlite", "postgresql"):
        from sqlalchemy import create_engine

        engine = create_engine(url, connect_args={"timeout": 30} if kind == "sqlite" else {})
        store = DatabaseLimitStore(engine, name=name, rate=rate, burst=burst)
        bucket = TokenBucket(
            rate=rate, capacity=burst, store=store, outage_backoff=backoff, grant_tolerance=GRANT_TOLERANCE
        )
        return bucket.acquire, lambda: (store.close(), engine.dispose())
    if kind == "redis-gcra":
        import redis

        store = RedisLimitStore(
            redis.Redis.from_url(url),
            prefix=REDIS_PREFIX,
            name=name,
            rate=rate,
            burst=burst,
            wall_clock_ms=lambda: time.time_ns() // 1_000_000,
        )
        bucket = TokenBucket(
            rate=rate, capacity=burst, store=store, outage_backoff=backoff, grant_tolerance=GRANT_TOLERANCE
        )
        return bucket.acquire, store.close
    if kind == "redis-limits":
        from limits import RateLimitItemPerSecond
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        storage = RedisStorage(url)
        limiter = MovingWindowRateLimiter(storage)
        # Whole seconds only: `burst` per burst/rate s when that is whole, else the rate per second.
        window = burst / rate
        item = RateLimitItemPerSecond(burst, int(window)) if window == int(window) else RateLimitItemPerSecond(rate)
        key = f"{REDIS_PREFIX}-{name}"

        def acquire():
            while not limiter.hit(item, key):
                reset_at = limiter.get_window_stats(item, key).reset_time
                time.sleep(min(max(reset_at - time.time(), 0.001), 0.25))
            return True

        return acquire, lambda: None
    raise ValueError(kind)


def _worker(kind, url, name, rate, burst, threads, seconds, ready, results):
    acquire, close = _acquirer(kind, url, name, rate, burst)
    ready.wait()
    end_at = time.time() + seconds
    per_thread = [[] for _ in range(threads)]

    def run(times):
        while time.time() < end_at:
            acquire()
            times.append(time.time())

    pool = [threading.Thread(target=run, args=(times,)) for times in per_thread]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    close()
    results.put(per_thread)


def run(kind, url, *, rate, burst, processes, threads, seconds):
    """Per-thread grant times of one candidate."""
    name = f"bench-{uuid.uuid4().hex[:12]}"
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_worker, args=(kind, url, name, rate, burst, threads, seconds, ready, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    per_thread = [times for _ in workers for times in results.get(timeout=seconds + 120)]
    for worker in workers:
        worker.join(timeout=30)
    return per_thread


def worst_excess(times, rate, burst, window=None):
    """The largest count in a window (of `window` s, or of any length) less burst + rate x its length."""
    times = sorted(times)
    worst, start, best_start = float("-inf"), 0, float("-inf")
    for end, moment in enumerate(times):
        if window is None:
            best_start = max(best_start, rate * moment - end)
            worst = max(worst, end + 1 - rate * moment + best_start - burst)
        else:
            while moment - times[start] > window:
                start += 1
            worst = max(worst, end - start + 1 - (burst + rate * window))
    return worst


def capacity(kind, url, processes, threads):
    per_thread = run(
        kind,
        url,
        rate=CAPACITY_RATE,
        burst=CAPACITY_BURST,
        processes=processes,
        threads=threads,
        seconds=CAPACITY_SECONDS,
    )
    times = sorted(t for thread in per_thread for t in thread)
    return len(times) / (times[-1] - times[0])


def limit(kind, url, args, processes):
    per_thread = run(
        kind,
        url,
        rate=args.rate,
        burst=args.burst,
        processes=processes,
        threads=args.threads,
        seconds=args.seconds,
    )
    times = sorted(t for thread in per_thread for t in thread)
    span = times[-1] - times[0]
    use = len(times) / (args.burst + args.rate * span)
    counts = [len(thread) for thread in per_thread]
    mean = sum(counts) / len(counts)
    fairness = (min(counts) / mean - 1, max(counts) / mean - 1)
    windows = {window: worst_excess(times, args.rate, args.burst, window) for window in WINDOWS}
    return use, worst_excess(times, args.rate, args.burst), windows, fairness, len(times), span


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of each limit run")
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads (jobs) per process")
    parser.add_argument("--database-url", help="add the PostgreSQL candidate on this database")
    parser.add_argument("--redis-url", default=os.environ.get("IMPORTDASH_TEST_REDIS_URL"))
    parser.add_argument("--only", help="comma-separated candidates")
    args = common.parse_args(parser, smoke={"seconds": 2})
    global CAPACITY_SECONDS
    if args.smoke:
        CAPACITY_SECONDS = 1

    workdir = common.scratch_dir("stores-")
    try:
        sqlite_url = common.sqlite_url(workdir)
        candidates = [("process", None), ("sqlite", sqlite_url)]
        _make_schema(sqlite_url)
        if args.database_url:
            url = args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
            _make_schema(url)
            candidates.append(("postgresql", url))
        if args.redis_url:
            candidates += [("redis-gcra", args.redis_url), ("redis-limits", args.redis_url)]
        else:
            print("no --redis-url (or IMPORTDASH_TEST_REDIS_URL): the Redis candidates are skipped")
        if args.only:
            candidates = [(kind, url) for kind, url in candidates if kind in args.only.split(",")]
        print(
            f"{args.processes} processes x {args.threads} threads; capacity at {CAPACITY_RATE:,}/s for "
            f"{CAPACITY_SECONDS} s; limit at {args.rate:g}/s burst {args.burst} for {args.seconds:g} s",
            flush=True,
        )
        reference = None
        for kind, url in candidates:
            processes = 1 if kind == "process" else args.processes
            grants_per_second = capacity(kind, url, processes, args.threads)
            reference = reference or grants_per_second
            use, worst, windows, fairness, calls, span = limit(kind, url, args, processes)
            window_text = ", ".join(f"{window:g} s {excess:+.2f}" for window, excess in windows.items())
            print(
                f"{kind:13} ({processes} proc): capacity {grants_per_second:9,.0f} grants/s "
                f"({grants_per_second / reference:6.1%} of the in-process bucket's); limit: {calls} grants in "
                f"{span:.1f} s = {use:.1%} of what it allows; worst window {worst:+.2f} calls over the bound "
                f"({window_text}); threads' shares {fairness[0]:+.0%}..{fairness[1]:+.0%} of the mean",
                flush=True,
            )
    finally:
        common.remove(workdir)


def _make_schema(url):
    """Bring the database to the head revision (rate_limits included), keeping what it holds."""
    from importdash import create_app
    from importdash.runtime import get_runtime

    app = create_app({"DATABASE_URL": url, "AUTO_MIGRATE": True, "RATE_PER_SECOND": 0})
    get_runtime(app).runner.shutdown()
    from importdash.extensions import db

    with app.app_context():
        db.engine.dispose()


if __name__ == "__main__":
    main()
