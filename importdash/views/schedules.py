"""Schedules: list, create, show, replace and delete them, pause and resume them, run one now, read its runs.

Who may do what (README, "Schedules"): reading is for everyone who may read imports; every change and "run now"
is an admin's. Each such endpoint says so in its first line, require_admin(), which the accounts' role check
takes over.
"""

from flask import Blueprint, current_app, request

from ..errors import ApiError
from ..extensions import db
from ..models import ImportJob
from ..runtime import get_runtime
from ..security import current_user
from ..services import schedules
from ..services.reader import FileLimits
from . import page_args

bp = Blueprint("schedules", __name__, url_prefix="/api/schedules")


def require_admin():
    """Refuse anyone who is not an admin. Today there is one user, who is every role; the accounts' role check
    (viewer, operator, admin) replaces this body."""


@bp.get("")
def list_schedules():
    """List every schedule, by name, with its last and next run."""
    return {"schedules": [schedules.schedule_json(schedule) for schedule in schedules.list_schedules(db.session)]}


@bp.post("")
def create_schedule():
    """Save a new schedule from JSON like {"name": "Nightly CRM", "template": "CRM export", "source":
    "https://example.com/crm.csv", "cron": "0 2 * * *", "timezone": "Europe/Berlin"}."""
    require_admin()
    schedule = schedules.create_schedule(
        db.session,
        _body(),
        now=schedules.database_time(db.session),
        import_root=current_app.config["IMPORT_ROOT"],
        created_by=current_user(),
    )
    return {"schedule": schedules.schedule_json(schedule)}, 201


@bp.get("/<reference>")
def show_schedule(reference):
    """Show one schedule, named by its id or its name."""
    return {"schedule": schedules.schedule_json(schedules.get_schedule(db.session, reference))}


@bp.put("/<reference>")
def replace_schedule(reference):
    """Replace a schedule's fields with the JSON sent; its next run follows the new cron expression."""
    require_admin()
    schedule = schedules.update_schedule(
        db.session,
        reference,
        _body(),
        now=schedules.database_time(db.session),
        import_root=current_app.config["IMPORT_ROOT"],
    )
    return {"schedule": schedules.schedule_json(schedule)}


@bp.delete("/<reference>")
def delete_schedule(reference):
    """Delete a schedule and its runs; the imports it started stay."""
    require_admin()
    schedules.delete_schedule(db.session, reference)
    return "", 204


@bp.post("/<reference>/pause")
def pause_schedule(reference):
    """Pause a schedule: no run starts until it is resumed."""
    require_admin()
    return {"schedule": schedules.schedule_json(schedules.pause_schedule(db.session, reference))}


@bp.post("/<reference>/resume")
def resume_schedule(reference):
    """Resume a paused schedule from its next due time (those missed while paused are skipped)."""
    require_admin()
    schedule = schedules.resume_schedule(db.session, reference, now=schedules.database_time(db.session))
    return {"schedule": schedules.schedule_json(schedule)}


@bp.post("/<reference>/run")
def run_schedule(reference):
    """Run a schedule once now: fetch its file and start its import (201), or say why not in the run (200)."""
    require_admin()
    runtime = get_runtime()
    run = schedules.run_now(
        db.session,
        reference,
        now=schedules.database_time(db.session),
        owner=schedules.RUN_NOW_OWNER,
        fetch=runtime.fetch,
        broker=runtime.broker,
        storage=runtime.storage,
        max_line_length=current_app.config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(current_app.config),
    )
    if run.job_id is not None:
        runtime.runner.submit(run.job_id)
    schedule = schedules.get_schedule(db.session, reference)
    job = db.session.get(ImportJob, run.job_id) if run.job_id is not None else None
    answer = {"run": schedules.run_json(run, job), "schedule": schedules.schedule_json(schedule)}
    return answer, 201 if run.job_id is not None else 200


@bp.get("/<reference>/runs")
def schedule_runs(reference):
    """A schedule's runs, newest first, each with the import it started (status and counts)."""
    limit, offset = page_args(request.args)
    runs, total = schedules.run_history(db.session, reference, limit=limit, offset=offset)
    return {"runs": runs, "total": total}


def _body():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(
            'Send the schedule as a JSON object, e.g. {"name": "Nightly CRM", "template": "CRM export", '
            '"source": "https://example.com/crm.csv", "cron": "0 2 * * *", "timezone": "Europe/Berlin"}.',
            code="invalid_body",
        )
    return body
