"""The token bucket and circuit breaker drawing on a store every process shares, on a fake clock and a fake store."""

import threading

import pytest
from fakes import FakeClock, FakeLimitStore
from test_bucket import assert_within_rate
from test_delivery import RECORDS, UNAVAILABLE_503, FakeDownstream, never

from importdash.services.bucket import TokenBucket
from importdash.services.delivery import UNAVAILABLE, CircuitBreaker, Deliverer, RetryPolicy
from importdash.services.downstream import DownstreamError
from importdash.services.limit_store import OutageBackoff

BACKOFF = OutageBackoff(base=0.1, cap=0.5)


def make_bucket(clock, store, rate=2, capacity=2, sleep=None):
    return TokenBucket(
        rate=rate,
        capacity=capacity,
        store=store,
        outage_backoff=BACKOFF,
        grant_tolerance=0.005,
        clock=clock,
        sleep=sleep or clock.sleep,
        rand=lambda: 1.0,
    )


def test_the_bucket_sleeps_until_its_reserved_slot():
    clock = FakeClock()
    store = FakeLimitStore(clock, rate=2, burst=2)
    bucket = make_bucket(clock, store)

    assert all(bucket.acquire() for _ in range(4))
    assert clock.sleeps == [0.5, 0.5]
    # One reservation per grant, and one check after each sleep that no pause began meanwhile.
    assert store.calls == ["reserve", "reserve", "reserve", "slot_still_valid", "reserve", "slot_still_valid"]


def test_processes_sharing_a_store_stay_within_one_limit():
    clock = FakeClock()
    rate, capacity = 20, 5
    store = FakeLimitStore(clock, rate=rate, burst=capacity)
    buckets = [make_bucket(clock, store, rate=rate, capacity=capacity) for _ in range(3)]  # three processes
    grants, lock = [], threading.Lock()
    barrier = threading.Barrier(6)

    def job(bucket):
        barrier.wait()
        for _ in range(25):
            assert bucket.acquire()
            with lock:
                grants.append(clock.last_read())

    threads = [threading.Thread(target=job, args=(bucket,)) for bucket in buckets for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(grants) == 150
    assert_within_rate(grants, rate, capacity)


def test_an_unlimited_bucket_never_asks_the_store():
    clock = FakeClock()
    store = FakeLimitStore(clock, rate=1, burst=1)
    bucket = make_bucket(clock, store, rate=0, capacity=0)

    assert all(bucket.acquire() for _ in range(100)) and bucket.try_acquire()
    assert bucket.store is None and store.calls == []


def test_while_the_store_is_down_calls_wait_with_backoff_and_never_go():
    clock = FakeClock()
    store = FakeLimitStore(clock, rate=2, burst=2)
    store.down = True

    def sleep(seconds):
        clock.sleep(seconds)
        if len(clock.sleeps) == 4:
            store.down = False  # back after the fourth wait

    bucket = make_bucket(clock, store, sleep=sleep)

    assert bucket.acquire()
    # Full jitter at its ceiling (rand = 1), doubling up to the cap; then the grant.
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5])
    assert store.calls == ["reserve"] * 5


def test_a_wait_for_the_store_honours_should_stop():
    clock = FakeClock()
    store = FakeLimitStore(clock, rate=2, burst=2)
    store.down = True
    bucket = make_bucket(clock, store)
    stop_at = clock() + 2

    assert bucket.acquire(should_stop=lambda: clock() >= stop_at) is False
    assert clock() - stop_at < 0.5
    assert not bucket.try_acquire()
    assert bucket.seconds_until_available() == BACKOFF.cap


def test_a_pause_that_began_while_waiting_gives_the_slot_up():
    clock = FakeClock()
    store = FakeLimitStore(clock, rate=2, burst=1)
    bucket = make_bucket(clock, store, capacity=1)
    assert bucket.acquire()

    def sleep(seconds):
        clock.sleep(seconds)
        if len(clock.sleeps) == 1:
            store.pause(10)  # another process got a 429 while this one slept until its slot

    bucket._sleep = sleep
    start = clock()
    assert bucket.acquire()
    assert clock.last_read() - start == pytest.approx(10.5)  # the slot was given up; the next after the pause
    assert clock.sleeps == [0.5, pytest.approx(10.0)]


def test_pause_for_holds_this_process_at_once_and_every_other_through_the_store():
    clock = FakeClock()
    store = FakeLimitStore(clock, rate=2, burst=4)
    throttled, other = make_bucket(clock, store, capacity=4), make_bucket(clock, store, capacity=4)

    throttled.pause_for(3)

    assert not throttled.try_acquire() and not other.try_acquire()
    assert other.seconds_until_available() == 3
    assert other.acquire()
    assert clock.sleeps == [3]


def test_a_pause_is_kept_in_the_process_when_the_store_is_down():
    clock = FakeClock()
    store = FakeLimitStore(clock, rate=2, burst=4)
    bucket = make_bucket(clock, store, capacity=4)
    store.down = True

    bucket.pause_for(3)  # no exception: the job goes on
    store.down = False

    assert bucket.acquire()
    assert clock.sleeps == [3]


def make_deliverer(clock, store, downstream, *, threshold=2, cooldown=10.0):
    return Deliverer(
        downstream,
        bucket=make_bucket(clock, store, rate=1000, capacity=10),
        breaker=CircuitBreaker(threshold=threshold, cooldown=cooldown, store=store, clock=clock),
        policy=RetryPolicy(max_attempts=5, backoff_base=1.0, backoff_cap=5.0),
        sleep=clock.sleep,
        clock=clock,
        rand=lambda: 1.0,
    )


def test_a_closed_breaker_costs_no_round_trip():
    clock = FakeClock(1000.0)
    store = FakeLimitStore(clock, rate=1000, burst=10)
    deliverer = make_deliverer(clock, store, FakeDownstream(clock))

    for _ in range(3):
        assert deliverer.deliver(RECORDS, should_stop=never)[0].ok
    assert store.calls == ["reserve"] * 3  # no breaker reads or resets when it is closed


def test_an_outage_seen_by_one_process_is_probed_once_by_all():
    clock = FakeClock(1000.0)
    store = FakeLimitStore(clock, rate=1000, burst=10)
    first = make_deliverer(clock, store, FakeDownstream(clock, UNAVAILABLE_503, UNAVAILABLE_503))
    other_downstream = FakeDownstream(clock)
    other = make_deliverer(clock, store, other_downstream)
    first.breaker.record_failure()
    first.breaker.record_failure()  # two in a row: open, first probe at +10 s

    notices = []
    assert other.deliver(RECORDS, should_stop=never, on_notice=notices.append)[0].ok

    # The other process learnt the breaker was open with its grant, made no call of its own before the probe was
    # due, then was the probe; its success closed the breaker for everyone.
    assert [t - 1000.0 for t in other_downstream.call_times] == [10.0]
    assert UNAVAILABLE in notices
    assert not store.breaker_open and store.failures == 0 and store.probe_at is None
    assert first.breaker.admit() == 0.0


def test_a_failure_counted_elsewhere_is_reset_by_a_success_here():
    clock = FakeClock(1000.0)
    store = FakeLimitStore(clock, rate=1000, burst=10)
    first = make_deliverer(clock, store, FakeDownstream(clock))
    other = make_deliverer(clock, store, FakeDownstream(clock, DownstreamError("timed out", transient=True)))

    assert other.deliver(RECORDS, should_stop=never)[0].ok  # one failure, then a success
    assert store.failures == 0
    store.record_failure(threshold=2, cooldown=10)  # another process's failure: one in a row
    assert first.deliver(RECORDS, should_stop=never)[0].ok
    assert store.failures == 0  # the success here saw it with its grant and reset it


def test_a_breaker_without_threshold_never_asks_the_store():
    clock = FakeClock(1000.0)
    store = FakeLimitStore(clock, rate=1, burst=1)
    breaker = CircuitBreaker(threshold=0, cooldown=5.0, store=store, clock=clock)

    assert not any(breaker.record_failure() for _ in range(10))
    breaker.record_success()
    assert breaker.admit() == 0.0 and store.calls == []


def test_a_grant_that_would_go_out_late_is_given_up_for_the_next():
    clock = FakeClock()
    store = FakeLimitStore(clock, rate=2, burst=1)  # burst 1: no slot has any slack
    late_wake_ups = [0.3]

    def sleep(seconds):
        clock.sleep(seconds + (late_wake_ups.pop() if late_wake_ups else 0.0))

    bucket = make_bucket(clock, store, capacity=1, sleep=sleep)
    assert bucket.acquire()
    start = clock()

    assert bucket.acquire()
    # Woke 0.3 s after its slot at 0.5 s: that slot was given up, and the call went at the next, 1.0 s.
    assert clock.last_read() - start == pytest.approx(1.0)
    assert store.calls.count("reserve") == 3


def test_late_grants_are_given_up_only_a_few_times_in_a_row():
    clock = FakeClock()
    store = FakeLimitStore(clock, rate=2, burst=1)
    bucket = make_bucket(clock, store, capacity=1, sleep=lambda seconds: clock.sleep(seconds + 0.3))
    assert bucket.acquire()

    assert bucket.acquire()  # every wake-up is late: after three slots given up, the fourth goes anyway
    assert store.calls.count("reserve") == 1 + 4


def test_a_slot_with_slack_may_go_out_late():
    clock = FakeClock()
    store = FakeLimitStore(clock, rate=2, burst=4)
    bucket = make_bucket(clock, store, capacity=4, sleep=lambda seconds: clock.sleep(seconds + 0.3))
    for _ in range(4):
        assert bucket.acquire()

    assert bucket.acquire()  # queued behind a burst of 4: 1.5 s of slack, so 0.3 s late is no call too many
    assert store.calls.count("reserve") == 5
