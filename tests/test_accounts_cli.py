"""The users, api-keys and audit commands, and the audit entries every CLI change writes."""

import csv
import io
import json

from importdash.extensions import db
from importdash.services import accounts


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
