"""Import templates: list, create, show, replace and delete them, by id or by name."""

from flask import Blueprint, request

from .. import audit
from ..errors import ApiError
from ..extensions import db
from ..roles import Permission
from ..security import current_user, require
from ..services import templates

bp = Blueprint("templates", __name__, url_prefix="/api/templates")


@bp.get("")
def list_templates():
    """List every template, by name."""
    return {"templates": [templates.template_json(template) for template in templates.list_templates(db.session)]}


@bp.post("")
@require(Permission.TEMPLATES)
def create_template():
    """Save a new template from JSON like {"name": "CRM export", "mapping": {...}, "delimiter": ";"}."""
    template = templates.create_template(db.session, _body(), created_by=current_user())
    _record("template.create", template.id, template.name)
    return {"template": templates.template_json(template)}, 201


@bp.get("/<reference>")
def show_template(reference):
    """Show one template, named by its id or its name."""
    return {"template": templates.template_json(templates.get_template(db.session, reference))}


@bp.put("/<reference>")
@require(Permission.TEMPLATES)
def replace_template(reference):
    """Replace a template's fields with the JSON sent; a field left out goes back to "detect it"."""
    template = templates.update_template(db.session, reference, _body())
    _record("template.update", template.id, template.name)
    return {"template": templates.template_json(template)}


@bp.delete("/<reference>")
@require(Permission.TEMPLATES)
def delete_template(reference):
    """Delete a template; imports started with it keep their settings."""
    template = templates.get_template(db.session, reference)
    template_id, name = template.id, template.name
    templates.delete_template(db.session, reference)
    _record("template.delete", template_id, name)
    return "", 204


def _record(action, template_id, name):
    audit.record(db.session, action=action, target=("template", template_id), details={"name": name})


def _body():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(
            'Send the template as a JSON object, e.g. {"name": "CRM export", "mapping": {"name": "Full Name", '
            '"email": "E-mail"}}.',
            code="invalid_body",
        )
    return body
