"""Checking the downstream without records, and its state as the dashboard shows it (fake clocks, no sleeps)."""

import fakes
import httpx

from importdash.extensions import db
from importdash.services.bucket import TokenBucket
from importdash.services.checks import LastCheck, check_downstream, downstream_status
from importdash.services.delivery import CircuitBreaker
from importdash.services.downstream import SimulatedDownstream
from importdash.services.limit_store import DatabaseLimitStore, LimitStoreUnavailable
from importdash.services.webhook import WebhookDownstream

URL = "https://hooks.example.com:8443/contacts?token=secret"


def webhook(handler):
    return WebhookDownstream(
        URL, authorization="Bearer t", connect_timeout=1, timeout=1, transport=httpx.MockTransport(handler)
    )


def test_a_webhook_check_posts_a_call_without_records_as_real_calls_are_made():
    seen = []

    def answer(request):
        seen.append(request)
        return httpx.Response(200, json={"results": []})

    answer_ = webhook(answer).check()
    assert (answer_.answered, answer_.ok, answer_.status_code) == (True, True, 200)
    (request,) = seen
    assert request.method == "POST" and request.read() == b'{"records":[]}'
    assert request.headers["Authorization"] == "Bearer t" and request.headers["Idempotency-Key"]


def test_a_webhook_that_answers_with_an_error_or_not_at_all_says_so():
    refused = webhook(lambda request: httpx.Response(401, json={"error": "bad token"})).check()
    assert (refused.answered, refused.ok, refused.status_code) == (True, False, 401)
    assert refused.message == "the downstream answered 401 Unauthorized: bad token"

    def unreachable(request):
        raise httpx.ConnectError("connection refused")

    down = webhook(unreachable).check()
    assert (down.answered, down.ok, down.status_code) == (False, False, None)
    assert down.message == "the downstream cannot be reached: connection refused"


def test_a_check_takes_one_token_and_is_remembered():
    clock = fakes.FakeClock()
    bucket = TokenBucket(rate=1, capacity=1, clock=clock, sleep=clock.sleep)
    last = LastCheck()
    simulated = SimulatedDownstream(latency_ms=0, reject_domains="")

    result = check_downstream(simulated, bucket=bucket, wait_seconds=5, last_check=last, clock=clock)
    assert result.answer.ok and last.get() is result and simulated.calls == 0  # a check sends no records
    assert not bucket.try_acquire()  # the check's token is gone
    assert result.to_dict()["checked_at"].endswith("Z")


def test_a_check_waits_for_the_rate_limit_no_longer_than_it_is_told():
    clock = fakes.FakeClock()
    bucket = TokenBucket(rate=1, capacity=1, clock=clock, sleep=clock.sleep)
    bucket.pause_for(60)  # a 429 asked every call to wait a minute
    calls = []

    class Counting(SimulatedDownstream):
        def check(self):
            calls.append(1)
            return super().check()

    result = check_downstream(
        Counting(latency_ms=0, reject_domains=""), bucket=bucket, wait_seconds=5, last_check=LastCheck(), clock=clock
    )
    assert calls == [] and not result.answer.answered
    assert result.answer.message.startswith("not checked: the rate limit had no call free within 5 s")
    assert 5_000 <= result.elapsed_ms < 6_000


def test_the_state_shows_the_breaker_the_pause_and_the_last_check_but_never_the_webhooks_path():
    clock = fakes.FakeClock()
    bucket = TokenBucket(rate=2, capacity=4, clock=clock, sleep=clock.sleep)
    breaker = CircuitBreaker(threshold=2, cooldown=15, clock=clock)
    last = LastCheck()

    def state():
        return downstream_status(kind="webhook", url=URL, bucket=bucket, breaker=breaker, store=None, last_check=last)

    assert state() == {
        "kind": "webhook",
        "target": "https://hooks.example.com:8443",
        "breaker": "closed",
        "failures": 0,
        "paused_seconds": 0.0,
        "state_known": True,
        "last_check": None,
    }
    breaker.record_failure()
    breaker.record_failure()
    bucket.pause_for(30)
    clock.advance(10)
    check_downstream(
        SimulatedDownstream(latency_ms=0, reject_domains=""),
        bucket=TokenBucket(rate=0, capacity=0),
        wait_seconds=1,
        last_check=last,
        clock=clock,
    )
    now = state()
    assert (now["breaker"], now["failures"], now["paused_seconds"]) == ("open", 2, 20.0)
    assert now["last_check"]["ok"] is True


def test_a_shared_stores_state_is_everyones_and_an_unreachable_store_is_said_to_be(app):
    with app.app_context():
        store = DatabaseLimitStore(db.engine, name="simulated", rate=2, burst=4)
        other = DatabaseLimitStore(db.engine, name="simulated", rate=2, burst=4)  # another process's
        try:
            other.pause(30)
            for _ in range(3):
                other.record_failure(3, 15)
            shared = store.state()
            assert shared.breaker_open and shared.failures == 3 and 29 < shared.paused_seconds <= 30
        finally:
            store.close()
            other.close()

    class Unreachable:
        breaker_open, breaker_failures = False, 0

        def state(self):
            raise LimitStoreUnavailable("down")

    unreachable = Unreachable()
    breaker = CircuitBreaker(threshold=2, cooldown=15, store=unreachable)
    state = downstream_status(
        kind="simulated",
        url=None,
        bucket=TokenBucket(rate=0, capacity=0),
        breaker=breaker,
        store=unreachable,
        last_check=LastCheck(),
    )
    assert state["state_known"] is False and state["target"] is None
