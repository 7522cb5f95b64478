"""The API's own description: the OpenAPI document, and an HTML page rendered from it."""

from flask import Blueprint, current_app, render_template

from ..extensions import db
from ..openapi import document
from ..security import auth_required
from ..services import accounts

bp = Blueprint("docs", __name__)

METHODS = ("get", "post", "put", "patch", "delete")


@bp.get("/api/openapi.json")
def openapi():
    """Serve the OpenAPI document of the JSON API."""
    return _document()


@bp.get("/docs")
def api_page():
    """Show the JSON API as a page, rendered on the server from the same OpenAPI document."""
    spec = _document()
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]
    return render_template("docs/api.html", spec=spec, operations=operations, schema_type=schema_type, back=True)


def _document():
    return document(current_app.config, auth_required=auth_required(current_app), users=accounts.any_user(db.session))


def schema_type(schema):
    """A JSON Schema in a few words: a component's name, "integer 1–1000", "one of a, b", "array of Job"."""
    if not schema:
        return "any"
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        # An optional query parameter also allows "" (not sent): the words name the real type only.
        parts = [schema_type(part) for part in schema["anyOf"] if part.get("const") != ""]
        return " or ".join(parts) or '""'
    if "const" in schema:
        return repr(schema["const"]).replace("'", '"')
    if "enum" in schema:
        return "one of " + ", ".join("null" if value is None else str(value) for value in schema["enum"])
    kinds = schema.get("type", "any")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    words = []
    for kind in kinds:
        if kind == "array":
            words.append(f"array of {schema_type(schema.get('items'))}")
        elif kind in ("integer", "number") and ("minimum" in schema or "maximum" in schema):
            low, high = schema.get("minimum", ""), schema.get("maximum", "")
            words.append(f"{kind} {low}–{high}" if high != "" else f"{kind} ≥ {low}")
        elif kind == "string" and "format" in schema:
            words.append(f"string ({schema['format']})")
        else:
            words.append(kind)
    return " or ".join(words)
