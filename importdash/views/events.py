"""Server-Sent Events: one job's progress, or every job's, pushed as it is committed."""

import math

from flask import Blueprint, Response, current_app

from ..errors import ApiError
from ..extensions import db
from ..runtime import get_runtime
from ..services import jobs
from ..services.broker import TooManySubscribers
from ..services.streams import JOB_FINISHED, sse_stream

bp = Blueprint("events", __name__, url_prefix="/api")


@bp.get("/import/<id:job_id>/events")
def job_events(job_id):
    """Stream one job: its current state, each change, and job.finished, after which the stream ends."""

    return _stream(job_id, lambda broker: jobs.job_snapshot(db.session, broker, job_id), final_event=JOB_FINISHED)


@bp.get("/events")
def all_events():
    """Stream every job: the newest imports (jobs.snapshot), then each job created, progressing or finished."""
    limit = current_app.config["DEFAULT_PAGE_SIZE"]
    return _stream(None, lambda broker: jobs.jobs_snapshot(db.session, broker, limit=limit))


def _stream(job_id, current_state, final_event=None):
    """Subscribe, then read the state the stream starts from, so that no change can fall between the two."""
    config = current_app.config
    broker = get_runtime().broker
    try:
        subscription = broker.subscribe(job_id)
    except TooManySubscribers:
        raise ApiError(
            "Too many live streams are open; try again shortly.",
            status_code=503,
            code="too_many_streams",
            headers={"Retry-After": str(max(1, math.ceil(config["SSE_RETRY_MS"] / 1000)))},
        ) from None
    try:
        first = current_state(broker)
    except BaseException:
        subscription.close()
        raise
    body = sse_stream(
        subscription,
        first,
        keepalive_seconds=config["SSE_KEEPALIVE_SECONDS"],
        retry_ms=config["SSE_RETRY_MS"],
        final_event=final_event,
    )
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx would otherwise hold events back in its buffer
    # A stream that never started (the client left first) must still give its place back.
    response.call_on_close(subscription.close)
    response.call_on_close(get_runtime().telemetry.count_streams(broker))
    return response
