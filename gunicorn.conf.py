"""gunicorn settings: one process of threads, because each open progress stream (SSE) holds a thread."""

import gc
import glob
import os
import shutil
import signal
import sys
import tempfile

from flask import Config as FlaskConfig

from importdash.config import PROJECT_ROOT, Config

# The same settings, read the same way, as the app: Config's defaults, then IMPORTDASH_* from the environment.
settings = FlaskConfig(PROJECT_ROOT)
settings.from_object(Config)
settings.from_prefixed_env("IMPORTDASH")

bind = settings["BIND"]
# gthread, closing connections whose upload was refused unread and answering gunicorn's own refusals as JSON.
worker_class = "importdash.serving.Worker"
workers = settings["WORKERS"]
threads = settings["THREADS"]
timeout = 60
graceful_timeout = 30
accesslog = "-"


def on_starting(server):
    """Give the workers' metrics a folder of their own, emptied of any earlier server's, before any worker starts.

    prometheus_client writes each worker's values to files there (its multiprocess mode, which it chooses by the
    PROMETHEUS_MULTIPROC_DIR variable the workers inherit), so GET /metrics on any worker reports them all.
    """
    folder = settings["METRICS_DIR"]
    if folder:
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, "*.db")):
            os.remove(stale)
    else:
        folder = server.metrics_temporary_dir = tempfile.mkdtemp(prefix="importdash-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def child_exit(server, worker):
    """Drop a dead worker's open streams and breaker state from the metrics; its counts stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics folder this server made for itself (a METRICS_DIR is emptied at the next start)."""
    folder = getattr(server, "metrics_temporary_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def post_worker_init(worker):
    """Tune this worker's GIL for its many threads, resume unfinished imports, make SIGTERM stop its jobs and end
    its progress streams first, and take what is loaded by now out of the garbage collector's way."""
    from importdash.runtime import start_background, stop_background

    app = worker.app.wsgi()  # the Flask app (worker.wsgi is it wrapped in importdash.serving's middleware)
    sys.setswitchinterval(app.config["GIL_SWITCH_INTERVAL_MS"] / 1000)
    start_background(app)
    # gunicorn's own handler lets open requests drain for up to graceful_timeout. The jobs stop at once instead:
    # no new downstream calls, the calls in flight finish, the jobs stay resumable (otherwise the executor's
    # exit-time join would wait for every running import to end). Open progress streams end at once too, each
    # with a clean end of its body: they never end by themselves, so they would hold the worker for the whole
    # graceful_timeout, and browsers reconnect on their own (to this server restarted, or to another).
    gunicorn_handler = signal.getsignal(signal.SIGTERM)

    def stop_jobs_then_exit(signum, frame):
        stop_background(app)
        gunicorn_handler(signum, frame)

    signal.signal(signal.SIGTERM, stop_jobs_then_exit)
    # The app, its libraries and its background threads stay for the worker's life: frozen, they are no longer
    # traversed by every full collection, which an import's allocations set off every second or two. A 100,000-record
    # delivery spent 0.55 s collecting before, 0.15 s after, and delivered about 10 % faster (issue #17).
    gc.freeze()


def worker_exit(server, worker):
    """However the worker ends, stop its jobs and wait for their calls in flight, so they stay resumable."""
    from importdash.runtime import stop_background

    app = worker.app.callable  # None when the app failed to load
    if app is not None:
        stop_background(app, wait=True)
