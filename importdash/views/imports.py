"""Start imports: the bundled sample, or an uploaded CSV in batch or stream mode."""
import os

from flask import Blueprint, current_app, request

from ..errors import ApiError, InvalidFile
from ..extensions import db
from ..models import JobMode
from ..runtime import get_runtime
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
