"""An in-process event broker for SSE: each client gets a bounded queue of the events it asked for."""

import contextlib
import json
import queue
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .relay import RelaySender

# Event names go on the wire as they are, so they are limited to characters that cannot end an SSE field.
_EVENT_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


@dataclass(frozen=True)
class Event:
    """One announcement, numbered process-wide and encoded once for every client."""

    id: int
    name: str
    data: dict
    job_id: int | None
    _wire: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not _EVENT_NAME.fullmatch(self.name):
            raise ValueError(f"invalid event name {self.name!r}")
        # json.dumps escapes every control character, so the payload stays on one data line and cannot
        # forge fields; allow_nan=False because NaN is not JSON and would break the browser's JSON.parse.
        payload = json.dumps(self.data, separators=(",", ":"), allow_nan=False)
        object.__setattr__(self, "_wire", f"id: {int(self.id)}\nevent: {self.name}\ndata: {payload}\n\n")

    def encode(self) -> str:
        """Return the event in SSE wire format."""
        return self._wire


# Put on a closed subscription's queue so that a get() waiting on it returns at once.
_WAKE = object()


class TooManySubscribers(Exception):
    """The broker already serves as many subscribers as it is allowed to."""


class SubscriptionClosed(Exception):
    """The subscription was closed or dropped; no more events will come."""


class Subscription:
    """One client's bounded queue of events; read it with get() and close it in a finally block."""

    def __init__(self, broker: "EventBroker", job_id: int | None, queue_size: int):
        self.job_id = job_id
        self._broker = broker
        self._queue_size = queue_size
        # A SimpleQueue waits and wakes in C: a stream thread woken by a publish takes the GIL once and has its
        # event, where a Condition ran Python and took its lock again first. Every woken stream queues for the
        # one GIL, so that work is paid once per client; with 200 streams it was a tenth of the fan-out.
        self._events = queue.SimpleQueue()
        self._lock = threading.Lock()  # makes closing and offering exclusive
        self._closed = False
        self._dropped = False

    @property
    def closed(self) -> bool:
        """True once no more events will come, whether closed by the client or dropped by the broker."""
        return self._closed

    @property
    def dropped(self) -> bool:
        """True if the broker dropped this subscription because its queue was full."""
        return self._dropped

    def get(self, timeout: float | None) -> Event | None:
        """Return the next event, None if none came within timeout, or raise SubscriptionClosed once closed."""
        if not self._closed:
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                return None
            if event is not _WAKE:
                return event
        raise SubscriptionClosed("dropped: the client fell behind" if self._dropped else "closed")

    def close(self) -> None:
        """Stop receiving events and leave the broker; safe to call more than once."""
        with self._lock:
            self._end()
        self._broker._discard([self])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _offer(self, event: Event) -> bool:
        """Queue the event without blocking; return False if the queue was full and this subscription is dropped."""
        with self._lock:
            if self._closed:
                return True
            if self._events.qsize() >= self._queue_size:
                # A client this far behind gets a clean end instead of a gap: its stream closes, the browser
                # reconnects and rebuilds the state from the database.
                self._dropped = True
                self._end()
                return False
            self._events.put(event)
            return True

    def _end(self) -> None:
        """Mark the subscription closed, drop what it still holds and wake a get() that waits; call under the lock."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(queue.Empty):
            while True:
                self._events.get_nowait()
        self._events.put(_WAKE)


class EventBroker:
    """Fan events out to subscribers of one job and to subscribers of all jobs, never blocking the publisher."""

    def __init__(self, *, queue_size: int, max_subscribers: int, relay: "RelaySender | None"):
        if queue_size < 1 or max_subscribers < 1:
            raise ValueError("queue_size and max_subscribers must be at least 1")
        # Where jobs.publish_job announces a job's events to the other processes after publishing them here;
        # None for a broker on its own. The broker never announces: what it hears from the relay stays here.
        self.relay = relay
        self._queue_size = queue_size
        self._max_subscribers = max_subscribers
        self._lock = threading.Lock()  # guards the subscriber set only
        self._subscribers: set[Subscription] = set()
        # Serialising publishes (not subscribes) makes every subscriber see ids in increasing order; the
        # section is short because offering never blocks.
        self._publish_lock = threading.Lock()
        self._last_id = 0
        self._closed = False

    def subscribe(self, job_id: int | None = None) -> Subscription:
        """Return a new subscription to one job's events, or to every job's when job_id is None.

        Once the broker is closed the subscription comes closed: its stream sends the current state and ends.
        """
        with self._lock:
            if len(self._subscribers) >= self._max_subscribers:
                raise TooManySubscribers(f"the event broker already has {self._max_subscribers} subscribers")
            subscription = Subscription(self, job_id, self._queue_size)
            if self._closed:
                subscription._end()  # nobody else has it yet, so its own lock is not needed
            else:
                self._subscribers.add(subscription)
        return subscription

    def close(self) -> None:
        """End every subscription, open or to come: the process is shutting down.

        Each stream then ends at once, instead of holding its server thread (and the server's shutdown) until the
        graceful timeout; browsers reconnect by themselves, to another instance or to this one restarted. Safe in
        a signal handler on the main thread: the locks taken here are only ever held by stream and publishing
        threads, and never across a wait.
        """
        with self._lock:
            self._closed = True
            subscriptions = list(self._subscribers)
            self._subscribers.clear()
        for subscription in subscriptions:
            with subscription._lock:
                subscription._end()

    def publish(self, name: str, data: dict, job_id: int | None = None) -> Event:
        """Number the event and queue it for every interested subscriber, dropping those that are full."""
        with self._publish_lock:
            event = Event(self._last_id + 1, name, dict(data), job_id)  # raises before the id is spent
            self._last_id = event.id
            with self._lock:
                targets = [s for s in self._subscribers if s.job_id is None or s.job_id == job_id]
            too_slow = [s for s in targets if not s._offer(event)]
        if too_slow:
            self._discard(too_slow)
        return event

    def subscriber_count(self) -> int:
        """Return how many subscriptions are open."""
        with self._lock:
            return len(self._subscribers)

    def subscribed_job_ids(self) -> set[int]:
        """Return the jobs that have a stream of their own open here."""
        with self._lock:
            return {s.job_id for s in self._subscribers if s.job_id is not None}

    def last_event_id(self) -> int:
        """Return the id of the most recent event (0 before the first)."""
        with self._publish_lock:
            return self._last_id

    def _discard(self, subscriptions) -> None:
        with self._lock:
            self._subscribers.difference_update(subscriptions)
