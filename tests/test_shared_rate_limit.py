"""Two apps on one database (a server and `flask import` beside it, say) share one rate limit, end to end."""

import io

import pytest
from sqlalchemy import text

from importdash import create_app
from importdash.extensions import db
from importdash.runtime import get_runtime, stop_background
from importdash.services.downstream import SimulatedDownstream

RATE, BURST, ROWS = 20, 2, 30
# Call times are read in the simulator, after the bucket's grant; a window beats the limit only by more than this.
JITTER_SECONDS = 0.05


@pytest.fixture
def app_config():
    return {"RATE_PER_SECOND": RATE, "RATE_BURST": BURST, "RECORDS_PER_CALL": 1}


def recording(app):
    """Give the app's deliverer a simulated downstream that notes when each call came (time.monotonic)."""
    downstream = SimulatedDownstream(latency_ms=0, reject_domains="", record_calls=True)
    runtime = get_runtime(app)
    runtime.downstream = runtime.deliverer.downstream = downstream
    return downstream


def contacts(prefix):
    rows = "".join(f"Person {n},{prefix}{n}@example.com\n" for n in range(ROWS))
    return ("name,email\n" + rows).encode()


def start_import(app, prefix):
    response = app.test_client().post(
        "/api/import/batch",
        data={"file": (io.BytesIO(contacts(prefix)), f"{prefix}.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()["job"]["id"]


def worst_excess(times, window):
    times, worst, start = sorted(times), float("-inf"), 0
    for end, moment in enumerate(times):
        while moment - times[start] > window:
            start += 1
        worst = max(worst, end - start + 1 - (BURST + RATE * window))
    return worst


@pytest.mark.scale
def test_two_apps_on_one_database_share_one_limit(app, tmp_path, app_config):
    other = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": app.config["DATABASE_URL"],
            "UPLOAD_FOLDER": str(tmp_path / "other-uploads"),
            "SIMULATED_LATENCY_MS": 0,
            "PROGRESS_INTERVAL_SECONDS": 0.05,
        }
        | app_config
    )
    try:
        first_calls, other_calls = recording(app), recording(other)
        first_job, other_job = start_import(app, "first"), start_import(other, "other")
        get_runtime(app).runner.wait(first_job, timeout=60)
        get_runtime(other).runner.wait(other_job, timeout=60)

        times = first_calls.call_times + other_calls.call_times
        assert len(first_calls.call_times) == len(other_calls.call_times) == ROWS
        for window in (0.5, 1, 2):
            assert worst_excess(times, window) <= RATE * JITTER_SECONDS, window
        # One limit, not one each: the 60 calls took at least the shared bucket's minimum.
        assert max(times) - min(times) >= (2 * ROWS - BURST) / RATE * 0.98
        with app.app_context():
            names = db.session.execute(text("SELECT name FROM rate_limits")).scalars().all()
        assert names == ["simulated"]
    finally:
        stop_background(other, wait=True)
        with other.app_context():
            db.engine.dispose()
