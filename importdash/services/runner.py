"""Run import jobs in the background on a bounded thread pool, each in its own app context."""

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..extensions import run_session
from .broker import EventBroker
from .delivery import Deliverer
from .importer import ImportSettings, JobContext, StopSignal, run_job
from .storage import UploadStorage

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


class JobRunner:
    """A ThreadPoolExecutor of import jobs with MAX_JOBS slots: a job runs here only in a free slot.

    Nothing ever waits in the executor's queue. A job that finds no free slot waits in the database, where
    whichever process has a slot free first claims it (services/claimer.py); so does a job whose process died.
    Slots can be reserved ahead of a claim, so that every job a claim takes has a slot to run in.
    """

    def __init__(
        self, app: "Flask", *, deliverer: Deliverer, broker: EventBroker, storage: UploadStorage, max_workers: int
    ):
        self.app = app
        self.deliverer = deliverer
        self.broker = broker
        self.storage = storage
        self.max_workers = max_workers
        # Names this process in job leases, so a restarted or second process can tell the lease is not its own.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="importdash-job")
        # Re-entrant: a job that is already done runs its done-callback (_forget) inside submit's lock.
        self._lock = threading.RLock()
        self._futures = {}  # job id -> the Future of its run here, until that run's future is done
        self._signals = {}  # job id -> the StopSignal of its run
        self._busy = set()  # ids of the jobs whose runs hold a slot
        self._reserved = 0  # slots promised to a claim under way
        self._refused_for_reserved = False  # a submit found no slot only because a claim had reserved them
        self._slot_freed: Callable[[], object] | None = None
        self._stopping = threading.Event()

    def when_slot_frees(self, callback: Callable[[], object]) -> None:
        """Call callback (no argument) on the job's own thread each time a run ends and gives its slot back."""
        self._slot_freed = callback

    def free_slots(self) -> int:
        """Slots neither running a job nor reserved; none once the runner is shutting down."""
        with self._lock:
            return 0 if self._stopping.is_set() else self.max_workers - len(self._busy) - self._reserved

    def reserve(self, wanted: int) -> int:
        """Reserve up to `wanted` free slots for jobs about to be claimed; return how many were reserved."""
        with self._lock:
            free = 0 if self._stopping.is_set() else self.max_workers - len(self._busy) - self._reserved
            reserved = max(0, min(wanted, free))
            self._reserved += reserved
            if reserved:
                self._refused_for_reserved = False
            return reserved

    def unreserve(self, count: int) -> bool:
        """Give back reserved slots that no claimed job needed; return whether a job was refused meanwhile for
        want of the slots reserved (it waits in the database, so the claim should look once more)."""
        with self._lock:
            self._reserved -= count
            refused, self._refused_for_reserved = self._refused_for_reserved, False
            return refused

    def submit(self, job_id: int, *, reserved: bool = False) -> Future[None] | None:
        """Run the job here if a slot is free (reserved=True: in a slot reserved for it); return its Future.

        A job already running here is not run twice: its run's Future is returned (and a reserved slot is given
        back). With no free slot, or once the runner is shutting down, None is returned and the job waits in the
        database for whichever process has a slot free first. The run takes the job's lease before it starts: a
        job another process holds ends this run at once, and its slot frees.
        """
        with self._lock:
            if reserved:
                self._reserved -= 1  # from here on the slot is this run's, or free again
            if job_id in self._busy:
                return self._futures[job_id]
            if self._stopping.is_set() or len(self._busy) + self._reserved >= self.max_workers:
                self._refused_for_reserved |= not reserved and len(self._busy) < self.max_workers
                return None
            signal = StopSignal(self._stopping)
            self._busy.add(job_id)
            try:
                future = self._executor.submit(self._run, job_id, signal)
            except RuntimeError:  # the executor is shut down
                self._busy.discard(job_id)
                return None
            self._futures[job_id] = future
            self._signals[job_id] = signal
            future.add_done_callback(lambda done, job_id=job_id: self._forget(job_id, done))
            return future

    def cancel(self, job_id: int) -> None:
        """Ask a job running here to stop; it ends cancelled at its next check."""
        with self._lock:
            if job_id in self._busy:
                self._signals[job_id].cancel()

    def pause(self, job_id: int) -> None:
        """Ask a job running here to stop; it ends paused at its next check, and its slot frees."""
        with self._lock:
            if job_id in self._busy:
                self._signals[job_id].pause()

    def is_running(self, job_id: int) -> bool:
        """Whether a run of the job holds a slot here: once it is false, everything the run wrote is committed."""
        with self._lock:
            return job_id in self._busy

    def active_jobs(self) -> list[int]:
        with self._lock:
            return list(self._busy)

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Block until the job's run here ends (for the CLI and tests)."""
        with self._lock:
            future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; running jobs stop after their call in flight and stay resumable."""
        # Safe in a signal handler: nothing here waits for a lock the interrupted thread could hold.
        self._stopping.set()
        self._executor.shutdown(wait=wait, cancel_futures=True)

    def _forget(self, job_id, future):
        with self._lock:
            if self._futures.get(job_id) is future:  # not a later run of the same job, started as this one ended
                del self._futures[job_id]
                del self._signals[job_id]
                self._busy.discard(job_id)  # a run cancelled at shutdown before it started never gave its slot back

    def _run(self, job_id, signal):
        try:
            self._run_job(job_id, signal)
        finally:
            with self._lock:
                self._busy.discard(job_id)
            # The freed slot claims the next waiting job on this thread, before this run's future is done: whoever
            # waits for this run finds the next one already running.
            if self._slot_freed is not None and not self._stopping.is_set():
                try:
                    self._slot_freed()
                except Exception:
                    log.exception("claiming a job for the slot import #%s freed failed", job_id)

    def _run_job(self, job_id, signal):
        """Run one job in an app context of its own; never raises."""
        telemetry = self.deliverer.telemetry
        with self.app.app_context():
            try:
                with run_session() as session, telemetry.span("importdash.job", job_id=job_id):
                    context = JobContext(
                        session=session,
                        owner=self.owner,
                        settings=ImportSettings.from_config(self.app.config),
                        deliverer=self.deliverer,
                        broker=self.broker,
                        storage=self.storage,
                        telemetry=telemetry,
                    )
                    run_job(job_id, context, signal)
            except Exception:  # run_job records failures itself; this is the last line of defence
                log.exception("import #%s crashed outside its own error handling", job_id)
