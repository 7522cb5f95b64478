"""The downstream's state before an import starts, and a check that it answers."""

from flask import Blueprint, current_app

from .. import audit
from ..extensions import db
from ..roles import Permission
from ..runtime import get_runtime
from ..security import require
from ..services import checks

bp = Blueprint("downstream", __name__, url_prefix="/api/downstream")


@bp.get("")
def show_downstream():
    """Show the downstream: its circuit breaker, a 429's pause, and the last check's answer."""
    return {"downstream": _status()}


@bp.post("/check")
@require(Permission.DOWNSTREAM_CHECK)
def check_downstream():
    """Ask the downstream whether it answers, with a call that carries no records."""
    runtime = get_runtime()
    result = checks.check_downstream(
        runtime.downstream,
        bucket=runtime.bucket,
        wait_seconds=current_app.config["DOWNSTREAM_CHECK_WAIT_SECONDS"],
        last_check=runtime.last_check,
    )
    audit.record(db.session, action="downstream.check", details={"ok": result.answer.ok})
    return {"check": result.to_dict(), "downstream": _status()}


def _status():
    config, runtime = current_app.config, get_runtime()
    return checks.downstream_status(
        kind=config["DOWNSTREAM"],
        url=config["WEBHOOK_URL"],
        bucket=runtime.bucket,
        breaker=runtime.deliverer.breaker,
        store=runtime.limit_store,
        last_check=runtime.last_check,
    )
