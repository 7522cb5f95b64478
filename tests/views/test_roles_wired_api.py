"""The role matrix on the endpoints that came with templates, previews, the job page, pause and priority,
schedules, notifications, the downstream check and metrics: a viewer is refused (403, nothing written), the
least role allowed gets through, and each change it makes is in the audit trail under its name."""

import io

import pytest
from sqlalchemy import select

from importdash.extensions import db
from importdash.models import AuditEvent, NotificationDelivery
from importdash.roles import Role
from importdash.services import accounts

CSV = "name,email\nAda,ada@example.com\nGrace,grace@example.com\n"
AGENT = {"User-Agent": "roles-test/1.0"}


@pytest.fixture
def import_root(tmp_path):
    root = tmp_path / "feeds"
    root.mkdir()
    (root / "contacts.csv").write_text(CSV)
    return root


@pytest.fixture
def app_config(import_root):
    return {"IMPORT_ROOT": str(import_root)}


@pytest.fixture
def keys(app):
    """A Bearer key for one user of each role: {role: headers}."""
    found = {}
    with app.app_context():
        for role in Role:
            user = accounts.create_user(db.session, name=f"{role.value}-user", role=role, password="pw-long-enough")
            secret = accounts.issue_key(db.session, user=user, name="tests").secret
            found[role] = {"Authorization": f"Bearer {secret}"} | AGENT
    return found


def entries(app):
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [event.to_dict() for event in events]


def csv_upload():
    return {"file": (io.BytesIO(CSV.encode()), "contacts.csv")}


# What a viewer may not do, each with a request that would succeed for a role allowed to do it.
REFUSED = [
    ("DELETE", "/api/import/{job}", None),
    ("POST", "/api/import/{job}/pause", None),
    ("POST", "/api/import/{job}/unpause", None),
    ("POST", "/api/import/{job}/priority", {"priority": 5}),
    ("POST", "/api/import/preview", "upload"),
    ("POST", "/api/import/{job}/notifications/resend", None),
    ("POST", "/api/templates", {"name": "Viewer's"}),
    ("PUT", "/api/templates/{template}", {"name": "Renamed"}),
    ("DELETE", "/api/templates/{template}", None),
    ("POST", "/api/schedules", {"name": "N", "template": "Contacts", "source": "contacts.csv", "cron": "0 2 * * *"}),
    ("PUT", "/api/schedules/{schedule}", {"template": "Contacts", "source": "contacts.csv", "cron": "0 3 * * *"}),
    ("DELETE", "/api/schedules/{schedule}", None),
    ("POST", "/api/schedules/{schedule}/pause", None),
    ("POST", "/api/schedules/{schedule}/resume", None),
    ("POST", "/api/schedules/{schedule}/run", None),
    ("POST", "/api/downstream/check", None),
]


@pytest.fixture
def targets(app, client, keys, make_job):
    """An ended import, a template and a schedule for the requests to name."""
    admin = keys[Role.ADMIN]
    template = client.post("/api/templates", json={"name": "Contacts"}, headers=admin).get_json()["template"]
    schedule = client.post(
        "/api/schedules",
        json={"name": "Nightly", "template": "Contacts", "source": "contacts.csv", "cron": "0 2 * * *"},
        headers=admin,
    ).get_json()["schedule"]
    with app.app_context():
        job_id = make_job(status="completed").id
    return {"job": job_id, "template": template["id"], "schedule": schedule["id"]}


@pytest.mark.parametrize(("method", "path", "body"), REFUSED, ids=[f"{m} {p}" for m, p, _b in REFUSED])
def test_a_viewer_is_refused_every_change_and_nothing_is_recorded(app, client, keys, targets, method, path, body):
    before = len(entries(app))
    options = {"data": csv_upload()} if body == "upload" else {"json": body}

    response = client.open(path.format(**targets), method=method, headers=keys[Role.VIEWER], **options)

    assert response.status_code == 403, response.get_json()
    assert response.get_json()["error"]["code"] == "forbidden"
    assert len(entries(app)) == before


@pytest.mark.parametrize(
    "path", ["/api/templates", "/api/schedules", "/api/downstream", "/api/analytics", "/api/schedules/Nightly/runs"]
)
def test_a_viewer_reads_templates_schedules_the_downstream_and_analytics(client, keys, targets, path):
    assert client.get(path, headers=keys[Role.VIEWER]).status_code == 200


def test_an_operator_may_not_change_schedules(client, keys, targets):
    response = client.post(f"/api/schedules/{targets['schedule']}/pause", headers=keys[Role.OPERATOR])

    assert response.status_code == 403
    assert "admin" in response.get_json()["error"]["message"]


def test_an_operators_import_controls_are_each_recorded(app, client, keys, make_job):
    app.extensions["importdash"].claimer.stop()  # the waiting import stays waiting while it is paused
    operator = keys[Role.OPERATOR]
    with app.app_context():
        waiting, ended = make_job(status="pending").id, make_job(status="completed").id
        failed = {"target": "ops@example.com", "address": "ops@example.com", "status": "failed"}
        db.session.add(NotificationDelivery(job_id=ended, ending="completed", channel="email", **failed))
        db.session.commit()

    assert client.post(f"/api/import/{waiting}/pause", headers=operator).status_code == 200
    assert client.post(f"/api/import/{waiting}/priority", json={"priority": 7}, headers=operator).status_code == 200
    assert client.post(f"/api/import/{waiting}/unpause", headers=operator).status_code == 202
    assert client.post(f"/api/import/{ended}/notifications/resend", headers=operator).status_code == 202
    assert client.delete(f"/api/import/{ended}", headers=operator).status_code == 200

    recorded = [(e["action"], e["target_type"], e["target_id"], e["details"]) for e in entries(app)]
    assert recorded == [
        ("import.pause", "import", str(waiting), None),
        ("import.priority", "import", str(waiting), {"priority": 7}),
        ("import.unpause", "import", str(waiting), None),
        ("notifications.resend", "import", str(ended), {"resent": 1}),
        ("import.delete", "import", str(ended), {"records": 0, "errors": 0, "jobs": 1, "files": 0}),
    ]
    for event in entries(app):
        assert (event["actor"], event["role"], event["user_agent"]) == ("operator-user", "operator", "roles-test/1.0")


def test_an_operators_preview_start_from_it_templates_and_downstream_check_are_recorded(
    app, client, keys, wait_for_job
):
    operator = keys[Role.OPERATOR]

    preview = client.post("/api/import/preview", data=csv_upload(), headers=operator)
    assert preview.status_code == 200, preview.get_json()
    started = client.post(
        "/api/import/batch", data={"preview": preview.get_json()["preview"]["token"]}, headers=operator
    )
    assert started.status_code == 202, started.get_json()
    job_id = started.get_json()["job"]["id"]
    wait_for_job(job_id)
    created = client.post("/api/templates", json={"name": "CRM"}, headers=operator)
    template_id = created.get_json()["template"]["id"]
    assert client.put(f"/api/templates/{template_id}", json={"name": "CRM 2"}, headers=operator).status_code == 200
    assert client.delete("/api/templates/CRM 2", headers=operator).status_code == 204
    assert client.post("/api/downstream/check", headers=operator).status_code == 200

    recorded = [(e["actor"], e["action"], e["target_type"], e["target_id"], e["details"]) for e in entries(app)]
    assert recorded == [
        ("operator-user", "import.preview", None, None, {"source": "contacts.csv"}),
        (
            "operator-user",
            "import.start",
            "import",
            str(job_id),
            {"mode": "batch", "source": "contacts.csv", "template": None},
        ),
        ("operator-user", "template.create", "template", str(template_id), {"name": "CRM"}),
        ("operator-user", "template.update", "template", str(template_id), {"name": "CRM 2"}),
        ("operator-user", "template.delete", "template", str(template_id), {"name": "CRM 2"}),
        ("operator-user", "downstream.check", None, None, {"ok": True}),
    ]


def test_an_admins_schedule_changes_and_runs_are_recorded(app, client, keys, wait_for_job):
    admin = keys[Role.ADMIN]
    client.post("/api/templates", json={"name": "Contacts"}, headers=admin)
    before = len(entries(app))
    body = {"name": "Nightly", "template": "Contacts", "source": "contacts.csv", "cron": "0 2 * * *"}

    schedule_id = client.post("/api/schedules", json=body, headers=admin).get_json()["schedule"]["id"]
    replaced = client.put(f"/api/schedules/{schedule_id}", json=body | {"cron": "0 3 * * *"}, headers=admin)
    assert replaced.status_code == 200, replaced.get_json()
    assert client.post(f"/api/schedules/{schedule_id}/pause", headers=admin).status_code == 200
    assert client.post(f"/api/schedules/{schedule_id}/resume", headers=admin).status_code == 200
    run = client.post(f"/api/schedules/{schedule_id}/run", headers=admin)
    assert run.status_code == 201, run.get_json()
    job_id = run.get_json()["run"]["job"]["id"]
    wait_for_job(job_id)
    assert client.delete("/api/schedules/Nightly", headers=admin).status_code == 204

    recorded = [(e["action"], e["target_type"], e["target_id"], e["details"]) for e in entries(app)[before:]]
    target = str(schedule_id)
    assert recorded == [
        ("schedule.create", "schedule", target, {"name": "Nightly"}),
        ("schedule.update", "schedule", target, {"name": "Nightly"}),
        ("schedule.pause", "schedule", target, {"name": "Nightly"}),
        ("schedule.resume", "schedule", target, {"name": "Nightly"}),
        ("schedule.run", "schedule", target, {"name": "Nightly", "job_id": job_id, "error": None}),
        ("schedule.delete", "schedule", target, {"name": "Nightly"}),
    ]
    assert {event["actor"] for event in entries(app)[before:]} == {"admin-user"}


def test_metrics_take_any_signed_in_role_or_key_and_refuse_anyone_else(client, keys):
    assert client.get("/metrics", headers=keys[Role.VIEWER]).status_code == 200
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("app_config", [{"METRICS_PUBLIC": True}])
def test_public_metrics_need_no_credentials_once_users_exist(client, keys):
    assert client.get("/metrics").status_code == 200
