"""The dashboard's pages: the history at /, one import at /imports/<id>. Their data comes from the JSON API."""

from flask import Blueprint, current_app, render_template

from ..errors import NotFound
from ..extensions import db
from ..models import ErrorCategory
from ..runtime import get_runtime
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
    # While the total is unknown (a stream reads its file as it goes), the file's lines give an estimate.
    estimate = jobs.estimated_total(db.session, job_id, storage=get_runtime().storage)
    config = current_app.config
    # The records per second the rate limit allows (0: none), so the page can tell when the limit is what it waits for.
    rate_limit = config["RATE_PER_SECOND"] * config["RECORDS_PER_CALL"]
    return render_template(
        "pages/job.html",
        job=state["job"],
        state=state,
        estimate=estimate,
        categories=CATEGORY_LABELS,
        rate_limit=rate_limit,
    )
