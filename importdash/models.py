"""The ledger: import jobs, one record per valid row, one error row per failed row."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from sqlalchemy import (
    JSON,
    ColumnElement,
    Double,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    false,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

ANONYMOUS_USER = "anonymous"  # who started a job when authentication is off
DEFAULT_ENCODING = "utf-8-sig"  # UTF-8, with or without a byte order mark
MAX_ID = 2**31 - 1  # ids are 32-bit integers; a larger number names no row (and would overflow the driver)
MAX_SEARCH_LENGTH = 255  # the longest search of file names: a file's display name is at most this long
# A job's priority: waiting jobs with a higher one claim free runner slots first. Part of the API, not a tunable.
MIN_PRIORITY, DEFAULT_PRIORITY, MAX_PRIORITY = -10, 0, 10


def is_id(text: str) -> bool:
    """Whether a reference a user gave is an id (digits) rather than a name (names are never all digits)."""
    return text.isascii() and text.isdigit()


def by_id_or_name(session, model, reference):
    """The row of a model with a unique name whose id (a number, or digits) or name is reference; None if none."""
    if isinstance(reference, str) and "\x00" in reference:  # no name holds one (and PostgreSQL refuses it)
        return None
    if isinstance(reference, int) or is_id(reference):
        return session.get(model, int(reference)) if int(reference) <= MAX_ID else None
    return session.scalar(select(model).where(model.name == reference))


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


class JobMode(str, Enum):
    DEFAULT = "default"
    BATCH = "batch"
    STREAM = "stream"


class JobStatus(str, Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"  # held by a person: no runner claims it until it is unpaused

    @classmethod
    def unfinished(cls):
        """The statuses of a job that some run has yet to finish (it waits for a runner, one runs it, or it is
        paused)."""
        return frozenset({cls.PENDING, cls.PROCESSING, cls.PAUSED})

    @classmethod
    def runnable(cls):
        """The statuses of an unfinished job a runner may take: waiting for one, or run by one."""
        return frozenset({cls.PENDING, cls.PROCESSING})

    @property
    def is_terminal(self):
        return self not in JobStatus.unfinished()


class JobOutcome(str, Enum):
    """How a completed import ended, told apart so that an import in which every row failed never reads as a success."""

    COMPLETED = "completed"  # every row succeeded
    COMPLETED_WITH_FAILURES = "completed_with_failures"  # some rows succeeded, some failed
    NOTHING_SUCCEEDED = "nothing_succeeded"  # no row succeeded

    @classmethod
    def of(cls, *, status: str, success_count: int, failed_count: int) -> "JobOutcome | None":
        """The ending of a completed import; None while it is not completed (its status says the rest)."""
        if status != JobStatus.COMPLETED.value:
            return None
        if success_count == 0 and failed_count > 0:
            return cls.NOTHING_SUCCEEDED
        return cls.COMPLETED_WITH_FAILURES if failed_count else cls.COMPLETED


class JobAction(str, Enum):
    """What may happen to a job; TRANSITIONS says from which statuses, and to which one."""

    RUN = "run"  # a runner takes the job's lease (a resumed run takes it again)
    RELEASE = "release"  # the runner's process shuts down: the lease is freed and the job stays resumable
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    RETRY = "retry"  # a completed job's failed deliveries go out again
    RESUME = "resume"  # a failed or cancelled job goes on from where it stopped
    PAUSE = "pause"  # a waiting or running job is held: its run stops at a safe point and gives up its slot
    UNPAUSE = "unpause"  # a paused job waits for a runner again, and goes on from where it stopped


@dataclass(frozen=True)
class Transition:
    sources: frozenset[JobStatus]
    target: JobStatus


TRANSITIONS = {
    JobAction.RUN: Transition(JobStatus.runnable(), JobStatus.PROCESSING),
    JobAction.RELEASE: Transition(frozenset({JobStatus.PROCESSING}), JobStatus.PROCESSING),
    JobAction.COMPLETE: Transition(frozenset({JobStatus.PROCESSING}), JobStatus.COMPLETED),
    JobAction.FAIL: Transition(JobStatus.runnable(), JobStatus.FAILED),
    # A paused job is cancelled without a run: nothing of it is in flight that a run would have to settle first.
    JobAction.CANCEL: Transition(JobStatus.unfinished(), JobStatus.CANCELLED),
    JobAction.RETRY: Transition(frozenset({JobStatus.COMPLETED}), JobStatus.PENDING),
    JobAction.RESUME: Transition(frozenset({JobStatus.FAILED, JobStatus.CANCELLED}), JobStatus.PENDING),
    JobAction.PAUSE: Transition(JobStatus.runnable(), JobStatus.PAUSED),
    JobAction.UNPAUSE: Transition(frozenset({JobStatus.PAUSED}), JobStatus.PENDING),
}


def stored(statuses):
    """The values statuses are stored as, for a WHERE clause (a driver may dump an enum member by its name)."""
    return sorted(status.value for status in statuses)


def statuses_allowing(action):
    """The stored statuses from which the action may be taken."""
    return stored(TRANSITIONS[action].sources)


class RecordStatus(str, Enum):
    """A record's status as people see it. A fresh record is stored once, pending, and its job's delivery
    watermarks tell the rest (shown_status): in flight up to the job's sent_through, succeeded up to its
    settled_through. Only what the watermarks cannot tell is written to the record: a refusal, a cancel, a success
    the downstream said something about, and every verdict of a retry."""

    PENDING = "pending"  # staged, not yet sent
    IN_FLIGHT = "in_flight"  # handed to a call; re-sent with the same key after a crash
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def undelivered(cls):
        """The stored values of records that may still wait for a verdict (see awaiting_verdict)."""
        return [cls.PENDING.value, cls.IN_FLIGHT.value]


class FileFormat(str, Enum):
    """How a file's rows are read (services/reader.py)."""

    CSV = "csv"  # delimited text: comma, tab, semicolon or pipe
    XLSX = "xlsx"  # an Excel workbook, one sheet of it
    JSON = "json"  # an array of objects
    NDJSON = "ndjson"  # one object per line


class DuplicatePolicy(str, Enum):
    """What an import does with a row whose email a stored record holds already."""

    SKIP = "skip"  # the row is a "duplicate" error row
    UPDATE = "update"  # the stored record takes the row's fields and goes downstream again, as an update


class ErrorCategory(str, Enum):
    DUPLICATE = "duplicate"
    MISSING_VALUE = "missing_value"
    INVALID_FORMAT = "invalid_format"
    OTHER = "other"


# The runnable statuses as SQL, for the claim order index's WHERE: a claim names them the same way, literally, so
# that both databases see the index covers it.
RUNNABLE_SQL = "status IN ('pending', 'processing')"


class ImportJob(db.Model):
    __tablename__ = "import_jobs"
    # The history lists jobs newest first by (created_at, id): one index serves that order on both databases.
    __table_args__ = (
        Index("ix_import_jobs_created_at_id", "created_at", "id"),
        # Unique: two requests with one key, even at once and to two processes, start one job.
        Index("uq_import_jobs_idempotency_key", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # A random key that makes record idempotency keys unique even if ids are reused after a clear.
    key: Mapped[str] = mapped_column(String(32), default=lambda: uuid.uuid4().hex)
    mode: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(255))  # the file's display name
    # The file to read: a storage key ("local:<name>", "db:<id>", "s3:<object key>"; services/storage.py), or a
    # plain path on the machine (the bundled sample, a file imported in place, a row from before keys existed).
    path: Mapped[str] = mapped_column(Text)
    # How the file is read, fixed when it is checked at upload so the job reads it the same way.
    encoding: Mapped[str] = mapped_column(String(64), default=DEFAULT_ENCODING)
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    columns: Mapped[list | None] = mapped_column(JSON)  # the file's header as read: errors.csv needs no file
    file_format: Mapped[str] = mapped_column(String(16), default=FileFormat.CSV.value, server_default="csv")
    sheet: Mapped[str | None] = mapped_column(Text)  # the workbook sheet read (xlsx)
    # Which source columns give name, email and company, and which are kept as extra fields (services/mapping.py
    # ColumnMapping.to_json); None for jobs from before mappings, whose columns were named name, email, company.
    mapping: Mapped[dict | None] = mapped_column(JSON)
    duplicate_policy: Mapped[str] = mapped_column(String(16), default=DuplicatePolicy.SKIP.value, server_default="skip")
    template_id: Mapped[int | None] = mapped_column(ForeignKey("import_templates.id", ondelete="SET NULL"))
    # When the uploaded file was deleted (an upload is kept only while a run of its job may need it, or for
    # UPLOAD_RETENTION_HOURS); None while it is kept, and for files that are not uploads.
    upload_removed_at: Mapped[datetime | None]
    started_by: Mapped[str] = mapped_column(Text, default=ANONYMOUS_USER)
    # The Idempotency-Key a script sent with the request that started the job: the same key gets this job back.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))  # the signed-in user, or "anonymous"
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING.value, index=True)
    total_records: Mapped[int | None]
    # The data rows the upload check counted from the file's line breaks, shown (as an estimate) while the total
    # is unknown: a quoted cell over several lines, or a blank line, makes it a little high.
    estimated_total: Mapped[int | None]
    processed_count: Mapped[int] = mapped_column(default=0)
    success_count: Mapped[int] = mapped_column(default=0)
    failed_count: Mapped[int] = mapped_column(default=0)
    # Records a cancel stopped before they were sent; processed = succeeded + failed + cancelled. A resume takes
    # them back (they go out again, or become duplicates of an import that stored their email meanwhile).
    cancelled_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # Error rows per category (ERROR_COUNTERS names each one's column), committed with the rows they count, so progress
    # and the history pages never have to count a big job's errors.
    duplicate_count: Mapped[int] = mapped_column(default=0)
    missing_value_count: Mapped[int] = mapped_column(default=0)
    invalid_format_count: Mapped[int] = mapped_column(default=0)
    other_count: Mapped[int] = mapped_column(default=0)
    rows_read: Mapped[int] = mapped_column(default=0)  # data rows staged so far; becomes the total at the end
    cursor: Mapped[int] = mapped_column(default=0)  # last source row staged; a resumed job reads on from here
    error: Mapped[str | None] = mapped_column(Text)  # why the job failed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    # Set by a cancel request from any process; the lease holder sees it at its next heartbeat.
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # Set by a pause request from any process while a run holds the job; the holder pauses it at its next heartbeat.
    pause_requested: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Waiting jobs with a higher priority claim free runner slots first (MIN_PRIORITY..MAX_PRIORITY); a running
    # job is never stopped for one with a higher priority.
    priority: Mapped[int] = mapped_column(default=DEFAULT_PRIORITY, server_default="0")
    notice: Mapped[str | None] = mapped_column(String(255))  # what delivery is waiting for, e.g. the downstream
    retries: Mapped[int] = mapped_column(default=0)  # how often its failed deliveries were sent again
    # Commits by the lease holder's ledger. A holder whose commit failed mid-way (a dropped connection) reads it
    # back to tell whether that commit landed, so a write is never applied twice.
    ledger_writes: Mapped[int] = mapped_column(default=0, server_default="0")
    last_retried_at: Mapped[datetime | None]
    # Delivery watermarks, committed with the counts (services/ledger.py): the job's records up to sent_through
    # were handed to a call, and a fresh record up to settled_through that is still stored pending was accepted.
    # So a successful delivery writes one job row per commit, not one row per record (RecordStatus).
    sent_through: Mapped[int] = mapped_column(default=0, server_default="0")
    settled_through: Mapped[int] = mapped_column(default=0, server_default="0")

    @property
    def duration_seconds(self):
        """From the first start to the last end; with retries, to_dict(runs=...) tells the import's own time."""
        if self.started_at is None:
            return None
        end = self.completed_at or utcnow()
        return round((end - self.started_at).total_seconds(), 3)

    @property
    def outcome(self):
        return JobOutcome.of(status=self.status, success_count=self.success_count, failed_count=self.failed_count)

    @property
    def error_counts(self):
        """The job's error rows per category, with every category present."""
        return {category: getattr(self, column.key) for category, column in ERROR_COUNTERS.items()}

    def to_dict(self, runs):
        """The job as the API shows it; with its runs (JobRun rows) its duration and the records it sent are its
        import's own (first and resumed runs), without the time and sends of its retries."""
        seconds, delivered = own_work(self, runs)
        outcome = self.outcome
        return {
            "id": self.id,
            "mode": self.mode,
            "status": self.status,
            "outcome": outcome.value if outcome else None,
            "source": self.source,
            "started_by": self.started_by,
            "idempotency_key": self.idempotency_key,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "file_format": self.file_format,
            "sheet": self.sheet,
            "mapping": self.mapping,
            "duplicate_policy": self.duplicate_policy,
            "template_id": self.template_id,
            "total_records": self.total_records,
            "estimated_total": self.estimated_total,
            "processed_count": self.processed_count,
            "success_count": self.success_count,
            "failed_count": self.failed_count,
            "cancelled_count": self.cancelled_count,
            "created_at": isoformat(self.created_at),
            "started_at": isoformat(self.started_at),
            "completed_at": isoformat(self.completed_at),
            "duration_seconds": seconds,
            "delivered_count": delivered,
            "error": self.error,
            "notice": self.notice,
            "cancel_requested": self.cancel_requested,
            "pause_requested": self.pause_requested,
            "priority": self.priority,
            "retries": self.retries,
            "last_retried_at": isoformat(self.last_retried_at),
        }


def own_work(job, runs):
    """Return (seconds, records sent) of the job's own runs, the first and resumed ones, leaving its retries out.

    A job whose runs were not recorded (made before runs were) counts from its start to its end, and what it sent
    from its verdicts: the successes plus the downstream's refusals.
    """
    own = [run for run in runs if run.kind != RunKind.RETRY.value]
    if not own:
        return job.duration_seconds, job.success_count + job.other_count
    now = utcnow()
    seconds = sum(((run.ended_at or now) - run.started_at).total_seconds() for run in own)
    return round(seconds, 3), sum(run.sent for run in own)


# Claims take the runnable jobs highest priority first, then oldest: only those few are in this index, in that
# order, so a claim reads the head of it (services/ledger.py claimable() and CLAIM_ORDER).
Index(
    "ix_import_jobs_claim_order",
    ImportJob.priority.desc(),
    ImportJob.created_at,
    ImportJob.id,
    sqlite_where=text(RUNNABLE_SQL),
    postgresql_where=text(RUNNABLE_SQL),
)


# The job's counter of error rows in each category.
ERROR_COUNTERS = {
    ErrorCategory.DUPLICATE.value: ImportJob.duplicate_count,
    ErrorCategory.MISSING_VALUE.value: ImportJob.missing_value_count,
    ErrorCategory.INVALID_FORMAT.value: ImportJob.invalid_format_count,
    ErrorCategory.OTHER.value: ImportJob.other_count,
}


class Record(db.Model):
    __tablename__ = "records"
    __table_args__ = (
        # Delivery claims a job's undelivered records in row order, each claim starting after the last row
        # sent, so this index serves claims as one short range scan. No index holds every record's status:
        # it changes twice per record, and each change would rewrite an entry in it.
        UniqueConstraint("job_id", "row", name="uq_records_job_row"),
        # Only the few failed records are in this one: it serves a retry and the failed-records page.
        Index(
            "ix_records_job_failed_row",
            "job_id",
            "row",
            sqlite_where=text("status = 'failed'"),
            postgresql_where=text("status = 'failed'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key: it would look the job up for every record staged (migration 0016); deleting a job deletes
    # its records itself (services/jobs.py).
    job_id: Mapped[int]
    row: Mapped[int]  # the row's number in its source file (the header is row 1)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    # Trimmed, lower-cased email. Its unique index is what decides duplicates, across imports and processes.
    email_key: Mapped[str] = mapped_column(Text, unique=True)
    company: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict | None] = mapped_column(JSON)  # the row's other kept columns, column name -> value
    # 1 when first stored; each update (DuplicatePolicy.UPDATE) adds one, and goes downstream under a new key.
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(16), default=RecordStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    response: Mapped[dict | None] = mapped_column(JSON)  # what the downstream answered

    def to_dict(self, *, status: str, attempts: int):
        """The record as the API shows it, with its status and attempts as shown_status() and shown_attempts()
        tell them (what is stored alone does not say whether a pending record was delivered)."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "row": self.row,
            "name": self.name,
            "email": self.email,
            "company": self.company,
            "extra": self.extra,
            "version": self.version,
            "status": status,
            "attempts": attempts,
            "response": self.response,
        }


# A record's status and attempts as people see them, from what is stored and its job's watermarks (RecordStatus).
# `record` is Record or an alias of it; the watermarks are the job's columns (joined) or their values.


def _fresh_through(record, watermark) -> ColumnElement[bool]:
    """Stored pending, never attempted, and at or before the watermark: what its job's watermarks tell the status
    of (past settled_through it was accepted, past sent_through it went out)."""
    return and_(record.status == RecordStatus.PENDING.value, record.attempts == 0, record.row <= watermark)


def shown_status(record, settled_through, sent_through) -> ColumnElement[str]:
    return case(
        (_fresh_through(record, settled_through), RecordStatus.SUCCEEDED.value),
        (_fresh_through(record, sent_through), RecordStatus.IN_FLIGHT.value),
        else_=record.status,
    )


def shown_attempts(record, settled_through) -> ColumnElement[int]:
    return case((_fresh_through(record, settled_through), 1), else_=record.attempts)


def awaiting_verdict(settled_through, record=Record) -> ColumnElement[bool]:
    """The records still waiting for a verdict: stored pending or in flight, and not accepted by the watermark.

    Records a retry sends again have attempts already, so the watermark (which has passed them) never counts them.
    """
    return and_(record.status.in_(RecordStatus.undelivered()), or_(record.attempts > 0, record.row > settled_through))


class RowError(db.Model):
    __tablename__ = "import_errors"
    # Error pages are ordered by (row, id); with the id in the index PostgreSQL reads a page straight from it
    # instead of sorting every error of the job (SQLite appends the rowid to every index anyway).
    __table_args__ = (
        Index("ix_import_errors_job_category_row_id", "job_id", "category", "row", "id"),
        Index("ix_import_errors_job_row_id", "job_id", "row", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int]  # no foreign key, as Record.job_id
    row: Mapped[int]
    category: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON)  # the raw row as read, column name -> value
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_dict(self):
        return {"row": self.row, "category": self.category, "message": self.message, "data": self.data}


class ImportTemplate(db.Model):
    """A saved, named way to read a kind of file: its format, encoding, delimiter, sheet, column mapping, the
    columns kept and the duplicate policy. None in a field means "detect it", as for an upload without one."""

    __tablename__ = "import_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    file_format: Mapped[str | None] = mapped_column(String(16))
    encoding: Mapped[str | None] = mapped_column(String(64))
    delimiter: Mapped[str | None] = mapped_column(String(1))
    sheet: Mapped[str | None] = mapped_column(Text)
    mapping: Mapped[dict | None] = mapped_column(JSON)  # ColumnMapping.to_json()
    duplicate_policy: Mapped[str] = mapped_column(String(16), default=DuplicatePolicy.SKIP.value)
    # Notifications when its imports end; None (or an empty list) in each: the global default (NOTIFY_*).
    notify_webhook_url: Mapped[str | None] = mapped_column(Text)
    notify_email: Mapped[list | None] = mapped_column(JSON)  # addresses
    notify_on: Mapped[list | None] = mapped_column(JSON)  # Ending values
    created_by: Mapped[str] = mapped_column(Text, default=ANONYMOUS_USER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HeaderMapping(db.Model):
    """Mapping memory: the mapping last used for a file with this set of headers, suggested for the next one."""

    __tablename__ = "header_mappings"

    header_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # a digest of the normalised header set
    columns: Mapped[list] = mapped_column(JSON)  # the headers as last seen
    mapping: Mapped[dict] = mapped_column(JSON)  # ColumnMapping.to_json()
    used_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ImportPreview(db.Model):
    """A checked upload kept after its preview, until "Start import" names its token or PREVIEW_TTL_MINUTES pass."""

    __tablename__ = "import_previews"
    __table_args__ = (Index("ix_import_previews_expires_at", "expires_at"),)

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(Text)  # the stored upload's key (services/storage.py)
    source: Mapped[str] = mapped_column(String(255))  # the file's display name
    options: Mapped[dict] = mapped_column(JSON)  # how it was read: format, encoding, delimiter, sheet, mapping...
    created_by: Mapped[str] = mapped_column(Text, default=ANONYMOUS_USER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class UploadChunk(db.Model):
    """One block of an upload kept in the database (UPLOAD_STORAGE = "database"), so every instance can read it."""

    __tablename__ = "upload_chunks"

    upload_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # the name in the job's "db:" key
    sequence: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # 0, 1, 2... in file order
    data: Mapped[bytes] = mapped_column(LargeBinary)  # UPLOAD_CHUNK_KB of the file (the last chunk may be shorter)


class RunOutcome(str, Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RELEASED = "released"  # its process shut down; another run goes on from there
    PAUSED = "paused"  # someone paused the job; a run after it is unpaused goes on from there
    INTERRUPTED = "interrupted"  # it stopped without a word (its process died, or the database stayed away)


class RunKind(str, Enum):
    IMPORT = "import"  # the first run, or a run that took over a stopped one
    RETRY = "retry"  # the failed deliveries of a completed import, sent again
    RESUME = "resume"  # a failed or cancelled import going on from where it stopped


class JobRun(db.Model):
    """One run of a job: when it ran, how it ended and why, and what it delivered."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "import", "retry" or "resume"
    owner: Mapped[str] = mapped_column(String(64))  # the process that ran it
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))  # a RunOutcome value, once it ended
    reason: Mapped[str | None] = mapped_column(Text)  # why it ended so, written for people
    sent: Mapped[int] = mapped_column(default=0)  # records that got a verdict from the downstream in this run
    succeeded: Mapped[int] = mapped_column(default=0)
    refused: Mapped[int] = mapped_column(default=0)

    def to_dict(self):
        return {
            "id": self.id,
            "kind": self.kind,
            "started_at": isoformat(self.started_at),
            "ended_at": isoformat(self.ended_at),
            "outcome": self.outcome,
            "reason": self.reason,
            "sent": self.sent,
            "succeeded": self.succeeded,
            "refused": self.refused,
        }


class OutboxEvent(db.Model):
    """A job event announced for the other processes on one SQLite file, which read the table every
    EVENT_RELAY_POLL_SECONDS (PostgreSQL and Redis carry announcements themselves); rows go after a minute."""

    __tablename__ = "event_outbox"
    # AUTOINCREMENT: ids are never reused once old rows are deleted, so a reader that remembers the last id it
    # read never mistakes a new row for one it has seen.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    origin: Mapped[str] = mapped_column(String(64))  # the process that announced it, which does not read it back
    # No foreign key: an announcement may outlive its job (clear-records), and readers find no job then.
    job_id: Mapped[int]
    name: Mapped[str] = mapped_column(String(32))  # the event's name, e.g. job.progress
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def isoformat(moment):
    return None if moment is None else moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


class RateLimit(db.Model):
    """One downstream's shared rate limit, 429 pause and circuit breaker, for every process that calls it.

    Times are the database's clock in seconds since the epoch, so the machines' own clocks never matter.
    """

    __tablename__ = "rate_limits"

    # "simulated", or "webhook:" and a digest of the URL (a URL may carry a token, so it is never stored).
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # GCRA's theoretical arrival time: each grant reserves the next slot by moving it on by 1 / rate.
    tat: Mapped[float] = mapped_column(Double, default=0.0)
    paused_until: Mapped[float] = mapped_column(Double, default=0.0)  # a 429's Retry-After, for everyone
    failures: Mapped[int] = mapped_column(default=0)  # failed calls in a row, from any process
    probe_at: Mapped[float | None] = mapped_column(Double)  # the breaker is open: the next probe call's time


class SourceKind(str, Enum):
    """Where a schedule fetches its file from (services/sources.py)."""

    PATH = "path"  # a file, or the newest file a glob matches, under IMPORT_ROOT
    URL = "url"  # an HTTP(S) URL on a public address (unless SCHEDULE_ALLOW_PRIVATE_URLS)
    S3 = "s3"  # an object, s3://bucket/key, read with the configured S3 settings


class ScheduleOutcome(str, Enum):
    STARTED = "started"  # its file was fetched and checked, and its import was created
    FAILED = "failed"  # its source or file was refused: the run's error says why, and no import was created


class Schedule(db.Model):
    """An import that starts itself: a template, a source to fetch the file from, a cron expression in a zone."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("import_templates.id", ondelete="RESTRICT"))
    source_kind: Mapped[str] = mapped_column(String(8))  # a SourceKind value
    source: Mapped[str] = mapped_column(Text)  # the path or glob, the URL, or s3://bucket/key
    mode: Mapped[str] = mapped_column(String(16))  # JobMode.BATCH or JobMode.STREAM
    cron: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64))  # an IANA zone; the cron expression is read in it
    paused: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(Text, default=ANONYMOUS_USER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_run_at: Mapped[datetime | None]  # UTC: the due time of the latest run
    next_run_at: Mapped[datetime | None]  # UTC: the next due time (None while paused)
    last_job_id: Mapped[int | None] = mapped_column(ForeignKey("import_jobs.id", ondelete="SET NULL"))
    last_error: Mapped[str | None] = mapped_column(Text)  # why the latest run failed; None after one that started

    template: Mapped[ImportTemplate] = relationship(lazy="joined")


class ScheduleRun(db.Model):
    """One due time of a schedule, claimed by the instance that inserted it: the unique (schedule_id, due_at) makes
    exactly one instance run each due time, however many poll at once."""

    __tablename__ = "schedule_runs"
    __table_args__ = (
        UniqueConstraint("schedule_id", "due_at", name="uq_schedule_runs_schedule_id_due_at"),
        Index("ix_schedule_runs_schedule_id_id", "schedule_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    due_at: Mapped[datetime]  # UTC; "run now" uses the moment it was asked
    claimed_by: Mapped[str] = mapped_column(String(64))  # the process (or "cli", "api") that ran it
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("import_jobs.id", ondelete="SET NULL"))
    outcome: Mapped[str | None] = mapped_column(String(16))  # a ScheduleOutcome value, once it ended
    error: Mapped[str | None] = mapped_column(Text)  # why it failed, written for people


class Ending(str, Enum):
    """How an import ended, as notifications tell it (services/notifications.py ending())."""

    COMPLETED = "completed"  # it ran to the end and the downstream refused no record
    COMPLETED_WITH_FAILURES = "completed_with_failures"  # it ran to the end, and some or all records were refused
    FAILED = "failed"
    CANCELLED = "cancelled"


class DeliveryChannel(str, Enum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class DeliveryStatus(str, Enum):
    PENDING = "pending"  # waits for its next attempt (next_attempt_at), or is being sent by the process that took it
    SENT = "sent"
    FAILED = "failed"  # given up after NOTIFY_MAX_ATTEMPTS, or refused for good; last_error says why


class NotificationDelivery(db.Model):
    """One notification of one import's ending, to one webhook or email address, and how sending it went.

    Written in the transaction that ends the import, so it is never lost; sent by any serving process that
    claims it (next_attempt_at moved on by NOTIFY_CLAIM_SECONDS), on the database's clock.
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_job_id_id", "job_id", "id"),
        Index("ix_notification_deliveries_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Sent as X-Importdash-Id with every attempt, so a receiver drops a repeat.
    key: Mapped[str] = mapped_column(String(32), default=lambda: uuid.uuid4().hex, unique=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"))
    ending: Mapped[str] = mapped_column(String(32))  # an Ending value
    channel: Mapped[str] = mapped_column(String(16))  # a DeliveryChannel value
    # Where it goes, as shown: an email address, or the URL without credentials, query or fragment.
    target: Mapped[str] = mapped_column(Text)
    # Where it goes, in full (a URL may carry a token): used to send, never shown.
    address: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)  # why the last attempt failed, for people
    response_status: Mapped[int | None]  # the webhook's last HTTP status, or the SMTP server's last reply code
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    def to_dict(self):
        return {
            "id": self.id,
            "key": self.key,
            "job_id": self.job_id,
            "ending": self.ending,
            "channel": self.channel,
            "target": self.target,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": isoformat(self.next_attempt_at) if self.status == DeliveryStatus.PENDING.value else None,
            "last_error": self.last_error,
            "response_status": self.response_status,
            "created_at": isoformat(self.created_at),
            "sent_at": isoformat(self.sent_at),
        }


class User(db.Model):
    """A named person who signs in to the dashboard, or whose API keys scripts send; role is a roles.Role value."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text)  # werkzeug's generate_password_hash; None: keys only
    role: Mapped[str] = mapped_column(String(16))
    disabled_at: Mapped[datetime | None]  # a disabled user can neither sign in nor use a key
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_dict(self):
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "disabled": self.disabled_at is not None,
            "disabled_at": isoformat(self.disabled_at),
            "created_at": isoformat(self.created_at),
        }


class ApiKey(db.Model):
    """A user's key for scripts, sent as a Bearer token. Only its SHA-256 is kept; its prefix names it in lists."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))  # what the key is for, in its owner's words
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, shown so people can tell keys apart
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the whole key
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def to_dict(self, user_name):
        return {
            "id": self.id,
            "user": user_name,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": isoformat(self.created_at),
            "last_used_at": isoformat(self.last_used_at),
            "revoked": self.revoked_at is not None,
            "revoked_at": isoformat(self.revoked_at),
        }


class AuditEvent(db.Model):
    """One entry of the audit trail: who did what, to what, when and from where. Rows are only ever added."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at_id", "at", "id"),
        Index("ix_audit_events_actor", "actor"),
        Index("ix_audit_events_action", "action"),
        Index("ix_audit_events_target", "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))  # the user's name, the Basic user, "anonymous" or "cli:<login>"
    role: Mapped[str | None] = mapped_column(String(16))  # the actor's role then (None: the command line)
    ip: Mapped[str | None] = mapped_column(String(64))  # request.remote_addr after ProxyFix (None: the command line)
    user_agent: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))  # e.g. import.start, user.create
    target_type: Mapped[str | None] = mapped_column(String(32))  # e.g. import, user, api_key
    target_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict | None] = mapped_column(JSON)

    def to_dict(self):
        return {
            "id": self.id,
            "at": isoformat(self.at),
            "actor": self.actor,
            "role": self.role,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "details": self.details,
        }
