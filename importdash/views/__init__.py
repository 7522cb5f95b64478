"""Blueprints: imports (start), history (jobs and their errors), events (live streams), records (the per-row
ledger), health, and pages (the dashboard)."""
from flask import current_app

from ..errors import ApiError


def register_blueprints(app):
    from . import events, health, history, imports, pages, records

    for module in (imports, history, events, records, health, pages):
        app.register_blueprint(module.bp)


def page_args(args):
    """Read ?limit=&offset= with the configured default and cap; 400 on anything that is not a count."""
    config = current_app.config
    limit = _non_negative_int(args, "limit", config["DEFAULT_PAGE_SIZE"])
    offset = _non_negative_int(args, "offset", 0)
    if limit < 1 or limit > config["MAX_PAGE_SIZE"]:
        raise ApiError(f"limit must be between 1 and {config['MAX_PAGE_SIZE']}", code="invalid_parameter")
    return limit, offset


def _non_negative_int(args, name, default):
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"{name} must be a whole number, got {raw!r}", code="invalid_parameter") from None
    if value < 0:
        raise ApiError(f"{name} must not be negative", code="invalid_parameter")
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
