"""A thread-safe token bucket that spaces out downstream calls for every job in the process."""

import threading
import time
from collections.abc import Callable

# A wait this short counts as no wait. Float refill can land a hair short of a whole token after an exact
# sleep; sleeping again for a few nanoseconds is a wasted wake-up, and on a fake clock it may not even move
# time forward. Granting up to a nanosecond early is far below any rate a downstream can measure.
_NEGLIGIBLE_SECONDS = 1e-9

# Waits that can be cancelled wake at least this often, so a cancelled job stops promptly.
STOP_CHECK_SECONDS = 0.25


class TokenBucket:
    """Grant tokens at a steady rate with bursts up to the capacity; rate <= 0 lifts the limit."""

    def __init__(self, *, rate: float, capacity: int, clock=time.monotonic, sleep=time.sleep):
        self._rate = float(rate)
        self._capacity = int(capacity)
        if self._rate > 0 and self._capacity < 1:
            raise ValueError("capacity must be at least 1 when the rate is limited")
        self._clock = clock
        self._sleep = sleep
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

    def try_acquire(self, tokens: int = 1) -> bool:
        """Take the tokens if they are available now, without waiting."""
        self._check(tokens)
        with self._lock:
            return self._take(tokens, self._clock()) == 0.0

    def acquire(self, tokens: int = 1, *, should_stop: Callable[[], bool] | None = None) -> bool:
        """Wait until the tokens are taken and return True, or return False once should_stop() is true."""
        self._check(tokens)
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
        with self._lock:
            wait = self._wait(tokens, self._clock())
        return 0.0 if wait <= _NEGLIGIBLE_SECONDS else wait

    def pause_for(self, seconds: float) -> None:
        """Grant nothing before clock() + seconds, then resume at the steady rate without a burst."""
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
