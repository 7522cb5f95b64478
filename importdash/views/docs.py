"""The API's own description."""

from flask import Blueprint, current_app

from ..extensions import db
from ..openapi import document
from ..security import auth_required
from ..services import accounts

bp = Blueprint("docs", __name__)


@bp.get("/api/openapi.json")
def openapi():
    """Serve the OpenAPI document of the JSON API."""
    return document(current_app.config, auth_required=auth_required(current_app), users=accounts.any_user(db.session))
