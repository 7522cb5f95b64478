"""Compare two imports' source rows, matched by email: the rows only in A, only in B, and those whose fields changed.

An import's source rows are its records plus the rows that never became records, kept as error rows with the row
as read (duplicates, missing values, invalid formats): under global dedupe an email is a record in one import and
a duplicate error row in the other, so records alone would match nothing. Rows are matched on the trimmed,
lower-cased email; where an import repeats an email, its first row stands for it.

One GROUP BY on that email key over both imports' rows gives, per email, A's first row and B's first row (either
may be missing): that is every count and list but "changed". Each row's fields are joined on by (job, row), which
the records' and error rows' indexes serve; the fields of matched pairs (name, company, and the extra fields both
rows have) are compared in Python as the pairs stream.
"""

import csv
import io
import json
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import Select, and_, case, exists, func, literal, select, union_all
from sqlalchemy.orm import Session, aliased

from ..errors import InvalidFile
from ..models import ImportJob, Record, RowError, isoformat, shown_status
from .export import neutralise
from .jobs import get_job
from .mapping import FIELDS, ColumnMapping, match_columns

STREAM_BATCH = 1_000  # rows fetched from the database at a time while a list or the CSV streams


class Difference(str, Enum):
    ONLY_A = "only_a"
    ONLY_B = "only_b"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One source row as the comparison sees it."""

    row: int
    email: str | None
    name: str | None
    company: str | None
    extra: dict | None
    state: str  # a record's status (succeeded, failed...) or an error row's category (duplicate...)

    def to_dict(self) -> dict:
        return {
            "row": self.row,
            "email": self.email,
            "name": self.name,
            "company": self.company,
            "extra": self.extra,
            "state": self.state,
        }


@dataclass(frozen=True)
class _Side:
    job: ImportJob
    email_column: str  # the source column that holds the email, as error rows' data names it
    read: Callable[[dict | None], tuple]  # an error row's data -> (name, email, company, extra)


def compare_counts(session: Session, a_id: int, b_id: int) -> dict:
    """Return how many source rows each import has, and how many are only in A, only in B, changed and the same."""
    a, b = _side(session, a_id), _side(session, b_id)
    counts = _side_counts(session, a, b)
    emails = _by_email(a, b)
    both = emails.c.a_row.is_not(None) & emails.c.b_row.is_not(None)
    only_a, only_b, matched = session.execute(
        select(_count_where(emails.c.b_row.is_(None)), _count_where(emails.c.a_row.is_(None)), _count_where(both))
    ).one()
    changed = 0
    with closing(_pairs(session, a, b)) as pairs:
        for left, right in pairs:
            changed += bool(changed_fields(left, right))
    counts |= {
        Difference.ONLY_A.value: only_a or 0,
        Difference.ONLY_B.value: only_b or 0,
        Difference.CHANGED.value: changed,
        "same": (matched or 0) - changed,
    }
    return {"a": _job_summary(a.job), "b": _job_summary(b.job), "counts": counts}


def compare_page(session: Session, a_id: int, b_id: int, *, difference: str, limit: int, offset: int) -> list[dict]:
    """Return a page of one kind of difference, in A's row order (B's for rows only in B)."""
    a, b = _side(session, a_id), _side(session, b_id)
    if difference == Difference.CHANGED.value:
        page = []
        skipped = 0
        with closing(_pairs(session, a, b)) as pairs:
            for left, right in pairs:
                fields = changed_fields(left, right)
                if not fields:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                page.append(_changed_item(left, right, fields))
                if len(page) == limit:
                    break
        return page
    mine = a if difference == Difference.ONLY_A.value else b
    # The page's row numbers first, then their fields: a page's worth of lookups, not one per row of the list.
    numbers = _only_rows(a, b, difference).limit(limit).offset(offset).subquery("page")
    rows = session.execute(_with_fields(select(numbers.c.row), mine, numbers.c.row, "").order_by(numbers.c.row))
    sources = [_source(mine, row, row.row) for row in rows]
    return [{"email": source.email, "row": source.to_dict()} for source in sources]


def compare_csv(session: Session, a_id: int, b_id: int) -> tuple[str, Iterator[str]]:
    """Return a file name and every difference as CSV text, streamed in chunks with flat memory."""
    a, b = _side(session, a_id), _side(session, b_id)
    return f"compare-{a_id}-{b_id}.csv", _csv_chunks(session, a, b)


def changed_fields(a: SourceRow, b: SourceRow) -> list[str]:
    """Name the fields whose values differ (trimmed; empty and missing alike): name, company, then the extra
    fields both rows have, as extra.<column>."""
    changed = [field for field in ("name", "company") if _clean(getattr(a, field)) != _clean(getattr(b, field))]
    a_extra, b_extra = a.extra or {}, b.extra or {}
    for column in sorted(a_extra.keys() & b_extra.keys()):
        if _clean(a_extra[column]) != _clean(b_extra[column]):
            changed.append(f"extra.{column}")
    return changed


# How the comparison reads each import.


def _side(session, job_id):
    job = get_job(session, job_id)
    columns = list(job.columns or FIELDS)
    mapping = ColumnMapping.from_json(job.mapping) or match_columns(columns).mapping
    try:
        bound = (mapping or ColumnMapping(name=("name",), email="email", company="company")).bind(columns)
    except InvalidFile:  # a job from before mappings whose columns are not the usual ones
        bound = ColumnMapping(name=(columns[0],), email=columns[min(1, len(columns) - 1)]).bind(columns)

    def read(data):
        data = data or {}
        if not all(column in data for column in columns):  # a row stored under other case (downstream refusals)
            folded = {str(key).casefold(): value for key, value in data.items()}
            data = {column: data.get(column, folded.get(column.casefold())) for column in columns}
        return bound.assemble(["" if data[column] is None else str(data[column]) for column in columns])

    return _Side(job, columns[bound.email_at], read)


def _email_key(email):
    return func.nullif(func.lower(func.trim(email)), "")


def _keyed_rows(side, name):
    """(side, row, key) of the import's source rows: its records, and its error rows that never became records
    (a refused record keeps an error row of its own beside it: still one source row)."""
    job_id = side.job.id
    records = select(literal(name).label("side"), Record.row.label("row"), _email_key(Record.email).label("key"))
    errors = select(literal(name), RowError.row, _email_key(RowError.data[side.email_column].as_string()))
    return [
        records.where(Record.job_id == job_id),
        errors.where(
            RowError.job_id == job_id, ~exists().where(Record.job_id == RowError.job_id, Record.row == RowError.row)
        ),
    ]


def _source_rows(a, b):
    return union_all(*_keyed_rows(a, "a"), *_keyed_rows(b, "b")).subquery("source")


def _by_email(a, b):
    """Per email key: A's first row and B's first row holding it (None where an import has none)."""
    source = _source_rows(a, b)
    return (
        select(
            source.c.key,
            func.min(case((source.c.side == "a", source.c.row))).label("a_row"),
            func.min(case((source.c.side == "b", source.c.row))).label("b_row"),
        )
        .where(source.c.key.is_not(None))
        .group_by(source.c.key)
        .subquery("by_email")
    )


def _count_where(condition):
    return func.sum(case((condition, 1), else_=0))


def _side_counts(session, a, b):
    """Per import: source rows in all, rows with no email to match on, distinct emails, rows repeating one."""
    source = _source_rows(a, b)
    found = {
        side: (rows, keyed, emails)
        for side, rows, keyed, emails in session.execute(
            select(source.c.side, func.count(), func.count(source.c.key), func.count(source.c.key.distinct())).group_by(
                source.c.side
            )
        )
    }
    counts = {}
    for side in ("a", "b"):
        rows, keyed, emails = found.get(side, (0, 0, 0))
        counts[side] = {"rows": rows, "emails": emails, "without_email": rows - keyed, "repeated": keyed - emails}
    return counts


def _only_rows(a, b, difference) -> Select:
    """The numbers of the rows (of A, or of B) whose email the other import lacks, in row order."""
    emails = _by_email(a, b)
    mine, theirs = (
        (emails.c.a_row, emails.c.b_row) if difference == Difference.ONLY_A.value else (emails.c.b_row, emails.c.a_row)
    )
    return select(mine.label("row")).where(theirs.is_(None)).order_by(mine)


def _only_in(a, b, difference) -> Select:
    """The rows (of A, or of B) whose email the other import lacks, in row order, with their fields."""
    rows = _only_rows(a, b, difference).subquery("only")
    side = a if difference == Difference.ONLY_A.value else b
    return _with_fields(select(rows.c.row), side, rows.c.row, "").order_by(rows.c.row)


def _matched(a, b) -> Select:
    """The emails both imports hold, in A's row order, with both rows' fields."""
    emails = _by_email(a, b)
    query = select(emails.c.a_row, emails.c.b_row).where(emails.c.a_row.is_not(None), emails.c.b_row.is_not(None))
    query = _with_fields(query, a, emails.c.a_row, "a_")
    return _with_fields(query, b, emails.c.b_row, "b_").order_by(emails.c.a_row)


def _with_fields(query, side, row, prefix):
    """Add the fields of the import's source row at `row`: its record's, else its error row's data (the first
    error row of that row, should there be several)."""
    record, error = aliased(Record, name=f"{prefix}record"), aliased(RowError, name=f"{prefix}error")
    first_error = (
        select(func.min(RowError.id)).where(RowError.job_id == side.job.id, RowError.row == row).scalar_subquery()
    )
    return (
        query.outerjoin(record, and_(record.job_id == side.job.id, record.row == row))
        .outerjoin(error, and_(record.id.is_(None), error.id == first_error))
        .add_columns(
            *(
                column.label(prefix + column.key)
                for column in (
                    shown_status(record, side.job.settled_through, side.job.sent_through).label("status"),
                    record.name,
                    record.email,
                    record.company,
                    record.extra,
                )
            ),
            error.category.label(prefix + "category"),
            error.data.label(prefix + "data"),
        )
    )


def _source(side, row, number, prefix=""):
    """The SourceRow of one result row's fields (those _with_fields added under the prefix)."""
    values = row._mapping
    if values[prefix + "status"] is not None:
        name, email, company, extra = (values[prefix + key] for key in ("name", "email", "company", "extra"))
        state = values[prefix + "status"]
    else:
        name, email, company, extra = side.read(values[prefix + "data"])
        state = values[prefix + "category"]
    return SourceRow(number, email, name, company, extra or None, state)


def _streamed(session, query):
    """Yield the query's rows, fetched STREAM_BATCH at a time (a server-side cursor on PostgreSQL)."""
    result = session.execute(query.execution_options(yield_per=STREAM_BATCH))
    try:
        yield from result
    finally:
        result.close()  # a reader that stops early (a page filled, a download dropped) leaves no cursor open


def _pairs(session, a, b) -> Iterator[tuple[SourceRow, SourceRow]]:
    """Yield the matched (A, B) source rows in A's row order."""
    for row in _streamed(session, _matched(a, b)):
        yield _source(a, row, row.a_row, "a_"), _source(b, row, row.b_row, "b_")


def _changed_item(a, b, fields):
    return {"email": a.email, "fields": fields, "a": a.to_dict(), "b": b.to_dict()}


def _job_summary(job):
    return {"id": job.id, "source": job.source, "status": job.status, "created_at": isoformat(job.created_at)}


def _clean(value):
    return "" if value is None else str(value).strip()


# The CSV download.

CSV_COLUMNS = (
    "difference",
    "email",
    "changed_fields",
    "row_a",
    "state_a",
    "name_a",
    "company_a",
    "extra_a",
    "row_b",
    "state_b",
    "name_b",
    "company_b",
    "extra_b",
)


def _csv_chunks(session, a, b):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # a byte order mark, so spreadsheets read the file as UTF-8
    writer.writerow(CSV_COLUMNS)

    def flush():
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    blank = [""] * 5
    for difference, side in ((Difference.ONLY_A, a), (Difference.ONLY_B, b)):
        for written, row in enumerate(_streamed(session, _only_in(a, b, difference.value)), start=1):
            source = _source(side, row, row.row)
            cells = _csv_side(source) + blank if difference is Difference.ONLY_A else blank + _csv_side(source)
            writer.writerow([neutralise(cell) for cell in (difference.value, source.email, "", *cells)])
            if written % STREAM_BATCH == 0:
                yield flush()
    changed = 0
    for left, right in _pairs(session, a, b):
        fields = changed_fields(left, right)
        if fields:
            cells = [Difference.CHANGED.value, left.email, " ".join(fields), *_csv_side(left), *_csv_side(right)]
            writer.writerow([neutralise(cell) for cell in cells])
            changed += 1
            if changed % STREAM_BATCH == 0:
                yield flush()
    session.rollback()  # end the read
    yield flush()


def _csv_side(source):
    extra = json.dumps(source.extra, ensure_ascii=False, sort_keys=True) if source.extra else ""
    return [source.row, source.state, source.name, source.company, extra]
