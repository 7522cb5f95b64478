"""The process's shared runtime objects, built once per app and kept in app.extensions["importdash"]."""

import time
from dataclasses import dataclass
from functools import partial

from flask import current_app
from sqlalchemy import text

from .extensions import db
from .services.broker import EventBroker
from .services.bucket import TokenBucket
from .services.delivery import CircuitBreaker, Deliverer, RetryPolicy
from .services.downstream import Downstream, SimulatedDownstream, parse_domains
from .services.health import DatabaseProbe
from .services.limit_store import DatabaseLimitStore, LimitStore, OutageBackoff, RedisLimitStore, limit_name
from .services.recovery import LeaseSweeper
from .services.runner import JobRunner
from .services.webhook import WebhookDownstream


@dataclass
class Runtime:
    bucket: TokenBucket
    limit_store: LimitStore | None  # what the bucket and breaker share with every process (None: nothing to limit)
    downstream: Downstream
    deliverer: Deliverer
    broker: EventBroker
    runner: JobRunner
    sweeper: LeaseSweeper
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


def build_limit_store(app) -> LimitStore | None:
    """The store the downstream's rate limit, pause and breaker are shared through; None when the rate is unlimited.

    Redis when REDIS_URL is set, else the app's database, on a connection of the store's own.
    """
    config = app.config
    rate, burst = config["RATE_PER_SECOND"], config["RATE_BURST"]
    if rate <= 0:
        return None
    name = limit_name(config["DOWNSTREAM"], config["WEBHOOK_URL"])
    if config["REDIS_URL"]:
        import redis

        timeout = config["RATE_LIMIT_REDIS_TIMEOUT_SECONDS"]
        client = redis.Redis.from_url(config["REDIS_URL"], socket_timeout=timeout, socket_connect_timeout=timeout)
        return RedisLimitStore(
            client,
            prefix=config["RATE_LIMIT_KEY_PREFIX"],
            name=name,
            rate=rate,
            burst=burst,
            wall_clock_ms=lambda: time.time_ns() // 1_000_000,
        )
    with app.app_context():
        engine = db.engine
    return DatabaseLimitStore(engine, name=name, rate=rate, burst=burst)


def init_app(app):
    config = app.config
    limit_store = build_limit_store(app)
    bucket = TokenBucket(
        rate=config["RATE_PER_SECOND"],
        capacity=config["RATE_BURST"],
        store=limit_store,
        outage_backoff=OutageBackoff(
            base=config["RATE_LIMIT_RETRY_BACKOFF_BASE_SECONDS"], cap=config["RATE_LIMIT_RETRY_BACKOFF_CAP_SECONDS"]
        ),
        grant_tolerance=config["RATE_LIMIT_GRANT_TOLERANCE_SECONDS"],
    )
    downstream = build_downstream(config)
    deliverer = Deliverer(
        downstream,
        bucket=bucket,
        breaker=CircuitBreaker(
            threshold=config["BREAKER_THRESHOLD"], cooldown=config["BREAKER_COOLDOWN_SECONDS"], store=limit_store
        ),
        policy=RetryPolicy.from_config(config),
    )
    broker = EventBroker(queue_size=config["SSE_QUEUE_SIZE"], max_subscribers=config["SSE_MAX_STREAMS"])
    runner = JobRunner(app, deliverer=deliverer, broker=broker, max_workers=config["MAX_JOBS"])
    sweeper = LeaseSweeper(app, runner, config["LEASE_SWEEP_SECONDS"])
    health = DatabaseProbe(partial(select_one, app), timeout=config["HEALTH_TIMEOUT_SECONDS"])
    app.extensions["importdash"] = Runtime(
        bucket=bucket,
        limit_store=limit_store,
        downstream=downstream,
        deliverer=deliverer,
        broker=broker,
        runner=runner,
        sweeper=sweeper,
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
    """Resume unfinished imports and keep taking over those whose process died (once per serving process).

    gunicorn.conf.py calls this in each worker; the flask CLI never does, so `flask import` or `init-db`
    cannot pick up a server's jobs.
    """
    get_runtime(app).sweeper.start()


def stop_background(app, wait=False):
    """Stop sweeping and stop running jobs after their calls in flight, leaving them resumable.

    Without wait this only raises flags, so a signal handler may call it; with wait it also waits for the
    jobs to let go and closes the downstream client.
    """
    runtime = get_runtime(app)
    runtime.sweeper.stop()
    runtime.health.close()
    runtime.runner.shutdown(wait=wait)
    if wait:
        runtime.downstream.close()
        if runtime.limit_store is not None:
            runtime.limit_store.close()


def get_runtime(app=None):
    """The runtime of the given app, or of the current one."""
    return (app or current_app).extensions["importdash"]
