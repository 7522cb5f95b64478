"""The per-row ledger: search it, or clear it."""

from flask import Blueprint, request

from ..errors import ApiError
from ..extensions import db
from ..models import RecordStatus
from ..runtime import get_runtime
from ..services import jobs
from . import choice_arg, id_arg, page_args

bp = Blueprint("records", __name__, url_prefix="/api/records")


@bp.get("")
def list_records():
    """Page through records, filtered by job, status or a search of email and name."""
    limit, offset = page_args(request.args)
    records, total = jobs.record_page(
        db.session,
        job_id=id_arg(request.args, "job"),
        status=choice_arg(request.args, "status", RecordStatus),
        query=request.args.get("q", "").strip(),
        limit=limit,
        offset=offset,
    )
    return {"records": records, "total": total}


@bp.delete("")
def delete_records():
    """Delete every record, error and import; refused while an import runs."""
    if request.args.get("confirm") != "true":
        raise ApiError("Add ?confirm=true to delete every record, error and import.", code="confirmation_required")
    runtime = get_runtime()
    deleted = jobs.clear_all(db.session, running=runtime.runner.active_jobs(), storage=runtime.storage)
    return {"deleted": deleted}
