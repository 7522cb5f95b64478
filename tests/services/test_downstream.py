import threading

import pytest
from fakes import FakeClock

from importdash.services.downstream import (
    DownstreamError,
    Outcome,
    SimulatedDownstream,
    parse_domains,
)


def record(key, email, name="Ada", company=None):
    return {"key": key, "name": name, "email": email, "company": company}


def test_accepts_saying_nothing_about_the_record_so_nothing_but_the_verdict_is_kept():
    downstream = SimulatedDownstream(latency_ms=0, reject_domains=())

    [outcome] = downstream.send([record("job-1:row-2", "ada@example.com")])

    assert outcome == Outcome("job-1:row-2", True, None, None)


def test_an_update_is_accepted_like_a_create():
    downstream = SimulatedDownstream(latency_ms=0, reject_domains=())

    [outcome] = downstream.send([{**record("job-2-5-v2", "ada@example.com"), "operation": "update", "version": 2}])

    assert outcome == Outcome("job-2-5-v2", True, None, None)


def test_rejects_listed_domains_case_insensitively():
    downstream = SimulatedDownstream(latency_ms=0, reject_domains=("Blocked.Example",))

    [outcome] = downstream.send([record("k", "Bob@BLOCKED.example")])

    message = 'domain "blocked.example" is not accepted by the downstream'
    assert outcome == Outcome("k", False, message, {"status": "rejected", "reason": message})


def test_one_outcome_per_record_in_order():
    downstream = SimulatedDownstream(latency_ms=0, reject_domains="blocked.example, rejected.example")
    records = [
        record("a", "a@example.com"),
        record("b", "b@rejected.example"),
        record("c", "c@example.com", company="Acme"),
        record("d", "d@blocked.example"),
    ]

    outcomes = downstream.send(records)

    assert [(outcome.key, outcome.ok) for outcome in outcomes] == [
        ("a", True),
        ("b", False),
        ("c", True),
        ("d", False),
    ]


def test_subdomains_of_a_rejected_domain_are_accepted():
    downstream = SimulatedDownstream(latency_ms=0, reject_domains=("blocked.example",))

    [outcome] = downstream.send([record("k", "x@mail.blocked.example")])

    assert outcome.ok


def test_latency_is_slept_once_per_call():
    clock = FakeClock(50.0)
    downstream = SimulatedDownstream(latency_ms=250, reject_domains=(), sleep=clock.sleep, clock=clock)

    downstream.send([record("a", "a@example.com"), record("b", "b@example.com")])
    downstream.send([])

    assert clock.sleeps == [0.25, 0.25]


def test_no_latency_means_no_sleep():
    clock = FakeClock(50.0)
    downstream = SimulatedDownstream(latency_ms=0, reject_domains=(), sleep=clock.sleep, clock=clock)

    downstream.send([record("a", "a@example.com")])

    assert clock.sleeps == []


def test_counts_calls_and_records_their_times_when_asked():
    clock = FakeClock(50.0)
    downstream = SimulatedDownstream(
        latency_ms=100, reject_domains=(), sleep=clock.sleep, clock=clock, record_calls=True
    )

    for _ in range(3):
        downstream.send([record("a", "a@example.com")])

    assert downstream.calls == 3
    assert downstream.call_times == [50.0, pytest.approx(50.1), pytest.approx(50.2)]


def test_call_times_stay_empty_unless_recording():
    downstream = SimulatedDownstream(latency_ms=0, reject_domains=())

    downstream.send([record("a", "a@example.com")])

    assert downstream.calls == 1
    assert downstream.call_times == []


def test_concurrent_calls_are_all_counted():
    downstream = SimulatedDownstream(latency_ms=0, reject_domains=(), record_calls=True)
    threads_count, calls = 8, 200
    barrier = threading.Barrier(threads_count)
    results = []

    def worker(worker_number):
        barrier.wait()
        for n in range(calls):
            [outcome] = downstream.send([record(f"{worker_number}-{n}", "a@example.com")])
            results.append(outcome.ok)

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert downstream.calls == threads_count * calls
    assert len(downstream.call_times) == threads_count * calls
    assert results.count(True) == threads_count * calls


def test_parse_domains():
    assert parse_domains("a.com, B.com,") == ("a.com", "b.com")
    assert parse_domains(" a.com ,, A.COM ") == ("a.com",)
    assert parse_domains("") == ()


def test_downstream_error_carries_its_kind():
    error = DownstreamError("downstream answered 429", transient=True, retry_after=2.5)
    permanent = DownstreamError("downstream answered 400", transient=False)

    assert (str(error), error.message, error.transient, error.retry_after) == (
        "downstream answered 429",
        "downstream answered 429",
        True,
        2.5,
    )
    assert (permanent.transient, permanent.retry_after) == (False, None)


def test_outcome_is_immutable_and_keeps_no_dict():
    outcome = Outcome("k", True, None, None)

    with pytest.raises(AttributeError):
        outcome.ok = False
    assert not hasattr(outcome, "__dict__")
