import json
import threading

import pytest
from fakes import new_broker

from importdash.services.broker import (
    Event,
    SubscriptionClosed,
    TooManySubscribers,
)


def drain(subscription):
    events = []
    while (event := subscription.get(timeout=0)) is not None:
        events.append(event)
    return events


def test_encode_is_one_sse_frame_with_compact_json():
    event = Event(7, "job.progress", {"processed": 10, "status": "running"}, 3)

    assert event.encode() == 'id: 7\nevent: job.progress\ndata: {"processed":10,"status":"running"}\n\n'


def test_payload_cannot_forge_fields():
    broker = new_broker()
    payload = {"name": "x\n\nevent: forged\ndata: {}\r\nid: 999\r"}

    wire = broker.publish("job.progress", payload, job_id=1).encode()

    lines = wire.split("\n")
    assert lines[:2] == ["id: 1", "event: job.progress"]
    assert lines[2].startswith("data: ") and lines[3:] == ["", ""]
    assert "\r" not in wire
    assert json.loads(lines[2].removeprefix("data: ")) == payload


@pytest.mark.parametrize("name", ["job\nprogress", "", "job progress", "a\rb"])
def test_unsafe_event_names_are_refused_without_spending_an_id(name):
    broker = new_broker()

    with pytest.raises(ValueError):
        broker.publish(name, {})
    assert broker.last_event_id() == 0


def test_non_json_payloads_are_refused():
    broker = new_broker()

    with pytest.raises(ValueError):
        broker.publish("job.progress", {"rate": float("nan")})
    with pytest.raises(TypeError):
        broker.publish("job.progress", {"when": object()})
    assert broker.last_event_id() == 0


def test_events_fan_out_by_job_and_to_all_jobs_subscribers():
    broker = new_broker()
    job_one = broker.subscribe(1)
    job_two = broker.subscribe(2)
    everything = broker.subscribe()

    first = broker.publish("job.progress", {"n": 1}, job_id=1)
    second = broker.publish("job.progress", {"n": 2}, job_id=2)
    general = broker.publish("jobs.changed", {"n": 3})

    assert drain(job_one) == [first]
    assert drain(job_two) == [second]
    assert drain(everything) == [first, second, general]
    assert (first.id, second.id, general.id) == (1, 2, 3)
    assert broker.last_event_id() == 3


def test_published_data_is_a_snapshot():
    broker = new_broker()
    subscription = broker.subscribe()
    data = {"processed": 1}

    broker.publish("job.progress", data)
    data["processed"] = 2

    assert subscription.get(timeout=0).data == {"processed": 1}


def test_get_times_out_with_none():
    subscription = new_broker().subscribe()

    assert subscription.get(timeout=0) is None
    assert not subscription.closed


def test_a_full_queue_drops_only_the_slow_subscriber():
    broker = new_broker(queue_size=2)
    slow = broker.subscribe()
    fast = broker.subscribe()

    for n in range(2):
        broker.publish("job.progress", {"n": n})
        assert fast.get(timeout=0).data == {"n": n}
    broker.publish("job.progress", {"n": 2})

    assert slow.dropped and slow.closed
    assert broker.subscriber_count() == 1
    with pytest.raises(SubscriptionClosed):
        slow.get(timeout=0)
    assert fast.get(timeout=0).data == {"n": 2}
    assert not fast.dropped


def test_subscribers_are_capped():
    broker = new_broker(max_subscribers=2)
    first = broker.subscribe()
    broker.subscribe(5)

    with pytest.raises(TooManySubscribers):
        broker.subscribe()
    first.close()
    broker.subscribe()
    assert broker.subscriber_count() == 2


def test_close_removes_the_subscription_and_is_idempotent():
    broker = new_broker()
    subscription = broker.subscribe(1)
    broker.publish("job.progress", {}, job_id=1)

    subscription.close()
    subscription.close()

    assert broker.subscriber_count() == 0
    assert subscription.closed and not subscription.dropped
    with pytest.raises(SubscriptionClosed):
        subscription.get(timeout=0)
    broker.publish("job.progress", {}, job_id=1)  # nobody left to deliver to


def test_context_manager_closes():
    broker = new_broker()

    with broker.subscribe() as subscription:
        assert broker.subscriber_count() == 1
    assert subscription.closed
    assert broker.subscriber_count() == 0


def test_a_waiting_get_wakes_on_publish_and_on_close():
    broker = new_broker()
    subscription = broker.subscribe()
    results = []

    def reader():
        results.append(subscription.get(timeout=5))
        try:
            subscription.get(timeout=5)
        except SubscriptionClosed:
            results.append("closed")

    thread = threading.Thread(target=reader)
    thread.start()
    event = broker.publish("job.progress", {"n": 1})
    while thread.is_alive() and len(results) < 1:
        thread.join(timeout=0.01)
    subscription.close()
    thread.join(timeout=2)

    assert not thread.is_alive()
    assert results == [event, "closed"]


def test_closing_the_broker_ends_every_subscription_at_once_and_every_later_one():
    broker = new_broker()
    waiting, one_job = broker.subscribe(), broker.subscribe(7)
    results = []

    def reader():
        try:
            waiting.get(timeout=30)
        except SubscriptionClosed:
            results.append("closed")

    thread = threading.Thread(target=reader)
    thread.start()
    broker.close()
    thread.join(timeout=2)

    assert not thread.is_alive() and results == ["closed"]  # woken at once, not after its 30 s
    assert one_job.closed and not one_job.dropped
    assert broker.subscriber_count() == 0
    later = broker.subscribe(7)
    assert later.closed and broker.subscriber_count() == 0
    broker.publish("job.progress", {}, job_id=7)  # nobody left to deliver to
    with pytest.raises(SubscriptionClosed):
        later.get(timeout=0)


def test_concurrent_publishers_deliver_every_event_in_order():
    publishers, per_publisher = 8, 250
    total = publishers * per_publisher
    broker = new_broker(queue_size=total)
    everything = broker.subscribe()
    job_three = broker.subscribe(3)
    barrier = threading.Barrier(publishers + 2)
    received = []

    def publish(job_id):
        barrier.wait()
        for seq in range(per_publisher):
            broker.publish("job.progress", {"job": job_id, "seq": seq}, job_id=job_id)

    def read():
        barrier.wait()
        while len(received) < total:
            event = everything.get(timeout=2)
            assert event is not None
            received.append(event)

    def churn():
        barrier.wait()
        for _ in range(200):
            broker.subscribe(1).close()

    threads = [threading.Thread(target=publish, args=(job_id,)) for job_id in range(publishers)]
    threads += [threading.Thread(target=read), threading.Thread(target=churn)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert len(received) == total
    assert [event.id for event in received] == list(range(1, total + 1))
    for job_id in range(publishers):
        sequence = [event.data["seq"] for event in received if event.job_id == job_id]
        assert sequence == list(range(per_publisher))
    assert [event.data["seq"] for event in drain(job_three)] == list(range(per_publisher))
    assert broker.subscriber_count() == 2
    assert not everything.dropped and not job_three.dropped
