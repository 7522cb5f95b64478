"""The audit trail: an entry for every action with who, when, from where and what; its filters, paging and CSV;
addresses through trusted proxies only; and entries that are only ever added."""

import csv
import io
import os
import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from importdash.extensions import db
from importdash.models import AuditEvent, ImportJob
from importdash.roles import Role
from importdash.services import accounts

CLIENT = {"REMOTE_ADDR": "203.0.113.7"}
AGENT = {"User-Agent": "audit-test/1.0"}
REJECTED_CSV = b"name,email\nAda,ada@example.com\nBob,bob@rejected.example\n"


def entries(app, action=None):
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return [event.to_dict() for event in db.session.scalars(query)]


def wait_until(condition, timeout=10):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("timed out")


def act(client, method, path, **options):
    return client.open(path, method=method, environ_base=CLIENT, headers=AGENT, **options)


def test_every_job_action_is_recorded_with_who_when_where_and_what(app, client, wait_for_job):
    started = act(client, "POST", "/api/import/batch", data={"file": (io.BytesIO(REJECTED_CSV), "a.csv")})
    job_id = started.get_json()["job"]["id"]
    assert wait_for_job(job_id)["status"] == "completed"
    assert act(client, "POST", f"/api/import/{job_id}/retry").status_code == 202
    wait_for_job(job_id)
    pending = client.post("/api/import").get_json()["job"]["id"]
    assert act(client, "POST", f"/api/import/{pending}/cancel").status_code in (200, 202)
    wait_for_job(pending)
    assert act(client, "POST", f"/api/import/{pending}/resume").status_code == 202
    wait_for_job(pending)
    assert act(client, "DELETE", "/api/records?confirm=true").status_code == 200

    recorded = [event for event in entries(app) if event["ip"] == CLIENT["REMOTE_ADDR"]]

    assert [(event["action"], event["target_type"], event["target_id"]) for event in recorded] == [
        ("import.start", "import", str(job_id)),
        ("import.retry", "import", str(job_id)),
        ("import.cancel", "import", str(pending)),
        ("import.resume", "import", str(pending)),
        ("records.clear", None, None),
    ]
    for event in recorded:
        assert event["actor"] == "anonymous" and event["role"] == "admin"
        assert event["user_agent"] == "audit-test/1.0"
        assert event["at"].endswith("Z")
    assert recorded[0]["details"] == {"mode": "batch", "source": "a.csv", "template": None}
    assert recorded[-1]["details"]["jobs"] == 2
    # Clearing the ledger leaves the trail alone.
    assert len(entries(app)) >= len(recorded)


def test_refused_actions_write_no_entry(app, client):
    assert act(client, "POST", "/api/import/999/cancel").status_code == 404
    assert act(client, "DELETE", "/api/records").status_code == 400

    assert entries(app) == []


def test_changes_to_users_and_keys_are_recorded_and_secrets_never(app, client):
    user = act(client, "POST", "/api/users", json={"name": "grace", "role": "admin", "password": "pw"}).get_json()
    with app.app_context():
        # The app is closed now; act as grace through a key made for her.
        secret = accounts.issue_key(db.session, user=accounts.find_user(db.session, "grace"), name="setup").secret
    headers = {**AGENT, "Authorization": f"Bearer {secret}"}
    key = client.post("/api/api-keys", json={"name": "cron"}, headers=headers, environ_base=CLIENT).get_json()
    client.patch(f"/api/users/{user['user']['id']}", json={"role": "admin"}, headers=headers)  # no change: no entry
    client.post("/api/users", json={"name": "linus", "role": "viewer"}, headers=headers, environ_base=CLIENT)
    client.patch("/api/users/2", json={"role": "operator", "disabled": True}, headers=headers, environ_base=CLIENT)
    client.delete(f"/api/api-keys/{key['api_key']['id']}", headers=headers, environ_base=CLIENT)

    recorded = entries(app)

    assert [(event["actor"], event["action"], event["target_id"]) for event in recorded] == [
        ("anonymous", "user.create", "grace"),
        ("grace", "api_key.create", str(key["api_key"]["id"])),
        ("grace", "user.create", "linus"),
        ("grace", "user.update", "linus"),
        ("grace", "api_key.revoke", str(key["api_key"]["id"])),
    ]
    assert recorded[3]["details"] == {"role": {"from": "viewer", "to": "operator"}, "disabled": True}
    assert recorded[1]["details"]["prefix"] == key["key"][: len(recorded[1]["details"]["prefix"])]
    assert key["key"] not in str(recorded) and "pw" not in str([event["details"] for event in recorded])


def test_sign_ins_and_failed_ones_are_recorded(app, client):
    with app.app_context():
        accounts.create_user(db.session, name="ada", role=Role.VIEWER, password="pw")

    client.post("/login", data={"name": "ada", "password": "nope"}, environ_base=CLIENT, headers=AGENT)
    client.post("/login", data={"name": "ada", "password": "pw"}, environ_base=CLIENT, headers=AGENT)

    assert [(event["actor"], event["action"], event["ip"]) for event in entries(app)] == [
        ("anonymous", "session.sign_in_failed", "203.0.113.7"),
        ("ada", "session.sign_in", "203.0.113.7"),
    ]


@pytest.mark.parametrize(
    ("app_config", "recorded_ip"), [({"TRUSTED_PROXIES": 0}, "10.0.0.2"), ({"TRUSTED_PROXIES": 1}, "198.51.100.9")]
)
def test_the_address_comes_from_proxy_headers_only_behind_trusted_proxies(app, client, recorded_ip):
    client.post(
        "/api/users",
        json={"name": "grace", "role": "admin", "password": "pw"},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
        headers={"X-Forwarded-For": "192.0.2.1, 198.51.100.9"},
    )

    assert entries(app, "user.create")[0]["ip"] == recorded_ip


# Reading the trail -------------------------------------------------------------------------------------------


@pytest.fixture
def trail(app):
    """Six entries by two actors about two imports and a user, an hour apart from 2026-12-01 10:00."""
    from datetime import datetime, timedelta

    rows = [
        ("ada", "import.start", "import", "1"),
        ("ada", "import.cancel", "import", "1"),
        ("bob", "import.start", "import", "2"),
        ("bob", "user.create", "user", "=HYPERLINK(1)"),
        ("ada", "import.resume", "import", "1"),
        ("bob", "records.clear", None, None),
    ]
    with app.app_context():
        for hour, (actor, action, target_type, target_id) in enumerate(rows):
            db.session.add(
                AuditEvent(
                    at=datetime(2026, 12, 1, 10) + timedelta(hours=hour),
                    actor=actor,
                    role="admin",
                    ip="192.0.2.1",
                    user_agent="curl/8",
                    action=action,
                    target_type=target_type,
                    target_id=target_id,
                    details={"n": hour},
                )
            )
        db.session.commit()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [5, 4, 3, 2, 1, 0]),
        ("actor=ada", [4, 1, 0]),
        ("action=import.start", [2, 0]),
        ("action=import", [4, 2, 1, 0]),
        ("target=import", [4, 2, 1, 0]),
        ("target=import:1", [4, 1, 0]),
        ("since=2026-12-01T12:00:00", [5, 4, 3, 2]),
        ("until=2026-12-01T12:00:00Z", [1, 0]),
        ("since=2026-12-01T13:00:00%2B01:00&until=2026-12-01T14:00", [3, 2]),
        ("actor=bob&action=import", [2]),
        ("actor=nobody", []),
    ],
)
def test_the_trail_filters_by_actor_action_target_and_time_newest_first(client, trail, query, expected):
    body = client.get(f"/api/audit?{query}").get_json()

    assert [event["details"]["n"] for event in body["events"]] == expected
    assert body["total"] == len(expected)


def test_the_trail_pages(client, trail):
    page = client.get("/api/audit?limit=2&offset=2").get_json()

    assert [event["details"]["n"] for event in page["events"]] == [3, 2]
    assert page["total"] == 6


@pytest.mark.parametrize(
    "query", ["since=yesterday", "until=2026-13-01", "since=0001-01-01T00:00%2B01:00", "actor=a%00b", "limit=0"]
)
def test_bad_filters_get_a_400(client, query):
    response = client.get(f"/api/audit?{query}")

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_parameter"


def test_the_csv_has_every_matching_entry_oldest_first_with_formulas_defused(app, client, trail):
    app.config["EXPORT_BATCH_SIZE"] = 2  # several batches

    response = client.get("/api/audit.csv?actor=bob")

    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="audit.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["action"] for row in rows] == ["import.start", "user.create", "records.clear"]
    assert rows[1]["target_id"] == "'=HYPERLINK(1)"
    assert rows[0]["details"] == '{"n": 2}' and rows[0]["ip"] == "192.0.2.1" and rows[2]["target_type"] == ""


# Append-only ---------------------------------------------------------------------------------------------------


def test_the_app_offers_no_way_to_change_or_delete_an_entry(app):
    methods = {
        method
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/audit", "/audit"))
        for method in rule.methods
    }
    source_folder = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))

    assert methods <= {"GET", "HEAD", "OPTIONS"}
    # Nothing in the app updates or deletes the audit table.
    for folder, _dirs, files in os.walk(os.path.join(source_folder, "importdash")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    code = handle.read()
                for statement in ("delete(AuditEvent", "update(AuditEvent", "audit_events SET", "FROM audit_events"):
                    assert statement not in code, f"{name} changes audit entries ({statement})"


def test_on_postgresql_the_database_itself_refuses_to_change_an_entry(app, trail):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the trigger is PostgreSQL's; SQLite relies on the app alone")
        for statement in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
            with pytest.raises(DBAPIError, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
        assert db.session.query(AuditEvent).count() == 6
        assert db.session.query(ImportJob).count() == 0
