"""The analytics page at /analytics, its charts as SVG images, and its figures as JSON at /api/analytics."""

from flask import Blueprint, current_app, render_template, request

from ..errors import ApiError, NotFound
from ..extensions import db
from ..models import utcnow
from ..services import analytics, charts, jobs
from ..services.analytics import RANGES_DAYS, AnalyticsLimits
from ..services.jobs import get_job
from . import id_arg

bp = Blueprint("analytics", __name__)

# A chart is an SVG document shown through <img>: it may use the stylesheet inside it, and nothing else (no
# script, no fetch), whether a browser applies an image's own policy or not. The page's policy is unchanged.
CHART_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


@bp.get("/analytics")
def page():
    """Show the charts across all imports over a date range, and one import's delivery rate."""
    days = days_arg(request.args)
    job_id = id_arg(request.args, "job")
    if job_id is not None:
        get_job(db.session, job_id)  # 404 for an unknown import, rather than a broken chart
    picker, _ = jobs.list_jobs(db.session, limit=current_app.config["IMPORT_PICKER_SIZE"])
    return render_template(
        "analytics/page.html",
        days=days,
        ranges=RANGES_DAYS,
        figures=_summary(days),
        charts={
            name: {"wide": charts.chart_size(name, compact=False), "compact": charts.chart_size(name, compact=True)}
            for name in [*charts.SUMMARY_CHARTS, "throughput"]
        },
        job_id=job_id or (picker[0]["id"] if picker else None),
        picker=picker,
    )


@bp.get("/analytics/charts/<name>.svg")
def chart(name):
    """Draw one chart of the analytics page over the date range."""
    draw = charts.SUMMARY_CHARTS.get(name)
    if draw is None:
        raise NotFound(f"No chart named {name!r}.")
    return _svg(draw(_summary(days_arg(request.args)), compact=compact_arg(request.args)))


@bp.get("/analytics/charts/imports/<id:job_id>/throughput.svg")
def throughput_chart(job_id):
    """Draw one import's rows per second over its runs."""
    rates = analytics.job_throughput(db.session, job_id, now=utcnow())
    return _svg(charts.throughput(rates, compact=compact_arg(request.args)))


@bp.get("/api/analytics")
def figures():
    """Return the figures across imports over the date range (?days=7, 30 or 90)."""
    return _summary(days_arg(request.args))


@bp.get("/api/analytics/imports/<id:job_id>")
def job_figures(job_id):
    """Return one import's rows per second over its runs."""
    return analytics.job_throughput(db.session, job_id, now=utcnow())


def days_arg(args):
    """Read ?days= as one of the offered ranges; the configured default when it is not sent."""
    raw = args.get("days")
    if raw in (None, ""):
        return current_app.config["ANALYTICS_DEFAULT_DAYS"]
    allowed = [str(days) for days in RANGES_DAYS]
    if raw not in allowed:
        raise ApiError(f"days must be one of {', '.join(allowed)}; got {raw!r}", code="invalid_parameter")
    return int(raw)


def compact_arg(args):
    """Read ?compact=1, which draws a chart narrower for phones (its text keeps its size there)."""
    raw = args.get("compact", "")
    if raw not in ("", "0", "1"):
        raise ApiError(f"compact must be 0 or 1; got {raw!r}", code="invalid_parameter")
    return raw == "1"


def _summary(days):
    config = current_app.config
    return analytics.summary(
        db.session,
        days=days,
        today=utcnow().date(),
        rate_allowed=analytics.rate_allowed(config),
        limits=AnalyticsLimits.from_config(config),
    )


def _svg(document):
    response = current_app.response_class(document, mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = CHART_POLICY
    response.headers["Cache-Control"] = "no-cache"
    return response
