"""Compare two imports' source rows, matched by email: the rows only in A, only in B, and those whose fields changed.

An import's source rows are its records plus the rows that never became records, kept as error rows with the row
as read (duplicates, missing values, invalid formats): under global dedupe an email is a record in one import and
a duplicate error row in the other, so records alone would match nothing. Rows are matched on the trimmed,
lower-cased email; where an import repeats an email, its first row stands for it. Sets are joined in SQL; the
fields of matched pairs (name, company, and the extra fields both rows have) are compared in Python as they stream.
"""

import csv
import io
import json
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import JSON, Select, cast, exists, func, literal, null, select, union_all
from sqlalchemy.orm import Session

from ..errors import InvalidFile
from ..models import ImportJob, Record, RowError
from .export import neutralise
from .jobs import get_job
from .mapping import FIELDS, ColumnMapping, match_columns

STREAM_BATCH = 1_000  # rows fetched from the database at a time while pairs stream


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


@dataclass
class _Side:
    job: ImportJob
    email_column: str  # the source column that holds the email, as error rows' data names it
    rows: Select  # (row, key, origin, state, name, email, company, extra, data), one per key
    read: Callable[[dict | None], tuple]  # an error row's data -> (name, email, company, extra)


def compare_counts(session: Session, a_id: int, b_id: int) -> dict:
    """Return how many source rows each import has, and how many are only in A, only in B, changed and the same."""
    a, b = _side(session, a_id), _side(session, b_id)
    counts = {"a": _side_counts(session, a), "b": _side_counts(session, b)}
    matched = changed = 0
    for left, right in _pairs(session, a, b):
        matched += 1
        changed += bool(changed_fields(left, right))
    counts |= {
        Difference.ONLY_A.value: counts["a"]["emails"] - matched,
        Difference.ONLY_B.value: counts["b"]["emails"] - matched,
        Difference.CHANGED.value: changed,
        "same": matched - changed,
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
    one, other = (a, b) if difference == Difference.ONLY_A.value else (b, a)
    rows = session.execute(_only_in(one, other).limit(limit).offset(offset)).all()
    return [{"email": source.email, "row": source.to_dict()} for source in (_source(one, row) for row in rows)]


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
    email_column = columns[bound.email_at]

    def read(data):
        data = data or {}
        folded = {str(key).casefold(): value for key, value in data.items()}
        cells = [data.get(column, folded.get(column.casefold())) for column in columns]
        cells = ["" if cell is None else str(cell) for cell in cells]
        return bound.assemble(cells)

    return _Side(job, email_column, _source_rows(job.id, email_column), read)


def _source_rows(job_id, email_column):
    """The job's records and the error rows that never became records, with their email key; one row per key."""
    records = select(
        Record.row.label("row"),
        func.nullif(func.lower(func.trim(Record.email)), "").label("key"),
        literal("record").label("origin"),
        Record.status.label("state"),
        Record.name.label("name"),
        Record.email.label("email"),
        Record.company.label("company"),
        Record.extra.label("extra"),
        cast(null(), JSON).label("data"),
    ).where(Record.job_id == job_id)
    errors = select(
        RowError.row,
        func.nullif(func.lower(func.trim(RowError.data[email_column].as_string())), ""),
        literal("error"),
        RowError.category,
        null(),
        null(),
        null(),
        cast(null(), JSON),
        RowError.data,
    ).where(
        RowError.job_id == job_id,
        # A refused record keeps an error row of its own (category other) beside the record: it is one source row.
        ~exists().where(Record.job_id == RowError.job_id, Record.row == RowError.row),
    )
    both = union_all(records, errors).subquery("source")
    first = func.row_number().over(partition_by=both.c.key, order_by=(both.c.row, both.c.origin)).label("rank")
    ranked = select(*both.c, first).where(both.c.key.is_not(None)).subquery("ranked")
    return select(*(column for column in ranked.c if column.name != "rank")).where(ranked.c.rank == 1)


def _side_counts(session, side):
    """Source rows in all, rows with no email to match on, and distinct emails."""
    records = select(Record.row).where(Record.job_id == side.job.id)
    errors = select(RowError.row).where(
        RowError.job_id == side.job.id, ~exists().where(Record.job_id == RowError.job_id, Record.row == RowError.row)
    )
    total = session.scalar(select(func.count()).select_from(union_all(records, errors).subquery()))
    emails = session.scalar(select(func.count()).select_from(side.rows.subquery()))
    no_email = session.scalar(_without_email(side))
    return {"rows": total, "emails": emails, "without_email": no_email, "repeated": total - emails - no_email}


def _without_email(side):
    """Source rows with no email to match on: records cannot lack one, so only error rows (missing values)."""
    blank = func.coalesce(func.trim(RowError.data[side.email_column].as_string()), "") == ""
    return select(func.count()).where(
        RowError.job_id == side.job.id,
        blank,
        ~exists().where(Record.job_id == RowError.job_id, Record.row == RowError.row),
    )


def _only_in(one, other):
    mine, theirs = one.rows.subquery("mine"), other.rows.subquery("theirs")
    return (
        select(mine)
        .outerjoin(theirs, theirs.c.key == mine.c.key)
        .where(theirs.c.key.is_(None))
        .order_by(mine.c.row, mine.c.origin)
    )


def _pairs(session, a, b) -> Iterator[tuple[SourceRow, SourceRow]]:
    """Yield the matched (A, B) source rows in A's row order, streamed."""
    left, right = a.rows.subquery("a"), b.rows.subquery("b")
    query = (
        select(*(column.label(f"a_{column.name}") for column in left.c))
        .add_columns(*(column.label(f"b_{column.name}") for column in right.c))
        .join_from(left, right, left.c.key == right.c.key)
        .order_by(left.c.row, left.c.origin)
    )
    for row in _streamed(session, query):
        yield _source(a, row, "a_"), _source(b, row, "b_")


def _streamed(session, query):
    """Yield the query's rows, fetched STREAM_BATCH at a time (a server-side cursor on PostgreSQL)."""
    result = session.execute(query.execution_options(yield_per=STREAM_BATCH))
    try:
        yield from result
    finally:
        result.close()  # a reader that stops early (a page filled, a download dropped) leaves no cursor open


def _source(side, row, prefix=""):
    values = row._mapping

    def get(name):
        return values[prefix + name] if prefix else values[name]

    if get("origin") == "record":
        name, email, company, extra = get("name"), get("email"), get("company"), get("extra")
    else:
        name, email, company, extra = side.read(get("data"))
    return SourceRow(get("row"), email, name, company, extra or None, get("state"))


def _changed_item(a, b, fields):
    return {"email": a.email, "fields": fields, "a": a.to_dict(), "b": b.to_dict()}


def _job_summary(job):
    return {"id": job.id, "source": job.source, "status": job.status, "created_at": job.to_dict()["created_at"]}


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

    written = 0
    for one, other, difference in ((a, b, Difference.ONLY_A), (b, a, Difference.ONLY_B)):
        for row in _streamed(session, _only_in(one, other)):
            source = _source(one, row)
            cells = [difference.value, source.email, ""]
            blank = [""] * 5
            cells += _csv_side(source) + blank if difference is Difference.ONLY_A else blank + _csv_side(source)
            writer.writerow([neutralise(cell) for cell in cells])
            written += 1
            if written % STREAM_BATCH == 0:
                yield flush()
    for left, right in _pairs(session, a, b):
        fields = changed_fields(left, right)
        if fields:
            cells = [Difference.CHANGED.value, left.email, " ".join(fields), *_csv_side(left), *_csv_side(right)]
            writer.writerow([neutralise(cell) for cell in cells])
            written += 1
            if written % STREAM_BATCH == 0:
                yield flush()
    session.rollback()  # end the read
    yield flush()


def _csv_side(source):
    extra = json.dumps(source.extra, ensure_ascii=False, sort_keys=True) if source.extra else ""
    return [source.row, source.state, source.name, source.company, extra]
