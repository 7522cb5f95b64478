"""Run schedules' due runs in a serving process: every SCHEDULE_POLL_SECONDS, on a thread of its own.

Every serving process of every instance polls; the database decides which one runs a due time (services/
schedules.py claim_run), so N instances run each due time once. Times come from the database's clock, as leases
do, so machines whose clocks disagree agree on what is due.
"""

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from ..extensions import db
from . import schedules
from .broker import EventBroker
from .reader import FileLimits
from .sources import SourceFetcher
from .storage import UploadStorage

if TYPE_CHECKING:
    from flask import Flask

    from .runner import JobRunner

log = logging.getLogger(__name__)


class Scheduler:
    """Claim and perform due schedule runs, and hand the imports they create to this process's runner."""

    def __init__(
        self,
        app: "Flask",
        *,
        runner: "JobRunner",
        broker: EventBroker,
        storage: UploadStorage,
        fetch: SourceFetcher,
        poll_seconds: float,
        abandoned_run_seconds: float,
        max_line_length: int,
        file_limits: FileLimits,
    ):
        self.app = app
        self.runner = runner
        self.broker = broker
        self.storage = storage
        self.fetch = fetch
        self.poll_seconds = poll_seconds
        self.abandoned_run_seconds = abandoned_run_seconds
        self.max_line_length = max_line_length
        self.file_limits = file_limits
        self._stopping = threading.Event()
        self._thread = None
        self._failing = False

    def tick(self) -> list[int]:
        """Run every due schedule this process claims; return the ids of the imports started."""
        with self.app.app_context():
            try:
                now = schedules.database_time(db.session)
                abandoned = schedules.end_abandoned_runs(
                    db.session, claimed_before=now - timedelta(seconds=self.abandoned_run_seconds)
                )
                if abandoned:
                    log.warning("ended %s schedule runs whose server stopped while fetching", abandoned)
                runs = schedules.run_due(
                    db.session,
                    now=now,
                    owner=self.runner.owner,
                    fetch=self.fetch,
                    broker=self.broker,
                    storage=self.storage,
                    max_line_length=self.max_line_length,
                    file_limits=self.file_limits,
                )
                job_ids = [run.job_id for run in runs if run.job_id is not None]
            finally:
                db.session.remove()
        for job_id in job_ids:
            self.runner.submit(job_id)  # a busy runner leaves it waiting: the claimer of some process takes it
        return job_ids

    def start(self) -> None:
        """Poll on a daemon thread (not at all when poll_seconds <= 0)."""
        if self.poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="importdash-scheduler", daemon=True)
            self._thread.start()

    def stop(self, wait: bool = False) -> None:
        """Start no more runs; with wait, also wait for the loop to end. Safe in a signal handler without wait."""
        self._stopping.set()
        if wait and self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.poll_seconds))

    def _loop(self):
        # The first round comes at once: runs missed while no server ran start as soon as one is back.
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception as error:  # a database hiccup must not end the loop; the next round tries again
                if not self._failing:
                    log.warning("running schedules failed; trying again every %s s: %s", self.poll_seconds, error)
                self._failing = True
            else:
                if self._failing:
                    log.info("running schedules works again")
                self._failing = False
            self._stopping.wait(self.poll_seconds)
        log.info("scheduler stopped: the process is shutting down")
