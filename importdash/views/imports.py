"""Start imports (the bundled sample, or an uploaded CSV in batch or stream mode), cancel them, retry them."""

import os

from flask import Blueprint, current_app, request

from .. import audit
from ..errors import ApiError
from ..extensions import db
from ..models import DuplicatePolicy, FileFormat, JobMode, JobStatus
from ..roles import Permission
from ..runtime import get_runtime
from ..security import current_user, require
from ..services import jobs
from ..services.mapping import ColumnMapping

# The form fields of an upload besides the file, each read as text and parsed by its function (None: as sent).
UPLOAD_FIELDS = {
    "encoding": None,
    "delimiter": None,
    "format": lambda value: _choice(FileFormat, "format", value),
    "sheet": None,
    "mapping": ColumnMapping.parse,
    "template": None,
    "duplicate_policy": lambda value: _choice(DuplicatePolicy, "duplicate_policy", value),
}

bp = Blueprint("imports", __name__, url_prefix="/api/import")


@bp.post("")
@require(Permission.START)
def start_default():
    """Start the default import of the bundled sample file."""
    return _start(JobMode.DEFAULT, sample_only=True)


@bp.post("/batch")
@require(Permission.START)
def start_batch():
    """Start a batch import of the uploaded file, or of the bundled sample when none is sent."""
    return _start(JobMode.BATCH)


@bp.post("/stream")
@require(Permission.START)
def start_stream():
    """Start a stream import of the uploaded file, or of the bundled sample when none is sent."""
    return _start(JobMode.STREAM)


@bp.post("/<id:job_id>/cancel")
@require(Permission.CANCEL)
def cancel(job_id):
    """Cancel an unfinished import: 200 once it has ended, 202 while its run stops at its next check."""
    runtime, lease_seconds = get_runtime(), current_app.config["LEASE_SECONDS"]
    job = jobs.cancel_job(db.session, job_id, runner=runtime.runner, broker=runtime.broker, lease_seconds=lease_seconds)
    audit.record(db.session, action="import.cancel", target=("import", job_id))
    return {"job": job.to_dict()}, 200 if JobStatus(job.status).is_terminal else 202


@bp.post("/<id:job_id>/retry")
@require(Permission.RETRY)
def retry(job_id):
    """Send a completed import's failed deliveries again; optional JSON {"category": "other"}."""
    body = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict):
        raise ApiError('Send JSON like {"category": "other"}, or no body.', code="invalid_body")
    job = jobs.retry_job(db.session, job_id, category=body.get("category"), runner=get_runtime().runner)
    audit.record(
        db.session, action="import.retry", target=("import", job_id), details={"category": body.get("category")}
    )
    return {"job": job.to_dict()}, 202


@bp.post("/<id:job_id>/resume")
@require(Permission.RESUME)
def resume(job_id):
    """Go on with a failed or cancelled import from where it stopped."""
    job = jobs.resume_job(db.session, job_id, runner=get_runtime().runner)
    audit.record(db.session, action="import.resume", target=("import", job_id))
    return {"job": job.to_dict()}, 202


def _start(mode, sample_only=False):
    config, runtime = current_app.config, get_runtime()
    key = _idempotency_key()
    upload, options = (None, {}) if sample_only else _upload_form()
    options.update(started_by=current_user(), max_line_length=config["MAX_LINE_LENGTH"], idempotency_key=key)
    try:
        if upload is None:
            path = config["SAMPLE_FILE"]
            job = jobs.create_job(
                db.session, runtime.broker, mode=mode, path=path, source=os.path.basename(path), **options
            )
        else:
            # The request is spooled to this machine's disk and checked there; only a file that passes goes on to
            # the store (the local store takes the spooled file as it is).
            path = jobs.spool_upload(upload.stream, config["UPLOAD_FOLDER"])
            try:
                job = jobs.create_job(
                    db.session,
                    runtime.broker,
                    mode=mode,
                    path=path,
                    source=upload.filename,
                    store_in=runtime.storage,
                    **options,
                )
            finally:
                if os.path.exists(path):
                    os.remove(path)  # a refused file, or a copy now in the store, leaves nothing behind
    except jobs.AlreadyStarted as already:
        return _replayed(already.job)
    audit.record(
        db.session,
        action="import.start",
        target=("import", job.id),
        details={"mode": job.mode, "source": job.source, "template": options.get("template")},
    )
    runtime.runner.submit(job.id)
    return {"job": job.to_dict()}, 202


def _idempotency_key():
    """The request's Idempotency-Key header: None when absent; 400 unless 1 to 255 printable ASCII characters."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not (1 <= len(key) <= 255 and key.isascii() and key.isprintable()):
        raise ApiError("Idempotency-Key must be 1 to 255 printable ASCII characters.", code="invalid_header")
    return key


def _replayed(job):
    """The answer to a request whose Idempotency-Key started a job already: that job, as it is now."""
    return {"job": job.to_dict()}, 200, {"Idempotent-Replayed": "true"}


def _upload_form():
    """Return the uploaded file (None: the sample) and the encoding and delimiter fields; 400 for anything else."""
    sent_body = request.content_length or request.headers.get("Transfer-Encoding")
    if sent_body and not (request.files or request.form):
        raise ApiError(
            "Send the CSV as a multipart/form-data upload in the field 'file' (curl -F file=@contacts.csv).",
            code="invalid_upload",
        )
    unknown = sorted((set(request.form) | set(request.files)) - {"file", *UPLOAD_FIELDS}, key=str)
    if unknown:
        noun = "field" if len(unknown) == 1 else "fields"
        names = ", ".join("(unnamed)" if name is None else repr(name) for name in unknown[:5])
        accepted = ", ".join(f"'{name}'" for name in ["file", *UPLOAD_FIELDS])
        raise ApiError(f"Unknown form {noun} {names}; an upload takes the fields {accepted}.", code="invalid_upload")
    upload = request.files.get("file")
    if upload is None and "file" in request.form:
        raise ApiError("Send the CSV as a file in the multipart field 'file'.", code="invalid_upload")
    if upload is not None and not upload.filename:
        raise ApiError("The upload has no file name; choose a CSV file.", code="invalid_upload")
    options = {}
    for name, parse in UPLOAD_FIELDS.items():
        value = request.form.get(name) or None
        options["file_format" if name == "format" else name] = value if value is None or parse is None else parse(value)
    return upload, options


def _choice(enum, field, value):
    """The enum member a form field names; 400 listing the choices otherwise."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ApiError(f"{field} must be one of {choices}; got {value!r}.", code="invalid_parameter") from None
