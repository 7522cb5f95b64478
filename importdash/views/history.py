"""Past and running imports, and the errors of each."""

from flask import Blueprint, current_app, request, stream_with_context
from sqlalchemy import select

from ..extensions import db
from ..models import ErrorCategory, RowError
from ..services import streams
from ..services.controls import get_job
from ..services.export import errors_csv, source_keys
from . import choice_arg, page_args

bp = Blueprint("history", __name__, url_prefix="/api/import")


@bp.get("")
def list_jobs():
    """List imports, newest first."""
    limit, offset = page_args(request.args)
    jobs, total = streams.list_jobs(db.session, limit=limit, offset=offset)
    return {"jobs": jobs, "total": total}


@bp.get("/<int:job_id>")
def show_job(job_id):
    """Show one import with its error counts and its first errors."""
    job = get_job(db.session, job_id)
    errors = db.session.scalars(
        select(RowError)
        .where(RowError.job_id == job_id)
        .order_by(RowError.row, RowError.id)
        .limit(current_app.config["JOB_ERROR_PREVIEW"])
    )
    return {
        "job": job.to_dict(),
        "error_counts": job.error_counts,
        "errors": [error.to_dict() for error in errors],
    }


@bp.get("/<int:job_id>/errors")
def list_errors(job_id):
    """Page through an import's errors, optionally of one category."""
    job = get_job(db.session, job_id)
    limit, offset = page_args(request.args)
    category = choice_arg(request.args, "category", ErrorCategory)
    conditions = [RowError.job_id == job_id]
    if category:
        conditions.append(RowError.category == category)
    errors = db.session.scalars(
        select(RowError).where(*conditions).order_by(RowError.row, RowError.id).limit(limit).offset(offset)
    )
    # The job's counters give the total without counting what may be a million error rows.
    counts = job.error_counts
    total = counts[category] if category else sum(counts.values())
    return {"errors": [error.to_dict() for error in errors], "total": total}


@bp.get("/<int:job_id>/errors.csv")
def export_errors(job_id):
    """Download an import's errors (optionally of one category) as CSV, streamed as it is read."""
    job = get_job(db.session, job_id)
    category = choice_arg(request.args, "category", ErrorCategory)
    keys = source_keys(job.path, job.encoding, job.delimiter)
    chunks = errors_csv(
        db.session, job_id, keys=keys, category=category, batch_size=current_app.config["EXPORT_BATCH_SIZE"]
    )
    name = f"import-{job_id}-{category or 'all'}-errors.csv"
    return current_app.response_class(
        stream_with_context(chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
