"""Compare two imports: the page at /compare, the JSON at /api/compare and the CSV at /api/compare.csv."""

from flask import Blueprint, current_app, render_template, request, stream_with_context

from ..errors import ApiError
from ..extensions import db
from ..services import compare, jobs
from ..services.compare import Difference
from . import choice_arg, id_arg, page_args

bp = Blueprint("compare", __name__)


@bp.get("/compare")
def page():
    """Show two pickers and, once both imports are chosen, the counts and a page of one kind of difference."""
    a, b = id_arg(request.args, "a"), id_arg(request.args, "b")
    difference = choice_arg(request.args, "show", Difference) or Difference.ONLY_A.value
    limit, offset = page_args(request.args)
    picker, _ = jobs.list_jobs(db.session, limit=current_app.config["IMPORT_PICKER_SIZE"])
    result = None
    if a is not None and b is not None:
        result = _compared(a, b, difference, limit, offset)
    return render_template(
        "compare/page.html",
        a=a,
        b=b,
        picker=picker,
        result=result,
        differences=list(Difference),
        limit=limit,
        offset=offset,
    )


@bp.get("/api/compare")
def compared():
    """Return the counts per kind of difference between imports a and b, and a page of one kind (?difference=)."""
    a, b = _pair(request.args)
    difference = choice_arg(request.args, "difference", Difference) or Difference.ONLY_A.value
    limit, offset = page_args(request.args)
    return _compared(a, b, difference, limit, offset)


@bp.get("/api/compare.csv")
def compared_csv():
    """Download every difference between imports a and b as CSV, streamed as it is read."""
    a, b = _pair(request.args)
    name, chunks = compare.compare_csv(db.session, a, b)
    return current_app.response_class(
        stream_with_context(chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _pair(args):
    a, b = id_arg(args, "a"), id_arg(args, "b")
    if a is None or b is None:
        raise ApiError("Name the two imports to compare: ?a=<id>&b=<id>.", code="invalid_parameter")
    return a, b


def _compared(a, b, difference, limit, offset):
    result = compare.compare_counts(db.session, a, b)
    rows = compare.compare_page(db.session, a, b, difference=difference, limit=limit, offset=offset)
    return result | {"difference": difference, "rows": rows, "total": result["counts"][difference]}
