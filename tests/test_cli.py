"""The flask CLI commands: init-db, clear-records, import."""

from sqlalchemy import func, select

from importdash.extensions import db
from importdash.models import ImportJob, Record


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
