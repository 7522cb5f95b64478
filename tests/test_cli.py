"""The CLI's commands (`importdash <command>`, the same as `flask --app importdash <command>`), through click's
runner: the database, imports in the foreground, and looking at and acting on imports."""

import io
import json
import time

import pytest
from fakes import FakeClock
from sqlalchemy import func, select

from importdash.cli import ProgressDisplay
from importdash.extensions import db
from importdash.models import ImportJob, Record
from importdash.runtime import get_runtime
from importdash.services.streams import JOB_FINISHED


def test_init_db_creates_and_drop_recreates(runner, make_job):
    make_job()
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0 and "Database ready" in result.output
    assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 1
    db.session.rollback()  # end the read, or PostgreSQL's DROP TABLE waits for this session's lock

    result = runner.invoke(args=["init-db", "--drop"])
    assert result.exit_code == 0
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_import_runs_in_the_foreground_and_reports(runner, write_csv):
    path = write_csv("name,email\nAda,ada@example.com\nBad,not-an-email\n")
    for mode in ("batch", "stream"):
        result = runner.invoke(args=["import", str(path), "--mode", mode])
        assert result.exit_code == 0, result.output
        assert "completed: 2 of 2 rows processed" in result.output
    # The second import's Ada is a duplicate of the first's.
    assert "0 succeeded, 2 failed" in result.output
    assert db.session.scalar(select(func.count()).select_from(Record)) == 1
    assert "\r" not in result.output  # its output is not a terminal: plain lines, no redrawing


def test_import_mode_default_imports_the_bundled_sample(app, runner, write_csv):
    result = runner.invoke(args=["import", "--mode", "default"])

    assert result.exit_code == 0, result.output
    assert "completed: 1,000 of 1,000 rows processed" in result.output
    job = db.session.scalars(select(ImportJob)).one()
    assert (job.mode, job.source, job.path) == ("default", "test-data-1000.csv", app.config["SAMPLE_FILE"])
    refused = runner.invoke(args=["import", str(write_csv("name,email\nAda,ada@example.com\n")), "--mode", "default"])
    assert refused.exit_code == 2 and "give no PATH" in refused.output


def test_import_of_a_bad_file_exits_non_zero_with_the_reason(runner, write_csv):
    result = runner.invoke(args=["import", str(write_csv("who,where\n1,2\n")), "--mode", "stream"])
    assert result.exit_code != 0
    assert "email" in result.output and "name" in result.output


def test_clear_records_refuses_without_yes(runner, make_job):
    make_job(status="completed")
    result = runner.invoke(args=["clear-records"])
    assert result.exit_code != 0 and "--yes" in result.output
    result = runner.invoke(args=["clear-records", "--yes"])
    assert result.exit_code == 0 and "1 imports" in result.output
    assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_import_takes_the_encoding_and_the_delimiter(runner, write_csv):
    path = write_csv("name;email\nZoë;zoe@example.com\n", encoding="cp1252")

    refused = runner.invoke(args=["import", str(path)])
    assert refused.exit_code != 0 and "not valid UTF-8 text: byte 0xEB" in refused.output

    result = runner.invoke(args=["import", str(path), "--encoding", "cp1252", "--delimiter", "semicolon"])
    assert result.exit_code == 0, result.output
    assert db.session.scalars(select(Record.name)).all() == ["Zoë"]


def test_purge_deletes_imports_that_ended_before_the_age_given(runner, make_job):
    from datetime import timedelta

    from importdash.models import utcnow

    make_job(status="completed", completed_at=utcnow() - timedelta(days=31))
    kept = make_job(status="completed", completed_at=utcnow() - timedelta(days=2)).id

    assert runner.invoke(args=["purge", "--older-than", "30d"]).exit_code != 0  # asks for --yes first
    refused = runner.invoke(args=["purge", "--older-than", "a month", "--yes"])
    assert refused.exit_code != 0 and "30d, 12h or 90m" in refused.output
    result = runner.invoke(args=["purge", "--older-than", "30d", "--yes"])

    assert result.exit_code == 0 and "Deleted 1 imports" in result.output, result.output
    db.session.expire_all()
    assert list(db.session.scalars(select(ImportJob.id))) == [kept]


def test_resume_goes_on_with_a_cancelled_import_and_refuses_a_completed_one(runner, make_job, write_csv):
    path = write_csv("name,email\nAda,ada@example.com\nBob,bob@example.com\n")
    job_id = make_job(path=str(path), status="cancelled", source="contacts.csv").id

    result = runner.invoke(args=["resume", str(job_id)])

    assert result.exit_code == 0, result.output
    assert f"Import #{job_id} completed: 2 of 2 rows processed, 2 succeeded" in result.output
    refused = runner.invoke(args=["resume", str(job_id)])
    assert refused.exit_code != 0 and "only a failed or cancelled import can be resumed" in refused.output


# The progress display.


def job_state(processed, status="processing", total=1000, **fields):
    return {
        "id": 1,
        "status": status,
        "total_records": total,
        "processed_count": processed,
        "success_count": processed,
        "failed_count": 0,
        "cancelled_count": 0,
        "notice": None,
        "pause_requested": False,
    } | fields


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_off_a_terminal_is_a_plain_line_every_interval_and_one_at_the_end():
    clock, out = FakeClock(), io.StringIO()
    display = ProgressDisplay(out, line_seconds=10, clock=clock)

    for poll in range(25):  # a poll every half second for 12 s, 64 rows a second
        display.show(job_state(32 * poll))
        clock.advance(0.5)
    display.end(job_state(1000, status="completed"))

    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 2 + 1  # at 0 s and 10 s, then the end
    assert lines[0].startswith("processing  [....") and "0/1,000" in lines[0]
    assert "640/1,000" in lines[1] and "64 rows/s" in lines[1] and "about 6 s left" in lines[1]
    assert lines[2].startswith("completed  [######") and "100.0% 1,000/1,000" in lines[2] and "left" not in lines[2]


def test_progress_on_a_terminal_redraws_one_line_in_place():
    clock, out = FakeClock(), Terminal()
    display = ProgressDisplay(out, line_seconds=10, clock=clock)

    display.show(job_state(0, total=None, notice="downstream unavailable, retrying"))
    clock.advance(1)
    display.show(job_state(500, total=None))
    display.end(job_state(900, status="completed", total=900))

    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 3 and out.getvalue().endswith("\n")
    assert frames[0].startswith("processing  0 rows processed") and "retrying" in frames[0]
    assert frames[1].rstrip() == "processing  500 rows processed  ok 500  failed 0  500 rows/s"
    assert len(frames[1]) == len(frames[0])  # blanks over the longer line before
    assert frames[2].startswith("completed  [####")


# Looking at imports.


def test_list_shows_the_imports_newest_first_and_as_the_apis_json(runner, client, make_job):
    assert runner.invoke(args=["list"]).output == "No imports yet.\n"
    older = make_job(source="old.csv", status="completed", total_records=10, processed_count=10, success_count=9)
    newer = make_job(source="new.csv")

    result = runner.invoke(args=["list"])

    assert result.exit_code == 0, result.output
    header, first, second = result.output.splitlines()
    assert header.split() == ["ID", "STATUS", "MODE", "PROCESSED", "SUCCEEDED", "FAILED", "CREATED", "FILE"]
    assert first.split()[:3] == [str(newer.id), "pending", "batch"] and first.endswith("new.csv")
    assert second.split()[:6] == [str(older.id), "completed", "batch", "10/10", "9", "0"]
    paged = runner.invoke(args=["list", "--limit", "1"])
    assert "old.csv" not in paged.output and "Imports 1 to 1 of 2; --offset 1 shows the next." in paged.output
    as_json = runner.invoke(args=["list", "--json"])
    assert json.loads(as_json.output) == client.get("/api/import").get_json()


def test_status_shows_one_import_and_its_runs_and_the_apis_json(app, runner, client, write_csv, wait_for_job):
    path = write_csv("name,email\nAda,ada@example.com\nBo,bo@blocked.example\nNo,not-an-email\n")
    assert runner.invoke(args=["import", str(path)]).exit_code == 0
    job_id = db.session.scalar(select(ImportJob.id))

    result = runner.invoke(args=["status", str(job_id)])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Import #{job_id} (batch) of contacts.csv: completed"
    assert lines[1].split(None, 1)[1] == "3 of 3 rows processed: 1 succeeded, 2 failed"
    assert lines[2].split(None, 1)[1] == "duplicate 0, missing_value 0, invalid_format 1, other 1"
    assert lines[4].startswith("  import") and lines[4].endswith("completed: sent 2, 1 succeeded, 1 refused")
    as_json = runner.invoke(args=["status", str(job_id), "--json"])
    assert json.loads(as_json.output) == client.get(f"/api/import/{job_id}").get_json()
    missing = runner.invoke(args=["status", "999"])
    assert missing.exit_code == 1 and "No import #999." in missing.output


def test_errors_lists_an_imports_errors_and_streams_the_same_csv_as_the_api(runner, client, write_csv, tmp_path):
    rows = "".join(f"Bad {n},bad{n}\n" for n in range(5)) + "Bo,bo@blocked.example\nAda,ada@example.com\n"
    assert runner.invoke(args=["import", str(write_csv("name,email\n" + rows))]).exit_code == 0
    job_id = db.session.scalar(select(ImportJob.id))

    listed = runner.invoke(args=["errors", str(job_id), "--limit", "2"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        'row        2  invalid_format  email "bad0" is not a valid address (missing @)',
        'row        3  invalid_format  email "bad1" is not a valid address (missing @)',
        "Errors 1 to 2 of 6; --offset 2 shows the next.",
    ]
    other = runner.invoke(args=["errors", str(job_id), "--category", "other"])
    assert other.output.splitlines() == [
        'row        7  other           domain "blocked.example" is not accepted by the downstream'
    ]
    assert runner.invoke(args=["errors", str(job_id), "--category", "duplicate"]).output == (
        f"Import #{job_id} has no duplicate errors.\n"
    )

    as_csv = runner.invoke(args=["errors", str(job_id), "--csv"])
    assert as_csv.exit_code == 0
    assert as_csv.stdout_bytes == client.get(f"/api/import/{job_id}/errors.csv").data
    out = tmp_path / "other.csv"
    assert runner.invoke(args=["errors", str(job_id), "--csv", "--category", "other", "-o", str(out)]).exit_code == 0
    assert out.read_bytes() == client.get(f"/api/import/{job_id}/errors.csv?category=other").data
    assert runner.invoke(args=["errors", "999", "--csv"]).exit_code == 1


def test_watch_follows_an_import_until_it_ends_and_exits_as_it_ended(app, runner, make_job, write_csv):
    path = write_csv("name,email\n" + "".join(f"N{n},n{n}@example.com\n" for n in range(50)))
    job_id = make_job(path=str(path), source="contacts.csv").id
    get_runtime(app).runner.submit(job_id)  # as a server would; watch reads only the database

    result = runner.invoke(args=["watch", str(job_id)])

    assert result.exit_code == 0, result.output
    assert f"Import #{job_id} completed: 50 of 50 rows processed, 50 succeeded, 0 failed." in result.output
    cancelled = make_job(status="cancelled", cancelled_count=3, processed_count=3, total_records=3).id
    ended = runner.invoke(args=["watch", str(cancelled)])
    assert ended.exit_code == 1 and f"importdash resume {cancelled} sends the cancelled ones" in ended.output
    assert runner.invoke(args=["watch", "999"]).exit_code == 1


# Acting on imports.


def test_cancel_ends_an_import_nobody_runs_and_refuses_an_ended_one(runner, make_job):
    job_id = make_job(status="pending", total_records=3).id

    result = runner.invoke(args=["cancel", str(job_id)])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Import #{job_id} cancelled:")
    assert db.session.get(ImportJob, job_id).status == "cancelled"
    again = runner.invoke(args=["cancel", str(job_id)])
    assert again.exit_code == 1 and "already ended (cancelled); there is nothing to cancel" in again.output


def test_cancel_of_an_import_another_process_runs_asks_it_to_stop(runner, make_job):
    held = make_job(status="processing", lease_owner="elsewhere:1:abc", lease_expires_at=_later()).id

    result = runner.invoke(args=["cancel", str(held)])

    assert result.exit_code == 0, result.output
    assert f"Import #{held} stops at its next check" in result.output
    db.session.expire_all()
    job = db.session.get(ImportJob, held)
    assert job.status == "processing" and job.cancel_requested


def _later():
    from datetime import timedelta

    from importdash.models import utcnow

    return utcnow() + timedelta(minutes=5)


@pytest.fixture
def refused_once(app):
    """The simulated downstream refuses blocked.example until the test lets it through."""
    downstream = get_runtime(app).deliverer.downstream
    downstream.reject_domains = frozenset({"blocked.example"})
    return downstream


def test_retry_sends_failed_deliveries_again_in_the_foreground(runner, write_csv, refused_once):
    path = write_csv("name,email\nAda,ada@example.com\nBo,bo@blocked.example\n")
    assert runner.invoke(args=["import", str(path)]).exit_code == 0
    job_id = db.session.scalar(select(ImportJob.id))
    refused_once.reject_domains = frozenset()

    result = runner.invoke(args=["retry", str(job_id)])

    assert result.exit_code == 0, result.output
    assert "retrying its failed deliveries" in result.output
    assert f"Import #{job_id} completed: 2 of 2 rows processed, 2 succeeded, 0 failed." in result.output
    job = db.session.get(ImportJob, job_id)
    assert job.retries == 1 and job.lease_owner is None
    nothing_left = runner.invoke(args=["retry", str(job_id)])
    assert nothing_left.exit_code == 1 and "has no failed deliveries to retry" in nothing_left.output


def test_a_foreground_command_returns_only_once_its_run_has_ended(runner, write_csv, monkeypatch):
    # A run commits its end, then announces it; the command must not return in between, or a command after it
    # in the same process (the retry above) finds the job still running and waits for a run that never comes.
    import importdash.services.importer as importer

    announced = []

    def slow_to_announce(broker, session, job_id, name=None):
        time.sleep(0.3)  # the end is committed: the command could see it and return
        announced.append(name)

    monkeypatch.setattr(importer, "publish_job", slow_to_announce)
    result = runner.invoke(args=["import", str(write_csv("name,email\nAda,ada@example.com\n"))])

    assert result.exit_code == 0, result.output
    assert announced and announced[-1] == JOB_FINISHED
    assert get_runtime().runner.active_jobs() == []


def test_import_takes_the_format_and_the_sheet(runner, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Notes"
    clients = book.create_sheet("Clients")
    clients.append(["name", "email"])
    clients.append(["Ada", "ada@example.com"])
    path = tmp_path / "book.bin"
    book.save(path)

    refused = runner.invoke(args=["import", str(path), "--format", "json"])
    assert refused.exit_code != 0 and "is an Excel .xlsx workbook, not JSON" in refused.output
    refused = runner.invoke(args=["import", str(path), "--sheet", "Contacts"])
    assert refused.exit_code != 0 and 'its sheets are "Notes", "Clients"' in refused.output

    result = runner.invoke(args=["import", str(path), "--format", "xlsx", "--sheet", "Clients"])
    assert result.exit_code == 0, result.output
    assert db.session.scalars(select(Record.email)).all() == ["ada@example.com"]
    assert db.session.scalars(select(ImportJob.sheet)).all() == ["Clients"]


def test_import_on_duplicate_update_updates_stored_records_and_skip_leaves_them(runner, write_csv):
    runner.invoke(args=["import", str(write_csv("name,email,phone\nAda,ada@example.com,1\n"))])
    changed = write_csv("name,email,phone\nAda King,ada@example.com,2\n", name="changed.csv")

    skipped = runner.invoke(args=["import", str(changed), "--on-duplicate", "skip"])
    assert skipped.exit_code == 0 and "0 succeeded, 1 failed" in skipped.output
    updated = runner.invoke(args=["import", str(changed), "--on-duplicate", "update"])
    assert updated.exit_code == 0 and "1 succeeded, 0 failed" in updated.output

    db.session.expire_all()
    record = db.session.scalars(select(Record)).one()
    assert (record.name, record.extra, record.version) == ("Ada King", {"phone": "2"}, 2)
    assert db.session.scalars(select(ImportJob.duplicate_policy).order_by(ImportJob.id)).all() == [
        "skip",
        "skip",
        "update",
    ]
    refused = runner.invoke(args=["import", str(changed), "--on-duplicate", "merge"])
    assert refused.exit_code != 0 and "'merge' is not one of 'skip', 'update'" in refused.output
