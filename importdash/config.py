"""Every tunable, with its default. Each one is overridable as IMPORTDASH_<NAME> in the environment
(values are parsed as JSON where they can be, so numbers and booleans keep their type)."""

import math
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_database_url(instance_path):
    """The conventional DATABASE_URL is honoured; IMPORTDASH_DATABASE_URL wins over it."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'importdash.db'}"


def postgresql_timeouts(config, url_options=None):
    """libpq's connection parameters for the configured timeouts (SQLite has its busy timeout instead).

    url_options are the `options` the database URL carries (e.g. -csearch_path=...): they are kept, since these
    parameters replace the URL's own.
    """
    tcp_timeout = config["DATABASE_TCP_TIMEOUT_SECONDS"]
    statement_timeout = f"-c statement_timeout={round(config['DATABASE_STATEMENT_TIMEOUT_SECONDS'] * 1000)}"
    return {
        "connect_timeout": max(2, round(config["DATABASE_CONNECT_TIMEOUT_SECONDS"])),  # libpq rounds up to 2 s
        "options": f"{url_options} {statement_timeout}" if url_options else statement_timeout,
        # A server that stops answering (a cut cable, a paused VM) is noticed within tcp_timeout instead of the
        # kernel's 15 minutes: keep-alive probes on an idle connection, tcp_user_timeout on a busy one.
        "keepalives": 1,
        "keepalives_idle": max(1, round(tcp_timeout / 2)),
        "keepalives_interval": max(1, round(tcp_timeout / 6)),
        "keepalives_count": 3,
        "tcp_user_timeout": round(tcp_timeout * 1000),
    }


# Database connections a process may hold besides one per runner slot and those of its requests, one each: the
# health probe's thread, the claimer's loop, the scheduler's loop, the event relay's listener, the shared rate
# limit's store and the notification sender's loop.
BACKGROUND_CONNECTIONS = 6


def database_pool(config):
    """The SQLAlchemy pool options of one process: a hard cap of one connection per runner slot, one per
    background user and DATABASE_REQUEST_CONNECTIONS for request threads, so that the sum over every process
    is known (README, Deploy). Past the cap a request waits DATABASE_POOL_TIMEOUT_SECONDS, then gets a 503."""
    return {
        "pool_size": config["MAX_JOBS"] + BACKGROUND_CONNECTIONS + config["DATABASE_REQUEST_CONNECTIONS"],
        "max_overflow": 0,
        # Flask-SQLAlchemy builds the engine with engine_from_config, which takes the pool's timeout in whole seconds.
        "pool_timeout": max(1, math.ceil(config["DATABASE_POOL_TIMEOUT_SECONDS"])),
    }


def sample_imports_allowed(config):
    """Whether the bundled sample may be imported: always into the simulator, into a webhook only with DEMO."""
    return config["DEMO"] or config["DOWNSTREAM"] != "webhook"


class Config:
    # Database. SQLite by default (one file, no service); PostgreSQL through one URL.
    DATABASE_URL = None  # None: DATABASE_URL from the environment, else instance/importdash.db
    HEALTH_TIMEOUT_SECONDS = 1.5  # /health answers 503 when the database has not answered within this
    # PostgreSQL timeouts (SQLite's equivalent is SQLITE_BUSY_TIMEOUT_MS; its statements never wait on a network).
    DATABASE_CONNECT_TIMEOUT_SECONDS = 5  # to open a connection (libpq allows no less than 2)
    DATABASE_STATEMENT_TIMEOUT_SECONDS = 300  # one statement, such as deleting a few million records
    DATABASE_TCP_TIMEOUT_SECONDS = 10  # a connection whose server stopped answering is dropped after this
    DATABASE_RETRY_AFTER_SECONDS = 5  # the Retry-After of a 503 while the database does not answer
    # Connections this process's request threads may hold at once (of gunicorn's THREADS; a request holds one only
    # while it runs, a progress stream none). With MAX_JOBS and the 6 background users this makes the pool: 15 by
    # default, so six processes hold at most 90 of PostgreSQL's default 100 (README, Deploy).
    DATABASE_REQUEST_CONNECTIONS = 5
    DATABASE_POOL_TIMEOUT_SECONDS = 3  # a request waits this long (whole seconds) for a connection, then gets a 503
    # A running import rides out database faults (dropped connections, lock and statement timeouts) this long,
    # retrying with full-jitter backoff; past it the run stops, its lease runs out, and a process with a free slot
    # claims the import again once the database answers.
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
    # Page cache of a batch import's own connection while it stages (extensions.run_session), given back after.
    # Each new email lands on its own page of the unique email index, so into a table of millions of records a
    # staging commit dirties more pages than 16 MB holds; kept from one commit to the next, a bigger cache writes
    # each page once per checkpoint instead of reading it again per commit. A stream import keeps the default:
    # its memory stays flat. Up to this much more per batch import staging at once, for as long as it stages.
    SQLITE_STAGING_CACHE_MB = 64
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
    # "Test downstream" (and check-downstream) waits this long for a call the rate limit allows; when imports use
    # every call, or a 429 paused them all, it says so instead of calling.
    DOWNSTREAM_CHECK_WAIT_SECONDS = 10.0

    # Delivery failures: 408, 5xx, timeouts and connection errors are retried; 429 waits as Retry-After says.
    DELIVERY_MAX_ATTEMPTS = 5  # tries per call before its records fail (429 and breaker waits do not count)
    RETRY_BACKOFF_BASE_SECONDS = 0.5  # the first retry waits up to this long (full jitter), doubling per retry
    RETRY_BACKOFF_CAP_SECONDS = 30.0  # no retry waits longer than this
    BREAKER_THRESHOLD = 5  # failed calls in a row after which delivery pauses; 0 turns the breaker off
    BREAKER_COOLDOWN_SECONDS = 15.0  # while paused, one probe call goes out this often

    # Jobs.
    MAX_JOBS = 4  # import jobs one process runs at once (its runner's slots); more wait in the database
    CHUNK_SIZE = 500  # rows per chunk in a stream import
    STAGE_BATCH_SIZE = 10_000  # rows per insert transaction while staging a batch import (each commit rewrites
    # the email index pages it touched: 5,000 staged about 8 % slower on SQLite, 5 % on PostgreSQL; 20,000 held
    # 18 MB more at the peak than 10,000 with five extra columns)
    PROGRESS_INTERVAL_SECONDS = 0.5  # progress is committed at least this often while a job runs
    # The CLI's progress off a terminal (a log file, a pipe, cron's mail): a plain line this often, and one at the end.
    PROGRESS_LINE_SECONDS = 10
    # Records claimed together, with one write to their job, before their calls go out. A crash sends again only
    # those already sent and not yet settled (settled at least every PROGRESS_INTERVAL_SECONDS), never a window.
    DELIVERY_WINDOW = 4096
    LEASE_SECONDS = 30  # a job's lease lasts this long without a heartbeat before another process may take it
    HEARTBEAT_SECONDS = 5  # a running job renews its lease and looks for a cancel or pause request this often
    # A serving process with a free runner slot looks this often for jobs waiting in the database (posted to a busy
    # process, or whose process died and whose lease ran out); it also looks whenever one of its slots frees.
    # One indexed read per idle process per poll; 0: only at start and when a slot frees.
    CLAIM_POLL_SECONDS = 0.5
    UPLOAD_SWEEP_SECONDS = 60  # a serving process deletes the uploads whose retention is over this often
    SAMPLE_FILE = str(PROJECT_ROOT / "data" / "test-data-1000.csv")  # the bundled default import
    # Allow imports of the bundled sample ("Import (Default)", and Batch or Stream without a file) while a webhook
    # downstream is configured. Off, the sample's made-up contacts never reach a real downstream: the button is
    # hidden and the API refuses them. The simulated downstream always allows them.
    DEMO = False

    # Uploads.
    # Where uploaded files are kept until no run of their import needs them: "local" (UPLOAD_FOLDER; only this
    # machine can run their imports), "database" (chunks in the upload_chunks table) or "s3" (S3_BUCKET). With
    # "database" or "s3" any instance reads, resumes and deletes any import's file, and an upload passes through
    # UPLOAD_FOLDER only while it is checked; `flask import` then stores a copy of the file it is given.
    UPLOAD_STORAGE = "local"
    UPLOAD_FOLDER = None  # defaults to <instance>/uploads
    UPLOAD_CHUNK_KB = 1024  # bytes per row of upload_chunks ("database" storage); also what a read holds at once
    # "s3" storage: credentials and region come from boto3's usual sources (AWS_ACCESS_KEY_ID and
    # AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, ~/.aws, an instance role). Set S3_BUCKET to read s3: keys at all.
    S3_BUCKET = None
    S3_ENDPOINT_URL = None  # an S3-compatible service (MinIO, Ceph, ...); None: AWS
    S3_PREFIX = "uploads/"  # put in front of every object key the app writes
    # Multipart upload part size (S3 allows no less than 5). Parts are read into memory to be sent: an upload's
    # peak is about three parts' worth (19 MB at 5, 28 MB at 8, for a 90 MB file), whatever the file's size.
    S3_PART_MB = 5
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
    # An .xlsx workbook is a ZIP archive: what it may unpack to is checked before any of it is read, so a zip
    # bomb is refused at upload. Its shared-strings table is the one part openpyxl holds in memory whole (about
    # 1.3 times its XML's size: benchmarks/formats.py), so it has its own cap.
    XLSX_MAX_UNCOMPRESSED_MB = 1024  # every part of a workbook unpacked, together
    XLSX_MAX_COMPRESSION_RATIO = 100  # a workbook's unpacked size over its packed size
    XLSX_MAX_SHARED_STRINGS_MB = 64  # the XML of a workbook's shared-strings table
    JSON_MAX_DEPTH = 32  # levels of arrays and objects in a JSON or NDJSON upload, the top-level array counted
    JSON_MAX_COLUMNS = 1_000  # different keys a JSON or NDJSON upload's records may use between them

    # Previews (POST /api/import/preview, `flask import --dry-run`, the dashboard's preview panel).
    PREVIEW_TTL_MINUTES = 30  # a previewed upload is kept this long for "Start import", then deleted by the sweep
    PREVIEW_ROWS = 20  # rows shown as mapped
    # Valid rows whose emails are looked up among the stored records in one query while a preview counts duplicates.
    PREVIEW_LOOKUP_BATCH_SIZE = 5_000

    # Web security.
    AUTH_USERNAME = None  # with AUTH_PASSWORD: every route but /health needs HTTP Basic auth
    AUTH_PASSWORD = None
    # Users and API keys (`importdash users create`, README "Users, roles and the audit trail"). Once a user exists
    # browsers sign in at /login and scripts send an API key as "Authorization: Bearer <key>"; the Basic user above
    # keeps working as an admin. With neither, the app stays open and everyone acts as an admin named anonymous.
    # Signs the session cookie. Every process and machine serving one site needs the same key, or a browser signed
    # in on one is refused by the others; None: a random key per process (one process only; restarts sign out).
    SECRET_KEY = None
    SESSION_HOURS = 12  # a browser session ends this long after sign-in
    SESSION_COOKIE_SAMESITE = "Lax"  # the session cookie is not sent with other sites' POSTs (Flask setting)
    SESSION_COOKIE_SECURE = False  # True behind HTTPS: the cookie is never sent over plain HTTP (Flask setting)
    API_KEY_TOUCH_SECONDS = 60  # an API key's last use is written at most this often, not on every request
    # Proxies in front of the app (load balancers, reverse proxies) whose X-Forwarded-For and X-Forwarded-Proto are
    # believed, counted from the app outwards; 0: none, the client's address is the connection's. The audit trail
    # records the address this gives.
    TRUSTED_PROXIES = 0
    # Comma-separated Host names the server answers to (".example.com" also allows every name under it); empty:
    # localhost, 127.0.0.1, ::1 and BIND's host. Refusing other names keeps DNS-rebinding pages out.
    ALLOWED_HOSTS = ""
    TRUSTED_ORIGINS = ""  # comma-separated origins (https://host[:port]) allowed to POST besides the app's own

    # Serving (read by gunicorn.conf.py).
    BIND = "127.0.0.1:8000"  # the address gunicorn listens on
    # Worker processes; more are safe (job leases, the unique email index, the shared rate limit, the event relay;
    # README, "Scale out"). Each has its own database pool (README, "Database connections").
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

    # Relaying job events between processes, so a stream on any instance shows imports that any other process
    # runs (servers, and `flask import`, which announces but does not listen). An announcement carries the job's
    # id and the event's name only; each receiving process reads the committed state itself.
    # "auto": Redis pub/sub when REDIS_URL is set, else the database (LISTEN/NOTIFY on PostgreSQL, the
    # event_outbox table read every EVENT_RELAY_POLL_SECONDS on SQLite); "database" or "redis" to choose; "off"
    # for a single process.
    EVENT_RELAY = "auto"
    EVENT_RELAY_CHANNEL = "importdash-events"  # the NOTIFY / pub/sub channel; instances that share it see each other
    EVENT_RELAY_POLL_SECONDS = 0.25  # SQLite: how often a serving process reads new rows of the outbox table
    EVENT_RELAY_OUTBOX_KEEP_SECONDS = 60  # SQLite: outbox rows older than this are deleted by the serving processes
    # PostgreSQL and Redis: the listener waits this long for an announcement before it checks whether to stop (and,
    # on PostgreSQL, asks the server whether the connection still answers).
    EVENT_RELAY_WAIT_SECONDS = 1.0
    # Redis: an announcement Redis has not taken within this is given up (logged), and the listener's connection
    # or subscription not made within this is tried again.
    EVENT_RELAY_SEND_TIMEOUT_SECONDS = 2.0
    # After an outage the listener reconnects with full-jitter backoff: up to the base at first, doubling to the cap.
    EVENT_RELAY_RETRY_BASE_SECONDS = 0.5
    EVENT_RELAY_RETRY_CAP_SECONDS = 15.0

    # Schedules (imports that start themselves; README, "Schedules").
    SCHEDULE_POLL_SECONDS = 15  # a serving process looks for due schedule runs this often; 0: never (no scheduler)
    # The folder path sources (and their globs) must be under, symlinks resolved; None: path sources are refused.
    IMPORT_ROOT = None
    # URL sources on private, loopback, link-local or reserved addresses are refused (against SSRF), redirects too;
    # True allows them (a feed on the same network).
    SCHEDULE_ALLOW_PRIVATE_URLS = False
    SCHEDULE_FETCH_TIMEOUT_SECONDS = 30.0  # a URL source that sends nothing for this long fails its run
    SCHEDULE_MAX_REDIRECTS = 5  # redirects a URL source may follow, each checked like the first URL
    # A run still fetching this long after its claim is taken for abandoned (its process died) and ended as failed;
    # well above any fetch, which its timeout ends much sooner unless the file keeps arriving.
    SCHEDULE_ABANDONED_RUN_SECONDS = 3600
    # Notifications when an import ends (README, "Notifications"). A template's own settings win over these: a
    # template with a webhook URL notifies that one instead of NOTIFY_WEBHOOK_URL, one with email addresses those
    # instead of NOTIFY_EMAIL_TO, one with endings those instead of NOTIFY_ON.
    NOTIFY_WEBHOOK_URL = None  # POST a signed JSON summary of each ended import here
    NOTIFY_WEBHOOK_SECRET = None  # the shared secret of the HMAC-SHA256 signature (never logged or shown)
    NOTIFY_EMAIL_TO = ""  # comma-separated addresses that get an email summary of each ended import
    # Which endings notify: completed, completed_with_failures (some records refused downstream), failed, cancelled.
    NOTIFY_ON = "completed,completed_with_failures,failed,cancelled"
    NOTIFY_MAX_ATTEMPTS = 8  # tries per notification before it is given up as failed
    NOTIFY_BACKOFF_BASE_SECONDS = 10.0  # the first retry waits up to this long (full jitter), doubling per retry
    NOTIFY_BACKOFF_CAP_SECONDS = 3600.0  # no retry waits longer than this
    NOTIFY_POLL_SECONDS = 2.0  # a serving process looks for notifications due this often (and when an import ends)
    # A notification a process took is its own for this long; if the process dies sending it, another sends it after.
    NOTIFY_CLAIM_SECONDS = 120
    NOTIFY_TIMEOUT_SECONDS = 10.0  # a webhook call or an SMTP conversation that takes longer has failed
    SMTP_HOST = None  # the mail server that sends notification emails; None: emails fail with a reason
    SMTP_PORT = 25
    SMTP_USERNAME = None  # log in with these when set
    SMTP_PASSWORD = None
    SMTP_STARTTLS = False  # upgrade the connection with STARTTLS before logging in
    SMTP_FROM = "importdash@localhost"  # the notification emails' From address
    # The dashboard's address as people reach it, for links in notifications (job page, errors.csv), e.g.
    # https://imports.example.com; None: http:// and BIND.
    PUBLIC_URL = None
    # Monitoring (README, Monitor).
    # GET /metrics answers without credentials when True, like /health, for Prometheus scrapers that cannot sign in;
    # False: it asks for the API's credentials (HTTP Basic) whenever the app does.
    METRICS_PUBLIC = False
    # Under gunicorn each worker writes its metrics to files here, and a scrape of any worker sums them all;
    # gunicorn.conf.py empties it at start, so each server needs its own. None: a temporary folder of the server's own,
    # removed when it stops.
    METRICS_DIR = None
    # The upper bounds (seconds) of the job duration histogram's buckets.
    METRICS_JOB_DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
    # Traces: with an OTLP/HTTP endpoint (e.g. http://collector:4318; OpenTelemetry's own
    # OTEL_EXPORTER_OTLP_ENDPOINT works too) and `pip install 'importdash[otel]'`, one span per import run,
    # with child spans for its chunks and downstream calls. None: no traces, and no cost.
    OTLP_ENDPOINT = None
    OTLP_SERVICE_NAME = "importdash"  # the service.name the spans carry

    # API paging.
    DEFAULT_PAGE_SIZE = 100
    MAX_PAGE_SIZE = 1_000
    JOB_ERROR_PREVIEW = 100  # errors included with GET /api/import/<id>
    EXPORT_BATCH_SIZE = 1_000  # rows read per query while streaming errors.csv and results.csv

    # Analytics (/analytics, /api/analytics) and comparison (/compare, /api/compare).
    ANALYTICS_DEFAULT_DAYS = 30  # the date range shown when none is asked for: 7, 30 or 90 days
    # The newest ended imports (and runs) in the range whose durations and delivery rates are read: averages and
    # percentiles are worked out in Python, so this bounds one request however many imports there are.
    ANALYTICS_MAX_JOBS = 5_000
    ANALYTICS_MAX_FAILED_RECORDS = 50_000  # newest failed records whose downstream answers are grouped
    ANALYTICS_TOP_ERRORS = 10  # downstream error groups shown
    IMPORT_PICKER_SIZE = 200  # the newest imports offered in the analytics and comparison pages' pickers
