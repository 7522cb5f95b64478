"""The per-row ledger: search it, or clear it."""

from flask import Blueprint, request
from sqlalchemy import func, literal, or_, select

from ..errors import ApiError
from ..extensions import db
from ..models import Record, RecordStatus
from ..runtime import get_runtime
from ..services.records import clear_all
from . import choice_arg, id_arg, page_args

bp = Blueprint("records", __name__, url_prefix="/api/records")


@bp.get("")
def list_records():
    """Page through records, filtered by job, status or a search of email and name."""
    limit, offset = page_args(request.args)
    conditions = []
    if (job_id := id_arg(request.args, "job")) is not None:
        conditions.append(Record.job_id == job_id)
    if status := choice_arg(request.args, "status", RecordStatus):
        # Inline (a known value): a database uses the partial index of failed records only for a literal.
        conditions.append(Record.status == literal(status, literal_execute=True))
    if query := request.args.get("q", "").strip():
        if "\x00" in query:
            raise ApiError("q must not contain NUL characters", code="invalid_parameter")
        pattern = f"%{query.lower()}%"
        conditions.append(or_(Record.email_key.like(pattern), func.lower(Record.name).like(pattern)))
    records = db.session.scalars(
        select(Record).where(*conditions).order_by(Record.job_id, Record.row).limit(limit).offset(offset)
    )
    total = db.session.scalar(select(func.count()).select_from(Record).where(*conditions))
    return {"records": [record.to_dict() for record in records], "total": total}


@bp.delete("")
def delete_records():
    """Delete every record, error and import; refused while an import runs."""
    if request.args.get("confirm") != "true":
        raise ApiError("Add ?confirm=true to delete every record, error and import.", code="confirmation_required")
    deleted = clear_all(db.session, running=get_runtime().runner.active_jobs())
    return {"deleted": deleted}
