"""gunicorn settings: one process of threads, because each open progress stream (SSE) holds a thread."""

import signal
import sys

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


def post_worker_init(worker):
    """Tune this worker's GIL for its many threads, resume unfinished imports, and make SIGTERM stop its jobs and
    end its progress streams first."""
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


def worker_exit(server, worker):
    """However the worker ends, stop its jobs and wait for their calls in flight, so they stay resumable."""
    from importdash.runtime import stop_background

    app = worker.app.callable  # None when the app failed to load
    if app is not None:
        stop_background(app, wait=True)
