"""Past and running imports, and the errors of each."""
from flask import Blueprint, current_app, request
from sqlalchemy import func, select

from ..errors import NotFound
from ..extensions import db
from ..models import ErrorCategory, ImportJob, RowError
from . import choice_arg, page_args

bp = Blueprint("history", __name__, url_prefix="/api/import")


@bp.get("")
def list_jobs():
    """List imports, newest first."""
    limit, offset = page_args(request.args)
    jobs = db.session.scalars(
        select(ImportJob).order_by(ImportJob.created_at.desc(), ImportJob.id.desc()).limit(limit).offset(offset)
    )
    total = db.session.scalar(select(func.count()).select_from(ImportJob))
    return {"jobs": [job.to_dict() for job in jobs], "total": total}


@bp.get("/<int:job_id>")
def show_job(job_id):
    """Show one import with its error counts and its first errors."""
    job = _get_job(job_id)
    errors = db.session.scalars(
        select(RowError).where(RowError.job_id == job_id).order_by(RowError.row, RowError.id)
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
    job = _get_job(job_id)
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


def _get_job(job_id):
    job = db.session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(f"No import #{job_id}.")
    return job
