"""Users and their API keys: create, list, disable, change role; issue, find and revoke keys; check a password.

Passwords are kept as werkzeug's salted KDF hash. An API key is 32 random bytes (plus a readable prefix); only
its SHA-256 is kept, which is enough for a secret of that much entropy and lets a key be found by its hash.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import ApiError, Conflict, NotFound
from ..models import MAX_ID, ApiKey, User, utcnow
from ..roles import Role

KEY_PREFIX = "idk_"  # every key starts so, which lets secret scanners and people recognise one
KEY_BYTES = 32
SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 8  # the characters of a key kept in clear to tell keys apart
MAX_NAME_LENGTH = 100
# Compared against when a sign-in names no user, so an unknown name takes as long to refuse as a wrong password.
_UNKNOWN_USER_HASH = generate_password_hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class IssuedKey:
    """A new key: the row, and the key itself, which is shown once and never stored."""

    key: ApiKey
    secret: str


def parse_role(value: str) -> Role:
    """The role a string names; 400 listing the roles otherwise."""
    try:
        return Role(value)
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        raise ApiError(f"role must be one of {choices}; got {value!r}.", code="invalid_parameter") from None


def hash_key(secret: str) -> str:
    """The hex SHA-256 an API key is stored and looked up as."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key_secret() -> str:
    """A fresh API key: the prefix and 32 random bytes, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def create_user(session: Session, *, name: str, role: Role, password: str | None) -> User:
    """Add a user; 409 if the name is taken, 400 for an empty or over-long name."""
    name = _clean_name(name, "name")
    user = User(name=name, role=role.value, password_hash=generate_password_hash(password) if password else None)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"A user named {name!r} exists already.") from None
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def any_user(session: Session) -> bool:
    """Whether any user exists (then the app asks everyone to sign in)."""
    return session.scalar(select(User.id).limit(1)) is not None


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id) if user_id <= MAX_ID else None  # a larger id names no row
    if user is None:
        raise NotFound(f"No user #{user_id}.")
    return user


def find_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"No user named {name!r}.")
    return user


def update_user(
    session: Session, user: User, *, role: Role | None = None, disabled: bool | None = None, password: str | None = None
) -> dict:
    """Change a user's role, disable or enable them, or set their password; return what changed (for the audit).

    The last enabled admin may be neither demoted nor disabled (409): no one could manage users afterwards.
    """
    stops_being_admin = (role is not None and role != Role.ADMIN) or disabled is True
    if stops_being_admin and user.role == Role.ADMIN.value and user.disabled_at is None:
        others = select(User.id).where(User.role == Role.ADMIN.value, User.disabled_at.is_(None), User.id != user.id)
        if session.scalar(others.limit(1)) is None:
            raise Conflict(f"{user.name} is the last enabled admin; make another user an admin first.")
    changes = {}
    if role is not None and role.value != user.role:
        changes["role"] = {"from": user.role, "to": role.value}
        user.role = role.value
    if disabled is not None and disabled != (user.disabled_at is not None):
        changes["disabled"] = disabled
        user.disabled_at = utcnow() if disabled else None
    if password is not None:
        changes["password"] = "changed"
        user.password_hash = generate_password_hash(password)
    session.commit()
    return changes


def authenticate_password(session: Session, *, name: str, password: str) -> User | None:
    """The enabled user with this name and password, or None; unknown names cost as much time as wrong passwords."""
    # A NUL names no user (PostgreSQL's text cannot even hold one).
    user = None if "\x00" in name else session.scalar(select(User).where(User.name == name))
    stored = user.password_hash if user is not None and user.password_hash else _UNKNOWN_USER_HASH
    matches = check_password_hash(stored, password)
    if user is None or not user.password_hash or not matches or user.disabled_at is not None:
        return None
    return user


def active_user(session: Session, user_id: int) -> User | None:
    """The user a session names, if they still exist and are not disabled."""
    user = session.get(User, user_id)
    return user if user is not None and user.disabled_at is None else None


def issue_key(session: Session, *, user: User, name: str) -> IssuedKey:
    """Make a new API key for the user; the secret is in the result only."""
    secret = new_key_secret()
    key = ApiKey(
        user_id=user.id,
        name=_clean_name(name, "name"),
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        secret_hash=hash_key(secret),
    )
    session.add(key)
    session.commit()
    return IssuedKey(key=key, secret=secret)


def authenticate_key(session: Session, *, secret: str, touch_after_seconds: float) -> User | None:
    """The enabled user whose unrevoked key this is, or None. The key's last use is written at most every
    touch_after_seconds, so a busy script does not write on every request."""
    row = session.execute(
        select(ApiKey, User)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.secret_hash == hash_key(secret), ApiKey.revoked_at.is_(None), User.disabled_at.is_(None))
    ).first()
    if row is None:
        return None
    key, user = row
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= timedelta(seconds=touch_after_seconds):
        key.last_used_at = now
        session.commit()
    return user


def list_keys(session: Session, *, user_id: int | None) -> list[dict]:
    """Keys newest first, each with its owner's name: one user's, or everyone's (user_id None)."""
    query = select(ApiKey, User.name).join(User, User.id == ApiKey.user_id).order_by(ApiKey.id.desc())
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return [key.to_dict(user_name) for key, user_name in session.execute(query)]


def get_key(session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id) if key_id <= MAX_ID else None  # a larger id names no row
    if key is None:
        raise NotFound(f"No API key #{key_id}.")
    return key


def revoke_key(session: Session, key: ApiKey) -> bool:
    """Revoke the key from now on; False if it was revoked already."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = utcnow()
    session.commit()
    return True


def _clean_name(value, field):
    if not isinstance(value, str) or not value.strip():
        raise ApiError(f"{field} must be a non-empty text.", code="invalid_parameter")
    value = value.strip()
    if len(value) > MAX_NAME_LENGTH or not value.isprintable():  # isprintable refuses NUL and control characters
        raise ApiError(f"{field} must be at most {MAX_NAME_LENGTH} printable characters.", code="invalid_parameter")
    return value
