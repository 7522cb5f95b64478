"""Everything a caller does to an import job: create, get, list, state, cancel, retry and clear, and read its
errors and records. Views and the CLI call only this module; importer.py is what runs one job."""

import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import delete, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ApiError, Conflict, InvalidFile, NotFound
from ..models import (
    ANONYMOUS_USER,
    MAX_ID,
    TRANSITIONS,
    ErrorCategory,
    ImportJob,
    JobAction,
    JobMode,
    JobRun,
    JobStatus,
    Record,
    RecordStatus,
    RowError,
    statuses_allowing,
    stored,
    utcnow,
)
from .broker import Event, EventBroker
from .export import errors_csv, source_keys
from .ledger import JobLedger, Lease
from .reader import check_file, count_rows
from .streams import JOB_CREATED, JOB_FINISHED, JOB_PROGRESS, JOBS_SNAPSHOT, state_event_name

if TYPE_CHECKING:  # runner.py imports importer.py, which imports this module
    from .runner import JobRunner

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class AlreadyStarted(Exception):
    """A job was started with this idempotency key already: the caller gets that job instead of a new one."""

    def __init__(self, job: ImportJob):
        super().__init__(f"import #{job.id} was started with this key")
        self.job = job


# Create.


def store_upload(stream: BinaryIO, upload_folder: str) -> str:
    """Save an uploaded file under a server-generated name and return its path."""
    path = os.path.join(upload_folder, f"{uuid.uuid4().hex}.csv")
    with open(path, "wb") as target:
        while chunk := stream.read(1024 * 1024):
            target.write(chunk)
    return path


def create_job(
    session: Session,
    broker: EventBroker,
    *,
    mode: str,
    path: str,
    source: str,
    max_line_length: int,
    encoding: str | None = None,
    delimiter: str | None = None,
    started_by: str = ANONYMOUS_USER,
    idempotency_key: str | None = None,
    lease: Lease | None = None,
) -> ImportJob:
    """Check the file, then create and announce a pending job that reads it the way the check found.

    A bad file raises InvalidFile (a bad encoding or delimiter ApiError), writing nothing. A key that started a
    job already raises AlreadyStarted with that job, even when two requests with it arrive at once. With a lease
    the job is created held by its owner, which runs it itself (the CLI): no other process can claim it first.
    """
    mode = JobMode(mode)
    if not os.path.isfile(path):
        raise InvalidFile(f"No such file: {source}")
    file_format = check_file(path, encoding=encoding, delimiter=delimiter, max_line_length=max_line_length)
    # A repeated request is checked like the first (a bad one is refused), then answered with the first's job.
    if idempotency_key is not None and (started := job_for_key(session, idempotency_key)) is not None:
        raise AlreadyStarted(started)
    job = ImportJob(
        mode=mode.value,
        source=display_name(source),
        path=path,
        encoding=file_format.encoding,
        delimiter=file_format.delimiter,
        columns=file_format.columns,
        started_by=started_by,
        idempotency_key=idempotency_key,
        **(lease.values() if lease else {}),
    )
    if mode is JobMode.DEFAULT:
        # The bundled sample is small: counting first lets its progress show a percentage from the start.
        job.total_records = count_rows(path, file_format.encoding, file_format.delimiter)
    session.add(job)
    try:
        session.commit()
    except IntegrityError:  # another request with the same key committed first
        session.rollback()
        started = job_for_key(session, idempotency_key) if idempotency_key is not None else None
        if started is None:
            raise
        raise AlreadyStarted(started) from None
    publish_job(broker, session, job.id, JOB_CREATED)
    return job


def job_for_key(session: Session, idempotency_key: str) -> ImportJob | None:
    """The job started with this idempotency key, if any."""
    return session.scalar(select(ImportJob).where(ImportJob.idempotency_key == idempotency_key))


def display_name(file_name: str) -> str:
    """The file's name as shown to people: no folders, no control characters, at most 255 characters."""
    name = _CONTROL_CHARACTERS.sub("", os.path.basename(file_name.replace("\\", "/"))).strip()
    return name[:255] or "upload.csv"


# Read.


def get_job(session: Session, job_id: int) -> ImportJob:
    """Read the job afresh, or raise NotFound."""
    session.expire_all()
    job = session.get(ImportJob, job_id) if job_id <= MAX_ID else None
    if job is None:
        raise NotFound(f"No import #{job_id}.")
    return job


def list_jobs(session: Session, *, limit: int, offset: int = 0) -> tuple[list[dict], int]:
    """Return a page of imports, newest first, and how many there are in all."""
    jobs = session.scalars(
        select(ImportJob).order_by(ImportJob.created_at.desc(), ImportJob.id.desc()).limit(limit).offset(offset)
    )
    total = session.scalar(select(func.count()).select_from(ImportJob))
    return [job.to_dict() for job in jobs], total


def job_state(session: Session, job_id: int) -> dict | None:
    """Return the job as the API shows it plus its error counts, or None when there is no such job."""
    job = session.get(ImportJob, job_id) if job_id <= MAX_ID else None
    if job is None:
        return None
    return {"job": job.to_dict(), "error_counts": job.error_counts}


def job_detail(session: Session, job_id: int, *, error_preview: int) -> dict:
    """Return the job, its error counts and its first errors, or raise NotFound."""
    job = get_job(session, job_id)
    errors = session.scalars(
        select(RowError).where(RowError.job_id == job_id).order_by(RowError.row, RowError.id).limit(error_preview)
    )
    runs = session.scalars(select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id))
    return {
        "job": job.to_dict(),
        "error_counts": job.error_counts,
        "errors": [error.to_dict() for error in errors],
        "runs": [run.to_dict() for run in runs],
    }


def error_page(
    session: Session, job_id: int, *, category: str | None, limit: int, offset: int
) -> tuple[list[dict], int]:
    """Return a page of the job's errors, optionally of one category, in row order, and how many there are."""
    job = get_job(session, job_id)
    conditions = [RowError.job_id == job_id]
    if category:
        conditions.append(RowError.category == category)
    errors = session.scalars(
        select(RowError).where(*conditions).order_by(RowError.row, RowError.id).limit(limit).offset(offset)
    )
    # The job's counters give the total without counting what may be a million error rows.
    counts = job.error_counts
    total = counts[category] if category else sum(counts.values())
    return [error.to_dict() for error in errors], total


def export_errors(session: Session, job_id: int, *, category: str | None, batch_size: int) -> tuple[str, Iterator[str]]:
    """Return a file name and the job's errors as CSV text, in chunks read as they are written."""
    job = get_job(session, job_id)
    keys = job.columns or source_keys(job.path, job.encoding, job.delimiter)  # jobs made before columns were kept
    chunks = errors_csv(session, job_id, keys=keys, category=category, batch_size=batch_size)
    return f"import-{job_id}-{category or 'all'}-errors.csv", chunks


def record_page(
    session: Session, *, job_id: int | None, status: str | None, query: str, limit: int, offset: int
) -> tuple[list[dict], int]:
    """Return a page of records, filtered by job, status or a search of email and name, and how many match."""
    conditions = []
    if job_id is not None:
        conditions.append(Record.job_id == job_id)
    if status:
        # Inline (a known value): a database uses the partial index of failed records only for a literal.
        conditions.append(Record.status == literal(status, literal_execute=True))
    if query:
        if "\x00" in query:
            raise ApiError("q must not contain NUL characters", code="invalid_parameter")
        pattern = f"%{query.lower()}%"
        conditions.append(or_(Record.email_key.like(pattern), func.lower(Record.name).like(pattern)))
    records = session.scalars(
        select(Record).where(*conditions).order_by(Record.job_id, Record.row).limit(limit).offset(offset)
    )
    total = session.scalar(select(func.count()).select_from(Record).where(*conditions))
    return [record.to_dict() for record in records], total


# Act.


def cancel_job(
    session: Session,
    job_id: int,
    *,
    runner: "JobRunner",
    broker: EventBroker,
    lease_seconds: float,
) -> ImportJob:
    """Cancel an unfinished import and return it: ended now if no process holds it, else at the holder's next check.

    The request is stored on the job, so a holder in another process sees it when it renews its lease.
    """
    get_job(session, job_id)
    requested = session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.status.in_(statuses_allowing(JobAction.CANCEL)))
        .values(cancel_requested=True)
    ).rowcount
    session.commit()
    if not requested:
        status = get_job(session, job_id).status
        raise Conflict(f"Import #{job_id} already ended ({status}); there is nothing to cancel.")
    runner.cancel(job_id)
    # Nobody may hold it (it waits in the database for a free slot, or its process died): then it ends here. The
    # lease is taken under a name of its own, so a run starting in this process at the same moment cannot share it.
    ledger = JobLedger(session, job_id, f"cancel-{uuid.uuid4().hex}", lease_seconds)
    if ledger.claim():
        ledger.finish(JobAction.CANCEL)
        publish_job(broker, session, job_id, JOB_FINISHED)
    return get_job(session, job_id)


def retry_job(session: Session, job_id: int, *, category: str | None, runner: "JobRunner") -> ImportJob:
    """Queue a completed import's failed deliveries to be sent again and return the job, pending once more.

    Only downstream failures (category "other") can be retried: the other categories are rows that never
    became records, which only a corrected file can fix.
    """
    category = category or ErrorCategory.OTHER.value
    if not isinstance(category, str) or category not in {item.value for item in ErrorCategory}:
        allowed = ", ".join(item.value for item in ErrorCategory)
        raise ApiError(f"category must be one of {allowed}; got {category!r}", code="invalid_parameter")
    if category != ErrorCategory.OTHER.value:
        raise ApiError(
            f'"{category}" rows were never sent, so they cannot be retried; download them from '
            f"/api/import/{job_id}/errors.csv?category={category}, fix the file and import it again.",
            code="not_retryable",
        )
    job = get_job(session, job_id)
    if job.status not in statuses_allowing(JobAction.RETRY):
        raise Conflict(f"Import #{job_id} is {job.status}; only a completed import's failed deliveries can be retried.")
    reopened = _move(
        session,
        job_id,
        JobAction.RETRY,
        retries=ImportJob.retries + 1,
        last_retried_at=utcnow(),
        completed_at=None,
        cancel_requested=False,
    )
    # Its run takes the refused records back through dedupe and sends them again.
    queued = session.scalar(
        select(func.count())
        .select_from(Record)
        .where(Record.job_id == job_id, Record.status == literal(RecordStatus.FAILED.value, literal_execute=True))
    )
    if not reopened or not queued:
        session.rollback()
        reason = "is being retried already" if not reopened else "has no failed deliveries to retry"
        raise Conflict(f"Import #{job_id} {reason}.")
    session.commit()
    runner.submit(job_id)  # with no free slot here, the job waits for a process that has one
    return get_job(session, job_id)


def resume_job(session: Session, job_id: int, *, runner: "JobRunner", lease: Lease | None = None) -> ImportJob:
    """Queue a failed or cancelled import to go on from where it stopped, and return it, pending once more.

    Its cancelled records go out again (those whose email another import stored meanwhile become duplicates),
    and its file is read on from the last row staged while the upload is kept; once the upload has been
    deleted, what was staged is sent and the job says which rows were never read. With a lease it is reopened
    held by its owner, which runs it itself (the CLI).
    """
    job = get_job(session, job_id)
    if job.status not in statuses_allowing(JobAction.RESUME):
        raise Conflict(f"Import #{job_id} is {job.status}; only a failed or cancelled import can be resumed.")
    held = lease.values() if lease else {}
    reopened = _move(session, job_id, JobAction.RESUME, completed_at=None, cancel_requested=False, error=None, **held)
    if not reopened:
        session.rollback()
        raise Conflict(f"Import #{job_id} is being resumed already.")
    session.commit()  # its run queues the cancelled records again, each back through dedupe
    runner.submit(job_id)  # with no free slot here, the job waits for a process that has one
    return get_job(session, job_id)


def _move(session, job_id, action, **values):
    """Take the action if the job's status allows it, checked by the UPDATE itself so that two at once cannot
    both; True if it was taken (uncommitted)."""
    moved = session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.status.in_(statuses_allowing(action)))
        .values(status=TRANSITIONS[action].target.value, **values)
    )
    return moved.rowcount == 1


def clear_all(session: Session, *, running: list[int], upload_folder: str) -> dict[str, int]:
    """Delete every record, error row, import and uploaded file; refuse while any import is unfinished or runs here."""
    unfinished = session.scalar(
        select(func.count()).select_from(ImportJob).where(ImportJob.status.in_(stored(JobStatus.unfinished())))
    )
    if unfinished or running:
        raise Conflict("An import is still running; wait for it to finish or cancel it first.")
    uploads = _kept_uploads(session, upload_folder)
    session.execute(delete(JobRun))
    deleted = {
        "records": session.execute(delete(Record)).rowcount,
        "errors": session.execute(delete(RowError)).rowcount,
        "jobs": session.execute(delete(ImportJob)).rowcount,
    }
    session.commit()
    deleted["files"] = sum(_delete_file(path) for _job_id, path in uploads)
    return deleted


def purge_jobs(session: Session, *, ended_before: datetime, upload_folder: str) -> dict[str, int]:
    """Delete the imports that ended before the moment, with their records, error rows and uploaded files.

    Unfinished imports are never purged, however old.
    """
    old = select(ImportJob.id).where(
        ImportJob.status.notin_(stored(JobStatus.unfinished())), ImportJob.completed_at < ended_before
    )
    job_ids = list(session.scalars(old))
    if not job_ids:
        return {"records": 0, "errors": 0, "jobs": 0, "files": 0}
    uploads = _kept_uploads(session, upload_folder, job_ids)
    session.execute(delete(JobRun).where(JobRun.job_id.in_(job_ids)))
    deleted = {
        "records": session.execute(delete(Record).where(Record.job_id.in_(job_ids))).rowcount,
        "errors": session.execute(delete(RowError).where(RowError.job_id.in_(job_ids))).rowcount,
        "jobs": session.execute(delete(ImportJob).where(ImportJob.id.in_(job_ids))).rowcount,
    }
    session.commit()
    deleted["files"] = sum(_delete_file(path) for _job_id, path in uploads)
    return deleted


# Files.


def remove_ended_uploads(
    session: Session,
    *,
    upload_folder: str,
    retention_hours: float,
    resume_hours: float,
    job_id: int | None = None,
) -> int:
    """Delete the uploads of imports that completed more than retention_hours ago, or failed or were cancelled
    more than resume_hours ago (they may be resumed until then); return how many files were deleted.

    No run needs the file of a completed import: retries send stored records, and errors.csv reads the header
    stored with the job.
    """
    now = utcnow()
    completed_before = now - timedelta(hours=retention_hours)
    stopped_before = now - timedelta(hours=max(retention_hours, resume_hours))
    ended = select(ImportJob.id, ImportJob.path).where(
        ((ImportJob.status == JobStatus.COMPLETED.value) & (ImportJob.completed_at <= completed_before))
        | (ImportJob.status.in_(statuses_allowing(JobAction.RESUME)) & (ImportJob.completed_at <= stopped_before)),
        ImportJob.upload_removed_at.is_(None),
        ImportJob.path.startswith(os.path.join(upload_folder, "")),
    )
    if job_id is not None:
        ended = ended.where(ImportJob.id == job_id)
    removed = 0
    for job_id, path in session.execute(ended).all():
        if _is_upload(path, upload_folder):
            removed += _delete_file(path)
            session.execute(update(ImportJob).where(ImportJob.id == job_id).values(upload_removed_at=utcnow()))
    session.commit()
    return removed


def _kept_uploads(session, upload_folder, job_ids=None):
    query = select(ImportJob.id, ImportJob.path).where(ImportJob.upload_removed_at.is_(None))
    if job_ids is not None:
        query = query.where(ImportJob.id.in_(job_ids))
    return [(job_id, path) for job_id, path in session.execute(query).all() if _is_upload(path, upload_folder)]


def _is_upload(path, upload_folder):
    """Whether the file is the server's own copy of an upload: never the bundled sample, never a CLI user's file."""
    folder = os.path.realpath(upload_folder)
    return os.path.commonpath([folder, os.path.realpath(path)]) == folder


def _delete_file(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    return True


# Announce.


def publish_job(broker: EventBroker, session: Session, job_id: int, name: str = JOB_PROGRESS) -> None:
    """Publish a job's committed state; call it only after the commit it announces."""
    session.expire_all()
    state = job_state(session, job_id)
    if state is not None:
        broker.publish(name, state, job_id=job_id)


def job_snapshot(session: Session, broker: EventBroker, job_id: int) -> Event:
    """Return the job's current state as the first event of its stream, or raise NotFound.

    Call it after subscribing: events numbered up to the snapshot's id were published, and so committed,
    before this read, so the stream skips them; later ones may only be newer.
    """
    last_id = broker.last_event_id()
    state = job_state(session, job_id)
    if state is None:
        raise NotFound(f"No import #{job_id}.")
    return Event(last_id, state_event_name(state), state, job_id)


def jobs_snapshot(session: Session, broker: EventBroker, *, limit: int) -> Event:
    """Return the newest imports as the first event of the all-jobs stream (the history's starting point)."""
    last_id = broker.last_event_id()
    jobs, total = list_jobs(session, limit=limit)
    return Event(last_id, JOBS_SNAPSHOT, {"jobs": jobs, "total": total}, None)
