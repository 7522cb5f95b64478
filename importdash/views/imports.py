"""Preview uploads, start imports (the bundled sample, an uploaded file, or a previewed one by its token, in batch
or stream mode), cancel, pause, unpause, prioritise, retry, resume or delete them."""

import os

from flask import Blueprint, current_app, request

from ..config import sample_imports_allowed
from ..errors import ApiError
from ..extensions import db
from ..models import DuplicatePolicy, FileFormat, JobMode, JobStatus
from ..runtime import get_runtime
from ..security import current_user
from ..services import jobs, previews
from ..services.mapping import ColumnMapping
from ..services.reader import FileLimits

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
# The form fields a start takes besides an upload's (a preview takes none of them).
START_FIELDS = {"priority": jobs.check_priority}

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


@bp.post("/<id:job_id>/cancel")
def cancel(job_id):
    """Cancel an unfinished import: 200 once it has ended, 202 while its run stops at its next check."""
    runtime = get_runtime()
    job = jobs.cancel_job(
        db.session,
        job_id,
        runner=runtime.runner,
        broker=runtime.broker,
        lease_seconds=current_app.config["LEASE_SECONDS"],
        notifications=runtime.notification_defaults,
    )
    return {"job": jobs.job_dict(db.session, job)}, 200 if JobStatus(job.status).is_terminal else 202


@bp.post("/<id:job_id>/pause")
def pause(job_id):
    """Pause an import that waits or runs: 200 once it is paused, 202 while its run stops at its next check."""
    runtime = get_runtime()
    job = jobs.pause_job(db.session, job_id, runner=runtime.runner, broker=runtime.broker)
    return {"job": jobs.job_dict(db.session, job)}, 200 if job.status == JobStatus.PAUSED.value else 202


@bp.post("/<id:job_id>/unpause")
def unpause(job_id):
    """Let a paused import wait for a runner again; it goes on from where it stopped."""
    runtime = get_runtime()
    job = jobs.unpause_job(db.session, job_id, runner=runtime.runner, broker=runtime.broker)
    return {"job": jobs.job_dict(db.session, job)}, 202


@bp.post("/<id:job_id>/priority")
def priority(job_id):
    """Give an import a new priority, JSON {"priority": n}; waiting imports with a higher one are claimed first."""
    jobs.get_job(db.session, job_id)  # no such import: 404, whatever the body
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "priority" not in body:
        raise ApiError('Send JSON like {"priority": 5}.', code="invalid_body")
    job = jobs.set_priority(db.session, job_id, priority=body["priority"], broker=get_runtime().broker)
    return {"job": jobs.job_dict(db.session, job)}


@bp.post("/<id:job_id>/retry")
def retry(job_id):
    """Send a completed import's failed deliveries again; optional JSON {"category": "other"}."""
    body = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict):
        raise ApiError('Send JSON like {"category": "other"}, or no body.', code="invalid_body")
    job = jobs.retry_job(db.session, job_id, category=body.get("category"), runner=get_runtime().runner)
    return {"job": jobs.job_dict(db.session, job)}, 202


@bp.post("/<id:job_id>/resume")
def resume(job_id):
    """Go on with a failed or cancelled import from where it stopped."""
    job = jobs.resume_job(db.session, job_id, runner=get_runtime().runner)
    return {"job": jobs.job_dict(db.session, job)}, 202


@bp.delete("/<id:job_id>")
def delete(job_id):
    """Delete an ended import with its records, error rows and uploaded file; 409 while it is unfinished."""
    runtime = get_runtime()
    deleted = jobs.delete_job(db.session, job_id, running=runtime.runner.active_jobs(), storage=runtime.storage)
    return {"deleted": deleted}


def _start(mode, sample_only=False):
    config, runtime = current_app.config, get_runtime()
    key = _idempotency_key()
    upload, token, options = (None, None, {}) if sample_only else _upload_form(START_FIELDS)
    options.update(
        started_by=current_user(),
        max_line_length=config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(config),
        idempotency_key=key,
    )
    try:
        if token is not None:
            # The upload kept by a preview, read the way it was previewed unless the request changes an option.
            preview = previews.get_preview(db.session, token)
            job = jobs.create_job(
                db.session,
                runtime.broker,
                mode=mode,
                path=preview.path,
                source=preview.source,
                store_in=runtime.storage,
                preview_token=token,
                **(previews.preview_options(preview) | options),
            )
        elif upload is None:
            if not sample_imports_allowed(config):
                raise ApiError(
                    "The bundled sample is demo data and a real downstream (webhook) is configured, so it is not "
                    "imported; upload a file, or set IMPORTDASH_DEMO=1 to allow the sample.",
                    status_code=403,
                    code="demo_import_disabled",
                )
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
    runtime.runner.submit(job.id)
    return {"job": jobs.job_dict(db.session, job)}, 202


@bp.post("/preview")
def preview():
    """Preview an uploaded file, or a previewed one again by its token with options changed; write no import."""
    config, runtime = current_app.config, get_runtime()
    upload, token, options = _upload_form()
    settings = previews.PreviewSettings.from_config(config)
    if token is not None:
        answer = previews.refresh_preview(
            db.session, token, changes=options, storage=runtime.storage, settings=settings
        )
        return {"preview": answer}
    if upload is None:
        raise ApiError(
            "Send the file to preview in the multipart field 'file', or a preview's token.", code="invalid_upload"
        )
    path = jobs.spool_upload(upload.stream, config["UPLOAD_FOLDER"])
    try:
        answer = previews.create_preview(
            db.session,
            path=path,
            source=upload.filename,
            options=options,
            storage=runtime.storage,
            settings=settings,
            created_by=current_user(),
        )
    finally:
        if os.path.exists(path):
            os.remove(path)  # a refused file, or a copy now in the store, leaves nothing behind
    return {"preview": answer}


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
    return {"job": jobs.job_dict(db.session, job)}, 200, {"Idempotent-Replayed": "true"}


def _upload_form(more_fields=None):
    """Return the uploaded file (None: the sample, or the preview's), the preview token and the upload fields
    sent (and more_fields, a start's), parsed; 400 for anything else."""
    fields = UPLOAD_FIELDS | (more_fields or {})
    sent_body = request.content_length or request.headers.get("Transfer-Encoding")
    if sent_body and not (request.files or request.form):
        raise ApiError(
            "Send the CSV as a multipart/form-data upload in the field 'file' (curl -F file=@contacts.csv).",
            code="invalid_upload",
        )
    unknown = sorted((set(request.form) | set(request.files)) - {"file", "preview", *fields}, key=str)
    if unknown:
        noun = "field" if len(unknown) == 1 else "fields"
        names = ", ".join("(unnamed)" if name is None else repr(name) for name in unknown[:5])
        accepted = ", ".join(f"'{name}'" for name in ["file", "preview", *fields])
        raise ApiError(f"Unknown form {noun} {names}; an upload takes the fields {accepted}.", code="invalid_upload")
    upload = request.files.get("file")
    if upload is None and "file" in request.form:
        raise ApiError("Send the CSV as a file in the multipart field 'file'.", code="invalid_upload")
    if upload is not None and not upload.filename:
        raise ApiError("The upload has no file name; choose a CSV file.", code="invalid_upload")
    token = request.form.get("preview") or None
    if token is not None and upload is not None:
        raise ApiError("Send either a file or a preview's token, not both.", code="invalid_upload")
    options = {}
    for name, parse in fields.items():
        if name not in request.form:
            continue  # not sent: the default (create_job's, or the preview's)
        value = request.form.get(name) or None
        options["file_format" if name == "format" else name] = value if value is None or parse is None else parse(value)
    return upload, token, options


def _choice(enum, field, value):
    """The enum member a form field names; 400 listing the choices otherwise."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ApiError(f"{field} must be one of {choices}; got {value!r}.", code="invalid_parameter") from None
