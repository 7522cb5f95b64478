"""GET /metrics through the Flask client: the text format, the database's totals, open streams, and who may read it."""

import base64

import pytest
from prometheus_client.parser import text_string_to_metric_families

from importdash.runtime import get_runtime

CREDENTIALS = {"Authorization": "Basic " + base64.b64encode(b"ada:s3cret").decode()}

# The duration histogram's labels for completed batch imports.
COMPLETED_IMPORTS = (("mode", "batch"), ("run", "import"), ("status", "completed"))


def scrape(client, **kwargs):
    """The scrape's samples by (name, sorted labels)."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def test_a_scrape_after_an_import_reports_its_calls_rows_and_duration(client, wait_for_job):
    job = wait_for_job(client.post("/api/import/batch").get_json()["job"]["id"])
    assert job["status"] == "completed"

    samples = scrape(client)

    assert samples[("importdash_jobs", (("status", "completed"),))] == 1
    assert samples[("importdash_queue_depth", ())] == 0
    assert samples[("importdash_rows", (("outcome", "succeeded"),))] == job["success_count"]
    assert samples[("importdash_rows", (("outcome", "failed"),))] == job["failed_count"]
    assert sum(value for (name, _), value in samples.items() if name == "importdash_row_errors") == job["failed_count"]
    records_per_call = client.application.config["RECORDS_PER_CALL"]
    calls = samples[("importdash_downstream_calls_total", (("downstream", "simulated"),))]
    assert calls >= job["success_count"] / records_per_call
    assert samples[("importdash_job_duration_seconds_count", COMPLETED_IMPORTS)] == 1
    assert samples[("importdash_downstream_breaker_open", (("downstream", "simulated"),))] == 0


def test_a_waiting_job_is_queue_depth(client, make_job):
    make_job(status="pending")

    samples = scrape(client)

    assert samples[("importdash_queue_depth", ())] == 1
    assert samples[("importdash_jobs", (("status", "pending"),))] == 1


def test_the_stream_gauge_goes_up_with_an_open_stream_and_down_after(app, client):
    assert scrape(client)[("importdash_sse_streams", ())] == 0

    response = client.get("/api/events", buffered=False)
    assert response.status_code == 200
    next(response.iter_encoded())  # the stream is open and sent its first frame

    assert scrape(client)[("importdash_sse_streams", ())] == 1
    response.close()
    assert get_runtime(app).broker.subscriber_count() == 0
    assert scrape(client)[("importdash_sse_streams", ())] == 0


@pytest.mark.parametrize("app_config", [dict(AUTH_USERNAME="ada", AUTH_PASSWORD="s3cret")])
def test_with_auth_on_metrics_need_the_apis_credentials(client):
    refused = client.get("/metrics")

    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"
    assert ("importdash_queue_depth", ()) in scrape(client, headers=CREDENTIALS)


@pytest.mark.parametrize("app_config", [dict(AUTH_USERNAME="ada", AUTH_PASSWORD="s3cret", METRICS_PUBLIC=True)])
def test_public_metrics_need_no_credentials_or_known_host(client):
    assert ("importdash_queue_depth", ()) in scrape(client, headers={"Host": "prometheus.internal"})
    assert client.get("/api/import").status_code == 401  # only /metrics is opened
