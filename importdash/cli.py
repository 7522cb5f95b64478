"""Command-line commands, run as `importdash <command>` or `flask --app importdash <command>`.

Every command calls services/jobs.py, as the views do, and shows a job the way the API gives it (a dict): one
row of `list`, the summary an import ends with and the progress line are each written once, below.
"""

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta

import click
from flask import current_app
from flask.cli import FlaskGroup

from . import audit, create_app, schema
from .errors import ApiError, MappingRequired
from .extensions import db
from .models import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MIN_PRIORITY,
    DuplicatePolicy,
    Ending,
    ErrorCategory,
    FileFormat,
    JobMode,
    JobStatus,
    isoformat,
    stored,
    utcnow,
)
from .runtime import get_runtime
from .services import analytics, checks, compare, jobs, notifications, previews, schedules, telemetry, templates
from .services.analytics import RANGES_DAYS, AnalyticsLimits
from .services.compare import Difference
from .services.ledger import Lease
from .services.mapping import ColumnMapping
from .services.reader import FileLimits

# `importdash <command>`: the flask command with this app, so `importdash run`, `importdash db upgrade` and every
# command below work as they do under `flask --app importdash`.
main = FlaskGroup(
    name="importdash",
    create_app=create_app,
    help="Import contact files and follow the imports: the commands of `flask --app importdash`.",
)


# Manage the database.


@click.command("init-db")
@click.option("--drop", is_flag=True, help="Drop every table and the schema version first (deletes all data).")
def init_db_command(drop):
    """Create the database, or upgrade it to this version's schema keeping every row."""
    if drop:
        schema.drop_tables(db.engine)
    done = schema.bring_to_head(db.engine, upgrade_behind=True)
    click.echo(f"Database ready ({done}): {db.engine.url.render_as_string(hide_password=True)}")


@click.command("clear-records")
@click.option("--yes", is_flag=True, help="Confirm deleting every record, error and import.")
def clear_records_command(yes):
    """Delete every record, error and import."""
    if not yes:
        raise click.UsageError("This deletes every record, error and import; add --yes to confirm.")
    runtime = get_runtime()
    with _refusals():
        deleted = jobs.clear_all(db.session, running=runtime.runner.active_jobs(), storage=runtime.storage)
    audit.record(db.session, action="records.clear", details=deleted)
    click.echo(
        f"Deleted {deleted['records']} records, {deleted['errors']} errors, {deleted['jobs']} imports "
        f"and {deleted['files']} uploaded files."
    )


AGE_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


@click.command("purge")
@click.option(
    "--older-than",
    "age",
    required=True,
    help="Age of the imports to delete, counted from when they ended: 30d, 12h or 90m.",
)
@click.option("--yes", is_flag=True, help="Confirm deleting those imports with their records, errors and files.")
def purge_command(age, yes):
    """Delete imports that ended longer ago than --older-than, with their records, error rows and uploads."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", age or "")
    if match is None:
        raise click.BadParameter("give a number and a unit, e.g. 30d, 12h or 90m", param_hint="--older-than")
    amount, unit = int(match[1]), match[2]
    cutoff = utcnow() - timedelta(**{AGE_UNITS[unit]: amount})
    if not yes:
        raise click.UsageError(f"This deletes every import that ended before {cutoff:%Y-%m-%d %H:%M} UTC; add --yes.")
    purged = jobs.purge_jobs(db.session, ended_before=cutoff, storage=get_runtime().storage)
    audit.record(db.session, action="imports.purge", details={"older_than": age.strip(), **purged})
    click.echo(
        f"Deleted {purged['jobs']} imports with {purged['records']} records, {purged['errors']} errors "
        f"and {purged['files']} uploaded files."
    )


# Run imports in the foreground.


@click.command("import")
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--mode",
    type=click.Choice([mode.value for mode in JobMode]),
    default=JobMode.BATCH.value,
    show_default=True,
    help="default: the bundled sample file (give no PATH). batch and stream import PATH, or the sample without one.",
)
@click.option("--encoding", help="The file's encoding when it has no byte order mark (default UTF-8), e.g. cp1252.")
@click.option("--delimiter", help="The field separator: , ; | tab (default: detected from the header).")
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="FIELD=COLUMN",
    help='Map a column: name="Full Name", email="E-mail Address", company=Org; name twice for first and last name '
    "(--map name=First --map name=Last); extra=Phone, repeated, keeps only those extra columns (extra= keeps none). "
    "Fields left out are matched by name.",
)
@click.option("--template", help="A saved template's name: its settings apply where these options give none.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only preview: print the mapping, the first rows, the category counts and the delivery estimate; "
    "write nothing.",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice([member.value for member in FileFormat]),
    help="The file's format (default: detected from its content, then its name's extension; else csv).",
)
@click.option("--sheet", help="The workbook sheet to import (xlsx; default: the active sheet).")
@click.option(
    "--on-duplicate",
    type=click.Choice([policy.value for policy in DuplicatePolicy]),
    help="A row whose email a stored record holds: skip it (a duplicate error row; the default) or update the "
    "record, which goes downstream again as an update. Rows that change nothing are skipped either way.",
)
@click.option(
    "--priority",
    type=click.IntRange(MIN_PRIORITY, MAX_PRIORITY),
    default=DEFAULT_PRIORITY,
    show_default=True,
    help="Waiting imports with a higher priority get a free runner slot first (see `importdash priority`).",
)
def import_command(
    path, mode, encoding, delimiter, mapping, template, dry_run, file_format, sheet, on_duplicate, priority
):
    """Import a CSV, Excel .xlsx, JSON or NDJSON file in the foreground with a progress bar; exit non-zero if the
    import fails."""
    given = _mapped_fields(mapping)
    if dry_run:
        if isinstance(given, dict):
            raise click.UsageError("a dry run takes a whole mapping: --map both name and email, or none.")
        options = {
            "encoding": encoding,
            "delimiter": delimiter,
            "file_format": FileFormat(file_format) if file_format else None,
            "sheet": sheet,
            "mapping": given,
            "template": template,
            "duplicate_policy": on_duplicate and DuplicatePolicy(on_duplicate),
        }
        _print_preview(path or current_app.config["SAMPLE_FILE"], options)
        return
    runtime = get_runtime()
    if path is None:
        # The bundled sample is read where it is, on every machine.
        path, store_in = current_app.config["SAMPLE_FILE"], None
    elif mode == JobMode.DEFAULT.value:
        raise click.UsageError(
            "--mode default imports the bundled sample; give no PATH, or use --mode batch or stream."
        )
    else:
        # With local storage the file is read where it is, and never deleted. Stored elsewhere, a copy is kept, so
        # another machine can take the import over (and that copy goes like an upload's, the file itself stays).
        store_in = None if runtime.storage.is_local else runtime.storage
    with _refusals():
        job = jobs.create_job(
            db.session,
            runtime.broker,
            store_in=store_in,
            mode=mode,
            path=os.path.abspath(path),
            source=os.path.basename(path),
            encoding=encoding,
            delimiter=delimiter,
            mapping=given if isinstance(given, ColumnMapping) else None,
            mapped_fields=given if isinstance(given, dict) else None,
            template=template,
            file_format=FileFormat(file_format) if file_format else None,
            sheet=sheet,
            duplicate_policy=on_duplicate and DuplicatePolicy(on_duplicate),
            max_line_length=current_app.config["MAX_LINE_LENGTH"],
            file_limits=FileLimits.from_config(current_app.config),
            lease=_own_lease(),
            priority=priority,
        )
    audit.record(
        db.session, action="import.start", target=("import", job.id), details={"mode": mode, "source": job.source}
    )
    runtime.runner.submit(job.id)
    click.echo(f"Import #{job.id} ({mode}) of {job.source} started.", err=True)
    _run_in_foreground(job.id)


@click.command("resume")
@click.argument("job_id", type=click.IntRange(min=1))
def resume_command(job_id):
    """Go on with a failed or cancelled import in the foreground; exit non-zero if it does not complete."""
    with _refusals():
        job = jobs.resume_job(db.session, job_id, runner=get_runtime().runner, lease=_own_lease())
    audit.record(db.session, action="import.resume", target=("import", job_id))
    click.echo(f"Import #{job_id} ({job.mode}) of {job.source} resumed.", err=True)
    _run_in_foreground(job_id)


@click.command("retry")
@click.argument("job_id", type=click.IntRange(min=1))
def retry_command(job_id):
    """Send a completed import's failed deliveries again, in the foreground; exit non-zero if it does not complete."""
    with _refusals():
        job = jobs.retry_job(db.session, job_id, category=None, runner=get_runtime().runner, lease=_own_lease())
    audit.record(db.session, action="import.retry", target=("import", job_id), details={"category": None})
    click.echo(f"Import #{job_id} ({job.mode}) of {job.source}: retrying its failed deliveries.", err=True)
    _run_in_foreground(job_id)


PREVIEW_CATEGORY_NAMES = {
    previews.VALID: "valid",
    previews.MISSING_VALUE: "missing value",
    previews.INVALID_FORMAT: "invalid format",
    previews.DUPLICATE_IN_FILE: "duplicate in the file",
    previews.DUPLICATE_STORED: "already stored",
}
_CELL_WIDTH = 24  # characters of a value shown in the preview's table


def _print_preview(path, options):
    """Print what importing the file would do, as POST /api/import/preview shows it; exit 1 if it needs a mapping."""
    try:
        settings = previews.PreviewSettings.from_config(current_app.config)
        preview = previews.preview_file(
            db.session, os.path.abspath(path), options, file_name=os.path.basename(path), settings=settings
        )
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    if preview["mapping_required"] is not None:
        required = preview["mapping_required"]
        click.echo(f"Columns: {', '.join(required['columns'])}")
        for field, suggestions in required["suggestions"].items():
            if suggestions:
                guesses = ", ".join(f'"{s["column"]}" ({s["confidence"]:.0%})' for s in suggestions)
                click.echo(f"  {field}: perhaps {guesses}")
        raise click.ClickException(required["message"])
    mapping = preview["mapping"]
    click.echo(f"Preview of {os.path.basename(path)} ({preview['encoding']}, delimiter {preview['delimiter']!r})")
    parts = [f"name <- {' + '.join(repr(column) for column in mapping['name'])}", f"email <- {mapping['email']!r}"]
    if mapping["company"]:
        parts.append(f"company <- {mapping['company']!r}")
    extra = mapping["extra"]
    kept = extra if extra is not None else [c for c in preview["columns"] if c not in _mapped_columns(mapping)]
    parts.append(f"extra: {', '.join(kept) if kept else 'none'}")
    click.echo(f"Mapping: {'; '.join(parts)}")
    click.echo(f"First {len(preview['rows'])} rows:")
    table = [("row", "category", "name", "email", "company", "extra")]
    for row in preview["rows"]:
        extra_text = ", ".join(f"{key}={value}" for key, value in (row["extra"] or {}).items())
        cells = (row["row"], PREVIEW_CATEGORY_NAMES[row["category"]], row["name"], row["email"], row["company"])
        table.append((*(_cell(cell) for cell in cells), _cell(extra_text)))
    widths = [max(len(line[index]) for line in table) for index in range(len(table[0]))]
    for line in table:
        click.echo("  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    counts = preview["counts"]
    shares = ", ".join(f"{counts[name]:,} {label}" for name, label in PREVIEW_CATEGORY_NAMES.items())
    click.echo(f"Counts: {counts['total']:,} rows: {shares}")
    estimate = preview["estimate"]
    calls = f"{estimate['records']:,} records in {estimate['calls']:,} calls of {estimate['records_per_call']}"
    if estimate["seconds"] is None:
        click.echo(f"Delivery: {calls}; the rate limit is lifted.")
    else:
        rate = f"{estimate['rate_per_second']:g} calls/s"
        click.echo(f"Delivery: {calls}, about {_duration(estimate['seconds'])} at {rate}.")
    click.echo("Dry run: nothing was written.")


def _mapped_columns(mapping):
    return {*mapping["name"], mapping["email"], mapping["company"]}


def _cell(value):
    text = "" if value is None else str(value)
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + "…"


@click.command("delete")
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--yes", is_flag=True, help="Confirm deleting the import with its records, errors and uploaded file.")
def delete_command(job_id, yes):
    """Delete one ended import with its records, error rows and uploaded file."""
    if not yes:
        raise click.UsageError(f"This deletes import #{job_id} with its records, errors and file; add --yes.")
    try:
        runtime = get_runtime()
        deleted = jobs.delete_job(db.session, job_id, running=runtime.runner.active_jobs(), storage=runtime.storage)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    audit.record(db.session, action="import.delete", target=("import", job_id), details=deleted)
    click.echo(
        f"Deleted import #{job_id}: {deleted['records']} records, {deleted['errors']} errors "
        f"and {deleted['files']} uploaded files."
    )


def _own_lease():
    """The lease this command's job is created or reopened with: a server cannot claim it before this process
    runs it (the file may be one only this machine can read). The command runs that job and nothing else."""
    runtime = get_runtime()
    runtime.claimer.stop()
    return Lease(runtime.runner.owner, current_app.config["LEASE_SECONDS"])


def _run_in_foreground(job_id):
    """Follow a job this process runs until its run ends, print how it ended, and exit 1 unless it completed."""
    runner = get_runtime().runner
    try:
        job = _follow(job_id, running_here=lambda: runner.is_running(job_id))
        runner.wait(job_id)  # its end is committed; the run may still be announcing it
    except KeyboardInterrupt:
        runner.cancel(job_id)
        runner.wait(job_id)
        job = jobs.job_dict(db.session, jobs.get_job(db.session, job_id))
    _send_notifications()
    _report(job)


def _send_notifications():
    """Try the notifications due now once (this import's ending among them), so that a cron job without a server
    still notifies; what fails stays queued, and a server's sender retries it."""
    try:
        get_runtime().notifier.send_due()
    except Exception as error:  # the import's own outcome decides the exit status, not its notifications
        click.echo(f"Notifications were not sent now ({type(error).__name__}); a server sends them.", err=True)


# Look at imports, and act on them wherever they run.


@click.command("list")
@click.option("--limit", type=click.IntRange(min=1), help="How many imports to show (default: DEFAULT_PAGE_SIZE).")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="How many of the newest imports to skip.")
@click.option("--json", "as_json", is_flag=True, help='Print the API\'s JSON: {"jobs": [...], "total": n}.')
def list_command(limit, offset, as_json):
    """List the imports, newest first."""
    page, total = jobs.list_jobs(db.session, limit=_page_size(limit), offset=offset)
    if as_json:
        _echo_json({"jobs": page, "total": total})
        return
    if not page:
        click.echo("No imports yet." if not total else f"There are {total} imports; --offset {offset} is past them.")
        return
    click.echo(JOB_ROW.format(**JOB_COLUMNS))
    for job in page:
        click.echo(_job_row(job))
    _page_note("Imports", offset, len(page), total)


@click.command("status")
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON, as GET /api/import/<id> answers.")
def status_command(job_id, as_json):
    """Show one import: its status, counts, errors per category and each run."""
    with _refusals():
        detail = jobs.job_detail(db.session, job_id, error_preview=current_app.config["JOB_ERROR_PREVIEW"])
    if as_json:
        _echo_json(detail)
        return
    job = detail["job"]
    click.echo(f"Import #{job['id']} ({job['mode']}) of {job['source']}: {job['status']}")
    rows = f"{job['processed_count']:,} of {_total(job)} rows processed"
    click.echo(f"  rows      {rows}: {_outcomes(job)}")
    counts = ", ".join(f"{category} {count:,}" for category, count in detail["error_counts"].items())
    click.echo(f"  errors    {counts}")
    started = _local_time(job["started_at"]) or "not yet"
    ended = f", ended {_local_time(job['completed_at'])}" if job["completed_at"] else ""
    took = f" ({_duration(job['duration_seconds'])})" if job["duration_seconds"] is not None else ""
    click.echo(f"  started   {started}{ended}{took}; created {_local_time(job['created_at'])} by {job['started_by']}")
    for run in detail["runs"]:
        ended = f" to {_local_time(run['ended_at'])}, {run['outcome']}" if run["ended_at"] else ", running"
        sent = f": sent {run['sent']:,}, {run['succeeded']:,} succeeded, {run['refused']:,} refused"
        reason = f" ({run['reason']})" if run["reason"] else ""
        click.echo(f"  {run['kind']:<9} {_local_time(run['started_at'])}{ended}{sent}{reason}")
    if job["notice"]:
        click.echo(f"  now       {job['notice']}")
    if job["error"]:
        click.echo(f"  {'note' if job['status'] == JobStatus.COMPLETED.value else 'reason':<9} {job['error']}")


@click.command("watch")
@click.argument("job_id", type=click.IntRange(min=1))
def watch_command(job_id):
    """Follow an import's progress, read from the database, until it ends (whichever process runs it); exit
    non-zero unless it completes."""
    with _refusals():
        job = jobs.get_job(db.session, job_id)
    click.echo(f"Import #{job_id} ({job.mode}) of {job.source}:", err=True)
    try:
        with _refusals():  # it may be deleted meanwhile
            job = _follow(job_id)
    except KeyboardInterrupt:
        click.echo(f"\nStopped watching; import #{job_id} goes on.", err=True)
        sys.exit(130)
    _report(job)


@click.command("cancel")
@click.argument("job_id", type=click.IntRange(min=1))
def cancel_command(job_id):
    """Cancel an unfinished import, whichever process runs it."""
    runtime = get_runtime()
    with _refusals():
        cancelled = jobs.cancel_job(
            db.session,
            job_id,
            runner=runtime.runner,
            broker=runtime.broker,
            lease_seconds=current_app.config["LEASE_SECONDS"],
            notifications=runtime.notification_defaults,
        )
        job = jobs.job_dict(db.session, cancelled)
    audit.record(db.session, action="import.cancel", target=("import", job_id))
    if JobStatus(job["status"]).is_terminal:
        click.echo(_summary(job))
    else:
        click.echo(
            f"Import #{job_id} stops at its next check, within {current_app.config['HEARTBEAT_SECONDS']} s "
            f"(importdash watch {job_id} follows it)."
        )


@click.command("pause")
@click.argument("job_id", type=click.IntRange(min=1))
def pause_command(job_id):
    """Pause a waiting or running import, whichever process runs it; `unpause` lets it go on."""
    runtime = get_runtime()
    with _refusals():
        job = jobs.job_dict(
            db.session, jobs.pause_job(db.session, job_id, runner=runtime.runner, broker=runtime.broker)
        )
    audit.record(db.session, action="import.pause", target=("import", job_id))
    if job["status"] == JobStatus.PAUSED.value:
        click.echo(f"Import #{job_id} is paused (importdash unpause {job_id} lets it go on).")
    else:
        click.echo(
            f"Import #{job_id} pauses at its next check, within {current_app.config['HEARTBEAT_SECONDS']} s "
            f"(importdash watch {job_id} follows it)."
        )


@click.command("unpause")
@click.argument("job_id", type=click.IntRange(min=1))
def unpause_command(job_id):
    """Let a paused import go on from where it stopped, in whichever process has a free slot."""
    runtime = get_runtime()
    with _refusals():
        jobs.unpause_job(db.session, job_id, runner=runtime.runner, broker=runtime.broker)
    audit.record(db.session, action="import.unpause", target=("import", job_id))
    click.echo(f"Import #{job_id} waits for a free slot again (importdash watch {job_id} follows it).")


@click.command("priority")
@click.argument("job_id", type=click.IntRange(min=1))
@click.argument("priority", type=click.IntRange(MIN_PRIORITY, MAX_PRIORITY))
def priority_command(job_id, priority):
    """Set an import's priority: waiting imports with a higher one get a free slot first (running ones go on)."""
    with _refusals():
        jobs.set_priority(db.session, job_id, priority=priority, broker=get_runtime().broker)
    audit.record(db.session, action="import.priority", target=("import", job_id), details={"priority": priority})
    click.echo(f"Import #{job_id} has priority {priority}.")


@click.command("errors")
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--category", type=click.Choice([category.value for category in ErrorCategory]))
@click.option("--csv", "as_csv", is_flag=True, help="Write every error as errors.csv, as the API serves it.")
@click.option(
    "--output",
    "-o",
    type=click.File("wb"),
    default="-",
    help="With --csv: the file to write (default: standard output).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Without --csv: errors to show (default: DEFAULT_PAGE_SIZE).")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Without --csv: errors to skip.")
@click.option(
    "--search", default="", help="Without --csv: only errors whose message or values contain this, or of this row."
)
def errors_command(job_id, category, as_csv, output, limit, offset, search):
    """Show an import's errors with their row numbers, or write every one as CSV (--csv)."""
    if as_csv:
        batch_size = current_app.config["EXPORT_BATCH_SIZE"]
        with _refusals():
            _name, chunks = jobs.export_errors(db.session, job_id, category=category, batch_size=batch_size)
        for chunk in chunks:
            output.write(chunk.encode("utf-8"))  # the bytes GET /api/import/<id>/errors.csv sends
        return
    with _refusals():
        errors, total = jobs.error_page(
            db.session, job_id, category=category, query=search, limit=_page_size(limit), offset=offset
        )
    for error in errors:
        click.echo(f"row {error['row']:>8}  {error['category']:<14}  {error['message']}")
    if not total:
        click.echo(f"Import #{job_id} has no {category + ' ' if category else ''}errors.")
    else:
        _page_note("Errors", offset, len(errors), total)


@click.command("notifications")
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--resend", is_flag=True, help="Queue the failed ones to be sent again (a server sends them).")
def notifications_command(job_id, resend):
    """List an import's notifications: channel, target, status, attempts, last error."""
    with _refusals():
        jobs.get_job(db.session, job_id)
        if resend:
            count = notifications.resend_failed(db.session, job_id)
            audit.record(
                db.session, action="notifications.resend", target=("import", job_id), details={"resent": count}
            )
            click.echo(f"{count} failed notification{'s' if count != 1 else ''} queued again.")
        deliveries = notifications.list_deliveries(db.session, job_id)
    if not deliveries:
        click.echo(f"Import #{job_id} has no notifications (none configured for how it ended).")
    for delivery in deliveries:
        sent = f"  sent {delivery.sent_at:%Y-%m-%d %H:%M:%S}" if delivery.sent_at else ""
        click.echo(
            f"{delivery.channel:<8} {delivery.status:<8} attempts {delivery.attempts}  {delivery.target}{sent}"
            + (f"\n         last error: {delivery.last_error}" if delivery.last_error else "")
        )


@click.command("analytics")
@click.option(
    "--days",
    type=click.Choice([str(days) for days in RANGES_DAYS]),
    help="The date range in days, up to today (UTC); default ANALYTICS_DEFAULT_DAYS.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON, as GET /api/analytics answers.")
def analytics_command(days, as_json):
    """Show the imports' figures per day: rows, outcomes, durations, delivery rate and downstream errors."""
    config = current_app.config
    figures = analytics.summary(
        db.session,
        days=int(days or config["ANALYTICS_DEFAULT_DAYS"]),
        today=utcnow().date(),
        rate_allowed=analytics.rate_allowed(config),
        limits=AnalyticsLimits.from_config(config),
    )
    if as_json:
        _echo_json(figures)
        return
    click.echo(ANALYTICS_ROW.format(**ANALYTICS_COLUMNS))
    for day in [*figures["days"], {**figures["totals"], "date": "all", "rate_used": None}]:
        click.echo(
            ANALYTICS_ROW.format(
                date=day["date"],
                imports=f"{day['imports']:,}",
                rows=f"{day['rows']:,}",
                succeeded=f"{day['succeeded']:,}",
                failed=f"{day['failed']:,}",
                completed=_share(day["success_rate"]),
                average=_seconds(day["duration"]["average_seconds"]),
                p95=_seconds(day["duration"]["p95_seconds"]),
                rate="-" if day["rate_used"] is None else f"{day['rate_used']:,.1f}",
            )
        )
    allowed = figures["rate_allowed"]
    click.echo(f"Rate allowed: {'no limit' if allowed is None else f'{allowed:,g} rows a second'}.")
    for error in figures["downstream_errors"]:
        click.echo(f"{error['count']:>9,}  {error['status']}: {error['message']}")


ANALYTICS_ROW = "  ".join(
    [
        "{date:<10}",
        "{imports:>7}",
        "{rows:>11}",
        "{succeeded:>11}",
        "{failed:>9}",
        "{completed:>9}",
        "{average:>9}",
        "{p95:>9}",
        "{rate:>9}",
    ]
)
ANALYTICS_COLUMNS = {
    "date": "DATE",
    "imports": "IMPORTS",
    "rows": "ROWS",
    "succeeded": "SUCCEEDED",
    "failed": "FAILED",
    "completed": "COMPLETED",
    "average": "AVG TIME",
    "p95": "P95 TIME",
    "rate": "ROWS/S",
}


@click.command("compare")
@click.argument("a", type=click.IntRange(min=1))
@click.argument("b", type=click.IntRange(min=1))
@click.option("--show", type=click.Choice([kind.value for kind in Difference]), help="List one kind of difference.")
@click.option("--csv", "as_csv", is_flag=True, help="Write every difference as CSV, as GET /api/compare.csv does.")
@click.option(
    "--output", "-o", type=click.File("wb"), default="-", help="With --csv: the file to write (default: stdout)."
)
@click.option("--limit", type=click.IntRange(min=1), help="With --show: rows to list (default: DEFAULT_PAGE_SIZE).")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="With --show: rows to skip.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON, as GET /api/compare answers.")
def compare_command(a, b, show, as_csv, output, limit, offset, as_json):
    """Compare two imports' rows by email: how many are only in A, only in B or changed, and which."""
    if as_csv:
        with _refusals():
            _name, chunks = compare.compare_csv(db.session, a, b)
        for chunk in chunks:
            output.write(chunk.encode("utf-8"))  # the bytes GET /api/compare.csv sends
        return
    kind = show or Difference.ONLY_A.value
    with _refusals():
        result = compare.compare_counts(db.session, a, b)
        rows = compare.compare_page(db.session, a, b, difference=kind, limit=_page_size(limit), offset=offset)
    counts = result["counts"]
    if as_json:
        _echo_json(result | {"difference": kind, "rows": rows, "total": counts[kind]})
        return
    for side in ("a", "b"):
        job, found = result[side], counts[side]
        click.echo(
            f"{side.upper()}: #{job['id']} {job['source']}: {found['rows']:,} rows, {found['emails']:,} emails "
            f"({found['without_email']:,} rows without one, {found['repeated']:,} repeating one)"
        )
    for name, label in (("only_a", "only in A"), ("only_b", "only in B"), ("changed", "changed"), ("same", "same")):
        click.echo(f"{label:<10} {counts[name]:>9,}")
    if not show:
        return
    for item in rows:
        if show == Difference.CHANGED.value:
            click.echo(f"{item['email']}  {', '.join(item['fields'])}")
            for side in ("a", "b"):
                row = item[side]
                fields = f"{row['name']} | {row['company'] or ''} | {row['extra'] or ''}"
                click.echo(f"    {side.upper()} row {row['row']}: {fields}")
        else:
            row = item["row"]
            click.echo(f"row {row['row']:>8}  {row['email']}  {row['name']}  {row['company'] or ''}  ({row['state']})")
    _page_note("Rows", offset, len(rows), counts[show])


def _page_size(limit):
    """--limit, or DEFAULT_PAGE_SIZE without it; at most MAX_PAGE_SIZE, as in the API."""
    config = current_app.config
    if limit is not None and limit > config["MAX_PAGE_SIZE"]:
        raise click.BadParameter(f"at most {config['MAX_PAGE_SIZE']}", param_hint="--limit")
    return limit or config["DEFAULT_PAGE_SIZE"]


def _page_note(what, offset, shown, total):
    """Say on stderr which part of the whole a page showed, when it was not all of it."""
    if offset or offset + shown < total:
        more = f"; --offset {offset + shown} shows the next" if offset + shown < total else ""
        click.echo(f"{what} {offset + 1:,} to {offset + shown:,} of {total:,}{more}.", err=True)


# How a job is shown.

JOB_ROW = "{id:>6}  {status:<10}  {mode:<7}  {rows:>15}  {succeeded:>9}  {failed:>9}  {created:<16}  {source}"
JOB_COLUMNS = {
    "id": "ID",
    "status": "STATUS",
    "mode": "MODE",
    "rows": "PROCESSED",
    "succeeded": "SUCCEEDED",
    "failed": "FAILED",
    "created": "CREATED",
    "source": "FILE",
}


def _job_row(job):
    return JOB_ROW.format(
        id=job["id"],
        status=job["status"],
        mode=job["mode"],
        rows=f"{job['processed_count']:,}/{_total(job)}",
        succeeded=f"{job['success_count']:,}",
        failed=f"{job['failed_count']:,}",
        created=_local_time(job["created_at"], seconds=False),
        source=job["source"],
    )


def _summary(job):
    """How the job stands, in one sentence: its status and what became of its rows."""
    return (
        f"Import #{job['id']} {job['status']}: {job['processed_count']:,} of {_total(job)} rows processed, "
        f"{_outcomes(job)}"
        + (f" (importdash resume {job['id']} sends the cancelled ones)." if job["cancelled_count"] else ".")
    )


def _outcomes(job):
    outcomes = f"{job['success_count']:,} succeeded, {job['failed_count']:,} failed"
    return outcomes + (f", {job['cancelled_count']:,} cancelled" if job["cancelled_count"] else "")


def _report(job):
    """Print how the job ended (its reason or note on stderr) and exit 1 unless it completed."""
    click.echo(_summary(job))
    completed = job["status"] == JobStatus.COMPLETED.value
    if job["status"] == JobStatus.PAUSED.value:  # paused while this command ran it
        click.echo(f"Paused: importdash unpause {job['id']} lets it go on, in a server with a free slot.", err=True)
    if job["error"]:
        click.echo(f"{'Note' if completed else 'Reason'}: {job['error']}", err=True)
    if not completed:
        sys.exit(1)


def _follow(job_id, running_here=None):
    """Show the job's progress on stderr until it ends, or until this process's run of it ends (running_here); return
    the job as the API shows it. Every read is the database's, so a job any process runs can be followed."""
    config = current_app.config
    display = ProgressDisplay(sys.stderr, line_seconds=config["PROGRESS_LINE_SECONDS"])
    while True:
        running = running_here() if running_here else True  # asked first: an ended run committed what is read next
        job = jobs.job_dict(db.session, jobs.get_job(db.session, job_id))
        db.session.rollback()  # end the read: no transaction stays open while waiting
        if JobStatus(job["status"]).is_terminal or not running:
            display.end(job)
            return job
        display.show(job)
        time.sleep(config["PROGRESS_INTERVAL_SECONDS"])


class ProgressDisplay:
    """A job's progress on a stream: on a terminal, one line redrawn in place; anywhere else (a log file, a pipe,
    cron's mail) a plain line at most every line_seconds and one at the end, never a carriage return."""

    def __init__(self, stream, *, line_seconds, clock=time.monotonic):
        self.stream = stream
        self.in_place = stream.isatty()
        self.line_seconds = line_seconds
        self.clock = clock
        self._first = None  # (moment, rows processed) when first shown: the rate is over the rows seen since
        self._next_line_at = None
        self._last_line = None

    def show(self, job: dict) -> None:
        """Show the job's progress now (off a terminal, only once line_seconds have passed since the last line)."""
        now = self.clock()
        line = self._line(job, now)
        if self.in_place:
            self._redraw(line, end="")
        elif self._next_line_at is None or now >= self._next_line_at:
            self._print(line)
            self._next_line_at = now + self.line_seconds

    def end(self, job: dict) -> None:
        """Show where the job ended, and end the line."""
        line = self._line(job, self.clock())
        if self.in_place:
            self._redraw(line, end="\n")
        elif line != self._last_line:
            self._print(line)

    def _line(self, job, now):
        if self._first is None:
            self._first = (now, job["processed_count"])
        started_at, rows_then = self._first
        rate = (job["processed_count"] - rows_then) / (now - started_at) if now > started_at else None
        return _progress_line(job, rate)

    def _redraw(self, line, end):
        # Blanks over what a longer line before left behind.
        width = len(self._last_line or "")
        click.echo("\r" + line.ljust(width), nl=False, file=self.stream)
        click.echo(end, nl=False, file=self.stream)
        self._last_line = line

    def _print(self, line):
        click.echo(line, file=self.stream)
        self._last_line = line


BAR_WIDTH = 30


def _progress_line(job, rate):
    """The job's progress: a bar and percentage when its total is known, counts, the rate and the time left."""
    done, total = job["processed_count"], job["total_records"]
    if total:
        filled = BAR_WIDTH * done // total
        progress = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * done / total:5.1f}% {done:,}/{total:,}"
    else:
        progress = f"{done:,} rows processed"
    parts = [job["status"], progress, f"ok {job['success_count']:,}", f"failed {job['failed_count']:,}"]
    if job["cancelled_count"]:
        parts.append(f"cancelled {job['cancelled_count']:,}")
    if rate is not None:
        parts.append(f"{rate:,.0f} rows/s")
        if total and rate > 0 and done < total and job["status"] in stored(JobStatus.runnable()):
            parts.append(f"about {_duration((total - done) / rate)} left")
    if job["notice"]:
        parts.append(job["notice"])
    if job["status"] == JobStatus.PAUSED.value:
        parts.append(f"paused: importdash unpause {job['id']} lets it go on")
    elif job["pause_requested"] and not JobStatus(job["status"]).is_terminal:
        parts.append("pausing at its next check")
    return "  ".join(parts)


def _total(job):
    return f"{job['total_records']:,}" if job["total_records"] is not None else "?"


def _duration(seconds):
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _share(share):
    return "-" if share is None else f"{share:.1%}"


def _seconds(seconds):
    return "-" if seconds is None else f"{seconds:,.1f} s"


def _local_time(moment, seconds=True):
    """An API timestamp (UTC, ISO 8601) in this machine's time zone; None stays None."""
    if moment is None:
        return None
    local = datetime.fromisoformat(moment).astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _echo_json(data):
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@contextmanager
def _refusals():
    """Turn a service's refusal (no such import, a conflict, bad input) into the CLI's: its message, exit 1."""
    try:
        yield
    except MappingRequired as exc:
        raise click.ClickException(f"{exc.message}\n{_suggestions(exc.details)}") from None
    except ApiError as exc:
        raise click.ClickException(exc.message) from None


COMMANDS = (
    init_db_command,
    clear_records_command,
    purge_command,
    import_command,
    resume_command,
    retry_command,
    list_command,
    status_command,
    watch_command,
    cancel_command,
    pause_command,
    unpause_command,
    priority_command,
    errors_command,
    notifications_command,
    analytics_command,
    compare_command,
)


@click.command("check-downstream")
def check_downstream_command():
    """Ask the downstream whether it answers, sending no records; exit 1 if it does not answer with a success."""
    runtime = get_runtime()
    result = checks.check_downstream(
        runtime.downstream,
        bucket=runtime.bucket,
        wait_seconds=current_app.config["DOWNSTREAM_CHECK_WAIT_SECONDS"],
        last_check=runtime.last_check,
    )
    answer = result.answer
    verdict = "OK" if answer.ok else "answers, but not with a success" if answer.answered else "NOT ANSWERING"
    kind = current_app.config["DOWNSTREAM"]
    click.echo(f"{kind} downstream: {verdict} ({result.elapsed_ms:.0f} ms): {answer.message}")
    if not answer.ok:
        sys.exit(1)


MAPPED_FIELDS = ("name", "email", "company", "extra")


def _mapped_fields(pairs):
    """Read --map FIELD=COLUMN options: a ColumnMapping when name and email are both given, else the fields given
    (a dict, the rest to be matched), or None for no --map at all."""
    fields = {}
    for pair in pairs:
        field, equals, column = pair.partition("=")
        field = field.strip().lower()
        if not equals or field not in MAPPED_FIELDS or (not column and field != "extra"):
            raise click.BadParameter(
                f"{pair!r}: give FIELD=COLUMN with FIELD one of {', '.join(MAPPED_FIELDS)}", param_hint="--map"
            )
        if field in ("name", "extra"):
            fields.setdefault(field, [])
            if column:
                fields[field].append(column)
        elif field in fields:
            raise click.BadParameter(f"{field} is mapped twice", param_hint="--map")
        else:
            fields[field] = column
    if not fields:
        return None
    if not (fields.get("name") and fields.get("email")):
        return fields
    try:
        return ColumnMapping.validated(fields)
    except ApiError as exc:
        raise click.BadParameter(exc.message, param_hint="--map") from None


def _suggestions(details):
    """The columns and the suggested ones, as a hint for --map after a mapping_required error."""
    lines = [f"Columns: {', '.join(details['columns'])}"]
    for field, suggestions in details["suggestions"].items():
        if suggestions:
            found = "; ".join(
                f"{' + '.join(suggestion['columns'])} ({suggestion['confidence']:.0%})" for suggestion in suggestions
            )
            lines.append(f"  {field}: perhaps {found}")
    lines.append('Name the columns with --map, e.g. --map name="Full Name" --map email="E-mail Address".')
    return "\n".join(lines)


@click.group("templates")
def templates_group():
    """List, show, create and delete import templates."""


@templates_group.command("list")
def templates_list_command():
    """List the templates: name, format, encoding, delimiter, duplicate policy and mapping."""
    saved = templates.list_templates(db.session)
    if not saved:
        click.echo("No templates yet: flask templates create NAME --map ...")
    for template in saved:
        settings = [
            f"{label} {value!r}"
            for label, value in (
                ("format", template.file_format),
                ("encoding", template.encoding),
                ("delimiter", template.delimiter),
                ("sheet", template.sheet),
            )
            if value
        ]
        settings.append(f"duplicates: {template.duplicate_policy}")
        if template.mapping:
            settings.append(f"name={' + '.join(template.mapping['name'])} email={template.mapping['email']}")
        if template.notify_webhook_url:
            settings.append(f"notifies {notifications.shown_url(template.notify_webhook_url)}")
        if template.notify_email:
            settings.append(f"emails {', '.join(template.notify_email)}")
        click.echo(f"{template.id:>4}  {template.name}  ({', '.join(settings)})")


@templates_group.command("show")
@click.argument("name")
def templates_show_command(name):
    """Show one template (by name or id) as JSON."""
    try:
        template = templates.get_template(db.session, name)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(json.dumps(templates.template_json(template), indent=2, ensure_ascii=False))


@templates_group.command("create")
@click.argument("name", required=False)
@click.option("--json", "json_file", type=click.File("r"), help="Read the template from a JSON file (- for stdin).")
@click.option("--format", "file_format", type=click.Choice([choice.value for choice in FileFormat]))
@click.option("--encoding", help="The files' encoding when they have no byte order mark, e.g. cp1252.")
@click.option("--delimiter", help="The field separator: , ; | tab.")
@click.option("--sheet", help="The workbook sheet to read (xlsx).")
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN", help="As for import; needs name and email.")
@click.option("--duplicate-policy", type=click.Choice([choice.value for choice in DuplicatePolicy]))
@click.option("--notify-webhook", metavar="URL", help="POST a signed summary here when its imports end.")
@click.option("--notify-email", metavar="ADDRESS", multiple=True, help="Email a summary here when its imports end.")
@click.option(
    "--notify-on",
    metavar="ENDINGS",
    help=f"Comma-separated endings that notify ({', '.join(item.value for item in Ending)}); default: NOTIFY_ON.",
)
def templates_create_command(
    name,
    json_file,
    file_format,
    encoding,
    delimiter,
    sheet,
    mapping,
    duplicate_policy,
    notify_webhook,
    notify_email,
    notify_on,
):
    """Save a template from options (or from JSON as the API takes it, whose fields the options override)."""
    data = {}
    if json_file is not None:
        try:
            data = json.load(json_file)
        except ValueError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--json") from None
        if not isinstance(data, dict):
            raise click.BadParameter("give a JSON object", param_hint="--json")
    given = _mapped_fields(mapping)
    if isinstance(given, dict):
        raise click.BadParameter("a template's mapping names both name and email", param_hint="--map")
    options = {
        "name": name,
        "format": file_format,
        "encoding": encoding,
        "delimiter": delimiter,
        "sheet": sheet,
        "mapping": given.to_json() if given else None,
        "duplicate_policy": duplicate_policy,
        "notify_webhook_url": notify_webhook,
        "notify_email": list(notify_email) or None,
        "notify_on": None if notify_on is None else notify_on.split(","),
    }
    data |= {field: value for field, value in options.items() if value is not None}
    try:
        template = templates.create_template(db.session, data)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    audit.record(
        db.session, action="template.create", target=("template", template.id), details={"name": template.name}
    )
    click.echo(f"Template #{template.id} {template.name!r} saved.")


@templates_group.command("delete")
@click.argument("name")
def templates_delete_command(name):
    """Delete a template (by name or id); imports started with it keep their settings."""
    try:
        template = templates.get_template(db.session, name)
        template_id, template_name = template.id, template.name
        templates.delete_template(db.session, name)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    audit.record(
        db.session, action="template.delete", target=("template", template_id), details={"name": template_name}
    )
    click.echo(f"Template {name!r} deleted.")


@click.group("schedules")
def schedules_group():
    """List, show, create, delete, pause, resume and run schedules."""


@schedules_group.command("list")
def schedules_list_command():
    """List the schedules: name, cron and zone, source, template, last and next run."""
    saved = schedules.list_schedules(db.session)
    if not saved:
        click.echo("No schedules yet: flask schedules create NAME --template T --source S --cron '0 2 * * *'")
    for schedule in saved:
        state = "paused" if schedule.paused else f"next {_minute(schedule.next_run_at)}"
        last = f"last {_minute(schedule.last_run_at)}" if schedule.last_run_at else "never run"
        failed = "  FAILED: " + schedule.last_error if schedule.last_error else ""
        click.echo(
            f"{schedule.id:>4}  {schedule.name}  ({schedule.cron} {schedule.timezone}; {schedule.source_kind} "
            f"{schedule.source}; template {schedule.template.name}; {schedule.mode})  {state}, {last}{failed}"
        )


def _record_schedule(action, schedule, **details):
    audit.record(
        db.session, action=action, target=("schedule", schedule.id), details={"name": schedule.name, **details}
    )


def _minute(moment):
    """A stored UTC time in this machine's zone, to the minute."""
    return _local_time(isoformat(moment), seconds=False)


@schedules_group.command("show")
@click.argument("name")
@click.option("--runs", type=click.IntRange(min=0), default=10, show_default=True, help="How many latest runs.")
def schedules_show_command(name, runs):
    """Show one schedule (by name or id) and its latest runs as JSON."""
    with _refusals():
        schedule = schedules.get_schedule(db.session, name)
        history, total = schedules.run_history(db.session, schedule.id, limit=max(runs, 1), offset=0)
    _echo_json({"schedule": schedules.schedule_json(schedule), "runs": history[:runs], "total_runs": total})


@schedules_group.command("create")
@click.argument("name")
@click.option("--template", required=True, help="The saved template its imports read files with.")
@click.option("--source", required=True, help="A path or glob under IMPORT_ROOT, an http(s) URL, or s3://bucket/key.")
@click.option("--cron", required=True, help="Five fields (minute hour day month weekday), e.g. '0 2 * * *'.")
@click.option("--timezone", default="UTC", show_default=True, help="The IANA zone the cron is read in.")
@click.option("--mode", type=click.Choice(["batch", "stream"]), default="batch", show_default=True)
@click.option("--paused", is_flag=True, help="Create it paused.")
def schedules_create_command(name, template, source, cron, timezone, mode, paused):
    """Save a schedule; it runs on the servers from its next due time."""
    data = {"name": name, "template": template, "source": source, "cron": cron, "timezone": timezone}
    with _refusals():
        schedule = schedules.create_schedule(
            db.session,
            data | {"mode": mode, "paused": paused},
            now=schedules.database_time(db.session),
            import_root=current_app.config["IMPORT_ROOT"],
        )
    _record_schedule("schedule.create", schedule)
    when = "paused" if schedule.paused else f"next run {_minute(schedule.next_run_at)}"
    click.echo(f"Schedule #{schedule.id} {schedule.name!r} saved; {when}.")


@schedules_group.command("delete")
@click.argument("name")
def schedules_delete_command(name):
    """Delete a schedule (by name or id) and its runs; the imports it started stay."""
    with _refusals():
        schedule = schedules.get_schedule(db.session, name)
        schedule_id, schedule_name = schedule.id, schedule.name
        schedules.delete_schedule(db.session, name)
    audit.record(
        db.session, action="schedule.delete", target=("schedule", schedule_id), details={"name": schedule_name}
    )
    click.echo(f"Schedule {name!r} deleted.")


@schedules_group.command("pause")
@click.argument("name")
def schedules_pause_command(name):
    """Pause a schedule: no run starts until it is resumed."""
    with _refusals():
        schedule = schedules.pause_schedule(db.session, name)
    _record_schedule("schedule.pause", schedule)
    click.echo(f"Schedule {schedule.name!r} paused.")


@schedules_group.command("resume")
@click.argument("name")
def schedules_resume_command(name):
    """Resume a paused schedule from its next due time."""
    with _refusals():
        schedule = schedules.resume_schedule(db.session, name, now=schedules.database_time(db.session))
    _record_schedule("schedule.resume", schedule)
    click.echo(f"Schedule {schedule.name!r} resumed; next run {_minute(schedule.next_run_at)}.")


@schedules_group.command("run-now")
@click.argument("name")
def schedules_run_now_command(name):
    """Fetch a schedule's file now and start its import, which a server runs (exit 1 if the run failed)."""
    runtime = get_runtime()
    with _refusals():
        run = schedules.run_now(
            db.session,
            name,
            now=schedules.database_time(db.session),
            owner="cli",
            fetch=runtime.fetch,
            broker=runtime.broker,
            storage=runtime.storage,
            max_line_length=current_app.config["MAX_LINE_LENGTH"],
            file_limits=FileLimits.from_config(current_app.config),
        )
        schedule = schedules.get_schedule(db.session, name)
    _record_schedule("schedule.run", schedule, job_id=run.job_id, error=run.error)
    if run.job_id is None:
        raise click.ClickException(f"The run failed: {run.error}")
    click.echo(f"Import #{run.job_id} created; a server runs it (flask watch {run.job_id}).")


@click.command("metrics")
def metrics_command():
    """Print the database's import figures (jobs by status, queue depth, rows) in Prometheus's text format."""
    click.echo(telemetry.database_metrics(db.session).decode(), nl=False)


def init_app(app):
    for command in (
        *COMMANDS,
        delete_command,
        check_downstream_command,
        metrics_command,
        templates_group,
        schedules_group,
    ):
        app.cli.add_command(command)
