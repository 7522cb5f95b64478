"""Schedules: list, create, show, replace and delete them, pause and resume them, run one now, read its runs.

Who may do what (README, "Roles"): reading is for everyone who may read imports; every change and "run now" needs
the schedules permission (an admin's), and each is written to the audit trail.
"""

from flask import Blueprint, current_app, request

from .. import audit
from ..errors import ApiError
from ..extensions import db
from ..models import ImportJob
from ..roles import Permission
from ..runtime import get_runtime
from ..security import current_user, require
from ..services import schedules
from ..services.reader import FileLimits
from . import page_args

bp = Blueprint("schedules", __name__, url_prefix="/api/schedules")


@bp.get("")
def list_schedules():
    """List every schedule, by name, with its last and next run."""
    return {"schedules": [schedules.schedule_json(schedule) for schedule in schedules.list_schedules(db.session)]}


@bp.post("")
@require(Permission.SCHEDULES)
def create_schedule():
    """Save a new schedule from JSON like {"name": "Nightly CRM", "template": "CRM export", "source":
    "https://example.com/crm.csv", "cron": "0 2 * * *", "timezone": "Europe/Berlin"}."""
    schedule = schedules.create_schedule(
        db.session,
        _body(),
        now=schedules.database_time(db.session),
        import_root=current_app.config["IMPORT_ROOT"],
        created_by=current_user(),
    )
    _record("schedule.create", schedule)
    return {"schedule": schedules.schedule_json(schedule)}, 201


@bp.get("/<reference>")
def show_schedule(reference):
    """Show one schedule, named by its id or its name."""
    return {"schedule": schedules.schedule_json(schedules.get_schedule(db.session, reference))}


@bp.put("/<reference>")
@require(Permission.SCHEDULES)
def replace_schedule(reference):
    """Replace a schedule's fields with the JSON sent; its next run follows the new cron expression."""
    schedule = schedules.update_schedule(
        db.session,
        reference,
        _body(),
        now=schedules.database_time(db.session),
        import_root=current_app.config["IMPORT_ROOT"],
    )
    _record("schedule.update", schedule)
    return {"schedule": schedules.schedule_json(schedule)}


@bp.delete("/<reference>")
@require(Permission.SCHEDULES)
def delete_schedule(reference):
    """Delete a schedule and its runs; the imports it started stay."""
    schedule = schedules.get_schedule(db.session, reference)
    schedule_id, name = schedule.id, schedule.name
    schedules.delete_schedule(db.session, reference)
    audit.record(db.session, action="schedule.delete", target=("schedule", schedule_id), details={"name": name})
    return "", 204


@bp.post("/<reference>/pause")
@require(Permission.SCHEDULES)
def pause_schedule(reference):
    """Pause a schedule: no run starts until it is resumed."""
    schedule = schedules.pause_schedule(db.session, reference)
    _record("schedule.pause", schedule)
    return {"schedule": schedules.schedule_json(schedule)}


@bp.post("/<reference>/resume")
@require(Permission.SCHEDULES)
def resume_schedule(reference):
    """Resume a paused schedule from its next due time (those missed while paused are skipped)."""
    schedule = schedules.resume_schedule(db.session, reference, now=schedules.database_time(db.session))
    _record("schedule.resume", schedule)
    return {"schedule": schedules.schedule_json(schedule)}


@bp.post("/<reference>/run")
@require(Permission.SCHEDULES)
def run_schedule(reference):
    """Run a schedule once now: fetch its file and start its import (201), or say why not in the run (200)."""
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
    _record("schedule.run", schedule, job_id=run.job_id, error=run.error)
    job = db.session.get(ImportJob, run.job_id) if run.job_id is not None else None
    answer = {"run": schedules.run_json(run, job), "schedule": schedules.schedule_json(schedule)}
    return answer, 201 if run.job_id is not None else 200


@bp.get("/<reference>/runs")
def schedule_runs(reference):
    """A schedule's runs, newest first, each with the import it started (status and counts)."""
    limit, offset = page_args(request.args)
    runs, total = schedules.run_history(db.session, reference, limit=limit, offset=offset)
    return {"runs": runs, "total": total}


def _record(action, schedule, **details):
    audit.record(
        db.session, action=action, target=("schedule", schedule.id), details={"name": schedule.name, **details}
    )


def _body():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(
            'Send the schedule as a JSON object, e.g. {"name": "Nightly CRM", "template": "CRM export", '
            '"source": "https://example.com/crm.csv", "cron": "0 2 * * *", "timezone": "Europe/Berlin"}.',
            code="invalid_body",
        )
    return body
