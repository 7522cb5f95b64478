"""The gunicorn worker that serves the app: gunicorn's gthread worker, with two answers the server gives itself
brought in line with the app's.

- A request whose body the app answered before reading it all (an upload over the cap gets its 413 first, and
  any refusal of an upload may come early) closes its connection, saying so. Left open, the unread bytes would
  be taken for the next request, or gunicorn would drop the connection under a client it had told keep-alive.
- Requests gunicorn refuses before the app sees them (a request line over its limit gets 414, headers over
  theirs 431, a malformed request 400) are answered in the app's error shape, as JSON, instead of gunicorn's
  HTML page. Their headers were never read, so there is no Accept header to choose HTML by; the message says
  what was wrong without repeating what the client sent.
"""

import json
import threading

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker


class Worker(ThreadWorker):
    """gunicorn's gthread worker (one process of threads, a thread per open progress stream), as described above."""

    def init_process(self):
        self._requests = threading.local()  # each thread's request, for the app's answer to close its connection
        util.write_error = write_json_error  # gunicorn's own refusals; the worker's process alone is changed
        super().init_process()

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = CloseUnreadBodies(self.wsgi, self._close_current_connection)

    def handle_request(self, req, conn):
        self._requests.current = req
        try:
            return super().handle_request(req, conn)
        finally:
            self._requests.current = None

    def _close_current_connection(self):
        # The request's own must_close makes gunicorn answer "Connection: close" and close after the response.
        self._requests.current.must_close = True


class CloseUnreadBodies:
    """WSGI middleware: call close_connection() when the app starts its answer before the request's body was read."""

    def __init__(self, app, close_connection):
        self.app = app
        self.close_connection = close_connection

    def __call__(self, environ, start_response):
        body = _CountingInput(environ["wsgi.input"], _content_length(environ))
        environ["wsgi.input"] = body
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()

        def start(status, headers, exc_info=None):
            if body.unread(chunked):
                self.close_connection()
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


class _CountingInput:
    """The request body as the app reads it, counting what was read and whether its end was reached."""

    def __init__(self, stream, length):
        self._stream = stream
        self._length = length
        self._read = 0
        self._ended = False

    def unread(self, chunked):
        """Whether part of a body is still waiting on the connection."""
        if self._ended:
            return False
        return self._read < self._length if self._length else chunked

    def read(self, size=-1):
        return self._count(self._stream.read(size), size)

    def readline(self, size=-1):
        return self._count(self._stream.readline(size), size)

    def readlines(self, hint=-1):
        lines = self._stream.readlines(hint)
        self._read += sum(len(line) for line in lines)
        self._ended = True
        return lines

    def __iter__(self):
        while line := self.readline():
            yield line

    def _count(self, data, size):
        self._read += len(data)
        if not data or size is None or size < 0:  # an empty read, or one that asked for everything, ends the body
            self._ended = True
        return data


def _content_length(environ):
    try:
        return max(int(environ.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


# What each of gunicorn's own refusals says, by status; anything else is a malformed request.
_REFUSALS = {
    403: ("forbidden", "The request was refused."),
    414: ("uri_too_long", "The URL is longer than this server accepts; send the data in the request body."),
    417: ("expectation_failed", "The request's Expect header cannot be met."),
    431: ("request_header_fields_too_large", "The request's headers are larger than this server accepts."),
    500: ("internal_error", "An unexpected error occurred; it has been logged."),
    501: ("not_implemented", "The request's transfer coding is not supported."),
}
_MALFORMED = ("bad_request", "The request is not valid HTTP.")


def write_json_error(sock, status_int, reason, mesg):
    """Write gunicorn's refusal in the app's error shape and close; mesg (which may echo the request) is not sent."""
    code, message = _REFUSALS.get(status_int, _MALFORMED)
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)
