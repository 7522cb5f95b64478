"""Run import jobs in the background on a bounded thread pool, each in its own app context."""

import logging
import os
import socket
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..extensions import db
from .broker import EventBroker
from .delivery import Deliverer
from .importer import ImportSettings, JobContext, StopSignal, run_job

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


class JobRunner:
    """A ThreadPoolExecutor of import jobs: MAX_JOBS run at once, the rest wait their turn."""

    def __init__(self, app: "Flask", *, deliverer: Deliverer, broker: EventBroker, max_workers: int):
        self.app = app
        self.deliverer = deliverer
        self.broker = broker
        # Names this process in job leases, so a restarted or second process can tell the lease is not its own.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="importdash-job")
        # Re-entrant: a job that is already done runs its done-callback (_forget) inside submit's lock.
        self._lock = threading.RLock()
        self._futures = {}
        self._signals = {}  # job id -> the StopSignal of its queued or running run
        self._stopping = threading.Event()

    def submit(self, job_id: int) -> Future[None] | None:
        """Queue a job to run; a job already queued or running here is not queued twice.

        Once the runner is shutting down nothing is queued (None is returned): the job stays pending in the
        ledger and whichever process sweeps for unowned jobs next runs it.
        """
        with self._lock:
            future = self._futures.get(job_id)
            if future is not None and not future.done():
                return future
            signal = StopSignal(self._stopping)
            try:
                future = self._executor.submit(self._run, job_id, signal)
            except RuntimeError:  # the executor is shut down
                return None
            self._futures[job_id] = future
            self._signals[job_id] = signal
            future.add_done_callback(lambda _f, job_id=job_id: self._forget(job_id))
            return future

    def cancel(self, job_id: int) -> None:
        """Ask a job queued or running here to stop; it ends cancelled at its next check."""
        with self._lock:
            future = self._futures.get(job_id)
            if future is not None and not future.done():
                self._signals[job_id].cancel()

    def is_running(self, job_id: int) -> bool:
        with self._lock:
            future = self._futures.get(job_id)
            return future is not None and not future.done()

    def active_jobs(self) -> list[int]:
        with self._lock:
            return [job_id for job_id, future in self._futures.items() if not future.done()]

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

    def _forget(self, job_id):
        with self._lock:
            self._futures.pop(job_id, None)
            self._signals.pop(job_id, None)

    def _run(self, job_id, signal):
        with self.app.app_context():
            context = JobContext(
                session=db.session,
                owner=self.owner,
                settings=ImportSettings.from_config(self.app.config),
                deliverer=self.deliverer,
                broker=self.broker,
            )
            try:
                run_job(job_id, context, signal)
            except Exception:  # run_job records failures itself; this is the last line of defence
                log.exception("import #%s crashed outside its own error handling", job_id)
            finally:
                db.session.remove()
