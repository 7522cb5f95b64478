"""Test doubles shared by the service tests."""

import threading

from importdash.config import Config
from importdash.services.broker import EventBroker
from importdash.services.runner import JobRunner

WAIT = 10  # seconds a test waits for a job thread before it counts as hung


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


class GatedRunner(JobRunner):
    """A JobRunner whose jobs, instead of importing, record that they started and wait for their gate to open."""

    def __init__(self, max_workers):
        super().__init__(None, deliverer=None, broker=None, storage=None, max_workers=max_workers)
        self.started = []
        self.gates = {}
        self.arrived = threading.Semaphore(0)

    def gate(self, job_id):
        return self.gates.setdefault(job_id, threading.Event())

    def finish(self, job_id):
        """Let the job's run end, and wait until it has (its freed slot's claim included)."""
        self.gate(job_id).set()
        self.wait(job_id, timeout=WAIT)

    def close(self):
        for gate in list(self.gates.values()):
            gate.set()
        self.shutdown(wait=True)

    def _run_job(self, job_id, signal):
        self.started.append(job_id)
        self.arrived.release()
        assert self.gate(job_id).wait(WAIT)
