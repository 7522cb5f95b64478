"""Write a job's outcomes to the database: staged records, error rows and the counts, one transaction each."""

import logging
import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, String, and_, cast, delete, func, literal, or_, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm import Session

from ..models import (
    ERROR_COUNTERS,
    TRANSITIONS,
    DuplicatePolicy,
    ErrorCategory,
    ImportJob,
    JobAction,
    JobRun,
    JobStatus,
    Record,
    RecordStatus,
    RowError,
    RunKind,
    RunOutcome,
    awaiting_verdict,
    shown_status,
    statuses_allowing,
    stored,
    utcnow,
)
from .dialects import database_now, lease_expiry, statements_for
from .downstream import Outcome
from .notifications import NotificationDefaults, record_notifications
from .validator import Contact, Rejection

log = logging.getLogger(__name__)

# Appended with the record's id to the email key of a record that was cancelled, so that it no longer holds the
# email: a later import may store it. A key never holds a space (the validator refuses whitespace in emails).
SUPERSEDED_MARK = " #"

REFUSED = "the downstream refused the record"  # the error message of a refusal that gave no reason


class LeaseLost(Exception):
    """Another process now owns the job; this one must stop touching it."""


class DatabaseUnavailable(Exception):
    """The database did not answer within the outage deadline: the run stops, and its lease runs out."""

    def __init__(self, seconds: float):
        super().__init__(f"the database did not answer for {seconds:.0f} s")
        self.seconds = seconds


def is_transient(error: Exception) -> bool:
    """Whether a database error may pass by itself: a lost connection, a lock or statement timeout, a busy pool."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError | SQLAlchemyTimeoutError)


@dataclass(frozen=True)
class OutagePolicy:
    """How long a run waits for a database that does not answer, and how it spaces its tries meanwhile."""

    deadline: float
    backoff_base: float
    backoff_cap: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "OutagePolicy":
        return cls(
            deadline=config["DATABASE_OUTAGE_SECONDS"],
            backoff_base=config["DATABASE_RETRY_BACKOFF_BASE_SECONDS"],
            backoff_cap=config["DATABASE_RETRY_BACKOFF_CAP_SECONDS"],
        )

    def backoff(self, attempt: int, rand) -> float:
        """Full jitter: a uniform wait up to base * 2^attempt, capped."""
        return rand() * min(self.backoff_cap, self.backoff_base * 2**attempt)


@dataclass(frozen=True)
class Tally:
    """Changes to a job's counters, committed with the outcomes they count."""

    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    rows_read: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)  # error rows added (or, if negative, removed) per category

    def __add__(self, other):
        errors = Counter(self.errors)
        errors.update(other.errors)
        return Tally(
            processed=self.processed + other.processed,
            succeeded=self.succeeded + other.succeeded,
            failed=self.failed + other.failed,
            cancelled=self.cancelled + other.cancelled,
            rows_read=self.rows_read + other.rows_read,
            errors=dict(errors),
        )

    def assignments(self) -> dict[str, ColumnElement[int]]:
        """The job's column updates that apply this tally: only the counters it changes."""
        changes = {
            ImportJob.processed_count: self.processed,
            ImportJob.success_count: self.succeeded,
            ImportJob.failed_count: self.failed,
            ImportJob.cancelled_count: self.cancelled,
            ImportJob.rows_read: self.rows_read,
        }
        changes.update((ERROR_COUNTERS[category], n) for category, n in self.errors.items())
        return {column.key: column + n for column, n in changes.items() if n}


def tally_staged(error_categories: Iterable[str], *, rows_read: int) -> Tally:
    """Count a staged batch: each error row is a processed, failed row of its category."""
    errors = Counter(error_categories)
    rejected = sum(errors.values())
    return Tally(processed=rejected, failed=rejected, rows_read=rows_read, errors=dict(errors))


def tally_settled(verdicts: Iterable[tuple[bool, bool]], *, replaced_errors: int) -> Tally:
    """Count the downstream's verdicts, (retried, ok) per record, where replaced_errors error rows were dropped.

    A record's first verdict processes it. A retried record was counted failed already: success moves it to
    succeeded, and another refusal leaves it failed (its old error row replaced by the new one).
    """
    first_verdicts = first_failures = retried_successes = successes = refusals = 0
    for retried, ok in verdicts:
        successes += ok
        refusals += not ok
        if retried:
            retried_successes += ok
        else:
            first_verdicts += 1
            first_failures += not ok
    return Tally(
        processed=first_verdicts,
        succeeded=successes,
        failed=first_failures - retried_successes,
        errors={ErrorCategory.OTHER.value: refusals - replaced_errors},
    )


class Claimed(NamedTuple):
    """A record claimed for delivery (CLAIMED_COLUMNS), as claim_for_delivery() returns it: a tuple, as a window
    holds thousands."""

    id: int
    row: int
    name: str
    email: str
    company: str | None
    extra: dict | None
    version: int
    attempts: int


Verdicts = Sequence[tuple[Claimed, Outcome]]  # records as claim_for_delivery() returns them, each with its outcome


# Leases. Every lease is given and judged on the database's clock (database_now, lease_expiry), never on the
# clock of the machine asking, so machines whose clocks disagree still agree on who holds a job.


@dataclass(frozen=True)
class Lease:
    """A lease a process takes on a job it is about to run itself: its owner name, for this many seconds."""

    owner: str
    seconds: float

    def values(self) -> dict[str, Any]:
        """The job's column values that give it this lease, from the database's time now."""
        return {"lease_owner": self.owner, "lease_expires_at": lease_expiry(self.seconds)}


def claimable() -> ColumnElement[bool]:
    """A job waiting for a runner: runnable (not paused, not ended), and either never leased or its lease ran out on
    the database's clock."""
    return and_(
        # Inline values, as the claim order index's WHERE names them: a database uses a partial index only for a
        # query whose own WHERE shows it covers the rows asked for.
        ImportJob.status.in_(literal_values(stored(JobStatus.runnable()))),
        or_(ImportJob.lease_owner.is_(None), ImportJob.lease_expires_at < database_now()),
    )


def literal_values(values: list[str]) -> list[ColumnElement[str]]:
    return [literal(value, literal_execute=True) for value in values]


# The order claims take waiting jobs in: highest priority first, then oldest (the claim order index's order).
CLAIM_ORDER = (ImportJob.priority.desc(), ImportJob.created_at, ImportJob.id)


def claimable_job_ids(session: Session, *, limit: int | None = None) -> list[int]:
    """Ids of the jobs waiting for a runner in the order claims take them; a read that takes no lock."""
    return list(session.scalars(select(ImportJob.id).where(claimable()).order_by(*CLAIM_ORDER).limit(limit)))


def claim_jobs(session: Session, lease: Lease, *, limit: int) -> list[int]:
    """Take the lease of up to `limit` jobs waiting for a runner, highest priority first and then oldest, in one
    statement; commit and return their ids. Two processes claiming at once never get the same job. A job that runs
    already keeps its slot, whatever the priority of those waiting.

    PostgreSQL locks the rows it picks with FOR UPDATE SKIP LOCKED, so a second claimer passes over them to the
    next waiting jobs instead of queueing behind the first. SQLite renders no FOR UPDATE: its one writer at a
    time makes the conditional UPDATE atomic, and a claimer that comes second sees the first one's leases.
    A read comes first, so a process with nothing to claim never asks for SQLite's write lock.
    """
    if limit <= 0:
        return []
    waiting = claimable_job_ids(session, limit=1)
    session.commit()  # the read's transaction ends here, so the claim's starts from a fresh snapshot
    if not waiting:
        return []
    # Materialized: as a plain subquery, PostgreSQL may run it again for each row it joins it with, and every run
    # skips the rows the one before locked, so the claim would take more than `limit` jobs.
    picked = (
        select(ImportJob.id)
        .where(claimable())
        .order_by(*CLAIM_ORDER)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    claimed = session.scalars(
        update(ImportJob)
        .where(ImportJob.id.in_(select(picked.c.id)), claimable())
        .values(**lease.values())
        .returning(ImportJob.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(claimed)


def release_claims(session: Session, owner: str, job_ids: list[int]) -> int:
    """Give back the leases of jobs this owner claimed but will not run (its process is stopping); commit and
    return how many, so another process takes them at once instead of after the lease."""
    if not job_ids:
        return 0
    released = session.execute(
        update(ImportJob)
        .where(ImportJob.id.in_(job_ids), ImportJob.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    return released


class JobLedger:
    """One job's side of the ledger, used only by the process that holds the job's lease.

    Every write also checks and extends the lease, and commits the job's counts together with the outcomes
    they count, so a reader never sees one without the other. Verdicts that a caller wants committed with
    its next write (a stream chunk's last ones) are passed to that write as `settled`.

    With an outage policy, each write rides out transient database faults (a dropped connection, a lock or
    statement timeout) until the policy's deadline, and is applied exactly once: after a fault the ledger reads
    back the job's commit count to tell whether the commit in doubt landed. Without one (a request), a fault
    is raised at once.
    """

    def __init__(
        self,
        session: Session,
        job_id: int,
        owner: str,
        lease_seconds: float,
        *,
        outages: OutagePolicy | None = None,
        notifications: NotificationDefaults | None = None,
        clock=time.monotonic,
        sleep=time.sleep,
        rand=random.random,
    ):
        self.session = session
        self.job_id = job_id
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.sql = statements_for(session)
        self.outages = outages
        # The global notification settings; None: this ledger's endings notify nobody (tests of the ledger itself).
        self.notifications = notifications
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._writes = 0  # the job's ledger_writes as of this ledger's last commit
        self.run_id = None  # this run's row in job_runs, once start_run() made it
        self._counted = False
        # The job's delivery watermarks (models.ImportJob), as this ledger last wrote them. Only the lease holder
        # moves them, and only forward, so a write that is tried again after a fault sets the same values.
        self.sent_through = 0
        self.settled_through = 0

    def claim(self) -> bool:
        """Take the job's lease if it is free, expired (on the database's clock) or already ours; True when this
        process now runs the job."""

        def take():
            return self.session.execute(
                update(ImportJob)
                .where(
                    ImportJob.id == self.job_id,
                    ImportJob.status.in_(statuses_allowing(JobAction.RUN)),
                    ImportJob.lease_owner.is_(None)
                    | (ImportJob.lease_expires_at < database_now())
                    | (ImportJob.lease_owner == self.owner),
                )
                .values(
                    lease_owner=self.owner,
                    lease_expires_at=lease_expiry(self.lease_seconds),
                    status=TRANSITIONS[JobAction.RUN].target.value,
                    started_at=func.coalesce(ImportJob.started_at, utcnow()),
                    ledger_writes=ImportJob.ledger_writes + 1,
                )
                .returning(ImportJob.ledger_writes, ImportJob.sent_through, ImportJob.settled_through)
            ).first()

        taken = self._transaction(take)  # taking a lease this owner holds already changes nothing: it may run twice
        if taken is None:
            return False
        self._writes = taken.ledger_writes
        self.sent_through, self.settled_through = taken.sent_through, taken.settled_through
        return True

    def start_run(self) -> int:
        """Record that this process runs the job now, closing runs that stopped without a word; return its id.

        Its kind says what it does: an import's first or restarted run, a retry of refused records, or a resume
        of a failed or cancelled import.
        """

        def start():
            self._close_stale_runs()
            last, last_kind = self.session.execute(
                select(JobRun.outcome, JobRun.kind)
                .where(JobRun.job_id == self.job_id)
                .order_by(JobRun.id.desc())
                .limit(1)
            ).first() or (None, None)
            retries = self.session.scalar(select(ImportJob.retries).where(ImportJob.id == self.job_id))
            if last == RunOutcome.PAUSED.value:  # an unpaused run goes on with the work its paused run did
                kind = last_kind
            elif last in (RunOutcome.FAILED.value, RunOutcome.CANCELLED.value):
                kind = RunKind.RESUME.value
            elif last == RunOutcome.COMPLETED.value and retries:
                kind = RunKind.RETRY.value
            else:
                kind = RunKind.IMPORT.value
            run = JobRun(job_id=self.job_id, kind=kind, owner=self.owner)
            self.session.add(run)
            self.session.flush()
            self._update_job()
            return run.id

        def started():  # the commit in doubt landed: the run this owner opened last
            return self.session.scalar(
                select(JobRun.id)
                .where(JobRun.job_id == self.job_id, JobRun.owner == self.owner, JobRun.ended_at.is_(None))
                .order_by(JobRun.id.desc())
                .limit(1)
            )

        self.run_id = self._transaction(start, landed=started)
        return self.run_id

    def job(self) -> ImportJob:
        """Read the job afresh."""

        def read():
            self.session.expire_all()
            return self.session.get(ImportJob, self.job_id)

        return self._transaction(read)

    def stage(
        self,
        outcomes: list,
        *,
        last_row: int,
        rows_read: int,
        in_flight: bool = False,
        settled: Verdicts = (),
        on_duplicate: DuplicatePolicy = DuplicatePolicy.SKIP,
    ) -> list[Claimed]:
        """Store validated rows and commit: contacts become records, rejections and duplicates error rows.

        Duplicates are whatever the unique email index refuses, so two imports at once can never both store
        an email. With on_duplicate=UPDATE a duplicate of a delivered record of another import updates that
        record instead (see _update_stored). Records are stored pending, to be claimed later; with
        in_flight=True the job's sent watermark moves past them in the same commit, for a caller that sends them
        at once (a stream chunk), and they are returned as claim_for_delivery() returns what it claims.
        """
        contacts = [item for item in outcomes if isinstance(item, Contact)]

        def store():
            tally = self._write_verdicts(settled)
            errors = [_error(r.row, r.category, r.message, r.data) for r in outcomes if isinstance(r, Rejection)]
            records = []
            sent = {}
            if contacts:
                ids = self.sql.insert_records(self.session, self.job_id, contacts, RecordStatus.PENDING.value)
                kept = {c.row: (ids[c.row], 1) for c in contacts if c.row in ids}  # row: (record id, version)
                duplicates = [c for c in contacts if c.row not in ids]
                reasons = {}
                if duplicates and on_duplicate is DuplicatePolicy.UPDATE:
                    updated, reasons = self._update_stored(duplicates)
                    kept.update(updated)
                    duplicates = [c for c in duplicates if c.row not in updated]
                if in_flight:
                    records = [_claimed(*kept[c.row], c) for c in contacts if c.row in kept]
                    sent = self._sent_past(records)
                if duplicates:
                    owners = self._owners_of({c.email_key for c in duplicates if c.row not in reasons})
                    errors.extend(
                        _error(
                            c.row,
                            ErrorCategory.DUPLICATE.value,
                            reasons.get(c.row) or self._duplicate_message(c, owners),
                            c.data,
                        )
                        for c in duplicates
                    )
            self._insert_errors(errors)
            tally += tally_staged((error["category"] for error in errors), rows_read=rows_read)
            self._update_job(tally, cursor=last_row, **sent)
            return records

        def stored():  # the commit in doubt landed: the chunk's records are in flight, as store() returned them
            if not (in_flight and contacts):
                return []
            records = self._fresh_between(contacts[0].row, contacts[-1].row)
            self._sent_past(records)
            return records

        return self._transaction(store, landed=stored)

    def _update_stored(self, contacts: list[Contact]) -> tuple[dict, dict]:
        """Give delivered records of other imports the fields of the contacts whose emails they hold, uncommitted.

        Such a record moves to this job, at the contact's row: this job sends it again (as an update, its version
        one higher) and counts it; the import that stored it first keeps its counts. A contact stays a duplicate
        when its record belongs to this job (a repeat within the file), when the record is still on its way in
        another import (that import owns it until it ends), or when the row changes none of its fields.

        The records are read locked (PostgreSQL; on SQLite this transaction holds the write lock already), so two
        imports updating one email at once are taken one after the other, and the second finds the record
        pending in the first. Returns {row: (record id, version)} of the records updated, and {row: message} of
        contacts that stay duplicates for a reason of their own.
        """
        locked = self.session.scalars(
            select(Record.id)
            .where(Record.email_key.in_({c.email_key for c in contacts}))
            .order_by(Record.id)
            .with_for_update()
        ).all()
        # Read after the locks are granted, so a record another import changed meanwhile is read as it is now, with
        # its (new) job's watermarks; the jobs' rows are their lease holders' to write, and are not locked.
        held = self.session.execute(
            select(
                Record.id,
                Record.job_id,
                Record.row,
                Record.name,
                Record.company,
                Record.extra,
                shown_status(Record, ImportJob.settled_through, ImportJob.sent_through).label("status"),
                Record.version,
                Record.email_key,
            )
            .join(ImportJob, ImportJob.id == Record.job_id)
            .where(Record.id.in_(locked))
        ).all()
        records = {record.email_key: record for record in held}
        updates, updated, reasons, moved = [], {}, {}, set()
        for contact in contacts:
            record = records.get(contact.email_key)
            if record is None or record.job_id == self.job_id or contact.email_key in moved:
                continue  # a duplicate of this file's rows (or of a record gone meanwhile): the usual message
            imported = f'email "{contact.email}" was already imported (import #{record.job_id}, row {record.row})'
            if record.status != RecordStatus.SUCCEEDED.value:
                reasons[contact.row] = (
                    f"{imported} and is not delivered yet; it is not updated while that import holds it: "
                    "import the row again once that import ends"
                )
            elif (record.name, record.company, record.extra or None) == (contact.name, contact.company, contact.extra):
                reasons[contact.row] = f"unchanged: {imported} with these same fields"
            else:
                version = record.version + 1
                updates.append(
                    {
                        "id": record.id,
                        "job_id": self.job_id,
                        "row": contact.row,
                        "name": contact.name,
                        "company": contact.company,
                        "extra": contact.extra,
                        "version": version,
                        "status": RecordStatus.PENDING.value,
                        "attempts": 0,
                        "response": None,
                    }
                )
                updated[contact.row] = (record.id, version)
                moved.add(contact.email_key)  # a later row with this email duplicates this one, as for a new record
        if updates:
            self.session.execute(update(Record), updates)
        return updated, reasons

    def requeue_refused(self) -> int:
        """Queue the job's refused records to be sent again (a retry), each back through dedupe.

        A record whose email another import stored meanwhile is a duplicate now: its error row says so, in
        that category instead of "other", and the record goes. Returns how many records were queued.
        """

        def requeue():
            queued = self._requeue_where_free(RecordStatus.FAILED)
            taken = self.session.execute(
                select(Record.id, Record.row, Record.email, Record.email_key).where(
                    Record.job_id == self.job_id,
                    Record.status == literal(RecordStatus.FAILED.value, literal_execute=True),
                )
            ).all()
            if taken:
                owners = self._owners_of({record.email_key.partition(SUPERSEDED_MARK)[0] for record in taken})
                for record in taken:
                    owner_job, owner_row = owners.get(record.email_key.partition(SUPERSEDED_MARK)[0], (None, None))
                    self.session.execute(
                        update(RowError)
                        .where(
                            RowError.job_id == self.job_id,
                            RowError.row == record.row,
                            RowError.category == ErrorCategory.OTHER.value,
                        )
                        .values(
                            category=ErrorCategory.DUPLICATE.value,
                            message=f'email "{record.email}" was imported by import #{owner_job} (row {owner_row}) '
                            "after the downstream refused it here",
                        )
                    )
                self.session.execute(delete(Record).where(Record.id.in_([record.id for record in taken])))
            moved = {ErrorCategory.OTHER.value: -len(taken), ErrorCategory.DUPLICATE.value: len(taken)}
            self._update_job(Tally(errors=moved) if taken else None)
            return queued

        return self._transaction(requeue, landed=lambda: None)

    def requeue_cancelled(self) -> int:
        """Queue the job's cancelled records to be sent again (a resumed job), each back through dedupe.

        A record whose email another import stored meanwhile becomes a duplicate error row instead, naming that
        import, and counts as processed and failed. Returns how many records were queued.
        """

        def requeue():
            queued = self._requeue_where_free(RecordStatus.CANCELLED)
            taken = self.session.execute(
                select(*CLAIMED_COLUMNS, Record.email_key).where(
                    Record.job_id == self.job_id, Record.status == RecordStatus.CANCELLED.value
                )
            ).all()
            errors = []
            if taken:
                keys = {record.email_key.partition(SUPERSEDED_MARK)[0] for record in taken}
                owners = self._owners_of(keys)
                for record in taken:
                    owner_job, owner_row = owners.get(record.email_key.partition(SUPERSEDED_MARK)[0], (None, None))
                    message = (
                        f'email "{record.email}" was imported by import #{owner_job} (row {owner_row}) '
                        "while this import was stopped"
                    )
                    errors.append(_error(record.row, ErrorCategory.DUPLICATE.value, message, _refused_data(record)))
                self.session.execute(delete(Record).where(Record.id.in_([record.id for record in taken])))
                self._insert_errors(errors)
            # Every cancelled record leaves the cancelled count: the queued ones are not processed any more, the
            # taken ones are processed again as duplicate error rows.
            uncancelled = Tally(processed=-(queued + len(taken)), cancelled=-(queued + len(taken)))
            self._update_job(uncancelled + tally_staged((error["category"] for error in errors), rows_read=0))
            return queued

        return self._transaction(requeue, landed=lambda: None)

    def claim_for_delivery(self, limit: int, *, after_row: int = 0, settled: Verdicts = ()) -> list[Claimed]:
        """Take up to `limit` records waiting for a verdict after `after_row` and return them, in row order.

        One write marks them all in flight: the job's sent watermark moves past the last one. Only records a
        retry sends again are marked one by one (the watermark passed them long ago). Records a crash left in
        flight come back too, so they are re-sent with the same idempotency key. The verdicts of records sent
        before are stored in the same commit, as settle() stores them: one commit per window, not two.
        """

        def claim(settled):
            tally = self._write_verdicts(settled)
            # A range of the (job_id, row) index read in order from the last row sent and cut at the limit. Only a
            # retry, whose failed records are scattered, reads settled records on the way; each of them once.
            rows = self.sql.waiting_records(
                self.session, self.job_id, after_row=after_row, settled_through=self.settled_through, limit=limit
            )
            records = [Claimed._make(row[:-1]) for row in rows]
            # Each row ends in the record's stored status: those pending with attempts are a retry's.
            retried = [
                record.id
                for record, row in zip(records, rows, strict=True)
                if record.attempts and row[-1] == RecordStatus.PENDING.value
            ]
            if retried:
                self.session.execute(
                    update(Record).where(Record.id.in_(retried)).values(status=RecordStatus.IN_FLIGHT.value)
                )
            self._update_job(tally, **self._sent_past(records))
            return records

        # Claiming what is in flight already changes nothing, so after a commit in doubt that landed the claim is
        # made again, without the verdicts it stored.
        return self._transaction(lambda: claim(settled), landed=lambda: self._transaction(lambda: claim(())))

    def settle(self, settled: Verdicts) -> None:
        """Store the downstream's verdicts, [(record, Outcome)], with an error row for each refusal, and commit."""
        if settled:
            self._transaction(lambda: self._update_job(self._write_verdicts(settled)), landed=lambda: None)

    def set_total(self, *, settled: Verdicts = ()) -> None:
        """Fix the job's total at the number of rows read, once the whole file has been read."""
        self._transaction(
            lambda: self._update_job(self._write_verdicts(settled), total_records=ImportJob.rows_read),
            landed=lambda: None,
        )

    def widened_cache(self, megabytes: float):
        """A context in which the database keeps up to this much of the ledger's pages cached, where it can."""
        return self.sql.widened_cache(self.session, megabytes)

    def refresh_statistics(self) -> None:
        """Let the planner see the records just staged, before delivery claims them."""

        def refresh():
            self.sql.refresh_statistics(self.session)
            self._update_job()

        self._transaction(refresh)

    def finish(self, action: JobAction, *, error: str | None = None, settled: Verdicts = ()) -> JobStatus:
        """End the job by a terminal action (complete, fail, cancel), release its lease and return its status.

        A cancelled job's undelivered records end cancelled; records of a retry that were not sent again keep
        their earlier failure (their error rows are still there). A cancelled retry leaves the job completed:
        every row already had its outcome before the retry began.
        """
        if action is JobAction.CANCEL and self.job().retries:
            action, error = JobAction.COMPLETE, None
        elif action is JobAction.CANCEL:
            error = "cancelled by request"
        status = TRANSITIONS[action].target

        def end():
            tally = self._write_verdicts(settled)
            undelivered = (Record.job_id == self.job_id, awaiting_verdict(self.settled_through))
            self.session.execute(
                update(Record).where(*undelivered, Record.attempts > 0).values(status=RecordStatus.FAILED.value)
            )
            sent = {}
            if action is JobAction.CANCEL:
                cancelled = self.session.execute(
                    update(Record)
                    .where(*undelivered)
                    .values(status=RecordStatus.CANCELLED.value, email_key=_superseded)
                ).rowcount
                tally += Tally(processed=cancelled, cancelled=cancelled)
                # Nothing is in a call any more: a resume sends the cancelled records as pending ones.
                self.sent_through = self.settled_through
                sent = {"sent_through": self.sent_through}
            # Finally refused records let go of their emails too; a retry takes them back through dedupe.
            self.session.execute(
                update(Record)
                .where(
                    Record.job_id == self.job_id,
                    Record.status == literal(RecordStatus.FAILED.value, literal_execute=True),
                    Record.email_key.notlike(f"%{SUPERSEDED_MARK}%"),
                )
                .values(email_key=_superseded)
            )
            values = {
                "status": status.value,
                "completed_at": utcnow(),
                "lease_owner": None,
                "lease_expires_at": None,
                "pause_requested": False,
            }
            if error is not None:
                values["error"] = error
            values.update(sent)
            self._end_run(RunOutcome(status.value), error)
            self._update_job(tally, action=action, notice=None, **values)
            if self.notifications is not None:  # committed with the ending, so no crash can lose them
                record_notifications(self.session, self.job_id, defaults=self.notifications)
            return status

        return self._transaction(end, landed=lambda: status)

    def release(self, *, settled: Verdicts = ()) -> None:
        """Give up the lease but leave the job resumable (the process is shutting down)."""

        def let_go():
            tally = self._write_verdicts(settled)
            self._end_run(RunOutcome.RELEASED, "The server stopped; the import goes on when a server runs it again.")
            self._update_job(tally, action=JobAction.RELEASE, lease_owner=None, lease_expires_at=None, notice=None)

        self._transaction(let_go, landed=lambda: None)

    def pause(self, *, settled: Verdicts = ()) -> None:
        """Give up the lease and leave the job paused: no runner claims it until it is unpaused.

        Records in flight stay in flight, as after a shutdown: the run after the unpause sends them again with
        the same keys, so the downstream sees each one's effect once.
        """

        def hold():
            tally = self._write_verdicts(settled)
            self._end_run(RunOutcome.PAUSED, "Paused by request; the import goes on from here once it is unpaused.")
            self._update_job(
                tally,
                action=JobAction.PAUSE,
                status=TRANSITIONS[JobAction.PAUSE].target.value,
                pause_requested=False,
                lease_owner=None,
                lease_expires_at=None,
                notice=None,
            )

        self._transaction(hold, landed=lambda: None)

    def renew_lease(self) -> JobAction | None:
        """Extend the lease, and return what someone asked of the job meanwhile: CANCEL, PAUSE, or None.

        A cancel wins over a pause: the job ends either way.
        """

        def renew():
            self._update_job()
            asked = self.session.execute(
                select(ImportJob.cancel_requested, ImportJob.pause_requested).where(ImportJob.id == self.job_id)
            ).one()
            if asked.cancel_requested:
                return JobAction.CANCEL
            return JobAction.PAUSE if asked.pause_requested else None

        return self._transaction(renew)

    def set_notice(self, notice: str | None) -> None:
        """Say what delivery is waiting for (None once it is not waiting)."""
        self._transaction(lambda: self._update_job(notice=notice))

    def _transaction(self, work, *, landed=None):
        """Run work() and commit, as one transaction; ride out transient faults as the outage policy says.

        After a fault the commit count tells whether the commit in doubt landed. If it did, landed() gives the
        result instead of running work() again (a write that must not be applied twice); without landed, work()
        simply runs again (a write that changes nothing the second time, or a read).
        """
        first_fault = None
        while True:
            self._counted = False  # set by _update_job, whose UPDATE counts the commit in ledger_writes
            try:
                result = work()
                self.session.commit()
                self._writes += self._counted
                return result
            except LeaseLost:
                raise
            except Exception as error:
                self._roll_back()
                if self.outages is None or not is_transient(error):
                    raise
                if first_fault is None:
                    first_fault = self._clock()
                log.warning("import #%s: database fault, retrying: %s", self.job_id, _first_line(error))
                if self._commit_landed(first_fault):
                    self._writes += 1
                    if landed is not None:
                        return landed()

    def _commit_landed(self, first_fault):
        """Wait for the database to answer, then say whether the last commit this ledger began landed."""
        attempt = 0
        while True:
            waited = self._clock() - first_fault
            if waited >= self.outages.deadline:
                raise DatabaseUnavailable(waited)
            self._sleep(min(self.outages.backoff(attempt, self._rand), self.outages.deadline - waited))
            attempt += 1
            try:
                writes = self.session.scalar(select(ImportJob.ledger_writes).where(ImportJob.id == self.job_id))
                self.session.rollback()
            except Exception as error:
                self._roll_back()
                if not is_transient(error):
                    raise
                continue
            return writes is not None and writes > self._writes

    def _requeue_where_free(self, superseded):
        """Make the job's records of that status pending again with their emails back, where no other record
        took the email meanwhile; return how many (the rest keep their status and superseded keys)."""
        return self.sql.restore_keys(
            self.session,
            self.job_id,
            superseded=superseded.value,
            status=RecordStatus.PENDING.value,
            mark=SUPERSEDED_MARK,
        )

    def _end_run(self, outcome, reason):
        """End this run's row, and any other run of the job that stopped without a word."""
        self._close_stale_runs()
        if self.run_id is not None:
            self.session.connection().execute(
                update(JobRun)
                .where(JobRun.id == self.run_id)
                .values(ended_at=utcnow(), outcome=outcome.value, reason=reason)
            )

    def _close_stale_runs(self):
        self.session.execute(
            update(JobRun)
            .where(JobRun.job_id == self.job_id, JobRun.ended_at.is_(None), JobRun.id != (self.run_id or 0))
            .values(
                ended_at=utcnow(),
                outcome=RunOutcome.INTERRUPTED.value,
                reason="It stopped without finishing (its process ended, or the database was away too long); "
                "a later run went on from its last commit.",
            )
        )

    def _roll_back(self):
        try:
            self.session.rollback()
        except Exception:  # the connection is gone: the pool replaces it at the next checkout
            log.debug("import #%s: rollback failed", self.job_id, exc_info=True)

    def _fresh_between(self, first_row, last_row):
        """The job's records stored between two rows and not yet attempted, as claim_for_delivery() returns them."""
        query = (
            select(*CLAIMED_COLUMNS)
            .where(
                Record.job_id == self.job_id,
                Record.row.between(first_row, last_row),
                Record.status == RecordStatus.PENDING.value,
                Record.attempts == 0,
            )
            .order_by(Record.row)
        )
        return [Claimed._make(row) for row in self.session.execute(query).all()]

    def _sent_past(self, records) -> dict[str, int]:
        """Move the sent watermark past the records about to go out; return the job's column value to write."""
        if records:
            self.sent_through = max(self.sent_through, records[-1].row)
        return {"sent_through": self.sent_through}

    def _update_job(self, tally: Tally | None = None, *, action: JobAction | None = None, **values):
        """Update the job while this process holds its lease, extending the lease; apply the tally's counts.

        With an action, the job must also be in a status that allows it.
        """
        counts = tally.assignments() if tally else {}
        self._counted = True
        values = {
            "lease_expires_at": lease_expiry(self.lease_seconds),
            "ledger_writes": ImportJob.ledger_writes + 1,
            "settled_through": self.settled_through,  # committed with the counts of the verdicts that moved it
            **counts,
            **values,
        }
        conditions = [ImportJob.id == self.job_id, ImportJob.lease_owner == self.owner]
        if action is not None:
            conditions.append(ImportJob.status.in_(statuses_allowing(action)))
        # Core, on the session's connection: every read of the job expires the session first (job(), publish_job),
        # so no loaded object needs the ORM's bookkeeping, which cost a millisecond a write.
        result = self.session.connection().execute(update(ImportJob).where(*conditions).values(**values))
        if result.rowcount != 1:
            self.session.rollback()
            raise LeaseLost(f"import #{self.job_id} is no longer leased by this process ({self.owner})")

    def _write_verdicts(self, settled: Verdicts) -> Tally:
        """Store verdicts with an error row for each refusal, uncommitted; return the counts they change.

        A plain success (a fresh record, with no answer of its own) writes nothing to its record: the settled
        watermark, written by the caller's job update, moves past it. Verdicts come in row order, after every
        earlier record's, so each record the watermark passes has had its verdict. Refusals, successes with an
        answer, and every verdict of a retry are written to their records.

        A record settled before (attempts > 0) is a failure being retried: a new verdict replaces its error row.
        """
        if not settled:
            return Tally()
        # One pass, as there are thousands of verdicts to a window and most are plain successes.
        plain = 0
        written, verdicts, retried_rows, errors = [], [], [], []
        for record, outcome in settled:
            retried = bool(record.attempts)
            if outcome.ok and outcome.response is None and not retried:
                plain += 1
                plain_through = record.row
                continue
            status = RecordStatus.SUCCEEDED if outcome.ok else RecordStatus.FAILED
            written.append((record.id, status.value, outcome.response))
            verdicts.append((retried, outcome.ok))
            if retried:
                retried_rows.append(record.row)
            if not outcome.ok:
                message = outcome.message or REFUSED
                errors.append(_error(record.row, ErrorCategory.OTHER.value, message, _refused_data(record)))
        if plain:
            self.settled_through = max(self.settled_through, plain_through)
        if written:
            self.sql.update_records(self.session, written)
        if self.run_id is not None:
            refused = len(errors)
            self.session.connection().execute(
                update(JobRun)
                .where(JobRun.id == self.run_id)
                .values(
                    sent=JobRun.sent + len(settled),
                    succeeded=JobRun.succeeded + len(settled) - refused,
                    refused=JobRun.refused + refused,
                )
            )
        replaced = 0
        if retried_rows:
            replaced = self.session.execute(
                delete(RowError).where(
                    RowError.job_id == self.job_id,
                    RowError.category == ErrorCategory.OTHER.value,
                    RowError.row.in_(retried_rows),
                )
            ).rowcount
        self._insert_errors(errors)
        return tally_settled(verdicts, replaced_errors=replaced) + Tally(processed=plain, succeeded=plain)

    def _insert_errors(self, errors: list[dict]) -> None:
        if errors:
            self.sql.insert_errors(self.session, self.job_id, errors, utcnow())

    def _owners_of(self, email_keys):
        query = select(Record.email_key, Record.job_id, Record.row).where(Record.email_key.in_(email_keys))
        return {key: (job_id, row) for key, job_id, row in self.session.execute(query)}

    def _duplicate_message(self, contact, owners):
        owner_job, owner_row = owners.get(contact.email_key, (None, None))
        if owner_job == self.job_id:
            return f'email "{contact.email}" duplicates row {owner_row} of this file'
        if owner_job is not None:
            return f'email "{contact.email}" was already imported (import #{owner_job}, row {owner_row})'
        return f'email "{contact.email}" is a duplicate'


CLAIMED_COLUMNS = tuple(getattr(Record, name) for name in Claimed._fields)  # what a claim selects, in order


def _first_line(error):
    return str(error).splitlines()[0] if str(error) else type(error).__name__


# A record's email key, marked superseded: it no longer holds the email (see SUPERSEDED_MARK).
_superseded = Record.email_key + SUPERSEDED_MARK + cast(Record.id, String)


def _error(row, category, message, data):
    return {"row": row, "category": category, "message": message, "data": data}


def _claimed(record_id, version, contact):
    """A record stored in flight, as claim_for_delivery() would have returned it."""
    return Claimed(record_id, contact.row, contact.name, contact.email, contact.company, contact.extra, version, 0)


def _refused_data(record):
    """A refused record's fields as its error row keeps them: name, email and company, and its extra fields."""
    return {**(record.extra or {}), "name": record.name, "email": record.email, "company": record.company}
