"""Start imports (the bundled sample, or an uploaded CSV in batch or stream mode), cancel them, retry them."""
import os

from flask import Blueprint, current_app, request

from ..errors import ApiError, InvalidFile
from ..extensions import db
from ..models import JobMode, JobStatus
from ..runtime import get_runtime
from ..services.controls import cancel_import, retry_import
from ..services.imports import create_import, store_upload

bp = Blueprint("imports", __name__, url_prefix="/api/import")


@bp.post("")
def start_default():
    """Start the default import of the bundled sample file."""
    return _start(JobMode.DEFAULT, sample_only=True)


@bp.post("/batch")
def start_batch():
    """Start a batch import of the uploaded file, or of the bundled sample when none is sent."""
    return _start(JobMode.BATCH)


@bp.post("/stream")
def start_stream():
    """Start a stream import of the uploaded file, or of the bundled sample when none is sent."""
    return _start(JobMode.STREAM)


@bp.post("/<int:job_id>/cancel")
def cancel(job_id):
    """Cancel an unfinished import: 200 once it has ended, 202 while its run stops at its next check."""
    runtime, lease_seconds = get_runtime(), current_app.config["LEASE_SECONDS"]
    job = cancel_import(db.session, job_id, runner=runtime.runner, broker=runtime.broker, lease_seconds=lease_seconds)
    return {"job": job.to_dict()}, 200 if JobStatus(job.status).is_terminal else 202


@bp.post("/<int:job_id>/retry")
def retry(job_id):
    """Send a completed import's failed deliveries again; optional JSON {"category": "other"}."""
    body = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict):
        raise ApiError('Send JSON like {"category": "other"}, or no body.', code="invalid_body")
    job = retry_import(db.session, job_id, category=body.get("category"), runner=get_runtime().runner)
    return {"job": job.to_dict()}, 202


def _start(mode, sample_only=False):
    broker = get_runtime().broker
    upload = None if sample_only else request.files.get("file")
    if upload is None and not sample_only and request.files:
        raise ApiError("Send the CSV as the multipart field 'file'.", code="invalid_upload")
    if upload is None:
        path = current_app.config["SAMPLE_FILE"]
        job = create_import(db.session, broker, mode=mode, path=path, source=os.path.basename(path))
    else:
        if not upload.filename:
            raise ApiError("The upload has no file name; choose a CSV file.", code="invalid_upload")
        path = store_upload(upload.stream, current_app.config["UPLOAD_FOLDER"])
        try:
            job = create_import(db.session, broker, mode=mode, path=path, source=os.path.basename(upload.filename))
        except InvalidFile:
            os.remove(path)
            raise
    get_runtime().runner.submit(job.id)
    return {"job": job.to_dict()}, 202
