"""The audit trail's table: add an entry, page through entries with filters, export them as CSV.

Entries are only ever added: nothing here (or anywhere in the app) updates or deletes one, and on PostgreSQL a
trigger refuses it (migration 0011).
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import AuditEvent
from .export import neutralise

CSV_COLUMNS = ("id", "at", "actor", "role", "ip", "user_agent", "action", "target_type", "target_id", "details")


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to show; None means any. target is "type" or "type:id", e.g. "import" or "import:42"."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None  # at or after (UTC)
    until: datetime | None = None  # before (UTC)

    def apply(self, query):
        if self.actor is not None:
            query = query.where(AuditEvent.actor == self.actor)
        if self.action is not None:
            # "import" finds import.start, import.cancel...; "import.start" that action alone.
            query = query.where((AuditEvent.action == self.action) | AuditEvent.action.startswith(self.action + "."))
        if self.target is not None:
            target_type, _, target_id = self.target.partition(":")
            query = query.where(AuditEvent.target_type == target_type)
            if target_id:
                query = query.where(AuditEvent.target_id == target_id)
        if self.since is not None:
            query = query.where(AuditEvent.at >= self.since)
        if self.until is not None:
            query = query.where(AuditEvent.at < self.until)
        return query


def add_event(
    session: Session,
    *,
    actor: str,
    role: str | None,
    ip: str | None,
    user_agent: str | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    details: dict | None,
) -> AuditEvent:
    """Append one entry and commit it."""
    event = AuditEvent(
        actor=actor,
        role=role,
        ip=ip,
        user_agent=user_agent,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
    )
    session.add(event)
    session.commit()
    return event


def event_page(session: Session, *, where: AuditFilter, limit: int, offset: int) -> tuple[list[dict], int]:
    """A page of entries, newest first, and how many match in all."""
    total = session.scalar(where.apply(select(func.count()).select_from(AuditEvent)))
    query = where.apply(select(AuditEvent)).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    events = session.scalars(query.limit(limit).offset(offset))
    return [event.to_dict() for event in events], total


def export_csv(session: Session, *, where: AuditFilter, batch_size: int) -> Iterator[str]:
    """The matching entries as CSV, oldest first, read batch_size rows at a time (keyset paging on id)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take():
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield take()
    last_id = 0
    while True:
        query = where.apply(select(AuditEvent)).where(AuditEvent.id > last_id).order_by(AuditEvent.id)
        events = list(session.scalars(query.limit(batch_size)))
        if not events:
            return
        for event in events:
            row = event.to_dict()
            row["details"] = None if row["details"] is None else json.dumps(row["details"], sort_keys=True)
            writer.writerow(neutralise(row[column]) for column in CSV_COLUMNS)
        last_id = events[-1].id
        session.rollback()  # end the read between batches: no transaction stays open while the client reads
        yield take()
