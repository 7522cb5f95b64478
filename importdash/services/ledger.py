"""Write a job's outcomes to the database: staged records, error rows and the counts, one transaction each."""

import json
from collections import Counter
from datetime import timedelta

from sqlalchemy import DateTime, bindparam, delete, func, select, text, update

from ..models import ErrorCategory, ImportJob, JobStatus, Record, RecordStatus, RowError, utcnow
from .validator import Contact, Rejection

UNDELIVERED = (RecordStatus.PENDING.value, RecordStatus.IN_FLIGHT.value)


class LeaseLost(Exception):
    """Another process now owns the job; this one must stop touching it."""


class JobLedger:
    """One job's side of the ledger, used only by the process that holds the job's lease.

    Every write also checks and extends the lease (the heartbeat), and commits the job's counts together
    with the outcomes they count, so a reader never sees one without the other.
    """

    def __init__(self, session, job_id, owner, lease_seconds):
        self.session = session
        self.job_id = job_id
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        # The bulk statements below have one form per dialect: arrays on PostgreSQL, JSON or executemany on SQLite.
        self.postgresql = session.get_bind().dialect.name == "postgresql"

    def claim(self):
        """Take the job's lease if it is free, expired or already ours; True when this process now runs the job."""
        now = utcnow()
        result = self.session.execute(
            update(ImportJob)
            .where(
                ImportJob.id == self.job_id,
                ImportJob.status.in_([JobStatus.PENDING.value, JobStatus.PROCESSING.value]),
                ImportJob.lease_owner.is_(None)
                | (ImportJob.lease_expires_at < now)
                | (ImportJob.lease_owner == self.owner),
            )
            .values(
                lease_owner=self.owner,
                lease_expires_at=now + self.lease,
                status=JobStatus.PROCESSING.value,
                started_at=func.coalesce(ImportJob.started_at, now),
            )
        )
        self.session.commit()
        return result.rowcount == 1

    def job(self):
        """Read the job afresh."""
        self.session.expire_all()
        return self.session.get(ImportJob, self.job_id)

    def stage(self, outcomes, *, last_row, rows_read, in_flight=False):
        """Store validated rows and commit: contacts become records, rejections and duplicates error rows.

        Duplicates are whatever the unique email index refuses, so two imports at once can never both store
        an email. Records are stored pending, to be claimed later, or with in_flight=True already in flight,
        for a caller that sends them at once (a stream chunk): that saves writing each record once more before
        its call, and those records are returned, as claim_for_delivery() returns what it claims.
        """
        contacts = [item for item in outcomes if isinstance(item, Contact)]
        errors = [self._error(r.row, r.category, r.message, r.data) for r in outcomes if isinstance(r, Rejection)]
        records = []
        if contacts:
            status = RecordStatus.IN_FLIGHT if in_flight else RecordStatus.PENDING
            ids = self._insert_new_emails(contacts, status)
            if in_flight:
                records = [
                    {
                        "id": ids[c.row],
                        "row": c.row,
                        "name": c.name,
                        "email": c.email,
                        "company": c.company,
                        "attempts": 0,
                    }
                    for c in contacts
                    if c.row in ids
                ]
            duplicates = [c for c in contacts if c.row not in ids]
            if duplicates:
                owners = self._owners_of({c.email_key for c in duplicates})
                errors.extend(
                    self._error(c.row, ErrorCategory.DUPLICATE.value, self._duplicate_message(c, owners), c.data)
                    for c in duplicates
                )
        self._update_job(
            processed_count=ImportJob.processed_count + len(errors),
            failed_count=ImportJob.failed_count + len(errors),
            rows_read=ImportJob.rows_read + rows_read,
            cursor=last_row,
            **self._insert_errors(errors),
        )
        self.session.commit()
        return records

    def claim_for_delivery(self, limit, *, after_row=0):
        """Mark up to `limit` undelivered records after `after_row` in flight and return them as dicts, in row order.

        Records a crash left in flight come back too, so they are re-sent with the same idempotency key.
        """
        # A range of the (job_id, row) index read in order from the last row sent and cut at the limit. Only a
        # retry, whose failed records are scattered, reads settled records on the way; each of them once.
        columns = (Record.id, Record.row, Record.name, Record.email, Record.company, Record.attempts, Record.status)
        query = (
            select(*columns)
            .where(Record.job_id == self.job_id, Record.row > after_row, Record.status.in_(UNDELIVERED))
            .order_by(Record.row)
            .limit(limit)
        )
        rows = self.session.execute(query).all()
        pending = [r.id for r in rows if r.status == RecordStatus.PENDING.value]
        if pending:
            self.session.execute(
                update(Record).where(Record.id.in_(pending)).values(status=RecordStatus.IN_FLIGHT.value)
            )
        self._update_job()
        self.session.commit()
        keys = [column.key for column in columns if column is not Record.status]  # zip() stops before the status
        return [dict(zip(keys, r)) for r in rows]

    def settle(self, settled, commit=True):
        """Store the downstream's verdicts, [(record, Outcome)], with an error row for each refusal.

        A record settled before (attempts > 0) is a failure being retried: it is already counted, so success
        moves it from failed to succeeded and drops its error row, and a new refusal replaces the error row.
        """
        if not settled:
            return
        self._update_records(
            [
                (record["id"], (RecordStatus.SUCCEEDED if outcome.ok else RecordStatus.FAILED).value, outcome.response)
                for record, outcome in settled
            ]
        )
        retried_rows = [record["row"] for record, _ in settled if record["attempts"]]
        replaced = 0
        if retried_rows:
            replaced = self.session.execute(
                delete(RowError).where(
                    RowError.job_id == self.job_id,
                    RowError.category == ErrorCategory.OTHER.value,
                    RowError.row.in_(retried_rows),
                )
            ).rowcount
        failures = [
            self._error(
                record["row"],
                ErrorCategory.OTHER.value,
                outcome.message or "the downstream refused the record",
                {"name": record["name"], "email": record["email"], "company": record["company"]},
            )
            for record, outcome in settled
            if not outcome.ok
        ]
        first_time = sum(1 for record, _ in settled if not record["attempts"])
        first_time_failures = sum(1 for record, outcome in settled if not record["attempts"] and not outcome.ok)
        retried_successes = sum(1 for record, outcome in settled if record["attempts"] and outcome.ok)
        counts = self._insert_errors(failures)
        if replaced:  # the retried rows' earlier error rows are gone: their category counter follows
            other = f"{ErrorCategory.OTHER.value}_count"
            counts[other] = counts.get(other, getattr(ImportJob, other)) - replaced
        self._update_job(
            processed_count=ImportJob.processed_count + first_time,
            success_count=ImportJob.success_count + len(settled) - len(failures),
            failed_count=ImportJob.failed_count + first_time_failures - retried_successes,
            **counts,
        )
        if commit:
            self.session.commit()

    def set_total(self):
        """Fix the job's total at the number of rows read, once the whole file has been read."""
        self._update_job(total_records=ImportJob.rows_read)
        self.session.commit()

    def refresh_statistics(self):
        """Let PostgreSQL's planner see the records just staged, before delivery claims them (a no-op on SQLite).

        Autovacuum analyses a table a minute or so after a big load, if it runs at all. Until then the planner
        expects a few hundred records for the job, and answers each claim by reading every undelivered record
        after the last one sent and sorting them all, instead of reading the (job_id, row) index in order up
        to the limit: a batch of 1,000,000 rows spent over 5 minutes delivering instead of 1.
        """
        if self.postgresql:
            self.session.execute(text("ANALYZE records"))
            self.session.commit()

    def finish(self, status, error=None):
        """Put the job in a terminal state, release its lease and return the status.

        A cancelled job's undelivered records end cancelled; records of a retry that were not sent again keep
        their earlier failure (their error rows are still there).
        """
        self.session.execute(
            update(Record)
            .where(Record.job_id == self.job_id, Record.status.in_(UNDELIVERED), Record.attempts > 0)
            .values(status=RecordStatus.FAILED.value)
        )
        if status is JobStatus.CANCELLED:
            self.session.execute(
                update(Record)
                .where(Record.job_id == self.job_id, Record.status.in_(UNDELIVERED))
                .values(status=RecordStatus.CANCELLED.value)
            )
        values = {
            "status": status.value,
            "completed_at": utcnow(),
            "lease_owner": None,
            "lease_expires_at": None,
            "notice": None,
        }
        if error is not None:
            values["error"] = error
        self._update_job(**values)
        self.session.commit()
        return status

    def cancel(self):
        """End the job at a cancel request, and return the status it ended in.

        A cancelled retry leaves the job completed: every row already had its outcome before the retry began.
        """
        if self.job().retries:
            return self.finish(JobStatus.COMPLETED)
        return self.finish(JobStatus.CANCELLED, "cancelled by request")

    def release(self):
        """Give up the lease but leave the job resumable (the process is shutting down)."""
        self._update_job(lease_owner=None, lease_expires_at=None, notice=None)
        self.session.commit()

    def heartbeat(self):
        """Extend the lease, and return whether a cancel request is waiting for the job."""
        self._update_job()
        self.session.commit()
        return bool(self.session.scalar(select(ImportJob.cancel_requested).where(ImportJob.id == self.job_id)))

    def set_notice(self, notice):
        """Say what delivery is waiting for (None once it is not waiting)."""
        self._update_job(notice=notice)
        self.session.commit()

    def _update_job(self, **values):
        """Update the job while this process holds its lease, extending the lease as a heartbeat."""
        values.setdefault("lease_expires_at", utcnow() + self.lease)
        # No session synchronisation: every read of the job expires the session first (job(), publish_job),
        # and evaluating the WHERE against loaded objects on each write is measurable at a million rows.
        result = self.session.execute(
            update(ImportJob)
            .where(ImportJob.id == self.job_id, ImportJob.lease_owner == self.owner)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            self.session.rollback()
            raise LeaseLost(f"import #{self.job_id} is no longer leased by this process ({self.owner})")

    def _insert_errors(self, errors):
        """Insert error rows; return the job's per-category count increments, to be committed with them."""
        if not errors:
            return {}
        if self.postgresql:
            # An executemany INSERT is one statement per row to psycopg; arrays make it one statement.
            self.session.execute(
                _INSERT_ERRORS_FROM_ARRAYS,
                {
                    "job_id": self.job_id,
                    "created_at": errors[0]["created_at"],
                    "rows": [error["row"] for error in errors],
                    "categories": [error["category"] for error in errors],
                    "messages": [error["message"] for error in errors],
                    "data": [json.dumps(error["data"]) for error in errors],
                },
            )
        else:
            # SQLite reads the rows from one JSON parameter in C, as for records.
            payload = json.dumps([[e["row"], e["category"], e["message"], e["data"]] for e in errors])
            self.session.execute(
                _INSERT_ERRORS_FROM_JSON,
                {"job_id": self.job_id, "created_at": errors[0]["created_at"], "errors": payload},
            )
        added = Counter(error["category"] for error in errors)
        return {f"{category}_count": getattr(ImportJob, f"{category}_count") + n for category, n in added.items()}

    def _insert_new_emails(self, contacts, status):
        """INSERT ... ON CONFLICT (email_key) DO NOTHING RETURNING, in this database's dialect; {row: id} of those stored."""
        if self.postgresql:
            # One statement over arrays. A multi-row VALUES statement (SQLAlchemy's insertmanyvalues) carries
            # thousands of placeholders, and psycopg parses each such statement in Python: most of the time of
            # a big PostgreSQL import went there.
            columns = {
                "rows": "row",
                "names": "name",
                "emails": "email",
                "email_keys": "email_key",
                "companies": "company",
            }
            arrays = {array: [getattr(contact, field) for contact in contacts] for array, field in columns.items()}
            result = self.session.execute(
                _INSERT_FROM_ARRAYS, {"job_id": self.job_id, "status": status.value, **arrays}
            )
        else:
            # sqlite3's executemany binds each row in C; the rows it stored are then read back by their numbers.
            connection = self.session.connection()
            connection.exec_driver_sql(
                _INSERT_ROWS_SQLITE,
                [(self.job_id, c.row, c.name, c.email, c.email_key, c.company, status.value) for c in contacts],
            )
            result = self.session.execute(
                select(Record.row, Record.id).where(
                    Record.job_id == self.job_id, Record.row.between(contacts[0].row, contacts[-1].row)
                )
            )
        return dict(result.all())

    def _update_records(self, verdicts):
        """Set each record's status and response, [(id, status, response)], and count the attempt: one statement.

        An executemany of one UPDATE per record spends its time on per-row parameter handling in Python (and,
        on PostgreSQL, a statement per record); joining the table to the verdicts passed as one parameter
        leaves the loop to the database.
        """
        if self.postgresql:
            ids, statuses, responses = zip(*verdicts)
            arrays = {"ids": list(ids), "statuses": list(statuses), "responses": [json.dumps(r) for r in responses]}
            self.session.execute(_UPDATE_FROM_ARRAYS, arrays)
        else:
            self.session.execute(_UPDATE_FROM_JSON, {"verdicts": json.dumps(verdicts)})

    def _error(self, row, category, message, data):
        return {
            "job_id": self.job_id,
            "row": row,
            "category": category,
            "message": message,
            "data": data,
            "created_at": utcnow(),
        }

    def _owners_of(self, email_keys):
        query = select(Record.email_key, Record.job_id, Record.row).where(Record.email_key.in_(email_keys))
        return {key: (job_id, row) for key, job_id, row in self.session.execute(query)}

    def _duplicate_message(self, contact, owners):
        owner_job, owner_row = owners.get(contact.email_key, (None, None))
        if owner_job == self.job_id:
            return f'email "{contact.email}" duplicates row {owner_row} of this file'
        if owner_job is not None:
            return f'email "{contact.email}" was already imported (import #{owner_job}, row {owner_row})'
        return f'email "{contact.email}" is a duplicate'


_INSERT_FROM_ARRAYS = text(
    'INSERT INTO records (job_id, "row", name, email, email_key, company, status, attempts)'
    ' SELECT :job_id, staged."row", staged.name, staged.email, staged.email_key, staged.company, :status, 0'
    " FROM unnest(CAST(:rows AS integer[]), CAST(:names AS text[]), CAST(:emails AS text[]),"
    ' CAST(:email_keys AS text[]), CAST(:companies AS text[])) AS staged("row", name, email, email_key, company)'
    ' ON CONFLICT (email_key) DO NOTHING RETURNING "row", id'
)

_INSERT_ROWS_SQLITE = (
    'INSERT INTO records (job_id, "row", name, email, email_key, company, status, attempts)'
    " VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (email_key) DO NOTHING"
)

_INSERT_ERRORS_FROM_ARRAYS = text(
    'INSERT INTO import_errors (job_id, "row", category, message, data, created_at)'
    ' SELECT :job_id, error."row", error.category, error.message, error.data, :created_at'
    " FROM unnest(CAST(:rows AS integer[]), CAST(:categories AS text[]), CAST(:messages AS text[]),"
    ' CAST(:data AS json[])) AS error("row", category, message, data)'
)

_INSERT_ERRORS_FROM_JSON = text(
    'INSERT INTO import_errors (job_id, "row", category, message, data, created_at)'
    " SELECT :job_id, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),"
    " json_quote(json_extract(value, '$[3]')), :created_at FROM json_each(:errors)"
).bindparams(bindparam("created_at", type_=DateTime()))

_UPDATE_FROM_ARRAYS = text(
    "UPDATE records SET status = verdict.status, response = verdict.response, attempts = records.attempts + 1"
    " FROM unnest(CAST(:ids AS integer[]), CAST(:statuses AS text[]), CAST(:responses AS json[]))"
    " AS verdict(id, status, response) WHERE records.id = verdict.id"
)

_UPDATE_FROM_JSON = text(
    "UPDATE records SET status = json_extract(value, '$[1]'), response = json_quote(json_extract(value, '$[2]')),"
    " attempts = attempts + 1 FROM json_each(:verdicts) WHERE records.id = json_extract(value, '$[0]')"
)


def error_counts(session, job_id):
    """The job's error rows per category, with every category present (kept on the job by the ledger)."""
    job = session.get(ImportJob, job_id)
    return job.error_counts if job is not None else dict.fromkeys((category.value for category in ErrorCategory), 0)
