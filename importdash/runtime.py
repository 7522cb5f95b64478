"""The process's shared runtime objects, built once per app and kept in app.extensions["importdash"]."""

from dataclasses import dataclass
from functools import partial

from flask import current_app
from sqlalchemy import text

from .extensions import db
from .services.broker import EventBroker
from .services.bucket import TokenBucket
from .services.claimer import DatabaseJobQueue, JobClaimer
from .services.delivery import CircuitBreaker, Deliverer, RetryPolicy
from .services.downstream import Downstream, SimulatedDownstream, parse_domains
from .services.health import DatabaseProbe
from .services.runner import JobRunner
from .services.webhook import WebhookDownstream


@dataclass
class Runtime:
    bucket: TokenBucket
    downstream: Downstream
    deliverer: Deliverer
    broker: EventBroker
    runner: JobRunner
    claimer: JobClaimer
    health: DatabaseProbe


def build_downstream(config) -> Downstream:
    """Make the configured downstream client."""
    kind = config["DOWNSTREAM"]
    if kind == "simulated":
        return SimulatedDownstream(
            latency_ms=config["SIMULATED_LATENCY_MS"],
            reject_domains=parse_domains(config["SIMULATED_REJECT_DOMAINS"]),
        )
    if kind == "webhook":
        if not config["WEBHOOK_URL"]:
            raise ValueError("IMPORTDASH_DOWNSTREAM=webhook needs IMPORTDASH_WEBHOOK_URL")
        return WebhookDownstream(
            config["WEBHOOK_URL"],
            authorization=config["WEBHOOK_AUTHORIZATION"],
            connect_timeout=config["WEBHOOK_CONNECT_TIMEOUT_SECONDS"],
            timeout=config["WEBHOOK_TIMEOUT_SECONDS"],
        )
    raise ValueError(f"unknown IMPORTDASH_DOWNSTREAM {kind!r}; expected 'simulated' or 'webhook'")


def init_app(app):
    config = app.config
    bucket = TokenBucket(rate=config["RATE_PER_SECOND"], capacity=config["RATE_BURST"])
    downstream = build_downstream(config)
    deliverer = Deliverer(
        downstream,
        bucket=bucket,
        breaker=CircuitBreaker(threshold=config["BREAKER_THRESHOLD"], cooldown=config["BREAKER_COOLDOWN_SECONDS"]),
        policy=RetryPolicy.from_config(config),
    )
    broker = EventBroker(queue_size=config["SSE_QUEUE_SIZE"], max_subscribers=config["SSE_MAX_STREAMS"])
    runner = JobRunner(app, deliverer=deliverer, broker=broker, max_workers=config["MAX_JOBS"])
    claimer = JobClaimer(
        runner,
        DatabaseJobQueue(app, lease_seconds=config["LEASE_SECONDS"]),
        poll_seconds=config["CLAIM_POLL_SECONDS"],
        upload_sweep_seconds=config["UPLOAD_SWEEP_SECONDS"],
    )
    health = DatabaseProbe(partial(select_one, app), timeout=config["HEALTH_TIMEOUT_SECONDS"])
    app.extensions["importdash"] = Runtime(
        bucket=bucket,
        downstream=downstream,
        deliverer=deliverer,
        broker=broker,
        runner=runner,
        claimer=claimer,
        health=health,
    )


def select_one(app):
    """Ask the database the cheapest question, on a session of the calling thread's own."""
    with app.app_context():
        try:
            db.session.execute(text("SELECT 1"))
        finally:
            db.session.remove()


def start_background(app):
    """Keep claiming waiting imports for free runner slots: new ones, and those whose process died (once per
    serving process).

    gunicorn.conf.py calls this in each worker; the flask CLI never does, so `flask import` or `init-db`
    cannot pick up a server's jobs.
    """
    get_runtime(app).claimer.start()


def stop_background(app, wait=False):
    """Stop claiming and stop running jobs after their calls in flight, leaving them resumable.

    Without wait this only raises flags, so a signal handler may call it; with wait it also waits for the
    jobs to let go and closes the downstream client.
    """
    runtime = get_runtime(app)
    runtime.claimer.stop(wait=wait)
    runtime.health.close()
    runtime.runner.shutdown(wait=wait)
    if wait:
        runtime.downstream.close()


def get_runtime(app=None):
    """The runtime of the given app, or of the current one."""
    return (app or current_app).extensions["importdash"]
