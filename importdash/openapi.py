"""The OpenAPI 3.1 description of the JSON API, served at /api/openapi.json (tests hold it to the routes)."""

from .models import MAX_ID, DuplicatePolicy, ErrorCategory, FileFormat, JobMode, JobStatus, RecordStatus, RunOutcome
from .roles import Permission, Role
from .services.reader import DELIMITERS


def document(config, *, auth_required, users=False):
    """Return the OpenAPI document for this app's configuration: page sizes, whether the Basic user is configured
    (auth_required), and whether users exist, who send API keys or session cookies."""
    job_id = {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
    }
    limit = _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": config["MAX_PAGE_SIZE"]},
        f"Items per page (default {config['DEFAULT_PAGE_SIZE']}).",
    )
    offset = _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_ID}, "Items to skip (default 0).")
    category = _query("category", _enum(ErrorCategory), "Only errors of this category.")
    writes = {
        "403": _error(
            "A cross-site browser request (checked with Sec-Fetch-Site and Origin), or a caller whose role may not "
            "take this action (README, Roles)."
        )
    }

    paths = {
        "/api/import": {
            "get": _operation(
                "listImports",
                "List imports, newest first.",
                [limit, offset],
                {"200": _json("JobList", "A page of imports."), "400": _error("A bad paging parameter.")},
            ),
            "post": _operation(
                "startDefaultImport",
                "Start the default import of the bundled sample file.",
                [_IDEMPOTENCY_KEY],
                {
                    "202": _json("JobEnvelope", "The import was queued."),
                    "200": _REPLAYED,
                    "400": _error("The bundled sample file is missing or cannot be imported."),
                    **writes,
                },
            ),
        },
        "/api/import/batch": {"post": _upload_operation("startBatchImport", "batch", writes)},
        "/api/import/stream": {"post": _upload_operation("startStreamImport", "stream", writes)},
        "/api/import/{job_id}": {
            "get": _operation(
                "showImport",
                "Show one import with its error counts and its first errors.",
                [job_id],
                {"200": _json("JobDetail", "The import."), "404": _error("No such import.")},
            ),
        },
        "/api/import/{job_id}/errors": {
            "get": _operation(
                "listImportErrors",
                "Page through an import's errors, in row order.",
                [job_id, category, limit, offset],
                {
                    "200": _json("ErrorList", "A page of errors."),
                    "400": _error("A bad paging parameter or category."),
                    "404": _error("No such import."),
                },
            ),
        },
        "/api/import/{job_id}/reimported": {
            "get": _operation(
                "listReimportedRows",
                "Page through an import's cancelled or refused rows that a later import stored and delivers instead.",
                [job_id, limit, offset],
                {
                    "200": _json("ReimportedList", "A page of rows, in row order."),
                    "400": _error("A bad paging parameter."),
                    "404": _error("No such import."),
                },
            ),
        },
        "/api/import/{job_id}/errors.csv": {
            "get": _operation(
                "exportImportErrors",
                "Download every error of an import as CSV: row, category, message and the row's columns.",
                [job_id, category],
                {
                    "200": {
                        "description": (
                            "The errors, streamed; cells a spreadsheet would run as formulas are neutralised."
                        ),
                        "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    "400": _error("A bad category."),
                    "404": _error("No such import."),
                },
            ),
        },
        "/api/import/{job_id}/cancel": {
            "post": _operation(
                "cancelImport",
                "Stop a pending or running import; undelivered records end cancelled.",
                [job_id],
                {
                    "200": _json("JobEnvelope", "The import has ended cancelled."),
                    "202": _json("JobEnvelope", "The import is stopping at its next check."),
                    "404": _error("No such import."),
                    "409": _error("The import has already ended."),
                    **writes,
                },
            ),
        },
        "/api/import/{job_id}/resume": {
            "post": _operation(
                "resumeImport",
                "Go on with a failed or cancelled import from where it stopped: its undelivered and cancelled "
                "records go out, and its file is read on while the upload is kept.",
                [job_id],
                {
                    "202": _json("JobEnvelope", "The import is queued to go on."),
                    "404": _error("No such import."),
                    "409": _error("The import has not failed or been cancelled."),
                    **writes,
                },
            ),
        },
        "/api/import/{job_id}/retry": {
            "post": {
                **_operation(
                    "retryImport",
                    "Deliver again the records the downstream refused or that failed.",
                    [job_id],
                    {
                        "202": _json("JobEnvelope", "The retry was queued."),
                        "400": _error("A bad category."),
                        "404": _error("No such import."),
                        "409": _error("The import is still running, or has nothing to retry."),
                        **writes,
                    },
                ),
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"category": _enum(ErrorCategory)},
                                "additionalProperties": False,
                            }
                        }
                    },
                },
            },
        },
        "/api/import/{job_id}/events": {
            "get": _operation(
                "streamImportEvents",
                "Follow one import as Server-Sent Events: its state now, each change, then job.finished.",
                [job_id],
                {"200": _event_stream(), "404": _error("No such import."), "503": _too_many_streams()},
            ),
        },
        "/api/events": {
            "get": _operation(
                "streamEvents",
                "Follow every import as Server-Sent Events.",
                [],
                {"200": _event_stream(), "503": _too_many_streams()},
            ),
        },
        "/api/records": {
            "get": _operation(
                "listRecords",
                "Page through records, filtered by import, status or a search of email and name.",
                [
                    _query("job", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "Only this import's records."),
                    _query("status", _enum(RecordStatus), "Only records in this status."),
                    _query("q", {"type": "string", "pattern": "^[^\\u0000]*$"}, "Text to find in email or name."),
                    limit,
                    offset,
                ],
                {"200": _json("RecordList", "A page of records."), "400": _error("A bad filter or paging parameter.")},
            ),
            "delete": _operation(
                "deleteRecords",
                "Delete every record, error and import.",
                [{"name": "confirm", "in": "query", "required": True, "schema": {"const": "true"}}],
                {
                    "200": {
                        "description": "What was deleted.",
                        "content": {
                            "application/json": {
                                "schema": _object(
                                    deleted=_object(records=_INTEGER, errors=_INTEGER, jobs=_INTEGER, files=_INTEGER)
                                )
                            }
                        },
                    },
                    "400": _error("confirm=true is missing."),
                    "409": _error("An import is pending or running."),
                    **writes,
                },
            ),
        },
        **_accounts_paths(limit, offset, writes),
        "/api/openapi.json": {
            "get": _operation(
                "openapi",
                "This document.",
                [],
                {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            ),
        },
        "/health": {
            "get": {
                **_operation(
                    "health",
                    "Report whether the app and its database answer; never needs credentials.",
                    [],
                    {
                        "200": _json("Health", "The app and its database answer."),
                        "503": _json("Health", "The database is unreachable."),
                    },
                ),
                "security": [],
            },
        },
    }

    unavailable = {
        "description": "The database is not answering; try again after Retry-After seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    for path, operations in paths.items():
        for operation in operations.values():
            if path != "/health":
                operation["responses"].setdefault("503", unavailable)

    unauthorized = {
        "description": "Credentials are missing or wrong.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    for path, operations in paths.items():
        for operation in operations.values():
            # Accounts can be created while the app runs: from then on these need credentials.
            if path.startswith(ACCOUNT_PATHS):
                operation["responses"]["401"] = unauthorized

    if auth_required or users:
        unauthorized = {
            "description": "Credentials are missing or wrong.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for path, operations in paths.items():
            for operation in operations.values():
                if path != "/health":
                    operation["responses"]["401"] = unauthorized

    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "importdash",
            "version": "1",
            "description": "Import contact CSV files, validate and de-duplicate every row, and deliver them under a "
            'rate limit. Every error is {"error": {"code", "message"}}.',
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
    if auth_required or users:
        schemes = {"basic": {"type": "http", "scheme": "basic"}} if auth_required else {}
        if users:
            schemes["bearer"] = {"type": "http", "scheme": "bearer", "description": "An API key."}
            schemes["session"] = {
                "type": "apiKey",
                "in": "cookie",
                "name": "session",
                "description": "Signed in at /login.",
            }
        document["components"]["securitySchemes"] = schemes
        document["security"] = [{name: []} for name in schemes]
    return document


ACCOUNT_PATHS = ("/api/me", "/api/users", "/api/api-keys", "/api/audit")


def _accounts_paths(limit, offset, writes):
    """Who am I, users, API keys and the audit trail."""
    user_id = {
        "name": "user_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
    }
    key_id = {
        "name": "key_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
    }
    admins = {"403": _error("The caller is not an admin.")}
    role = {"type": "string", "enum": [role.value for role in Role]}
    text = {"type": "string", "pattern": "^[^\\u0000]*$"}
    audit_filters = [
        _query("actor", text, "Only this actor's entries (a user name, or cli:<login>)."),
        _query("action", text, "Only this action (import.start), or a family of them (import)."),
        _query("target", text, "Only entries about this: a type (import) or type:id (import:42)."),
        _query("since", _STRING, "Only entries at or after this ISO 8601 time (UTC unless it says)."),
        _query("until", _STRING, "Only entries before this ISO 8601 time (UTC unless it says)."),
    ]
    return {
        "/api/me": {
            "get": _operation(
                "me",
                "Who the request acts for, and what their role lets them do.",
                [],
                {"200": _json("Me", "The caller.")},
            )
        },
        "/api/users": {
            "get": _operation(
                "listUsers", "List every user (admins).", [], {"200": _json("UserList", "The users."), **admins}
            ),
            "post": {
                **_operation(
                    "createUser",
                    "Create a user (admins).",
                    [],
                    {
                        "201": _json("UserEnvelope", "The user was created."),
                        "400": _error("A bad name, role or password."),
                        "409": _error("The name is taken."),
                        **writes,
                    },
                ),
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "minLength": 1, "maxLength": 100},
                            "role": role,
                            "password": {
                                "type": ["string", "null"],
                                "minLength": 1,
                                "description": "None or left out: the user can only have API keys.",
                            },
                        },
                        "required": ["name"],
                        "additionalProperties": False,
                    }
                ),
            },
        },
        "/api/users/{user_id}": {
            "patch": {
                **_operation(
                    "updateUser",
                    "Change a user's role, or disable or enable them (admins).",
                    [user_id],
                    {
                        "200": _json("UserEnvelope", "The user as changed."),
                        "400": _error("A bad role or disabled value."),
                        "404": _error("No such user."),
                        "409": _error("The last enabled admin would be demoted or disabled."),
                        **writes,
                    },
                ),
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "properties": {"role": role, "disabled": {"type": "boolean"}},
                        "additionalProperties": False,
                    }
                ),
            }
        },
        "/api/api-keys": {
            "get": _operation(
                "listApiKeys",
                "List the caller's API keys; an admin sees everyone's, or one user's with ?user=.",
                [
                    _query(
                        "user", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "Only this user's keys (admins)."
                    )
                ],
                {
                    "200": _json("ApiKeyList", "The keys, newest first."),
                    "400": _error("A bad user id, or a caller that is not a user (the Basic user, an open app)."),
                },
            ),
            "post": {
                **_operation(
                    "createApiKey",
                    "Make an API key, returned this once; an admin may make one for another user.",
                    [],
                    {
                        "201": _json("NewApiKey", "The key."),
                        "400": _error("A bad name or user, or a caller that is not a user."),
                        "404": _error("No such user."),
                        **writes,
                    },
                ),
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "minLength": 1, "maxLength": 100},
                            "user": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                        },
                        "additionalProperties": False,
                    }
                ),
            },
        },
        "/api/api-keys/{key_id}": {
            "delete": _operation(
                "revokeApiKey",
                "Revoke an API key: one's own, or (admins) anyone's.",
                [key_id],
                {
                    "200": _json("ApiKeyEnvelope", "The key, revoked."),
                    "404": _error("No such key of the caller's."),
                    **writes,
                },
            )
        },
        "/api/audit": {
            "get": _operation(
                "listAuditEvents",
                "Page through the audit trail, newest first (admins).",
                [*audit_filters, limit, offset],
                {
                    "200": _json("AuditList", "A page of entries."),
                    "400": _error("A bad filter or paging parameter."),
                    **admins,
                },
            )
        },
        "/api/audit.csv": {
            "get": _operation(
                "exportAuditEvents",
                "Download the audit trail (with the same filters) as CSV, oldest first (admins).",
                audit_filters,
                {
                    "200": {
                        "description": "The entries as CSV, streamed.",
                        "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    "400": _error("A bad filter."),
                    **admins,
                },
            )
        },
    }


def _json_body(schema):
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    "description": "Any key of the caller's: a request repeated with the same key gets the job the first one "
    "started (200, Idempotent-Replayed: true) instead of starting another.",
}
_REPLAYED = {
    "description": "A job was started with this Idempotency-Key already: that job, as it is now.",
    "headers": {"Idempotent-Replayed": {"schema": {"type": "string", "const": "true"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobEnvelope"}}},
}


def _upload_operation(operation_id, mode, writes):
    return {
        **_operation(
            operation_id,
            f"Start a {mode} import of the uploaded CSV file, or of the bundled sample when no file is sent.",
            [_IDEMPOTENCY_KEY],
            {
                "202": _json("JobEnvelope", "The file was checked and its import queued."),
                "200": _REPLAYED,
                "400": _error(
                    "The file cannot be imported (not text, undecodable, a bad header, no rows), "
                    "or a bad encoding or delimiter."
                ),
                "413": _error("The upload is too large, or the form has too many parts."),
                **writes,
            },
        ),
        "requestBody": {
            "required": False,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "string", "format": "binary", "description": "The CSV file."},
                            "encoding": {
                                "type": "string",
                                "description": "The file's text encoding when it has no byte order mark "
                                "(UTF-8 when empty or omitted), for example cp1252, latin-1 or shift_jis.",
                            },
                            "delimiter": {
                                "type": "string",
                                "enum": ["", *DELIMITERS, *DELIMITERS.values()],
                                "description": "The field separator, as a character or by name; detected from "
                                "the header when empty or omitted.",
                            },
                        },
                        "additionalProperties": False,
                    }
                }
            },
        },
    }


def _operation(operation_id, summary, parameters, responses):
    operation = {"operationId": operation_id, "summary": summary, "responses": dict(responses)}
    if parameters:
        operation["parameters"] = parameters
    return operation


def _query(name, schema, description):
    """An optional query parameter; sent empty (?limit=) it counts as not sent, as HTML forms expect."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"anyOf": [schema, {"const": ""}]},
        "description": f"{description} Empty means not sent.",
    }


def _enum(choices):
    return {"type": "string", "enum": [choice.value for choice in choices]}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema_name, description):
    return {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _error(description):
    return _json("Error", description)


def _event_stream():
    return {
        "description": "A text/event-stream of named events (job.progress, job.finished) with JSON data: "
        '{"job": Job, "error_counts": ErrorCounts}.',
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }


def _too_many_streams():
    return {
        "description": "Too many open streams, or the database is not answering; try again after Retry-After.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _object(**properties):
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _nullable(schema):
    return {**schema, "type": [schema["type"], "null"]}


_INTEGER = {"type": "integer"}
_COUNT = {"type": "integer", "minimum": 0}
_STRING = {"type": "string"}
_TIMESTAMP = {"type": "string", "format": "date-time"}

_USER = _object(
    id=_INTEGER,
    name=_STRING,
    role={"type": "string", "enum": [role.value for role in Role]},
    disabled={"type": "boolean"},
    disabled_at=_nullable(_TIMESTAMP),
    created_at=_TIMESTAMP,
)
_API_KEY = _object(
    id=_INTEGER,
    user=_STRING,
    name=_STRING,
    prefix={"type": "string", "description": "The key's first characters, to tell keys apart."},
    created_at=_TIMESTAMP,
    last_used_at=_nullable(_TIMESTAMP),
    revoked={"type": "boolean"},
    revoked_at=_nullable(_TIMESTAMP),
)

_SCHEMAS = {
    "User": _USER,
    "UserList": _object(users={"type": "array", "items": _ref("User")}),
    "UserEnvelope": _object(user=_ref("User")),
    "ApiKey": _API_KEY,
    "ApiKeyList": _object(api_keys={"type": "array", "items": _ref("ApiKey")}),
    "ApiKeyEnvelope": _object(api_key=_ref("ApiKey")),
    "NewApiKey": _object(
        api_key=_ref("ApiKey"), key={"type": "string", "description": "The key itself, shown this once."}
    ),
    "Me": _object(
        user=_object(
            name=_STRING,
            role={"type": "string", "enum": [role.value for role in Role]},
            via={"type": "string", "enum": ["session", "api_key", "basic", "open"]},
            user_id=_nullable(_INTEGER),
        ),
        permissions={"type": "array", "items": {"type": "string", "enum": [p.value for p in Permission]}},
    ),
    "AuditEvent": _object(
        id=_INTEGER,
        at=_TIMESTAMP,
        actor=_STRING,
        role=_nullable(_STRING),
        ip=_nullable(_STRING),
        user_agent=_nullable(_STRING),
        action=_STRING,
        target_type=_nullable(_STRING),
        target_id=_nullable(_STRING),
        details={"type": ["object", "null"]},
    ),
    "AuditList": _object(events={"type": "array", "items": _ref("AuditEvent")}, total=_COUNT),
    "Error": _object(
        error={
            **_object(code=_STRING, message=_STRING),
            "properties": {
                "code": _STRING,
                "message": _STRING,
                "details": {
                    "type": "object",
                    "description": "What a client needs to act on the error, where the code has more: for "
                    "mapping_required, the file's columns and the suggested mapping.",
                },
            },
        }
    ),
    "Job": _object(
        id=_INTEGER,
        mode=_enum(JobMode),
        status=_enum(JobStatus),
        source=_STRING,
        started_by={"type": "string", "description": "Who started the import: the signed-in user, or anonymous."},
        idempotency_key={
            "type": ["string", "null"],
            "description": "The Idempotency-Key header of the request that started it.",
        },
        encoding={"type": "string", "description": "The encoding the file is read with."},
        delimiter={"type": "string", "enum": list(DELIMITERS)},
        file_format=_enum(FileFormat),
        sheet=_nullable({"type": "string", "description": "The workbook sheet read (xlsx)."}),
        mapping={
            "type": ["object", "null"],
            "description": "Which source columns give name, email and company, and which are kept as extra fields.",
        },
        duplicate_policy=_enum(DuplicatePolicy),
        template_id=_nullable({"type": "integer", "description": "The template the import was started with."}),
        total_records=_nullable(_COUNT),
        processed_count=_COUNT,
        success_count=_COUNT,
        failed_count=_COUNT,
        cancelled_count={
            "type": "integer",
            "minimum": 0,
            "description": "Records a cancel stopped before they were sent; processed = success + failed + cancelled.",
        },
        created_at=_TIMESTAMP,
        started_at=_nullable(_TIMESTAMP),
        completed_at=_nullable(_TIMESTAMP),
        duration_seconds=_nullable({"type": "number", "minimum": 0}),
        error=_nullable(_STRING),
        notice=_nullable({"type": "string", "description": "What delivery waits for, e.g. downstream unavailable."}),
        cancel_requested={"type": "boolean"},
        retries=_COUNT,
        last_retried_at=_nullable(_TIMESTAMP),
    ),
    "JobRun": _object(
        kind={"type": "string", "enum": ["import", "retry", "resume"]},
        started_at=_TIMESTAMP,
        ended_at=_nullable(_TIMESTAMP),
        outcome={"type": ["string", "null"], "enum": [*(outcome.value for outcome in RunOutcome), None]},
        reason=_nullable(_STRING),
        sent=_COUNT,
        succeeded=_COUNT,
        refused=_COUNT,
    ),
    "ErrorCounts": _object(**{category.value: _COUNT for category in ErrorCategory}),
    "RowError": _object(
        row=_INTEGER,
        category=_enum(ErrorCategory),
        message=_STRING,
        data={"type": ["object", "null"], "description": "The row as read: column name to value."},
    ),
    "Record": _object(
        id=_INTEGER,
        job_id=_INTEGER,
        row=_INTEGER,
        name=_STRING,
        email=_STRING,
        company=_nullable(_STRING),
        extra={"type": ["object", "null"], "description": "The row's other kept columns: column name to value."},
        version={"type": "integer", "minimum": 1, "description": "1, plus one for each update of the record."},
        status=_enum(RecordStatus),
        attempts=_COUNT,
        response={"type": ["object", "null"], "description": "What the downstream answered."},
    ),
    "JobEnvelope": _object(job=_ref("Job")),
    "JobDetail": _object(
        job=_ref("Job"),
        error_counts=_ref("ErrorCounts"),
        errors={"type": "array", "items": _ref("RowError"), "description": "The first errors, in row order."},
        runs={"type": "array", "items": _ref("JobRun"), "description": "Every run of the import, oldest first."},
    ),
    "JobList": _object(jobs={"type": "array", "items": _ref("Job")}, total=_COUNT),
    "ErrorList": _object(errors={"type": "array", "items": _ref("RowError")}, total=_COUNT),
    "RecordList": _object(records={"type": "array", "items": _ref("Record")}, total=_COUNT),
    "ReimportedList": _object(
        rows={
            "type": "array",
            "items": _object(
                row=_INTEGER,
                email=_STRING,
                status={"type": "string", "enum": [RecordStatus.CANCELLED.value, RecordStatus.FAILED.value]},
                imported_by=_object(job_id=_INTEGER, row=_INTEGER),
            ),
        },
        total=_COUNT,
    ),
    "Health": _object(
        status={"type": "string", "enum": ["ok", "degraded"]},
        database={"type": "string", "enum": ["ok", "unreachable"]},
    ),
}
