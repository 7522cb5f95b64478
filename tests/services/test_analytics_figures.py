"""Figures across imports for the analytics page, on the test database, and their pure parts."""

from datetime import date, datetime, timedelta

import pytest

from importdash.errors import NotFound
from importdash.extensions import db
from importdash.models import JobRun, Record, RowError
from importdash.services import analytics
from importdash.services.analytics import AnalyticsLimits, error_group, normalise_message, percentile

TODAY = date(2026, 3, 10)
LIMITS = AnalyticsLimits(max_jobs=100, max_failed_records=100, top_errors=10)


def at(day, hour=12, second=0):
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=hour, seconds=second)


@pytest.fixture
def ended_job(make_job):
    """An import created on a day that ran for some seconds and ended with the given counts."""

    def make(day, seconds, *, status="completed", **counts):
        created = at(day)
        return make_job(
            created_at=created,
            started_at=created + timedelta(seconds=1),
            completed_at=created + timedelta(seconds=1 + seconds),
            status=status,
            **counts,
        )

    return make


def summary(**overrides):
    options = {"days": 7, "today": TODAY, "rate_allowed": 100.0, "limits": LIMITS} | overrides
    return analytics.summary(db.session, **options)


def test_every_day_of_the_range_is_listed_with_its_imports_rows_and_outcomes(app, ended_job, make_job):
    ended_job(TODAY, 10, total_records=100, success_count=90, failed_count=10, duplicate_count=4, other_count=2)
    ended_job(TODAY, 30, status="failed", total_records=50, success_count=20, failed_count=5, missing_value_count=3)
    ended_job(TODAY - timedelta(days=2), 5, total_records=10, success_count=10)
    make_job(created_at=at(TODAY - timedelta(days=7)), total_records=999)  # the day before the range
    make_job(created_at=at(TODAY), status="processing", rows_read=40)  # still running: its rows read so far

    figures = summary()

    assert figures["range"] == {"days": 7, "from": "2026-03-04", "to": "2026-03-10"}
    assert [day["date"] for day in figures["days"]] == [f"2026-03-{day:02d}" for day in range(4, 11)]
    today = figures["days"][-1]
    assert (today["imports"], today["rows"], today["succeeded"], today["failed"]) == (3, 190, 110, 15)
    assert today["success_rate"] == 0.5  # one of the two ended imports completed
    assert today["delivery_success_rate"] == round(110 / 125, 4)
    assert today["errors"] == {"duplicate": 4, "missing_value": 3, "invalid_format": 0, "other": 2}
    assert today["duration"] == {"average_seconds": 20.0, "p95_seconds": 30.0, "count": 2}
    empty = figures["days"][0]
    assert (empty["imports"], empty["success_rate"], empty["duration"]["count"]) == (0, None, 0)
    assert figures["totals"]["imports"] == 4 and figures["totals"]["rows"] == 200
    assert figures["totals"]["success_rate"] == round(2 / 3, 4)
    assert figures["totals"]["duration"] == {"average_seconds": 15.0, "p95_seconds": 30.0, "count": 3}
    assert figures["rate_allowed"] == 100.0
    assert figures["sampled"] == {"durations": False, "rates": False, "downstream_errors": False}


def test_the_delivery_rate_used_is_each_days_records_sent_over_its_runs_time(app, make_job):
    job = make_job(created_at=at(TODAY))
    for start, seconds, sent in ((0, 10, 500), (100, 30, 300)):
        begin = at(TODAY, second=start)
        db.session.add(
            JobRun(
                job_id=job.id,
                kind="import",
                owner="p",
                started_at=begin,
                ended_at=begin + timedelta(seconds=seconds),
                sent=sent,
            )
        )
    db.session.add(JobRun(job_id=job.id, kind="retry", owner="p", started_at=at(TODAY), ended_at=None, sent=50))
    db.session.commit()

    figures = summary(rate_allowed=0)

    assert figures["days"][-1]["rate_used"] == 20.0  # 800 records in 40 s; the run still going is left out
    assert figures["days"][0]["rate_used"] is None
    assert figures["rate_allowed"] is None  # 0: no limit


def test_durations_read_only_the_newest_jobs_up_to_the_bound_and_say_so(app, ended_job):
    for seconds in (100, 1, 2, 3):  # the first is the oldest: created first, same day
        ended_job(TODAY, seconds)

    figures = summary(limits=AnalyticsLimits(max_jobs=3, max_failed_records=100, top_errors=10))

    assert figures["totals"]["duration"] == {"average_seconds": 2.0, "p95_seconds": 3.0, "count": 3}
    assert figures["totals"]["imports"] == 4  # counts are SQL sums, never cut
    assert figures["sampled"]["durations"] is True


def test_the_most_frequent_downstream_errors_group_refusals_by_status_and_normalised_message(app, make_job):
    job = make_job(created_at=at(TODAY))
    old = make_job(created_at=at(TODAY - timedelta(days=30)))
    refusals = [
        (job, {"status": "rejected", "reason": 'domain "blocked.example" is not accepted by the downstream'}),
        (job, {"status": "rejected", "reason": 'domain "blocked.example" is not accepted by the downstream'}),
        (job, {"key": "k", "ok": False, "message": "Mailbox ann@x.example is full (code 552)"}),
        (job, {"key": "k", "ok": False, "message": "Mailbox bob@y.example is full (code 553)"}),
        (job, {"key": "k", "ok": False, "message": "Mailbox cy@z.example is full (code 554)"}),
        (job, None),  # the whole call failed: the error row says why
        (old, {"status": "rejected", "reason": "out of range"}),
    ]
    for row, (owner, response) in enumerate(refusals, start=2):
        db.session.add(
            Record(
                job_id=owner.id,
                row=row,
                name="N",
                email=f"r{row}@e.example",
                email_key=f"r{row}@e.example",
                status="failed",
                response=response,
            )
        )
    db.session.add(
        RowError(
            job_id=job.id, row=7, category="other", message="the downstream answered 500 (gave up after 5 attempts)"
        )
    )
    db.session.add(
        Record(
            job_id=job.id,
            row=20,
            name="N",
            email="ok@e.example",
            email_key="ok@e.example",
            status="succeeded",
            response={"status": "accepted"},
        )
    )
    db.session.commit()

    figures = summary()

    assert figures["downstream_errors"] == [
        {"status": "-", "message": "mailbox <email> is full (code <n>)", "count": 3},
        {"status": "rejected", "message": 'domain "blocked.example" is not accepted by the downstream', "count": 2},
        {"status": "-", "message": "the downstream answered <n> (gave up after <n> attempts)", "count": 1},
    ]
    bounded = summary(limits=AnalyticsLimits(max_jobs=100, max_failed_records=2, top_errors=1))
    assert len(bounded["downstream_errors"]) == 1 and bounded["sampled"]["downstream_errors"] is True


def test_one_jobs_rows_per_second_is_one_level_per_run_and_a_running_run_counts_to_now(app, make_job):
    job = make_job(created_at=at(TODAY), started_at=at(TODAY))
    begin = at(TODAY)
    db.session.add(
        JobRun(
            job_id=job.id, kind="import", owner="p", started_at=begin, ended_at=begin + timedelta(seconds=4), sent=400
        )
    )
    db.session.add(JobRun(job_id=job.id, kind="resume", owner="p", started_at=begin + timedelta(seconds=10), sent=150))
    db.session.commit()

    rates = analytics.job_throughput(db.session, job.id, now=begin + timedelta(seconds=13))

    assert rates["job"]["id"] == job.id
    assert rates["runs"] == [
        {
            "kind": "import",
            "start_seconds": 0.0,
            "end_seconds": 4.0,
            "sent": 400,
            "rows_per_second": 100.0,
            "running": False,
        },
        {
            "kind": "resume",
            "start_seconds": 10.0,
            "end_seconds": 13.0,
            "sent": 150,
            "rows_per_second": 50.0,
            "running": True,
        },
    ]
    with pytest.raises(NotFound):
        analytics.job_throughput(db.session, job.id + 1, now=begin)


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [([], 95, None), ([7.0], 95, 7.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0), (list(map(float, range(1, 101))), 95, 95.0)],
)
def test_the_percentile_is_the_nearest_rank(values, share, expected):
    assert percentile(values, share) == expected


def test_messages_lose_what_they_named_but_keep_what_kind_of_refusal_they_are():
    assert (
        normalise_message("  Rejected   ANN@Example.com: id 3f2a9c1e-77b0 at 12:30 ")
        == "rejected <email>: id <id> at <n>:<n>"
    )
    assert normalise_message(None) == normalise_message(" ") == "(no message)"
    assert error_group({"status": 422, "message": "Bad"}, "ignored") == ("422", "bad")
    assert error_group(None, "timeout") == ("-", "timeout")
