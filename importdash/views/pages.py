"""The dashboard's pages: the history at /, one import at /imports/<id>, the import templates at /templates, the
schedules at /schedules. Their data comes from the JSON API."""

from flask import Blueprint, current_app, render_template

from ..config import sample_imports_allowed
from ..errors import NotFound
from ..extensions import db
from ..models import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    DuplicatePolicy,
    Ending,
    ErrorCategory,
    FileFormat,
    JobMode,
    JobStatus,
    SourceKind,
)
from ..services import jobs
from ..services.schedules import SCHEDULE_MODES

bp = Blueprint("pages", __name__)

CATEGORY_LABELS = {
    ErrorCategory.DUPLICATE.value: "Duplicates",
    ErrorCategory.MISSING_VALUE.value: "Missing Values",
    ErrorCategory.INVALID_FORMAT.value: "Invalid Format",
    ErrorCategory.OTHER.value: "Other",
}

# How a template's notify_on choices read on its form.
ENDING_LABELS = {
    Ending.COMPLETED.value: "completes",
    Ending.COMPLETED_WITH_FAILURES.value: "completes with failures",
    Ending.FAILED.value: "fails",
    Ending.CANCELLED.value: "is cancelled",
}


@bp.app_context_processor
def header_settings():
    """What the header on every page needs: whether the bundled sample may be imported (its button)."""
    return {"sample_imports": sample_imports_allowed(current_app.config)}


@bp.get("/")
def dashboard():
    """Show the import buttons, the downstream's state and the live history of imports, with its filters."""
    return render_template(
        "pages/dashboard.html",
        statuses=[status.value for status in JobStatus],
        modes=[mode.value for mode in JobMode],
        page_size=current_app.config["DEFAULT_PAGE_SIZE"],
    )


@bp.get("/imports/<id:job_id>")
def job(job_id):
    """Show one import's live progress, its error categories and its errors."""
    state = jobs.job_state(db.session, job_id)
    if state is None:
        raise NotFound(f"No import #{job_id}.")
    config = current_app.config
    # The records per second the rate limit allows (0: none), so the page can tell when the limit is what it waits for.
    rate_limit = config["RATE_PER_SECOND"] * config["RECORDS_PER_CALL"]
    return render_template(
        "pages/job.html",
        job=state["job"],
        state=state,
        categories=CATEGORY_LABELS,
        rate_limit=rate_limit,
        priorities={"min": MIN_PRIORITY, "max": MAX_PRIORITY},
    )


@bp.get("/templates")
def templates():
    """Show the import templates, to create, edit and delete them."""
    return render_template(
        "pages/templates.html", formats=list(FileFormat), policies=list(DuplicatePolicy), endings=ENDING_LABELS
    )


SOURCE_LABELS = {
    SourceKind.PATH.value: "File or glob (under the import root)",
    SourceKind.URL.value: "HTTP(S) URL",
    SourceKind.S3.value: "S3 object",
}


@bp.get("/schedules")
def schedules():
    """Show the schedules with their last and next runs, to create, edit, pause, resume, run and delete them."""
    return render_template(
        "pages/schedules.html", source_kinds=list(SourceKind), source_labels=SOURCE_LABELS, modes=SCHEDULE_MODES
    )
