import threading
import time

import pytest
from fakes import FakeClock

from importdash.services.bucket import TokenBucket


def make_bucket(rate, capacity, clock):
    return TokenBucket(rate=rate, capacity=capacity, clock=clock, sleep=clock.sleep)


def assert_within_rate(grant_times, rate, capacity):
    """Assert that every window [t_i, t_j] holds at most capacity + rate * (t_j - t_i) grants."""
    # With a_k = k - rate * t_k, the condition for every pair i <= j is a_j - a_i <= capacity - 1.
    lowest = float("inf")
    for k, granted_at in enumerate(sorted(grant_times)):
        excess = k - rate * granted_at
        lowest = min(lowest, excess)
        assert excess - lowest <= capacity - 1 + 1e-6


def test_starts_full_then_refills():
    clock = FakeClock()
    bucket = make_bucket(2, 3, clock)

    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.5)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()


def test_refill_keeps_fractional_tokens():
    clock = FakeClock()
    bucket = make_bucket(4, 2, clock)
    assert bucket.try_acquire(2)

    clock.advance(0.1)
    assert not bucket.try_acquire()
    clock.advance(0.1)
    assert not bucket.try_acquire()
    clock.advance(0.1)
    assert bucket.try_acquire()
    clock.advance(0.2)  # 0.05 s carried over from the last grant plus 0.2 s make the next 0.25 s
    assert bucket.try_acquire()


def test_refill_stops_at_capacity():
    clock = FakeClock()
    bucket = make_bucket(10, 2, clock)
    assert bucket.try_acquire(2)

    clock.advance(100)
    assert bucket.try_acquire(2)
    assert not bucket.try_acquire()


def test_acquire_sleeps_exactly_until_the_next_token():
    clock = FakeClock()
    bucket = make_bucket(2, 2, clock)

    assert bucket.acquire() and bucket.acquire()
    assert clock.sleeps == []
    assert bucket.seconds_until_available() == 0.5
    assert bucket.acquire()
    assert clock.sleeps == [0.5]

    clock.advance(0.2)
    assert bucket.seconds_until_available() == pytest.approx(0.3)
    assert bucket.acquire()
    assert clock.sleeps == [0.5, pytest.approx(0.3)]


def test_several_tokens_wait_for_all_of_them():
    clock = FakeClock()
    bucket = make_bucket(4, 3, clock)
    assert bucket.try_acquire(3)

    assert bucket.seconds_until_available(2) == 0.5
    assert not bucket.try_acquire(2)
    assert bucket.acquire(2)
    assert clock.sleeps == [0.5]


def test_sustained_demand_gets_the_full_rate_with_one_sleep_per_wait():
    clock = FakeClock()
    rate, capacity, calls = 3, 2, 600  # 1/3 s is not exact in floats: no nanosecond re-sleeps allowed
    bucket = make_bucket(rate, capacity, clock)
    start = clock()

    grants = []
    for _ in range(calls):
        assert bucket.acquire()
        grants.append(clock.last_read())

    assert len(clock.sleeps) == calls - capacity
    achieved = (calls - capacity) / (grants[-1] - start)
    assert achieved >= 0.99 * rate
    assert_within_rate(grants, rate, capacity)


def test_oversleeping_is_not_lost():
    clock = FakeClock()
    bucket = make_bucket(10, 2, clock)
    assert bucket.try_acquire(2)

    clock.advance(0.15)  # woke 0.05 s late for the 0.1 s token
    assert bucket.try_acquire()
    assert bucket.seconds_until_available() == pytest.approx(0.05)


def test_unlimited_rate_never_waits():
    clock = FakeClock()
    for rate in (0, -1):
        bucket = make_bucket(rate, 0, clock)
        assert all(bucket.try_acquire() for _ in range(1_000))
        assert all(bucket.acquire(5) for _ in range(1_000))
        assert bucket.seconds_until_available(1_000) == 0
    assert clock.sleeps == []


def test_pause_holds_everyone_back_then_resumes_without_a_burst():
    clock = FakeClock()
    bucket = make_bucket(2, 4, clock)

    bucket.pause_for(3)
    assert not bucket.try_acquire()
    assert bucket.seconds_until_available() == 3
    clock.advance(2.9)
    assert not bucket.try_acquire()
    clock.advance(0.1)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    assert bucket.seconds_until_available() == pytest.approx(0.5)


def test_acquire_waits_out_a_pause():
    clock = FakeClock()
    bucket = make_bucket(2, 4, clock)

    bucket.pause_for(3)
    assert bucket.acquire()
    assert clock.sleeps == [3]
    assert bucket.acquire()
    assert clock.sleeps == [3, 0.5]


def test_a_shorter_pause_does_not_cut_a_longer_one():
    clock = FakeClock()
    bucket = make_bucket(2, 4, clock)

    bucket.pause_for(5)
    bucket.pause_for(1)
    assert bucket.seconds_until_available() == 5


def test_pause_applies_to_an_unlimited_bucket_too():
    clock = FakeClock()
    bucket = make_bucket(0, 0, clock)

    bucket.pause_for(2)
    assert not bucket.try_acquire()
    clock.advance(2)
    assert all(bucket.try_acquire() for _ in range(100))


def test_should_stop_caps_each_wait_and_cancels():
    clock = FakeClock()
    bucket = make_bucket(0.1, 1, clock)  # next token in 10 s
    assert bucket.try_acquire()
    checks = []

    def should_stop():
        checks.append(clock())
        return len(checks) > 2

    assert bucket.acquire(should_stop=should_stop) is False
    assert clock.sleeps == [0.25, 0.25]
    assert bucket.try_acquire() is False  # a cancelled wait takes nothing


def test_should_stop_that_stays_false_still_gets_the_token():
    clock = FakeClock()
    bucket = make_bucket(2, 1, clock)
    assert bucket.try_acquire()

    assert bucket.acquire(should_stop=lambda: False)
    assert clock.sleeps == [0.25, 0.25]


def test_should_stop_is_checked_only_before_waiting():
    clock = FakeClock()
    bucket = make_bucket(2, 1, clock)

    assert bucket.acquire(should_stop=lambda: True)


def test_impossible_requests_are_refused():
    bucket = make_bucket(2, 3, FakeClock())

    with pytest.raises(ValueError):
        bucket.acquire(4)
    with pytest.raises(ValueError):
        bucket.try_acquire(0)
    with pytest.raises(ValueError):
        TokenBucket(rate=2, capacity=0)


def test_rate_and_capacity_are_readable():
    bucket = TokenBucket(rate=2.5, capacity=4)
    assert (bucket.rate, bucket.capacity) == (2.5, 4)


def test_real_clock_spaces_calls():
    bucket = TokenBucket(rate=200, capacity=1)
    start = time.monotonic()
    for _ in range(5):
        assert bucket.acquire()
    assert time.monotonic() - start >= 4 / 200 * 0.99


def test_threads_racing_on_a_frozen_clock_get_exactly_the_capacity():
    clock = FakeClock()
    bucket = make_bucket(5, 10, clock)
    threads_count, attempts = 16, 50
    barrier = threading.Barrier(threads_count)
    successes = []

    def worker():
        barrier.wait()
        successes.append(sum(bucket.try_acquire() for _ in range(attempts)))

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(successes) == 10


def test_threads_waiting_in_acquire_all_succeed_within_the_rate():
    clock = FakeClock()
    rate, capacity = 20, 5
    bucket = make_bucket(rate, capacity, clock)
    threads_count, calls = 8, 25
    barrier = threading.Barrier(threads_count)
    grants = []
    grants_lock = threading.Lock()

    def worker():
        barrier.wait()
        for _ in range(calls):
            assert bucket.acquire()
            with grants_lock:
                grants.append(clock.last_read())

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(grants) == threads_count * calls
    assert_within_rate(grants, rate, capacity)
