"""Deliver one call's records however long it takes: the rate limit, retries with backoff, and a circuit breaker."""

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .bucket import STOP_CHECK_SECONDS, TokenBucket
from .downstream import Downstream, DownstreamError, Outcome
from .limit_store import LimitStore, LimitStoreUnavailable
from .telemetry import NO_TELEMETRY, Telemetry

log = logging.getLogger(__name__)

UNAVAILABLE = "downstream unavailable, retrying"
THROTTLED = "downstream asked to slow down, waiting"


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing call is tried, and how long to wait between tries."""

    max_attempts: int
    backoff_base: float
    backoff_cap: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "RetryPolicy":
        return cls(
            max_attempts=max(int(config["DELIVERY_MAX_ATTEMPTS"]), 1),
            backoff_base=config["RETRY_BACKOFF_BASE_SECONDS"],
            backoff_cap=config["RETRY_BACKOFF_CAP_SECONDS"],
        )

    def backoff(self, failures: int, rand=random.random) -> float:
        """Full jitter: a uniform wait up to base * 2^(failures - 1), capped, so retrying clients spread out."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (failures - 1))
        return rand() * ceiling


class CircuitBreaker:
    """Stop calling a downstream that keeps failing; while it is open, let one probe call out per cool-down.

    Shared by every job of the process, like the token bucket: `threshold` failed calls in a row (from any
    job) open it; a successful call closes it. threshold <= 0 turns it off. With a store, the count and the open
    state are every process's: one outage is probed once per cool-down, not once per process. A process learns
    the shared state with each grant of the bucket (the same round trip), so a success only writes when there
    is something to reset.
    """

    def __init__(self, *, threshold: int, cooldown: float, store: LimitStore | None = None, clock=time.monotonic):
        self.threshold = threshold
        self.cooldown = cooldown
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._next_probe_at = None  # None while closed

    @property
    def is_open(self) -> bool:
        if self._store is not None:
            return self._store.breaker_open
        with self._lock:
            return self._next_probe_at is not None

    @property
    def failures(self) -> int:
        """Failed calls in a row (as this process last saw them, with a store)."""
        if self._store is not None:
            return self._store.breaker_failures
        with self._lock:
            return self._failures

    def admit(self) -> float:
        """Return 0.0 if a call may go out now (taking the probe while open), else the seconds to wait first."""
        if self._store is not None:
            if self.threshold <= 0 or not self._store.breaker_open:
                return 0.0
            try:
                return self._store.take_probe(self.cooldown)
            except LimitStoreUnavailable:
                return 0.0  # the bucket waits for the store before any call goes out
        with self._lock:
            if self._next_probe_at is None:
                return 0.0
            now = self._clock()
            if now < self._next_probe_at:
                return self._next_probe_at - now
            # This caller is the probe; the others wait for its verdict or, should it never come, the next probe.
            self._next_probe_at = now + self.cooldown
            return 0.0

    def record_success(self) -> None:
        """The downstream answered: close the breaker."""
        if self._store is not None:
            if self.threshold > 0 and (self._store.breaker_open or self._store.breaker_failures):
                try:
                    self._store.record_success()
                except LimitStoreUnavailable as error:
                    log.warning("could not close the shared circuit breaker: %s", error)
            return
        with self._lock:
            self._failures = 0
            self._next_probe_at = None

    def record_failure(self) -> bool:
        """Count a failed call; return True if the breaker is open now (the downstream counts as down)."""
        if self._store is not None:
            if self.threshold <= 0:
                return False
            try:
                return self._store.record_failure(self.threshold, self.cooldown)
            except LimitStoreUnavailable as error:
                log.warning("could not count a failed call in the shared circuit breaker: %s", error)
                return False
        with self._lock:
            self._failures += 1
            if self.threshold <= 0 or self._failures < self.threshold:
                return False
            if self._next_probe_at is None or self._next_probe_at <= self._clock():
                self._next_probe_at = self._clock() + self.cooldown
            return True


class Deliverer:
    """Send a call's records until the downstream gives a verdict, whatever it takes; shared by every job.

    A call takes a token from the shared bucket for every try. 429 pauses the bucket for as long as
    Retry-After asks and is never held against the records; 408, 5xx, timeouts and connection errors are
    retried with full-jitter backoff up to the policy's attempts, then fail the records with the reason;
    any other refusal of the whole call fails its records at once. While the breaker is open the call waits
    (the downstream is down, which is not the records' fault) instead of spending its attempts.
    """

    def __init__(
        self,
        downstream: Downstream,
        *,
        bucket: TokenBucket,
        breaker: CircuitBreaker,
        policy: RetryPolicy,
        telemetry: Telemetry = NO_TELEMETRY,
        sleep=time.sleep,
        clock=time.monotonic,
        rand=random.random,
    ):
        self.downstream = downstream
        self.bucket = bucket
        self.breaker = breaker
        self.policy = policy
        self.telemetry = telemetry
        self._sleep = sleep
        self._clock = clock
        self._rand = rand

    def deliver(
        self,
        records: list[dict],
        *,
        should_stop: Callable[[], bool],
        on_notice: Callable[[str | None], None] = lambda notice: None,
    ) -> list[Outcome] | None:
        """Return one Outcome per record, or None if should_stop() turned true first (no call is then in flight)."""
        try:
            return self._deliver(records, should_stop, on_notice)
        finally:
            self.telemetry.breaker_seen(self.breaker.is_open)

    def _deliver(self, records, should_stop, on_notice):
        failures = throttled = 0
        while True:
            probing = self._wait_for_breaker(should_stop, on_notice)
            if probing is None:
                return None
            if not self.bucket.acquire(should_stop=should_stop) or should_stop():
                return None
            if self.breaker.is_open and not probing:
                continue  # it opened while this call waited for its grant (another process's failures): wait for it
            try:
                outcomes = self._send(records)
            except DownstreamError as error:
                if error.throttled:
                    self.breaker.record_success()  # it answered; it is only busy
                    throttled += 1
                    wait = error.retry_after
                    self.bucket.pause_for(self.policy.backoff(throttled, self._rand) if wait is None else wait)
                    on_notice(THROTTLED)
                    continue
                if not error.transient:
                    self.breaker.record_success()
                    on_notice(None)
                    return _refuse_all(records, error.message)
                if self.breaker.record_failure():
                    on_notice(UNAVAILABLE)
                    self.telemetry.call_retried()  # once the breaker lets calls out again
                    continue
                failures += 1
                if failures >= self.policy.max_attempts:
                    on_notice(None)
                    return _refuse_all(records, f"{error.message} (gave up after {failures} attempts)")
                if not self._wait(self.policy.backoff(failures, self._rand), should_stop):
                    return None
                self.telemetry.call_retried()
                continue
            self.breaker.record_success()
            on_notice(None)
            return outcomes

    def _send(self, records):
        """Make one call, counted and traced."""
        telemetry = self.telemetry
        telemetry.call_sent()
        try:
            with telemetry.span("importdash.call", records=len(records)):
                return self.downstream.send(records)
        except DownstreamError as error:
            if error.throttled:
                telemetry.call_throttled()
            raise

    def _wait_for_breaker(self, should_stop, on_notice):
        """Wait while the breaker is open; return whether this call is its probe (None: should_stop() turned true)."""
        while (wait := self.breaker.admit()) > 0:
            self.telemetry.breaker_seen(True)
            on_notice(UNAVAILABLE)
            if not self._wait(wait, should_stop):
                return None
        return self.breaker.is_open

    def _wait(self, seconds, should_stop):
        """Sleep for the seconds, waking often enough to stop promptly; False if should_stop() turned true."""
        deadline = self._clock() + seconds
        while (left := deadline - self._clock()) > 0:
            if should_stop():
                return False
            self._sleep(min(left, STOP_CHECK_SECONDS))
        return not should_stop()


def _refuse_all(records, message):
    return [Outcome(record["key"], False, message, None) for record in records]
