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
from .errors import ApiError
from .extensions import db
from .models import ErrorCategory, JobMode, JobStatus, utcnow
from .runtime import get_runtime
from .services import jobs
from .services.ledger import Lease

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
def import_command(path, mode, encoding, delimiter):
    """Import a CSV file in the foreground with a progress bar; exit non-zero if the import fails."""
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
            max_line_length=current_app.config["MAX_LINE_LENGTH"],
            lease=_own_lease(),
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
    except KeyboardInterrupt:
        runner.cancel(job_id)
        runner.wait(job_id)
        job = jobs.get_job(db.session, job_id).to_dict()
    _report(job)


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
        job = jobs.cancel_job(
            db.session,
            job_id,
            runner=runtime.runner,
            broker=runtime.broker,
            lease_seconds=current_app.config["LEASE_SECONDS"],
        ).to_dict()
    audit.record(db.session, action="import.cancel", target=("import", job_id))
    if JobStatus(job["status"]).is_terminal:
        click.echo(_summary(job))
    else:
        click.echo(
            f"Import #{job_id} stops at its next check, within {current_app.config['HEARTBEAT_SECONDS']} s "
            f"(importdash watch {job_id} follows it)."
        )


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
def errors_command(job_id, category, as_csv, output, limit, offset):
    """Show an import's errors with their row numbers, or write every one as CSV (--csv)."""
    if as_csv:
        batch_size = current_app.config["EXPORT_BATCH_SIZE"]
        with _refusals():
            _name, chunks = jobs.export_errors(db.session, job_id, category=category, batch_size=batch_size)
        for chunk in chunks:
            output.write(chunk.encode("utf-8"))  # the bytes GET /api/import/<id>/errors.csv sends
        return
    with _refusals():
        errors, total = jobs.error_page(db.session, job_id, category=category, limit=_page_size(limit), offset=offset)
    for error in errors:
        click.echo(f"row {error['row']:>8}  {error['category']:<14}  {error['message']}")
    if not total:
        click.echo(f"Import #{job_id} has no {category + ' ' if category else ''}errors.")
    else:
        _page_note("Errors", offset, len(errors), total)


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
        job = jobs.get_job(db.session, job_id).to_dict()
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
        if total and rate > 0 and done < total and not JobStatus(job["status"]).is_terminal:
            parts.append(f"about {_duration((total - done) / rate)} left")
    if job["notice"]:
        parts.append(job["notice"])
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
    errors_command,
)


def init_app(app):
    for command in COMMANDS:
        app.cli.add_command(command)
