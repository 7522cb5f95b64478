"""The stores a downstream's rate limit, 429 pause and circuit breaker are shared through by every process.

The database store (the default: the database every process already shares, no other service) reserves slots by
GCRA: one statement moves the downstream's theoretical arrival time (TAT) on by 1 / rate and returns it with the
database's clock, so each caller gets the next free slot in the order the database served them (first come, first
served across processes) and sleeps the relative seconds until it. Every slot is at least 1 / rate after the one
before, less the burst's tolerance, so no window W ever holds more than burst + rate x W slots, whichever process
took them. Nothing is fetched ahead: a slot is used when it falls due or not at all, since a token kept and spent
later would go out beside fresher ones and break that bound.

The Redis store (IMPORTDASH_REDIS_URL, for call rates a database should not carry) keeps the same limit with
pyrate-limiter's GCRA state in one Redis hash, and the pause and breaker in plain keys with Redis-side expiries.

Both raise LimitStoreUnavailable when they cannot be reached; the bucket and breaker then wait, never call.
"""

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class LimitStoreUnavailable(Exception):
    """The shared store did not answer; nothing was granted."""


@dataclass(frozen=True)
class OutageBackoff:
    """How long a caller waits before asking an unreachable store again: full jitter, doubling up to the cap."""

    base: float
    cap: float

    def delay(self, failures: int, rand=random.random) -> float:
        return rand() * min(self.cap, self.base * 2 ** (failures - 1))


@dataclass(frozen=True)
class Grant:
    """The store's answer to a request for tokens.

    reserved: the tokens are the caller's, to spend `wait` seconds from now (a slot), or never.
    Not reserved: nothing was taken; ask again in `wait` seconds.
    """

    wait: float
    reserved: bool
    slot: float | None = None  # the slot on the store's clock, to tell whether a later pause covers it
    # How late the slot may be used and still leave every later slot its interval (0: exactly on time).
    slack: float = 0.0
    # Seconds between the store's reading of the time and its answer, when the store knows (else the caller
    # counts its whole request as possibly late).
    age: float | None = None


@dataclass(frozen=True)
class SharedState:
    """The downstream's pause and breaker as every process shares them, for people to see."""

    paused_seconds: float  # left of a 429's pause (0: none)
    failures: int  # failed calls in a row
    breaker_open: bool


class LimitStore(Protocol):
    """What the token bucket and the circuit breaker need from a store every process shares."""

    breaker_open: bool  # the shared breaker as this process last saw it
    breaker_failures: int  # the failed calls in a row it last saw (a success then has something to reset)

    def reserve(self, tokens: int) -> Grant: ...

    def try_take(self, tokens: int) -> bool: ...

    def seconds_until_available(self, tokens: int) -> float: ...

    def slot_still_valid(self, grant: Grant) -> bool: ...

    def pause(self, seconds: float) -> None: ...

    def record_failure(self, threshold: int, cooldown: float) -> bool: ...

    def record_success(self) -> None: ...

    def take_probe(self, cooldown: float) -> float: ...

    def state(self) -> SharedState: ...

    def close(self) -> None: ...


def limit_name(downstream_kind: str, webhook_url: str | None) -> str:
    """One rate limit per downstream: "simulated", or "webhook:" and a digest of the URL (it may hold a token)."""
    if downstream_kind == "webhook" and webhook_url:
        return "webhook:" + hashlib.sha256(webhook_url.encode()).hexdigest()[:32]
    return downstream_kind


class _SQLiteClock:
    # julianday('now') has millisecond precision and is read once per statement, after its write lock is taken.
    now = "((julianday('now') - 2440587.5) * 86400.0)"
    greatest = "max"


class _PostgreSQLClock:
    # clock_timestamp(), not now(): now() is the transaction's start, before any wait for the row's lock.
    now = "extract(epoch from clock_timestamp())::float8"
    greatest = "greatest"


class DatabaseLimitStore:
    """The limit, pause and breaker of one downstream, in its row of rate_limits, on a connection of its own.

    One connection (from the app's engine, never a job's session) serves every thread of the process, one
    statement at a time: each statement is its own short transaction, and the row's lock serialises them across
    processes anyway. Every time is the database's clock; callers get relative seconds.
    """

    def __init__(self, engine: Engine, *, name: str, rate: float, burst: int):
        if rate <= 0 or burst < 1:
            raise ValueError("a shared limit needs a rate above 0 and a burst of at least 1")
        self.name = name
        self.breaker_open = False
        self.breaker_failures = 0
        self._interval = 1.0 / rate
        self._burst = burst
        self._engine = engine
        self._connection = None
        self._row_ready = False
        self._lock = threading.Lock()
        clock = _PostgreSQLClock if engine.dialect.name == "postgresql" else _SQLiteClock
        now, greatest = clock.now, clock.greatest
        self._sql = {
            "ensure": text(
                "INSERT INTO rate_limits (name, tat, paused_until, failures) VALUES (:name, 0, 0, 0) "
                "ON CONFLICT (name) DO NOTHING"
            ),
            "reserve": text(
                f"UPDATE rate_limits SET tat = {greatest}(tat, {now}) + :cost WHERE name = :name "
                f"RETURNING tat, paused_until, failures, probe_at, {now}"
            ),
            "try_take": text(
                f"UPDATE rate_limits SET tat = {greatest}(tat, {now}) + :cost WHERE name = :name "
                f"AND {greatest}(tat, {now}) + :cost - :tolerance <= {now} AND paused_until <= {now} RETURNING tat"
            ),
            "available": text(
                f"SELECT {greatest}(tat, {now}) + :cost - :tolerance - {now}, paused_until - {now} "
                "FROM rate_limits WHERE name = :name"
            ),
            "confirm": text("SELECT paused_until, failures, probe_at FROM rate_limits WHERE name = :name"),
            # The next grant goes exactly when the pause ends, the ones after at the steady rate (no burst). The
            # TAT only ever moves on, so slots already reserved after the pause stay the only ones there.
            # One reading of the clock for both, so the pause's end and the next slot agree to the microsecond.
            "pause": text(
                "UPDATE rate_limits SET (paused_until, tat) = (SELECT "
                f"{greatest}(paused_until, resume_at), {greatest}(tat, resume_at + :rest) "
                f"FROM (SELECT {now} + :seconds AS resume_at) AS pause) WHERE name = :name RETURNING name"
            ),
            "failure": text(
                "UPDATE rate_limits SET failures = failures + 1, probe_at = CASE "
                f"WHEN failures + 1 >= :threshold AND (probe_at IS NULL OR probe_at <= {now}) THEN {now} + :cooldown "
                "ELSE probe_at END WHERE name = :name RETURNING failures"
            ),
            "success": text(
                "UPDATE rate_limits SET failures = 0, probe_at = NULL "
                "WHERE name = :name AND (failures <> 0 OR probe_at IS NOT NULL)"
            ),
            "probe": text(
                f"UPDATE rate_limits SET probe_at = {now} + :cooldown WHERE name = :name AND probe_at <= {now} "
                "RETURNING probe_at"
            ),
            "probe_wait": text(f"SELECT probe_at - {now} FROM rate_limits WHERE name = :name"),
            "state": text(
                f"SELECT {greatest}(paused_until - {now}, 0), failures, probe_at IS NOT NULL "
                "FROM rate_limits WHERE name = :name"
            ),
        }

    def reserve(self, tokens: int) -> Grant:
        """Reserve the next slot for the tokens and return the seconds until it."""
        row = self._run("reserve", cost=tokens * self._interval, returns_row=True)
        tat, paused_until, failures, probe_at, now = row
        self._saw_breaker(failures, probe_at)
        cost = tokens * self._interval
        slot = max(now, tat - self._burst * self._interval, paused_until)
        # Used by tat - cost, the slot still leaves every later one its full interval: that much lateness is free.
        return Grant(wait=slot - now, reserved=True, slot=slot, slack=max(tat - cost - slot, 0.0))

    def try_take(self, tokens: int) -> bool:
        cost = tokens * self._interval
        return self._run("try_take", cost=cost, tolerance=self._burst * self._interval, returns_row=True) is not None

    def seconds_until_available(self, tokens: int) -> float:
        cost = tokens * self._interval
        row = self._run("available", cost=cost, tolerance=self._burst * self._interval, returns_row=True)
        return max(row[0], row[1], 0.0)

    def slot_still_valid(self, grant: Grant) -> bool:
        """False if a pause that began after the slot was reserved covers it (then it is given up)."""
        paused_until, failures, probe_at = self._run("confirm", returns_row=True)
        self._saw_breaker(failures, probe_at)
        return paused_until <= grant.slot

    def pause(self, seconds: float) -> None:
        self._run("pause", seconds=max(float(seconds), 0.0), rest=(self._burst - 1) * self._interval, returns_row=True)

    def record_failure(self, threshold: int, cooldown: float) -> bool:
        (failures,) = self._run("failure", threshold=threshold, cooldown=cooldown, returns_row=True)
        self.breaker_failures = failures
        self.breaker_open = failures >= threshold
        return self.breaker_open

    def record_success(self) -> None:
        self._run("success")
        self.breaker_open, self.breaker_failures = False, 0

    def take_probe(self, cooldown: float) -> float:
        """0.0 if a call may go out (the breaker is closed, or this caller is its probe), else the seconds to wait."""
        if self._run("probe", cooldown=cooldown, returns_row=True) is not None:
            return 0.0
        (wait,) = self._run("probe_wait", returns_row=True)
        self.breaker_open = wait is not None
        if wait is None:
            return 0.0
        return max(wait, _RECHECK_SECONDS)  # due already: another process just took the probe, or is about to

    def state(self) -> SharedState:
        paused, failures, is_open = self._run("state", returns_row=True)
        return SharedState(paused_seconds=paused, failures=failures, breaker_open=bool(is_open))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _saw_breaker(self, failures, probe_at):
        self.breaker_failures = failures
        self.breaker_open = probe_at is not None

    def _run(self, statement, *, returns_row=False, **parameters):
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._engine.connect()
                if not self._row_ready:
                    self._connection.execute(self._sql["ensure"], {"name": self.name})
                    self._connection.commit()
                    self._row_ready = True
                result = self._connection.execute(self._sql[statement], {"name": self.name, **parameters})
                row = result.first() if returns_row else None
                self._connection.commit()
            except SQLAlchemyError as error:
                self._drop_connection()
                self._row_ready = False
                raise LimitStoreUnavailable(f"the rate limit's database did not answer: {error}") from error
        if returns_row and row is None and statement not in ("try_take", "probe"):
            self._row_ready = False  # the row went (a database reset); it is made again on the next call
            raise LimitStoreUnavailable("the rate limit's row is missing")
        return row

    def _drop_connection(self):
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except SQLAlchemyError:
                log.debug("closing the rate limit's broken connection failed", exc_info=True)
            self._connection = None


# A wait for something another process is doing at this moment: check again this soon.
_RECHECK_SECONDS = 0.01


class RedisLimitStore:
    """The limit of one downstream as pyrate-limiter's GCRA state in Redis; the pause and breaker in plain keys.

    pyrate-limiter's GCRA admits or refuses without reserving (a refused caller asks again after the wait it is
    told), so across processes the order is not strictly first come, first served, which evens out at the call
    rates Redis is for. Its timestamps are the calling machine's wall clock (keep the machines on NTP); the pause
    and the breaker's cool-down are Redis expiries, so they are measured by Redis alone.
    """

    def __init__(self, client, *, prefix: str, name: str, rate: float, burst: int, wall_clock_ms: Callable[[], int]):
        # Imported here so the database store (the default) needs neither library.
        from pyrate_limiter import GCRA, Rate, RateItem, RedisStateStore, StateBucket
        from redis.exceptions import RedisError

        if rate <= 0 or burst < 1:
            raise ValueError("a shared limit needs a rate above 0 and a burst of at least 1")
        self.name = name
        self.breaker_open = False
        self.breaker_failures = 0
        self._client = client
        self._errors = (RedisError, OSError)
        self._item = RateItem
        self._clock = wall_clock_ms
        key = f"{prefix}:rate-limit:{name}"
        self._pause_key = f"{key}:pause"
        self._failures_key = f"{key}:failures"
        self._open_key = f"{key}:open"
        self._probe_key = f"{key}:probe"
        # A rate of a million per (10^9 / rate) ms gives a microsecond emission interval for any rate, whole or not.
        limit = Rate(1_000_000, max(round(1e9 / rate), 1), burst=burst)
        self._bucket = StateBucket([limit], algorithm=GCRA(), store=RedisStateStore(client, f"{key}:gcra"))
        self._burst = burst
        self._interval = 1.0 / rate

    def reserve(self, tokens: int) -> Grant:
        pause_ms = self._read_pause_and_breaker()
        if pause_ms > 0:
            return Grant(wait=pause_ms / 1000, reserved=False)
        read_at = time.monotonic()
        item = self._item(self.name, self._clock(), tokens)
        if self._call(lambda: self._bucket.put(item)):
            return Grant(wait=0.0, reserved=True, age=time.monotonic() - read_at)
        return Grant(wait=max(self._call(lambda: self._bucket.waiting(item)), 1) / 1000, reserved=False)

    def try_take(self, tokens: int) -> bool:
        grant = self.reserve(tokens)
        return grant.reserved and grant.wait == 0

    def seconds_until_available(self, tokens: int) -> float:
        pause = self._read_pause_and_breaker() / 1000
        owed = self._call(self._bucket.count)  # units the GCRA state is ahead of now
        return max(pause, (owed + tokens - self._burst) * self._interval, 0.0)

    def slot_still_valid(self, grant: Grant) -> bool:
        return True  # grants here are never reserved ahead of time

    def pause(self, seconds: float) -> None:
        milliseconds = max(round(seconds * 1000), 1)

        def set_pause():
            with self._client.pipeline() as pipeline:
                pipeline.set(self._pause_key, 1, px=milliseconds, nx=True)
                pipeline.pexpire(self._pause_key, milliseconds, gt=True)  # a shorter pause never cuts a longer one
                pipeline.execute()

        self._call(set_pause)

    def record_failure(self, threshold: int, cooldown: float) -> bool:
        failures = self._call(lambda: self._client.incr(self._failures_key))
        if failures >= threshold:
            with self._client.pipeline() as pipeline:
                pipeline.set(self._open_key, 1)
                pipeline.set(self._probe_key, 1, px=max(round(cooldown * 1000), 1), nx=True)
                self._call(pipeline.execute)
        self.breaker_failures = failures
        self.breaker_open = failures >= threshold
        return self.breaker_open

    def record_success(self) -> None:
        self._call(lambda: self._client.delete(self._failures_key, self._open_key, self._probe_key))
        self.breaker_open, self.breaker_failures = False, 0

    def take_probe(self, cooldown: float) -> float:
        if not self._call(lambda: self._client.exists(self._open_key)):
            self.breaker_open = False
            return 0.0
        self.breaker_open = True
        if self._call(lambda: self._client.set(self._probe_key, 1, px=max(round(cooldown * 1000), 1), nx=True)):
            return 0.0
        return max(self._call(lambda: self._client.pttl(self._probe_key)) / 1000, _RECHECK_SECONDS)

    def state(self) -> SharedState:
        paused_ms = self._read_pause_and_breaker()
        return SharedState(
            paused_seconds=paused_ms / 1000, failures=self.breaker_failures, breaker_open=self.breaker_open
        )

    def close(self) -> None:
        self._client.close()

    def _read_pause_and_breaker(self):
        """The pause's milliseconds left (0 if none), reading the breaker's state in the same round trip."""

        def read():
            with self._client.pipeline(transaction=False) as pipeline:
                pipeline.pttl(self._pause_key)
                pipeline.get(self._failures_key)
                pipeline.exists(self._open_key)
                return pipeline.execute()

        pause_ms, failures, is_open = self._call(read)
        self.breaker_failures, self.breaker_open = int(failures or 0), bool(is_open)
        return max(pause_ms, 0)

    def _call(self, action):
        try:
            return action()
        except self._errors as error:
            raise LimitStoreUnavailable(f"the rate limit's Redis did not answer: {error}") from error
