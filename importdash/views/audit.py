"""The audit trail, for admins: a page, a filtered JSON list and a CSV export."""

from datetime import UTC, datetime

from flask import Blueprint, current_app, render_template, request, stream_with_context

from ..errors import ApiError
from ..extensions import db
from ..roles import Permission
from ..security import require
from ..services import audit_log
from . import page_args

bp = Blueprint("audit", __name__)


@bp.get("/audit")
@require(Permission.AUDIT)
def audit_page():
    """Show the audit trail with its filters and a link to the CSV."""
    return render_template("audit/audit.html")


@bp.get("/api/audit")
@require(Permission.AUDIT)
def list_events():
    """Page through the audit trail, newest first, filtered by actor, action, target and time."""
    limit, offset = page_args(request.args)
    events, total = audit_log.event_page(db.session, where=_filter(request.args), limit=limit, offset=offset)
    return {"events": events, "total": total}


@bp.get("/api/audit.csv")
@require(Permission.AUDIT)
def export_events():
    """Download the audit trail (with the same filters) as CSV, oldest first, streamed as it is read."""
    chunks = audit_log.export_csv(
        db.session, where=_filter(request.args), batch_size=current_app.config["EXPORT_BATCH_SIZE"]
    )
    return current_app.response_class(
        stream_with_context(chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


def _filter(args):
    return audit_log.AuditFilter(
        actor=_text(args, "actor"),
        action=_text(args, "action"),
        target=_text(args, "target"),
        since=_moment(args, "since"),
        until=_moment(args, "until"),
    )


def _text(args, name):
    value = args.get(name) or None
    if value is not None and "\x00" in value:  # PostgreSQL's text cannot hold it, so nothing could match
        raise ApiError(f"{name} cannot contain a NUL character.", code="invalid_parameter")
    return value


def _moment(args, name):
    """An ISO 8601 date or time (UTC unless it says otherwise) as the naive UTC the database keeps; 400 otherwise."""
    raw = args.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):  # OverflowError: a time zone moves it past year 1 or 9999
        raise ApiError(
            f"{name} must be an ISO 8601 date or time, e.g. 2026-12-07 or 2026-12-07T08:00:00Z; got {raw!r}.",
            code="invalid_parameter",
        ) from None
    return moment
