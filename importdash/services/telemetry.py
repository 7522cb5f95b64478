"""What the app tells monitoring: Prometheus metrics (GET /metrics) and, when an OTLP endpoint is set, OpenTelemetry
traces of each import.

Two kinds of metric, told apart in the README:

- Per-process instruments (calls, 429s, retries, the breaker, job durations, open streams) live in each process. Under
  gunicorn they are written to files in PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it from METRICS_DIR) and a
  scrape of any worker sums every worker's; elsewhere (flask run, tests, the CLI) they live in the app's own registry.
- Database-wide figures (jobs by status, queue depth, rows by outcome, error rows by category) are read from the
  import_jobs table at scrape time by `JobTotals`: the committed counts are the truth across processes, instances and
  restarts, and a scrape of any instance gives the same answer without double counting.
"""

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import ERROR_COUNTERS, ImportJob, JobRun, JobStatus, RunKind, own_work
from .broker import EventBroker

log = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
TRACER_NAME = "importdash"


class Instruments:
    """The per-process metrics of one downstream: written to the multiprocess files when the process has them."""

    def __init__(self, *, downstream: str, duration_buckets: Sequence[float], multiprocess_dir: str | None):
        self.multiprocess_dir = multiprocess_dir
        # In multiprocess mode the values go to files and a scrape reads them all; the app's registry is used only
        # when this process alone is what there is to report.
        self.registry = CollectorRegistry()
        registry = None if multiprocess_dir else self.registry
        labels = ["downstream"]
        self.calls = Counter(
            "importdash_downstream_calls", "Calls sent to the downstream, each try counted.", labels, registry=registry
        ).labels(downstream)
        self.throttled = Counter(
            "importdash_downstream_throttled", "Calls the downstream answered 429.", labels, registry=registry
        ).labels(downstream)
        self.retries = Counter(
            "importdash_downstream_retries",
            "Calls tried again after a timeout, a connection error, 408 or 5xx.",
            labels,
            registry=registry,
        ).labels(downstream)
        # livemax: 1 while any live process last saw the breaker open; a dead process's view is dropped with it.
        self.breaker_open = Gauge(
            "importdash_downstream_breaker_open",
            "1 while the circuit breaker holds calls back (as the processes last saw it), else 0.",
            labels,
            registry=registry,
            multiprocess_mode="livemax",
        ).labels(downstream)
        self.job_duration = Histogram(
            "importdash_job_duration_seconds",
            "An import's own running time (its first and resumed runs), or a retry's, observed when it ends.",
            ["mode", "status", "run"],
            registry=registry,
            buckets=duration_buckets,
        )
        # livesum: the streams open in every live worker together.
        self.streams = Gauge(
            "importdash_sse_streams",
            "Progress streams (Server-Sent Events) open now.",
            registry=registry,
            multiprocess_mode="livesum",
        )


class Telemetry:
    """The process's hooks for metrics and traces, called by the deliverer, the importer, the runner and the
    progress streams. Without instruments or a tracer each hook does nothing."""

    def __init__(self, *, instruments: Instruments | None = None, tracer: Any = None, tracer_provider: Any = None):
        self.instruments = instruments
        self.tracer = tracer  # an OpenTelemetry Tracer, or None when traces are off
        self._tracer_provider = tracer_provider
        self._breaker_shown = None  # the breaker state last written to the gauge

    # Downstream calls.

    def call_sent(self) -> None:
        if self.instruments is not None:
            self.instruments.calls.inc()

    def call_throttled(self) -> None:
        if self.instruments is not None:
            self.instruments.throttled.inc()

    def call_retried(self) -> None:
        if self.instruments is not None:
            self.instruments.retries.inc()

    def breaker_seen(self, is_open: bool) -> None:
        """Show the breaker's state; written only when it changed, as every call reports it (a multiprocess gauge's
        write takes a lock and looks up the process id)."""
        if self.instruments is not None and is_open is not self._breaker_shown:
            self._breaker_shown = is_open
            self.instruments.breaker_open.set(1 if is_open else 0)

    # Jobs.

    def job_ended(self, job: ImportJob, session: Session) -> None:
        """Observe an ended import's duration, and say how it ended on its run's span; never raises.

        The duration is the import's own, as its page shows it (its first and resumed runs, not the time it waited
        in between); when a retry ended it, the retry's run alone, under run="retry".
        """
        try:
            self._job_ended(job, session)
        except Exception:  # monitoring never stops an import from ending
            log.exception("import #%s: its end was not recorded in the metrics", job.id)

    def _job_ended(self, job, session):
        if self.instruments is not None and job.started_at is not None:
            runs = session.scalars(select(JobRun).where(JobRun.job_id == job.id).order_by(JobRun.id)).all()
            last = runs[-1] if runs else None
            if last is not None and last.kind == RunKind.RETRY.value and last.ended_at is not None:
                run, seconds = RunKind.RETRY.value, (last.ended_at - last.started_at).total_seconds()
            else:
                run, seconds = RunKind.IMPORT.value, own_work(job, runs)[0]
            self.instruments.job_duration.labels(mode=job.mode, status=job.status, run=run).observe(max(0.0, seconds))
        if self.tracer is not None:
            from opentelemetry import trace

            trace.get_current_span().set_attributes(
                {
                    "importdash.job.mode": job.mode,
                    "importdash.job.rows": job.processed_count,
                    "importdash.job.outcome": job.status,
                }
            )

    # Progress streams.

    def count_streams(self, broker: EventBroker) -> Callable[[], None]:
        """Record how many progress streams this process has open now; return a call that records it again (for
        when a stream closes)."""

        def record():
            if self.instruments is not None:
                self.instruments.streams.set(broker.subscriber_count())

        record()
        return record

    # Traces.

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager:
        """A span around a piece of work, the child of the current one; a no-op when traces are off."""
        if self.tracer is None:
            return contextlib.nullcontext()
        return self.tracer.start_as_current_span(
            name, attributes={f"importdash.{key}": value for key, value in attributes.items()}
        )

    def close(self) -> None:
        """Send the spans not yet exported and stop the exporter."""
        provider, self._tracer_provider = self._tracer_provider, None
        if provider is not None:
            provider.shutdown()


NO_TELEMETRY = Telemetry()


class JobTotals:
    """A Prometheus collector of database-wide figures, read from import_jobs at scrape time (one grouped query)."""

    def __init__(self, session: Session):
        self.session = session

    def collect(self) -> Iterator[GaugeMetricFamily]:
        categories = list(ERROR_COUNTERS)
        rows = self.session.execute(
            select(
                ImportJob.status,
                func.count(),
                func.sum(ImportJob.success_count),
                func.sum(ImportJob.failed_count),
                func.sum(ImportJob.cancelled_count),
                *(func.sum(ERROR_COUNTERS[category]) for category in categories),
            ).group_by(ImportJob.status)
        ).all()
        self.session.rollback()  # a scrape leaves no transaction open
        jobs = dict.fromkeys((status.value for status in JobStatus), 0)
        outcomes = dict.fromkeys(("succeeded", "failed", "cancelled"), 0)
        errors = dict.fromkeys(categories, 0)
        for status, count, succeeded, failed, cancelled, *by_category in rows:
            jobs[status] = jobs.get(status, 0) + count
            outcomes["succeeded"] += succeeded or 0
            outcomes["failed"] += failed or 0
            outcomes["cancelled"] += cancelled or 0
            for category, n in zip(categories, by_category, strict=True):
                errors[category] += n or 0
        by_status = GaugeMetricFamily("importdash_jobs", "Imports in the database by status.", labels=["status"])
        for status, count in jobs.items():
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily(
            "importdash_queue_depth",
            "Imports waiting for a runner slot (pending).",
            value=jobs[JobStatus.PENDING.value],
        )
        by_outcome = GaugeMetricFamily(
            "importdash_rows",
            "Rows of the imports in the database by outcome (succeeded + failed + cancelled = processed).",
            labels=["outcome"],
        )
        for outcome, count in outcomes.items():
            by_outcome.add_metric([outcome], count)
        yield by_outcome
        by_category = GaugeMetricFamily(
            "importdash_row_errors",
            "Error rows of the imports in the database by category; they add up to the failed rows.",
            labels=["category"],
        )
        for category, count in errors.items():
            by_category.add_metric([category], count)
        yield by_category


def scrape(telemetry: Telemetry, session: Session, *, breaker_open: bool) -> bytes:
    """The metrics in Prometheus's text format: this process's (or every worker's) and the database's.

    breaker_open is the breaker as this process sees it now, noted first so the scrape is up to date with it.
    """
    telemetry.breaker_seen(breaker_open)
    registry = CollectorRegistry()
    instruments = telemetry.instruments
    if instruments is not None:
        if instruments.multiprocess_dir:
            MultiProcessCollector(registry, path=instruments.multiprocess_dir)
        else:
            registry.register(instruments.registry)
    registry.register(JobTotals(session))
    return generate_latest(registry)


def database_metrics(session: Session) -> bytes:
    """The database-wide figures alone, in Prometheus's text format: the same from any process (the CLI's too)."""
    registry = CollectorRegistry()
    registry.register(JobTotals(session))
    return generate_latest(registry)


def build_telemetry(
    *, downstream: str, duration_buckets: Sequence[float], otlp_endpoint: str | None, service_name: str
) -> Telemetry:
    """The process's telemetry: instruments always, a tracer when an OTLP endpoint is set (here or in OpenTelemetry's
    own OTEL_EXPORTER_OTLP_ENDPOINT) and the OpenTelemetry packages are installed."""
    instruments = Instruments(
        downstream=downstream,
        duration_buckets=duration_buckets,
        multiprocess_dir=os.environ.get(MULTIPROCESS_ENV) or None,
    )
    tracer_provider = build_tracer_provider(otlp_endpoint=otlp_endpoint, service_name=service_name)
    if tracer_provider is None:
        return Telemetry(instruments=instruments)
    return Telemetry(
        instruments=instruments, tracer=tracer_provider.get_tracer(TRACER_NAME), tracer_provider=tracer_provider
    )


def build_tracer_provider(*, otlp_endpoint: str | None, service_name: str) -> Any:
    """A tracer provider exporting to the OTLP/HTTP endpoint in batches; None when no endpoint is set.

    The provider is the app's own, not OpenTelemetry's global one, so that each app (and each test) has its own.
    """
    endpoint_from_env = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not otlp_endpoint and not endpoint_from_env:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "an OTLP endpoint is set but OpenTelemetry is not installed, so no traces are sent: "
            "pip install 'importdash[otel]'"
        )
        return None
    # OTLPSpanExporter reads OpenTelemetry's own variables when given no endpoint.
    exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces") if otlp_endpoint else None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter()))
    return provider
