"""Operations over the whole ledger."""

from sqlalchemy import delete, func, select

from ..errors import Conflict
from ..models import ImportJob, JobStatus, Record, RowError


def clear_all(session, running=()):
    """Delete every record, error row and import; refuse while any import is pending or running."""
    busy = session.scalar(
        select(func.count())
        .select_from(ImportJob)
        .where(ImportJob.status.in_([JobStatus.PENDING.value, JobStatus.PROCESSING.value]))
    )
    if busy or running:
        raise Conflict("An import is still running; wait for it to finish or cancel it first.")
    deleted = {
        "records": session.execute(delete(Record)).rowcount,
        "errors": session.execute(delete(RowError)).rowcount,
        "jobs": session.execute(delete(ImportJob)).rowcount,
    }
    session.commit()
    return deleted
