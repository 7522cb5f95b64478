"""Blueprints: imports (start), history (jobs and their errors), events (live streams), records (the per-row
ledger), health, docs (the OpenAPI document), pages (the dashboard), accounts (sign-in, users, API keys) and
audit (the audit trail)."""

from flask import current_app
from werkzeug.routing import IntegerConverter

from ..errors import ApiError
from ..models import MAX_ID


class IdConverter(IntegerConverter):
    """A row id in a URL: a number the id column can hold, so a larger one is a 404 like any unknown id."""

    def __init__(self, url_map):
        super().__init__(url_map, min=1, max=MAX_ID)


def register_blueprints(app):
    from . import accounts, audit, docs, events, health, history, imports, pages, records

    app.url_map.converters["id"] = IdConverter
    for module in (imports, history, events, records, health, docs, pages, accounts, audit):
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
