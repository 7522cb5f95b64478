"""The OpenAPI 3.1 description of the JSON API, served at /api/openapi.json (tests hold it to the routes)."""

from .models import (
    DEFAULT_PRIORITY,
    MAX_ID,
    MAX_PRIORITY,
    MAX_SEARCH_LENGTH,
    MIN_PRIORITY,
    DeliveryChannel,
    DeliveryStatus,
    DuplicatePolicy,
    Ending,
    ErrorCategory,
    FileFormat,
    JobMode,
    JobOutcome,
    JobStatus,
    RecordStatus,
    RunKind,
    RunOutcome,
    ScheduleOutcome,
    SourceKind,
)
from .roles import Permission, Role
from .services.analytics import RANGES_DAYS
from .services.compare import Difference
from .services.previews import CATEGORIES as PREVIEW_CATEGORIES
from .services.reader import DELIMITERS


def document(config, *, auth_required, users=False):
    """Return the OpenAPI document for this app's configuration: page sizes, whether the Basic user is configured
    (auth_required), whether users exist, who send API keys or session cookies, and whether /metrics is public."""
    public = {"/health"} | ({"/metrics"} if config["METRICS_PUBLIC"] else set())
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
    compared = [
        {
            "name": name,
            "in": "query",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            "description": f"Import {name.upper()}'s id.",
        }
        for name in ("a", "b")
    ]

    paths = {
        "/api/import": {
            "get": _operation(
                "listImports",
                "List imports: pending and processing ones first, then the others, each newest first.",
                [
                    _query("status", _enum(JobStatus), "Only imports with this status."),
                    _query("mode", _enum(JobMode), "Only imports started in this mode."),
                    _query(
                        "q",
                        {"type": "string", "maxLength": MAX_SEARCH_LENGTH, "pattern": "^[^\\u0000]*$"},
                        "Only imports whose file name contains this (any case).",
                    ),
                    limit,
                    offset,
                ],
                {
                    "200": _json("JobList", "A page of imports and how many match in all."),
                    "400": _error("A bad paging parameter, status or mode."),
                },
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
                    "403": _error(_CROSS_SITE_OR_DEMO),
                },
            ),
        },
        "/api/import/preview": {
            "post": {
                **_operation(
                    "previewImport",
                    "Preview an uploaded file, or a previewed one again by its token with the options sent changed "
                    "(the others stay): the mapping found or what must be mapped, the first rows as mapped, the "
                    "category counts of the whole file and the delivery time at the rate limit. No import, record "
                    "or error row is written; the upload is kept for PREVIEW_TTL_MINUTES under the token, which "
                    "starts the import (the field preview of a batch or stream import).",
                    [],
                    {
                        "200": _json("PreviewEnvelope", "The preview, and the token its upload is kept under."),
                        "400": _error("The file cannot be imported, an option is bad, or neither a file nor a token."),
                        "404": _error("No preview has this token (started, swept, never made), or no such template."),
                        "410": _error("The preview expired; its upload is no longer kept."),
                        "413": _error("The upload is too large, or the form has too many parts."),
                        **writes,
                    },
                ),
                "requestBody": _upload_body(required=True),
            }
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
            "delete": _operation(
                "deleteImport",
                "Delete one ended import with its records, error rows and uploaded file.",
                [job_id],
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
                    "404": _error("No such import."),
                    "409": _error("The import is pending or running."),
                    **writes,
                },
            ),
        },
        "/api/import/{job_id}/errors": {
            "get": _operation(
                "listImportErrors",
                "Page through an import's errors, in row order.",
                [
                    job_id,
                    category,
                    _query(
                        "q",
                        {"type": "string", "pattern": "^[^\\u0000]*$"},
                        "Text to find (ignoring case) in the message or the row's values, or a row number.",
                    ),
                    limit,
                    offset,
                ],
                {
                    "200": _json("ErrorList", "A page of errors."),
                    "400": _error("A bad paging parameter, category or search."),
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
        "/api/import/{job_id}/results.csv": {
            "get": _operation(
                "exportImportResults",
                "Download an import's delivered records as CSV: row, name, email, company, status (succeeded or "
                "failed), attempts and the downstream's answer as JSON.",
                [job_id],
                {
                    "200": {
                        "description": (
                            "The records, streamed; cells a spreadsheet would run as formulas are neutralised."
                        ),
                        "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
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
        "/api/import/{job_id}/pause": {
            "post": _operation(
                "pauseImport",
                "Pause a pending or running import: its run stops at its next check, leaving what was in flight to "
                "go out again with the same keys, and gives up its runner slot. A paused import is never claimed "
                "and counts as unfinished (records cannot be cleared while one exists).",
                [job_id],
                {
                    "200": _json("JobEnvelope", "The import is paused."),
                    "202": _json("JobEnvelope", "The import pauses at its next check (pause_requested)."),
                    "404": _error("No such import."),
                    "409": _error("The import has ended, is being cancelled, or is paused already."),
                    **writes,
                },
            ),
        },
        "/api/import/{job_id}/unpause": {
            "post": _operation(
                "unpauseImport",
                "Let a paused import wait for a runner slot again; it goes on from where it stopped.",
                [job_id],
                {
                    "202": _json("JobEnvelope", "The import waits for a free runner slot (pending)."),
                    "404": _error("No such import."),
                    "409": _error("The import is not paused (or is still pausing)."),
                    **writes,
                },
            ),
        },
        "/api/import/{job_id}/priority": {
            "post": {
                **_operation(
                    "setImportPriority",
                    "Set an import's priority: waiting imports with a higher one get a free runner slot first. A "
                    "running import is never stopped for one with a higher priority.",
                    [job_id],
                    {
                        "200": _json("JobEnvelope", "The import's new priority is stored."),
                        "400": _error("No JSON object with a priority, or a priority out of range."),
                        "404": _error("No such import."),
                        **writes,
                    },
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"priority": _PRIORITY},
                                "required": ["priority"],
                            }
                        }
                    },
                },
            },
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
        "/api/import/{job_id}/notifications": {
            "get": _operation(
                "listImportNotifications",
                "List the notifications of an import's endings (webhook and email), with how sending each went.",
                [job_id],
                {
                    "200": _json("NotificationList", "The notifications, oldest first."),
                    "404": _error("No such import."),
                },
            ),
        },
        "/api/import/{job_id}/notifications/resend": {
            "post": _operation(
                "resendImportNotifications",
                "Send an import's failed notifications again, with their attempts counted afresh.",
                [job_id],
                {
                    "202": _json("NotificationsResent", "They are queued; the background sender sends them."),
                    "404": _error("No such import."),
                    "409": _error("None of its notifications failed."),
                    **writes,
                },
            ),
        },
        "/api/import/{job_id}/events": {
            "get": _operation(
                "streamImportEvents",
                "Follow one import as Server-Sent Events: its state now, each change, then job.finished.",
                [job_id],
                {"200": _event_stream(), "404": _error("No such import."), "503": _too_many_streams()},
            ),
        },
        "/api/templates": {
            "get": _operation(
                "listTemplates",
                "List the import templates, by name.",
                [],
                {"200": _json("TemplateList", "Every template.")},
            ),
            "post": {
                **_operation(
                    "createTemplate",
                    "Save a template: a named way to read a kind of file. Uploads name it in their template field.",
                    [],
                    {
                        "201": _json("TemplateEnvelope", "The template was saved."),
                        "400": _error("A field is missing or cannot be used."),
                        "409": _error("A template has this name already (names are compared ignoring case)."),
                        **writes,
                    },
                ),
                "requestBody": _TEMPLATE_BODY,
            },
        },
        "/api/templates/{reference}": {
            "get": _operation(
                "showTemplate",
                "Show one template.",
                [_TEMPLATE_REFERENCE],
                {"200": _json("TemplateEnvelope", "The template."), "404": _error("No such template.")},
            ),
            "put": {
                **_operation(
                    "replaceTemplate",
                    "Replace a template's fields; a field left out goes back to its default (detect it).",
                    [_TEMPLATE_REFERENCE],
                    {
                        "200": _json("TemplateEnvelope", "The template as saved."),
                        "400": _error("A field is missing or cannot be used."),
                        "404": _error("No such template."),
                        "409": _error("Another template has this name."),
                        **writes,
                    },
                ),
                "requestBody": _TEMPLATE_BODY,
            },
            "delete": _operation(
                "deleteTemplate",
                "Delete a template; the imports started with it keep their settings.",
                [_TEMPLATE_REFERENCE],
                {"204": {"description": "The template was deleted."}, "404": _error("No such template."), **writes},
            ),
        },
        "/api/schedules": {
            "get": _operation(
                "listSchedules",
                "List the schedules, by name, each with its last and next run.",
                [],
                {"200": _json("ScheduleList", "Every schedule.")},
            ),
            "post": {
                **_operation(
                    "createSchedule",
                    "Save a schedule: a template, a source, a cron expression and its time zone (admins only).",
                    [],
                    {
                        "201": _json("ScheduleEnvelope", "The schedule was saved; next_run_at is its first due time."),
                        "400": _error("A field is missing or cannot be used (a bad cron, zone, source or template)."),
                        "409": _error("A schedule has this name already (names are compared ignoring case)."),
                        **writes,
                    },
                ),
                "requestBody": _SCHEDULE_BODY,
            },
        },
        "/api/schedules/{reference}": {
            "get": _operation(
                "showSchedule",
                "Show one schedule.",
                [_SCHEDULE_REFERENCE],
                {"200": _json("ScheduleEnvelope", "The schedule."), "404": _error("No such schedule.")},
            ),
            "put": {
                **_operation(
                    "replaceSchedule",
                    "Replace a schedule's fields; its next run follows the new cron expression (admins only).",
                    [_SCHEDULE_REFERENCE],
                    {
                        "200": _json("ScheduleEnvelope", "The schedule as saved."),
                        "400": _error("A field is missing or cannot be used."),
                        "404": _error("No such schedule."),
                        "409": _error("Another schedule has this name."),
                        **writes,
                    },
                ),
                "requestBody": _SCHEDULE_BODY,
            },
            "delete": _operation(
                "deleteSchedule",
                "Delete a schedule and its runs; the imports it started stay (admins only).",
                [_SCHEDULE_REFERENCE],
                {"204": {"description": "The schedule was deleted."}, "404": _error("No such schedule."), **writes},
            ),
        },
        "/api/schedules/{reference}/pause": {
            "post": _operation(
                "pauseSchedule",
                "Pause a schedule: no run starts until it is resumed (admins only).",
                [_SCHEDULE_REFERENCE],
                {
                    "200": _json("ScheduleEnvelope", "The paused schedule."),
                    "404": _error("No such schedule."),
                    **writes,
                },
            ),
        },
        "/api/schedules/{reference}/resume": {
            "post": _operation(
                "resumeSchedule",
                "Resume a schedule from its next due time; those missed while paused are skipped (admins only).",
                [_SCHEDULE_REFERENCE],
                {
                    "200": _json("ScheduleEnvelope", "The schedule, running."),
                    "404": _error("No such schedule."),
                    **writes,
                },
            ),
        },
        "/api/schedules/{reference}/run": {
            "post": _operation(
                "runScheduleNow",
                "Run a schedule once now: fetch its file and start its import (admins only).",
                [_SCHEDULE_REFERENCE],
                {
                    "201": _json("ScheduleRunEnvelope", "The file was fetched and checked; run.job is its import."),
                    "200": _json(
                        "ScheduleRunEnvelope", "The run failed; run.error and the schedule's last_error say why."
                    ),
                    "404": _error("No such schedule."),
                    "409": _error("The schedule was run at this very moment already."),
                    **writes,
                },
            ),
        },
        "/api/schedules/{reference}/runs": {
            "get": _operation(
                "listScheduleRuns",
                "A schedule's runs, newest first, each with the import it started.",
                [_SCHEDULE_REFERENCE, limit, offset],
                {
                    "200": _json("ScheduleRunList", "A page of runs and how many there are."),
                    "400": _error("A bad paging parameter."),
                    "404": _error("No such schedule."),
                },
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
                    "409": _error("An import is pending or running: error.details.job_id names the oldest of them."),
                    **writes,
                },
            ),
        },
        "/api/downstream": {
            "get": _operation(
                "showDownstream",
                "Show the downstream: its circuit breaker, what is left of a 429's pause, and the last check's answer.",
                [],
                {"200": _json("DownstreamEnvelope", "The downstream's state.")},
            ),
        },
        "/api/downstream/check": {
            "post": _operation(
                "checkDownstream",
                "Ask the downstream whether it answers, sending no records: the webhook gets a POST of "
                '{"records": []} (one call under the rate limit; the breaker is left as it is).',
                [],
                {"200": _json("DownstreamCheckEnvelope", "The check's answer and the downstream's state."), **writes},
            ),
        },
        "/api/analytics": {
            "get": _operation(
                "showAnalytics",
                "Figures across the imports created in the last 7, 30 or 90 days: per day and in all, with the "
                "most frequent downstream errors.",
                [_query("days", {"type": "integer", "enum": list(RANGES_DAYS)}, "The date range in days.")],
                {"200": _json("Analytics", "The figures."), "400": _error("A bad date range.")},
            ),
        },
        "/api/analytics/imports/{job_id}": {
            "get": _operation(
                "showImportThroughput",
                "One import's rows per second over time: each run's records delivered over its time.",
                [job_id],
                {"200": _json("Throughput", "The import's runs and their rates."), "404": _error("No such import.")},
            ),
        },
        "/api/compare": {
            "get": _operation(
                "compareImports",
                "Compare two imports' source rows (records and rows kept as errors) matched by email: counts of "
                "rows only in A, only in B, changed and the same, and a page of one kind of difference.",
                [
                    *compared,
                    _query("difference", _enum(Difference), "Which rows to list (default only_a)."),
                    limit,
                    offset,
                ],
                {
                    "200": _json("Comparison", "The counts and a page of rows."),
                    "400": _error("An import is not named, or a bad difference or paging parameter."),
                    "404": _error("No such import."),
                },
            ),
        },
        "/api/compare.csv": {
            "get": _operation(
                "exportComparison",
                "Download every difference between two imports as CSV: rows only in A, only in B, then changed.",
                compared,
                {
                    "200": {
                        "description": "The differences, streamed; cells a spreadsheet would run as formulas are "
                        "neutralised.",
                        "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    "400": _error("An import is not named."),
                    "404": _error("No such import."),
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
        "/metrics": {
            "get": {
                **_operation(
                    "metrics",
                    "Report the metrics in Prometheus's text format: every worker's and the database's (README, "
                    "Monitor); without credentials when METRICS_PUBLIC is on.",
                    [],
                    {
                        "200": {
                            "description": "The metrics, in Prometheus's text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                ),
                **({"security": []} if "/metrics" in public else {}),
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
                if path not in public:
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
_CROSS_SITE_OR_DEMO = (
    "A cross-site browser request (checked with Sec-Fetch-Site and Origin), or the bundled sample while a webhook "
    "downstream is configured (demo data; IMPORTDASH_DEMO=1 allows it)."
)
_REPLAYED = {
    "description": "A job was started with this Idempotency-Key already: that job, as it is now.",
    "headers": {"Idempotent-Replayed": {"schema": {"type": "string", "const": "true"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobEnvelope"}}},
}


_TEMPLATE_REFERENCE = {
    "name": "reference",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
    "description": "The template's id, or its name (a name is never only digits).",
}


def _mapping_schema(description):
    return {
        "type": "object",
        "description": description,
        "properties": {
            "name": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
                ],
                "description": "The name's column, or its columns (first and last name), joined with a space.",
            },
            "email": {"type": "string", "minLength": 1},
            "company": {"type": ["string", "null"], "minLength": 1},
            "extra": {
                "type": ["array", "null"],
                "items": {"type": "string", "minLength": 1},
                "description": "The columns kept as extra fields; null or left out: every column not mapped.",
            },
        },
        "required": ["name", "email"],
        "additionalProperties": False,
    }


_SCHEDULE_REFERENCE = {
    "name": "reference",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
    "description": "The schedule's id, or its name (a name is never only digits).",
}

_SCHEDULE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "name": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 100,
                        "description": "Unique, ignoring case; printable, not only digits.",
                    },
                    "template": {
                        "anyOf": [{"type": "string", "minLength": 1}, {"type": "integer", "minimum": 1}],
                        "description": "The template the imports read files with: its name or id.",
                    },
                    "source_kind": {
                        "type": ["string", "null"],
                        "enum": [*(choice.value for choice in SourceKind), "", None],
                        "description": "Left out: a URL for http(s)://, S3 for s3://, else a path.",
                    },
                    "source": {
                        "type": "string",
                        "minLength": 1,
                        "description": "A path or glob under IMPORT_ROOT (the newest match is read), an http(s) URL "
                        "on a public address (unless SCHEDULE_ALLOW_PRIVATE_URLS), or s3://bucket/key.",
                    },
                    "mode": {"type": ["string", "null"], "enum": [JobMode.BATCH.value, JobMode.STREAM.value, "", None]},
                    "cron": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "description": "Five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, "
                        "@weekly, @monthly, @yearly.",
                    },
                    "timezone": {
                        "type": ["string", "null"],
                        "description": "The IANA zone the cron expression is read in (default UTC).",
                    },
                    "paused": {"type": "boolean"},
                },
                "required": ["name", "template", "source", "cron"],
                "additionalProperties": False,
            }
        }
    },
}

_TEMPLATE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "name": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 100,
                        "description": "Unique, ignoring case; printable, not only digits.",
                    },
                    "format": {
                        "type": ["string", "null"],
                        "enum": [*(choice.value for choice in FileFormat), "", None],
                    },
                    "encoding": {"type": ["string", "null"], "description": "A text encoding, e.g. cp1252."},
                    "delimiter": {"type": ["string", "null"], "enum": ["", *DELIMITERS, *DELIMITERS.values(), None]},
                    "sheet": {"type": ["string", "null"], "maxLength": 255},
                    "mapping": {
                        "anyOf": [
                            _mapping_schema("Which columns give name, email, company and extra fields."),
                            {"type": "null"},
                        ]
                    },
                    "duplicate_policy": {
                        "type": ["string", "null"],
                        "enum": [*(choice.value for choice in DuplicatePolicy), None],
                    },
                    "notify_webhook_url": {
                        "type": ["string", "null"],
                        "maxLength": 2000,
                        "description": "POST a signed summary here when an import ends; empty: NOTIFY_WEBHOOK_URL.",
                    },
                    "notify_email": {
                        "anyOf": [
                            {"type": "array", "items": {"type": "string"}, "maxItems": 20},
                            {"type": "string"},
                            {"type": "null"},
                        ],
                        "description": "Addresses (a list, or comma-separated) emailed when an import ends; "
                        "none: NOTIFY_EMAIL_TO.",
                    },
                    "notify_on": {
                        "anyOf": [
                            {"type": "array", "items": {"type": "string", "enum": [item.value for item in Ending]}},
                            {"type": "null"},
                        ],
                        "description": "Which endings notify; null: NOTIFY_ON.",
                    },
                },
                "required": ["name"],
                "additionalProperties": False,
            }
        }
    },
}


def _upload_operation(operation_id, mode, writes):
    return {
        **_operation(
            operation_id,
            f"Start a {mode} import of the uploaded file (CSV, Excel .xlsx, JSON or NDJSON), of a previewed one (its "
            "token in the field preview), or of the bundled sample when neither is sent.",
            [_IDEMPOTENCY_KEY],
            {
                "202": _json("JobEnvelope", "The file was checked and its import queued."),
                "200": _REPLAYED,
                "400": _error(
                    "The file cannot be imported (not text, undecodable, a bad header, no rows; a workbook or JSON "
                    "over its limits, or not the format named), a bad option, or both a file and a preview token; "
                    "mapping_required when its columns do not say surely which hold name and email (details: a "
                    "ColumnMatch)."
                ),
                "404": _error("No preview has this token (started already, swept, never made), or no such template."),
                "409": _error("Another request started the import of this preview first."),
                "410": _error("The preview expired; its upload is no longer kept."),
                "413": _error("The upload is too large, or the form has too many parts."),
                **writes,
                "403": _error(_CROSS_SITE_OR_DEMO),
            },
        ),
        "requestBody": _with_priority(_upload_body(required=False)),
    }


def _with_priority(body):
    """An upload's form with the priority a start takes besides."""
    form = body["content"]["multipart/form-data"]["schema"]
    form["properties"]["priority"] = {
        "type": "string",
        "pattern": r"^\s*[+-]?\d{1,3}\s*$",
        "description": f"The import's priority, a whole number from {MIN_PRIORITY} to {MAX_PRIORITY} "
        f"({DEFAULT_PRIORITY} when omitted); waiting imports with a higher one get a free runner slot first.",
    }
    return body


def _upload_body(*, required):
    """The multipart form of an upload: the file or a preview's token, and how to read the file."""
    return {
        "required": required,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The file: CSV (or other delimited text), Excel .xlsx, JSON (an array of "
                            "objects) or NDJSON (one object per line).",
                        },
                        "preview": {
                            "type": "string",
                            "description": "A preview's token instead of a file: its kept upload, read with the "
                            "preview's options unless this request sends others.",
                        },
                        "format": {
                            "type": "string",
                            "enum": ["", *(member.value for member in FileFormat)],
                            "description": "The file's format; detected when empty or omitted (a workbook or JSON by "
                            "its content, else by the file name's extension, else CSV).",
                        },
                        "sheet": {
                            "type": "string",
                            "description": "The workbook sheet to import (xlsx); the active sheet when empty or "
                            "omitted.",
                        },
                        "encoding": {
                            "type": "string",
                            "description": "A CSV file's text encoding when it has no byte order mark (UTF-8 when "
                            "empty or omitted), for example cp1252, latin-1 or shift_jis.",
                        },
                        "delimiter": {
                            "type": "string",
                            "enum": ["", *DELIMITERS, *DELIMITERS.values()],
                            "description": "A CSV file's field separator, as a character or by name; detected from "
                            "the header when empty or omitted.",
                        },
                        "mapping": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": _mapping_schema("The mapping."),
                            "description": "JSON naming the columns that give name, email, company and the "
                            'extra fields kept, e.g. {"name": ["First Name", "Last Name"], "email": "E-mail"}. '
                            "It wins over the template's and over automatic matching. Without one, the mapping "
                            "remembered for a file with the same columns is used, else the columns are matched "
                            "by name (400 mapping_required, with suggestions, when that is unsure).",
                        },
                        "template": {
                            "type": "string",
                            "description": "A template's name: its format, encoding, delimiter, sheet, mapping "
                            "and duplicate policy apply where this request gives none of its own.",
                        },
                        "duplicate_policy": {
                            "type": "string",
                            "enum": ["", *(choice.value for choice in DuplicatePolicy)],
                            "description": "skip (a known email is a duplicate error row) or update.",
                        },
                    },
                    "additionalProperties": False,
                }
            }
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
        "JobState (one import's stream) or the newest imports (the all-imports stream).",
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
_PRIORITY = {
    "type": "integer",
    "minimum": MIN_PRIORITY,
    "maximum": MAX_PRIORITY,
    "description": "Waiting imports with a higher priority get a free runner slot first; running ones go on.",
}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_DATE = {"type": "string", "format": "date"}
_BOOLEAN = {"type": "boolean"}
_SHARE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}

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
                    "mapping_required, a ColumnMatch (the file's columns and the suggested mapping); for "
                    "import_running, job_id: the import still running.",
                },
            },
        }
    ),
    "Job": _object(
        id=_INTEGER,
        mode=_enum(JobMode),
        status=_enum(JobStatus),
        outcome={
            "type": ["string", "null"],
            "enum": [*(outcome.value for outcome in JobOutcome), None],
            "description": "How a completed import ended: every row succeeded, some failed, or none succeeded; "
            "null until it completes.",
        },
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
        estimated_total=_nullable(
            {
                **_COUNT,
                "description": "The data rows counted from the file's lines at upload: an estimate, shown while "
                "total_records is unknown (a stream's, until its file ends).",
            }
        ),
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
        duration_seconds=_nullable(
            {
                "type": "number",
                "minimum": 0,
                "description": "How long the import itself has run: its first and resumed runs, not its retries.",
            }
        ),
        delivered_count={
            "type": "integer",
            "minimum": 0,
            "description": "Records the import itself sent and got an answer for (its retries not counted): its "
            "rate is this over duration_seconds.",
        },
        error=_nullable(_STRING),
        notice=_nullable({"type": "string", "description": "What delivery waits for, e.g. downstream unavailable."}),
        cancel_requested={"type": "boolean"},
        pause_requested={
            "type": "boolean",
            "description": "A pause was asked for; the run stops at its next check and the status becomes paused.",
        },
        priority=_PRIORITY,
        retries=_COUNT,
        last_retried_at=_nullable(_TIMESTAMP),
    ),
    "JobRun": _object(
        id=_INTEGER,
        kind=_enum(RunKind),
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
    "DownstreamCheck": _object(
        answered={"type": "boolean", "description": "The downstream gave an HTTP answer (of any status)."},
        ok={"type": "boolean", "description": "The answer was a success (2xx)."},
        message=_STRING,
        status_code=_nullable(_INTEGER),
        elapsed_ms={"type": "number", "minimum": 0},
        checked_at=_TIMESTAMP,
    ),
    "Downstream": _object(
        kind={"type": "string", "enum": ["simulated", "webhook"]},
        target={"type": ["string", "null"], "description": "The webhook's scheme, host and port (never its path)."},
        breaker={"type": "string", "enum": ["closed", "open"]},
        failures={**_COUNT, "description": "Failed calls in a row."},
        paused_seconds={"type": "number", "minimum": 0, "description": "Left of a pause a 429 asked for."},
        state_known={"type": "boolean", "description": "False while the shared rate-limit store is out of reach."},
        last_check={"anyOf": [_ref("DownstreamCheck"), {"type": "null"}]},
    ),
    "DownstreamEnvelope": _object(downstream=_ref("Downstream")),
    "DownstreamCheckEnvelope": _object(check=_ref("DownstreamCheck"), downstream=_ref("Downstream")),
    "ColumnMatch": _object(
        columns={"type": "array", "items": _STRING, "description": "The file's columns, in order."},
        mapping={
            "anyOf": [_mapping_schema("The mapping used without asking."), {"type": "null"}],
            "description": "Null when name or email is not matched surely: the client must send a mapping.",
        },
        suggestions={
            "type": "object",
            "description": "For name, email and company, the columns that may hold it, best first. A confidence of "
            "at least 0.9 is used without asking. A name from first and last name has both in columns; column is "
            "then the first of them.",
            "properties": {
                field: {
                    "type": "array",
                    "items": _object(
                        column=_STRING,
                        columns={"type": "array", "items": _STRING, "minItems": 1},
                        confidence={"type": "number", "minimum": 0, "maximum": 1},
                    ),
                }
                for field in ("name", "email", "company")
            },
            "required": ["name", "email", "company"],
        },
        remembered={
            "type": "boolean",
            "description": "The mapping is the one a person gave before for a file with this set of columns.",
        },
    ),
    "Template": _object(
        id=_INTEGER,
        name=_STRING,
        format={"type": ["string", "null"], "enum": [*(choice.value for choice in FileFormat), None]},
        encoding=_nullable(_STRING),
        delimiter={"type": ["string", "null"], "enum": [*DELIMITERS, None]},
        sheet=_nullable(_STRING),
        mapping={"anyOf": [_mapping_schema("The columns' mapping."), {"type": "null"}]},
        duplicate_policy=_enum(DuplicatePolicy),
        notify_webhook_url=_nullable(_STRING),
        notify_email={"type": "array", "items": _STRING},
        notify_on={"anyOf": [{"type": "array", "items": _enum(Ending)}, {"type": "null"}]},
        created_by=_STRING,
        created_at=_TIMESTAMP,
        updated_at=_TIMESTAMP,
    ),
    "TemplateEnvelope": _object(template=_ref("Template")),
    "Notification": _object(
        id=_INTEGER,
        key={**_STRING, "description": "Sent as X-Importdash-Id with every attempt, for the receiver to dedupe."},
        job_id=_INTEGER,
        ending=_enum(Ending),
        channel=_enum(DeliveryChannel),
        target={**_STRING, "description": "An email address, or the webhook's URL without credentials or query."},
        status=_enum(DeliveryStatus),
        attempts=_COUNT,
        next_attempt_at={**_nullable(_TIMESTAMP), "description": "When a pending one is tried next."},
        last_error={**_nullable(_STRING), "description": "Why the last attempt failed."},
        response_status={**_nullable(_INTEGER), "description": "The webhook's HTTP status, or the SMTP reply code."},
        created_at=_TIMESTAMP,
        sent_at=_nullable(_TIMESTAMP),
    ),
    "NotificationList": _object(notifications={"type": "array", "items": _ref("Notification")}),
    "NotificationsResent": _object(
        resent={**_COUNT, "description": "The failed notifications queued again."},
        notifications={"type": "array", "items": _ref("Notification")},
    ),
    "TemplateList": _object(templates={"type": "array", "items": _ref("Template")}),
    "PreviewEnvelope": _object(preview=_ref("Preview")),
    "Preview": _object(
        token={"type": "string", "description": "Starts the import (field preview), or previews again."},
        source=_STRING,
        expires_at={**_TIMESTAMP, "description": "When the kept upload is deleted unless an import starts from it."},
        options={"type": "object", "description": "The options the preview was made with (null: detected)."},
        columns={"type": "array", "items": _STRING},
        mapping={"type": ["object", "null"], "description": "The mapping found; null when one is required."},
        mapping_required={
            "type": ["object", "null"],
            "description": "When the columns must be mapped: message, columns, mapping and suggestions.",
        },
        encoding=_nullable({"type": "string", "description": "The encoding the file is read with."}),
        delimiter={"type": ["string", "null"], "enum": [*DELIMITERS, None]},
        rows={
            "type": "array",
            "description": "The first rows as mapped, each with the category an import would give it.",
            "items": _object(
                row=_INTEGER,
                name=_nullable(_STRING),
                email=_nullable(_STRING),
                company=_nullable(_STRING),
                extra={"type": ["object", "null"]},
                category={"type": "string", "enum": list(PREVIEW_CATEGORIES)},
                message=_nullable(_STRING),
            ),
        },
        counts={
            "type": ["object", "null"],
            "properties": {name: _COUNT for name in (*PREVIEW_CATEGORIES, "total")},
            "required": [*PREVIEW_CATEGORIES, "total"],
            "additionalProperties": False,
        },
        estimate={
            **_object(
                records=_COUNT,
                calls=_COUNT,
                records_per_call=_COUNT,
                rate_per_second={"type": "number", "minimum": 0},
                seconds=_nullable({"type": "number", "minimum": 0}),
            ),
            "type": ["object", "null"],
            "description": "Delivery at the current rate limit (seconds null when it is lifted).",
        },
    ),
    "Schedule": _object(
        id=_INTEGER,
        name=_STRING,
        template=_STRING,
        template_id=_INTEGER,
        source_kind=_enum(SourceKind),
        source=_STRING,
        mode={"type": "string", "enum": [JobMode.BATCH.value, JobMode.STREAM.value]},
        cron=_STRING,
        timezone=_STRING,
        paused={"type": "boolean"},
        created_by=_STRING,
        created_at=_TIMESTAMP,
        last_run_at={**_nullable(_STRING), "format": "date-time", "description": "The due time of the latest run."},
        next_run_at={**_nullable(_STRING), "format": "date-time", "description": "UTC; null while paused."},
        last_job_id=_nullable(_INTEGER),
        last_error={**_nullable(_STRING), "description": "Why the latest run failed; null after one that started."},
    ),
    "ScheduleEnvelope": _object(schedule=_ref("Schedule")),
    "ScheduleList": _object(schedules={"type": "array", "items": _ref("Schedule")}),
    "ScheduleRun": _object(
        id=_INTEGER,
        due_at=_TIMESTAMP,
        claimed_by={"type": "string", "description": "The process that ran it, or run-now or cli."},
        claimed_at=_TIMESTAMP,
        outcome={"type": ["string", "null"], "enum": [*(choice.value for choice in ScheduleOutcome), None]},
        error=_nullable(_STRING),
        job={
            "anyOf": [
                _object(
                    id=_INTEGER,
                    status=_enum(JobStatus),
                    source=_STRING,
                    total_records=_nullable(_COUNT),
                    processed_count=_COUNT,
                    success_count=_COUNT,
                    failed_count=_COUNT,
                ),
                {"type": "null"},
            ]
        },
    ),
    "ScheduleRunEnvelope": _object(run=_ref("ScheduleRun"), schedule=_ref("Schedule")),
    "ScheduleRunList": _object(runs={"type": "array", "items": _ref("ScheduleRun")}, total=_COUNT),
    "JobDetail": _object(
        job=_ref("Job"),
        error_counts=_ref("ErrorCounts"),
        errors={"type": "array", "items": _ref("RowError"), "description": "The first errors, in row order."},
        runs={"type": "array", "items": _ref("JobRun"), "description": "Every run of the import, oldest first."},
    ),
    "JobState": _object(
        job=_ref("Job"),
        error_counts=_ref("ErrorCounts"),
        runs={"type": "array", "items": _ref("JobRun"), "description": "Every run of the import, oldest first."},
        retryable={"type": "integer", "minimum": 0, "description": "Failed deliveries a retry would send again."},
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
    "Analytics": _object(
        range=_object(days={"type": "integer", "enum": list(RANGES_DAYS)}, **{"from": _DATE, "to": _DATE}),
        rate_allowed=_nullable(
            {
                "type": "number",
                "description": "Rows per second the rate limit allows (RATE_PER_SECOND x "
                "RECORDS_PER_CALL); null when unlimited.",
            }
        ),
        totals=_object(
            imports=_COUNT,
            rows=_COUNT,
            succeeded=_COUNT,
            failed=_COUNT,
            success_rate=_SHARE,
            delivery_success_rate=_SHARE,
            duration=_ref("Durations"),
            errors=_ref("ErrorCounts"),
        ),
        days={
            "type": "array",
            "description": "One entry per day of the range, oldest first, days without imports included.",
            "items": _object(
                date=_DATE,
                imports=_COUNT,
                rows=_COUNT,
                succeeded=_COUNT,
                failed=_COUNT,
                errors=_ref("ErrorCounts"),
                duration=_ref("Durations"),
                rate_used=_nullable({"type": "number", "minimum": 0, "description": "Rows per second delivered."}),
                success_rate=_SHARE,
                delivery_success_rate=_SHARE,
            ),
        },
        downstream_errors={
            "type": "array",
            "description": "The most frequent refusals, by status and message with emails, ids and numbers "
            "replaced by placeholders; most frequent first.",
            "items": _object(status=_STRING, message=_STRING, count=_COUNT),
        },
        sampled={
            **_object(durations=_BOOLEAN, rates=_BOOLEAN, downstream_errors=_BOOLEAN),
            "description": "Whether the figures cover only the newest imports, runs or failures (a bound was met).",
        },
    ),
    "Durations": _object(
        average_seconds=_nullable({"type": "number", "minimum": 0}),
        p95_seconds=_nullable({"type": "number", "minimum": 0}),
        count=_COUNT,
    ),
    "Throughput": _object(
        job=_object(id=_INTEGER, source=_STRING, status=_enum(JobStatus)),
        runs={
            "type": "array",
            "items": _object(
                kind={"type": "string", "enum": ["import", "retry", "resume"]},
                start_seconds={"type": "number", "description": "Seconds from the import's first run."},
                end_seconds={"type": "number"},
                sent=_COUNT,
                rows_per_second=_nullable({"type": "number", "minimum": 0}),
                running={"type": "boolean"},
            ),
        },
    ),
    "ComparedImport": _object(id=_INTEGER, source=_STRING, status=_enum(JobStatus), created_at=_TIMESTAMP),
    "SourceCounts": _object(
        rows=_COUNT,
        emails={"type": "integer", "minimum": 0, "description": "Distinct emails: the rows compared."},
        without_email=_COUNT,
        repeated={"type": "integer", "minimum": 0, "description": "Rows repeating an email of an earlier row."},
    ),
    "SourceRow": _object(
        row=_INTEGER,
        email=_nullable(_STRING),
        name=_nullable(_STRING),
        company=_nullable(_STRING),
        extra={"type": ["object", "null"]},
        state={"type": "string", "description": "A record's status or an error row's category."},
    ),
    "Comparison": _object(
        a=_ref("ComparedImport"),
        b=_ref("ComparedImport"),
        counts=_object(
            a=_ref("SourceCounts"),
            b=_ref("SourceCounts"),
            only_a=_COUNT,
            only_b=_COUNT,
            changed=_COUNT,
            same=_COUNT,
        ),
        difference=_enum(Difference),
        rows={
            "type": "array",
            "items": {
                "anyOf": [
                    _object(email=_nullable(_STRING), row=_ref("SourceRow")),
                    _object(
                        email=_nullable(_STRING),
                        fields={"type": "array", "items": _STRING},
                        a=_ref("SourceRow"),
                        b=_ref("SourceRow"),
                    ),
                ]
            },
        },
        total=_COUNT,
    ),
    "Health": _object(
        status={"type": "string", "enum": ["ok", "degraded"]},
        database={"type": "string", "enum": ["ok", "unreachable"]},
    ),
}
