"""/api/schedules: create, list, show, replace, delete, pause, resume, run now and the runs' history; the
scheduler's round runs due schedules once (missed ones coalesced), whoever races for them."""

import http.server
import threading
from datetime import timedelta

import boto3
import pytest
from sqlalchemy import func, select

from importdash.extensions import db
from importdash.models import ImportJob, Schedule, ScheduleRun
from importdash.runtime import get_runtime
from importdash.services import schedules
from importdash.services.reader import FileLimits

CSV = "Name,Email\n" + "".join(f"P{n},p{n}@example.com\n" for n in range(20))


@pytest.fixture
def import_root(tmp_path):
    root = tmp_path / "feeds"
    root.mkdir()
    (root / "contacts.csv").write_text(CSV)
    (root / "broken.csv").write_text("just one column\nx\n")
    return root


@pytest.fixture
def app_config(import_root):
    return {"IMPORT_ROOT": str(import_root)}


@pytest.fixture
def template(client):
    response = client.post("/api/templates", json={"name": "Contacts", "delimiter": ","})
    assert response.status_code == 201
    return response.get_json()["template"]


def create(client, **fields):
    body = {"name": "Nightly", "template": "Contacts", "source": "contacts.csv", "cron": "0 2 * * *"} | fields
    return client.post("/api/schedules", json=body)


def test_a_schedule_is_created_listed_shown_replaced_paused_resumed_and_deleted(client, template):
    created = create(client, timezone="Europe/Berlin")
    assert created.status_code == 201, created.get_json()
    schedule = created.get_json()["schedule"]
    assert schedule | {"id": 0, "created_at": "", "next_run_at": ""} == {
        "id": 0,
        "name": "Nightly",
        "template": "Contacts",
        "template_id": template["id"],
        "source_kind": "path",
        "source": "contacts.csv",
        "mode": "batch",
        "cron": "0 2 * * *",
        "timezone": "Europe/Berlin",
        "paused": False,
        "created_by": "anonymous",
        "created_at": "",
        "last_run_at": None,
        "next_run_at": "",
        "last_job_id": None,
        "last_error": None,
    }
    assert schedule["next_run_at"].endswith("T01:00:00Z")  # 02:00 in Berlin, winter time
    assert client.get("/api/schedules").get_json() == {"schedules": [schedule]}
    assert client.get(f"/api/schedules/{schedule['id']}").get_json() == {"schedule": schedule}
    assert client.get("/api/schedules/Nightly").get_json() == {"schedule": schedule}

    replaced = client.put("/api/schedules/Nightly", json={**_fields(schedule), "cron": "30 6 * * *", "mode": "stream"})
    assert replaced.status_code == 200, replaced.get_json()
    assert replaced.get_json()["schedule"]["next_run_at"].endswith("T05:30:00Z")
    assert replaced.get_json()["schedule"]["mode"] == "stream"

    paused = client.post("/api/schedules/Nightly/pause").get_json()["schedule"]
    assert paused["paused"] is True and paused["next_run_at"] is None
    resumed = client.post("/api/schedules/Nightly/resume").get_json()["schedule"]
    assert resumed["paused"] is False and resumed["next_run_at"].endswith("T05:30:00Z")

    assert client.delete("/api/templates/Contacts").status_code == 409  # a schedule uses it
    assert client.delete("/api/schedules/Nightly").status_code == 204
    assert client.get("/api/schedules/Nightly").status_code == 404
    assert client.delete("/api/templates/Contacts").status_code == 204


def _fields(schedule):
    return {field: schedule[field] for field in ("name", "template", "source", "cron", "timezone")}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "every day"}, "five fields"),
        ({"cron": "0 25 * * *"}, "five fields"),
        ({"timezone": "Europe/Atlantis"}, "IANA time zone"),
        ({"template": "Nope"}, "No template 'Nope'"),
        ({"template": True}, "template must name"),
        ({"source": "../etc/passwd"}, "'..'"),
        ({"source": "/etc/passwd"}, "under IMPORTDASH_IMPORT_ROOT"),
        ({"source": "ftp://host/x.csv", "source_kind": "url"}, "http:// or https://"),
        ({"source_kind": "smb"}, "source_kind must be one of"),
        ({"mode": "default"}, "mode must be batch or stream"),
        ({"paused": "yes"}, "paused must be true or false"),
        ({"name": "12"}, "not only digits"),
        ({"colour": "red"}, "Unknown schedule field 'colour'"),
    ],
)
def test_bad_fields_are_a_400_naming_them(client, template, fields, message):
    response = create(client, **fields)
    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"]


def test_a_body_that_is_not_a_json_object_is_a_400_and_a_taken_name_a_409(client, template):
    assert client.post("/api/schedules", data="x").get_json()["error"]["code"] == "invalid_body"
    assert create(client).status_code == 201
    assert create(client, name="nightly").status_code == 409


def test_path_sources_are_refused_without_an_import_root(app, client, template):
    app.config["IMPORT_ROOT"] = None
    response = create(client)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "path_sources_disabled"


def test_run_now_imports_the_file_with_the_template_as_the_schedule(client, template, wait_for_job):
    create(client)
    response = client.post("/api/schedules/Nightly/run")
    assert response.status_code == 201, response.get_json()
    run = response.get_json()["run"]
    assert run["outcome"] == "started" and run["error"] is None
    job = wait_for_job(run["job"]["id"])
    assert job["status"] == "completed" and job["success_count"] == 20
    assert job["started_by"] == "schedule:Nightly" and job["template_id"] == template["id"]
    assert job["source"] == "contacts.csv"
    schedule = response.get_json()["schedule"]
    assert schedule["last_job_id"] == job["id"] and schedule["last_run_at"] == run["due_at"]

    history = client.get("/api/schedules/Nightly/runs").get_json()
    assert history["total"] == 1
    assert history["runs"][0]["job"] | {"status": ""} == {
        "id": job["id"],
        "status": "",
        "source": "contacts.csv",
        "total_records": 20,
        "processed_count": 20,
        "success_count": 20,
        "failed_count": 0,
    }
    assert history["runs"][0]["job"]["status"] == "completed"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.csv", "No file matches 'missing.csv'"),
        ("broken.csv", "email"),  # a file the check refuses: its columns give no email
        ("https://127.0.0.1:9/contacts.csv", "private, loopback"),
    ],
)
def test_a_failing_source_ends_its_run_with_a_readable_error_and_the_schedule_goes_on(
    client, template, source, message
):
    create(client, source=source)
    before = client.get("/api/schedules/Nightly").get_json()["schedule"]
    response = client.post("/api/schedules/Nightly/run")
    assert response.status_code == 200
    run, schedule = response.get_json()["run"], response.get_json()["schedule"]
    assert run["outcome"] == "failed" and run["job"] is None and message in run["error"]
    assert schedule["last_error"] == run["error"] and schedule["next_run_at"] == before["next_run_at"]
    assert "Traceback" not in run["error"] and "/tmp" not in run["error"]
    assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_a_later_good_run_clears_the_last_error(client, template, import_root, wait_for_job):
    create(client, source="later.csv")
    assert client.post("/api/schedules/Nightly/run").get_json()["schedule"]["last_error"]
    (import_root / "later.csv").write_text(CSV)
    response = client.post("/api/schedules/Nightly/run").get_json()
    assert response["schedule"]["last_error"] is None
    wait_for_job(response["run"]["job"]["id"])


def make_due(name, minutes_ago):
    """Move a schedule's next run into the past, as if no server ran since."""
    schedule = db.session.scalar(select(Schedule).where(Schedule.name == name))
    now = schedules.database_time(db.session)
    schedule.next_run_at = now - timedelta(minutes=minutes_ago)
    db.session.commit()
    return now


def test_the_scheduler_runs_missed_due_times_once_then_waits_for_the_next(app, client, template, wait_for_job):
    create(client, cron="*/5 * * * *")
    now = make_due("Nightly", minutes_ago=62)  # about a dozen due times missed
    job_ids = get_runtime(app).scheduler.tick()
    assert len(job_ids) == 1
    assert get_runtime(app).scheduler.tick() == []
    wait_for_job(job_ids[0])
    runs = db.session.scalars(select(ScheduleRun)).all()
    assert [(run.job_id, run.outcome) for run in runs] == [(job_ids[0], "started")]
    assert now - timedelta(minutes=5) < runs[0].due_at <= now and runs[0].due_at.minute % 5 == 0
    schedule = client.get("/api/schedules/Nightly").get_json()["schedule"]
    assert schedule["next_run_at"] > schedule["last_run_at"]


def test_a_paused_schedule_is_not_run(app, client, template):
    create(client, paused=True)
    assert client.get("/api/schedules/Nightly").get_json()["schedule"]["next_run_at"] is None
    assert get_runtime(app).scheduler.tick() == []


def test_claimers_racing_for_one_due_run_start_one_import(app, client, template):
    create(client)
    now = make_due("Nightly", minutes_ago=1)
    runtime = get_runtime(app)
    racers = 4
    barrier = threading.Barrier(racers)
    results, errors = [], []

    def race(number):
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                runs = schedules.run_due(
                    db.session,
                    now=now,
                    owner=f"racer-{number}",
                    fetch=runtime.fetch,
                    broker=runtime.broker,
                    storage=runtime.storage,
                    max_line_length=app.config["MAX_LINE_LENGTH"],
                    file_limits=FileLimits.from_config(app.config),
                )
                results.append([run.job_id for run in runs])
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=race, args=(number,)) for number in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(len(job_ids) for job_ids in results) == [0] * (racers - 1) + [1]
    assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 1
    assert db.session.scalar(select(func.count()).select_from(ScheduleRun)) == 1


class _FeedHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the standard library's name
        if self.path == "/old":
            self.send_response(302)
            self.send_header("Location", "/contacts.csv")
            self.end_headers()
            return
        if self.path != "/contacts.csv":
            self.send_error(404)
            return
        body = CSV.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def feed():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_loopback_url_is_fetched_when_private_urls_are_allowed(app, client, template, feed, wait_for_job):
    create(client, source=f"{feed}/old")
    refused = client.post("/api/schedules/Nightly/run").get_json()["run"]
    assert refused["outcome"] == "failed" and "IMPORTDASH_SCHEDULE_ALLOW_PRIVATE_URLS" in refused["error"]

    get_runtime(app).fetch.allow_private_urls = True  # as IMPORTDASH_SCHEDULE_ALLOW_PRIVATE_URLS=true does
    run = client.post("/api/schedules/Nightly/run").get_json()["run"]
    assert run["outcome"] == "started", run
    job = wait_for_job(run["job"]["id"])
    assert job["status"] == "completed" and job["success_count"] == 20 and job["source"] == "contacts.csv"

    client.put(
        "/api/schedules/Nightly",
        json={"name": "Nightly", "template": "Contacts", "source": f"{feed}/gone", "cron": "0 2 * * *"},
    )
    missing = client.post("/api/schedules/Nightly/run").get_json()["run"]
    assert missing["outcome"] == "failed" and missing["error"] == "The URL answered HTTP 404; expected 200 and a file."


def test_an_s3_object_is_fetched_with_the_configured_settings(app, client, template, s3_server, wait_for_job):
    get_runtime(app).fetch.s3_endpoint_url = s3_server["S3_ENDPOINT_URL"]
    s3 = boto3.client("s3", endpoint_url=s3_server["S3_ENDPOINT_URL"])
    s3.put_object(Bucket=s3_server["S3_BUCKET"], Key="feeds/crm.csv", Body=CSV.encode())
    create(client, source=f"s3://{s3_server['S3_BUCKET']}/feeds/crm.csv")
    run = client.post("/api/schedules/Nightly/run").get_json()["run"]
    assert run["outcome"] == "started", run
    job = wait_for_job(run["job"]["id"])
    assert job["status"] == "completed" and job["success_count"] == 20 and job["source"] == "crm.csv"

    client.put(
        "/api/schedules/Nightly",
        json={
            "name": "Nightly",
            "template": "Contacts",
            "source": f"s3://{s3_server['S3_BUCKET']}/feeds/none.csv",
            "cron": "0 2 * * *",
        },
    )
    missing = client.post("/api/schedules/Nightly/run").get_json()["run"]
    assert missing["outcome"] == "failed" and missing["error"].startswith("No S3 object s3://")


def test_clearing_the_records_keeps_the_schedule_and_its_runs_without_their_imports(client, template, wait_for_job):
    create(client)
    run = client.post("/api/schedules/Nightly/run").get_json()["run"]
    wait_for_job(run["job"]["id"])
    assert client.delete("/api/records?confirm=true").status_code == 200
    assert client.get("/api/schedules/Nightly").get_json()["schedule"]["last_job_id"] is None
    history = client.get("/api/schedules/Nightly/runs").get_json()
    assert history["total"] == 1 and history["runs"][0]["job"] is None and history["runs"][0]["outcome"] == "started"


def test_a_run_whose_server_died_while_fetching_is_ended_after_the_abandoned_time(app, client, template):
    create(client)
    schedule = db.session.scalar(select(Schedule))
    now = schedules.database_time(db.session)
    age = app.config["SCHEDULE_ABANDONED_RUN_SECONDS"]
    # Claimed by a process that died before it fetched: no outcome, no import.
    old = ScheduleRun(
        schedule_id=schedule.id,
        due_at=now - timedelta(seconds=age + 60),
        claimed_by="gone",
        claimed_at=now - timedelta(seconds=age + 1),
    )
    recent = ScheduleRun(
        schedule_id=schedule.id,
        due_at=now - timedelta(seconds=30),
        claimed_by="busy",
        claimed_at=now - timedelta(seconds=30),
    )
    db.session.add_all([old, recent])
    db.session.commit()

    get_runtime(app).scheduler.tick()

    runs = {run["claimed_by"]: run for run in client.get("/api/schedules/Nightly/runs").get_json()["runs"]}
    assert runs["gone"]["outcome"] == "failed" and runs["gone"]["error"] == schedules.ABANDONED_RUN_ERROR
    assert runs["busy"]["outcome"] is None and runs["busy"]["error"] is None
