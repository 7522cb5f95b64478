"""The process's shared runtime objects, built once per app and kept in app.extensions["importdash"]."""

import os
import time
import uuid
from dataclasses import dataclass
from functools import partial

from flask import current_app
from sqlalchemy import make_url, text

from .config import postgresql_timeouts
from .extensions import db
from .services.broker import EventBroker
from .services.bucket import TokenBucket
from .services.checks import LastCheck
from .services.claimer import DatabaseJobQueue, JobClaimer
from .services.delivery import CircuitBreaker, Deliverer, RetryPolicy
from .services.downstream import Downstream, SimulatedDownstream, parse_domains
from .services.health import DatabaseProbe
from .services.limit_store import DatabaseLimitStore, LimitStore, OutageBackoff, RedisLimitStore, limit_name
from .services.notifications import NotificationDefaults, Notifier, NotifierSettings
from .services.reader import FileLimits
from .services.relay import (
    DatabaseOutbox,
    PostgresNotify,
    RedisPubSub,
    RelayListener,
    RelaySender,
    StreamFeed,
    Transport,
)
from .services.runner import JobRunner
from .services.scheduler import Scheduler
from .services.sources import SourceFetcher
from .services.storage import UploadStorage, build_storage
from .services.telemetry import Telemetry, build_telemetry
from .services.webhook import WebhookDownstream


@dataclass
class Runtime:
    bucket: TokenBucket
    limit_store: LimitStore | None  # what the bucket and breaker share with every process (None: nothing to limit)
    downstream: Downstream
    deliverer: Deliverer
    broker: EventBroker
    runner: JobRunner
    claimer: JobClaimer
    health: DatabaseProbe
    relay_transport: Transport | None  # how this process's job events reach the others (None: EVENT_RELAY off)
    relay_listener: RelayListener | None  # hears the others' events; started by start_background only
    storage: UploadStorage  # where uploads are kept; reads, resumes and deletes any job's file
    last_check: LastCheck  # the latest "Test downstream" answer this process got
    fetch: SourceFetcher  # fetches schedules' files from their sources
    scheduler: Scheduler  # runs due schedules; started by start_background only
    notifier: Notifier  # sends the notifications of ended imports; its loop is started by start_background only
    notification_defaults: NotificationDefaults  # the global NOTIFY_* settings, for jobs ended outside a run
    telemetry: Telemetry  # this process's metrics, and traces when an OTLP endpoint is set


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


def build_relay_transport(app) -> Transport | None:
    """Make the configured event relay: Redis pub/sub, PostgreSQL LISTEN/NOTIFY, the SQLite outbox, or none."""
    config = app.config
    kind = config["EVENT_RELAY"]
    if kind == "off":
        return None
    if kind == "redis" or (kind == "auto" and config["REDIS_URL"]):
        if not config["REDIS_URL"]:
            raise ValueError("IMPORTDASH_EVENT_RELAY=redis needs IMPORTDASH_REDIS_URL")
        return RedisPubSub(
            url=config["REDIS_URL"],
            channel=config["EVENT_RELAY_CHANNEL"],
            wait_seconds=config["EVENT_RELAY_WAIT_SECONDS"],
            send_timeout=config["EVENT_RELAY_SEND_TIMEOUT_SECONDS"],
        )
    if kind not in ("auto", "database"):
        raise ValueError(f"unknown IMPORTDASH_EVENT_RELAY {kind!r}; expected 'auto', 'database', 'redis' or 'off'")
    url = make_url(config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "postgresql":
        return PostgresNotify(
            # libpq's own URL form: the listener's connection is psycopg's, outside SQLAlchemy's pool.
            conninfo=url.set(drivername="postgresql").render_as_string(hide_password=False),
            connect_args=postgresql_timeouts(config),
            channel=config["EVENT_RELAY_CHANNEL"],
            wait_seconds=config["EVENT_RELAY_WAIT_SECONDS"],
        )
    with app.app_context():
        engine = db.engine
    return DatabaseOutbox(
        engine=engine,
        poll_seconds=config["EVENT_RELAY_POLL_SECONDS"],
        keep_seconds=config["EVENT_RELAY_OUTBOX_KEEP_SECONDS"],
    )


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
    telemetry = build_telemetry(
        downstream=config["DOWNSTREAM"],
        duration_buckets=config["METRICS_JOB_DURATION_BUCKETS"],
        otlp_endpoint=config["OTLP_ENDPOINT"],
        service_name=config["OTLP_SERVICE_NAME"],
    )
    deliverer = Deliverer(
        downstream,
        bucket=bucket,
        breaker=CircuitBreaker(
            threshold=config["BREAKER_THRESHOLD"], cooldown=config["BREAKER_COOLDOWN_SECONDS"], store=limit_store
        ),
        policy=RetryPolicy.from_config(config),
        telemetry=telemetry,
    )
    relay_transport = build_relay_transport(app)
    # Names this process in its announcements, so its listener leaves its own events alone.
    origin = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    relay = RelaySender(relay_transport, origin=origin) if relay_transport is not None else None
    broker = EventBroker(queue_size=config["SSE_QUEUE_SIZE"], max_subscribers=config["SSE_MAX_STREAMS"], relay=relay)
    relay_listener = None
    if relay_transport is not None:
        feed = StreamFeed(app, broker)
        relay_listener = RelayListener(
            relay_transport,
            origin=origin,
            deliver=feed.publish,
            catch_up=feed.catch_up,
            retry_base=config["EVENT_RELAY_RETRY_BASE_SECONDS"],
            retry_cap=config["EVENT_RELAY_RETRY_CAP_SECONDS"],
        )
    with app.app_context():
        storage = build_storage(config, db.engine)
    runner = JobRunner(app, deliverer=deliverer, broker=broker, storage=storage, max_workers=config["MAX_JOBS"])
    claimer = JobClaimer(
        runner,
        DatabaseJobQueue(app, lease_seconds=config["LEASE_SECONDS"], storage=storage),
        poll_seconds=config["CLAIM_POLL_SECONDS"],
        upload_sweep_seconds=config["UPLOAD_SWEEP_SECONDS"],
    )
    health = DatabaseProbe(partial(select_one, app), timeout=config["HEALTH_TIMEOUT_SECONDS"])
    fetch = SourceFetcher(
        upload_folder=config["UPLOAD_FOLDER"],
        import_root=config["IMPORT_ROOT"],
        max_bytes=config["MAX_CONTENT_LENGTH"],
        allow_private_urls=config["SCHEDULE_ALLOW_PRIVATE_URLS"],
        timeout=config["SCHEDULE_FETCH_TIMEOUT_SECONDS"],
        max_redirects=config["SCHEDULE_MAX_REDIRECTS"],
        s3_endpoint_url=config["S3_ENDPOINT_URL"],
    )
    scheduler = Scheduler(
        app,
        runner=runner,
        broker=broker,
        storage=storage,
        fetch=fetch,
        poll_seconds=config["SCHEDULE_POLL_SECONDS"],
        abandoned_run_seconds=config["SCHEDULE_ABANDONED_RUN_SECONDS"],
        max_line_length=config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(config),
    )
    app.extensions["importdash"] = Runtime(
        bucket=bucket,
        limit_store=limit_store,
        downstream=downstream,
        deliverer=deliverer,
        broker=broker,
        runner=runner,
        claimer=claimer,
        health=health,
        relay_transport=relay_transport,
        relay_listener=relay_listener,
        storage=storage,
        last_check=LastCheck(),
        fetch=fetch,
        scheduler=scheduler,
        notifier=Notifier(app, settings=NotifierSettings.from_config(config)),
        # Read once here too, so that a wrong NOTIFY_ON stops the start instead of every import's end.
        notification_defaults=NotificationDefaults.from_config(config),
        telemetry=telemetry,
    )


def select_one(app):
    """Ask the database the cheapest question, on a session of the calling thread's own."""
    with app.app_context():
        try:
            db.session.execute(text("SELECT 1"))
        finally:
            db.session.remove()


def start_background(app):
    """Keep claiming waiting imports for free runner slots (new ones, and those whose process died), run due
    schedules, and listen for the other processes' job events (once per serving process).

    gunicorn.conf.py calls this in each worker; the flask CLI never does, so `flask import` or `init-db`
    cannot pick up a server's jobs (its own events are still announced to the servers).
    """
    runtime = get_runtime(app)
    if runtime.relay_listener is not None:
        runtime.relay_listener.start()
    runtime.claimer.start()
    runtime.scheduler.start()
    runtime.notifier.start()


def stop_background(app, wait=False):
    """Stop claiming and listening, stop running jobs after their calls in flight, leaving them resumable, and end
    every open progress stream (the browsers reconnect), so that a shutdown does not wait for open pages.

    Without wait this only raises flags and wakes the streams' threads, so a signal handler may call it; with wait
    it also waits for the jobs and the relay's listener to let go and closes the downstream and relay clients.
    """
    runtime = get_runtime(app)
    runtime.scheduler.stop(wait=wait)
    runtime.claimer.stop(wait=wait)
    runtime.notifier.stop(wait=wait)
    if runtime.relay_listener is not None:
        runtime.relay_listener.stop()
    runtime.health.close()
    runtime.broker.close()
    runtime.runner.shutdown(wait=wait)
    if wait:
        runtime.downstream.close()
        runtime.notifier.close()
        if runtime.relay_listener is not None:
            runtime.relay_listener.join()
        if runtime.relay_transport is not None:
            runtime.relay_transport.close()
        if runtime.limit_store is not None:
            runtime.limit_store.close()
        runtime.telemetry.close()


def get_runtime(app=None):
    """The runtime of the given app, or of the current one."""
    return (app or current_app).extensions["importdash"]
