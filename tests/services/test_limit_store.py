"""The database store of the shared rate limit, on SQLite and PostgreSQL: slots, pauses, the breaker, concurrency
across connections, and real processes hammering one database."""

import multiprocessing
import threading
import time

import pytest
from fakes import tokens_taken_at_once
from sqlalchemy import create_engine, text

from importdash.extensions import db
from importdash.runtime import get_runtime
from importdash.services.bucket import TokenBucket
from importdash.services.limit_store import DatabaseLimitStore, LimitStoreUnavailable, OutageBackoff, limit_name

# Grant times are read by the processes a little after the database handed out each slot; a window only counts
# as over the limit when it beats the limit by more than this much scheduling jitter on a loaded machine.
JITTER_SECONDS = 0.05


@pytest.fixture
def app_config():
    return {"RATE_PER_SECOND": 10, "RATE_BURST": 3}


def make_store(app, rate=10, burst=3, name="simulated"):
    with app.app_context():
        return DatabaseLimitStore(db.engine, name=name, rate=rate, burst=burst)


def database_now(app):
    with app.app_context(), db.engine.connect() as connection:
        sql = (
            "SELECT extract(epoch from clock_timestamp())::float8"
            if db.engine.dialect.name == "postgresql"
            else "SELECT (julianday('now') - 2440587.5) * 86400.0"
        )
        return connection.execute(text(sql)).scalar_one()


def test_the_runtime_shares_the_limit_through_the_database(app):
    runtime = get_runtime(app)
    assert isinstance(runtime.limit_store, DatabaseLimitStore)
    assert runtime.bucket.store is runtime.limit_store
    assert runtime.deliverer.breaker.is_open is False
    assert runtime.limit_store.name == "simulated"


def test_limit_names_are_one_per_downstream_and_never_hold_the_url():
    name = limit_name("webhook", "https://user:secret@example.com/hook")
    assert name.startswith("webhook:") and "secret" not in name and len(name) <= 64
    assert name != limit_name("webhook", "https://example.com/other")
    assert limit_name("simulated", None) == "simulated"


def test_the_burst_goes_at_once_then_slots_are_one_interval_apart(app):
    store = make_store(app, rate=10, burst=3)
    grants = [store.reserve(1) for _ in range(8)]

    assert all(grant.reserved for grant in grants)
    assert [grant.wait for grant in grants[:3]] == [0.0, 0.0, 0.0]
    slots = [grant.slot for grant in grants]
    gaps = [later - earlier for earlier, later in zip(slots[2:], slots[3:], strict=False)]
    # The fourth slot is one interval after the first, the rest one interval apart (the queries take ms, not 100).
    assert slots[3] - slots[0] == pytest.approx(0.1, abs=0.02)
    assert gaps[1:] == pytest.approx([0.1] * 4, abs=1e-6)
    store.close()


def test_try_take_takes_only_what_is_there(app):
    store = make_store(app, rate=1 / 3600, burst=2)  # one token an hour: nothing refills during the test
    assert [store.try_take(1) for _ in range(3)] == [True, True, False]
    assert store.seconds_until_available(1) == pytest.approx(3600, abs=1)
    store.close()


def test_a_pause_holds_every_store_back_then_resumes_at_the_steady_rate(app):
    throttled, other = make_store(app), make_store(app)
    reserved_before = other.reserve(1)
    assert other.slot_still_valid(reserved_before)

    throttled.pause(30)

    assert not other.slot_still_valid(reserved_before)  # the pause covers it: the slot is given up
    first, second = other.reserve(1), other.reserve(1)
    assert first.wait == pytest.approx(30, abs=0.05)
    assert second.slot - first.slot == pytest.approx(0.1, abs=1e-6)  # no burst after a pause
    assert other.seconds_until_available(1) == pytest.approx(30.2, abs=0.05)
    throttled.pause(1)  # a shorter pause does not cut the longer one
    assert other.reserve(1).slot - second.slot == pytest.approx(0.1, abs=1e-6)
    throttled.close()
    other.close()


def test_the_breaker_is_shared_and_probed_once_per_cooldown(app):
    first, second = make_store(app), make_store(app)

    assert first.record_failure(threshold=2, cooldown=0) is False
    second.reserve(1)
    assert (second.breaker_failures, second.breaker_open) == (1, False)
    assert second.record_failure(threshold=2, cooldown=0) is True  # two in a row, from two processes
    first.reserve(1)
    assert first.breaker_open

    # The cool-down of 0 made the probe due at once: exactly one store takes it, the other waits a new cool-down.
    waits = [first.take_probe(cooldown=60), second.take_probe(cooldown=60)]
    assert waits[0] == 0.0 and waits[1] == pytest.approx(60, abs=0.05)

    first.record_success()
    assert second.take_probe(cooldown=60) == 0.0 and not second.breaker_open
    second.reserve(1)
    assert (second.breaker_failures, second.breaker_open) == (0, False)
    first.close()
    second.close()


def test_threads_on_their_own_connections_get_exactly_the_burst(app):
    stores = [make_store(app, rate=1 / 3600, burst=5) for _ in range(8)]
    assert tokens_taken_at_once(stores, tries=10) == 5
    for store in stores:
        store.close()


def test_reservations_from_many_connections_are_distinct_slots_one_interval_apart(app):
    stores = [make_store(app, rate=1, burst=4) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    slots = []
    lock = threading.Lock()

    def worker(store):
        barrier.wait()
        for _ in range(5):
            grant = store.reserve(1)
            with lock:
                slots.append(grant.slot)

    threads = [threading.Thread(target=worker, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    slots.sort()
    assert len(slots) == 30
    # The burst of four goes within the time the queries take; the fifth slot is one second after the first and
    # every later one exactly one second after the one before.
    assert slots[3] - slots[0] < 0.5
    assert slots[4] - slots[0] == pytest.approx(1.0, abs=0.01)  # PostgreSQL reads its clock twice, microseconds apart
    assert [later - earlier for earlier, later in zip(slots[4:], slots[5:], strict=False)] == pytest.approx(
        [1.0] * 25, abs=1e-6
    )
    for store in stores:
        store.close()


def test_a_reservation_that_waited_for_the_lock_reads_the_clock_after_it(app):
    """The slot is computed from the time the row was locked, not when the statement started waiting."""
    store = make_store(app, rate=1000, burst=1)
    store.reserve(1)  # the row exists; the bucket is far ahead of nothing
    with app.app_context():
        holder = db.engine.connect()
    try:
        if holder.dialect.name == "postgresql":
            holder.execute(text("SELECT tat FROM rate_limits WHERE name = 'simulated' FOR UPDATE"))
        else:
            holder.exec_driver_sql("BEGIN IMMEDIATE")
        result = []
        waiter = threading.Thread(target=lambda: result.append(store.reserve(1)))
        waiter.start()
        time.sleep(0.3)
        released_at = database_now(app)
        holder.rollback()
        waiter.join()
    finally:
        holder.close()
    grant = result[0]
    assert grant.slot - grant.wait >= released_at  # the database's "now" for the grant came after the lock's release
    store.close()


def test_a_database_that_does_not_answer_raises_unavailable(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")
    store = DatabaseLimitStore(engine, name="simulated", rate=1, burst=1)
    with pytest.raises(LimitStoreUnavailable):
        store.reserve(1)
    with pytest.raises(LimitStoreUnavailable):
        store.record_failure(threshold=1, cooldown=1)
    store.close()


def test_the_store_finds_the_database_again_after_an_outage(app):
    store = make_store(app)
    store.reserve(1)
    # The store's connection breaks under it, as when the database restarts.
    store._connection.connection.dbapi_connection.close()
    with pytest.raises(LimitStoreUnavailable):
        store.reserve(1)
    assert store.reserve(1).reserved  # a new connection, and the row is still there
    store.close()


# Real processes, each with its own engine, store and bucket, hammering one database.


def _hammer(url, rate, burst, seconds, ready, grants):
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    store = DatabaseLimitStore(engine, name="simulated", rate=rate, burst=burst)
    bucket = TokenBucket(
        rate=rate, capacity=burst, store=store, outage_backoff=OutageBackoff(base=0.05, cap=0.5), grant_tolerance=0.005
    )
    store.seconds_until_available(1)  # connected, and the row is there
    ready.wait()  # every process is connected: they start together
    end_at = time.time() + seconds
    times = []
    while bucket.acquire(should_stop=lambda: time.time() >= end_at):
        times.append(time.time())
    store.close()
    engine.dispose()
    grants.put(times)


def worst_excess(times, rate, burst, window):
    """The largest count of grants in any window of `window` seconds, less burst + rate x window."""
    times = sorted(times)
    worst, start = float("-inf"), 0
    for end, moment in enumerate(times):
        while moment - times[start] > window:
            start += 1
        worst = max(worst, end - start + 1 - (burst + rate * window))
    return worst


@pytest.mark.scale
def test_real_processes_sharing_one_database_stay_within_the_limit(app):
    rate, burst, seconds, processes = 20, 3, 5.5, 3
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    context = multiprocessing.get_context("spawn")
    ready, grants = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_hammer, args=(url, rate, burst, seconds, ready, grants)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    per_process = [grants.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    times = sorted(moment for process_times in per_process for moment in process_times)
    excess = {window: worst_excess(times, rate, burst, window) for window in (1, 2, 5)}
    print(f"{[len(t) for t in per_process]} grants over {times[-1] - times[0]:.2f} s; worst windows {excess}")
    for window in (1, 2, 5):
        assert excess[window] <= rate * JITTER_SECONDS, window
    # Together they used the limit, not a third of it (it is shared, not split), and each had a fair part of it.
    assert len(times) >= 0.9 * (burst + rate * (times[-1] - times[0]))
    assert all(len(process_times) >= 0.5 * len(times) / processes for process_times in per_process)
