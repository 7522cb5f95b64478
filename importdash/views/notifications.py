"""The notifications of an import's endings: list them, and send the failed ones again."""

from flask import Blueprint

from .. import audit
from ..extensions import db
from ..roles import Permission
from ..runtime import get_runtime
from ..security import require
from ..services import jobs, notifications

bp = Blueprint("notifications", __name__, url_prefix="/api/import")


@bp.get("/<id:job_id>/notifications")
def list_notifications(job_id):
    """List the import's notifications (webhook and email), oldest first, with how sending each went."""
    jobs.get_job(db.session, job_id)
    deliveries = notifications.list_deliveries(db.session, job_id)
    return {"notifications": [delivery.to_dict() for delivery in deliveries]}


@bp.post("/<id:job_id>/notifications/resend")
@require(Permission.RETRY)
def resend_notifications(job_id):
    """Send the import's failed notifications again, with their attempts counted afresh."""
    jobs.get_job(db.session, job_id)
    resent = notifications.resend_failed(db.session, job_id)
    audit.record(db.session, action="notifications.resend", target=("import", job_id), details={"resent": resent})
    get_runtime().notifier.wake()
    deliveries = notifications.list_deliveries(db.session, job_id)
    return {"resent": resent, "notifications": [delivery.to_dict() for delivery in deliveries]}, 202
