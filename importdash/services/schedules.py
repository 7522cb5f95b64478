"""Schedules: imports that start themselves. A schedule names a template, a source (services/sources.py), a
cron expression and the time zone it is read in; this module saves them, works out their due times, claims each
due time for exactly one instance and runs it.

Due times are computed in the schedule's zone (so "0 9 * * *" is 09:00 there in summer and in winter) and stored
in UTC. A schedule whose due times passed while no server ran runs once, for the latest of them, when a server is
back (the runs it missed are coalesced into that one); its next due time is then the first after that.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ApiError, Conflict, NotFound
from ..models import (
    ANONYMOUS_USER,
    ImportJob,
    JobMode,
    Schedule,
    ScheduleOutcome,
    ScheduleRun,
    SourceKind,
    by_id_or_name,
    is_id,
    isoformat,
)
from . import jobs, templates
from .broker import EventBroker
from .dialects import database_now
from .reader import FileLimits
from .sources import FetchedFile, check_source, discard
from .storage import UploadStorage

log = logging.getLogger(__name__)

FIELDS = ("name", "template", "source_kind", "source", "mode", "cron", "timezone", "paused")
MAX_NAME_LENGTH = 100  # the column's size
MAX_CRON_LENGTH = 255
SCHEDULE_MODES = (JobMode.BATCH, JobMode.STREAM)
RUN_NOW_OWNER = "run-now"
ABANDONED_RUN_ERROR = "The run was interrupted: its server stopped before the file was fetched and checked."
# What a run shows of the import it started.
RUN_JOB_FIELDS = ("id", "status", "source", "total_records", "processed_count", "success_count", "failed_count")


# Due times: pure functions of the expression, the zone and a moment (naive UTC datetimes, as stored).


def next_due(cron: str, timezone: str, *, after: datetime) -> datetime:
    """The first due time strictly after a moment, computed in the schedule's zone and returned in naive UTC."""
    zone = ZoneInfo(timezone)
    times = croniter(cron, after.replace(tzinfo=UTC).astimezone(zone))
    due = times.get_next(datetime)
    # When clocks go back an hour, croniter gives the repeated wall times twice. A fixed-hour expression ("30 2 * *
    # *") means once a day, as cron runs it: its second 02:30 is skipped. One that names every hour goes on by
    # the real time (every 30 minutes stays every 30 minutes).
    if _is_repeated_wall_time(due, zone) and cron.split()[1:2] != ["*"]:
        due = times.get_next(datetime)
    return due.astimezone(UTC).replace(tzinfo=None)


def _is_repeated_wall_time(moment, zone):
    """Whether a zoned time is the second occurrence of its wall time (the hour repeated when clocks go back)."""
    first = moment.replace(tzinfo=None).replace(tzinfo=zone, fold=0)
    return first.utcoffset() != moment.utcoffset()


def latest_due(cron: str, timezone: str, *, at: datetime) -> datetime:
    """The last due time at or before a moment (naive UTC)."""
    # croniter's get_prev is strictly before its start: start a microsecond later to include the moment itself.
    local = (at + timedelta(microseconds=1)).replace(tzinfo=UTC).astimezone(ZoneInfo(timezone))
    due = croniter(cron, local).get_prev(datetime)
    return due.astimezone(UTC).replace(tzinfo=None)


def due_now(schedule: Schedule, *, now: datetime) -> datetime | None:
    """The due time a schedule should run for now, or None if none has come. Due times missed while no server ran
    are coalesced: the latest one that has passed is run, once."""
    if schedule.paused or schedule.next_run_at is None or schedule.next_run_at > now:
        return None
    return max(schedule.next_run_at, latest_due(schedule.cron, schedule.timezone, at=now))


def database_time(session: Session) -> datetime:
    """Now on the database's clock (naive UTC): every instance judges due times by the same clock."""
    return session.scalar(select(database_now()))


# Saving.


def schedule_json(schedule: Schedule) -> dict:
    """A schedule as the API shows it."""
    return {
        "id": schedule.id,
        "name": schedule.name,
        "template": schedule.template.name,
        "template_id": schedule.template_id,
        "source_kind": schedule.source_kind,
        "source": schedule.source,
        "mode": schedule.mode,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "paused": schedule.paused,
        "created_by": schedule.created_by,
        "created_at": isoformat(schedule.created_at),
        "last_run_at": isoformat(schedule.last_run_at),
        "next_run_at": isoformat(schedule.next_run_at),
        "last_job_id": schedule.last_job_id,
        "last_error": schedule.last_error,
    }


def list_schedules(session: Session) -> list[Schedule]:
    """Every schedule, by name."""
    return list(session.scalars(select(Schedule).order_by(func.lower(Schedule.name), Schedule.id)))


def get_schedule(session: Session, reference: str | int) -> Schedule:
    """The schedule with this id (a number) or name; NotFound otherwise. Names are never all digits."""
    schedule = by_id_or_name(session, Schedule, reference)
    if schedule is None:
        raise NotFound(f"No schedule {reference!r}.")
    return schedule


def create_schedule(
    session: Session, data, *, now: datetime, import_root: str | None, created_by: str = ANONYMOUS_USER
) -> Schedule:
    """Check and save a new schedule from the API's JSON; 400 naming a bad field, 409 when the name is taken."""
    values = validated(session, data, import_root=import_root)
    schedule = Schedule(**values, created_by=created_by)
    schedule.next_run_at = None if schedule.paused else next_due(schedule.cron, schedule.timezone, after=now)
    _save(session, schedule)
    return schedule


def update_schedule(
    session: Session, reference: str | int, data, *, now: datetime, import_root: str | None
) -> Schedule:
    """Replace a schedule's fields with the JSON given; its next due time follows the new expression."""
    schedule = get_schedule(session, reference)
    values = validated(session, data, import_root=import_root)
    for name, value in values.items():
        setattr(schedule, name, value)
    schedule.next_run_at = None if schedule.paused else next_due(schedule.cron, schedule.timezone, after=now)
    _save(session, schedule)
    return schedule


def delete_schedule(session: Session, reference: str | int) -> None:
    """Delete a schedule and its runs' history; the imports it started stay."""
    session.delete(get_schedule(session, reference))
    session.commit()


def pause_schedule(session: Session, reference: str | int) -> Schedule:
    """Stop a schedule's due times until it is resumed (a run already started goes on)."""
    schedule = get_schedule(session, reference)
    schedule.paused = True
    schedule.next_run_at = None
    session.commit()
    return schedule


def resume_schedule(session: Session, reference: str | int, *, now: datetime) -> Schedule:
    """Go on with a paused schedule from its next due time after now (the ones missed while paused are skipped)."""
    schedule = get_schedule(session, reference)
    if schedule.paused:
        schedule.paused = False
        schedule.next_run_at = next_due(schedule.cron, schedule.timezone, after=now)
        session.commit()
    return schedule


def _save(session, schedule):
    same_name = select(Schedule.id).where(func.lower(Schedule.name) == schedule.name.lower())
    if schedule.id is not None:
        same_name = same_name.where(Schedule.id != schedule.id)
    with session.no_autoflush:
        taken = session.scalar(same_name) is not None
    if not taken:
        session.add(schedule)
        try:
            session.commit()
            return
        except IntegrityError:  # the same name saved at the same moment by another request
            pass
    session.rollback()
    raise Conflict(f"A schedule named {schedule.name!r} exists already; choose another name.")


def validated(session: Session, data, *, import_root: str | None) -> dict:
    """The model's values for a schedule's JSON; 400 naming the first field that is wrong."""
    if not isinstance(data, dict):
        raise ApiError(f"Send a schedule as a JSON object with the fields {', '.join(FIELDS)}.", code="invalid_body")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ApiError(
            f"Unknown schedule field {unknown[0]!r}; a schedule has {', '.join(FIELDS)}.", code="invalid_parameter"
        )
    name = _required_text(data, "name")
    if len(name) > MAX_NAME_LENGTH or not name.isprintable() or is_id(name):
        raise ApiError(
            f"A schedule's name is up to {MAX_NAME_LENGTH} printable characters, not only digits.",
            code="invalid_parameter",
        )
    template_reference = data.get("template")
    if (
        isinstance(template_reference, bool)
        or template_reference == ""
        or not isinstance(template_reference, str | int)
    ):
        raise ApiError("template must name a saved template (its name or id).", code="invalid_parameter")
    try:
        template = templates.get_template(session, template_reference)
    except NotFound as missing:
        raise ApiError(missing.message, code="invalid_parameter") from None
    source = _required_text(data, "source")
    kind = data.get("source_kind") or infer_source_kind(source)
    try:
        kind = SourceKind(kind)
    except ValueError:
        choices = ", ".join(member.value for member in SourceKind)
        raise ApiError(f"source_kind must be one of {choices}; got {kind!r}.", code="invalid_parameter") from None
    mode = data.get("mode") or JobMode.BATCH.value
    if mode not in [member.value for member in SCHEDULE_MODES]:
        raise ApiError(f"mode must be batch or stream; got {mode!r}.", code="invalid_parameter")
    cron = _required_text(data, "cron")
    timezone = data.get("timezone") or "UTC"
    paused = data.get("paused", False)
    if not isinstance(paused, bool):
        raise ApiError("paused must be true or false.", code="invalid_parameter")
    return {
        "name": name,
        "template_id": template.id,
        "source_kind": kind.value,
        "source": check_source(kind, source, import_root=import_root),
        "mode": mode,
        "cron": check_cron(cron),
        "timezone": check_timezone(timezone),
        "paused": paused,
    }


def infer_source_kind(source: str) -> str:
    """A source's kind from its form: http(s):// is a URL, s3:// an S3 object, anything else a path."""
    lowered = source.lower()
    if lowered.startswith(("http://", "https://")):
        return SourceKind.URL.value
    if lowered.startswith("s3://"):
        return SourceKind.S3.value
    return SourceKind.PATH.value


def check_cron(cron: str) -> str:
    """A cron expression of five fields (minute hour day month weekday) or a nickname such as @daily; 400 else."""
    cron = " ".join(cron.split())
    fields = cron.split(" ")
    valid = len(cron) <= MAX_CRON_LENGTH and (len(fields) == 5 or (len(fields) == 1 and cron.startswith("@")))
    if not (valid and croniter.is_valid(cron)) or cron in ("@reboot",):
        raise ApiError(
            f"cron must be five fields (minute hour day-of-month month day-of-week, e.g. '0 6 * * 1-5') or one "
            f"of @hourly, @daily, @weekly, @monthly, @yearly; got {cron!r}.",
            code="invalid_parameter",
        )
    return cron


def check_timezone(timezone) -> str:
    """An IANA time zone name such as Europe/Berlin; 400 otherwise."""
    try:
        if not isinstance(timezone, str) or not timezone or "\x00" in timezone:
            raise ValueError
        ZoneInfo(timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ApiError(
            f"timezone must be an IANA time zone such as Europe/Berlin or UTC; got {timezone!r}.",
            code="invalid_parameter",
        ) from None
    return timezone


def _required_text(data, field):
    value = data.get(field)
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ApiError(f"A schedule needs {field} (text).", code="invalid_parameter")
    return value.strip()


# History.


def run_json(run: ScheduleRun, job: ImportJob | None) -> dict:
    """One run as the API shows it, with the import it started (its status and counts) when there is one."""
    return {
        "id": run.id,
        "due_at": isoformat(run.due_at),
        "claimed_by": run.claimed_by,
        "claimed_at": isoformat(run.claimed_at),
        "outcome": run.outcome,
        "error": run.error,
        "job": None if job is None else {field: getattr(job, field) for field in RUN_JOB_FIELDS},
    }


def run_history(session: Session, reference: str | int, *, limit: int, offset: int) -> tuple[list[dict], int]:
    """A schedule's runs, newest first, each with its import; and how many there are."""
    schedule = get_schedule(session, reference)
    total = session.scalar(select(func.count()).select_from(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id))
    rows = session.execute(
        select(ScheduleRun, ImportJob)
        .outerjoin(ImportJob, ImportJob.id == ScheduleRun.job_id)
        .where(ScheduleRun.schedule_id == schedule.id)
        .order_by(ScheduleRun.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [run_json(run, job) for run, job in rows], total


# Running.


def claim_run(session: Session, schedule: Schedule, *, due_at: datetime, now: datetime, owner: str) -> int | None:
    """Claim one due time of a schedule for owner: insert its run and move the schedule on to its next due time,
    in one transaction. The unique (schedule_id, due_at) lets exactly one claimer commit; the others get None."""
    run = ScheduleRun(schedule_id=schedule.id, due_at=due_at, claimed_by=owner, claimed_at=now)
    session.add(run)
    schedule.last_run_at = due_at
    if schedule.next_run_at is not None and schedule.next_run_at <= due_at:
        schedule.next_run_at = next_due(schedule.cron, schedule.timezone, after=max(now, due_at))
    try:
        session.commit()
    except IntegrityError:  # another instance claimed this due time first
        session.rollback()
        return None
    return run.id


def end_abandoned_runs(session: Session, *, claimed_before: datetime) -> int:
    """End the runs claimed before a moment that never got an outcome (their process died while fetching), so
    that none shows as running forever; return how many. Their due times are not run again."""
    abandoned = session.scalars(
        select(ScheduleRun).where(ScheduleRun.outcome.is_(None), ScheduleRun.claimed_at < claimed_before)
    ).all()
    for run in abandoned:
        run.outcome = ScheduleOutcome.FAILED.value
        run.error = ABANDONED_RUN_ERROR
    session.commit()
    return len(abandoned)


def due_schedule_ids(session: Session, *, now: datetime) -> list[int]:
    """The ids of the schedules that have a due time at or before now."""
    return list(
        session.scalars(
            select(Schedule.id)
            .where(Schedule.paused.is_(False), Schedule.next_run_at <= now)
            .order_by(Schedule.next_run_at)
        )
    )


def perform_run(
    session: Session,
    run_id: int,
    *,
    fetch: Callable[[str, str], FetchedFile],
    broker: EventBroker,
    storage: UploadStorage,
    max_line_length: int,
    file_limits: FileLimits,
) -> ScheduleRun:
    """Fetch a claimed run's file and create its import, as an upload's, with the schedule's template; or record
    why not on the run and the schedule. Returns the run; the import, if any, is its job_id (not yet submitted)."""
    run = session.get(ScheduleRun, run_id)
    schedule = session.get(Schedule, run.schedule_id)
    name, template_name = schedule.name, schedule.template.name
    job_id, error = None, None
    fetched = None
    try:
        fetched = fetch(schedule.source_kind, schedule.source)
        job = jobs.create_job(
            session,
            broker,
            mode=schedule.mode,
            path=fetched.path,
            source=fetched.name,
            template=template_name,
            store_in=storage,
            started_by=f"schedule:{name}",
            max_line_length=max_line_length,
            file_limits=file_limits,
        )
        job_id = job.id
    except ApiError as refused:  # a source refused, a file that is not one to import, a template gone
        session.rollback()
        error = refused.message
    except Exception as failure:  # a run always ends with a reason; the details go to the log, not to the page
        session.rollback()
        log.exception("schedule %r: run #%s failed", name, run_id)
        error = f"The run failed: {type(failure).__name__}. The server's log has the details."
    finally:
        if fetched is not None:
            discard(fetched)
    run = session.get(ScheduleRun, run_id)
    schedule = session.get(Schedule, run.schedule_id)
    run.job_id, run.error = job_id, error
    run.outcome = (ScheduleOutcome.STARTED if error is None else ScheduleOutcome.FAILED).value
    if schedule is not None:
        schedule.last_error = error
        if job_id is not None:
            schedule.last_job_id = job_id
    session.commit()
    if error is not None:
        log.warning("schedule %r: run #%s failed: %s", name, run_id, error)
    else:
        log.info("schedule %r: run #%s started import #%s", name, run_id, job_id)
    return run


def run_due(
    session: Session,
    *,
    now: datetime,
    owner: str,
    fetch: Callable[[str, str], FetchedFile],
    broker: EventBroker,
    storage: UploadStorage,
    max_line_length: int,
    file_limits: FileLimits,
) -> list[ScheduleRun]:
    """Claim and perform every schedule's due run (one per schedule, missed ones coalesced); return the runs this
    owner performed. A due time another instance claimed first is left to it."""
    performed = []
    for schedule_id in due_schedule_ids(session, now=now):
        schedule = session.get(Schedule, schedule_id)
        session.refresh(schedule)  # another instance may have moved it on since the list was read
        due_at = due_now(schedule, now=now) if schedule is not None else None
        if due_at is None:
            continue
        run_id = claim_run(session, schedule, due_at=due_at, now=now, owner=owner)
        if run_id is not None:
            performed.append(
                perform_run(
                    session,
                    run_id,
                    fetch=fetch,
                    broker=broker,
                    storage=storage,
                    max_line_length=max_line_length,
                    file_limits=file_limits,
                )
            )
    return performed


def run_now(
    session: Session,
    reference: str | int,
    *,
    now: datetime,
    owner: str,
    fetch: Callable[[str, str], FetchedFile],
    broker: EventBroker,
    storage: UploadStorage,
    max_line_length: int,
    file_limits: FileLimits,
) -> ScheduleRun:
    """Run a schedule once now, paused or not, besides its due times; 409 if a run for this very moment exists."""
    schedule = get_schedule(session, reference)
    run_id = claim_run(session, schedule, due_at=now, now=now, owner=owner)
    if run_id is None:
        raise Conflict(f"Schedule {schedule.name!r} has just been run; try again in a moment.")
    return perform_run(
        session,
        run_id,
        fetch=fetch,
        broker=broker,
        storage=storage,
        max_line_length=max_line_length,
        file_limits=file_limits,
    )
