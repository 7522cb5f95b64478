"""The analytics page, its chart images and /api/analytics, through the Flask client."""

import re
from datetime import timedelta
from xml.etree import ElementTree

import pytest

from importdash.extensions import db
from importdash.models import JobRun, utcnow

SVG = "{http://www.w3.org/2000/svg}"
CHARTS = ["volume", "success-rate", "durations", "error-categories", "delivery-rate", "downstream-errors"]


@pytest.fixture
def app_config():
    return {"RATE_PER_SECOND": 5, "RECORDS_PER_CALL": 16}


@pytest.fixture
def finished_job(make_job):
    now = utcnow()
    job = make_job(
        created_at=now - timedelta(minutes=5),
        started_at=now - timedelta(minutes=5),
        completed_at=now - timedelta(minutes=4),
        status="completed",
        total_records=200,
        success_count=190,
        failed_count=10,
        duplicate_count=10,
    )
    run = JobRun(
        job_id=job.id, kind="import", owner="p", started_at=job.started_at, ended_at=job.completed_at, sent=190
    )
    db.session.add(run)
    db.session.commit()
    return job


def test_the_figures_cover_the_range_asked_for_and_the_configured_one_by_default(client, app, finished_job):
    default = client.get("/api/analytics").get_json()
    week = client.get("/api/analytics?days=7").get_json()

    assert default["range"]["days"] == app.config["ANALYTICS_DEFAULT_DAYS"] == len(default["days"])
    assert week["range"]["days"] == 7 == len(week["days"])
    assert week["totals"]["imports"] == 1 and week["totals"]["rows"] == 200
    assert week["days"][-1]["rate_used"] == round(190 / 60, 3)
    assert week["rate_allowed"] == 80  # RATE_PER_SECOND x RECORDS_PER_CALL


@pytest.mark.parametrize("days", ["8", "0", "-7", "seven", "30.0"])
def test_a_range_not_offered_is_a_400_naming_the_choices(client, days):
    response = client.get(f"/api/analytics?days={days}")

    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_parameter",
        "message": f"days must be one of 7, 30, 90; got {days!r}",
    }


@pytest.mark.parametrize("name", CHARTS)
def test_each_chart_is_an_svg_image_with_no_script_under_a_policy_of_its_own(client, finished_job, name):
    response = client.get(f"/analytics/charts/{name}.svg?days=7")

    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    root = ElementTree.fromstring(response.data)
    assert root.tag == f"{SVG}svg"
    assert not list(root.iter(f"{SVG}script")), "pygal's scripts must be taken out"
    assert not [element for element in root.iter() if element.get("style")], "no style attributes"
    policy = response.headers["Content-Security-Policy"]
    assert policy == "default-src 'none'; style-src 'unsafe-inline'"
    assert b"javascript" not in response.data.lower()


def test_a_chart_without_data_says_so_and_an_unknown_chart_is_a_404(client):
    empty = client.get("/analytics/charts/volume.svg")
    unknown = client.get("/analytics/charts/nothing.svg", headers={"Accept": "application/json"})

    assert b"No imports in this range" in empty.data
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "not_found"


def test_one_imports_rate_is_served_as_json_and_as_a_chart(client, finished_job):
    figures = client.get(f"/api/analytics/imports/{finished_job.id}").get_json()
    chart = client.get(f"/analytics/charts/imports/{finished_job.id}/throughput.svg")
    missing = client.get(f"/api/analytics/imports/{finished_job.id + 1}")

    assert figures["runs"] == [
        {
            "kind": "import",
            "start_seconds": 0.0,
            "end_seconds": 60.0,
            "sent": 190,
            "rows_per_second": round(190 / 60, 3),
            "running": False,
        }
    ]
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    assert f"Import #{finished_job.id}: rows per second".encode() in chart.data
    assert missing.status_code == 404


def test_the_page_shows_each_chart_as_an_image_and_the_range_links(client, finished_job):
    response = client.get("/analytics?days=7")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    images = re.findall(r'<img src="([^"]+)"', html)
    assert [f"/analytics/charts/{name}.svg?days=7" for name in CHARTS] == [
        src for src in images if "/charts/" in src and "imports" not in src
    ]
    assert f"/analytics/charts/imports/{finished_job.id}/throughput.svg" in images
    assert re.search(r'href="/analytics\?days=7"\s+aria-current="page"', html)
    assert "<script>" not in html and " style=" not in html  # the page keeps the CSP: no inline code


def test_the_page_refuses_an_unknown_import_and_a_bad_range(client, finished_job):
    assert client.get(f"/analytics?job={finished_job.id + 1}").status_code == 404
    assert client.get("/analytics?days=3").status_code == 400


def test_every_page_links_to_analytics_and_compare_and_a_job_page_to_compare_it(client, finished_job):
    dashboard = client.get("/").get_data(as_text=True)
    job_page = client.get(f"/imports/{finished_job.id}").get_data(as_text=True)

    for html in (dashboard, job_page):
        assert 'href="/analytics"' in html and 'href="/compare"' in html
    assert f'href="/compare?a={finished_job.id}"' in job_page


def test_phones_get_a_narrower_drawing_of_each_chart(client, finished_job):
    wide = ElementTree.fromstring(client.get("/analytics/charts/volume.svg").data)
    compact = ElementTree.fromstring(client.get("/analytics/charts/volume.svg?compact=1").data)
    html = client.get("/analytics").get_data(as_text=True)

    assert wide.get("viewBox") == "0 0 640 320" and compact.get("viewBox") == "0 0 400 320"
    assert '<source media="(max-width: 720px)" srcset="/analytics/charts/volume.svg?days=30&amp;compact=1"' in html
    assert client.get("/analytics/charts/volume.svg?compact=yes").status_code == 400
