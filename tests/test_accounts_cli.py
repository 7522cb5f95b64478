"""The users, api-keys and audit commands, and the audit entries every CLI change writes."""

import csv
import io
import json

import pytest

from importdash.extensions import db
from importdash.models import NotificationDelivery
from importdash.services import accounts


@pytest.fixture
def app_config(tmp_path):
    """A folder schedules may read from, for the schedules commands."""
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "contacts.csv").write_text("name,email\nAda,ada@example.com\n")
    return {"IMPORT_ROOT": str(feeds)}


def invoke(runner, *args, input=None):
    result = runner.invoke(args=list(args), input=input)
    return result


def test_users_are_created_listed_changed_and_disabled(app, runner, client):
    created = invoke(runner, "users", "create", "ada", "--role", "operator", "--password-stdin", input="s3cret\n")
    assert created.exit_code == 0, created.output
    assert "User ada (operator) created." in created.output

    assert invoke(runner, "users", "set-role", "ada", "viewer").exit_code == 0
    listed = json.loads(invoke(runner, "users", "list", "--json").output)["users"]
    assert [(user["name"], user["role"], user["disabled"]) for user in listed] == [("ada", "viewer", False)]
    assert client.post("/login", data={"name": "ada", "password": "s3cret"}).status_code == 302

    assert invoke(runner, "users", "disable", "ada").exit_code == 0
    assert "disabled" in invoke(runner, "users", "list").output
    assert client.get("/api/me").status_code == 401


def test_the_password_is_asked_twice_without_password_stdin(runner, app):
    result = invoke(runner, "users", "create", "ada", input="one\ntwo\none\none\n")

    assert result.exit_code == 0, result.output
    assert "do not match" in result.output.lower()
    with app.app_context():
        assert accounts.authenticate_password(db.session, name="ada", password="one") is not None


def test_refusals_exit_1_with_the_reason(runner):
    invoke(runner, "users", "create", "ada", "--role", "admin", "--no-password")

    taken = invoke(runner, "users", "create", "ada", "--no-password")
    unknown = invoke(runner, "users", "disable", "nobody")
    bad_role = invoke(runner, "users", "set-role", "ada", "root")
    last_admin = invoke(runner, "users", "disable", "ada")

    assert taken.exit_code == 1 and "exists already" in taken.output
    assert unknown.exit_code == 1 and "No user named 'nobody'" in unknown.output
    assert bad_role.exit_code == 2
    assert last_admin.exit_code == 1 and "last enabled admin" in last_admin.output


def test_an_api_key_is_printed_once_works_and_can_be_revoked(runner, client):
    invoke(runner, "users", "create", "bot", "--role", "viewer", "--no-password")

    created = runner.invoke(args=["api-keys", "create", "bot", "--name", "nightly"])
    secret = created.stdout.strip()

    assert created.exit_code == 0 and secret.startswith("idk_")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/me", headers=headers).get_json()["user"]["name"] == "bot"
    listed = invoke(runner, "api-keys", "list").output
    assert "nightly" in listed and secret not in listed and "active" in listed
    key_id = json.loads(invoke(runner, "api-keys", "list", "--json").output)["api_keys"][0]["id"]

    revoked = invoke(runner, "api-keys", "revoke", str(key_id))

    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert client.get("/api/me", headers=headers).status_code == 401
    assert "revoked already" in invoke(runner, "api-keys", "revoke", str(key_id)).output


def test_cli_changes_are_in_the_audit_trail_as_the_login_name(runner, monkeypatch):
    monkeypatch.setattr("importdash.audit.getpass.getuser", lambda: "ops")
    invoke(runner, "users", "create", "ada", "--role", "viewer", "--no-password")
    invoke(runner, "users", "set-role", "ada", "operator")
    invoke(runner, "clear-records", "--yes")
    invoke(runner, "purge", "--older-than", "30d", "--yes")

    events = json.loads(invoke(runner, "audit", "list", "--json").output)["events"]

    assert [(event["actor"], event["action"]) for event in reversed(events)] == [
        ("cli:ops", "user.create"),
        ("cli:ops", "user.update"),
        ("cli:ops", "records.clear"),
        ("cli:ops", "imports.purge"),
    ]
    assert events[0]["user_agent"] == "importdash-cli" and events[0]["ip"] is None
    assert events[0]["details"]["older_than"] == "30d"


def test_audit_list_filters_and_export_writes_the_csv(runner):
    invoke(runner, "users", "create", "ada", "--no-password")
    invoke(runner, "users", "create", "bob", "--no-password")
    invoke(runner, "users", "disable", "bob")

    listed = invoke(runner, "audit", "list", "--action", "user.update").output
    exported = invoke(runner, "audit", "export", "--csv", "--action", "user")
    no_format = invoke(runner, "audit", "export")

    assert "user.update" in listed and "user.create" not in listed
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert [(row["action"], row["target_id"]) for row in rows] == [
        ("user.create", "ada"),
        ("user.create", "bob"),
        ("user.update", "bob"),
    ]
    assert no_format.exit_code == 2


def test_the_commands_that_change_imports_templates_schedules_and_notifications_are_recorded(
    app, runner, make_job, monkeypatch
):
    monkeypatch.setattr("importdash.audit.getpass.getuser", lambda: "ops")
    app.extensions["importdash"].claimer.stop()  # the waiting import stays waiting while it is paused
    waiting, ended = make_job(status="pending").id, make_job(status="completed").id
    failed = {"target": "ops@example.com", "address": "ops@example.com", "status": "failed"}
    db.session.add(NotificationDelivery(job_id=ended, ending="completed", channel="email", **failed))
    db.session.commit()
    commands = [
        ["pause", str(waiting)],
        ["priority", str(waiting), "5"],
        ["unpause", str(waiting)],
        ["notifications", str(ended), "--resend"],
        ["delete", str(ended), "--yes"],
        ["templates", "create", "Contacts"],
        ["schedules", "create", "Nightly", "--template", "Contacts", "--source", "contacts.csv", "--cron", "0 2 * * *"],
        ["schedules", "pause", "Nightly"],
        ["schedules", "resume", "Nightly"],
        ["schedules", "run-now", "Nightly"],
        ["schedules", "delete", "Nightly"],
        ["templates", "delete", "Contacts"],
    ]
    for args in commands:
        result = invoke(runner, *args)
        assert result.exit_code == 0, (args, result.output)

    events = json.loads(invoke(runner, "audit", "list", "--json", "--limit", "100").output)["events"]

    assert {event["actor"] for event in events} == {"cli:ops"}
    assert [(event["action"], event["target_type"]) for event in reversed(events)] == [
        ("import.pause", "import"),
        ("import.priority", "import"),
        ("import.unpause", "import"),
        ("notifications.resend", "import"),
        ("import.delete", "import"),
        ("template.create", "template"),
        ("schedule.create", "schedule"),
        ("schedule.pause", "schedule"),
        ("schedule.resume", "schedule"),
        ("schedule.run", "schedule"),
        ("schedule.delete", "schedule"),
        ("template.delete", "template"),
    ]
