"""A thread-safe token bucket that spaces out downstream calls for every job, in this process or in all of them.

Without a store the bucket keeps its tokens itself (one process). With one (services/limit_store.py) it draws every
grant from the store that all processes share, and keeps only what this process must know at once: a pause one of
its calls was asked for. Either way a thread waits outside the bucket's lock, so nobody blocks the others.
"""

import logging
import random
import threading
import time
from collections.abc import Callable

from .limit_store import Grant, LimitStore, LimitStoreUnavailable, OutageBackoff

log = logging.getLogger(__name__)

# A wait this short counts as no wait. Float refill can land a hair short of a whole token after an exact
# sleep; sleeping again for a few nanoseconds is a wasted wake-up, and on a fake clock it may not even move
# time forward. Granting up to a nanosecond early is far below any rate a downstream can measure.
_NEGLIGIBLE_SECONDS = 1e-9

# Waits that can be cancelled wake at least this often, so a cancelled job stops promptly.
STOP_CHECK_SECONDS = 0.25

# Late grants given up in a row before the call goes anyway (see TokenBucket._acquire_shared).
_MOST_GRANTS_GIVEN_UP = 3


class TokenBucket:
    """Grant tokens at a steady rate with bursts up to the capacity; rate <= 0 lifts the limit."""

    def __init__(
        self,
        *,
        rate: float,
        capacity: int,
        store: LimitStore | None = None,
        outage_backoff: OutageBackoff | None = None,
        grant_tolerance: float | None = None,
        clock=time.monotonic,
        sleep=time.sleep,
        rand=random.random,
    ):
        self._rate = float(rate)
        self._capacity = int(capacity)
        if self._rate > 0 and self._capacity < 1:
            raise ValueError("capacity must be at least 1 when the rate is limited")
        if store is not None and (outage_backoff is None or grant_tolerance is None):
            raise ValueError("a shared store needs the outage backoff and the grant tolerance")
        # An unlimited bucket never asks the store: no round trip per call when there is nothing to limit.
        self._store = None if self.unlimited else store
        self._outage_backoff = outage_backoff
        self._grant_tolerance = grant_tolerance
        self._store_down = False
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._lock = threading.Lock()
        # _tokens is the balance at time _stamp; refill is continuous in floats so fractions are never lost.
        # Nothing is granted before _stamp, which is how pause_for holds everyone back.
        self._tokens = float(max(self._capacity, 0))
        self._stamp = clock()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def unlimited(self) -> bool:
        return self._rate <= 0

    @property
    def store(self) -> LimitStore | None:
        """The store every process draws its grants from, or None if this process keeps its own tokens."""
        return self._store

    def try_acquire(self, tokens: int = 1) -> bool:
        """Take the tokens if they are available now, without waiting."""
        self._check(tokens)
        if self._store is not None:
            if self._local_pause_left() > 0:
                return False
            try:
                return self._store.try_take(tokens)
            except LimitStoreUnavailable as error:
                self._note_outage(error)
                return False
        with self._lock:
            return self._take(tokens, self._clock()) == 0.0

    def acquire(self, tokens: int = 1, *, should_stop: Callable[[], bool] | None = None) -> bool:
        """Wait until the tokens are taken and return True, or return False once should_stop() is true."""
        self._check(tokens)
        if self._store is not None:
            return self._acquire_shared(tokens, should_stop)
        while True:
            with self._lock:
                wait = self._take(tokens, self._clock())
            if wait == 0.0:
                return True
            if should_stop is not None:
                if should_stop():
                    return False
                wait = min(wait, STOP_CHECK_SECONDS)
            # Sleep outside the lock until the tokens are due, then race for them again: a thread that loses
            # simply computes its next due time, so nobody spins and nobody blocks the bucket while waiting.
            self._sleep(wait)

    def seconds_until_available(self, tokens: int = 1) -> float:
        """Return how long from now until the tokens could be taken (0 if they can be taken now)."""
        self._check(tokens)
        if self._store is not None:
            try:
                wait = max(self._store.seconds_until_available(tokens), self._local_pause_left())
            except LimitStoreUnavailable as error:
                self._note_outage(error)
                return max(self._outage_backoff.cap, self._local_pause_left())
            return 0.0 if wait <= _NEGLIGIBLE_SECONDS else wait
        with self._lock:
            wait = self._wait(tokens, self._clock())
        return 0.0 if wait <= _NEGLIGIBLE_SECONDS else wait

    def pause_for(self, seconds: float) -> None:
        """Grant nothing before clock() + seconds, then resume at the steady rate without a burst.

        With a store the pause is every process's: this one holds back at once, the others from their next grant.
        """
        if self._store is not None:
            with self._lock:
                self._stamp = max(self._stamp, self._clock() + max(float(seconds), 0.0))
            try:
                self._store.pause(seconds)
            except LimitStoreUnavailable as error:
                # The other processes hear of it from their own 429s; this one holds back all the same.
                self._note_outage(error)
            return
        with self._lock:
            now = self._clock()
            self._refill(now)
            resume_at = max(now + max(float(seconds), 0.0), self._stamp)
            if not self.unlimited:
                balance = min(self._capacity, self._tokens + (resume_at - self._stamp) * self._rate)
                # Emptying down to at most one token lets one call go exactly when the downstream said it
                # may, and only ever removes tokens, so the rate guarantee holds across the pause.
                self._tokens = min(balance, 1.0)
            self._stamp = resume_at

    def _acquire_shared(self, tokens, should_stop):
        """Take the tokens from the store: reserve a slot, sleep until it, go (or, told to wait, ask again).

        A slot used late goes out beside the next ones, so a grant that would leave more than grant_tolerance
        after its slot (a slow answer, a late wake-up) is given up and the next one reserved; after a few in a row
        the call goes anyway, so a slow database slows calls down but never stops them.
        """
        outages = given_up = 0
        while True:
            pause = self._local_pause_left()
            if pause > _NEGLIGIBLE_SECONDS:
                if not self._sleep_until(self._clock() + pause, should_stop):
                    return False
                continue
            asked_at = self._clock()
            try:
                grant = self._store.reserve(tokens)
            except LimitStoreUnavailable as error:
                outages += 1
                self._note_outage(error)
                backoff = self._outage_backoff.delay(outages, self._rand)
                if not self._sleep_until(self._clock() + backoff, should_stop, always_check=True):
                    return False
                continue
            answered_at = self._clock()
            outages = 0
            self._note_recovery()
            due_at = answered_at + grant.wait
            # A reserved slot that goes unused (stopped, paused meanwhile, late) is capacity lost, never a call
            # too many.
            if grant.wait > _NEGLIGIBLE_SECONDS and not self._sleep_until(due_at, should_stop):
                return False
            if not grant.reserved:
                continue
            if grant.wait > _NEGLIGIBLE_SECONDS and not self._slot_still_valid(grant):
                continue
            # The slot may have been up to the round trip before the answer came, and the wake-up can be late.
            late = self._clock() - due_at + (answered_at - asked_at if grant.age is None else grant.age)
            if late <= self._grant_tolerance + grant.slack or given_up >= _MOST_GRANTS_GIVEN_UP:
                return True
            given_up += 1

    def _slot_still_valid(self, grant: Grant) -> bool:
        """Whether no pause began while the thread slept until its slot (else the slot is given up)."""
        if self._local_pause_left() > _NEGLIGIBLE_SECONDS:
            return False
        try:
            return self._store.slot_still_valid(grant)
        except LimitStoreUnavailable as error:
            self._note_outage(error)
            return True  # the slot is counted in the shared limit; only a pause we cannot hear of is missed

    def _sleep_until(self, deadline, should_stop, always_check=False):
        """Sleep until the deadline, waking often enough to stop promptly; False if should_stop() turned true."""
        while (left := deadline - self._clock()) > _NEGLIGIBLE_SECONDS or always_check:
            always_check = False
            if should_stop is not None:
                if should_stop():
                    return False
                left = min(left, STOP_CHECK_SECONDS)
            if left > 0:
                self._sleep(left)
        return True

    def pause_left(self) -> float:
        """Seconds this process still holds back for a 429 (with a store, LimitStore.state() has every process's)."""
        return self._local_pause_left()

    def _local_pause_left(self):
        with self._lock:
            return max(self._stamp - self._clock(), 0.0)

    def _note_outage(self, error):
        with self._lock:
            first, self._store_down = not self._store_down, True
        if first:
            log.warning("the shared rate limit's store does not answer; calls wait until it does: %s", error)

    def _note_recovery(self):
        with self._lock:
            recovered, self._store_down = self._store_down, False
        if recovered:
            log.warning("the shared rate limit's store answers again")

    def _check(self, tokens: int) -> None:
        if tokens < 1:
            raise ValueError("tokens must be at least 1")
        if not self.unlimited and tokens > self._capacity:
            raise ValueError(f"{tokens} tokens can never be granted by a bucket of capacity {self._capacity}")

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            if not self.unlimited:
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def _wait(self, tokens: int, now: float) -> float:
        self._refill(now)
        wait = max(self._stamp - now, 0.0)
        if not self.unlimited:
            wait += max(tokens - self._tokens, 0.0) / self._rate
        return wait

    def _take(self, tokens: int, now: float) -> float:
        """Take the tokens and return 0.0 if they are due now, else return the seconds until they are."""
        wait = self._wait(tokens, now)
        if wait > _NEGLIGIBLE_SECONDS:
            return wait
        if not self.unlimited:
            # The balance may dip a hair below zero here; keeping the debt instead of clamping keeps the rate exact.
            self._tokens -= tokens
        return 0.0
