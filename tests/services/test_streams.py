"""The stream generator and the announcements the services make, without HTTP."""

from importdash.extensions import db
from importdash.runtime import get_runtime
from importdash.services.broker import Event, EventBroker
from importdash.services.imports import create_import
from importdash.services.streams import sse_stream


def test_events_the_snapshot_already_includes_are_skipped():
    broker = EventBroker()
    subscription = broker.subscribe(1)
    broker.publish("job.progress", {"n": 1}, job_id=1)  # published (so committed) before the snapshot was read
    first = Event(broker.last_event_id(), "job.progress", {"n": 1}, 1)
    broker.publish("job.progress", {"n": 2}, job_id=1)
    broker.publish("job.finished", {"n": 3}, job_id=1)

    frames = list(sse_stream(subscription, first, keepalive_seconds=1, retry_ms=500, final_event="job.finished"))

    assert frames == [
        "retry: 500\n\n" + first.encode(),
        'id: 2\nevent: job.progress\ndata: {"n":2}\n\n',
        'id: 3\nevent: job.finished\ndata: {"n":3}\n\n',
    ]
    assert subscription.closed and broker.subscriber_count() == 0


def test_a_first_event_that_is_final_ends_the_stream_at_once():
    broker = EventBroker()
    subscription = broker.subscribe(1)
    first = Event(0, "job.finished", {}, 1)

    frames = list(sse_stream(subscription, first, keepalive_seconds=1, retry_ms=500, final_event="job.finished"))

    assert len(frames) == 1 and broker.subscriber_count() == 0


def test_creating_an_import_announces_it_after_the_commit(app):
    broker = get_runtime(app).broker
    with broker.subscribe() as subscription:
        job = create_import(db.session, broker, mode="batch", path=app.config["SAMPLE_FILE"], source="sample.csv")

        event = subscription.get(timeout=0)

    assert (event.name, event.job_id) == ("job.created", job.id)
    assert event.data["job"] == job.to_dict()
    assert event.data["error_counts"] == {"duplicate": 0, "missing_value": 0, "invalid_format": 0, "other": 0}
