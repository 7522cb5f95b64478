"""Every tunable, with its default. Each one is overridable as IMPORTDASH_<NAME> in the environment
(values are parsed as JSON where they can be, so numbers and booleans keep their type)."""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_database_url(instance_path):
    """The conventional DATABASE_URL is honoured; IMPORTDASH_DATABASE_URL wins over it."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'importdash.db'}"


class Config:
    # Database. SQLite by default (one file, no service); PostgreSQL through one URL.
    DATABASE_URL = None  # None: DATABASE_URL from the environment, else instance/importdash.db
    SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for SQLite's lock instead of failing
    # WAL pages (4 kB each) written before SQLite copies them back into the database file. SQLite's default
    # (1,000) checkpoints after nearly every staging commit of a big import; a 64 MB WAL copies each hot page
    # once per checkpoint instead of once per commit.
    SQLITE_CHECKPOINT_PAGES = 16_384
    # Page cache per connection. SQLite's 2 MB default is smaller than the pages one 5,000-row staging
    # transaction dirties in the unique email index of a big table, so it spilled them to the WAL mid-way and
    # wrote them again at commit. Memory: only the job's connection fills it, once, whatever the file size.
    SQLITE_CACHE_MB = 16
    CREATE_DB_ON_START = True  # create missing tables when the app starts

    # Downstream API and its rate limit.
    DOWNSTREAM = "simulated"  # "simulated" (built in); a real HTTP downstream comes later
    RATE_PER_SECOND = 2.0  # tokens (downstream calls) refilled per second; 0 lifts the limit
    RATE_BURST = 4  # bucket capacity: calls that may go out back to back
    RECORDS_PER_CALL = 16  # records carried by one downstream call (1 = one call per record)
    SIMULATED_LATENCY_MS = 0  # the simulated downstream's response time per call
    SIMULATED_REJECT_DOMAINS = "blocked.example,rejected.example"  # comma-separated; refused by the simulator

    # Jobs.
    MAX_JOBS = 4  # import jobs that may run at once (ThreadPoolExecutor workers); more are queued
    CHUNK_SIZE = 500  # rows per chunk in a stream import
    STAGE_BATCH_SIZE = 5_000  # rows per insert transaction while staging a batch import
    PROGRESS_INTERVAL_SECONDS = 0.5  # progress is committed at least this often while a job runs
    DELIVERY_WINDOW = 512  # records marked in flight together before their calls go out
    LEASE_SECONDS = 30  # a job's lease lasts this long without a heartbeat before another process may take it
    SAMPLE_FILE = str(PROJECT_ROOT / "data" / "test-data-1000.csv")  # the bundled default import

    # Uploads.
    UPLOAD_FOLDER = None  # defaults to <instance>/uploads
    MAX_UPLOAD_MB = 100  # larger uploads get 413

    # API paging.
    DEFAULT_PAGE_SIZE = 100
    MAX_PAGE_SIZE = 1_000
    JOB_ERROR_PREVIEW = 100  # errors included with GET /api/import/<id>

