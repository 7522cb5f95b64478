"""The webhook downstream against a real HTTP server on loopback."""

import socket
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus

import pytest
from scripted_downstream import Reply

from importdash.services.downstream import DownstreamError
from importdash.services.webhook import WebhookDownstream, call_key, parse_retry_after

RECORDS = [
    {"key": "abc-2", "name": "Ada", "email": "ada@example.com", "company": "Analytical"},
    {"key": "abc-3", "name": "Bob", "email": "bob@example.com", "company": None},
]


@pytest.fixture
def webhook(downstream_server):
    client = WebhookDownstream(downstream_server.url, authorization="Bearer s3cret", connect_timeout=1, timeout=0.5)
    yield client
    client.close()


def test_posts_the_records_with_a_stable_idempotency_key_and_the_auth_header(webhook, downstream_server):
    outcomes = webhook.send(RECORDS)
    webhook.send(RECORDS)

    assert [(outcome.key, outcome.ok) for outcome in outcomes] == [("abc-2", True), ("abc-3", True)]
    first, second = downstream_server.calls
    assert first.records == RECORDS
    assert first.headers["Authorization"] == "Bearer s3cret"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == call_key(RECORDS)
    assert call_key(RECORDS[:1]) != call_key(RECORDS)


def test_a_2xx_may_refuse_single_records(webhook, downstream_server):
    downstream_server.push(Reply(refuse={"abc-3": "company is required"}))

    accepted, refused = webhook.send(RECORDS)

    assert accepted.ok and accepted.response["ok"] is True
    assert (refused.ok, refused.message) == (False, "company is required")
    assert downstream_server.accepted_keys() == ["abc-2"]


def test_a_2xx_without_results_accepts_every_record(webhook, downstream_server):
    downstream_server.push(Reply(status=202, body="queued"))
    assert [outcome.ok for outcome in webhook.send(RECORDS)] == [True, True]


@pytest.mark.parametrize("retry_after, expected", [("3", 3.0), (None, None)])
def test_429_is_throttled_with_the_wait_asked_for(webhook, downstream_server, retry_after, expected):
    downstream_server.push(Reply(status=429, headers={"Retry-After": retry_after} if retry_after else {}))

    with pytest.raises(DownstreamError) as caught:
        webhook.send(RECORDS)

    assert caught.value.throttled and caught.value.transient
    assert caught.value.retry_after == expected


def test_429_with_an_http_date(downstream_server):
    now = 1_700_000_000.0
    webhook = WebhookDownstream(
        downstream_server.url, authorization=None, connect_timeout=1, timeout=1, now=lambda: now
    )
    later = format_datetime(datetime.fromtimestamp(now + 90, UTC), usegmt=True)
    downstream_server.push(Reply(status=429, headers={"Retry-After": later}))
    try:
        with pytest.raises(DownstreamError) as caught:
            webhook.send(RECORDS)
    finally:
        webhook.close()
    assert caught.value.retry_after == 90.0


@pytest.mark.parametrize("status", [408, 500, 502, 503])
def test_408_and_5xx_are_transient(webhook, downstream_server, status):
    downstream_server.push(Reply(status=status, body={"error": {"message": "try later"}}))

    with pytest.raises(DownstreamError) as caught:
        webhook.send(RECORDS)

    assert caught.value.transient and not caught.value.throttled
    assert str(status) in caught.value.message and caught.value.message.endswith(": try later")


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_are_permanent_with_the_downstreams_message(webhook, downstream_server, status):
    downstream_server.push(Reply(status=status, body={"message": "email domain not allowed"}))

    with pytest.raises(DownstreamError) as caught:
        webhook.send(RECORDS)

    assert not caught.value.transient
    phrase = HTTPStatus(status).phrase
    assert caught.value.message == f"the downstream answered {status} {phrase}: email domain not allowed"


def test_a_slow_answer_is_a_transient_timeout(webhook, downstream_server):
    downstream_server.push(Reply(delay=1.0))

    with pytest.raises(DownstreamError) as caught:
        webhook.send(RECORDS)

    assert caught.value.transient and "did not answer in time" in caught.value.message


def test_an_unreachable_downstream_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens on it once the socket closes
    webhook = WebhookDownstream(f"http://127.0.0.1:{port}/contacts", authorization=None, connect_timeout=1, timeout=1)
    try:
        with pytest.raises(DownstreamError) as caught:
            webhook.send(RECORDS)
    finally:
        webhook.close()
    assert caught.value.transient and "cannot be reached" in caught.value.message


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, expected):
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now) == expected
