"""Everything a caller does to an import job: create, get, list, state, cancel, pause, unpause, prioritise, retry and
clear, and read its errors and records. Views and the CLI call only this module; importer.py is what runs one job."""

import dataclasses
import functools
import logging
import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import Text, case, cast, delete, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from ..errors import ApiError, Conflict, InvalidFile, MappingRequired, NotFound
from ..models import (
    ANONYMOUS_USER,
    DEFAULT_PRIORITY,
    MAX_ID,
    MAX_PRIORITY,
    MIN_PRIORITY,
    TRANSITIONS,
    DuplicatePolicy,
    ErrorCategory,
    FileFormat,
    ImportJob,
    ImportPreview,
    JobAction,
    JobMode,
    JobRun,
    JobStatus,
    NotificationDelivery,
    Record,
    RecordStatus,
    RowError,
    shown_attempts,
    shown_status,
    statuses_allowing,
    stored,
    utcnow,
)
from . import memory, templates
from .broker import Event, EventBroker
from .dialects import database_now, statements_for
from .export import errors_csv, results_csv, source_keys
from .ledger import SUPERSEDED_MARK, JobLedger, Lease
from .mapping import ColumnMapping, complete_mapping
from .notifications import NotificationDefaults
from .reader import CheckedFile, FileLimits, TableSource, check_file, estimate_rows
from .rows import FileSource, open_binary
from .storage import StoreUnavailable, UploadStorage, key_patterns
from .streams import JOB_CREATED, JOB_FINISHED, JOB_PROGRESS, JOBS_SNAPSHOT, state_event_name

if TYPE_CHECKING:  # runner.py imports importer.py, which imports this module
    from .runner import JobRunner

log = logging.getLogger(__name__)

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class AlreadyStarted(Exception):
    """A job was started with this idempotency key already: the caller gets that job instead of a new one."""

    def __init__(self, job: ImportJob):
        super().__init__(f"import #{job.id} was started with this key")
        self.job = job


# Create.


def spool_upload(stream: BinaryIO, upload_folder: str) -> str:
    """Write an uploaded file to this machine's upload folder, to be checked there, and return its path.

    create_job(store_in=...) then stores it where every instance can read it; the caller removes what is left.
    The check reads the file more than once (its encoding, every line, its header), which a request body
    cannot do, and a refused file never reaches the store.
    """
    path = os.path.join(upload_folder, f".incoming-{uuid.uuid4().hex}.csv")
    with open(path, "xb") as target:
        while chunk := stream.read(1024 * 1024):
            target.write(chunk)
    return path


def create_job(
    session: Session,
    broker: EventBroker,
    *,
    mode: str,
    path: str,
    source: str,
    max_line_length: int,
    file_limits: FileLimits,
    encoding: str | None = None,
    delimiter: str | None = None,
    file_format: FileFormat | None = None,
    sheet: str | None = None,
    mapping: ColumnMapping | None = None,
    mapped_fields: dict | None = None,
    template: str | None = None,
    duplicate_policy: DuplicatePolicy | None = None,
    started_by: str = ANONYMOUS_USER,
    idempotency_key: str | None = None,
    store_in: UploadStorage | None = None,
    preview_token: str | None = None,
    lease: Lease | None = None,
    priority: int = DEFAULT_PRIORITY,
) -> ImportJob:
    """Check the file, then create and announce a pending job that reads it the way the check found.

    With store_in the job reads a copy kept there (an upload, or a file another machine may have to read);
    without, the file where it is (the bundled sample, a file imported in place on this machine). With
    preview_token, path is the key of that preview's upload in store_in: the job takes the stored file over, and
    the preview is used up in the job's own commit (Conflict if another request used it first). A bad file
    raises InvalidFile (a bad encoding or delimiter ApiError), writing and storing nothing. A key that started a
    job already raises AlreadyStarted with that job, even when two requests with it arrive at once. With a lease
    the job is created held by its owner, which runs it itself (the CLI): no other process can claim it first.
    Waiting jobs of a higher priority (check_priority) claim a free runner slot first.

    The columns are read with the mapping given (mapping; or mapped_fields, some fields, with the rest matched),
    else the template's, else the one remembered for a file with these columns, else the one match_columns finds.
    A mapping given or the template's is remembered for the next file with these columns.
    """
    mode = JobMode(mode)
    priority = check_priority(priority)
    if preview_token is not None:
        readable = functools.partial(store_in.open, path)
    elif os.path.isfile(path):
        readable = path
    else:
        raise InvalidFile(f"No such file: {source}")
    upload = check_upload(
        session,
        readable,
        encoding=encoding,
        delimiter=delimiter,
        file_format=file_format,
        sheet=sheet,
        mapping=mapping,
        mapped_fields=mapped_fields,
        template=template,
        duplicate_policy=duplicate_policy,
        file_name=source,
        max_line_length=max_line_length,
        file_limits=file_limits,
    )
    # A repeated request is checked like the first (a bad one is refused), then answered with the first's job.
    if idempotency_key is not None and (started := job_for_key(session, idempotency_key)) is not None:
        raise AlreadyStarted(started)
    total = estimate = None
    if mode is JobMode.DEFAULT:
        # The bundled sample is small: counting first lets its progress show a percentage from the start.
        with upload.file.open(readable) as rows:
            total = rows.count()
    elif upload.file.file_format in (FileFormat.CSV, FileFormat.NDJSON):
        # The file's line breaks, one more pass in blocks: the page shows progress against it until the end.
        with open_binary(readable) as file:
            estimate = estimate_rows(file)
    key = path if store_in is None or preview_token is not None else store_in.save_file(path)
    job = ImportJob(
        mode=mode.value,
        source=display_name(source),
        path=key,
        encoding=upload.file.encoding,
        delimiter=upload.file.delimiter,
        file_format=upload.file.file_format.value,
        sheet=upload.file.sheet,
        columns=upload.file.columns,
        mapping=upload.file.mapping.to_json(),
        duplicate_policy=upload.options.duplicate_policy.value,
        template_id=upload.options.template_id,
        started_by=started_by,
        idempotency_key=idempotency_key,
        total_records=total,
        estimated_total=estimate,
        priority=priority,
        **(lease.values() if lease else {}),
    )
    session.add(job)
    try:
        if preview_token is not None and not _use_preview(session, preview_token):
            raise Conflict("This preview was started already; preview the file again to import it once more.")
        session.commit()
    except BaseException as error:
        session.rollback()
        if store_in is not None and preview_token is None:
            _discard(store_in, key)  # no job reads the stored copy (a preview's copy stays the preview's)
        started = None
        if isinstance(error, IntegrityError) and idempotency_key is not None:  # the same key committed first
            started = job_for_key(session, idempotency_key)
        if started is None:
            raise
        raise AlreadyStarted(started) from None
    publish_job(broker, session, job.id, JOB_CREATED)
    if upload.chosen:  # a mapping a person chose: the next file with these columns gets it too
        _remember(session, upload.file.columns, upload.file.mapping)
    return job


@dataclasses.dataclass(frozen=True)
class CheckedUpload:
    """A file checked the way an import will read it, with the options it is read with."""

    file: CheckedFile  # its encoding, delimiter, columns and the mapping it is read with
    options: templates.ImportOptions  # the upload's options, those it left out filled from its template
    chosen: bool  # a person chose the mapping (given, or the template's): the next file with these columns gets it


def check_upload(
    session: Session,
    path: FileSource,
    *,
    encoding: str | None,
    delimiter: str | None,
    file_format: FileFormat | None,
    sheet: str | None,
    mapping: ColumnMapping | None,
    mapped_fields: dict | None,
    template: str | None,
    duplicate_policy: DuplicatePolicy | None,
    file_name: str | None,
    max_line_length: int,
    file_limits: FileLimits,
) -> CheckedUpload:
    """Check a file the way an import would read it, with the options an upload names; raise InvalidFile naming
    what is wrong, or MappingRequired when the columns must be mapped. A job and a preview are checked alike.

    The request's own options win; those it left out come from its template (NotFound when there is none). The
    columns are read with the mapping given (mapping; or mapped_fields, some fields, with the rest matched), else
    the template's, else the one remembered for a file with these columns, else the one match_columns finds.
    """
    options = templates.import_options(
        session,
        template=template,
        file_format=file_format,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        mapping=mapping,
        duplicate_policy=duplicate_policy,
    )

    def check(mapping):
        return check_file(
            path,
            file_format=options.file_format,
            file_name=file_name,
            encoding=options.encoding,
            delimiter=options.delimiter,
            sheet=options.sheet,
            mapping=mapping,
            max_line_length=max_line_length,
            limits=file_limits,
        )

    checked, chosen = _check_mapped(session, check, mapping=options.mapping, mapped_fields=mapped_fields)
    return CheckedUpload(checked, options, chosen)


def _check_mapped(session, check, *, mapping, mapped_fields):
    """Check the file with the mapping given, and say whether a person chose it; without one, with the mapping
    remembered for its columns, else the one match_columns finds (MappingRequired when it is unsure).

    Memory wins over automatic matching: a person chose it for exactly these columns. Some fields given
    (mapped_fields) are completed by matching the others, which takes a first look at the file's columns.
    check(mapping) checks the file read with a mapping (None: the one match_columns finds).
    """

    if mapping is not None and mapped_fields:  # the fields given win over the template's
        mapping = ColumnMapping.from_json(mapping.to_json() | mapped_fields)
    elif mapped_fields:
        try:
            columns = check(None).columns
        except MappingRequired as unsure:
            columns = unsure.details["columns"]
        mapping = complete_mapping(mapped_fields, columns)
    if mapping is not None:
        return check(mapping), True
    try:
        checked = check(None)
    except MappingRequired as unsure:
        remembered = memory.recall(session, unsure.details["columns"])
        if remembered is None:
            raise
        # The header alone stopped the first check; the file is checked again, reading it as remembered.
        return check(remembered), False
    remembered = memory.recall(session, checked.columns)
    if remembered is None or remembered == checked.mapping:
        return checked, False
    remembered.bind(checked.columns)  # names only columns of this header: recall made sure
    return dataclasses.replace(checked, mapping=remembered), False


def _remember(session, columns, mapping):
    """Keep a job's mapping in mapping memory; the job stands whatever happens to the memory."""
    try:
        memory.remember(session, columns, mapping)
    except SQLAlchemyError:
        session.rollback()
        log.exception("the mapping of a new import could not be remembered")


def _use_preview(session, token):
    """Delete the preview a job is started from, in the job's transaction; False if another request took it."""
    return session.execute(delete(ImportPreview).where(ImportPreview.token == token)).rowcount == 1


def open_job_file(job: ImportJob, storage: UploadStorage) -> TableSource:
    """Open the job's file from the store the way its check found (format, encoding, delimiter, sheet, columns,
    mapping), its header read: what every run of the job reads its rows from."""
    key = job.path  # read now: the stream is opened again later, when the job's session may be mid-transaction
    how = CheckedFile(
        encoding=job.encoding,
        delimiter=job.delimiter,
        columns=job.columns,
        mapping=ColumnMapping.from_json(job.mapping),
        file_format=FileFormat(job.file_format),
        sheet=job.sheet,
    )
    return how.open(lambda: storage.open(key))


def _discard(storage, key):
    """Delete a stored copy no job was made for; a failure is logged, never raised over the error that led here."""
    try:
        storage.delete(key)
    except Exception:
        log.exception("a stored upload no job reads could not be deleted (%s)", key)


def job_for_key(session: Session, idempotency_key: str) -> ImportJob | None:
    """The job started with this idempotency key, if any."""
    return session.scalar(select(ImportJob).where(ImportJob.idempotency_key == idempotency_key))


def display_name(file_name: str) -> str:
    """The file's name as shown to people: no folders, no control characters, at most 255 characters."""
    name = _CONTROL_CHARACTERS.sub("", os.path.basename(file_name.replace("\\", "/"))).strip()
    return name[:255] or "upload.csv"


# Read.


def get_job(session: Session, job_id: int) -> ImportJob:
    """Read the job afresh, or raise NotFound."""
    session.expire_all()
    job = session.get(ImportJob, job_id) if job_id <= MAX_ID else None
    if job is None:
        raise NotFound(f"No import #{job_id}.")
    return job


def list_jobs(
    session: Session,
    *,
    limit: int,
    offset: int = 0,
    status: str | None = None,
    mode: str | None = None,
    query: str | None = None,
) -> tuple[list[dict], int]:
    """Return a page of imports, unfinished ones first, each part newest first, and how many match in all.

    Optionally only those of one status or mode, or whose file name contains the query (any case). The two parts
    are read apart, each in the order of the (created_at, id) index: the unfinished ones are few (the status index
    finds them), and a page of the others stops reading at its last row instead of sorting every import.
    """
    conditions = _job_filters(status=status, mode=mode, query=query)
    for _ in range(LIST_READS):
        page, total = _jobs_page(session, conditions, limit=limit, offset=offset)
        ids = {job.id for job in page}
        # Each statement reads the newest commits (PostgreSQL): a job that ended between the statements moved from
        # one part to the other, and is on neither page or on both. Such a read is read again.
        if len(ids) == len(page) == min(limit, max(total - offset, 0)):
            break
    runs = _runs_of(session, list(ids))
    return [job.to_dict(runs.get(job.id, [])) for job in page], total


LIST_READS = 3  # reads of a page of imports at most, while jobs ending meanwhile move between its two parts


def _jobs_page(session, conditions, *, limit, offset):
    unfinished = ImportJob.status.in_(stored(JobStatus.unfinished()))
    newest_first = (ImportJob.created_at.desc(), ImportJob.id.desc())
    total = session.scalar(select(func.count()).select_from(ImportJob).where(*conditions))
    unfinished_total = session.scalar(select(func.count()).select_from(ImportJob).where(*conditions, unfinished))
    page = []
    if offset < unfinished_total:
        page += session.scalars(
            select(ImportJob).where(*conditions, unfinished).order_by(*newest_first).limit(limit).offset(offset)
        )
    if len(page) < limit and total > unfinished_total:
        page += session.scalars(
            select(ImportJob)
            .where(*conditions, ImportJob.status.notin_(stored(JobStatus.unfinished())))
            .order_by(*newest_first)
            .limit(limit - len(page))
            .offset(max(offset - unfinished_total, 0))
        )
    return page, total


def _job_filters(*, status, mode, query):
    """The WHERE conditions of the history's filters (each None or empty: not filtered)."""
    conditions = []
    if status:
        conditions.append(ImportJob.status == status)
    if mode:
        conditions.append(ImportJob.mode == mode)
    if query:
        if "\x00" in query:
            raise ApiError("q must not contain NUL characters", code="invalid_parameter")
        escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(func.lower(ImportJob.source).like(f"%{escaped}%", escape="\\"))
    return conditions


def _runs_of(session, job_ids):
    """The runs of the jobs, {job id: [JobRun, ...]} in the order they started."""
    runs = {}
    if job_ids:
        for run in session.scalars(select(JobRun).where(JobRun.job_id.in_(job_ids)).order_by(JobRun.id)):
            runs.setdefault(run.job_id, []).append(run)
    return runs


def job_dict(session: Session, job: ImportJob) -> dict:
    """Return the job as the API shows it, with its import's own duration and sends (its runs are read for them)."""
    return job.to_dict(_runs_of(session, [job.id]).get(job.id, []))


def job_state(session: Session, job_id: int) -> dict | None:
    """Return what a job's page and stream show, or None when there is no such job: the job with its import's own
    timings, its error counts, its runs (each retry among them), and how many failed deliveries a retry would send.
    """
    job = session.get(ImportJob, job_id) if job_id <= MAX_ID else None
    if job is None:
        return None
    runs = _runs_of(session, [job_id]).get(job_id, [])
    return {
        "job": job.to_dict(runs),
        "error_counts": job.error_counts,
        "runs": [run.to_dict() for run in runs],
        "retryable": retryable_count(session, job),
    }


def retryable_count(session: Session, job: ImportJob) -> int:
    """How many of a completed job's records the downstream refused, which a retry sends again; 0 for any other job.

    The count reads the small index of failed records only.
    """
    if job.status != JobStatus.COMPLETED.value or not job.other_count:
        return 0
    return session.scalar(
        select(func.count())
        .select_from(Record)
        .where(Record.job_id == job.id, Record.status == literal(RecordStatus.FAILED.value, literal_execute=True))
    )


def job_detail(session: Session, job_id: int, *, error_preview: int) -> dict:
    """Return the job, its error counts and its first errors, or raise NotFound."""
    job = get_job(session, job_id)
    errors = session.scalars(
        select(RowError).where(RowError.job_id == job_id).order_by(RowError.row, RowError.id).limit(error_preview)
    )
    runs = _runs_of(session, [job_id]).get(job_id, [])
    return {
        "job": job.to_dict(runs),
        "error_counts": job.error_counts,
        "errors": [error.to_dict() for error in errors],
        "runs": [run.to_dict() for run in runs],
    }


def error_page(
    session: Session, job_id: int, *, category: str | None, query: str, limit: int, offset: int
) -> tuple[list[dict], int]:
    """Return a page of the job's errors, optionally of one category and matching a search, in row order, and how
    many there are.

    The search looks for the text, ignoring case, in each error's message and in the row's values as read, and
    matches a row number exactly.
    """
    job = get_job(session, job_id)
    conditions = [RowError.job_id == job_id]
    if category:
        conditions.append(RowError.category == category)
    if query:
        conditions.append(_error_matches(query))
    errors = session.scalars(
        select(RowError).where(*conditions).order_by(RowError.row, RowError.id).limit(limit).offset(offset)
    )
    if query:
        total = session.scalar(select(func.count()).select_from(RowError).where(*conditions))
    else:
        # The job's counters give the total without counting what may be a million error rows.
        counts = job.error_counts
        total = counts[category] if category else sum(counts.values())
    return [error.to_dict() for error in errors], total


def _error_matches(query):
    """A WHERE clause for the errors whose message or values hold the text, or whose row number it is."""
    if "\x00" in query:
        raise ApiError("q must not contain NUL characters", code="invalid_parameter")
    pattern = f"%{_escape_like(query.lower())}%"
    matches = [
        func.lower(RowError.message).like(pattern, escape="\\"),
        func.lower(cast(RowError.data, Text)).like(pattern, escape="\\"),
    ]
    if query.isascii() and query.isdigit() and int(query) <= MAX_ID:
        matches.append(RowError.row == int(query))
    return or_(*matches)


def _escape_like(text):
    """The text with LIKE's wildcards taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def reimported_page(session: Session, job_id: int, *, limit: int, offset: int) -> tuple[list[dict], int]:
    """Return a page of the job's rows that a later import stored and delivers instead, and how many there are.

    They are the job's cancelled or finally refused records that let go of their email, which another import
    then stored: each says which import and row hold it now.
    """
    job = get_job(session, job_id)
    if not (job.cancelled_count or job.other_count):  # only those rows let go of their emails
        return [], 0
    holder = aliased(Record)
    released = statements_for(session).released_key(Record.email_key, SUPERSEDED_MARK)
    conditions = (
        Record.job_id == job_id,
        Record.status.in_([RecordStatus.CANCELLED.value, RecordStatus.FAILED.value]),
        Record.email_key.contains(SUPERSEDED_MARK),
    )
    joined = select(Record.row, Record.email, Record.status, holder.job_id, holder.row.label("holder_row")).join(
        holder, holder.email_key == released
    )
    rows = session.execute(joined.where(*conditions).order_by(Record.row).limit(limit).offset(offset)).all()
    total = session.scalar(select(func.count()).select_from(joined.where(*conditions).subquery()))
    page = [
        {"row": r.row, "email": r.email, "status": r.status, "imported_by": {"job_id": r.job_id, "row": r.holder_row}}
        for r in rows
    ]
    return page, total


def export_errors(session: Session, job_id: int, *, category: str | None, batch_size: int) -> tuple[str, Iterator[str]]:
    """Return a file name and the job's errors as CSV text, in chunks read as they are written."""
    job = get_job(session, job_id)
    keys = job.columns or source_keys(job.path, job.encoding, job.delimiter)  # jobs made before columns were kept
    mapping = ColumnMapping.from_json(job.mapping)
    chunks = errors_csv(session, job_id, keys=keys, mapping=mapping, category=category, batch_size=batch_size)
    return f"import-{job_id}-{category or 'all'}-errors.csv", chunks


def export_results(session: Session, job_id: int, *, batch_size: int) -> tuple[str, Iterator[str]]:
    """Return a file name and the job's delivered records, each with the downstream's answer, as CSV text in chunks
    read as they are written."""
    job = get_job(session, job_id)
    return f"import-{job_id}-results.csv", results_csv(session, job, batch_size=batch_size)


def record_page(
    session: Session, *, job_id: int | None, status: str | None, query: str, limit: int, offset: int
) -> tuple[list[dict], int]:
    """Return a page of records, filtered by job, status or a search of email and name, and how many match."""
    conditions = []
    shown = shown_status(Record, ImportJob.settled_through, ImportJob.sent_through)
    counted = select(func.count()).select_from(Record)
    if job_id is not None:
        conditions.append(Record.job_id == job_id)
    if status in (RecordStatus.FAILED.value, RecordStatus.CANCELLED.value):
        # Stored as they are shown; inline (a known value): a database uses the partial index of failed records
        # only for a literal.
        conditions.append(Record.status == literal(status, literal_execute=True))
    elif status:
        conditions.append(shown == status)  # told by the jobs' watermarks (RecordStatus)
        counted = counted.join(ImportJob, ImportJob.id == Record.job_id)
    if query:
        if "\x00" in query:
            raise ApiError("q must not contain NUL characters", code="invalid_parameter")
        pattern = f"%{query.lower()}%"
        conditions.append(or_(Record.email_key.like(pattern), func.lower(Record.name).like(pattern)))
    records = session.execute(
        select(Record, shown, shown_attempts(Record, ImportJob.settled_through))
        .join(ImportJob, ImportJob.id == Record.job_id)
        .where(*conditions)
        .order_by(Record.job_id, Record.row)
        .limit(limit)
        .offset(offset)
    )
    total = session.scalar(counted.where(*conditions))
    return [record.to_dict(status=shown_as, attempts=attempts) for record, shown_as, attempts in records], total


# Act.


def cancel_job(
    session: Session,
    job_id: int,
    *,
    runner: "JobRunner",
    broker: EventBroker,
    lease_seconds: float,
    notifications: NotificationDefaults,
) -> ImportJob:
    """Cancel an unfinished (or paused) import and return it: ended now if no process holds it, else at the holder's
    next check.

    The request is stored on the job, so a holder in another process sees it when it renews its lease. It is
    announced before a run here is told: what the run announces on stopping is numbered after it, so streams end on
    the run's state, never on the request's.
    """
    get_job(session, job_id)
    paused = ImportJob.status == JobStatus.PAUSED.value
    requested = session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.status.in_(statuses_allowing(JobAction.CANCEL)))
        # A paused job waits once more, so that it is cancelled below, or by whichever run claims it first.
        .values(
            cancel_requested=True,
            pause_requested=False,
            status=case((paused, JobStatus.PENDING.value), else_=ImportJob.status),
        )
    ).rowcount
    session.commit()
    if not requested:
        status = get_job(session, job_id).status
        raise Conflict(f"Import #{job_id} already ended ({status}); there is nothing to cancel.")
    publish_job(broker, session, job_id)
    runner.cancel(job_id)
    # Nobody may hold it (it waits in the database for a free slot, or its process died): then it ends here. The
    # lease is taken under a name of its own, so a run starting in this process at the same moment cannot share it.
    ledger = JobLedger(session, job_id, f"cancel-{uuid.uuid4().hex}", lease_seconds, notifications=notifications)
    if ledger.claim():
        ledger.finish(JobAction.CANCEL)
        publish_job(broker, session, job_id, JOB_FINISHED)
    return get_job(session, job_id)


def retry_job(
    session: Session, job_id: int, *, category: str | None, runner: "JobRunner", lease: Lease | None = None
) -> ImportJob:
    """Queue a completed import's failed deliveries to be sent again and return the job, pending once more.

    Only downstream failures (category "other") can be retried: the other categories are rows that never
    became records, which only a corrected file can fix. With a lease it is reopened held by its owner, which
    runs it itself (the CLI).
    """
    category = category or ErrorCategory.OTHER.value
    if not isinstance(category, str) or category not in {item.value for item in ErrorCategory}:
        allowed = ", ".join(item.value for item in ErrorCategory)
        raise ApiError(f"category must be one of {allowed}; got {category!r}", code="invalid_parameter")
    if category != ErrorCategory.OTHER.value:
        raise ApiError(
            f'"{category}" rows were never sent, so they cannot be retried; download them from '
            f"/api/import/{job_id}/errors.csv?category={category}, fix the file and import it again.",
            code="not_retryable",
        )
    job = get_job(session, job_id)
    if job.status not in statuses_allowing(JobAction.RETRY):
        raise Conflict(f"Import #{job_id} is {job.status}; only a completed import's failed deliveries can be retried.")
    reopened = _move(
        session,
        job_id,
        JobAction.RETRY,
        retries=ImportJob.retries + 1,
        last_retried_at=utcnow(),
        completed_at=None,
        cancel_requested=False,
        pause_requested=False,
        **(lease.values() if lease else {}),
    )
    # Its run takes the refused records back through dedupe and sends them again.
    queued = session.scalar(
        select(func.count())
        .select_from(Record)
        .where(Record.job_id == job_id, Record.status == literal(RecordStatus.FAILED.value, literal_execute=True))
    )
    if not reopened or not queued:
        session.rollback()
        reason = "is being retried already" if not reopened else "has no failed deliveries to retry"
        raise Conflict(f"Import #{job_id} {reason}.")
    session.commit()
    runner.submit(job_id)  # with no free slot here, the job waits for a process that has one
    return get_job(session, job_id)


def resume_job(session: Session, job_id: int, *, runner: "JobRunner", lease: Lease | None = None) -> ImportJob:
    """Queue a failed or cancelled import to go on from where it stopped, and return it, pending once more.

    Its cancelled records go out again (those whose email another import stored meanwhile become duplicates),
    and its file is read on from the last row staged while the upload is kept; once the upload has been
    deleted, what was staged is sent and the job says which rows were never read. With a lease it is reopened
    held by its owner, which runs it itself (the CLI).
    """
    job = get_job(session, job_id)
    if job.status not in statuses_allowing(JobAction.RESUME):
        raise Conflict(f"Import #{job_id} is {job.status}; only a failed or cancelled import can be resumed.")
    held = lease.values() if lease else {}
    reopened = _move(
        session,
        job_id,
        JobAction.RESUME,
        completed_at=None,
        cancel_requested=False,
        pause_requested=False,
        error=None,
        **held,
    )
    if not reopened:
        session.rollback()
        raise Conflict(f"Import #{job_id} is being resumed already.")
    session.commit()  # its run queues the cancelled records again, each back through dedupe
    runner.submit(job_id)  # with no free slot here, the job waits for a process that has one
    return get_job(session, job_id)


def pause_job(session: Session, job_id: int, *, runner: "JobRunner", broker: EventBroker) -> ImportJob:
    """Pause an import that waits or runs, and return it: paused now if no run holds it, else at the holder's next
    heartbeat, where the run stops at a safe point, gives up its slot and its lease, and ends "paused".

    A paused job is never claimed and counts as unfinished (nothing may be cleared while it is). Unlike a cancel,
    nothing of it ends: unpause_job lets it go on from where it stopped. The request is stored on the job, so a
    holder in another process sees it when it renews its lease. It is announced before a run here is told, as a
    cancel is.
    """
    get_job(session, job_id)
    allowed = (
        ImportJob.id == job_id,
        ImportJob.status.in_(statuses_allowing(JobAction.PAUSE)),
        ImportJob.cancel_requested.is_(False),
    )
    # Nobody holds it (it waits for a slot, or its process died): it is paused here. The UPDATE checks that itself,
    # as a claim's UPDATE does, so a job is either claimed or paused, never both.
    unheld = ImportJob.lease_owner.is_(None) | (ImportJob.lease_expires_at < database_now())
    paused = session.execute(
        update(ImportJob)
        .where(*allowed, unheld)
        .values(
            status=TRANSITIONS[JobAction.PAUSE].target.value,
            pause_requested=False,
            lease_owner=None,
            lease_expires_at=None,
            notice=None,
        )
    ).rowcount
    requested = paused or session.execute(update(ImportJob).where(*allowed).values(pause_requested=True)).rowcount
    session.commit()
    if not requested:
        job = get_job(session, job_id)
        if job.status == JobStatus.PAUSED.value:
            raise Conflict(f"Import #{job_id} is paused already.")
        if job.cancel_requested and not JobStatus(job.status).is_terminal:
            raise Conflict(f"Import #{job_id} is being cancelled; there is nothing to pause.")
        raise Conflict(f"Import #{job_id} already ended ({job.status}); there is nothing to pause.")
    publish_job(broker, session, job_id)
    if not paused:
        runner.pause(job_id)  # a run here stops at its next check; a run elsewhere at its next heartbeat
    return get_job(session, job_id)


def unpause_job(session: Session, job_id: int, *, runner: "JobRunner", broker: EventBroker) -> ImportJob:
    """Let a paused import wait for a runner again, and return it, pending: its next run goes on from where the
    paused one stopped, sending what that left in flight again with the same keys."""
    get_job(session, job_id)
    if not _move(session, job_id, JobAction.UNPAUSE, pause_requested=False):
        session.rollback()
        job = get_job(session, job_id)
        if job.pause_requested and not JobStatus(job.status).is_terminal:
            raise Conflict(f"Import #{job_id} is pausing at its next check; unpause it once it is paused.")
        raise Conflict(f"Import #{job_id} is {job.status}; only a paused import can be unpaused.")
    session.commit()
    publish_job(broker, session, job_id)
    runner.submit(job_id)  # with no free slot here, the job waits for a process that has one
    return get_job(session, job_id)


def check_priority(value: object) -> int:
    """A job's priority as a whole number from MIN_PRIORITY to MAX_PRIORITY (a form's text too); ApiError otherwise."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,3}\s*", value):
        number = int(value)
    if number is None or not MIN_PRIORITY <= number <= MAX_PRIORITY:
        raise ApiError(
            f"priority must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY} (higher runs first); got {value!r}",
            code="invalid_parameter",
        )
    return number


def set_priority(session: Session, job_id: int, *, priority: object, broker: EventBroker) -> ImportJob:
    """Give an import a new priority and return it: of the jobs waiting for a slot, higher ones are claimed first.

    A running job keeps its slot (a priority never stops a run); a finished one keeps it for a retry or resume.
    """
    priority = check_priority(priority)
    get_job(session, job_id)
    session.execute(update(ImportJob).where(ImportJob.id == job_id).values(priority=priority))
    session.commit()
    publish_job(broker, session, job_id)
    return get_job(session, job_id)


def _move(session, job_id, action, **values):
    """Take the action if the job's status allows it, checked by the UPDATE itself so that two at once cannot
    both; True if it was taken (uncommitted)."""
    moved = session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.status.in_(statuses_allowing(action)))
        .values(status=TRANSITIONS[action].target.value, **values)
    )
    return moved.rowcount == 1


def delete_job(session: Session, job_id: int, *, running: list[int], storage: UploadStorage) -> dict[str, int]:
    """Delete one import with its records, error rows, runs and uploaded file; refuse while it is unfinished.

    Its records go with it, so their emails no longer count as duplicates for later imports.
    """
    job = get_job(session, job_id)
    if not JobStatus(job.status).is_terminal or job_id in running:
        raise Conflict(f"Import #{job_id} is {job.status}; cancel it or wait for it to end before deleting it.")
    upload = _kept_uploads(session, storage, [job_id])
    session.execute(delete(JobRun).where(JobRun.job_id == job_id))
    deleted = {
        "records": session.execute(delete(Record).where(Record.job_id == job_id)).rowcount,
        "errors": session.execute(delete(RowError).where(RowError.job_id == job_id)).rowcount,
    }
    # The status is checked again by the DELETE itself, in the same transaction: an import resumed meanwhile keeps
    # everything.
    deleted["jobs"] = session.execute(
        delete(ImportJob).where(ImportJob.id == job_id, ImportJob.status.notin_(stored(JobStatus.unfinished())))
    ).rowcount
    if not deleted["jobs"]:
        session.rollback()
        raise Conflict(f"Import #{job_id} started again; cancel it or wait for it to end before deleting it.")
    session.commit()
    deleted["files"] = sum(bool(_delete_upload(storage, path)) for _job_id, path in upload)
    return deleted


def clear_all(session: Session, *, running: list[int], storage: UploadStorage) -> dict[str, int]:
    """Delete every record, error row, import and uploaded file; refuse while any import is unfinished or runs here."""
    unfinished = list(
        session.execute(
            select(ImportJob.id, ImportJob.source, ImportJob.status)
            .where(ImportJob.status.in_(stored(JobStatus.unfinished())) | ImportJob.id.in_(running))
            .order_by(ImportJob.created_at, ImportJob.id)
        )
    )
    if unfinished or running:
        raise _still_running(unfinished, running)
    uploads = _kept_uploads(session, storage)
    session.execute(delete(JobRun))
    session.execute(delete(NotificationDelivery))
    deleted = {
        "records": session.execute(delete(Record)).rowcount,
        "errors": session.execute(delete(RowError)).rowcount,
        "jobs": session.execute(delete(ImportJob)).rowcount,
    }
    session.commit()
    deleted["files"] = sum(bool(_delete_upload(storage, path)) for _job_id, path in uploads)
    return deleted


def _still_running(unfinished, running):
    """The refusal to clear: it names the oldest unfinished import, and carries its id for a link to it."""
    if not unfinished:  # a run this process holds whose job row is gone already
        return Conflict("An import is still running; wait for it to finish or cancel it first.")
    job_id, source, status = unfinished[0]
    others = len(unfinished) - 1
    also = f" (and {others} other{'s' if others > 1 else ''})" if others else ""
    if status == JobStatus.PAUSED.value:
        state, advice = "is paused", "unpause it and let it finish, or cancel it first"
    else:
        state, advice = "is still running", "wait for it to finish or cancel it first"
    return Conflict(
        f"Import #{job_id} ({source}) {state}{also}; {advice}.",
        code="import_running",
        details={"job_id": job_id},
    )


def purge_jobs(session: Session, *, ended_before: datetime, storage: UploadStorage) -> dict[str, int]:
    """Delete the imports that ended before the moment, with their records, error rows and uploaded files.

    Unfinished imports are never purged, however old.
    """
    old = select(ImportJob.id).where(
        ImportJob.status.notin_(stored(JobStatus.unfinished())), ImportJob.completed_at < ended_before
    )
    job_ids = list(session.scalars(old))
    if not job_ids:
        return {"records": 0, "errors": 0, "jobs": 0, "files": 0}
    uploads = _kept_uploads(session, storage, job_ids)
    session.execute(delete(JobRun).where(JobRun.job_id.in_(job_ids)))
    session.execute(delete(NotificationDelivery).where(NotificationDelivery.job_id.in_(job_ids)))
    deleted = {
        "records": session.execute(delete(Record).where(Record.job_id.in_(job_ids))).rowcount,
        "errors": session.execute(delete(RowError).where(RowError.job_id.in_(job_ids))).rowcount,
        "jobs": session.execute(delete(ImportJob).where(ImportJob.id.in_(job_ids))).rowcount,
    }
    session.commit()
    deleted["files"] = sum(bool(_delete_upload(storage, path)) for _job_id, path in uploads)
    return deleted


# Files.


def remove_ended_uploads(
    session: Session,
    *,
    retention_hours: float,
    resume_hours: float,
    storage: UploadStorage,
    job_id: int | None = None,
) -> int:
    """Delete the uploads of imports that completed more than retention_hours ago, or failed or were cancelled
    more than resume_hours ago (they may be resumed until then); return how many files were deleted.

    No run needs the file of a completed import: retries send stored records, and errors.csv reads the header
    stored with the job. Files are deleted from whichever store holds them.
    """
    now = utcnow()
    completed_before = now - timedelta(hours=retention_hours)
    stopped_before = now - timedelta(hours=max(retention_hours, resume_hours))
    ended = select(ImportJob.id, ImportJob.path).where(
        ((ImportJob.status == JobStatus.COMPLETED.value) & (ImportJob.completed_at <= completed_before))
        | (ImportJob.status.in_(statuses_allowing(JobAction.RESUME)) & (ImportJob.completed_at <= stopped_before)),
        ImportJob.upload_removed_at.is_(None),
        _may_be_upload(storage),
    )
    if job_id is not None:
        ended = ended.where(ImportJob.id == job_id)
    removed = 0
    for job_id, path in session.execute(ended).all():
        if storage.is_upload(path) and (deleted := _delete_upload(storage, path)) is not None:
            removed += deleted
            session.execute(update(ImportJob).where(ImportJob.id == job_id).values(upload_removed_at=utcnow()))
    session.commit()
    return removed


def _may_be_upload(storage):
    """A WHERE clause for the paths that may be uploads: storage keys, and plain paths in the upload folder."""
    patterns = [ImportJob.path.like(pattern) for pattern in key_patterns()]
    return or_(*patterns, ImportJob.path.startswith(os.path.join(storage.upload_folder, "")))


def _kept_uploads(session, storage, job_ids=None):
    query = select(ImportJob.id, ImportJob.path).where(ImportJob.upload_removed_at.is_(None), _may_be_upload(storage))
    if job_ids is not None:
        query = query.where(ImportJob.id.in_(job_ids))
    return [(job_id, path) for job_id, path in session.execute(query).all() if storage.is_upload(path)]


def _delete_upload(storage, key):
    """Delete an upload from its store: True if deleted, False if gone already, None if its store is out of
    reach (it is tried again at the next sweep)."""
    try:
        return storage.delete(key)
    except StoreUnavailable as error:
        log.warning("an upload was not deleted: %s", error)
        return None


# Announce.


def publish_job(broker: EventBroker, session: Session, job_id: int, name: str = JOB_PROGRESS) -> None:
    """Publish a job's committed state to this process's streams at once, then announce it to the other
    processes through the broker's relay; call it only after the commit it announces."""
    if publish_job_here(broker, session, job_id, name) and broker.relay is not None:
        broker.relay.announce(session, job_id, name)


def publish_job_here(broker: EventBroker, session: Session, job_id: int, name: str) -> bool:
    """Publish a job's committed state to this process's streams only; False when there is no such job.

    The relay calls it for another process's announcement, which must not be announced again.
    """
    session.expire_all()
    state = job_state(session, job_id)
    if state is None:
        return False
    broker.publish(name, state, job_id=job_id)
    return True


def job_snapshot(session: Session, broker: EventBroker, job_id: int) -> Event:
    """Return the job's current state as the first event of its stream, or raise NotFound.

    Call it after subscribing: events numbered up to the snapshot's id were published, and so committed,
    before this read, so the stream skips them; later ones may only be newer.
    """
    last_id = broker.last_event_id()
    state = job_state(session, job_id)
    if state is None:
        raise NotFound(f"No import #{job_id}.")
    return Event(last_id, state_event_name(state), state, job_id)


def jobs_snapshot(session: Session, broker: EventBroker, *, limit: int) -> Event:
    """Return the history's first page (unfinished imports first, then the newest) as the first event of the
    all-jobs stream."""
    last_id = broker.last_event_id()
    jobs, total = list_jobs(session, limit=limit)
    return Event(last_id, JOBS_SNAPSHOT, {"jobs": jobs, "total": total}, None)
