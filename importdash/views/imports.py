"""Start imports: the bundled sample, or an uploaded CSV in batch or stream mode."""
import os

from flask import Blueprint, current_app, request

from ..errors import ApiError
from ..extensions import db
from ..models import JobMode
from ..runtime import get_runtime
from ..security import current_user
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
    config = current_app.config
    upload, options = (None, {}) if sample_only else _upload_form()
    options.update(started_by=current_user(), max_line_length=config["MAX_LINE_LENGTH"])
    if upload is None:
        path = config["SAMPLE_FILE"]
        job = create_import(db.session, mode=mode, path=path, source=os.path.basename(path), **options)
    else:
        path = store_upload(upload.stream, config["UPLOAD_FOLDER"])
        try:
            job = create_import(db.session, mode=mode, path=path, source=upload.filename, **options)
        except BaseException:
            os.remove(path)  # a refused file leaves nothing behind
            raise
    get_runtime().runner.submit(job.id)
    return {"job": job.to_dict()}, 202


def _upload_form():
    """Return the uploaded file (None: the sample) and the encoding and delimiter fields; 400 for anything else."""
    sent_body = request.content_length or request.headers.get("Transfer-Encoding")
    if sent_body and not (request.files or request.form):
        raise ApiError(
            "Send the CSV as a multipart/form-data upload in the field 'file' (curl -F file=@contacts.csv).",
            code="invalid_upload",
        )
    unknown = sorted((set(request.form) | set(request.files)) - {"file", "encoding", "delimiter"}, key=str)
    if unknown:
        noun = "field" if len(unknown) == 1 else "fields"
        names = ", ".join("(unnamed)" if name is None else repr(name) for name in unknown[:5])
        raise ApiError(
            f"Unknown form {noun} {names}; "
            "an upload takes the fields 'file', 'encoding' and 'delimiter'.",
            code="invalid_upload",
        )
    upload = request.files.get("file")
    if upload is None and "file" in request.form:
        raise ApiError("Send the CSV as a file in the multipart field 'file'.", code="invalid_upload")
    if upload is not None and not upload.filename:
        raise ApiError("The upload has no file name; choose a CSV file.", code="invalid_upload")
    return upload, {name: request.form.get(name) or None for name in ("encoding", "delimiter")}
