"""Test doubles shared by the service tests."""

import threading

from sqlalchemy import select

from importdash.config import Config
from importdash.models import ImportJob, Record, shown_status
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


def tokens_taken_at_once(stores, *, tries):
    """Let one thread per store try to take a token `tries` times, all starting together; return how many were taken."""
    barrier = threading.Barrier(len(stores))
    taken = []

    def worker(store):
        barrier.wait()
        taken.append(sum(store.try_take(1) for _ in range(tries)))

    threads = [threading.Thread(target=worker, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(taken)


class FakeLimitStore:
    """The database store's arithmetic (GCRA slots, the pause, the breaker) on a fake clock, shared by the buckets
    of several 'processes' in one test; `down` makes every call fail as an unreachable store would."""

    def __init__(self, clock, *, rate, burst):
        from importdash.services.limit_store import LimitStoreUnavailable

        self._unavailable = LimitStoreUnavailable
        self.clock, self.interval, self.burst = clock, 1.0 / rate, burst
        self.tat, self.paused_until, self.failures, self.probe_at = 0.0, 0.0, 0, None
        self.breaker_open, self.breaker_failures = False, 0
        self.down = False
        self.calls = []
        self._lock = threading.Lock()

    def _ask(self, operation):
        self.calls.append(operation)
        if self.down:
            raise self._unavailable("the fake store is down")
        return self.clock()

    def _saw(self):
        self.breaker_open, self.breaker_failures = self.probe_at is not None, self.failures

    def reserve(self, tokens):
        from importdash.services.limit_store import Grant

        with self._lock:
            now = self._ask("reserve")
            self.tat = max(self.tat, now) + tokens * self.interval
            slot = max(now, self.tat - self.burst * self.interval, self.paused_until)
            self._saw()
            slack = max(self.tat - tokens * self.interval - slot, 0.0)
            return Grant(wait=slot - now, reserved=True, slot=slot, slack=slack)

    def try_take(self, tokens):
        with self._lock:
            now = self._ask("try_take")
            new_tat = max(self.tat, now) + tokens * self.interval
            if new_tat - self.burst * self.interval > now or self.paused_until > now:
                return False
            self.tat = new_tat
            return True

    def seconds_until_available(self, tokens):
        with self._lock:
            now = self._ask("seconds_until_available")
            wait = max(self.tat, now) + (tokens - self.burst) * self.interval - now
            return max(wait, self.paused_until - now, 0.0)

    def slot_still_valid(self, grant):
        with self._lock:
            self._ask("slot_still_valid")
            self._saw()
            return self.paused_until <= grant.slot

    def pause(self, seconds):
        with self._lock:
            resume_at = self._ask("pause") + seconds
            self.paused_until = max(self.paused_until, resume_at)
            self.tat = max(self.tat, resume_at + (self.burst - 1) * self.interval)

    def record_failure(self, threshold, cooldown):
        with self._lock:
            now = self._ask("record_failure")
            self.failures += 1
            if self.failures >= threshold and (self.probe_at is None or self.probe_at <= now):
                self.probe_at = now + cooldown
            self._saw()
            return self.failures >= threshold

    def record_success(self):
        with self._lock:
            self._ask("record_success")
            self.failures, self.probe_at = 0, None
            self._saw()

    def take_probe(self, cooldown):
        with self._lock:
            now = self._ask("take_probe")
            self._saw()
            if self.probe_at is None:
                return 0.0
            if self.probe_at <= now:
                self.probe_at = now + cooldown
                return 0.0
            return self.probe_at - now

    def close(self):
        pass


def shown_statuses(session, job_id):
    """{row: status} of the job's records as people see them: what is stored, told by the job's watermarks."""
    query = (
        select(Record.row, shown_status(Record, ImportJob.settled_through, ImportJob.sent_through))
        .join(ImportJob, ImportJob.id == Record.job_id)
        .where(Record.job_id == job_id)
        .order_by(Record.row)
    )
    return dict(session.execute(query).all())
