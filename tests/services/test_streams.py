"""The stream generator and the announcements the services make, without HTTP."""

from fakes import new_broker

from importdash.services.broker import Event
from importdash.services.streams import sse_stream


def test_events_the_snapshot_already_includes_are_skipped():
    broker = new_broker()
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
    broker = new_broker()
    subscription = broker.subscribe(1)
    first = Event(0, "job.finished", {}, 1)

    frames = list(sse_stream(subscription, first, keepalive_seconds=1, retry_ms=500, final_event="job.finished"))

    assert len(frames) == 1 and broker.subscriber_count() == 0


def test_a_stream_opened_while_the_server_shuts_down_sends_the_current_state_and_ends():
    broker = new_broker()
    broker.close()
    subscription = broker.subscribe(1)
    first = Event(0, "job.progress", {"n": 1}, 1)

    frames = list(sse_stream(subscription, first, keepalive_seconds=30, retry_ms=500, final_event="job.finished"))

    assert frames == ["retry: 500\n\n" + first.encode()]  # the browser reconnects after 500 ms
