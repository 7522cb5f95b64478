"""The per-row ledger: search it, or clear it."""

from flask import Blueprint, request

from .. import audit
from ..errors import ApiError
from ..extensions import db
from ..models import RecordStatus
from ..roles import Permission
from ..runtime import get_runtime
from ..security import require
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
@require(Permission.CLEAR)
def delete_records():
    """Delete every record, error and import; refused while an import runs."""
    if request.args.get("confirm") != "true":
        raise ApiError("Add ?confirm=true to delete every record, error and import.", code="confirmation_required")
    runtime = get_runtime()
    deleted = jobs.clear_all(db.session, running=runtime.runner.active_jobs(), storage=runtime.storage)
    audit.record(db.session, action="records.clear", details=deleted)
    return {"deleted": deleted}
