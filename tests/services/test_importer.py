"""How a run of one job ends, as the people who run imports read it."""

import os

import pytest
from sqlalchemy.exc import OperationalError

from importdash.errors import InvalidFile
from importdash.extensions import db
from importdash.runtime import get_runtime
from importdash.services import jobs
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
