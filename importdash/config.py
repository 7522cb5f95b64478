"""Every tunable, with its default. Each one is overridable as IMPORTDASH_<NAME> in the environment
(values are parsed as JSON where they can be, so numbers and booleans keep their type)."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_database_url(instance_path):
    """The conventional DATABASE_URL is honoured; IMPORTDASH_DATABASE_URL wins over it."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'importdash.db'}"


def postgresql_timeouts(config):
    """libpq's connection parameters for the configured timeouts (SQLite has its busy timeout instead)."""
    tcp_timeout = config["DATABASE_TCP_TIMEOUT_SECONDS"]
    return {
        "connect_timeout": max(2, round(config["DATABASE_CONNECT_TIMEOUT_SECONDS"])),  # libpq rounds up to 2 s
        "options": f"-c statement_timeout={round(config['DATABASE_STATEMENT_TIMEOUT_SECONDS'] * 1000)}",
        # A server that stops answering (a cut cable, a paused VM) is noticed within tcp_timeout instead of the
        # kernel's 15 minutes: keep-alive probes on an idle connection, tcp_user_timeout on a busy one.
        "keepalives": 1,
        "keepalives_idle": max(1, round(tcp_timeout / 2)),
        "keepalives_interval": max(1, round(tcp_timeout / 6)),
        "keepalives_count": 3,
        "tcp_user_timeout": round(tcp_timeout * 1000),
    }


class Config:
    # Database. SQLite by default (one file, no service); PostgreSQL through one URL.
    DATABASE_URL = None  # None: DATABASE_URL from the environment, else instance/importdash.db
    HEALTH_TIMEOUT_SECONDS = 1.5  # /health answers 503 when the database has not answered within this
    # PostgreSQL timeouts (SQLite's equivalent is SQLITE_BUSY_TIMEOUT_MS; its statements never wait on a network).
    DATABASE_CONNECT_TIMEOUT_SECONDS = 5  # to open a connection (libpq allows no less than 2)
    DATABASE_STATEMENT_TIMEOUT_SECONDS = 300  # one statement, such as deleting a few million records
    DATABASE_TCP_TIMEOUT_SECONDS = 10  # a connection whose server stopped answering is dropped after this
    DATABASE_RETRY_AFTER_SECONDS = 5  # the Retry-After of a 503 while the database does not answer
    # A running import rides out database faults (dropped connections, lock and statement timeouts) this long,
    # retrying with full-jitter backoff; past it the run stops, its lease runs out, and the sweep resumes the
    # import once the database answers again.
    DATABASE_OUTAGE_SECONDS = 60
    DATABASE_RETRY_BACKOFF_BASE_SECONDS = 0.1  # the first retry waits up to this long, doubling per retry
    DATABASE_RETRY_BACKOFF_CAP_SECONDS = 5.0  # no retry waits longer than this
    SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for SQLite's lock instead of failing
    # WAL pages (4 kB each) written before SQLite copies them back into the database file. SQLite's default
    # (1,000) checkpoints after nearly every staging commit of a big import; a 64 MB WAL copies each hot page
    # once per checkpoint instead of once per commit.
    SQLITE_CHECKPOINT_PAGES = 16_384
    # Page cache per connection. SQLite's 2 MB default is smaller than the pages one 5,000-row staging
    # transaction dirties in the unique email index of a big table, so it spilled them to the WAL mid-way and
    # wrote them again at commit. Memory: only the job's connection fills it, once, whatever the file size.
    SQLITE_CACHE_MB = 16
    # When the app starts, create the database or bring its schema up to this version's (importdash/schema.py).
    CREATE_DB_ON_START = True
    # A PostgreSQL database behind this version's schema: False refuses to start and asks for
    # `flask --app importdash init-db` (back it up first); True upgrades it at start. Several instances may share
    # one PostgreSQL database and the older ones still run while the newer start, so by default a person decides
    # when. SQLite is always upgraded at start: one file, served by the processes of one machine.
    AUTO_MIGRATE = False
    MIGRATIONS_FOLDER = str(PROJECT_ROOT / "migrations")  # the Alembic revisions the schema moves by

    # Downstream API and its rate limit.
    DOWNSTREAM = "simulated"  # "simulated" (built in) or "webhook" (HTTP POSTs to WEBHOOK_URL)
    RATE_PER_SECOND = 2.0  # tokens (downstream calls) refilled per second; 0 lifts the limit
    RATE_BURST = 4  # bucket capacity: calls that may go out back to back
    # The limit is one per downstream for every process and machine: each process's bucket draws its grants from
    # a store they all share, the database (table rate_limits, on its clock) unless REDIS_URL names a Redis. A 429's
    # pause and the circuit breaker are shared the same way. At a rate of 0 nothing is shared or asked.
    REDIS_URL = None  # e.g. redis://host:6379/0: the rate limit (and the event relay) use Redis
    RATE_LIMIT_KEY_PREFIX = "importdash"  # the rate limit's Redis keys start with this (one per deployment)
    RATE_LIMIT_REDIS_TIMEOUT_SECONDS = 2.0  # a Redis command not answered within this counts as Redis being down
    # While the shared store does not answer, calls wait (never go out unlimited) and ask again after a full-jitter
    # backoff: up to this long at first, doubling each time, to at most the cap.
    RATE_LIMIT_RETRY_BACKOFF_BASE_SECONDS = 0.1
    RATE_LIMIT_RETRY_BACKOFF_CAP_SECONDS = 5.0
    # A grant that would go out later than this after its slot (a slow answer from the store, a late wake-up) is
    # given up for the next one, as it would go out beside that one: calls keep within burst + rate x W to this.
    RATE_LIMIT_GRANT_TOLERANCE_SECONDS = 0.005
    RECORDS_PER_CALL = 16  # records carried by one downstream call (1 = one call per record)
    SIMULATED_LATENCY_MS = 0  # the simulated downstream's response time per call
    SIMULATED_REJECT_DOMAINS = "blocked.example,rejected.example"  # comma-separated; refused by the simulator
    WEBHOOK_URL = None  # where the webhook downstream POSTs each call's records
    WEBHOOK_AUTHORIZATION = None  # sent as the Authorization header when set, e.g. "Bearer <token>"
    WEBHOOK_CONNECT_TIMEOUT_SECONDS = 5.0  # how long to wait for a connection to the webhook
    WEBHOOK_TIMEOUT_SECONDS = 10.0  # how long to wait for the webhook to take the request and answer it

    # Delivery failures: 408, 5xx, timeouts and connection errors are retried; 429 waits as Retry-After says.
    DELIVERY_MAX_ATTEMPTS = 5  # tries per call before its records fail (429 and breaker waits do not count)
    RETRY_BACKOFF_BASE_SECONDS = 0.5  # the first retry waits up to this long (full jitter), doubling per retry
    RETRY_BACKOFF_CAP_SECONDS = 30.0  # no retry waits longer than this
    BREAKER_THRESHOLD = 5  # failed calls in a row after which delivery pauses; 0 turns the breaker off
    BREAKER_COOLDOWN_SECONDS = 15.0  # while paused, one probe call goes out this often

    # Jobs.
    MAX_JOBS = 4  # import jobs that may run at once (ThreadPoolExecutor workers); more are queued
    CHUNK_SIZE = 500  # rows per chunk in a stream import
    STAGE_BATCH_SIZE = 5_000  # rows per insert transaction while staging a batch import
    PROGRESS_INTERVAL_SECONDS = 0.5  # progress is committed at least this often while a job runs
    DELIVERY_WINDOW = 512  # records marked in flight together before their calls go out
    LEASE_SECONDS = 30  # a job's lease lasts this long without a heartbeat before another process may take it
    HEARTBEAT_SECONDS = 5  # a running job renews its lease and looks for a cancel request this often
    LEASE_SWEEP_SECONDS = 10  # a serving process takes over unfinished jobs with free or expired leases this often
    SAMPLE_FILE = str(PROJECT_ROOT / "data" / "test-data-1000.csv")  # the bundled default import

    # Uploads.
    UPLOAD_FOLDER = None  # defaults to <instance>/uploads
    # Hours an uploaded file is kept after its import ended (0: deleted as soon as it ends); errors.csv and
    # retries never need it. Clear records and `flask purge` delete uploads too.
    UPLOAD_RETENTION_HOURS = 0
    RESUME_WINDOW_HOURS = 24  # a failed or cancelled import's upload is kept this long, so it can be resumed
    MAX_UPLOAD_MB = 100  # larger uploads get 413
    MAX_FORM_PARTS = 10  # multipart parts per request (the file and a few fields); more get 413 (Flask setting)
    # Bytes in one form field other than the file; more get 413 (Flask setting). Werkzeug also applies it to its
    # parse buffer, which takes 64 KiB reads, so it must stay well above that or large files are refused.
    MAX_FORM_MEMORY_SIZE = 500_000
    MAX_LINE_LENGTH = 1 << 20  # characters in one line of an uploaded file; a longer line refuses the file

    # Web security.
    AUTH_USERNAME = None  # with AUTH_PASSWORD: every route but /health needs HTTP Basic auth
    AUTH_PASSWORD = None
    # Comma-separated Host names the server answers to (".example.com" also allows every name under it); empty:
    # localhost, 127.0.0.1, ::1 and BIND's host. Refusing other names keeps DNS-rebinding pages out.
    ALLOWED_HOSTS = ""
    TRUSTED_ORIGINS = ""  # comma-separated origins (https://host[:port]) allowed to POST besides the app's own

    # Serving (read by gunicorn.conf.py).
    BIND = "127.0.0.1:8000"  # the address gunicorn listens on
    # One process keeps one event broker; more processes are safe (job leases, the unique email index, the shared
    # rate limit).
    WORKERS = 1
    THREADS = 64  # per worker: more than SSE_MAX_STREAMS, so requests are still served while every stream is open

    # Live progress over Server-Sent Events.
    SSE_KEEPALIVE_SECONDS = 15  # a comment this often keeps proxies from closing idle streams and finds dead clients
    SSE_MAX_STREAMS = 48  # open streams at once (503 beyond); fewer than gunicorn's 64 threads, so requests get one
    SSE_QUEUE_SIZE = 256  # events waiting for one client; a client further behind is dropped and reconnects
    SSE_RETRY_MS = 2_000  # how long a browser waits before reconnecting a dropped stream (also Retry-After on a 503)
    # How long a thread may keep the GIL while others wait for it, in the gunicorn worker (Python's default is
    # 5 ms). Each open stream is a thread and an event wakes them all at once: at 5 ms the waiting threads keep
    # timing out and forcing switches, which cost more than the writes they wait for (200 streams, six paired
    # runs: p99 commit-to-receipt 27-63 ms at 5 ms, 22-34 ms at 20; benchmarks/README.md, section 5). Much
    # longer lets a CPU-bound thread hold every other one up for that long: 50 ms was already worse than 20.
    GIL_SWITCH_INTERVAL_MS = 20

    # API paging.
    DEFAULT_PAGE_SIZE = 100
    MAX_PAGE_SIZE = 1_000
    JOB_ERROR_PREVIEW = 100  # errors included with GET /api/import/<id>
    EXPORT_BATCH_SIZE = 1_000  # error rows read per query while streaming errors.csv
