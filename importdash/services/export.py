"""Export a job's errors as CSV, ready to fix and import again, and its delivered records with the downstream's
answers: both safe to open in a spreadsheet, and streamed a batch at a time so memory stays flat."""

import csv
import io
import json
from collections.abc import Iterator

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from ..errors import InvalidFile
from ..models import ImportJob, Record, RecordStatus, RowError, shown_attempts, shown_status
from .mapping import FIELDS, REPORT_COLUMNS, ColumnMapping
from .reader import EXTRA_KEY, read_header

ERROR_COLUMNS = REPORT_COLUMNS
RESULT_COLUMNS = ("row", "name", "email", "company", "status", "attempts", "response")
DELIVERED = (RecordStatus.SUCCEEDED.value, RecordStatus.FAILED.value)  # records the downstream answered
# A cell starting with one of these runs as a formula in a spreadsheet (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def neutralise(value: object) -> str:
    """Return the cell as text, with a quote in front if a spreadsheet would run it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def source_keys(path: str, encoding: str, delimiter: str) -> list[str]:
    """The keys a CSV job's rows were stored under: its file's columns, or name, email, company if it is gone.

    For the jobs made before a job kept its columns (ImportJob.columns), which were all CSV.
    """
    try:
        return read_header(path, encoding, delimiter)
    except (OSError, InvalidFile):
        return list(FIELDS)


def errors_csv(
    session: Session,
    job_id: int,
    *,
    keys: list[str],
    mapping: ColumnMapping | None,
    category: str | None,
    batch_size: int,
) -> Iterator[str]:
    """Yield the job's errors as CSV text, one batch of rows per chunk, in row order.

    Each line is the row number, category and message, then the row as it was read under its file's columns
    (cells beyond them follow at the end). Every cell is neutralised; the stored data is not touched. A file
    that was itself an errors.csv had those three columns already: they are written once, for this export.
    """
    if tuple(keys[: len(ERROR_COLUMNS)]) == ERROR_COLUMNS:
        keys = keys[len(ERROR_COLUMNS) :]
    fields = _fields_by_column(mapping)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # a byte order mark, so spreadsheets read the file as UTF-8
    writer.writerow([neutralise(name) for name in (*ERROR_COLUMNS, *keys)])
    conditions = [RowError.job_id == job_id]
    if category:
        conditions.append(RowError.category == category)
    after = (0, 0)  # (row, id) of the last error written: each batch is a fresh, short query
    while True:
        errors = session.execute(
            select(RowError.id, RowError.row, RowError.category, RowError.message, RowError.data)
            .where(*conditions, tuple_(RowError.row, RowError.id) > tuple_(*after))
            .order_by(RowError.row, RowError.id)
            .limit(batch_size)
        ).all()
        session.rollback()  # end the read, so a slow download holds no transaction open
        for error in errors:
            cells = (error.row, error.category, error.message, *_cells(error.data, keys, fields))
            writer.writerow([neutralise(cell) for cell in cells])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(errors) < batch_size:
            return
        after = (errors[-1].row, errors[-1].id)


def _fields_by_column(mapping):
    """{column: field} of the columns the mapping reads name, email and company from (a name read from several
    columns goes in the first: imported again, it is the whole name)."""
    if mapping is None:
        return {}
    fields = {mapping.name[0]: "name", mapping.email: "email"}
    if mapping.company is not None:
        fields[mapping.company] = "company"
    return fields


def _cells(data, keys, fields):
    """The row's cells under the keys. A downstream refusal stored the record: name, email and company under those
    names (found by the mapping's columns, or in lower case), its extra fields under their columns."""
    data = data or {}
    cells = [
        data[key] if key in data else data.get(fields.get(key) or (key.lower() if key.lower() in FIELDS else None))
        for key in keys
    ]
    extra = data.get(EXTRA_KEY) or []
    return cells + list(extra)


def results_csv(session: Session, job: ImportJob, *, batch_size: int) -> Iterator[str]:
    """Yield the job's delivered records as CSV text, one batch per chunk, in row order.

    Each line is the record as stored, whether the downstream took it (succeeded) or refused it (failed), how many
    calls it took, and the downstream's last answer as JSON. Every cell is neutralised.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # a byte order mark, so spreadsheets read the file as UTF-8
    writer.writerow(RESULT_COLUMNS)
    # The job's watermarks as they are now: a record delivered after this line is left out, as one sent later.
    job_id, settled, sent = job.id, job.settled_through, job.sent_through
    status = shown_status(Record, settled, sent)
    columns = (
        Record.row,
        Record.name,
        Record.email,
        Record.company,
        status,
        shown_attempts(Record, settled),
        Record.response,
    )
    after = 0  # the row of the last record written: each batch is a fresh, short query on (job_id, row)
    while True:
        records = session.execute(
            select(*columns)
            .where(Record.job_id == job_id, Record.row > after, status.in_(DELIVERED))
            .order_by(Record.row)
            .limit(batch_size)
        ).all()
        session.rollback()  # end the read, so a slow download holds no transaction open
        for record in records:
            answer = json.dumps(record.response, ensure_ascii=False) if record.response is not None else ""
            cells = (*record[:6], answer)
            writer.writerow([neutralise(cell) for cell in cells])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(records) < batch_size:
            return
        after = records[-1].row
