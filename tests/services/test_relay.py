"""The event relay: announcements, the listener's loop over fake transports, and the real transports on the
test database (the SQLite outbox, or NOTIFY on PostgreSQL) and on Redis when IMPORTDASH_TEST_REDIS_URL is set."""

import logging
import os
import threading
import uuid
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
from fakes import FakeClock
from faultproxy import FaultProxy
from servers import free_port, wait_for

from importdash import create_app
from importdash.extensions import db
from importdash.models import ImportJob, OutboxEvent, utcnow
from importdash.runtime import get_runtime, stop_background
from importdash.services import jobs
from importdash.services.reader import FileLimits
from importdash.services.relay import Announcement, DatabaseOutbox, RelayListener, RelaySender

SLACK = 3  # shared, noisy machines: waits for another thread are this many times what they need
RELAY_DEADLINE_SECONDS = 2  # an announcement reaches another process's streams well within this
TEST_REDIS_URL = os.environ.get("IMPORTDASH_TEST_REDIS_URL")


# Announcements.


def test_an_announcement_is_a_few_dozen_bytes_whatever_the_job_holds():
    announcement = Announcement("1234-0123456789ab", 2**31 - 1, "job.finished")

    encoded = announcement.encode()

    assert Announcement.decode(encoded) == announcement
    assert Announcement.decode(encoded.encode()) == announcement  # Redis hands bytes
    assert len(encoded.encode()) < 100  # NOTIFY takes 8,000 bytes at most


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "not json",
        "[]",
        '{"origin": "a", "job_id": 1}',
        '{"origin": "a", "job_id": "1", "name": "x"}',
        '{"origin": "a", "job_id": true, "name": "x"}',
        '{"origin": 5, "job_id": 1, "name": "x"}',
    ],
)
def test_anything_else_on_the_channel_is_refused(payload):
    with pytest.raises(ValueError, match="not an announcement"):
        Announcement.decode(payload)


# The listener, over fake transports.


class FakeReceiver:
    def __init__(self, script, on_empty):
        self.script = script  # batches of announcements, or exceptions to raise
        self.on_empty = on_empty
        self.closed = False

    def receive(self):
        if not self.script:
            self.on_empty()
            return []
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        self.closed = True


class FakeTransport:
    """Connections that fail or hear scripted batches, one script per connection; stops the listener at the end."""

    description = "a fake transport"

    def __init__(self, connections):
        self.connections = connections
        self.receivers = []
        self.listener = None

    def connect(self):
        if len(self.connections) == 1:
            script = self.connections[0]
            on_empty = self.listener.stop
        else:
            script = self.connections.pop(0)
            on_empty = lambda: None  # noqa: E731
        if isinstance(script, Exception):
            raise script
        receiver = FakeReceiver(list(script), on_empty)
        self.receivers.append(receiver)
        return receiver


def make_listener(transport, **overrides):
    calls = {"delivered": [], "caught_up": [], "waits": []}

    def wait(delay):
        calls["waits"].append(delay)
        return False

    options = {
        "origin": "here",
        "deliver": calls["delivered"].append,
        "catch_up": calls["caught_up"].append,
        "retry_base": 0.5,
        "retry_cap": 4.0,
        "rand": lambda: 1.0,
        "wait": wait,
    } | overrides
    listener = RelayListener(transport, **options)
    transport.listener = listener
    return listener, calls


def test_the_listener_hands_on_what_others_announced_and_leaves_its_own_alone():
    mine, theirs = Announcement("here", 1, "job.progress"), Announcement("there", 2, "job.created")
    transport = FakeTransport([[[mine], [mine, theirs], []]])
    listener, calls = make_listener(transport)

    listener.run()

    assert calls["delivered"] == [[theirs]]
    assert calls["caught_up"] == []  # never lost its connection
    assert transport.receivers[0].closed


def test_an_outage_is_waited_out_with_growing_backoff_then_missed_jobs_are_caught_up():
    lost = ConnectionError("server closed the connection")
    transport = FakeTransport(
        [
            [[Announcement("there", 7, "job.created")], [Announcement("there", 8, "job.created")], lost],
            ConnectionError("refused"),
            ConnectionError("refused"),
            ConnectionError("refused"),
            ConnectionError("refused"),
            [[Announcement("there", 8, "job.finished")]],
        ]
    )
    listener, calls = make_listener(transport)

    listener.run()

    # Full jitter (rand fixed at 1 here): 0.5 doubling per failure, never above the cap.
    assert calls["waits"] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert calls["caught_up"] == [{7, 8}]  # both still unfinished as far as this process heard
    assert [a.job_id for batch in calls["delivered"] for a in batch] == [7, 8, 8]
    assert all(receiver.closed for receiver in transport.receivers)


def test_a_failed_delivery_does_not_end_the_listening():
    transport = FakeTransport(
        [[[Announcement("there", 1, "job.progress")], [Announcement("there", 1, "job.finished")]]]
    )
    delivered = []

    def deliver(batch):
        delivered.append(batch)
        if len(delivered) == 1:
            raise RuntimeError("database away")

    listener, calls = make_listener(transport, deliver=deliver)

    listener.run()

    assert len(delivered) == 2
    assert calls["waits"] == []


def test_the_listener_thread_ends_on_stop_and_says_so(caplog):
    caplog.set_level(logging.INFO, logger="importdash.services.relay")
    stopped = threading.Event()
    transport = FakeTransport([[]])
    listener, _calls = make_listener(transport)
    transport.listener = type("Stopper", (), {"stop": lambda _self: stopped.wait()})()  # receives until told

    listener.start()
    assert listener.connected.wait(5 * SLACK)
    listener.stop()
    stopped.set()
    listener.join(5 * SLACK)

    assert not listener._thread.is_alive()
    assert "stopped listening" in caplog.text


# The sender.


class BrokenTransport:
    description = "a transport that is down"

    def send(self, session, announcement):
        raise ConnectionError("Connection refused")


class RecordingSession:
    rolled_back = False

    def rollback(self):
        self.rolled_back = True


def test_an_announcement_that_cannot_go_out_is_logged_and_the_caller_goes_on(caplog):
    session = RecordingSession()

    sent = RelaySender(BrokenTransport(), origin="here").announce(session, 3, "job.progress")

    assert sent is False
    assert session.rolled_back
    assert "job.progress of import #3 not announced" in caplog.text


# The outbox's upkeep (SQLite's transport), on a database of its own.


def test_the_outbox_reader_starts_after_what_is_there_and_trims_old_rows(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}"})
    clock = FakeClock()
    try:
        with app.app_context():
            old = OutboxEvent(origin="there", job_id=1, name="job.progress", created_at=utcnow() - timedelta(hours=1))
            db.session.add(old)
            db.session.commit()
            outbox = DatabaseOutbox(
                engine=db.engine, poll_seconds=0.25, keep_seconds=60, clock=clock, sleep=clock.sleep
            )
            reader = outbox.connect()

            assert reader.receive() == []  # the row from before it started is not announced again
            assert clock.sleeps == [0.25]  # nothing new: it waited one poll
            outbox.send(db.session, Announcement("there", 2, "job.created"))
            assert reader.receive() == [Announcement("there", 2, "job.created")]
            assert clock.sleeps == [0.25]  # something came: it reads again at once

            clock.advance(60)
            reader.receive()
            assert db.session.scalars(db.select(OutboxEvent.job_id)).all() == [2]
            db.session.execute(db.delete(OutboxEvent))
            db.session.commit()
            outbox.send(db.session, Announcement("there", 3, "job.progress"))
            # Ids are never reused once the table is empty, so the new row is not taken for one already read.
            assert reader.receive() == [Announcement("there", 3, "job.progress")]
    finally:
        stop_background(app, wait=True)


# Two processes' worth of runtime on the test database: what one publishes reaches the other's streams.


def relay_settings(kind):
    if kind == "redis":
        if not TEST_REDIS_URL:
            pytest.skip("the Redis relay needs IMPORTDASH_TEST_REDIS_URL")
        return {"EVENT_RELAY": "redis", "REDIS_URL": TEST_REDIS_URL}
    return {"EVENT_RELAY": "database"}


@pytest.fixture(params=["database", "redis"])
def app_config(request):
    # A channel of this test's own: helpers and test runs sharing the server never hear each other.
    return relay_settings(request.param) | {
        "EVENT_RELAY_CHANNEL": f"importdash-test-relay-{uuid.uuid4().hex[:8]}",
        "EVENT_RELAY_POLL_SECONDS": 0.02,
        "EVENT_RELAY_WAIT_SECONDS": 0.2,
    }


@pytest.fixture
def second_app(app, app_config, tmp_path):
    """Another process's runtime on the same database (the same config, its own origin, broker and listener)."""
    other = create_app(
        {key: app.config[key] for key in ("TESTING", "UPLOAD_FOLDER", "PROGRESS_INTERVAL_SECONDS", "RATE_PER_SECOND")}
        | {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "CLAIM_POLL_SECONDS": 0}
        | app_config
    )
    yield other
    stop_background(other, wait=True)
    with other.app_context():
        db.engine.dispose()


def listening(app):
    get_runtime(app).relay_listener.start()
    assert get_runtime(app).relay_listener.connected.wait(5 * SLACK), "the relay's listener did not connect"


def events(subscription, until, timeout=RELAY_DEADLINE_SECONDS * SLACK):
    """The events of a subscription up to and including the first named `until`."""
    got = []
    while not got or got[-1].name != until:
        event = subscription.get(timeout=timeout)
        assert event is not None, f"no {until} within {timeout} s; got {[e.name for e in got]}"
        got.append(event)
    return got


def test_the_transport_carries_an_announcement_to_a_listener_on_the_test_database(app):
    transport = get_runtime(app).relay_transport
    receiver = transport.connect()
    try:
        job = jobs.create_job(
            db.session,
            get_runtime(app).broker,
            mode="batch",
            path=app.config["SAMPLE_FILE"],
            source="s.csv",
            max_line_length=app.config["MAX_LINE_LENGTH"],
            file_limits=FileLimits.from_config(app.config),
        )
        heard = []
        for _ in range(50):
            heard += receiver.receive()
            if heard:
                break
    finally:
        receiver.close()

    assert heard == [Announcement(get_runtime(app).broker.relay.origin, job.id, "job.created")]


def test_an_import_run_here_reaches_the_other_process_streams_once_each(app, second_app, wait_for_job):
    listening(app)
    listening(second_app)
    there = get_runtime(second_app).broker.subscribe(None)
    here = get_runtime(app).broker.subscribe(None)

    with app.app_context():
        job = jobs.create_job(
            db.session,
            get_runtime(app).broker,
            mode="batch",
            path=app.config["SAMPLE_FILE"],
            source="s.csv",
            max_line_length=app.config["MAX_LINE_LENGTH"],
            file_limits=FileLimits.from_config(app.config),
        )
        get_runtime(app).runner.submit(job.id)
        final = wait_for_job(job.id)

    remote = events(there, until="job.finished")
    local = events(here, until="job.finished")

    assert remote[0].name == "job.created" and remote[0].job_id == job.id
    assert "job.progress" in {event.name for event in remote}
    assert remote[-1].data["job"] == final  # the committed final state, read by the other process
    # This process heard its own announcements too, and left them alone: each event once, as published here.
    assert [event.name for event in local].count("job.created") == 1
    assert [event.name for event in local].count("job.finished") == 1
    assert here.get(timeout=0.5) is None


def test_after_an_outage_the_listener_catches_up_with_jobs_it_watches(app, second_app, make_job):
    listening(second_app)
    listener = get_runtime(second_app).relay_listener
    job = make_job(status="processing")
    stream = get_runtime(second_app).broker.subscribe(job.id)

    listener._catch_up()  # what it does after listening again

    event = stream.get(timeout=RELAY_DEADLINE_SECONDS * SLACK)
    assert (event.name, event.data["job"]["status"]) == ("job.progress", "processing")
    with app.app_context():
        db.session.execute(db.update(ImportJob).where(ImportJob.id == job.id).values(status="completed"))
        db.session.commit()
    listener._catch_up()
    assert stream.get(timeout=RELAY_DEADLINE_SECONDS * SLACK).name == "job.finished"


@pytest.mark.faults
def test_the_listener_rides_out_a_database_outage_and_catches_up_with_what_it_missed(app, app_config, caplog):
    if app.config["EVENT_RELAY"] != "database":
        pytest.skip("an outage of the database, which this relay does not listen on")
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("the proxy stands in front of PostgreSQL (set IMPORTDASH_TEST_DATABASE_URL)")
    url = urlsplit(app.config["SQLALCHEMY_DATABASE_URI"])
    proxy = FaultProxy(url.hostname or "127.0.0.1", url.port or 5432)
    credentials = f"{url.username}@" if url.username else ""
    other = create_app(
        {"TESTING": True, "UPLOAD_FOLDER": app.config["UPLOAD_FOLDER"], "CLAIM_POLL_SECONDS": 0}
        | app_config
        | {
            "DATABASE_URL": urlunsplit(url._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}")),
            "EVENT_RELAY_RETRY_BASE_SECONDS": 0.05,
            "EVENT_RELAY_RETRY_CAP_SECONDS": 0.2,
        }
    )
    try:
        listening(other)
        listener = get_runtime(other).relay_listener
        job = jobs.create_job(
            db.session,
            get_runtime(app).broker,
            mode="batch",
            path=app.config["SAMPLE_FILE"],
            source="s.csv",
            max_line_length=app.config["MAX_LINE_LENGTH"],
            file_limits=FileLimits.from_config(app.config),
        )
        stream = get_runtime(other).broker.subscribe(job.id)

        proxy.reset()
        deadline = RELAY_DEADLINE_SECONDS * SLACK
        wait_for(lambda: not listener.connected.is_set(), timeout=deadline, what="the listener to lose its connection")
        # Announced while the other process cannot hear: it learns of it when it listens again.
        db.session.execute(db.update(ImportJob).where(ImportJob.id == job.id).values(status="cancelled"))
        db.session.commit()
        jobs.publish_job(get_runtime(app).broker, db.session, job.id, "job.finished")
        proxy.restore()

        assert listener.connected.wait(deadline * 5), "the listener did not connect again"
        event = stream.get(timeout=deadline)
        assert event is not None and event.name == "job.finished"
        assert event.data["job"]["status"] == "cancelled"
        assert "event relay: lost PostgreSQL LISTEN/NOTIFY" in caplog.text
    finally:
        stop_background(other, wait=True)
        with other.app_context():
            db.engine.dispose()
        proxy.close()


def test_a_listener_whose_redis_does_not_answer_keeps_trying_says_why_and_ends_on_stop(tmp_path, caplog):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'relay.db'}",
            "EVENT_RELAY": "redis",
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            "EVENT_RELAY_RETRY_BASE_SECONDS": 0.01,
            "EVENT_RELAY_RETRY_CAP_SECONDS": 0.02,
        }
    )
    listener = get_runtime(app).relay_listener
    try:
        listener.start()
        wait_for(lambda: caplog.text.count("cannot listen on Redis pub/sub") >= 2, timeout=5 * SLACK, what="retries")
        # Announcing meanwhile costs the caller nothing but a logged warning.
        with app.app_context():
            assert get_runtime(app).broker.relay.announce(db.session, 1, "job.progress") is False
    finally:
        stop_background(app, wait=True)
    assert not listener._thread.is_alive()
    assert not listener.connected.is_set()
