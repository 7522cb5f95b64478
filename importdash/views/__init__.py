"""Blueprints: imports (start), history (jobs and their errors), notifications (of their endings), events (live
streams), records (the per-row ledger), templates (saved ways to read a file), schedules (imports that start
themselves), downstream (its state, and a check), health, metrics (Prometheus), docs (the OpenAPI document and its
page), pages (the dashboard), analytics (charts across imports), compare (two imports side by side), accounts
(sign-in, users, API keys) and audit (the audit trail)."""

from flask import current_app
from werkzeug.routing import IntegerConverter

from ..errors import ApiError
from ..models import MAX_ID, MAX_SEARCH_LENGTH


class IdConverter(IntegerConverter):
    """A row id in a URL: any whole number; the services answer 404 for one the id column cannot hold (over MAX_ID),
    like any unknown id.

    The routing does not check the range itself: werkzeug counts a rule of another method at the same path before
    it checks the value, so GET /api/import/<too large> would answer 405 because DELETE /api/import/<id> exists.
    """


def register_blueprints(app):
    from . import (
        accounts,
        analytics,
        audit,
        compare,
        docs,
        downstream,
        events,
        health,
        history,
        imports,
        metrics,
        notifications,
        pages,
        records,
        schedules,
        templates,
    )

    app.url_map.converters["id"] = IdConverter
    for module in (
        imports,
        history,
        notifications,
        events,
        records,
        templates,
        schedules,
        downstream,
        health,
        metrics,
        docs,
        pages,
        analytics,
        compare,
        accounts,
        audit,
    ):
        app.register_blueprint(module.bp)


def page_args(args):
    """Read ?limit=&offset= with the configured default and cap; 400 on anything that is not a count."""
    config = current_app.config
    limit = _whole_number(args, "limit", config["DEFAULT_PAGE_SIZE"], 1, config["MAX_PAGE_SIZE"])
    offset = _whole_number(args, "offset", 0, 0, MAX_ID)
    return limit, offset


def id_arg(args, name):
    """Read an optional id query parameter; 400 if it is not a whole number."""
    return _whole_number(args, name, None, 1, MAX_ID)


def _whole_number(args, name, default, minimum, maximum):
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.removeprefix("-").isdigit()):
        raise ApiError(f"{name} must be a whole number, got {raw!r}", code="invalid_parameter")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ApiError(f"{name} must be between {minimum} and {maximum}, got {value}", code="invalid_parameter")
    return value


def choice_arg(args, name, choices):
    """Read an optional enumerated query parameter; 400 naming the allowed values otherwise."""
    value = args.get(name)
    if value in (None, ""):
        return None
    allowed = [choice.value for choice in choices]
    if value not in allowed:
        raise ApiError(f"{name} must be one of {', '.join(allowed)}; got {value!r}", code="invalid_parameter")
    return value


def search_arg(args, name):
    """Read an optional search text, trimmed ("" when absent); 400 when longer than any file name."""
    value = args.get(name, "").strip()
    if len(value) > MAX_SEARCH_LENGTH:
        raise ApiError(f"{name} must be at most {MAX_SEARCH_LENGTH} characters", code="invalid_parameter")
    return value
