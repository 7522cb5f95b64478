"""Past and running imports, and the errors of each."""

from flask import Blueprint, current_app, request, stream_with_context

from ..extensions import db
from ..models import ErrorCategory, JobMode, JobStatus
from ..services import jobs
from . import choice_arg, page_args, search_arg

bp = Blueprint("history", __name__, url_prefix="/api/import")


@bp.get("")
def list_jobs():
    """List imports, unfinished ones first, then newest first; optionally of one status or mode, or by file name."""
    limit, offset = page_args(request.args)
    page, total = jobs.list_jobs(
        db.session,
        limit=limit,
        offset=offset,
        status=choice_arg(request.args, "status", JobStatus),
        mode=choice_arg(request.args, "mode", JobMode),
        query=search_arg(request.args, "q"),
    )
    return {"jobs": page, "total": total}


@bp.get("/<id:job_id>")
def show_job(job_id):
    """Show one import with its error counts and its first errors."""
    return jobs.job_detail(db.session, job_id, error_preview=current_app.config["JOB_ERROR_PREVIEW"])


@bp.get("/<id:job_id>/errors")
def list_errors(job_id):
    """Page through an import's errors, optionally of one category and matching a search (?q=)."""
    limit, offset = page_args(request.args)
    category = choice_arg(request.args, "category", ErrorCategory)
    query = request.args.get("q", "").strip()
    errors, total = jobs.error_page(db.session, job_id, category=category, query=query, limit=limit, offset=offset)
    return {"errors": errors, "total": total}


@bp.get("/<id:job_id>/reimported")
def list_reimported(job_id):
    """Page through an import's rows that a later import stored and delivers instead (cancelled or refused here)."""
    limit, offset = page_args(request.args)
    rows, total = jobs.reimported_page(db.session, job_id, limit=limit, offset=offset)
    return {"rows": rows, "total": total}


@bp.get("/<id:job_id>/errors.csv")
def export_errors(job_id):
    """Download an import's errors (optionally of one category) as CSV, streamed as it is read."""
    category = choice_arg(request.args, "category", ErrorCategory)
    name, chunks = jobs.export_errors(
        db.session, job_id, category=category, batch_size=current_app.config["EXPORT_BATCH_SIZE"]
    )
    return current_app.response_class(
        stream_with_context(chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/<id:job_id>/results.csv")
def export_results(job_id):
    """Download an import's delivered records, each with the downstream's answer, as CSV, streamed as it is read."""
    name, chunks = jobs.export_results(db.session, job_id, batch_size=current_app.config["EXPORT_BATCH_SIZE"])
    return current_app.response_class(
        stream_with_context(chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
