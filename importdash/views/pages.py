"""The dashboard's pages: the history at /, one import at /imports/<id>, the import templates at /templates.
Their data comes from the JSON API."""

from flask import Blueprint, current_app, render_template

from ..errors import NotFound
from ..extensions import db
from ..models import DuplicatePolicy, ErrorCategory, FileFormat
from ..services import jobs

bp = Blueprint("pages", __name__)

CATEGORY_LABELS = {
    ErrorCategory.DUPLICATE.value: "Duplicates",
    ErrorCategory.MISSING_VALUE.value: "Missing Values",
    ErrorCategory.INVALID_FORMAT.value: "Invalid Format",
    ErrorCategory.OTHER.value: "Other",
}


@bp.get("/")
def dashboard():
    """Show the import buttons and the live history of imports."""
    return render_template("pages/dashboard.html")


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
        "pages/job.html", job=state["job"], state=state, categories=CATEGORY_LABELS, rate_limit=rate_limit
    )


@bp.get("/templates")
def templates():
    """Show the import templates, to create, edit and delete them."""
    return render_template("pages/templates.html", formats=list(FileFormat), policies=list(DuplicatePolicy))
