"""A job's ending and its own timings, as pure functions of its counts and runs."""

import io
from datetime import datetime, timedelta

import pytest

from importdash.models import ImportJob, JobOutcome, JobRun, own_work
from importdash.services.reader import estimate_rows

START = datetime(2026, 1, 1, 9, 0, 0)


@pytest.mark.parametrize(
    "status, succeeded, failed, outcome",
    [
        ("completed", 1000, 0, JobOutcome.COMPLETED),
        ("completed", 980, 20, JobOutcome.COMPLETED_WITH_FAILURES),
        ("completed", 0, 1000, JobOutcome.NOTHING_SUCCEEDED),
        ("completed", 1, 999, JobOutcome.COMPLETED_WITH_FAILURES),
        ("pending", 0, 0, None),
        ("processing", 0, 5, None),
        ("failed", 0, 5, None),
        ("cancelled", 10, 0, None),
    ],
)
def test_a_completed_job_ends_one_of_three_ways(status, succeeded, failed, outcome):
    assert JobOutcome.of(status=status, success_count=succeeded, failed_count=failed) is outcome


def run(kind, start_seconds, seconds, sent):
    started = START + timedelta(seconds=start_seconds)
    return JobRun(kind=kind, started_at=started, ended_at=started + timedelta(seconds=seconds), sent=sent)


def test_a_jobs_own_work_is_its_import_and_resumed_runs_without_its_retries():
    job = ImportJob(started_at=START, completed_at=START + timedelta(hours=2), success_count=5, other_count=1)
    runs = [run("import", 0, 25.5, 800), run("resume", 600, 4.5, 200), run("retry", 3600, 270, 17)]
    assert own_work(job, runs) == (30.0, 1000)


def test_a_job_without_recorded_runs_counts_from_its_start_to_its_end():
    job = ImportJob(started_at=START, completed_at=START + timedelta(seconds=12), success_count=5, other_count=2)
    assert own_work(job, []) == (12.0, 7)


@pytest.mark.parametrize(
    "text, rows",
    [
        (b"name,email\na,a@x\nb,b@x\n", 2),
        (b"name,email\r\na,a@x\r\nb,b@x", 2),  # no line break at the end
        (b"name,email\ra,a@x\rb,b@x\r", 2),  # old Mac line breaks
        (b"name,email\n", 0),
        (b"", 0),
        (b'name,email\n"two\nlines",a@x\n', 2),  # an estimate: a quoted line break counts as a row
    ],
)
def test_a_files_rows_are_estimated_from_its_line_breaks(text, rows):
    assert estimate_rows(io.BytesIO(text)) == rows
