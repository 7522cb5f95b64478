"""Prometheus metrics: every worker's instruments and the database's totals, in Prometheus's text format."""

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..extensions import db
from ..runtime import get_runtime
from ..security import METRICS_PATH
from ..services.telemetry import scrape

bp = Blueprint("metrics", __name__)


@bp.get(METRICS_PATH)
def metrics():
    """Report the metrics for a Prometheus scrape (public with METRICS_PUBLIC, else behind the API's credentials)."""
    runtime = get_runtime()
    body = scrape(runtime.telemetry, db.session, breaker_open=runtime.deliverer.breaker.is_open)
    return Response(body, content_type=CONTENT_TYPE_LATEST)
