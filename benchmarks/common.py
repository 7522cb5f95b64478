"""Helpers the benchmark scripts share: sample files, a real server as a subprocess, HTTP calls, statistics.

Nothing here is imported by the app or the tests; the scripts put this folder on sys.path by being run from it.
"""

import contextlib
import csv
import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data"))

import generate_sample  # noqa: E402  (data/generate_sample.py: the same generator the bundled sample comes from)

BENCH_DIR = Path(os.environ.get("IMPORTDASH_BENCH_DIR", Path(tempfile.gettempdir()) / "importdash-bench"))
GUNICORN = Path(sys.executable).with_name("gunicorn")


def parse_args(parser, smoke):
    """Parse the command line, adding --smoke: a quick run whose defaults are `smoke` (explicit options still win)."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a run of well under a minute at about 1,000 rows, for CI: it prints the figures and fails only if "
        "the script or the app breaks (figures this small say nothing about the targets)",
    )
    if parser.parse_known_args()[0].smoke:
        parser.set_defaults(**smoke)
    return parser.parse_args()


def sample_file(rows, seed=generate_sample.DEFAULT_SEED, *, extra_columns=0):
    """Return the path of a generated contacts file of `rows` rows under BENCH_DIR, writing it once.

    With extra_columns, each row also has that many columns beyond name, email and company (extra_1, ...), each
    holding a short value made from the row's number: the columns an import keeps as the record's extra fields.
    """
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    plain = BENCH_DIR / f"contacts-{rows}-{seed}.csv"
    if not plain.exists():
        partial = plain.with_suffix(".partial")
        generate_sample.write_csv(partial, rows, seed=seed)
        partial.rename(plain)
    if not extra_columns:
        return plain
    path = BENCH_DIR / f"contacts-{rows}-{seed}-extra{extra_columns}.csv"
    if not path.exists():
        partial = path.with_suffix(".partial")
        with (
            open(plain, encoding="utf-8", newline="") as source,
            open(partial, "w", encoding="utf-8", newline="") as target,
        ):
            reader, writer = csv.reader(source), csv.writer(target, lineterminator="\n")
            writer.writerow([*next(reader), *(f"extra_{n}" for n in range(1, extra_columns + 1))])
            for number, cells in enumerate(reader, start=2):
                writer.writerow([*cells, *(f"value {n}-{number}" for n in range(1, extra_columns + 1))])
        partial.rename(path)
    return path


def scratch_dir(prefix):
    """A fresh directory under BENCH_DIR for one run's database and uploads."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=BENCH_DIR))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sqlite_url(directory):
    return f"sqlite:///{Path(directory) / 'importdash.db'}"


def reset_database(url):
    """Drop the app's tables and schema version, then build the schema again (a PostgreSQL database shared
    between runs)."""
    from importdash import create_app
    from importdash.extensions import db
    from importdash.runtime import get_runtime
    from importdash.schema import bring_to_head, drop_tables

    app = create_app({"DATABASE_URL": url, "CREATE_DB_ON_START": False})
    with app.app_context():
        drop_tables(db.engine)
        bring_to_head(db.engine, upgrade_behind=True)
        db.engine.dispose()
    get_runtime(app).runner.shutdown()


class Server:
    """The shipped gunicorn configuration serving the app in a subprocess, on a free port."""

    def __init__(self, workdir, database_url, *, app="wsgi:app", **settings):
        self.port = free_port()
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "server.log"
        env = dict(os.environ)
        env.update(
            IMPORTDASH_BIND=f"127.0.0.1:{self.port}",
            XDG_RUNTIME_DIR=str(self.workdir),  # gunicorn's control socket, apart from any other gunicorn's
            IMPORTDASH_DATABASE_URL=database_url,
            IMPORTDASH_UPLOAD_FOLDER=str(self.workdir / "uploads"),
        )
        env.update({f"IMPORTDASH_{name.upper()}": str(value) for name, value in settings.items()})
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                str(GUNICORN),
                "-c",
                "gunicorn.conf.py",
                "--pythonpath",
                str(ROOT / "benchmarks"),
                "--access-logfile",
                "-",
                app,
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                if self.get("/health")[0] == 200 and self.worker_pid():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {timeout}s; see {self.log_path}")

    def worker_pid(self):
        """The pid of gunicorn's (single) worker process, the one that serves requests and runs imports."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        children = path.read_text().split() if path.exists() else []
        return int(children[0]) if children else None

    def rss_kb(self, field="VmRSS"):
        """The worker's resident set size (VmRSS) or its peak so far (VmHWM), in kB."""
        for line in Path(f"/proc/{self.worker_pid()}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} for the worker")

    def cpu_seconds(self):
        """User plus system CPU time the worker has used so far."""
        fields = Path(f"/proc/{self.worker_pid()}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def connection(self, timeout=120):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path, connection=None):
        """GET a path; return (status, parsed JSON body)."""
        own = connection is None
        connection = connection or self.connection()
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            if own:
                connection.close()

    def post(self, path):
        connection = self.connection()
        try:
            connection.request("POST", path)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def upload(self, path, file_path):
        """POST a file as multipart field 'file', streamed from disk; return (status, parsed JSON body)."""
        boundary = uuid.uuid4().hex
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{Path(file_path).name}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = len(head) + os.path.getsize(file_path) + len(tail)

        def body():
            yield head
            with open(file_path, "rb") as file:
                while chunk := file.read(1 << 20):
                    yield chunk
            yield tail

        connection = self.connection()
        try:
            connection.request(
                "POST",
                path,
                body=body(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(size)},
            )
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def follow_job(self, job_id, *, timeout, on_event=None):
        """Follow the job's live stream (its Server-Sent Events, as the job page does) until job.finished; call
        on_event(job) on each event, the state it starts from included; return the job's final dict.

        The timed imports are watched so: a user's dashboard costs the server no more than this, while polling the
        job list 20 times a second took the job's process from its work.
        """
        deadline = time.monotonic() + timeout
        connection = self.connection()
        try:
            connection.request("GET", f"/api/import/{job_id}/events", headers={"Accept": "text/event-stream"})
            response = connection.getresponse()
            if response.status != 200:
                raise RuntimeError(f"import #{job_id}'s stream answered {response.status}: {response.read()[:200]}")
            name = None
            while time.monotonic() < deadline:
                line = response.readline()
                if not line:
                    raise RuntimeError(f"import #{job_id}'s stream ended before job.finished")
                line = line.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    name = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    job = json.loads(line.partition(":")[2])["job"]
                    if on_event is not None:
                        on_event(job)
                    if name == "job.finished":
                        return job
        finally:
            connection.close()
        raise TimeoutError(f"import #{job_id} did not end within {timeout}s")

    def wait_for_job(self, job_id, *, timeout, poll=0.1, on_poll=None):
        """Poll the job list (cheap, unlike the detail page) until the job ends; return its final dict."""
        deadline = time.monotonic() + timeout
        connection = self.connection()
        missing = 0
        try:
            while time.monotonic() < deadline:
                status, body = self.get("/api/import?limit=5", connection)
                job = next((j for j in body["jobs"] if j["id"] == job_id), None) if status == 200 else None
                if job is None:
                    # The list reads its unfinished and ended parts one statement after the other: a job that ends
                    # between them is on neither page for that one read.
                    missing += 1
                    if missing == 3:
                        raise RuntimeError(f"import #{job_id} is not among the newest jobs: {status} {body}")
                    time.sleep(poll)
                    continue
                if on_poll is not None:
                    on_poll(job)
                if job["status"] in ("completed", "failed", "cancelled"):
                    return job
                time.sleep(poll)
        finally:
            connection.close()
        raise TimeoutError(f"import #{job_id} did not end within {timeout}s")

    def stop(self):
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def remove(path):
    shutil.rmtree(path, ignore_errors=True)


def median(values):
    return statistics.median(values)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def spread(values):
    """'median (min-max)' of a list of figures."""
    return f"{median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


TERMINAL = "job.finished"  # the event after which a job's stream ends


class Stream:
    """One SSE client on a non-blocking socket: sends the GET, then parses headers, chunks and frames."""

    def __init__(self, port, path):
        self.opened_at = time.time()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.sock.setblocking(False)
        self.raw = b""
        self.headers = None
        self.chunked = False
        self.text = ""
        # (name, data, received_at); data stays text until the run is over, so parsing one client's payload
        # never delays the receipt stamp of the next.
        self.events = []
        self.finished = False  # got the terminal event
        self.closed = False

    def feed(self, now):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        if not data:
            self.closed = True
            return
        self.raw += data
        if self.headers is None:
            head, sep, rest = self.raw.partition(b"\r\n\r\n")
            if not sep:
                return
            self.headers = head.decode("latin-1")
            status = self.headers.split("\r\n", 1)[0]
            if " 200 " not in status or "text/event-stream" not in self.headers.lower():
                raise RuntimeError(f"not an event stream: {self.headers!r}")
            self.chunked = "transfer-encoding: chunked" in self.headers.lower()
            self.raw = rest
        self._decode()
        while "\n\n" in self.text:
            frame, self.text = self.text.split("\n\n", 1)
            self._frame(frame, now)

    def _decode(self):
        if not self.chunked:
            self.text += self.raw.decode()
            self.raw = b""
            return
        while True:
            size_line, sep, rest = self.raw.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.closed = True
                self.raw = b""
                return
            if len(rest) < size + 2:
                return
            self.text += rest[:size].decode()
            self.raw = rest[size + 2 :]

    def _frame(self, frame, now):
        name, data = "message", []
        for line in frame.split("\n"):
            if line.startswith(":"):
                continue  # a keep-alive comment
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            self.events.append((name, "\n".join(data), now))
            self.finished = self.finished or name == TERMINAL

    def close(self):
        self.sock.close()


def open_streams(port, path, count):
    selector = selectors.DefaultSelector()
    streams = []
    for _ in range(count):
        stream = Stream(port, path)
        selector.register(stream.sock, selectors.EVENT_READ, stream)
        streams.append(stream)
    return selector, streams


def pump(selector, until, stop=lambda: False):
    """Read whatever arrives until the deadline or stop(); receipt times are taken as soon as bytes arrive."""
    while time.time() < until and not stop():
        for key, _ in selector.select(timeout=0.05):
            stream = key.data
            stream.feed(time.time())
            if stream.closed:
                selector.unregister(stream.sock)
