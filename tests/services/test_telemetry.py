"""Metrics and traces: the per-process instruments the deliverer and jobs feed, and the database's totals."""

from datetime import timedelta

from fakes import FakeClock
from prometheus_client.parser import text_string_to_metric_families

from importdash.extensions import db
from importdash.models import JobRun, utcnow
from importdash.services.broker import EventBroker
from importdash.services.bucket import TokenBucket
from importdash.services.delivery import CircuitBreaker, Deliverer, RetryPolicy
from importdash.services.downstream import DownstreamError, Outcome
from importdash.services.telemetry import (
    Instruments,
    JobTotals,
    Telemetry,
    build_telemetry,
    build_tracer_provider,
    scrape,
)

RECORDS = [{"key": "job-2"}, {"key": "job-3"}]


class ScriptedDownstream:
    """Raise the scripted errors in order, then accept every record."""

    def __init__(self, *errors):
        self.errors = list(errors)

    def send(self, records):
        if self.errors:
            raise self.errors.pop(0)
        return [Outcome(record["key"], True, None, {"status": 200}) for record in records]


def make_telemetry():
    return Telemetry(
        instruments=Instruments(downstream="simulated", duration_buckets=(1, 10, 100), multiprocess_dir=None)
    )


def samples(telemetry):
    """Every sample of the telemetry's own registry, by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in telemetry.instruments.registry.collect()
        for sample in family.samples
    }


def value(telemetry, name, **labels):
    return samples(telemetry)[(name, tuple(sorted(labels.items())))]


def make_deliverer(telemetry, downstream, clock, *, threshold=0, max_attempts=3):
    return Deliverer(
        downstream,
        bucket=TokenBucket(rate=0, capacity=1, clock=clock, sleep=clock.sleep),
        breaker=CircuitBreaker(threshold=threshold, cooldown=10.0, clock=clock),
        policy=RetryPolicy(max_attempts=max_attempts, backoff_base=1.0, backoff_cap=5.0),
        telemetry=telemetry,
        sleep=clock.sleep,
        clock=clock,
        rand=lambda: 1.0,
    )


def test_calls_429s_and_retries_are_counted_per_try():
    telemetry, clock = make_telemetry(), FakeClock()
    downstream = ScriptedDownstream(
        DownstreamError("503", transient=True),
        DownstreamError("429", transient=True, throttled=True, retry_after=1.0),
        DownstreamError("timed out", transient=True),
    )

    outcomes = make_deliverer(telemetry, downstream, clock).deliver(RECORDS, should_stop=lambda: False)

    assert all(outcome.ok for outcome in outcomes)
    assert value(telemetry, "importdash_downstream_calls_total", downstream="simulated") == 4
    assert value(telemetry, "importdash_downstream_throttled_total", downstream="simulated") == 1
    assert value(telemetry, "importdash_downstream_retries_total", downstream="simulated") == 2


def test_a_call_that_gives_up_is_not_counted_as_retried_again():
    telemetry, clock = make_telemetry(), FakeClock()
    downstream = ScriptedDownstream(*[DownstreamError("503", transient=True) for _ in range(3)])

    outcomes = make_deliverer(telemetry, downstream, clock, max_attempts=3).deliver(RECORDS, should_stop=lambda: False)

    assert not any(outcome.ok for outcome in outcomes)
    assert value(telemetry, "importdash_downstream_calls_total", downstream="simulated") == 3
    assert value(telemetry, "importdash_downstream_retries_total", downstream="simulated") == 2


def test_the_breaker_gauge_follows_the_breaker():
    telemetry, clock = make_telemetry(), FakeClock()
    downstream = ScriptedDownstream(DownstreamError("503", transient=True), DownstreamError("503", transient=True))
    deliverer = make_deliverer(telemetry, downstream, clock, threshold=2)
    seen = []
    deliverer.breaker.record_failure()  # one failure before: the call's first 503 opens it
    original_admit = deliverer.breaker.admit

    def admit():
        seen.append(value(telemetry, "importdash_downstream_breaker_open", downstream="simulated"))
        return original_admit()

    deliverer.breaker.admit = admit

    assert all(outcome.ok for outcome in deliverer.deliver(RECORDS, should_stop=lambda: False))

    assert 1.0 in seen  # open while the call waited for its probe
    assert value(telemetry, "importdash_downstream_breaker_open", downstream="simulated") == 0.0


def test_an_ended_job_is_observed_in_the_duration_histogram(make_job):
    telemetry = make_telemetry()
    started = utcnow()
    job = make_job(status="completed", mode="stream", started_at=started, completed_at=started + timedelta(seconds=7))

    telemetry.job_ended(job, db.session)

    assert (
        value(telemetry, "importdash_job_duration_seconds_count", mode="stream", status="completed", run="import") == 1
    )
    assert (
        value(telemetry, "importdash_job_duration_seconds_sum", mode="stream", status="completed", run="import") == 7.0
    )
    assert (
        value(
            telemetry,
            "importdash_job_duration_seconds_bucket",
            mode="stream",
            status="completed",
            run="import",
            le="1.0",
        )
        == 0
    )
    assert (
        value(
            telemetry,
            "importdash_job_duration_seconds_bucket",
            mode="stream",
            status="completed",
            run="import",
            le="10.0",
        )
        == 1
    )


def test_the_duration_is_the_imports_own_runs_or_the_retrys(make_job):
    telemetry = make_telemetry()
    start = utcnow() - timedelta(hours=5)
    job = make_job(status="completed", mode="batch", started_at=start, completed_at=start + timedelta(hours=5))

    def run(kind, begins, seconds):
        began = start + timedelta(seconds=begins)
        db.session.add(
            JobRun(
                job_id=job.id, kind=kind, owner="test", started_at=began, ended_at=began + timedelta(seconds=seconds)
            )
        )
        db.session.commit()

    run("import", 0, 20)
    run("resume", 3600, 30)  # stopped, then resumed an hour later: the hour it waited is not the import's
    telemetry.job_ended(job, db.session)
    run("retry", 4 * 3600, 4)
    telemetry.job_ended(job, db.session)

    assert value(telemetry, "importdash_job_duration_seconds_sum", mode="batch", status="completed", run="import") == 50
    assert value(telemetry, "importdash_job_duration_seconds_sum", mode="batch", status="completed", run="retry") == 4


def test_a_job_that_never_started_is_not_observed(make_job):
    telemetry = make_telemetry()

    telemetry.job_ended(make_job(status="cancelled", completed_at=utcnow()), db.session)

    assert not any(name.startswith("importdash_job_duration_seconds_count") for name, _ in samples(telemetry))


def test_the_stream_gauge_counts_the_brokers_open_subscriptions():
    telemetry = make_telemetry()
    broker = EventBroker(queue_size=4, max_subscribers=4, relay=None)
    first = broker.subscribe()
    recount = telemetry.count_streams(broker)
    second = broker.subscribe()
    telemetry.count_streams(broker)

    assert value(telemetry, "importdash_sse_streams") == 2
    first.close()
    recount()
    assert value(telemetry, "importdash_sse_streams") == 1
    second.close()
    recount()
    assert value(telemetry, "importdash_sse_streams") == 0


def test_without_instruments_or_a_tracer_every_hook_does_nothing(make_job):
    telemetry = Telemetry()
    telemetry.call_sent()
    telemetry.breaker_seen(True)
    telemetry.job_ended(make_job(status="completed", started_at=utcnow(), completed_at=utcnow()), db.session)
    with telemetry.span("importdash.call", records=1) as span:
        assert span is None


def test_no_endpoint_means_no_tracer(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)

    assert build_tracer_provider(otlp_endpoint=None, service_name="importdash") is None
    telemetry = build_telemetry(downstream="simulated", duration_buckets=(1,), otlp_endpoint=None, service_name="x")
    assert telemetry.tracer is None and telemetry.instruments is not None


def test_job_totals_are_read_from_the_database(make_job):
    make_job(status="pending")
    make_job(status="pending")
    make_job(status="processing", success_count=3, failed_count=1, other_count=1)
    make_job(
        status="completed",
        success_count=10,
        failed_count=4,
        cancelled_count=0,
        duplicate_count=1,
        missing_value_count=1,
        invalid_format_count=1,
        other_count=1,
    )
    make_job(status="cancelled", success_count=2, cancelled_count=5)

    families = {family.name: family for family in JobTotals(db.session).collect()}

    def by_label(name, label):
        return {sample.labels[label]: sample.value for sample in families[name].samples}

    assert by_label("importdash_jobs", "status") == {
        "pending": 2,
        "processing": 1,
        "paused": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 1,
    }
    assert families["importdash_queue_depth"].samples[0].value == 2
    assert by_label("importdash_rows", "outcome") == {"succeeded": 15, "failed": 5, "cancelled": 5}
    assert by_label("importdash_row_errors", "category") == {
        "duplicate": 1,
        "missing_value": 1,
        "invalid_format": 1,
        "other": 2,
    }


def test_an_empty_database_reports_zeros(app):
    text = scrape(make_telemetry(), db.session, breaker_open=False).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}

    assert families["importdash_queue_depth"].samples[0].value == 0
    assert {sample.value for sample in families["importdash_jobs"].samples} == {0}
    assert families["importdash_downstream_breaker_open"].samples[0].value == 0
