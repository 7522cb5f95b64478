"""Run one import job: read, validate, stage and deliver, the way its mode asks."""

import logging
import time
from dataclasses import dataclass
from itertools import islice

from ..models import ErrorCategory, JobMode, JobStatus
from .ledger import JobLedger, LeaseLost
from .reader import CsvSource
from .streams import JOB_FINISHED, JOB_PROGRESS, publish_job
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
    heartbeat_interval: float

    @classmethod
    def from_config(cls, config):
        return cls(
            chunk_size=config["CHUNK_SIZE"],
            stage_batch_size=config["STAGE_BATCH_SIZE"],
            records_per_call=config["RECORDS_PER_CALL"],
            delivery_window=max(config["DELIVERY_WINDOW"], config["RECORDS_PER_CALL"]),
            progress_interval=config["PROGRESS_INTERVAL_SECONDS"],
            lease_seconds=config["LEASE_SECONDS"],
            heartbeat_interval=config["HEARTBEAT_SECONDS"],
        )


class Stopped(Exception):
    """The job was asked to stop (cancelled, or the process is shutting down)."""


class Importer:
    """Carry one leased job from its file to the downstream; every write goes through the ledger."""

    def __init__(self, ledger: JobLedger, *, settings, deliverer, broker, stop_requested, clock=time.monotonic):
        self.ledger = ledger
        self.settings = settings
        self.deliverer = deliverer
        self.broker = broker
        self.stop_requested = stop_requested  # this process asks the job to stop (shutdown, or a cancel here)
        self.clock = clock
        self.cancelled = False  # a cancel request reached the job through the database
        self._notice = None
        self._last_publish = float("-inf")
        self._last_heartbeat = clock()
        self._delivered_through = 0  # the row of the last record sent in this run; claims start after it

    def run(self):
        """Import the whole file, resuming after the last staged row if the job ran before."""
        job = self.ledger.job()
        key, mode, cursor = job.key, JobMode(job.mode), job.cursor
        path, encoding, delimiter = job.path, job.encoding, job.delimiter
        self.key_prefix = key
        self.cancelled = job.cancel_requested
        self._check_stop()
        self.publish(force=True)
        if job.retries:
            # A retry of a completed job: its file was read to the end; only its failed records go out again.
            self._deliver()
            return
        with CsvSource(path, encoding, delimiter) as source:
            rows = source.rows(start_after=cursor)
            if mode is JobMode.BATCH:
                # Phase 1 stages everything, so the total and every validation error are known before delivery.
                while self._stage(islice(rows, self.settings.stage_batch_size)) is not None:
                    self._check_stop()
                self.ledger.set_total()
                self.publish(force=True)
                self.ledger.refresh_statistics()
                self._deliver()
            elif mode is JobMode.STREAM:
                # Each chunk's records are stored in flight and go out at once: one commit per chunk, which
                # matters because every commit rewrites the pages of the unique email index that it touched.
                # A chunk's last verdicts are committed with the next chunk.
                self._deliver()  # what a stopped run left in flight goes first
                while (records := self._stage(islice(rows, self.settings.chunk_size), in_flight=True)) is not None:
                    self._check_stop()
                    self._send(records, hold_last_settle=True)
                self.ledger.set_total()
            else:
                # Default: rows are stored as read; a call goes out as soon as a call's worth of records waits.
                while self._stage(islice(rows, self.settings.records_per_call)) is not None:
                    self._deliver(whole_calls_only=True)
                self.ledger.set_total()
                self._deliver()

    def should_stop(self):
        """True once the job must stop; renews the lease and looks for a cancel request every heartbeat."""
        if self.stop_requested() or self.cancelled:
            return True
        if self.clock() - self._last_heartbeat >= self.settings.heartbeat_interval:
            self._last_heartbeat = self.clock()
            self.cancelled = self.ledger.heartbeat()
        return self.cancelled

    def _stage(self, rows, in_flight=False):
        """Validate and store one batch of rows; return the records stored, or None when no rows were left."""
        outcomes, last_row = [], None
        for source_row in rows:
            outcomes.append(self._validate(source_row))
            last_row = source_row.row
        if last_row is None:
            return None
        records = self.ledger.stage(outcomes, last_row=last_row, rows_read=len(outcomes), in_flight=in_flight)
        self.publish()
        return records

    @staticmethod
    def _validate(source_row):
        try:
            return validate(source_row)
        except Exception as exc:  # one odd row must never stop the job
            log.exception("unexpected failure validating row %s", source_row.row)
            return Rejection(source_row.row, ErrorCategory.OTHER.value, f"unexpected error: {exc}", source_row.data)

    def _deliver(self, *, whole_calls_only=False):
        """Claim the job's undelivered records a window at a time and send them, until none are left."""
        window = self.settings.delivery_window
        while True:
            self._check_stop()
            records = self.ledger.claim_for_delivery(window, after_row=self._delivered_through)
            if not self._send(records, whole_calls_only=whole_calls_only) or len(records) < window:
                return

    def _send(self, records, *, whole_calls_only=False, hold_last_settle=False):
        """Send records committed in flight, one call at a time, settling verdicts at least every interval.

        Returns False when it kept back the last, partial call (whole_calls_only): those records stay in flight
        and are claimed again with the next ones. With hold_last_settle the last verdicts stay in the open
        transaction, for the caller's next write to commit.
        """
        per_call = self.settings.records_per_call
        settled, last_flush = [], self.clock()
        for start in range(0, len(records), per_call):
            call = records[start : start + per_call]
            if whole_calls_only and len(call) < per_call:
                self._settle(settled)
                return False
            outcomes = self.deliverer.deliver(
                [self._payload(record) for record in call], should_stop=self.should_stop, on_notice=self._set_notice
            )
            if outcomes is None:  # the call stays in flight and goes out again, with the same keys, on resume
                self._settle(settled)
                raise Stopped
            settled.extend(zip(call, outcomes))
            self._delivered_through = call[-1]["row"]
            if self.clock() - last_flush >= self.settings.progress_interval:
                self._settle(settled)
                settled, last_flush = [], self.clock()
        if hold_last_settle:
            self.ledger.settle(settled, commit=False)
        else:
            self._settle(settled)
        return True

    def _settle(self, settled):
        self.ledger.settle(settled)
        self.publish()

    def _payload(self, record):
        return {
            "key": self.record_key(record),
            "name": record["name"],
            "email": record["email"],
            "company": record["company"],
        }

    def record_key(self, record):
        """The record's idempotency key: the same on every attempt and across restarts."""
        return f"{self.key_prefix}-{record['row']}"

    def _set_notice(self, notice):
        if notice != self._notice:
            self._notice = notice
            self.ledger.set_notice(notice)
            self.publish(force=True)

    def _check_stop(self):
        if self.should_stop():
            raise Stopped

    def publish(self, *, force=False, name=JOB_PROGRESS):
        """Announce the job's committed state, at most once per progress interval unless forced."""
        now = self.clock()
        if not force and now - self._last_publish < self.settings.progress_interval:
            return
        self._last_publish = now
        publish_job(self.broker, self.ledger.session, self.ledger.job_id, name)


def run_job(job_id, *, session, owner, settings, deliverer, broker, should_stop, cancel_requested):
    """Run a job to a terminal state (or leave it resumable on shutdown); never raises."""
    ledger = JobLedger(session, job_id, owner, settings.lease_seconds)
    if not ledger.claim():
        log.info("import #%s is not runnable here (finished, or leased by another process)", job_id)
        return
    importer = Importer(ledger, settings=settings, deliverer=deliverer, broker=broker, stop_requested=should_stop)
    try:
        importer.run()
    except Stopped:
        _end(ledger, broker, ledger.cancel if importer.cancelled or cancel_requested() else ledger.release)
        return
    except LeaseLost:
        session.rollback()
        log.warning("import #%s: lease lost; the process that took it over carries on", job_id)
        return
    except Exception as exc:
        log.exception("import #%s failed", job_id)
        session.rollback()
        _end(ledger, broker, ledger.finish, JobStatus.FAILED, f"{type(exc).__name__}: {exc}")
        return
    _end(ledger, broker, ledger.finish, JobStatus.COMPLETED)


def _end(ledger, broker, end, *args):
    """Record how the run ended, log it and announce it; a failure to record it is logged, never raised.

    end(*args) returns the job's terminal status, or None when the job stays resumable (shutdown).
    """
    try:
        status = end(*args)
    except Exception:
        log.exception("could not record the end of import #%s", ledger.job_id)
        return
    if status is None:
        log.info("import #%s paused for shutdown; it resumes when the app starts again", ledger.job_id)
        publish_job(broker, ledger.session, ledger.job_id)
        return
    error = ledger.job().error
    log.info("import #%s ended %s%s", ledger.job_id, status.value, f": {error}" if error else "")
    publish_job(broker, ledger.session, ledger.job_id, JOB_FINISHED)
