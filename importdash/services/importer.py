"""Run one import job: read, validate, stage and deliver, the way its mode asks."""

import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from itertools import islice
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import ApiError
from ..models import DuplicatePolicy, ErrorCategory, JobAction, JobMode, JobStatus
from .broker import EventBroker
from .bucket import STOP_CHECK_SECONDS
from .delivery import Deliverer
from .jobs import open_job_file, publish_job, remove_ended_uploads
from .ledger import Claimed, DatabaseUnavailable, JobLedger, LeaseLost, OutagePolicy, Verdicts
from .notifications import NotificationDefaults
from .rows import SourceRow
from .storage import StoreUnavailable, UploadStorage
from .streams import JOB_FINISHED, JOB_PROGRESS
from .telemetry import NO_TELEMETRY, Telemetry
from .validator import Rejection, validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportSettings:
    chunk_size: int
    stage_batch_size: int
    staging_cache_mb: float
    records_per_call: int
    delivery_window: int
    progress_interval: float
    lease_seconds: float
    heartbeat_interval: float
    outages: OutagePolicy
    upload_retention_hours: float
    notifications: NotificationDefaults

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ImportSettings":
        return cls(
            chunk_size=config["CHUNK_SIZE"],
            stage_batch_size=config["STAGE_BATCH_SIZE"],
            staging_cache_mb=config["SQLITE_STAGING_CACHE_MB"],
            records_per_call=config["RECORDS_PER_CALL"],
            delivery_window=max(config["DELIVERY_WINDOW"], config["RECORDS_PER_CALL"]),
            progress_interval=config["PROGRESS_INTERVAL_SECONDS"],
            lease_seconds=config["LEASE_SECONDS"],
            heartbeat_interval=config["HEARTBEAT_SECONDS"],
            outages=OutagePolicy.from_config(config),
            upload_retention_hours=config["UPLOAD_RETENTION_HOURS"],
            notifications=NotificationDefaults.from_config(config),
        )


@dataclass(frozen=True)
class JobContext:
    """What every run of a job needs from its process: the session, settings, deliverer, broker and storage."""

    session: Session
    owner: str  # names this process in job leases
    settings: ImportSettings
    deliverer: Deliverer
    broker: EventBroker
    # Where the job's file is read from and deleted; by default the runtime's of the app the run's context is of.
    storage: UploadStorage
    telemetry: Telemetry = NO_TELEMETRY  # the process's metrics and traces


class StopReason(str, Enum):
    CANCEL = "cancel"  # someone cancelled the job: it ends cancelled
    PAUSE = "pause"  # someone paused the job: it waits, paused, and gives up its slot until it is unpaused
    SHUTDOWN = "shutdown"  # the process is stopping: the job stays resumable


class StopSignal:
    """Tell a running job whether to stop, and why; set by its runner, read by the job between its steps."""

    def __init__(self, shutdown: threading.Event):
        self._shutdown = shutdown
        self._cancelled = threading.Event()
        self._paused = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def pause(self) -> None:
        self._paused.set()

    @property
    def reason(self) -> StopReason | None:
        """Why the job must stop, or None while it may go on; a cancel wins over a pause, a pause over a shutdown
        (a paused job must stay paused when its process stops)."""
        if self._cancelled.is_set():
            return StopReason.CANCEL
        if self._paused.is_set():
            return StopReason.PAUSE
        if self._shutdown.is_set():
            return StopReason.SHUTDOWN
        return None


class Stopped(Exception):
    """The job stopped at its stop signal."""

    def __init__(self, reason: StopReason):
        super().__init__(reason.value)
        self.reason = reason


class Importer:
    """Carry one leased job from its file to the downstream; every write goes through the ledger."""

    def __init__(self, ledger: JobLedger, context: JobContext, stop: StopSignal, *, clock=time.monotonic):
        self.ledger = ledger
        self.settings = context.settings
        self.deliverer = context.deliverer
        self.broker = context.broker
        self.storage = context.storage
        self.telemetry = context.telemetry
        self.stop = stop
        self.clock = clock
        # Verdicts received but not yet written: the last ones of a window or a stream chunk go in with the job's
        # next write (the next claim or chunk, the total, the run's end), one commit fewer each.
        self.unsettled: Verdicts = []
        self._notice = None
        self._last_publish = float("-inf")
        self._last_heartbeat = clock()
        self._delivered_through = 0  # the row of the last record sent; claims start after it

    def run(self) -> str | None:
        """Import the whole file, resuming after the last staged row if the job ran before.

        Returns what people should know about a run that completed without reading the whole file, else None.
        """
        job = self.ledger.job()
        key, mode, cursor = job.key, JobMode(job.mode), job.cursor
        self.key_prefix = key
        self.on_duplicate = DuplicatePolicy(job.duplicate_policy)
        if job.cancel_requested:
            self.stop.cancel()
        if job.pause_requested:
            self.stop.pause()
        self._check_stop()
        self.publish(force=True)
        if job.retries:
            # A retry of a completed job: its file was read to the end; only its failed records go out again,
            # scattered among its settled ones.
            self.ledger.requeue_refused()
            self._deliver()
            return None
        self.ledger.requeue_cancelled()  # a resumed job's cancelled records go out again, through dedupe
        self._delivered_through = job.settled_through  # every record up to it has its verdict
        if job.upload_removed_at is not None:
            # Resumed after its upload was deleted: what was staged goes out; the rest of the file is not there.
            self._deliver()
            unread = job.total_records is None
            self._set_total()
            if unread:
                return (
                    f"The upload was deleted before this import was resumed, so rows after row {cursor} were "
                    "never read; import the file again for them."
                )
            return None
        with open_job_file(job, self.storage) as source:
            rows = source.rows(start_after=cursor)
            if mode is JobMode.BATCH:
                # Phase 1 stages everything, so the total and every validation error are known before delivery.
                with (
                    ReadAhead(validated_batches(rows, self.settings.stage_batch_size)) as batches,
                    self.ledger.widened_cache(self.settings.staging_cache_mb),
                ):
                    for outcomes, last_row in batches:
                        self._stage(outcomes, last_row)
                        self._check_stop()
                self._set_total()
                self.publish(force=True)
                self.ledger.refresh_statistics()
                self._deliver()
            elif mode is JobMode.STREAM:
                # Each chunk's records are stored with the sent watermark past them and go out at once: one commit
                # per chunk, which matters because every commit rewrites the pages of the unique email index that
                # it touched. A chunk's last verdicts are committed with the next chunk.
                self._deliver()  # what a stopped run left in flight goes first
                with ReadAhead(validated_batches(rows, self.settings.chunk_size)) as chunks:
                    for outcomes, last_row in chunks:
                        records = self._stage(outcomes, last_row, in_flight=True)
                        self._check_stop()
                        self._send(records)
                self._set_total()
            else:
                # Default: rows are stored as read; a call goes out as soon as a call's worth of records waits.
                for outcomes, last_row in validated_batches(rows, self.settings.records_per_call):
                    self._stage(outcomes, last_row)
                    self._deliver(whole_calls_only=True)
                self._set_total()
                self._deliver()

    def stop_requested(self) -> bool:
        """True once the job must stop; renews the lease every heartbeat, which also brings cancels and pauses from
        any process."""
        if self.stop.reason is None and self.clock() - self._last_heartbeat >= self.settings.heartbeat_interval:
            self._last_heartbeat = self.clock()
            asked = self.ledger.renew_lease()
            if asked is JobAction.CANCEL:
                self.stop.cancel()
            elif asked is JobAction.PAUSE:
                self.stop.pause()
        return self.stop.reason is not None

    def _check_stop(self):
        if self.stop_requested():
            raise Stopped(self.stop.reason)

    def _stage(self, outcomes, last_row, in_flight=False):
        """Store one batch of validated rows, up to last_row; return the records stored."""
        with self.telemetry.span("importdash.chunk", rows=len(outcomes), last_row=last_row):
            records = self.ledger.stage(
                outcomes,
                last_row=last_row,
                rows_read=len(outcomes),
                in_flight=in_flight,
                settled=self.unsettled,
                on_duplicate=self.on_duplicate,
            )
        self.unsettled = []  # committed with the chunk; until then a failure hands them to the job's last write
        self.publish()
        return records

    def _deliver(self, *, whole_calls_only=False):
        """Claim the job's undelivered records a window at a time and send them, until none are left.

        Each claim commits the verdicts of the window before it; the last window's verdicts wait in self.unsettled
        for the job's next write.
        """
        window = self.settings.delivery_window
        while True:
            self._check_stop()
            records = self.ledger.claim_for_delivery(window, after_row=self._delivered_through, settled=self.unsettled)
            self.unsettled = []  # committed with the claim; until then a failure hands them to the job's last write
            if not self._send(records, whole_calls_only=whole_calls_only) or len(records) < window:
                return

    def _send(self, records, *, whole_calls_only=False):
        """Send records committed in flight, one call at a time, settling verdicts at least every interval.

        The verdicts received since the last settle are left in self.unsettled, for the job's next write (a claim,
        a stream chunk, the total, its end) to commit. Returns False when it kept back the last, partial call
        (whole_calls_only): those records stay in flight and are claimed again with the next ones.
        """
        per_call = self.settings.records_per_call
        last_flush = self.clock()
        for start in range(0, len(records), per_call):
            call = records[start : start + per_call]
            if whole_calls_only and len(call) < per_call:
                return False
            outcomes = self.deliverer.deliver(
                [self._payload(record) for record in call],
                should_stop=self.stop_requested,
                on_notice=self._set_notice,
            )
            if outcomes is None:  # the call stays in flight and goes out again, with the same keys, on resume
                raise Stopped(self.stop.reason)
            self.unsettled.extend(zip(call, outcomes, strict=True))
            self._delivered_through = call[-1].row
            if self.clock() - last_flush >= self.settings.progress_interval:
                self.ledger.settle(self.unsettled)
                self.unsettled = []
                self.publish()
                last_flush = self.clock()
        return True

    def _set_total(self):
        """Fix the job's total, with the verdicts not yet written."""
        self.ledger.set_total(settled=self.unsettled)
        self.unsettled = []

    def _payload(self, record):
        """The record as the downstream gets it (README, "Delivery and restarts"): an update says so."""
        return {
            "key": self.record_key(record),
            "operation": "update" if record.version > 1 else "create",
            "version": record.version,
            "name": record.name,
            "email": record.email,
            "company": record.company,
            "extra": record.extra or {},
        }

    def record_key(self, record: Claimed) -> str:
        """The record's idempotency key: the same on every attempt and across restarts; an update's ends in its
        version (-v2), so the downstream never takes it for a repeat of the record's first delivery."""
        key = f"{self.key_prefix}-{record.row}"
        return key if record.version == 1 else f"{key}-v{record.version}"

    def _set_notice(self, notice):
        if notice != self._notice:
            self._notice = notice
            self.ledger.set_notice(notice)
            self.publish(force=True)

    def publish(self, *, force: bool = False, name: str = JOB_PROGRESS) -> None:
        """Announce the job's committed state, at most once per progress interval unless forced."""
        now = self.clock()
        if not force and now - self._last_publish < self.settings.progress_interval:
            return
        self._last_publish = now
        try:
            publish_job(self.broker, self.ledger.session, self.ledger.job_id, name)
        except SQLAlchemyError as error:  # progress is announced again with the next commit; the job goes on
            log.warning("import #%s: progress not announced: %s", self.ledger.job_id, error)
            self.ledger.session.rollback()


def validated_batches(rows: Iterator[SourceRow], size: int) -> Iterator[tuple[list, int]]:
    """Validate rows a batch of up to `size` at a time; yield each batch's outcomes and its last row."""
    while outcomes := [_validate(source_row) for source_row in islice(rows, size)]:
        yield outcomes, outcomes[-1].row


def _validate(source_row):
    try:
        return validate(source_row)
    except Exception as exc:  # one odd row must never stop the job
        log.exception("unexpected failure validating row %s", source_row.row)
        return Rejection(source_row.row, ErrorCategory.OTHER.value, f"unexpected error: {exc}", source_row.data)


class ReadAhead:
    """Run an iterator on a thread of its own, one item ahead of its consumer, as a context manager.

    A batch import reads and validates its next batch while the one before is written: the database works in a
    process of its own (PostgreSQL) or with the GIL let go (sqlite3), so Python's work and the database's overlap,
    on two cores. Memory holds one batch more. An error of the iterator is raised to the consumer; leaving the
    block early stops the thread after the item it is on.
    """

    _END = object()

    def __init__(self, items: Iterator):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="importdash-read-ahead", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._closed.set()
        self._thread.join()

    def __iter__(self):
        while True:
            item, error = self._queue.get()
            if error is not None:
                raise error
            if item is self._END:
                return
            yield item

    def _produce(self):
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except Exception as error:  # the consumer raises it, in the job's thread
            self._put((self._END, error))

    def _put(self, entry) -> bool:
        """Hand an entry over once the consumer took the one before; False if it left first."""
        while not self._closed.is_set():
            try:
                self._queue.put(entry, timeout=STOP_CHECK_SECONDS)
                return True
            except queue.Full:
                continue
        return False


def run_job(job_id: int, context: JobContext, stop: StopSignal) -> None:
    """Run a job to a terminal state (or leave it resumable on shutdown); never raises."""
    settings = context.settings
    ledger = JobLedger(
        context.session,
        job_id,
        context.owner,
        settings.lease_seconds,
        outages=settings.outages,
        notifications=settings.notifications,
    )
    try:
        claimed = ledger.claim()
    except DatabaseUnavailable as outage:
        log.warning("import #%s not started: %s; it starts once the database answers", job_id, outage)
        return
    if not claimed:
        log.info("import #%s is not runnable here (finished, or leased by another process)", job_id)
        return
    importer = Importer(ledger, context, stop)
    error = None
    try:
        ledger.start_run()
        error = importer.run()
        action = JobAction.COMPLETE
    except Stopped as stopped:
        action = _STOP_ACTIONS[stopped.reason]
    except LeaseLost:
        context.session.rollback()
        log.warning("import #%s: lease lost; the process that took it over carries on", job_id)
        return
    except DatabaseUnavailable as outage:
        # Nothing can be written: the lease runs out by itself, and once the database answers a process with a free
        # slot claims the import and goes on from its last commit; records left in flight go out again, same keys.
        log.warning("import #%s stopped: %s; it resumes once the database answers", job_id, outage)
        return
    except Exception as exc:
        log.exception("import #%s failed", job_id)
        context.session.rollback()
        action, error = JobAction.FAIL, describe_failure(exc, job_id)
    if _end(ledger, context.broker, action, error, importer.unsettled, context.telemetry) is JobStatus.COMPLETED:
        try:  # no run of a completed job needs its file any more (a kept upload goes at a later upload sweep)
            remove_ended_uploads(
                context.session,
                storage=context.storage,
                retention_hours=settings.upload_retention_hours,
                resume_hours=settings.upload_retention_hours,
                job_id=job_id,
            )
        except Exception:
            log.exception("import #%s: could not delete its upload; the upload sweep tries again", job_id)


# How a run that stopped at its stop signal ends.
_STOP_ACTIONS = {
    StopReason.CANCEL: JobAction.CANCEL,
    StopReason.PAUSE: JobAction.PAUSE,
    StopReason.SHUTDOWN: JobAction.RELEASE,
}


def describe_failure(error: Exception, job_id: int) -> str:
    """Say why a job failed in words for the people who run imports: no SQL, parameters, paths or traces.

    The log keeps the exception itself, with the job's id.
    """
    if isinstance(error, ApiError):  # raised with a message written for people (a file that cannot be read)
        return error.message
    if isinstance(error, FileNotFoundError):
        return "The file to import is gone (deleted or moved); import it again."
    if isinstance(error, StoreUnavailable):
        return (
            "The file to import is kept in storage this server is not set up to read; resume the import on a "
            "server that is, or import the file again."
        )
    if type(error).__module__.startswith(("botocore", "boto3", "s3transfer")):
        return "The file to import could not be read from the storage bucket; resume the import once it answers."
    if isinstance(error, UnicodeDecodeError):
        return "The file no longer decodes as it did when it was checked (was it changed?); import it again."
    if isinstance(error, OSError):
        return "The file to import could not be read; import it again."
    if isinstance(error, SQLAlchemyError):
        return (
            f"The database refused a write, so the import stopped; the server log has the details (import #{job_id})."
        )
    return f"An unexpected error stopped the import; the server log has the details (import #{job_id})."


def _end(ledger, broker, action, error, settled, telemetry):
    """Record how the run ended, with the verdicts not yet written, log it and announce it; never raises.

    Returns the job's terminal status, or None when it did not end (it stays resumable, or is another's).
    """
    try:
        if action is JobAction.RELEASE:
            ledger.release(settled=settled)
        elif action is JobAction.PAUSE:
            ledger.pause(settled=settled)
        else:
            ledger.finish(action, error=error, settled=settled)
    except Exception:
        log.exception("could not record the end of import #%s", ledger.job_id)
        return None
    if action is JobAction.RELEASE:
        log.info("import #%s paused for shutdown; it resumes when the app starts again", ledger.job_id)
        publish_job(broker, ledger.session, ledger.job_id)
        return None
    if action is JobAction.PAUSE:
        log.info("import #%s paused by request; it goes on once it is unpaused", ledger.job_id)
        publish_job(broker, ledger.session, ledger.job_id)
        return None
    job = ledger.job()
    telemetry.job_ended(job, ledger.session)
    log.info("import #%s ended %s%s", ledger.job_id, job.status, f": {job.error}" if job.error else "")
    publish_job(broker, ledger.session, ledger.job_id, JOB_FINISHED)
    return JobStatus(job.status)
