"""A real HTTP server on loopback that plays the downstream API, answering each call the way a test scripts it."""

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """How to answer one call: a status, headers, a body, a delay, and records to refuse in a 2xx."""

    status: int = 200
    headers: dict = field(default_factory=dict)
    body: object = None  # a dict is sent as JSON, a str as text; a 2xx with refusals gets its "results" built
    delay: float = 0.0
    refuse: dict = field(default_factory=dict)  # key -> message


@dataclass
class Call:
    headers: dict
    records: list
    status: int
    received_at: float  # time.monotonic() when the call arrived


class ScriptedDownstream:
    """Answer calls from a queue of replies, then with rule(records) (200, accept all, by default).

    Every call is kept in `calls` as it arrives; the keys of every record accepted (repeats included) in
    `accepted`, once its answer is ready.
    A call is answered (and its records accepted) even if the client gave up waiting for it, as a real
    server would have done the work.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._script = deque()
        self.rule = lambda records: Reply()
        self.calls = []
        self.accepted = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner._answer(self, body["records"])

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # clients that gave up hang up mid-answer
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self):
        host, port = self._server.server_address
        return f"http://{host}:{port}/contacts"

    def push(self, *replies):
        """Answer the next calls with these replies, in order."""
        with self._lock:
            self._script.extend(replies)

    def accepted_keys(self):
        with self._lock:
            return list(self.accepted)

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler, records):
        with self._lock:
            reply = self._script.popleft() if self._script else self.rule(records)
            self.calls.append(Call(dict(handler.headers), records, reply.status, time.monotonic()))
        if reply.delay:
            time.sleep(reply.delay)
        body = reply.body
        if 200 <= reply.status < 300:
            if reply.refuse and body is None:
                verdicts = [(record["key"], reply.refuse.get(record["key"])) for record in records]
                results = [{"key": key, "ok": refusal is None, "message": refusal} for key, refusal in verdicts]
                body = {"results": results}
            accepted = [record["key"] for record in records if record["key"] not in reply.refuse]
        else:
            accepted = []
        with self._lock:
            self.accepted.extend(accepted)
        payload = b"" if body is None else json.dumps(body).encode() if isinstance(body, dict) else body.encode()
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if isinstance(body, dict):
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
