"""What the live streams say: job states read from the database, published as events and written as SSE text."""

from sqlalchemy import func, select

from ..models import ImportJob, JobStatus
from .broker import Event, SubscriptionClosed
from .ledger import error_counts

JOB_CREATED = "job.created"
JOB_PROGRESS = "job.progress"
JOB_FINISHED = "job.finished"
JOBS_SNAPSHOT = "jobs.snapshot"


def list_jobs(session, *, limit, offset=0):
    """Return a page of imports, newest first, and how many there are in all."""
    jobs = session.scalars(
        select(ImportJob).order_by(ImportJob.created_at.desc(), ImportJob.id.desc()).limit(limit).offset(offset)
    )
    total = session.scalar(select(func.count()).select_from(ImportJob))
    return [job.to_dict() for job in jobs], total


def job_state(session, job_id):
    """Return the job as the API shows it plus its error counts, or None when there is no such job."""
    job = session.get(ImportJob, job_id)
    if job is None:
        return None
    return {"job": job.to_dict(), "error_counts": error_counts(session, job_id)}


def state_event_name(state):
    """A terminal job's state is announced as job.finished, any other as job.progress."""
    return JOB_FINISHED if JobStatus(state["job"]["status"]).is_terminal else JOB_PROGRESS


def publish_job(broker, session, job_id, name=JOB_PROGRESS):
    """Publish a job's committed state; call it only after the commit it announces."""
    session.expire_all()
    state = job_state(session, job_id)
    if state is not None:
        broker.publish(name, state, job_id=job_id)


def job_snapshot(session, broker, job_id):
    """Return the job's current state as the first event of a stream, or None when there is no such job.

    Call it after subscribing: events numbered up to the snapshot's id were published, and so committed,
    before this read, so the stream skips them; later ones may only be newer.
    """
    last_id = broker.last_event_id()
    state = job_state(session, job_id)
    if state is None:
        return None
    return Event(last_id, state_event_name(state), state, job_id)


def jobs_snapshot(session, broker, *, limit):
    """Return the newest imports as the first event of the all-jobs stream (the history's starting point)."""
    last_id = broker.last_event_id()
    jobs, total = list_jobs(session, limit=limit)
    return Event(last_id, JOBS_SNAPSHOT, {"jobs": jobs, "total": total}, None)


def sse_stream(subscription, first, *, keepalive_seconds, retry_ms, final_event=None):
    """Yield one client's stream as SSE text: the retry delay, the first event, then live events and keep-alives.

    The stream ends after `final_event` (the browser is told the job is over), or when the broker drops a
    client that fell behind (the browser reconnects and starts again from the database). The subscription
    is closed however the stream ends, including when the client goes away mid-write.
    """
    try:
        yield f"retry: {int(retry_ms)}\n\n" + first.encode()
        if first.name == final_event:
            return
        while True:
            try:
                event = subscription.get(timeout=keepalive_seconds)
            except SubscriptionClosed:
                return
            if event is None:
                yield ": keep-alive\n\n"
            elif event.id > first.id:
                yield event.encode()
                if event.name == final_event:
                    return
    finally:
        subscription.close()
