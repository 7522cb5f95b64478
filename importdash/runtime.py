"""The process's shared runtime objects, built once per app and kept in app.extensions["importdash"]."""
import atexit
from dataclasses import dataclass

from flask import current_app

from .services.broker import EventBroker
from .services.bucket import TokenBucket
from .services.downstream import SimulatedDownstream, parse_domains
from .services.runner import JobRunner


@dataclass
class Runtime:
    bucket: TokenBucket
    downstream: object
    broker: EventBroker
    runner: JobRunner


def build_downstream(config):
    """Make the configured downstream client."""
    if config["DOWNSTREAM"] != "simulated":
        raise ValueError(f"unknown IMPORTDASH_DOWNSTREAM {config['DOWNSTREAM']!r}; expected 'simulated'")
    return SimulatedDownstream(
        latency_ms=config["SIMULATED_LATENCY_MS"],
        reject_domains=parse_domains(config["SIMULATED_REJECT_DOMAINS"]),
    )


def init_app(app):
    config = app.config
    bucket = TokenBucket(rate=config["RATE_PER_SECOND"], capacity=config["RATE_BURST"])
    downstream = build_downstream(config)
    broker = EventBroker(queue_size=config["SSE_QUEUE_SIZE"], max_subscribers=config["SSE_MAX_STREAMS"])
    runner = JobRunner(app, bucket=bucket, downstream=downstream, broker=broker, max_workers=config["MAX_JOBS"])
    app.extensions["importdash"] = Runtime(bucket=bucket, downstream=downstream, broker=broker, runner=runner)
    atexit.register(runner.shutdown, wait=False)


def get_runtime(app=None):
    """The runtime of the given app, or of the current one."""
    return (app or current_app).extensions["importdash"]
