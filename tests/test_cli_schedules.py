"""The schedules group: create, list, show, pause, resume, run-now and delete, with the API's refusals."""

import json

import pytest

from importdash.extensions import db
from importdash.models import ImportJob, ImportTemplate


@pytest.fixture
def app_config(tmp_path):
    root = tmp_path / "feeds"
    root.mkdir()
    (root / "contacts.csv").write_text("Name,Email\nAda,ada@example.com\n")
    return {"IMPORT_ROOT": str(root)}


@pytest.fixture
def template(app):
    db.session.add(ImportTemplate(name="Contacts"))
    db.session.commit()


def invoke(runner, *args):
    return runner.invoke(args=["schedules", *args])


def test_a_schedule_is_managed_from_the_cli(runner, template):
    assert "No schedules yet" in invoke(runner, "list").output
    created = invoke(
        runner, "create", "Nightly", "--template", "Contacts", "--source", "contacts.csv", "--cron", "0 2 * * *"
    )
    assert created.exit_code == 0, created.output
    assert "Schedule #1 'Nightly' saved; next run" in created.output
    listed = invoke(runner, "list").output
    assert "Nightly  (0 2 * * * UTC; path contacts.csv; template Contacts; batch)  next " in listed
    assert "never run" in listed

    assert invoke(runner, "pause", "Nightly").output == "Schedule 'Nightly' paused.\n"
    assert "paused" in invoke(runner, "list").output
    assert "resumed; next run" in invoke(runner, "resume", "1").output

    ran = invoke(runner, "run-now", "Nightly")
    assert ran.exit_code == 0, ran.output
    job = db.session.query(ImportJob).one()
    assert f"Import #{job.id} created" in ran.output and job.started_by == "schedule:Nightly"

    shown = json.loads(invoke(runner, "show", "Nightly").output)
    assert shown["schedule"]["last_job_id"] == job.id
    assert shown["total_runs"] == 1 and shown["runs"][0]["job"]["id"] == job.id

    assert invoke(runner, "delete", "Nightly").output == "Schedule 'Nightly' deleted.\n"
    assert "No schedules yet" in invoke(runner, "list").output


def test_refusals_are_the_apis_messages_and_exit_1(runner, template):
    bad = invoke(runner, "create", "X", "--template", "Contacts", "--source", "a.csv", "--cron", "0 2 * *")
    assert bad.exit_code == 1 and "five fields" in bad.output
    zone = invoke(
        runner, "create", "X", "--template", "Contacts", "--source", "a", "--cron", "@daily", "--timezone", "Nowhere"
    )
    assert zone.exit_code == 1 and "IANA time zone" in zone.output
    assert invoke(runner, "show", "Missing").exit_code == 1

    invoke(runner, "create", "Gone", "--template", "Contacts", "--source", "gone.csv", "--cron", "@daily")
    failed = invoke(runner, "run-now", "Gone")
    assert failed.exit_code == 1 and "The run failed: No file matches 'gone.csv'" in failed.output
    assert "FAILED: No file matches" in invoke(runner, "list").output
