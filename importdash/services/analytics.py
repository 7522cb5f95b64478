"""Figures across imports for the analytics page: imports and rows per day, success rate, durations, error
categories, the delivery rate used against the one allowed, the most frequent downstream errors, and one
job's rows per second over its runs.

Sums and counts per day are SQL that runs on SQLite and PostgreSQL; durations, rates and percentiles are worked
out in Python over a bounded set of the newest jobs and runs.
"""

import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from ..models import ERROR_COUNTERS, ErrorCategory, ImportJob, JobRun, JobStatus, Record, RecordStatus, RowError
from .jobs import get_job

RANGES_DAYS = (7, 30, 90)  # the date ranges the page and the API offer, in days back from today
PERCENTILE = 95  # the duration percentile shown beside the average
STREAM_BATCH = 1_000  # failed records fetched at a time while their answers are grouped

# A downstream's message names the record it refused; these parts are replaced so that one kind of refusal is
# counted as one group, whichever record it named.
_EMAIL = re.compile(r"[^\s\"'<>@,;:()]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_LONG_ID = re.compile(r"\b(?=[0-9a-f-]*\d)[0-9a-f]{8,}(?:-[0-9a-f]+)*\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")
UNSPECIFIED = "(no message)"


@dataclass(frozen=True)
class AnalyticsLimits:
    """How much one request reads at most, so the page stays quick with many thousands of imports."""

    max_jobs: int  # newest ended jobs (and runs) whose durations and rates are read
    max_failed_records: int  # newest failed records whose downstream answers are grouped
    top_errors: int  # downstream error groups listed

    @classmethod
    def from_config(cls, config) -> "AnalyticsLimits":
        return cls(
            max_jobs=config["ANALYTICS_MAX_JOBS"],
            max_failed_records=config["ANALYTICS_MAX_FAILED_RECORDS"],
            top_errors=config["ANALYTICS_TOP_ERRORS"],
        )


def rate_allowed(config) -> float:
    """The records per second the rate limit allows (0: no limit): calls a second times records a call."""
    return config["RATE_PER_SECOND"] * config["RECORDS_PER_CALL"]


def summary(session: Session, *, days: int, today: date, rate_allowed: float, limits: AnalyticsLimits) -> dict:
    """Return the figures of the imports created in the last `days` days up to and including `today` (UTC)."""
    first_day = today - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time())
    until = datetime.combine(today + timedelta(days=1), datetime.min.time())
    in_range = and_(ImportJob.created_at >= since, ImportJob.created_at < until)
    day_list = [first_day + timedelta(days=offset) for offset in range(days)]

    per_day = {day: _empty_day(day) for day in day_list}
    for row in session.execute(_daily_totals(in_range)):
        figures = per_day.get(_as_date(row.day))
        if figures is None:  # outside the days asked for (cannot happen with the filter; kept safe)
            continue
        figures["imports"] = row.imports
        figures["rows"] = row.rows or 0
        figures["succeeded"] = row.succeeded or 0
        figures["failed"] = row.failed or 0
        figures["completed_imports"] = row.completed or 0
        figures["ended_imports"] = row.ended or 0
        figures["errors"] = {category: getattr(row, category) or 0 for category in ERROR_COUNTERS}

    durations, jobs_sampled = _durations(session, in_range, limits.max_jobs)
    for day, seconds in _group_by_day(durations).items():
        if day in per_day:
            per_day[day]["duration"] = _duration_figures(seconds)
    rates, runs_sampled = _run_rates(session, since, until, limits.max_jobs)
    for day, (sent, seconds) in rates.items():
        if day in per_day:
            per_day[day]["rate_used"] = round(sent / seconds, 3) if seconds > 0 else None

    totals = _totals(per_day.values(), [seconds for _, seconds in durations])
    errors, failed_sampled = top_downstream_errors(
        session, in_range, max_records=limits.max_failed_records, top=limits.top_errors
    )
    return {
        "range": {"days": days, "from": first_day.isoformat(), "to": today.isoformat()},
        "rate_allowed": rate_allowed or None,
        "totals": totals,
        "days": [_public_day(per_day[day]) for day in day_list],
        "downstream_errors": errors,
        # Whether a bound cut what was read: the figures then cover the newest jobs, runs or failures only.
        "sampled": {"durations": jobs_sampled, "rates": runs_sampled, "downstream_errors": failed_sampled},
    }


def job_throughput(session: Session, job_id: int, *, now: datetime) -> dict:
    """Return one job's delivery rate over time: each run's rows per second, at seconds since the job started.

    job_runs keeps a run's sent count and its start and end, so each run gives one rate for its span; a run still
    going counts up to now. Finer points would need samples the schema does not keep.
    """
    job = get_job(session, job_id)
    runs = session.scalars(select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id)).all()
    origin = runs[0].started_at if runs else job.started_at
    spans = []
    for run in runs:
        end = run.ended_at or now
        seconds = max((end - run.started_at).total_seconds(), 0.0)
        spans.append(
            {
                "kind": run.kind,
                "start_seconds": round((run.started_at - origin).total_seconds(), 3),
                "end_seconds": round((end - origin).total_seconds(), 3),
                "sent": run.sent,
                "rows_per_second": round(run.sent / seconds, 3) if seconds > 0 else None,
                "running": run.ended_at is None,
            }
        )
    return {"job": {"id": job.id, "source": job.source, "status": job.status}, "runs": spans}


def top_downstream_errors(session: Session, in_range, *, max_records: int, top: int) -> tuple[list[dict], bool]:
    """Group the failed records of the jobs in range by the downstream's status and normalised message.

    Reads at most max_records of the newest failures (one pass, rows streamed); returns the top groups, most
    frequent first, and whether the bound cut the read.
    """
    # A call that failed as a whole stored no answer: the record's error row (category other) says why.
    refusal = RowError.__table__.alias("refusal")
    query = (
        select(Record.response, refusal.c.message)
        .join(ImportJob, ImportJob.id == Record.job_id)
        .outerjoin(
            refusal,
            and_(
                refusal.c.job_id == Record.job_id,
                refusal.c.row == Record.row,
                refusal.c.category == ErrorCategory.OTHER.value,
            ),
        )
        .where(in_range, Record.status == RecordStatus.FAILED.value)
        .order_by(Record.id.desc())
        .limit(max_records + 1)
    )
    groups = Counter()
    read = 0
    result = session.execute(query.execution_options(yield_per=STREAM_BATCH))
    try:
        for response, message in result:
            read += 1
            if read > max_records:
                break
            groups[error_group(response, message)] += 1
    finally:
        result.close()  # stopping at the bound leaves no server-side cursor open
    ranked = sorted(groups.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [{"status": status, "message": text, "count": count} for (status, text), count in ranked], read > max_records


def error_group(response: dict | None, message: str | None) -> tuple[str, str]:
    """Return (status, normalised message) for one refusal: what the downstream said, without what it named."""
    status = ""
    text = message
    if isinstance(response, dict):
        status = str(response.get("status") or response.get("code") or "")
        text = response.get("reason") or response.get("message") or response.get("error") or message
    return status or "-", normalise_message(text)


def normalise_message(text: object) -> str:
    """Replace emails, long ids and numbers with placeholders, fold spaces and case, and cut to a line."""
    if text is None or str(text).strip() == "":
        return UNSPECIFIED
    value = _EMAIL.sub("<email>", str(text))
    value = _LONG_ID.sub("<id>", value)
    value = _NUMBER.sub("<n>", value)
    value = _SPACE.sub(" ", value).strip().lower()
    return value[:200]


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (share in 0..100) of the values; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(share / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def _daily_totals(in_range):
    day = func.date(ImportJob.created_at).label("day")
    ended = [JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value]
    return (
        select(
            day,
            func.count().label("imports"),
            func.sum(func.coalesce(ImportJob.total_records, ImportJob.rows_read)).label("rows"),
            func.sum(ImportJob.success_count).label("succeeded"),
            func.sum(ImportJob.failed_count).label("failed"),
            func.sum(_when(ImportJob.status == JobStatus.COMPLETED.value)).label("completed"),
            func.sum(_when(ImportJob.status.in_(ended))).label("ended"),
            *(func.sum(column).label(category) for category, column in ERROR_COUNTERS.items()),
        )
        .where(in_range)
        .group_by(day)
    )


def _when(condition):
    return case((condition, 1), else_=0)


def _durations(session, in_range, max_jobs):
    """(day, seconds) of the newest ended jobs in range, at most max_jobs of them, and whether more were left out."""
    rows = session.execute(
        select(ImportJob.created_at, ImportJob.started_at, ImportJob.completed_at)
        .where(in_range, ImportJob.started_at.is_not(None), ImportJob.completed_at.is_not(None))
        .order_by(ImportJob.created_at.desc(), ImportJob.id.desc())
        .limit(max_jobs + 1)
    ).all()
    durations = [
        (row.created_at.date(), max((row.completed_at - row.started_at).total_seconds(), 0.0))
        for row in rows[:max_jobs]
    ]
    return durations, len(rows) > max_jobs


def _run_rates(session, since, until, max_runs):
    """Per day of their start: records sent and seconds spent by the newest ended runs that sent any."""
    rows = session.execute(
        select(JobRun.started_at, JobRun.ended_at, JobRun.sent)
        .where(JobRun.started_at >= since, JobRun.started_at < until, JobRun.ended_at.is_not(None), JobRun.sent > 0)
        .order_by(JobRun.started_at.desc(), JobRun.id.desc())
        .limit(max_runs + 1)
    ).all()
    per_day = {}
    for row in rows[:max_runs]:
        sent, seconds = per_day.get(row.started_at.date(), (0, 0.0))
        per_day[row.started_at.date()] = (sent + row.sent, seconds + (row.ended_at - row.started_at).total_seconds())
    return per_day, len(rows) > max_runs


def _group_by_day(durations):
    grouped = {}
    for day, seconds in durations:
        grouped.setdefault(day, []).append(seconds)
    return grouped


def _duration_figures(seconds):
    if not seconds:
        return {"average_seconds": None, "p95_seconds": None, "count": 0}
    return {
        "average_seconds": round(sum(seconds) / len(seconds), 3),
        "p95_seconds": round(percentile(seconds, PERCENTILE), 3),
        "count": len(seconds),
    }


def _empty_day(day):
    return {
        "date": day.isoformat(),
        "imports": 0,
        "rows": 0,
        "succeeded": 0,
        "failed": 0,
        "completed_imports": 0,
        "ended_imports": 0,
        "errors": {category: 0 for category in ERROR_COUNTERS},
        "duration": _duration_figures([]),
        "rate_used": None,
    }


def _public_day(figures):
    """A day as the API shows it: the counts, and the rates worked out from them (None where nothing ended)."""
    ended = figures.pop("ended_imports")
    completed = figures.pop("completed_imports")
    delivered = figures["succeeded"] + figures["failed"]
    return {
        **figures,
        "success_rate": round(completed / ended, 4) if ended else None,
        "delivery_success_rate": round(figures["succeeded"] / delivered, 4) if delivered else None,
    }


def _totals(days, all_seconds):
    days = list(days)
    ended = sum(day["ended_imports"] for day in days)
    completed = sum(day["completed_imports"] for day in days)
    succeeded = sum(day["succeeded"] for day in days)
    failed = sum(day["failed"] for day in days)
    return {
        "imports": sum(day["imports"] for day in days),
        "rows": sum(day["rows"] for day in days),
        "succeeded": succeeded,
        "failed": failed,
        "success_rate": round(completed / ended, 4) if ended else None,
        "delivery_success_rate": round(succeeded / (succeeded + failed), 4) if succeeded + failed else None,
        "duration": _duration_figures(all_seconds),
        "errors": {category: sum(day["errors"][category] for day in days) for category in ERROR_COUNTERS},
    }


def _as_date(value):
    """SQLite's date() gives text, PostgreSQL's a date."""
    return value if isinstance(value, date) else date.fromisoformat(value)
