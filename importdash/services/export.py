"""Export a job's errors as CSV: safe to open in a spreadsheet, and ready to fix and import again."""

import csv
import io
from collections.abc import Iterator

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from ..errors import InvalidFile
from ..models import RowError
from .mapping import FIELDS
from .reader import EXTRA_KEY, read_header

ERROR_COLUMNS = ("row", "category", "message")
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
    session: Session, job_id: int, *, keys: list[str], category: str | None, batch_size: int
) -> Iterator[str]:
    """Yield the job's errors as CSV text, one batch of rows per chunk, in row order.

    Each line is the row number, category and message, then the row as it was read under its file's columns
    (cells beyond them follow at the end). Every cell is neutralised; the stored data is not touched.
    """
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
            cells = (error.row, error.category, error.message, *_cells(error.data, keys))
            writer.writerow([neutralise(cell) for cell in cells])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(errors) < batch_size:
            return
        after = (errors[-1].row, errors[-1].id)


def _cells(data, keys):
    """The row's cells under the keys; a downstream refusal stored only name, email and company, in lower case."""
    data = data or {}
    cells = [data.get(key, data.get(key.lower()) if key.lower() in FIELDS else None) for key in keys]
    extra = data.get(EXTRA_KEY) or []
    return cells + list(extra)
