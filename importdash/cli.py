"""Command-line commands: flask --app importdash init-db | clear-records | import."""

import os
import re
import sys
import time
from datetime import timedelta

import click
from flask import current_app

from . import schema
from .errors import ApiError
from .extensions import db
from .models import DuplicatePolicy, JobStatus, utcnow
from .runtime import get_runtime
from .services import jobs
from .services.ledger import Lease


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
    try:
        runtime = get_runtime()
        deleted = jobs.clear_all(db.session, running=runtime.runner.active_jobs(), storage=runtime.storage)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
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
    click.echo(
        f"Deleted {purged['jobs']} imports with {purged['records']} records, {purged['errors']} errors "
        f"and {purged['files']} uploaded files."
    )


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--mode", type=click.Choice(["batch", "stream"]), default="batch", show_default=True)
@click.option("--encoding", help="The file's encoding when it has no byte order mark (default UTF-8), e.g. cp1252.")
@click.option("--delimiter", help="The field separator: , ; | tab (default: detected from the header).")
@click.option(
    "--on-duplicate",
    type=click.Choice([policy.value for policy in DuplicatePolicy]),
    help="A row whose email a stored record holds: skip it (a duplicate error row; the default) or update the "
    "record, which goes downstream again as an update. Rows that change nothing are skipped either way.",
)
def import_command(path, mode, encoding, delimiter, on_duplicate):
    """Import a CSV file in the foreground with a progress bar; exit non-zero if the import fails."""
    runtime = get_runtime()
    # With local storage the file is read where it is, and never deleted. Stored elsewhere, a copy is kept, so
    # another machine can take the import over (and that copy goes like an upload's, the file itself stays).
    store_in = None if runtime.storage.is_local else runtime.storage
    try:
        job = jobs.create_job(
            db.session,
            runtime.broker,
            store_in=store_in,
            mode=mode,
            path=os.path.abspath(path),
            source=os.path.basename(path),
            encoding=encoding,
            delimiter=delimiter,
            duplicate_policy=on_duplicate and DuplicatePolicy(on_duplicate),
            max_line_length=current_app.config["MAX_LINE_LENGTH"],
            lease=_own_lease(),
        )
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    runtime.runner.submit(job.id)
    click.echo(f"Import #{job.id} ({mode}) of {job.source} started.", err=True)
    _run_in_foreground(job.id)


@click.command("resume")
@click.argument("job_id", type=click.IntRange(min=1))
def resume_command(job_id):
    """Go on with a failed or cancelled import in the foreground; exit non-zero if it does not complete."""
    try:
        job = jobs.resume_job(db.session, job_id, runner=get_runtime().runner, lease=_own_lease())
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Import #{job_id} ({job.mode}) of {job.source} resumed.", err=True)
    _run_in_foreground(job_id)


def _own_lease():
    """The lease this command's job is created or reopened with: a server cannot claim it before this process
    runs it (the file may be one only this machine can read). The command runs that job and nothing else."""
    runtime = get_runtime()
    runtime.claimer.stop()
    return Lease(runtime.runner.owner, current_app.config["LEASE_SECONDS"])


def _run_in_foreground(job_id):
    """Follow a job this process runs until it ends, print how it ended, and exit 1 unless it completed."""
    runner = get_runtime().runner
    try:
        job = _follow(job_id, runner)
    except KeyboardInterrupt:
        runner.cancel(job_id)
        runner.wait(job_id)
        job = jobs.get_job(db.session, job_id)
    summary = (
        f"Import #{job_id} {job.status}: {job.processed_count} of {job.total_records} rows processed, "
        f"{job.success_count} succeeded, {job.failed_count} failed"
        + (f", {job.cancelled_count} cancelled (flask resume {job_id} sends them)." if job.cancelled_count else ".")
    )
    click.echo(summary)
    if job.error:
        click.echo(f"{'Note' if job.status == JobStatus.COMPLETED.value else 'Reason'}: {job.error}", err=True)
    if job.status != JobStatus.COMPLETED.value:
        sys.exit(1)


def _follow(job_id, runner):
    """Redraw a one-line progress bar on stderr until the job's run ends, and return the job."""
    interval = current_app.config["PROGRESS_INTERVAL_SECONDS"]
    started = time.monotonic()
    while True:
        running = runner.is_running(job_id)  # asked first: a run that had ended has committed what is read next
        job = jobs.get_job(db.session, job_id)
        _draw(job, time.monotonic() - started)
        if JobStatus(job.status).is_terminal or not running:
            click.echo(err=True)
            return job
        time.sleep(interval)


def _draw(job, elapsed):
    done, total = job.processed_count, job.total_records
    if total:
        filled = int(30 * done / total)
        bar = f"[{'#' * filled}{'.' * (30 - filled)}] {100 * done / total:5.1f}% {done}/{total}"
    else:
        bar = f"{done} rows processed"
    rate = done / elapsed if elapsed > 0 else 0
    click.echo(f"\r{bar}  ok {job.success_count}  failed {job.failed_count}  {rate:,.0f} rows/s ", nl=False, err=True)


def init_app(app):
    for command in (init_db_command, clear_records_command, purge_command, import_command, resume_command):
        app.cli.add_command(command)
