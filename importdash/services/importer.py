"""Run one import job: read, validate, stage and deliver, the way its mode asks."""
import logging
import time
from dataclasses import dataclass
from itertools import islice

from ..models import ErrorCategory, JobMode, JobStatus
from .downstream import DownstreamError, Outcome
from .ledger import JobLedger, error_counts
from .reader import CsvSource
from .validator import Rejection, validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportSettings:
    chunk_size: int
    stage_batch_size: int
    records_per_call: int
    delivery_window: int
    progress_interval: float
    lease_seconds: float

    @classmethod
    def from_config(cls, config):
        return cls(
            chunk_size=config["CHUNK_SIZE"],
            stage_batch_size=config["STAGE_BATCH_SIZE"],
            records_per_call=config["RECORDS_PER_CALL"],
            delivery_window=max(config["DELIVERY_WINDOW"], config["RECORDS_PER_CALL"]),
            progress_interval=config["PROGRESS_INTERVAL_SECONDS"],
            lease_seconds=config["LEASE_SECONDS"],
        )


class Stopped(Exception):
    """The job was asked to stop (cancelled, or the process is shutting down)."""


class Importer:
    """Carry one leased job from its file to the downstream; every write goes through the ledger."""

    def __init__(self, ledger: JobLedger, *, settings, bucket, downstream, broker, should_stop, clock=time.monotonic):
        self.ledger = ledger
        self.settings = settings
        self.bucket = bucket
        self.downstream = downstream
        self.broker = broker
        self.should_stop = should_stop
        self.clock = clock
        self._last_publish = float("-inf")

    def run(self):
        """Import the whole file, resuming after the last staged row if the job ran before."""
        job = self.ledger.job()
        key, mode, path, cursor = job.key, JobMode(job.mode), job.path, job.cursor
        self.key_prefix = key
        self.publish(force=True)
        with CsvSource(path) as source:
            rows = source.rows(start_after=cursor)
            if mode is JobMode.BATCH:
                # Phase 1 stages everything, so the total and every validation error are known before delivery.
                while self._stage(islice(rows, self.settings.stage_batch_size)):
                    self._check_stop()
                self.ledger.set_total()
                self.publish(force=True)
                self._deliver()
            elif mode is JobMode.STREAM:
                # A chunk's rows commit with the in-flight marks of their first claim: one transaction instead
                # of two, which matters because every commit rewrites the unique email index's touched pages.
                while self._stage(islice(rows, self.settings.chunk_size), commit=False):
                    self._deliver()
                self.ledger.set_total()
                self._deliver()
            else:
                # Default: rows are stored as read; a call goes out as soon as a call's worth of records waits.
                while self._stage(islice(rows, self.settings.records_per_call)):
                    self._deliver(whole_calls_only=True)
                self.ledger.set_total()
                self._deliver()

    def _stage(self, rows, commit=True):
        """Validate and store one batch of rows; False when the file had no rows left."""
        outcomes, last_row = [], None
        for source_row in rows:
            outcomes.append(self._validate(source_row))
            last_row = source_row.row
        if last_row is None:
            return False
        self.ledger.stage(outcomes, last_row=last_row, rows_read=len(outcomes), commit=commit)
        if commit:  # progress is published only once committed
            self.publish()
        return True

    @staticmethod
    def _validate(source_row):
        try:
            return validate(source_row)
        except Exception as exc:  # one odd row must never stop the job
            log.exception("unexpected failure validating row %s", source_row.row)
            return Rejection(source_row.row, ErrorCategory.OTHER.value, f"unexpected error: {exc}", source_row.data)

    def _deliver(self, *, whole_calls_only=False):
        """Send the job's undelivered records, one call per token, settling verdicts at least every interval."""
        per_call, window = self.settings.records_per_call, self.settings.delivery_window
        while True:
            self._check_stop()
            records = self.ledger.claim_for_delivery(window)
            settled, last_flush = [], self.clock()
            stopped = waiting_for_rows = False
            for start in range(0, len(records), per_call):
                call = records[start : start + per_call]
                if whole_calls_only and len(call) < per_call:
                    waiting_for_rows = True  # these stay in flight and are claimed again with the next rows
                    break
                if not self.bucket.acquire(should_stop=self.should_stop):
                    stopped = True
                    break
                settled.extend(zip(call, self._send(call)))
                if self.clock() - last_flush >= self.settings.progress_interval:
                    self.ledger.settle(settled)
                    self.publish()
                    settled, last_flush = [], self.clock()
            self.ledger.settle(settled)
            self.publish()
            if stopped:
                raise Stopped
            if waiting_for_rows or len(records) < window:
                return

    def _send(self, call):
        payload = [
            {"key": self.record_key(r), "name": r["name"], "email": r["email"], "company": r["company"]} for r in call
        ]
        try:
            return self.downstream.send(payload)
        except DownstreamError as exc:
            return [Outcome(item["key"], False, f"downstream call failed: {exc}", None) for item in payload]

    def record_key(self, record):
        """The record's idempotency key: the same on every attempt and across restarts."""
        return f"{self.key_prefix}-{record['row']}"

    def _check_stop(self):
        if self.should_stop():
            raise Stopped

    def publish(self, *, force=False, name="job.progress"):
        """Announce the job's committed state, at most once per progress interval unless forced."""
        now = self.clock()
        if not force and now - self._last_publish < self.settings.progress_interval:
            return
        self._last_publish = now
        publish_job(self.broker, self.ledger.session, self.ledger.job_id, name)


def publish_job(broker, session, job_id, name="job.progress"):
    """Publish a job's committed state (the API's job shape plus its error counts)."""
    from ..models import ImportJob

    session.expire_all()
    job = session.get(ImportJob, job_id)
    if job is None:
        return
    payload = {"job": job.to_dict(), "error_counts": error_counts(session, job_id)}
    broker.publish(name, payload, job_id=job_id)


def run_job(job_id, *, session, owner, settings, bucket, downstream, broker, should_stop, cancel_requested):
    """Run a job to a terminal state (or leave it resumable on shutdown); never raises."""
    ledger = JobLedger(session, job_id, owner, settings.lease_seconds)
    if not ledger.claim():
        log.info("import #%s is not runnable here (finished, or leased by another process)", job_id)
        return
    importer = Importer(
        ledger, settings=settings, bucket=bucket, downstream=downstream, broker=broker, should_stop=should_stop
    )
    try:
        importer.run()
    except Stopped:
        if cancel_requested():
            _finish(ledger, broker, JobStatus.CANCELLED, "cancelled by request")
        else:
            log.info("import #%s paused for shutdown; it resumes when the app starts again", job_id)
            ledger.release()
        return
    except Exception as exc:
        log.exception("import #%s failed", job_id)
        session.rollback()
        _finish(ledger, broker, JobStatus.FAILED, f"{type(exc).__name__}: {exc}")
        return
    _finish(ledger, broker, JobStatus.COMPLETED)


def _finish(ledger, broker, status, error=None):
    try:
        ledger.finish(status, error)
    except Exception:
        log.exception("could not record the end of import #%s", ledger.job_id)
        return
    log.info("import #%s ended %s%s", ledger.job_id, status.value, f": {error}" if error else "")
    publish_job(broker, ledger.session, ledger.job_id, "job.finished")
