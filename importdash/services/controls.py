"""Stop an unfinished import, or send a completed import's failed deliveries again."""

import uuid

from sqlalchemy import literal, update

from ..errors import ApiError, Conflict, NotFound
from ..models import MAX_ID, ErrorCategory, ImportJob, JobStatus, Record, RecordStatus, utcnow
from .importer import publish_job
from .ledger import JobLedger

UNFINISHED = (JobStatus.PENDING.value, JobStatus.PROCESSING.value)


def cancel_import(session, job_id, *, runner, broker, lease_seconds):
    """Cancel an unfinished import and return it: ended now if no process holds it, else at the holder's next check.

    The request is stored on the job, so a holder in another process sees it at its heartbeat.
    """
    get_job(session, job_id)
    requested = session.execute(
        update(ImportJob).where(ImportJob.id == job_id, ImportJob.status.in_(UNFINISHED)).values(cancel_requested=True)
    ).rowcount
    session.commit()
    if not requested:
        status = get_job(session, job_id).status
        raise Conflict(f"Import #{job_id} already ended ({status}); there is nothing to cancel.")
    runner.cancel(job_id)
    # Nobody may hold it (it waits in a queue, or its process died): then it ends here. The lease is taken
    # under a name of its own, so a run starting in this process at the same moment cannot share it.
    ledger = JobLedger(session, job_id, f"cancel-{uuid.uuid4().hex}", lease_seconds)
    if ledger.claim():
        ledger.cancel()
        publish_job(broker, session, job_id, "job.finished")
    return get_job(session, job_id)


def retry_import(session, job_id, *, category=None, runner):
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
    if job.status != JobStatus.COMPLETED.value:
        raise Conflict(f"Import #{job_id} is {job.status}; only a completed import's failed deliveries can be retried.")
    reopened = session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.status == JobStatus.COMPLETED.value)
        .values(
            status=JobStatus.PENDING.value,
            retries=ImportJob.retries + 1,
            last_retried_at=utcnow(),
            completed_at=None,
            cancel_requested=False,
        )
    ).rowcount
    queued = session.execute(
        update(Record)
        .where(Record.job_id == job_id, Record.status == literal(RecordStatus.FAILED.value, literal_execute=True))
        .values(status=RecordStatus.PENDING.value)
    ).rowcount
    if not reopened or not queued:
        session.rollback()
        reason = "is being retried already" if not reopened else "has no failed deliveries to retry"
        raise Conflict(f"Import #{job_id} {reason}.")
    session.commit()
    runner.submit(job_id)
    return get_job(session, job_id)


def get_job(session, job_id):
    """Read the job afresh, or raise NotFound."""
    session.expire_all()
    job = session.get(ImportJob, job_id) if job_id <= MAX_ID else None
    if job is None:
        raise NotFound(f"No import #{job_id}.")
    return job
