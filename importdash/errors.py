"""Domain exceptions and the one JSON error shape: {"error": {"code": ..., "message": ...}}, plus the fields an
error names for a client to act on (e.g. "job_id")."""

import logging

import click
from flask import jsonify, render_template, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a client can act on; carries its HTTP status and a stable code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message, *, status_code=None, code=None, headers=None, details=None):
        super().__init__(message)
        self.message = message
        self.details = details  # what a client needs to act on the error beyond the message, e.g. a file's columns
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def to_dict(self):
        error = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class InvalidFile(ApiError):
    """The uploaded or named file cannot be imported at all (bad header, empty, undecodable)."""

    code = "invalid_file"


class MappingRequired(InvalidFile):
    """The file's columns do not say confidently which give the name and the email: the client must map them.

    details holds the file's columns and the suggested mapping (services/mapping.py Match.to_json).
    """

    code = "mapping_required"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class SchemaError(click.ClickException):
    """The database's schema is not one this version can run on; the message says what was found and what to do.

    A ClickException, so a `flask` command whose app refuses to start prints the message alone.
    """


class SchemaOutOfDate(SchemaError):
    """A PostgreSQL database behind this version's schema, which only a person may upgrade (or AUTO_MIGRATE)."""


class UnknownSchema(SchemaError):
    """A database whose schema matches no revision this version knows: a newer version's, or not importdash's."""


def wants_json_response():
    """API paths and clients that prefer JSON get JSON; everyone else a small HTML page with a way back.

    Outside /api JSON must be preferred outright: a tie of qualities (Accept: */*, a missing header, a link opened
    by another program, JSON named beside */* at the same q) gets HTML.
    """
    if request.path.startswith("/api/") or request.path in ("/health", "/metrics"):  # the paths monitors read
        return True
    accept = request.accept_mimetypes
    return accept.quality("application/json") > accept.quality("text/html")


def error_response(error):
    """The error as JSON for API clients, or as a small HTML page for browsers."""
    if wants_json_response():
        response = jsonify(error.to_dict())
    else:
        response = render_template("error.html", error=error)
    return response, error.status_code, error.headers


def init_app(app):
    @app.errorhandler(ApiError)
    def handle_api_error(error):
        return error_response(error)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error):
        code = (error.name or "error").lower().replace(" ", "_")
        headers = dict(error.get_headers())
        headers.pop("Content-Type", None)
        message = error.description or error.name
        return error_response(ApiError(message, status_code=error.code or 500, code=code, headers=headers))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(SQLAlchemyTimeoutError)
    def handle_database_unavailable(error):
        # Connection refused, reset or timed out, a lock or statement timeout, an exhausted pool: the database
        # cannot answer now, which is no fault of the request. The log keeps the details.
        _roll_back()
        log.warning("database unavailable on %s %s: %s", request.method, request.path, error)
        retry_after = app.config["DATABASE_RETRY_AFTER_SECONDS"]
        message = f"The database is not answering right now; try again in {retry_after} s."
        return error_response(
            ApiError(message, status_code=503, code="database_unavailable", headers={"Retry-After": str(retry_after)})
        )

    @app.errorhandler(RequestEntityTooLarge)
    def handle_too_large(_error):
        return error_response(ApiError(_too_large_message(), status_code=413, code="request_entity_too_large"))

    @app.errorhandler(Exception)
    def handle_unexpected(error):
        _roll_back()
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = "An unexpected error occurred; it has been logged."
        return error_response(ApiError(message, status_code=500, code="internal_error"))


def _roll_back():
    """End the request's transaction; on a connection the database dropped, that may fail too (logged)."""
    from .extensions import db

    try:
        db.session.rollback()
    except Exception:
        log.warning("could not roll back the request's transaction", exc_info=True)


def _too_large_message():
    """Say which limit a 413 hit: the upload's size, or the form's parts."""
    limit = request.max_content_length
    if limit is not None and (request.content_length is None or request.content_length > limit):
        size = f"{limit / (1 << 20):g} MB" if limit >= 1 << 20 else f"{limit:,} bytes"
        return f"The upload is larger than {size}, the most this server accepts."
    return (
        f"The form is too large: at most {request.max_form_parts} parts, and fields other than the file "
        f"up to {request.max_form_memory_size:,} bytes each."
    )
