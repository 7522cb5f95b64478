"""The CLI's pause, unpause and priority commands, and import --priority, through click's runner."""

import io
from datetime import timedelta

from fakes import FakeClock

from importdash.cli import ProgressDisplay
from importdash.extensions import db
from importdash.models import ImportJob, utcnow


def fresh(job_id):
    db.session.expire_all()
    return db.session.get(ImportJob, job_id)


def test_pause_holds_a_waiting_import_and_unpause_lets_it_wait_again(app, runner, make_job):
    app.extensions["importdash"].claimer.stop()
    job_id = make_job(status="pending").id

    paused = runner.invoke(args=["pause", str(job_id)])

    assert paused.exit_code == 0, paused.output
    assert paused.output == f"Import #{job_id} is paused (importdash unpause {job_id} lets it go on).\n"
    assert fresh(job_id).status == "paused"
    again = runner.invoke(args=["pause", str(job_id)])
    assert again.exit_code == 1 and "is paused already" in again.output
    unpaused = runner.invoke(args=["unpause", str(job_id)])
    assert unpaused.exit_code == 0, unpaused.output
    assert f"Import #{job_id} waits for a free slot again" in unpaused.output
    assert fresh(job_id).status != "paused"
    refused = runner.invoke(args=["unpause", str(job_id)])
    assert refused.exit_code == 1 and "only a paused import can be unpaused" in refused.output


def test_pause_of_an_import_another_process_runs_asks_it_at_its_next_check(runner, make_job):
    job_id = make_job(status="processing", lease_owner="elsewhere:1:abc", lease_expires_at=later()).id

    result = runner.invoke(args=["pause", str(job_id)])

    assert result.exit_code == 0, result.output
    assert f"Import #{job_id} pauses at its next check" in result.output
    job = fresh(job_id)
    assert (job.status, job.pause_requested) == ("processing", True)


def later():
    return utcnow() + timedelta(minutes=5)


def test_priority_sets_an_imports_priority_and_refuses_one_out_of_range(runner, make_job):
    job_id = make_job(status="pending").id

    result = runner.invoke(args=["priority", str(job_id), "5"])

    assert result.exit_code == 0, result.output
    assert result.output == f"Import #{job_id} has priority 5.\n"
    assert fresh(job_id).priority == 5
    negative = runner.invoke(args=["priority", str(job_id), "--", "-2"])
    assert negative.exit_code == 0 and fresh(job_id).priority == -2
    out_of_range = runner.invoke(args=["priority", str(job_id), "11"])
    assert out_of_range.exit_code == 2 and "11 is not in the range -10<=x<=10" in out_of_range.output
    assert fresh(job_id).priority == -2
    missing = runner.invoke(args=["priority", "999", "1"])
    assert missing.exit_code == 1 and "No import #999" in missing.output


def test_import_starts_with_the_priority_given(runner, write_csv):
    path = write_csv("name,email\nAda,ada@example.com\n")

    result = runner.invoke(args=["import", str(path), "--priority", "4"])

    assert result.exit_code == 0, result.output
    assert db.session.query(ImportJob).one().priority == 4


def test_watching_a_paused_import_says_it_is_paused_and_how_it_goes_on():
    out = io.StringIO()
    display = ProgressDisplay(out, line_seconds=10, clock=FakeClock())
    job = {
        "id": 7,
        "status": "paused",
        "pause_requested": False,
        "total_records": 100,
        "processed_count": 40,
        "success_count": 40,
        "failed_count": 0,
        "cancelled_count": 0,
        "notice": None,
    }

    display.show(job)

    assert "paused" in out.getvalue() and "importdash unpause 7 lets it go on" in out.getvalue()
