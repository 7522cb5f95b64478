"""Liveness and database reachability for load balancers and monitors."""

from flask import Blueprint

from ..runtime import get_runtime

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    """Report whether the app and its database answer, within the health check's deadline."""
    if not get_runtime().health.database_answers():
        return {"status": "degraded", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}
