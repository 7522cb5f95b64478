"""How a run of one job ends, as the people who run imports read it."""

import os

import pytest
from sqlalchemy.exc import OperationalError

from importdash.errors import InvalidFile
from importdash.extensions import db
from importdash.runtime import get_runtime
from importdash.services import jobs
from importdash.services.dialects import SqliteStatements
from importdash.services.importer import describe_failure
from importdash.services.reader import FileLimits

SECRET_PATH = "/srv/importdash/instance/uploads/0123abcd.csv"


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (InvalidFile("The file has a header but no data rows: there is nothing to import."), "no data rows"),
        (FileNotFoundError(2, "No such file or directory", SECRET_PATH), "is gone"),
        (PermissionError(13, "Permission denied", SECRET_PATH), "could not be read"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "no longer decodes"),
        (
            OperationalError("INSERT INTO records (email) VALUES (%(email)s)", {"email": "ada@example.com"}, None),
            "database refused a write",
        ),
        (RuntimeError(f"boom at {SECRET_PATH}"), "unexpected error"),
    ],
)
def test_a_failure_is_described_without_sql_parameters_or_paths(error, says):
    message = describe_failure(error, 42)

    assert says in message
    for secret in (SECRET_PATH, "uploads", "INSERT", "ada@example.com", "Traceback", type(error).__name__):
        assert secret not in message


def test_a_job_whose_file_vanished_fails_saying_so_and_the_log_keeps_the_path(app, write_csv, wait_for_job, caplog):
    path = write_csv("name,email\nAda,ada@example.com\n")
    job = jobs.create_job(
        db.session,
        get_runtime(app).broker,
        mode="batch",
        path=str(path),
        source="contacts.csv",
        max_line_length=app.config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(app.config),
    )
    os.remove(path)

    get_runtime(app).runner.submit(job.id)
    ended = wait_for_job(job.id)

    assert ended["status"] == "failed"
    assert ended["error"] == "The file to import is gone (deleted or moved); import it again."
    assert str(path) in caplog.text and f"import #{job.id} failed" in caplog.text


def _cache_size(session):
    return session.connection().connection.driver_connection.execute("PRAGMA cache_size").fetchone()[0]


@pytest.mark.parametrize("app_config", [{"STAGE_BATCH_SIZE": 2, "CHUNK_SIZE": 2, "SQLITE_STAGING_CACHE_MB": 5}])
@pytest.mark.parametrize(("mode", "staging_cache_mb"), [("batch", 5), ("stream", None)])
def test_on_sqlite_only_a_batch_import_stages_with_the_wider_cache_and_delivers_with_the_usual_one(
    app, write_csv, wait_for_job, monkeypatch, mode, staging_cache_mb
):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite connection's page cache")
    caches = {"staging": set(), "claiming": set()}
    insert_records, waiting_records = SqliteStatements.insert_records, SqliteStatements.waiting_records

    def staging(self, session, *args, **kwargs):
        caches["staging"].add(_cache_size(session))
        return insert_records(self, session, *args, **kwargs)

    def claiming(self, session, *args, **kwargs):
        caches["claiming"].add(_cache_size(session))
        return waiting_records(self, session, *args, **kwargs)

    monkeypatch.setattr(SqliteStatements, "insert_records", staging)
    monkeypatch.setattr(SqliteStatements, "waiting_records", claiming)
    contacts = "".join(f"Person {n},person{n}@example.com\n" for n in range(7))
    job = jobs.create_job(
        db.session,
        get_runtime(app).broker,
        mode=mode,
        path=str(write_csv("name,email\n" + contacts)),
        source="contacts.csv",
        max_line_length=app.config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(app.config),
    )

    get_runtime(app).runner.submit(job.id)
    ended = wait_for_job(job.id)

    assert (ended["status"], ended["total_records"]) == ("completed", 7)
    usual = -1024 * app.config["SQLITE_CACHE_MB"]
    assert caches["staging"] == {usual if staging_cache_mb is None else -1024 * staging_cache_mb}
    assert caches["claiming"] == {usual}
