"""Signing in and out, who am I, users (admins) and API keys (one's own; admins everyone's)."""

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from .. import audit
from ..errors import ApiError, NotFound
from ..extensions import db
from ..models import MAX_ID
from ..roles import Permission, Role, permissions_of
from ..security import (
    Forbidden,
    basic_credentials_match,
    can,
    current_principal,
    require,
    sign_in,
    sign_out,
)
from ..services import accounts
from . import id_arg

bp = Blueprint("accounts", __name__)


@bp.route("/login", methods=["GET", "POST"])
def sign_in_page():
    """Show the sign-in form, or sign in with a name and password and go on to where the browser was headed."""
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_principal() is not None:  # signed in already
            return redirect(target)
        return render_template("accounts/login.html", next=target, error=None)
    name, password = request.form.get("name", ""), request.form.get("password", "")
    user = accounts.authenticate_password(db.session, name=name, password=password) if name and password else None
    if user is not None:
        sign_in(user)
    elif name and password and basic_credentials_match(current_app, name, password):
        sign_in(basic_name=name)
    else:
        # The name as given, with anything unprintable (a NUL, which PostgreSQL's text cannot hold) replaced.
        given = "".join(char if char.isprintable() else "\ufffd" for char in name[:100])
        audit.record(db.session, action="session.sign_in_failed", target=("user", given or None))
        error = "That name and password do not match an enabled user."
        return render_template("accounts/login.html", next=target, error=error, name=name), 401
    audit.record(db.session, action="session.sign_in", target=("user", name))
    return redirect(target)


@bp.post("/logout")
def sign_out_page():
    """End the browser's session and show the sign-in page."""
    sign_out()
    return redirect(url_for("accounts.sign_in_page"))


@bp.get("/api/me")
def me():
    """Who the request acts for, and what their role lets them do."""
    principal = current_principal()
    return {"user": principal.to_dict(), "permissions": permissions_of(principal.role)}


@bp.get("/api/users")
@require(Permission.USERS)
def list_users():
    """List every user."""
    return {"users": [user.to_dict() for user in accounts.list_users(db.session)]}


@bp.post("/api/users")
@require(Permission.USERS)
def create_user():
    """Create a user: JSON {"name", "role", "password"} (no password: the user can only have API keys)."""
    body = _json_body({"name", "role", "password"})
    password = body.get("password")
    if password is not None and (not isinstance(password, str) or not password):
        raise ApiError("password must be a non-empty text, or left out.", code="invalid_parameter")
    role = accounts.parse_role(body.get("role", Role.VIEWER.value))
    user = accounts.create_user(db.session, name=body.get("name"), role=role, password=password)
    audit.record(db.session, action="user.create", target=("user", user.name), details={"role": user.role})
    return {"user": user.to_dict()}, 201


@bp.patch("/api/users/<id:user_id>")
@require(Permission.USERS)
def update_user(user_id):
    """Change a user's role, or disable or enable them: JSON {"role"} and/or {"disabled": true|false}."""
    body = _json_body({"role", "disabled"})
    disabled = body.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        raise ApiError("disabled must be true or false.", code="invalid_parameter")
    role = accounts.parse_role(body["role"]) if body.get("role") is not None else None
    user = accounts.get_user(db.session, user_id)
    changes = accounts.update_user(db.session, user, role=role, disabled=disabled)
    if changes:
        audit.record(db.session, action="user.update", target=("user", user.name), details=changes)
    return {"user": user.to_dict()}


@bp.get("/api/api-keys")
@require(Permission.API_KEYS)
def list_keys():
    """List the caller's API keys; an admin sees everyone's, or one user's with ?user=<id>."""
    principal = current_principal()
    if can(Permission.ALL_API_KEYS):
        user_id = id_arg(request.args, "user")
    else:
        user_id = _own_user_id(principal)
    return {"api_keys": accounts.list_keys(db.session, user_id=user_id)}


@bp.post("/api/api-keys")
@require(Permission.API_KEYS)
def create_key():
    """Make an API key, shown this once: JSON {"name"}; an admin may add {"user": <id>} for someone else's."""
    body = _json_body({"name", "user"})
    principal = current_principal()
    owner_id = body.get("user")
    if owner_id is None:
        owner_id = _own_user_id(principal)
    elif not isinstance(owner_id, int) or isinstance(owner_id, bool) or not 1 <= owner_id <= MAX_ID:
        raise ApiError("user must be a user's id.", code="invalid_parameter")
    elif owner_id != principal.user_id and not can(Permission.ALL_API_KEYS):
        raise Forbidden("Only an admin may make API keys for other users.")
    owner = accounts.get_user(db.session, owner_id)
    issued = accounts.issue_key(db.session, user=owner, name=body.get("name", "API key"))
    audit.record(
        db.session,
        action="api_key.create",
        target=("api_key", issued.key.id),
        details={"user": owner.name, "name": issued.key.name, "prefix": issued.key.prefix},
    )
    return {"api_key": issued.key.to_dict(owner.name), "key": issued.secret}, 201


@bp.delete("/api/api-keys/<id:key_id>")
@require(Permission.API_KEYS)
def revoke_key(key_id):
    """Revoke an API key: one's own, or (admins) anyone's."""
    key = accounts.get_key(db.session, key_id)
    if key.user_id != current_principal().user_id and not can(Permission.ALL_API_KEYS):
        raise NotFound(f"No API key #{key_id}.")  # another user's key: not even its existence is shown
    owner = accounts.get_user(db.session, key.user_id)
    if accounts.revoke_key(db.session, key):
        audit.record(db.session, action="api_key.revoke", target=("api_key", key.id), details={"user": owner.name})
    return {"api_key": key.to_dict(owner.name)}


def _own_user_id(principal):
    if principal.user_id is None:
        raise ApiError(
            f"{principal.name} is not a user (the {principal.via} caller), so has no API keys of its own; "
            "create a user with `importdash users create`.",
            code="not_a_user",
        )
    return principal.user_id


def _json_body(fields):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("Send a JSON object.", code="invalid_body")
    unknown = sorted(set(body) - fields)
    if unknown:
        raise ApiError(f"Unknown fields {', '.join(unknown)}; send {', '.join(sorted(fields))}.", code="invalid_body")
    return body


def _safe_next(target):
    """Where to go after signing in: a path on this site only, never another site (open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return url_for("pages.dashboard")
    return target
