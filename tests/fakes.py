"""Test doubles shared by the service tests."""

import threading

from importdash.config import Config
from importdash.services.broker import EventBroker


class FakeClock:
    """A thread-safe clock whose sleep() moves time forward instead of waiting."""

    def __init__(self, start=100.0):
        self._now = start
        self._lock = threading.Lock()
        self._last_read = threading.local()
        self.sleeps = []

    def __call__(self):
        with self._lock:
            now = self._now
        self._last_read.value = now
        return now

    def sleep(self, seconds):
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    def advance(self, seconds):
        with self._lock:
            self._now += seconds

    def last_read(self):
        """Return the reading this thread took last: inside acquire(), the moment its tokens were granted."""
        return self._last_read.value


def new_broker(**settings):
    """An event broker with the configured sizes, or the ones a test names."""
    defaults = {"queue_size": Config.SSE_QUEUE_SIZE, "max_subscribers": Config.SSE_MAX_STREAMS, "relay": None}
    return EventBroker(**defaults | settings)
