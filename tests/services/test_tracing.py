"""OpenTelemetry traces of an import: one span per run, with its chunks and downstream calls as children."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from importdash import create_app
from importdash.extensions import db
from importdash.runtime import get_runtime, stop_background

ROWS = 40


@pytest.fixture
def app_config():
    return {"STAGE_BATCH_SIZE": 15, "RECORDS_PER_CALL": 10}


@pytest.fixture
def import_contacts(client, write_csv, wait_for_job):
    """Import ROWS contacts in batch mode, two of them invalid, and return the finished job."""

    def run():
        rows = [f"P {n},p{n}@example.com" for n in range(ROWS - 2)] + ["No Email,", "Bad,not-an-email"]
        path = write_csv("name,email\n" + "\n".join(rows) + "\n")
        with path.open("rb") as handle:
            job_id = client.post("/api/import/batch", data={"file": (handle, path.name)}).get_json()["job"]["id"]
        return wait_for_job(job_id)

    return run


def test_a_job_run_is_one_span_with_its_chunks_and_calls_as_children(app, import_contacts):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    get_runtime(app).telemetry.tracer = provider.get_tracer("test")

    job = import_contacts()

    spans = exporter.get_finished_spans()
    (run,) = [span for span in spans if span.name == "importdash.job"]
    assert run.parent is None
    assert dict(run.attributes) == {
        "importdash.job_id": job["id"],
        "importdash.job.mode": "batch",
        "importdash.job.rows": ROWS,
        "importdash.job.outcome": "completed",
    }
    chunks = [span for span in spans if span.name == "importdash.chunk"]
    calls = [span for span in spans if span.name == "importdash.call"]
    assert [chunk.attributes["importdash.rows"] for chunk in chunks] == [15, 15, 10]
    assert sum(call.attributes["importdash.records"] for call in calls) == ROWS - 2
    assert len(calls) == 4  # 38 records, 10 per call
    for child in chunks + calls:
        assert child.parent.span_id == run.context.span_id
        assert child.context.trace_id == run.context.trace_id


class TraceReceiver:
    """An OTLP/HTTP receiver on loopback: keeps the body of every POST /v1/traces."""

    def __init__(self):
        self.requests = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests.append((self.path, self.headers["Content-Type"], body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self):
        host, port = self._server.server_address
        return f"http://{host}:{port}"

    def span_names(self):
        names = []
        for _path, _type, body in self.requests:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    names.extend(span.name for span in scope_spans.spans)
        return names

    def close(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver():
    server = TraceReceiver()
    yield server
    server.close()


@pytest.mark.unit
def test_spans_reach_an_otlp_http_receiver(tmp_path, receiver, write_csv):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'traced.db'}",
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
            "RATE_PER_SECOND": 0,
            "OTLP_ENDPOINT": receiver.url,
        }
    )
    try:
        path = write_csv("name,email\n" + "\n".join(f"P {n},p{n}@example.com" for n in range(5)) + "\n")
        with path.open("rb") as handle:
            response = app.test_client().post("/api/import/batch", data={"file": (handle, path.name)})
        get_runtime(app).runner.wait(response.get_json()["job"]["id"], timeout=30)
    finally:
        stop_background(app, wait=True)  # sends the spans the batch processor still holds
        with app.app_context():
            db.engine.dispose()

    assert {(path, content_type) for path, content_type, _body in receiver.requests} == {
        ("/v1/traces", "application/x-protobuf")
    }
    names = receiver.span_names()
    assert names.count("importdash.job") == 1
    assert names.count("importdash.chunk") == 1
    assert names.count("importdash.call") == 1
