"""End to end: /metrics of a real gunicorn with two workers sums what every worker did (multiprocess mode)."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from scripted_downstream import Reply
from servers import wait_for
from sqlalchemy import select

from importdash.extensions import db
from importdash.models import JobRun

IMPORTS = 4
ROWS = 60  # per import; each 10th has no email
SCRAPES = 8  # new connections, so both workers answer some

# The duration histogram's labels for completed batch imports.
COMPLETED_IMPORTS = (("mode", "batch"), ("run", "import"), ("status", "completed"))


def scrape(server):
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def start_import(server, path):
    with path.open("rb") as handle:
        response = httpx.post(f"{server.url}/api/import/batch", files={"file": (path.name, handle)}, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["job"]["id"]


@pytest.fixture
def server(downstream_server, servers):
    downstream_server.rule = lambda records: Reply(delay=0.02)  # an import takes long enough for the other worker
    return servers.start(
        "server",
        WORKERS=2,
        MAX_JOBS=1,  # one import per worker at a time: the waiting ones go to whichever worker is free
        DOWNSTREAM="webhook",
        WEBHOOK_URL=downstream_server.url,
        RATE_PER_SECOND=0,
        RECORDS_PER_CALL=3,
        CLAIM_POLL_SECONDS=0.1,
        SSE_KEEPALIVE_SECONDS=0.2,  # a stream's worker finds its client gone at the next keep-alive
    )


def test_counters_are_summed_across_workers_and_jobs_by_status_are_the_databases(server, downstream_server, write_csv):
    def contacts(i):
        rows = [f"P {n},{'' if n % 10 == 9 else f'p{n}-{i}@example.com'}" for n in range(ROWS)]
        return write_csv("name,email\n" + "\n".join(rows) + "\n", f"contacts{i}.csv")

    job_ids = [start_import(server, contacts(i)) for i in range(IMPORTS)]

    def all_completed():
        statuses = [
            httpx.get(f"{server.url}/api/import/{job_id}", timeout=5).json()["job"]["status"] for job_id in job_ids
        ]
        return statuses == ["completed"] * IMPORTS

    wait_for(all_completed, timeout=60, what="the imports to complete", server=server)
    owners = set(db.session.scalars(select(JobRun.owner)))
    assert len({owner.split(":")[1] for owner in owners}) == 2, "both workers should have run imports"

    calls = len(downstream_server.calls)
    valid = IMPORTS * (ROWS - ROWS // 10)
    for _ in range(SCRAPES):
        samples = scrape(server)
        assert samples[("importdash_downstream_calls_total", (("downstream", "webhook"),))] == calls
        assert samples[("importdash_job_duration_seconds_count", COMPLETED_IMPORTS)] == IMPORTS
        assert samples[("importdash_jobs", (("status", "completed"),))] == IMPORTS
        assert samples[("importdash_jobs", (("status", "pending"),))] == 0
        assert samples[("importdash_queue_depth", ())] == 0
        assert samples[("importdash_rows", (("outcome", "succeeded"),))] == valid
        assert samples[("importdash_row_errors", (("category", "missing_value"),))] == IMPORTS * (ROWS // 10)


def test_the_stream_gauge_counts_an_open_stream_in_any_worker(server):
    assert scrape(server)[("importdash_sse_streams", ())] == 0

    with httpx.stream("GET", f"{server.url}/api/events", timeout=10) as stream:
        frames = stream.iter_bytes()  # kept: a generator collected as garbage would close the stream
        next(frames)  # the stream is open: its first frame arrived
        for _ in range(SCRAPES):
            assert scrape(server)[("importdash_sse_streams", ())] == 1

    wait_for(lambda: scrape(server)[("importdash_sse_streams", ())] == 0, timeout=10, what="the stream to close")
