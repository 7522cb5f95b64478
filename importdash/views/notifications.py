"""The notifications of an import's endings: list them, and send the failed ones again."""

from flask import Blueprint

from ..extensions import db
from ..runtime import get_runtime
from ..services import jobs, notifications

bp = Blueprint("notifications", __name__, url_prefix="/api/import")


@bp.get("/<id:job_id>/notifications")
def list_notifications(job_id):
    """List the import's notifications (webhook and email), oldest first, with how sending each went."""
    jobs.get_job(db.session, job_id)
    deliveries = notifications.list_deliveries(db.session, job_id)
    return {"notifications": [delivery.to_dict() for delivery in deliveries]}


@bp.post("/<id:job_id>/notifications/resend")
def resend_notifications(job_id):
    """Send the import's failed notifications again, with their attempts counted afresh."""
    jobs.get_job(db.session, job_id)
    resent = notifications.resend_failed(db.session, job_id)
    get_runtime().notifier.wake()
    deliveries = notifications.list_deliveries(db.session, job_id)
    return {"resent": resent, "notifications": [delivery.to_dict() for delivery in deliveries]}, 202
