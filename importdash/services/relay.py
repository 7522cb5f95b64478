"""Relay job events between processes, so every stream on every instance shows every import.

A process publishes its own job events to its own streams at once (jobs.publish_job) and then announces them:
an announcement is the job's id and the event's name, and it travels by PostgreSQL NOTIFY, Redis pub/sub, or
on SQLite a row of the event_outbox table. Each serving process keeps one listener (a thread on one connection
of its own) that hears the other processes' announcements, reads each job's committed state afresh and
publishes it to its own streams. A process never takes back its own announcements: they carry its origin.

Announcing the id instead of the state keeps every announcement a few dozen bytes (NOTIFY takes 8,000 at most,
and a job's error text has no bound), and a receiver always shows the newest committed state, never an older
one that overtook it. Its cost is one read of one job row per announcement in each listening process: a running
job announces progress every PROGRESS_INTERVAL_SECONDS.
"""

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import ImportJob, JobStatus, OutboxEvent, stored, utcnow
from .broker import EventBroker
from .jobs import job_state, publish_job_here
from .streams import JOB_FINISHED, state_event_name

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Announcement:
    """One process telling the others that a job's committed state changed, and under which event name."""

    origin: str
    job_id: int
    name: str

    def encode(self) -> str:
        return json.dumps({"origin": self.origin, "job_id": self.job_id, "name": self.name}, separators=(",", ":"))

    @classmethod
    def decode(cls, payload: str | bytes) -> "Announcement":
        """Read an encoded announcement; raise ValueError for anything else on the channel."""
        try:
            data = json.loads(payload)
            origin, job_id, name = data["origin"], data["job_id"], data["name"]
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"not an announcement: {error}") from None
        if not isinstance(origin, str) or not isinstance(name, str) or type(job_id) is not int:
            raise ValueError("not an announcement: a field has the wrong type")
        return cls(origin, job_id, name)


class Receiver(Protocol):
    """One connection that hears announcements; made by a transport for the listener alone."""

    def receive(self) -> list[Announcement]:
        """Wait a short while for announcements and return those that came (maybe none); raise on an outage."""

    def close(self) -> None: ...


class Transport(Protocol):
    """How announcements travel between processes."""

    description: str  # for the log, e.g. "PostgreSQL LISTEN/NOTIFY"

    def send(self, session: Session, announcement: Announcement) -> None:
        """Announce, after the commit it is about (the caller's session may carry it)."""

    def connect(self) -> Receiver: ...

    def close(self) -> None:
        """Let go of what announcing holds (the process is stopping)."""


def _decode_all(payloads: Iterable[str | bytes]) -> list[Announcement]:
    announcements = []
    for payload in payloads:
        try:
            announcements.append(Announcement.decode(payload))
        except ValueError as error:  # someone else's message on our channel: not ours to act on
            log.warning("event relay: ignored a message: %s", error)
    return announcements


class PostgresNotify:
    """Announce with NOTIFY on the caller's session; listen with LISTEN on a connection outside the pool."""

    description = "PostgreSQL LISTEN/NOTIFY"

    def __init__(self, *, conninfo: str, connect_args: dict, channel: str, wait_seconds: float):
        self.conninfo = conninfo
        self.connect_args = connect_args
        self.channel = channel
        self.wait_seconds = wait_seconds

    def send(self, session: Session, announcement: Announcement) -> None:
        # PostgreSQL delivers a notification when its transaction commits: the commit below, just after the one
        # the announcement is about, so a listener that hears it reads that state or a newer one.
        session.execute(select(func.pg_notify(self.channel, announcement.encode())))
        session.commit()

    def connect(self) -> Receiver:
        return _PostgresListener(self)

    def close(self) -> None:
        pass  # announcing uses the caller's session


class _PostgresListener:
    def __init__(self, transport: PostgresNotify):
        import psycopg
        from psycopg import sql

        self.wait_seconds = transport.wait_seconds
        self.connection = psycopg.connect(transport.conninfo, autocommit=True, **transport.connect_args)
        try:
            self.connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(transport.channel)))
        except BaseException:
            self.connection.close()
            raise

    def receive(self) -> list[Announcement]:
        notifies = list(self.connection.notifies(timeout=self.wait_seconds, stop_after=1))
        if not notifies:
            # A quiet spell: ask the server, so a connection that died without a word is noticed now, not when the
            # kernel gives up on it (the keep-alives in connect_args are the second line).
            self.connection.execute("SELECT 1")
        return _decode_all(notify.payload for notify in notifies)

    def close(self) -> None:
        self.connection.close()


class RedisPubSub:
    """Announce with PUBLISH; listen with SUBSCRIBE on a connection of the listener's own."""

    description = "Redis pub/sub"

    def __init__(self, *, url: str, channel: str, wait_seconds: float, send_timeout: float):
        import redis

        self.url = url
        self.channel = channel
        self.wait_seconds = wait_seconds
        self.send_timeout = send_timeout
        # One client (a pool of connections) for every thread that announces; a Redis that does not answer costs
        # an announcement send_timeout at most, never a stuck import.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=send_timeout, socket_timeout=send_timeout)

    def send(self, session: Session, announcement: Announcement) -> None:
        self.client.publish(self.channel, announcement.encode())

    def connect(self) -> Receiver:
        return _RedisListener(self)

    def close(self) -> None:
        self.client.close()


class _RedisListener:
    def __init__(self, transport: RedisPubSub):
        import redis

        self.wait_seconds = transport.wait_seconds
        # The pub/sub connection pings the server after each quiet spell of this long, so a dead one is noticed.
        health_check = max(1, round(transport.wait_seconds))
        self.client = redis.Redis.from_url(
            transport.url,
            socket_connect_timeout=transport.send_timeout,
            health_check_interval=health_check,
            socket_keepalive=True,
        )
        self.pubsub = self.client.pubsub()
        try:
            self.pubsub.subscribe(transport.channel)
            # Listening once Redis confirms it, so that nothing published after connect() returns goes unheard.
            confirmation = self.pubsub.get_message(timeout=transport.send_timeout)
            if confirmation is None or confirmation["type"] != "subscribe":
                raise ConnectionError(f"Redis did not confirm the subscription: {confirmation!r}")
        except BaseException:
            self.close()
            raise

    def receive(self) -> list[Announcement]:
        payloads = []
        message = self.pubsub.get_message(timeout=self.wait_seconds)
        while message is not None:
            if message["type"] == "message":
                payloads.append(message["data"])
            message = self.pubsub.get_message(timeout=0)
        return _decode_all(payloads)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.pubsub.close()
        self.client.close()


class DatabaseOutbox:
    """Announce by writing a row of event_outbox after the commit; listen by reading new rows every poll.

    For SQLite, whose processes share a file but no channel. Rows are numbered in commit order there (one writer
    at a time, ids never reused), so a reader that remembers the last id it read misses none.
    """

    description = "the event_outbox table"

    def __init__(self, *, engine: Engine, poll_seconds: float, keep_seconds: float, clock=time.monotonic, sleep=None):
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.keep_seconds = keep_seconds
        self.clock = clock
        self.sleep = sleep or time.sleep

    def send(self, session: Session, announcement: Announcement) -> None:
        session.execute(
            insert(OutboxEvent).values(origin=announcement.origin, job_id=announcement.job_id, name=announcement.name)
        )
        session.commit()

    def connect(self) -> Receiver:
        return _OutboxReader(self)

    def close(self) -> None:
        pass  # announcing uses the caller's session


class _OutboxReader:
    def __init__(self, outbox: DatabaseOutbox):
        self.outbox = outbox
        with outbox.engine.connect() as connection:
            # Start after what is already there: those were announced before this listener was listening.
            self.last_id = connection.scalar(select(func.max(OutboxEvent.id))) or 0
        self.last_trim = outbox.clock()

    def receive(self) -> list[Announcement]:
        outbox = self.outbox
        query = select(OutboxEvent.id, OutboxEvent.origin, OutboxEvent.job_id, OutboxEvent.name).where(
            OutboxEvent.id > self.last_id
        )
        with outbox.engine.connect() as connection:
            rows = connection.execute(query.order_by(OutboxEvent.id)).all()
        if rows:
            self.last_id = rows[-1].id
        if outbox.clock() - self.last_trim >= outbox.keep_seconds:
            self.trim()
        if not rows:
            outbox.sleep(outbox.poll_seconds)
        return [Announcement(row.origin, row.job_id, row.name) for row in rows]

    def trim(self) -> int:
        """Delete the rows older than keep_seconds (every listener does, now and then); return how many."""
        before = utcnow() - timedelta(seconds=self.outbox.keep_seconds)
        with self.outbox.engine.begin() as connection:
            deleted = connection.execute(delete(OutboxEvent).where(OutboxEvent.created_at < before)).rowcount
        self.last_trim = self.outbox.clock()
        return deleted

    def close(self) -> None:
        pass


class RelaySender:
    """Announce this process's job events to the others; jobs.publish_job calls it after publishing them here."""

    def __init__(self, transport: Transport, *, origin: str):
        self.transport = transport
        self.origin = origin

    def announce(self, session: Session, job_id: int, name: str) -> bool:
        """Announce an event of a job whose state is committed; False (logged) when it could not go out.

        Never raises: this process's streams have the event already, and the job goes on; the other processes'
        streams show the job's next announcement instead.
        """
        try:
            self.transport.send(session, Announcement(self.origin, job_id, name))
        except Exception as error:
            log.warning(
                "event relay: %s of import #%s not announced by %s: %s", name, job_id, self.transport.description, error
            )
            with contextlib.suppress(Exception):
                session.rollback()
            return False
        return True


class RelayListener:
    """One thread per serving process: hear the other processes' announcements on one connection and hand them on.

    It reconnects after an outage with full-jitter backoff, then catches up (the jobs whose announcements it may
    have missed are published again with their current state), and it always ends on stop().
    """

    def __init__(
        self,
        transport: Transport,
        *,
        origin: str,
        deliver: Callable[[list[Announcement]], None],
        catch_up: Callable[[set[int]], None],
        retry_base: float,
        retry_cap: float,
        rand=random.random,
        wait=None,
    ):
        self.transport = transport
        self.origin = origin
        self.deliver = deliver
        self.catch_up = catch_up
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.rand = rand
        self._stopping = threading.Event()
        # Waits out a backoff delay, returning True once stop() was called (tests pass one that does not sleep).
        self.wait = wait or self._stopping.wait
        self._thread = None
        self._unfinished: set[int] = set()  # jobs announced by others and not yet announced finished
        self.connected = threading.Event()  # set while listening (for tests and the log)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="importdash-event-relay", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; it does within one wait of its transport (safe in a signal handler)."""
        self._stopping.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Listen until stopped, reconnecting after every outage."""
        failures = 0
        missed = False  # whether announcements may have gone by unheard (an outage, or no start at all)
        while not self._stopping.is_set():
            try:
                receiver = self.transport.connect()
            except Exception as error:
                failures += 1
                missed = True
                delay = self._backoff(failures)
                log.warning(
                    "event relay: cannot listen on %s (%s); trying again in %.1f s",
                    self.transport.description,
                    error,
                    delay,
                )
                self.wait(delay)
                continue
            try:
                log.info("event relay: listening on %s", self.transport.description)
                self.connected.set()
                if missed:
                    self._catch_up()
                    missed = False
                failures = 0
                self._listen(receiver)
            except Exception as error:
                failures += 1
                missed = True
                delay = self._backoff(failures)
                log.warning(
                    "event relay: lost %s (%s); listening again in %.1f s", self.transport.description, error, delay
                )
                self.wait(delay)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    receiver.close()
        log.info("event relay: stopped listening (the process is stopping)")

    def _listen(self, receiver: Receiver) -> None:
        while not self._stopping.is_set():
            announcements = [a for a in receiver.receive() if a.origin != self.origin]
            if not announcements:
                continue
            for announcement in announcements:
                if announcement.name == JOB_FINISHED:
                    self._unfinished.discard(announcement.job_id)
                else:
                    self._unfinished.add(announcement.job_id)
            try:
                self.deliver(announcements)
            except Exception:  # the database did not answer a read: these streams get the job's next event
                log.exception("event relay: could not publish %s announced events here", len(announcements))

    def _catch_up(self) -> None:
        try:
            self.catch_up(set(self._unfinished))
        except Exception:
            log.exception("event relay: could not catch up after listening again")

    def _backoff(self, failures: int) -> float:
        return self.rand() * min(self.retry_cap, self.retry_base * 2 ** (failures - 1))


class StreamFeed:
    """Publish announced jobs to this process's streams, each job's committed state read afresh."""

    def __init__(self, app: "Flask", broker: EventBroker):
        self.app = app
        self.broker = broker

    def publish(self, announcements: list[Announcement]) -> None:
        """Publish each announced event once, in the order announced (a repeat would carry the same state)."""
        seen = set()
        with self.app.app_context():
            try:
                for announcement in announcements:
                    key = (announcement.job_id, announcement.name)
                    if key not in seen:
                        seen.add(key)
                        publish_job_here(self.broker, db.session, announcement.job_id, announcement.name)
            finally:
                db.session.remove()

    def catch_up(self, job_ids: set[int]) -> None:
        """Publish the current state of the jobs whose events may have been missed: those given, those with a
        stream of their own here, and every unfinished one."""
        with self.app.app_context():
            try:
                session = db.session
                unfinished = session.scalars(
                    select(ImportJob.id).where(ImportJob.status.in_(stored(JobStatus.unfinished())))
                )
                for job_id in sorted(set(job_ids) | self.broker.subscribed_job_ids() | set(unfinished)):
                    session.expire_all()
                    state = job_state(session, job_id)
                    if state is not None:
                        self.broker.publish(state_event_name(state), state, job_id=job_id)
            finally:
                db.session.remove()
