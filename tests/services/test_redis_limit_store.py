"""The Redis store of the shared rate limit (IMPORTDASH_REDIS_URL): the limit, pause and breaker across clients
and real processes. Needs IMPORTDASH_TEST_REDIS_URL; its keys start with importdash-test-rl and are deleted after."""

import multiprocessing
import os
import time
import uuid

import pytest
from fakes import tokens_taken_at_once
from test_limit_store import JITTER_SECONDS, worst_excess

from importdash import create_app
from importdash.runtime import get_runtime, stop_background
from importdash.services.bucket import TokenBucket
from importdash.services.limit_store import LimitStoreUnavailable, OutageBackoff, RedisLimitStore

REDIS_URL = os.environ.get("IMPORTDASH_TEST_REDIS_URL")
PREFIX = "importdash-test-rl"

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not REDIS_URL, reason="the Redis store's tests need IMPORTDASH_TEST_REDIS_URL"),
]


def wall_clock_ms():
    return time.time_ns() // 1_000_000


def client(url=None):
    import redis

    return redis.Redis.from_url(url or REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


@pytest.fixture
def prefix():
    """A key prefix of the test's own, its keys deleted afterwards."""
    own = f"{PREFIX}-{uuid.uuid4().hex[:8]}"
    yield own
    cleaner = client()
    keys = list(cleaner.scan_iter(f"{own}:*"))
    if keys:
        cleaner.delete(*keys)
    cleaner.close()


def make_store(prefix, rate=10, burst=3, url=None):
    return RedisLimitStore(
        client(url), prefix=prefix, name="simulated", rate=rate, burst=burst, wall_clock_ms=wall_clock_ms
    )


def test_the_runtime_uses_redis_when_it_is_configured(tmp_path, prefix):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}",
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
            "REDIS_URL": REDIS_URL,
            "RATE_LIMIT_KEY_PREFIX": prefix,
            "RATE_PER_SECOND": 5,
        }
    )
    try:
        runtime = get_runtime(app)
        assert isinstance(runtime.limit_store, RedisLimitStore)
        assert runtime.bucket.acquire() and runtime.bucket.store is runtime.limit_store
    finally:
        stop_background(app, wait=True)


def test_the_burst_goes_at_once_then_the_rate(prefix):
    store = make_store(prefix, rate=10, burst=3)
    grants = [store.reserve(1) for _ in range(4)]

    assert [grant.reserved for grant in grants] == [True, True, True, False]
    assert grants[3].wait == pytest.approx(0.1, abs=0.02)
    assert store.seconds_until_available(1) == pytest.approx(0.1, abs=0.02)
    store.close()


def test_clients_racing_get_exactly_the_burst(prefix):
    stores = [make_store(prefix, rate=1 / 3600, burst=5) for _ in range(8)]
    assert tokens_taken_at_once(stores, tries=10) == 5
    for store in stores:
        store.close()


def test_a_pause_holds_every_client_back(prefix):
    throttled, other = make_store(prefix), make_store(prefix)

    throttled.pause(30)
    throttled.pause(1)  # a shorter pause does not cut the longer one

    grant = other.reserve(1)
    assert not grant.reserved and grant.wait == pytest.approx(30, abs=0.1)
    assert other.seconds_until_available(1) == pytest.approx(30, abs=0.1)
    throttled.close()
    other.close()


def test_the_breaker_is_shared_and_probed_once_per_cooldown(prefix):
    first, second = make_store(prefix), make_store(prefix)

    assert first.record_failure(threshold=2, cooldown=60) is False
    second.reserve(1)
    assert (second.breaker_failures, second.breaker_open) == (1, False)
    assert second.record_failure(threshold=2, cooldown=60) is True
    first.reserve(1)
    assert first.breaker_open
    assert first.take_probe(cooldown=60) == pytest.approx(60, abs=0.1)  # the first probe is a cool-down away

    client().delete(f"{prefix}:rate-limit:simulated:probe")  # as if the cool-down had passed
    assert [first.take_probe(cooldown=60), second.take_probe(cooldown=60)] == [0.0, pytest.approx(60, abs=0.1)]
    first.record_success()
    assert second.take_probe(cooldown=60) == 0.0 and not second.breaker_open
    first.close()
    second.close()


def test_redis_that_does_not_answer_raises_unavailable(prefix):
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    store = make_store(prefix, url=f"redis://127.0.0.1:{port}/0")
    with pytest.raises(LimitStoreUnavailable):
        store.reserve(1)
    with pytest.raises(LimitStoreUnavailable):
        store.pause(5)
    store.close()


def _hammer(url, prefix, rate, burst, seconds, ready, grants):
    store = RedisLimitStore(
        client(url), prefix=prefix, name="simulated", rate=rate, burst=burst, wall_clock_ms=wall_clock_ms
    )
    bucket = TokenBucket(
        rate=rate, capacity=burst, store=store, outage_backoff=OutageBackoff(base=0.05, cap=0.5), grant_tolerance=0.005
    )
    store.seconds_until_available(1)
    ready.wait()
    end_at = time.time() + seconds
    times = []
    while bucket.acquire(should_stop=lambda: time.time() >= end_at):
        times.append(time.time())
    store.close()
    grants.put(times)


@pytest.mark.scale
def test_real_processes_sharing_one_redis_stay_within_the_limit(prefix):
    rate, burst, seconds, processes = 50, 5, 5.5, 3
    context = multiprocessing.get_context("spawn")
    ready, grants = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_hammer, args=(REDIS_URL, prefix, rate, burst, seconds, ready, grants))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    per_process = [grants.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    times = sorted(moment for process_times in per_process for moment in process_times)
    excess = {window: worst_excess(times, rate, burst, window) for window in (1, 2, 5)}
    print(f"{[len(t) for t in per_process]} grants over {times[-1] - times[0]:.2f} s; worst windows {excess}")
    for window in (1, 2, 5):
        assert excess[window] <= rate * JITTER_SECONDS, window
    assert len(times) >= 0.9 * (burst + rate * (times[-1] - times[0]))
    assert all(len(process_times) >= 0.5 * len(times) / processes for process_times in per_process)
