"""End to end: two real servers on one database both poll for due schedules; a due run starts exactly one import."""

import time
from datetime import timedelta

import httpx
import pytest
from servers import wait_for
from sqlalchemy import select

from importdash.extensions import db
from importdash.models import ImportJob, Schedule, ScheduleRun
from importdash.services.schedules import database_time

pytestmark = pytest.mark.scale

POLL_SECONDS = 0.2
ROWS = 50


def test_two_servers_run_a_due_schedule_once(servers, tmp_path):
    root = tmp_path / "feeds"
    root.mkdir()
    (root / "contacts.csv").write_text("name,email\n" + "".join(f"P{n},p{n}@example.com\n" for n in range(ROWS)))
    settings = {"IMPORT_ROOT": root, "SCHEDULE_POLL_SECONDS": POLL_SECONDS, "RATE_PER_SECOND": 0}
    first, second = servers.start("first", **settings), servers.start("second", **settings)

    # Hourly, half an hour away from now: no new due time comes while the test runs, so a second run is a bug.
    now = database_time(db.session)
    cron = f"{(now.minute + 30) % 60} * * * *"
    assert httpx.post(f"{first.url}/api/templates", json={"name": "Contacts"}).status_code == 201
    created = httpx.post(
        f"{second.url}/api/schedules",
        json={"name": "Feed", "template": "Contacts", "source": "*.csv", "cron": cron},
    )
    assert created.status_code == 201, created.text
    # As if both servers had been down for five hours: five due times missed, which they race for.
    schedule = db.session.scalar(select(Schedule))
    schedule.next_run_at = now - timedelta(hours=5)
    db.session.commit()

    def runs():
        db.session.expire_all()
        return db.session.scalars(select(ScheduleRun)).all()

    wait_for(lambda: runs() and runs()[0].outcome is not None, timeout=30, what="a server to run the schedule")
    job_id = runs()[0].job_id
    wait_for(
        lambda: httpx.get(f"{first.url}/api/import/{job_id}").json()["job"]["status"] == "completed",
        timeout=60,
        what="the scheduled import to complete",
    )
    # Ten more polls of each server: the due time, and the missed ones before it, never run again.
    time.sleep(10 * POLL_SECONDS)
    schedule = httpx.get(f"{first.url}/api/schedules/Feed").json()["schedule"]
    assert schedule["last_job_id"] == job_id and schedule["last_error"] is None
    history = httpx.get(f"{second.url}/api/schedules/Feed/runs").json()
    assert history["total"] == 1 and history["runs"][0]["job"]["success_count"] == ROWS
    assert [job.started_by for job in db.session.scalars(select(ImportJob))] == ["schedule:Feed"]
