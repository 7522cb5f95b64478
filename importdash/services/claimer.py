"""Fill this process's free runner slots with jobs waiting in the database, and delete uploads nobody needs
(those of ended imports and of expired previews).

Jobs wait in the database, not in a process: a new job that found its process busy, and a job whose process
died (its lease ran out on the database's clock). A process claims only as many as it has free slots: when a
slot frees (on that job's thread), and every CLAIM_POLL_SECONDS, so that an idle process picks up a job posted
to a busy one within that time and a dead process's jobs resume within LEASE_SECONDS plus that time.
"""

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..extensions import db
from .jobs import remove_ended_uploads
from .ledger import Lease, claim_jobs, release_claims
from .previews import remove_expired_previews
from .storage import UploadStorage

if TYPE_CHECKING:
    from flask import Flask

    from .runner import JobRunner

log = logging.getLogger(__name__)


class JobQueue(Protocol):
    """The database as the place where jobs wait for a runner."""

    def claim(self, owner: str, limit: int) -> list[int]:
        """Take the leases of up to limit waiting jobs for owner; return their ids."""

    def release(self, owner: str, job_ids: list[int]) -> None:
        """Give back leases owner took but will not use."""

    def remove_ended_uploads(self) -> int:
        """Delete the uploads whose retention is over, and those of expired previews; return how many."""


class DatabaseJobQueue:
    """JobQueue on the app's database, each call on a session of its own, ended before it returns."""

    def __init__(self, app: "Flask", *, lease_seconds: float, storage: UploadStorage):
        self.app = app
        self.lease_seconds = lease_seconds
        self.storage = storage

    def claim(self, owner: str, limit: int) -> list[int]:
        with self.app.app_context():
            try:
                return claim_jobs(db.session, Lease(owner, self.lease_seconds), limit=limit)
            finally:
                db.session.remove()

    def release(self, owner: str, job_ids: list[int]) -> None:
        with self.app.app_context():
            try:
                release_claims(db.session, owner, job_ids)
            finally:
                db.session.remove()

    def remove_ended_uploads(self) -> int:
        config: Mapping[str, Any] = self.app.config
        with self.app.app_context():
            try:
                removed = remove_ended_uploads(
                    db.session,
                    storage=self.storage,
                    retention_hours=config["UPLOAD_RETENTION_HOURS"],
                    resume_hours=config["RESUME_WINDOW_HOURS"],
                )
                return removed + remove_expired_previews(db.session, storage=self.storage)
            finally:
                db.session.remove()


class JobClaimer:
    """Claim waiting jobs for the runner's free slots: now, whenever a slot frees, and every poll interval.

    The loop (start()) also deletes the uploads whose retention is over, every upload_sweep_seconds. Only a
    serving process runs the loop; the CLI stops the claimer, so that it runs its own import and nothing else.
    """

    def __init__(
        self,
        runner: "JobRunner",
        queue: JobQueue,
        *,
        poll_seconds: float,
        upload_sweep_seconds: float,
        clock=time.monotonic,
    ):
        self.runner = runner
        self.queue = queue
        self.poll_seconds = poll_seconds
        self.upload_sweep_seconds = upload_sweep_seconds
        self._clock = clock
        self._next_upload_sweep = clock()
        self._claiming = threading.Lock()  # one claim at a time per process: each takes every free slot
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = None
        self._failing = False  # the last round failed: log the next failure quietly, and the recovery
        runner.when_slot_frees(self._safe_claim)

    def claim(self) -> list[int]:
        """Claim waiting jobs for every free slot and start them; return the ids started (none when stopped)."""
        started = []
        with self._claiming:
            again = True
            while again and not self._stopping.is_set():
                claimed, again = self._claim_free_slots()
                started += claimed
        if started:
            log.info("claimed imports %s", ", ".join(f"#{job_id}" for job_id in started))
        return started

    def _claim_free_slots(self):
        """Reserve every free slot, claim jobs for them and start those; return (the ids started, whether to
        look again: a job posted meanwhile found the slots reserved and was left to this claim)."""
        reserved = self.runner.reserve(self.runner.max_workers)
        if not reserved:
            return [], False  # no free slot: not even a read
        claimed = []
        refused = False
        try:
            claimed = self.queue.claim(self.runner.owner, reserved)
        finally:
            refused = self.runner.unreserve(reserved - len(claimed))
        # Each job's reserved slot passes to its run (or back to the free slots if it runs here already).
        unstarted = [job_id for job_id in claimed if self.runner.submit(job_id, reserved=True) is None]
        if unstarted:  # the runner began shutting down meanwhile: another process takes them at once
            self.queue.release(self.runner.owner, unstarted)
        return [job_id for job_id in claimed if job_id not in unstarted], refused

    def tick(self) -> list[int]:
        """One round of the loop: claim for the free slots, then delete ended uploads if that is due."""
        started = self.claim()
        if self._clock() >= self._next_upload_sweep:
            self._next_upload_sweep = self._clock() + self.upload_sweep_seconds
            removed = self.queue.remove_ended_uploads()
            if removed:
                log.info("deleted %s uploads of ended imports", removed)
        return started

    def start(self) -> None:
        """Claim at once (resuming what a previous process left), then loop on a daemon thread.

        poll_seconds <= 0: claim only now and when a slot frees.
        """
        self._safe_tick()
        if self.poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="importdash-claimer", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Run the loop's next round now (a job was posted, or a slot freed)."""
        self._wake.set()

    def stop(self, wait: bool = False) -> None:
        """Claim nothing more; with wait, also wait for the loop to end. Safe in a signal handler without wait."""
        self._stopping.set()
        self._wake.set()
        if wait and self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.poll_seconds))

    def _loop(self):
        while not self._stopping.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if not self._stopping.is_set():
                self._safe_tick()
        log.info("job claimer stopped: the process is shutting down")

    def _safe_tick(self):
        self._safely(self.tick)

    def _safe_claim(self):
        self._safely(self.claim)

    def _safely(self, work):
        try:
            work()
        except Exception as error:  # a database hiccup must not end the loop; the next round tries again
            if not self._failing:
                log.warning("claiming imports failed; trying again every %s s: %s", self.poll_seconds, error)
            self._failing = True
            return
        if self._failing:
            log.info("claiming imports works again")
            self._failing = False
