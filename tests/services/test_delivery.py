"""Retries, backoff, 429 pauses and the circuit breaker, on a fake clock."""

import threading

import pytest
from fakes import FakeClock

from importdash.services.bucket import TokenBucket
from importdash.services.delivery import THROTTLED, UNAVAILABLE, CircuitBreaker, Deliverer, RetryPolicy
from importdash.services.downstream import DownstreamError, Outcome


class FakeDownstream:
    """Fail the first calls as scripted (a DownstreamError each), then accept; notes when each call came."""

    def __init__(self, clock, *failures):
        self.clock = clock
        self.failures = list(failures)
        self.call_times = []

    def send(self, records):
        self.call_times.append(self.clock())
        if self.failures:
            raise self.failures.pop(0)
        return [Outcome(record["key"], True, None, {"status": 200}) for record in records]


RECORDS = [{"key": "job-2"}, {"key": "job-3"}]
UNAVAILABLE_503 = DownstreamError("the downstream answered 503 Service Unavailable", transient=True)


def make_deliverer(clock, downstream, *, max_attempts=3, threshold=0, cooldown=10.0, rate=0, rand=lambda: 1.0):
    return Deliverer(
        downstream,
        bucket=TokenBucket(rate=rate, capacity=1, clock=clock, sleep=clock.sleep),
        breaker=CircuitBreaker(threshold=threshold, cooldown=cooldown, clock=clock),
        policy=RetryPolicy(max_attempts=max_attempts, backoff_base=1.0, backoff_cap=5.0),
        sleep=clock.sleep,
        clock=clock,
        rand=rand,
    )


def never():
    return False


def test_backoff_is_full_jitter_doubling_up_to_the_cap():
    policy = RetryPolicy(max_attempts=5, backoff_base=0.5, backoff_cap=3.0)
    assert [policy.backoff(n, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff(3, rand=lambda: 0.25) == 0.5
    assert policy.backoff(3, rand=lambda: 0.0) == 0.0


def test_transient_failures_are_retried_after_backoff_then_succeed():
    clock = FakeClock(1000.0)
    downstream = FakeDownstream(clock, UNAVAILABLE_503, DownstreamError("timed out", transient=True))
    deliverer = make_deliverer(clock, downstream)

    outcomes = deliverer.deliver(RECORDS, should_stop=never)

    assert [outcome.ok for outcome in outcomes] == [True, True]
    assert [t - 1000.0 for t in downstream.call_times] == [0.0, 1.0, 3.0]  # waits of 1 s, then 2 s


def test_records_fail_with_the_reason_once_attempts_run_out():
    clock = FakeClock(1000.0)
    downstream = FakeDownstream(clock, *[UNAVAILABLE_503] * 3)
    deliverer = make_deliverer(clock, downstream, max_attempts=3)

    outcomes = deliverer.deliver(RECORDS, should_stop=never)

    assert len(downstream.call_times) == 3
    assert [outcome.key for outcome in outcomes] == ["job-2", "job-3"]
    assert not any(outcome.ok for outcome in outcomes)
    assert outcomes[0].message == "the downstream answered 503 Service Unavailable (gave up after 3 attempts)"


def test_a_permanent_refusal_fails_the_records_at_once():
    clock = FakeClock(1000.0)
    refused = DownstreamError("the downstream answered 400 Bad Request: no company field", transient=False)
    deliverer = make_deliverer(clock, FakeDownstream(clock, refused))

    outcomes = deliverer.deliver(RECORDS, should_stop=never)

    assert [(outcome.ok, outcome.message) for outcome in outcomes] == [(False, refused.message)] * 2
    assert clock.sleeps == []


def test_429_pauses_the_shared_bucket_as_asked_and_never_spends_an_attempt():
    clock = FakeClock(1000.0)
    throttles = [DownstreamError("429", transient=True, retry_after=7.0, throttled=True) for _ in range(4)]
    downstream = FakeDownstream(clock, *throttles)
    deliverer = make_deliverer(clock, downstream, max_attempts=1)
    notices = []

    outcomes = deliverer.deliver(RECORDS, should_stop=never, on_notice=notices.append)

    assert all(outcome.ok for outcome in outcomes)
    assert [t - 1000.0 for t in downstream.call_times] == [0.0, 7.0, 14.0, 21.0, 28.0]
    assert notices == [THROTTLED, THROTTLED, THROTTLED, THROTTLED, None]


def test_429_without_retry_after_backs_off():
    clock = FakeClock(1000.0)
    downstream = FakeDownstream(clock, DownstreamError("429", transient=True, throttled=True))
    deliverer = make_deliverer(clock, downstream, max_attempts=1)

    assert deliverer.deliver(RECORDS, should_stop=never)[0].ok
    assert downstream.call_times[1] - downstream.call_times[0] == 1.0


def test_a_429_pauses_the_bucket_every_job_shares():
    clock = FakeClock(1000.0)
    throttled = DownstreamError("429", transient=True, retry_after=30, throttled=True)
    deliverer = make_deliverer(clock, FakeDownstream(clock, throttled))
    waits_seen_by_others = []

    def on_notice(_notice):
        waits_seen_by_others.append(deliverer.bucket.seconds_until_available())

    deliverer.deliver(RECORDS, should_stop=never, on_notice=on_notice)

    assert waits_seen_by_others == [30.0, 0.0]


def test_the_breaker_pauses_delivery_instead_of_failing_records_and_probes_each_cooldown():
    clock = FakeClock(1000.0)
    downstream = FakeDownstream(clock, *[UNAVAILABLE_503] * 6)
    deliverer = make_deliverer(clock, downstream, max_attempts=3, threshold=2, cooldown=10.0)
    notices = []

    outcomes = deliverer.deliver(RECORDS, should_stop=never, on_notice=notices.append)

    assert all(outcome.ok for outcome in outcomes)  # six failures, yet only one attempt was ever spent
    offsets = [t - 1000.0 for t in downstream.call_times]
    assert offsets == [0.0, 1.0, 11.0, 21.0, 31.0, 41.0, 51.0]  # backoff, then one probe per cool-down
    assert UNAVAILABLE in notices and notices[-1] is None
    assert not deliverer.breaker.is_open


def test_stopping_during_a_wait_returns_none_without_another_call():
    clock = FakeClock(1000.0)
    downstream = FakeDownstream(clock, UNAVAILABLE_503)
    deliverer = make_deliverer(clock, downstream, max_attempts=5)
    stop_after = clock() + 0.5

    assert deliverer.deliver(RECORDS, should_stop=lambda: clock() >= stop_after) is None
    assert len(downstream.call_times) == 1


def test_stopping_while_the_breaker_is_open_returns_none():
    clock = FakeClock(1000.0)
    deliverer = make_deliverer(clock, FakeDownstream(clock), threshold=1, cooldown=60.0)
    deliverer.breaker.record_failure()
    stop_after = clock() + 1

    assert deliverer.deliver(RECORDS, should_stop=lambda: clock() >= stop_after) is None
    assert deliverer.downstream.call_times == []


def test_breaker_opens_after_threshold_failures_in_a_row_and_closes_on_success():
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(threshold=3, cooldown=5.0, clock=clock)
    assert [breaker.record_failure() for _ in range(2)] == [False, False]
    breaker.record_success()
    assert [breaker.record_failure() for _ in range(3)] == [False, False, True]
    assert breaker.is_open
    assert breaker.admit() == 5.0
    clock.advance(5.0)
    assert breaker.admit() == 0.0  # the probe
    assert breaker.admit() == 5.0  # everyone else waits for its verdict
    breaker.record_success()
    assert not breaker.is_open and breaker.admit() == 0.0


def test_a_breaker_with_threshold_zero_never_opens():
    breaker = CircuitBreaker(threshold=0, cooldown=5.0, clock=FakeClock(1000.0))
    assert not any(breaker.record_failure() for _ in range(100))
    assert breaker.admit() == 0.0


def test_exactly_one_probe_per_cooldown_across_threads():
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(threshold=1, cooldown=5.0, clock=clock)
    breaker.record_failure()
    clock.advance(5.0)
    barrier = threading.Barrier(16)
    admitted = []

    def try_probe():
        barrier.wait()
        admitted.append(breaker.admit() == 0.0)

    threads = [threading.Thread(target=try_probe) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert admitted.count(True) == 1


@pytest.mark.parametrize("max_attempts", [0, -3])
def test_at_least_one_attempt_is_made(max_attempts):
    policy = RetryPolicy.from_config(
        {"DELIVERY_MAX_ATTEMPTS": max_attempts, "RETRY_BACKOFF_BASE_SECONDS": 1, "RETRY_BACKOFF_CAP_SECONDS": 2}
    )
    assert policy.max_attempts == 1
