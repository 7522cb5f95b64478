"""Find unfinished jobs that no live process runs, and hand them to this process's runner."""

import logging
import threading
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import ImportJob, JobStatus, stored, utcnow
from .jobs import remove_ended_uploads

if TYPE_CHECKING:
    from flask import Flask

    from .runner import JobRunner

log = logging.getLogger(__name__)


def orphaned_job_ids(session: Session) -> list[int]:
    """Ids of pending or processing jobs whose lease is free or expired, oldest first."""
    query = (
        select(ImportJob.id)
        .where(
            ImportJob.status.in_(stored(JobStatus.unfinished())),
            ImportJob.lease_owner.is_(None) | (ImportJob.lease_expires_at < utcnow()),
        )
        .order_by(ImportJob.id)
    )
    return list(session.scalars(query))


class LeaseSweeper:
    """Submit orphaned jobs to the runner now and every interval, so jobs outlive the process that ran them.

    A job whose process died keeps its lease until it expires; the first sweep after that takes it over.
    Submitting is always safe: the job's lease decides which process (if any) actually runs it.
    """

    def __init__(self, app: "Flask", runner: "JobRunner", interval: float):
        self.app = app
        self.runner = runner
        self.interval = interval
        self._stopping = threading.Event()
        self._thread = None

    def sweep(self) -> list[int]:
        """Submit every orphaned job once and return their ids; delete the uploads whose retention is over."""
        config = self.app.config
        with self.app.app_context():
            try:
                job_ids = orphaned_job_ids(db.session)
                removed = remove_ended_uploads(
                    db.session,
                    upload_folder=config["UPLOAD_FOLDER"],
                    retention_hours=config["UPLOAD_RETENTION_HOURS"],
                    resume_hours=config["RESUME_WINDOW_HOURS"],
                )
            finally:
                db.session.remove()
        if removed:
            log.info("deleted %s uploads of ended imports", removed)
        for job_id in job_ids:
            self.runner.submit(job_id)
        if job_ids:
            log.info("resuming unfinished imports: %s", ", ".join(f"#{job_id}" for job_id in job_ids))
        return job_ids

    def start(self) -> None:
        """Sweep now, then keep sweeping every interval on a daemon thread (interval <= 0: sweep once)."""
        self._safe_sweep()
        if self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="importdash-lease-sweeper", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _loop(self):
        while not self._stopping.wait(self.interval):
            self._safe_sweep()

    def _safe_sweep(self):
        try:
            self.sweep()
        except Exception:  # a database hiccup must not end the sweeping; the next sweep tries again
            log.exception("sweeping for unfinished imports failed")
