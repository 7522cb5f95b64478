"""The gunicorn worker: an upload refused before it was read closes its connection, and gunicorn's own refusals
(414, 431, a malformed request) come in the app's JSON error shape. Checked on the middleware alone, and against
the real server."""

import io
import json
import signal
import socket

import httpx
import pytest
from servers import Servers

from importdash.serving import CloseUnreadBodies, write_json_error

pytestmark = pytest.mark.unit


def run(middleware_app, body=b"", **environ):
    """Call the middleware around app with a request body; return whether it asked to close the connection."""
    closed = []
    middleware = CloseUnreadBodies(middleware_app, lambda: closed.append(True))
    environ = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)) if body else ""} | environ
    middleware(environ, lambda status, headers, exc_info=None: None)
    return bool(closed)


def answer_after_reading(size):
    def app(environ, start_response):
        if size:
            environ["wsgi.input"].read(size)
        start_response("200 OK", [])
        return [b""]

    return app


def test_an_answer_before_the_body_was_read_closes_the_connection():
    assert run(answer_after_reading(0), b"x" * 1000)
    assert run(answer_after_reading(10), b"x" * 1000)


def test_an_answer_after_the_whole_body_was_read_keeps_the_connection():
    assert not run(answer_after_reading(1000), b"x" * 1000)
    assert not run(answer_after_reading(-1), b"x" * 1000)
    assert not run(answer_after_reading(0))  # no body at all


def test_a_chunked_body_counts_as_read_once_its_end_was_reached():
    chunked = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}
    assert run(answer_after_reading(0), b"x" * 10, **chunked)
    assert not run(answer_after_reading(-1), b"x" * 10, **chunked)


def test_gunicorns_own_refusals_are_written_in_the_error_shape_without_echoing_the_request():
    server, client = socket.socketpair()
    with server, client:
        write_json_error(server, 414, "URI Too Long", "Invalid request line: GET /secret-token-…")
        server.shutdown(socket.SHUT_WR)
        head, _, body = client.makefile("rb").read().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert b"Connection: close" in head and b"Content-Type: application/json" in head
    assert json.loads(body)["error"]["code"] == "uri_too_long"
    assert b"secret" not in body


@pytest.fixture
def server(tmp_path):
    servers = Servers(tmp_path, f"sqlite:///{tmp_path / 'serving.db'}")
    yield servers.start("server", THREADS=4, MAX_UPLOAD_MB=0.25)
    servers.stop(signal.SIGTERM)


def test_an_upload_over_the_cap_gets_413_and_the_next_request_on_the_same_client_works(server):
    files = {"file": ("big.csv", b"name,email\n" + b"x" * (2 * 1024 * 1024))}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        refused = client.post("/api/import/batch", files=files)
        assert refused.status_code == 413
        assert refused.headers["connection"] == "close"
        assert refused.json()["error"]["code"] == "request_entity_too_large"

        assert client.get("/health").json()["status"] == "ok"  # on a new connection: the old one was closed
        assert client.get("/api/import").status_code == 200


def test_a_request_line_or_headers_over_gunicorns_limits_get_json_errors(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        too_long = client.get("/api/import", params={"q": "x" * 9000})
        assert too_long.status_code == 414
        assert too_long.headers["content-type"] == "application/json"
        assert too_long.json()["error"]["code"] == "uri_too_long"

        too_many = client.get("/api/import", headers={f"X-Header-{n}": "x" for n in range(120)})
        assert too_many.status_code == 431
        assert too_many.json()["error"]["code"] == "request_header_fields_too_large"

        assert client.get("/health").status_code == 200
