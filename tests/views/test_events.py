"""Server-Sent Events through the test client: frames, the end of a job's stream, caps and unsubscribing."""

import json

import pytest
from werkzeug.test import EnvironBuilder

from importdash.extensions import db
from importdash.runtime import get_runtime
from importdash.services.jobs import publish_job


class Frames:
    """Read an unbuffered event-stream response one frame at a time, as the browser's EventSource would."""

    def __init__(self, response):
        self.response = response
        self._chunks = response.iter_encoded()
        self._buffer = ""

    def next(self):
        """Return the next frame as {field: value} (a comment under ""), or None once the server ended the stream."""
        while "\n\n" not in self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return None
            self._buffer += chunk.decode()
        raw, self._buffer = self._buffer.split("\n\n", 1)
        frame = {}
        for line in raw.split("\n"):
            field, _, value = line.partition(":")
            frame[field] = value.removeprefix(" ")
        return frame

    def next_event(self):
        """Return the next named event as (name, id, data), skipping retry and keep-alive frames; None at the end."""
        while (frame := self.next()) is not None:
            if "event" in frame:
                return frame["event"], int(frame["id"]), json.loads(frame["data"])
        return None


def open_stream(client, url, **kwargs):
    response = client.get(url, buffered=False, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return Frames(response)


def subscribers(app):
    return get_runtime(app).broker.subscriber_count()


@pytest.fixture
def finished_job(client, wait_for_job):
    return wait_for_job(client.post("/api/import/batch").get_json()["job"]["id"])


def test_a_finished_job_streams_its_final_state_and_ends(app, client, finished_job):
    job_id = finished_job["id"]
    stream = open_stream(client, f"/api/import/{job_id}/events")

    assert stream.response.mimetype == "text/event-stream"
    assert stream.response.headers["Cache-Control"] == "no-cache"
    assert stream.response.headers["X-Accel-Buffering"] == "no"
    assert stream.next() == {"retry": str(app.config["SSE_RETRY_MS"])}
    name, _, data = stream.next_event()
    assert name == "job.finished"
    shown = client.get(f"/api/import/{job_id}").get_json()
    refused = shown["error_counts"]["other"]  # the sample's "other" errors are all refusals by the downstream
    assert data == {key: shown[key] for key in ("job", "error_counts", "runs")} | {"retryable": refused}
    assert stream.next() is None
    assert subscribers(app) == 0


def test_a_running_job_streams_each_committed_change_until_it_finishes(app, client, make_job):
    job_id = make_job(mode="batch").id
    stream = open_stream(client, f"/api/import/{job_id}/events")

    name, first_id, data = stream.next_event()
    assert (name, data["job"]["status"], data["job"]["processed_count"]) == ("job.progress", "pending", 0)
    get_runtime(app).runner.submit(job_id)

    events = []
    while (event := stream.next_event()) is not None:
        events.append(event)
    names = [name for name, _, _ in events]
    assert names[-1] == "job.finished" and set(names[:-1]) == {"job.progress"}
    ids = [event_id for _, event_id, _ in events]
    assert ids == sorted(ids) and ids[0] > first_id
    processed = [data["job"]["processed_count"] for _, _, data in events]
    assert processed == sorted(processed)
    final = events[-1][2]
    assert final["job"]["status"] == "completed"
    assert final["job"]["processed_count"] == final["job"]["total_records"] > 0
    assert sum(final["error_counts"].values()) == final["job"]["failed_count"] > 0
    assert subscribers(app) == 0


def test_closing_the_response_unsubscribes(app, client, make_job):
    stream = open_stream(client, f"/api/import/{make_job().id}/events")
    assert stream.next_event()[0] == "job.progress"
    assert subscribers(app) == 1

    stream.response.close()

    assert subscribers(app) == 0


def test_a_stream_the_server_never_started_still_unsubscribes(app, make_job):
    # A WSGI server may close the body without iterating it (the client left first); the test client cannot
    # show that, because it always reads the first chunk.
    environ = EnvironBuilder(path=f"/api/import/{make_job().id}/events").get_environ()
    body = app(environ, lambda status, headers: None)
    assert subscribers(app) == 1

    body.close()

    assert subscribers(app) == 0


def test_an_unknown_job_is_404_json_and_leaves_no_subscriber(app, client):
    response = client.get("/api/import/999/events")

    assert response.status_code == 404
    assert response.get_json() == {"error": {"code": "not_found", "message": "No import #999."}}
    assert subscribers(app) == 0


@pytest.mark.parametrize("app_config", [{"SSE_MAX_STREAMS": 1, "SSE_RETRY_MS": 2500}])
def test_open_streams_are_capped_with_503_and_retry_after(app, client, make_job):
    job_id = make_job().id
    first = open_stream(client, f"/api/import/{job_id}/events")

    for url in (f"/api/import/{job_id}/events", "/api/events"):
        refused = client.get(url)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "3"
        assert refused.get_json()["error"]["code"] == "too_many_streams"

    first.response.close()
    open_stream(client, "/api/events").response.close()
    assert subscribers(app) == 0


@pytest.mark.parametrize("app_config", [{"SSE_QUEUE_SIZE": 1}])
def test_a_client_that_falls_behind_is_dropped_and_its_stream_ends(app, client, make_job):
    job_id = make_job().id
    stream = open_stream(client, f"/api/import/{job_id}/events")
    assert stream.next_event()[0] == "job.progress"

    for _ in range(2):  # the second finds the client's one-event queue full
        publish_job(get_runtime(app).broker, db.session, job_id)

    assert stream.next_event() is None
    assert subscribers(app) == 0


@pytest.mark.parametrize("app_config", [{"SSE_KEEPALIVE_SECONDS": 0.01}])
def test_an_idle_stream_gets_keep_alive_comments(client, make_job):
    stream = open_stream(client, f"/api/import/{make_job().id}/events")
    stream.next_event()

    assert stream.next() == {"": "keep-alive"}
    stream.response.close()


def test_a_reconnect_with_last_event_id_gets_the_current_state_at_once(app, client, finished_job):
    job_id = finished_job["id"]
    last_id = get_runtime(app).broker.last_event_id()

    stream = open_stream(client, f"/api/import/{job_id}/events", headers={"Last-Event-ID": str(last_id - 5)})

    name, event_id, data = stream.next_event()
    assert (name, event_id, data["job"]) == ("job.finished", last_id, finished_job)
    assert stream.next_event() is None


def test_the_all_jobs_stream_starts_with_the_history_and_announces_each_job(app, client, make_job):
    older, newer = make_job().id, make_job().id
    stream = open_stream(client, "/api/events")

    name, _, data = stream.next_event()
    assert name == "jobs.snapshot"
    assert [job["id"] for job in data["jobs"]] == [newer, older] and data["total"] == 2

    job_id = client.post("/api/import/batch").get_json()["job"]["id"]
    events = []
    while not events or events[-1][0] != "job.finished":
        events.append(stream.next_event())
    stream.response.close()

    assert events[0][0] == "job.created"
    assert events[0][2]["job"]["id"] == job_id and events[0][2]["job"]["status"] == "pending"
    assert {data["job"]["id"] for _, _, data in events} == {job_id}
    assert events[-1][2]["job"]["status"] == "completed"
    assert subscribers(app) == 0
