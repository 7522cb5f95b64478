"""Preview an upload before anything is written, and keep it under a token until an import is started from it.

A preview says how the file would be read (the mapping found, or what must be mapped), shows its first rows as
mapped, counts its rows by the category an import would give them (duplicates checked against the stored
records) and estimates the delivery time at the current rate limit. It writes no job, record or error row: only
the kept upload and its ImportPreview row, which "Start import" uses up (jobs.create_job(preview_token=...)) and
the upload sweep deletes once PREVIEW_TTL_MINUTES have passed.
"""

import functools
import logging
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..errors import ApiError, MappingRequired
from ..models import ANONYMOUS_USER, DuplicatePolicy, FileFormat, ImportPreview, Record, isoformat
from .dialects import database_now, lease_expiry
from .jobs import check_upload, display_name
from .mapping import ColumnMapping
from .reader import CheckedFile, FileLimits
from .rows import FileSource
from .storage import StoreUnavailable, UploadStorage
from .validator import Contact, Rejection, validate

log = logging.getLogger(__name__)

# The options an upload names (views/imports.py UPLOAD_FIELDS), as create_job takes them, and as kept in JSON.
OPTION_NAMES = ("encoding", "delimiter", "file_format", "sheet", "mapping", "template", "duplicate_policy")

# The categories a preview counts rows in: an import's own, with duplicates told apart by what they repeat.
VALID = "valid"
MISSING_VALUE = "missing_value"
INVALID_FORMAT = "invalid_format"
DUPLICATE_IN_FILE = "duplicate_in_file"  # the email is on an earlier row of the file
DUPLICATE_STORED = "duplicate_stored"  # a stored record holds the email (an update under DuplicatePolicy.UPDATE)
CATEGORIES = (VALID, MISSING_VALUE, INVALID_FORMAT, DUPLICATE_IN_FILE, DUPLICATE_STORED)


@dataclass(frozen=True)
class PreviewSettings:
    rows: int  # rows shown as mapped
    lookup_batch_size: int  # emails looked up among the stored records per query
    records_per_call: int
    rate_per_second: float  # downstream calls per second; 0: no limit
    max_line_length: int
    file_limits: FileLimits
    ttl_minutes: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "PreviewSettings":
        return cls(
            rows=config["PREVIEW_ROWS"],
            lookup_batch_size=config["PREVIEW_LOOKUP_BATCH_SIZE"],
            records_per_call=config["RECORDS_PER_CALL"],
            rate_per_second=config["RATE_PER_SECOND"],
            max_line_length=config["MAX_LINE_LENGTH"],
            file_limits=FileLimits.from_config(config),
            ttl_minutes=config["PREVIEW_TTL_MINUTES"],
        )


@dataclass
class Summary:
    """What reading the whole file found: its first rows as mapped, and how many rows fall in each category."""

    rows: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def summarize(
    session: Session, source: FileSource, checked: CheckedFile, *, shown_rows: int, lookup_batch_size: int
) -> Summary:
    """Read every row of a checked file as an import would, writing nothing; return its first rows and counts.

    A valid row is a duplicate when an earlier row has its email, or when a stored record holds it (looked up by
    the unique email key, a batch of rows at a time, as staging would meet it).
    """
    summary = Summary()
    # A 64-bit hash per email seen instead of the email itself: a million rows take about 70 MB, not 105. Two
    # emails share a hash with odds of about 1 in 10^7 at that size, and then only the preview's count is off.
    seen: set[int] = set()
    waiting: list[tuple[Contact, dict | None]] = []  # valid rows whose emails are not looked up yet
    with checked.open(source) as reader:
        for source_row in reader.rows():
            outcome = validate(source_row)
            shown = _shown(source_row) if len(summary.rows) < shown_rows else None
            if shown is not None:
                summary.rows.append(shown)
            if isinstance(outcome, Rejection):
                summary.counts[outcome.category] += 1
                if shown is not None:
                    shown.update(category=outcome.category, message=outcome.message)
                continue
            key = hash(outcome.email_key)
            if key in seen:
                summary.counts[DUPLICATE_IN_FILE] += 1
                if shown is not None:
                    shown.update(category=DUPLICATE_IN_FILE, message=f"email {outcome.email} is on an earlier row")
                continue
            seen.add(key)
            waiting.append((outcome, shown))
            if len(waiting) >= lookup_batch_size:
                _look_up(session, waiting, summary)
                waiting = []
    _look_up(session, waiting, summary)
    return summary


def _look_up(session, waiting, summary):
    """Sort the valid rows waiting into new emails and those a stored record holds."""
    if not waiting:
        return
    keys = {contact.email_key for contact, _shown in waiting}
    stored = set(session.scalars(select(Record.email_key).where(Record.email_key.in_(keys))))
    session.rollback()  # a read only: end its transaction, so no snapshot or lock is held while the file is read
    for contact, shown in waiting:
        category = DUPLICATE_STORED if contact.email_key in stored else VALID
        summary.counts[category] += 1
        if shown is not None:
            message = f"a stored record has the email {contact.email}" if category == DUPLICATE_STORED else None
            shown.update(category=category, message=message)


def _shown(source_row):
    return {
        "row": source_row.row,
        "name": source_row.name,
        "email": source_row.email,
        "company": source_row.company,
        "extra": source_row.extra,
        "category": None,
        "message": None,
    }


def estimate(records: int, *, records_per_call: int, rate_per_second: float) -> dict:
    """How long delivering the records takes at the rate limit: calls of records_per_call, rate_per_second calls
    a second (seconds None when the rate is not limited)."""
    calls = math.ceil(records / records_per_call)
    seconds = calls / rate_per_second if rate_per_second > 0 else None
    return {
        "records": records,
        "calls": calls,
        "records_per_call": records_per_call,
        "rate_per_second": rate_per_second,
        "seconds": None if seconds is None else round(seconds, 1),
    }


def preview_file(
    session: Session,
    source: FileSource,
    options: Mapping[str, Any],
    *,
    file_name: str | None,
    settings: PreviewSettings,
) -> dict:
    """Check and read a file with the upload's options, writing nothing; return what a preview shows.

    A file whose columns must be mapped gives "mapping_required" (its columns and the suggestions) instead of
    rows and counts; any other bad file raises InvalidFile, as an import would.
    """
    try:
        reading = {name: options.get(name) for name in OPTION_NAMES}
        upload = check_upload(
            session,
            source,
            mapped_fields=None,
            file_name=file_name,
            max_line_length=settings.max_line_length,
            file_limits=settings.file_limits,
            **reading,
        )
    except MappingRequired as error:
        return {
            "columns": error.details["columns"],
            "mapping": None,
            "mapping_required": {"message": error.message, **error.details},
            "encoding": None,
            "delimiter": None,
            "rows": [],
            "counts": None,
            "estimate": None,
        }
    checked = upload.file
    summary = summarize(
        session, source, checked, shown_rows=settings.rows, lookup_batch_size=settings.lookup_batch_size
    )
    counts = {**summary.counts, "total": summary.total}
    delivered = counts[VALID]
    if upload.options.duplicate_policy is DuplicatePolicy.UPDATE:
        delivered += counts[DUPLICATE_STORED]  # at most: a row whose fields did not change is skipped
    return {
        "columns": checked.columns,
        "mapping": checked.mapping.to_json(),
        "mapping_required": None,
        "encoding": checked.encoding,
        "delimiter": checked.delimiter,
        "rows": summary.rows,
        "counts": counts,
        "estimate": estimate(
            delivered, records_per_call=settings.records_per_call, rate_per_second=settings.rate_per_second
        ),
    }


# Kept previews.


def create_preview(
    session: Session,
    *,
    path: str,
    source: str,
    options: Mapping[str, Any],
    storage: UploadStorage,
    settings: PreviewSettings,
    created_by: str = ANONYMOUS_USER,
) -> dict:
    """Preview a file on this machine's disk, then keep it in the storage under a new token; return the preview.

    A file refused by the check is not kept; one whose columns must be mapped is, so that the user can map them
    and preview again by the token without sending the file again.
    """
    answer = preview_file(session, path, options, file_name=source, settings=settings)
    key = storage.save_file(path)
    preview = ImportPreview(
        token=secrets.token_urlsafe(32),
        path=key,
        source=display_name(source),
        options=_options_to_json(options),
        created_by=created_by,
        expires_at=lease_expiry(settings.ttl_minutes * 60),
    )
    session.add(preview)
    try:
        session.commit()
    except BaseException:
        session.rollback()
        try:
            storage.delete(key)  # no preview names the kept copy
        except Exception:
            log.exception("a kept upload no preview names could not be deleted (%s)", key)
        raise
    return _answer(session, preview, answer)


def refresh_preview(
    session: Session,
    token: str,
    *,
    changes: Mapping[str, Any],
    storage: UploadStorage,
    settings: PreviewSettings,
) -> dict:
    """Preview a kept upload again with some options changed (the others stay), keep those options and the
    upload PREVIEW_TTL_MINUTES more; return the preview. A refused file leaves the preview as it was."""
    preview = get_preview(session, token)
    options = {**preview_options(preview), **changes}
    answer = preview_file(
        session, functools.partial(storage.open, preview.path), options, file_name=preview.source, settings=settings
    )
    kept = session.execute(
        update(ImportPreview)
        .where(ImportPreview.token == token)
        .values(options=_options_to_json(options), expires_at=lease_expiry(settings.ttl_minutes * 60))
    ).rowcount
    session.commit()
    if not kept:  # an import was started from it meanwhile
        get_preview(session, token)  # raises the 404
    return _answer(session, session.get(ImportPreview, token), answer)


def get_preview(session: Session, token: str) -> ImportPreview:
    """The kept preview of this token; 404 if there is none (never made, started or swept), 410 once expired."""
    found = None
    if len(token) <= 64:
        expired = (ImportPreview.expires_at <= database_now()).label("expired")
        found = session.execute(select(ImportPreview, expired).where(ImportPreview.token == token)).first()
    if found is None:
        raise ApiError(
            "No preview has this token: it was started already, or it expired. Choose the file again.",
            status_code=404,
            code="preview_not_found",
        )
    preview, expired = found
    if expired:
        raise ApiError(
            "This preview expired: its upload is no longer kept. Choose the file again.",
            status_code=410,
            code="preview_expired",
        )
    return preview


def preview_options(preview: ImportPreview) -> dict[str, Any]:
    """The upload options a preview was last made with, as create_job takes them."""
    data = preview.options
    return {
        "encoding": data.get("encoding"),
        "delimiter": data.get("delimiter"),
        "file_format": None if data.get("file_format") is None else FileFormat(data["file_format"]),
        "sheet": data.get("sheet"),
        "mapping": ColumnMapping.from_json(data.get("mapping")),
        "template": data.get("template"),
        "duplicate_policy": None if data.get("duplicate_policy") is None else DuplicatePolicy(data["duplicate_policy"]),
    }


def remove_expired_previews(session: Session, *, storage: UploadStorage) -> int:
    """Delete the previews whose time is up, and their kept uploads; return how many uploads were deleted.

    A row goes only once its upload is gone, so an upload whose store is out of reach is tried again next sweep.
    """
    expired = session.execute(
        select(ImportPreview.token, ImportPreview.path).where(ImportPreview.expires_at <= database_now())
    ).all()
    session.rollback()
    removed = 0
    for token, key in expired:
        try:
            removed += storage.delete(key)
        except StoreUnavailable:
            continue
        session.execute(delete(ImportPreview).where(ImportPreview.token == token))
        session.commit()
    return removed


def _options_to_json(options: Mapping[str, Any]) -> dict:
    data = {}
    for name in OPTION_NAMES:
        value = options.get(name)
        if isinstance(value, ColumnMapping):
            value = value.to_json()
        elif isinstance(value, FileFormat | DuplicatePolicy):
            value = value.value
        data[name] = value
    return data


def _answer(session, preview, answer):
    session.refresh(preview)  # expires_at as the database computed it
    return {
        "token": preview.token,
        "source": preview.source,
        "expires_at": isoformat(preview.expires_at),
        "options": preview.options,
        **answer,
    }
