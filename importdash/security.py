"""Web security: the Host check, who is asking (a signed-in session, an API key, the Basic user, or nobody when
the app is open), what their role lets them do, refusal of cross-site writes, security headers on every response,
the client's address through trusted proxies only, and requests that close their uploads even when a form limit
cuts parsing short."""

import functools
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import flask
from flask import g, redirect, request, session, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from .errors import ApiError, wants_json_response
from .extensions import db
from .models import ANONYMOUS_USER
from .roles import ROLE_MATRIX, Permission, Role
from .services import accounts

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/health"})  # answered without credentials or a known Host, for load balancers and monitors
METRICS_PATH = "/metrics"  # public too with METRICS_PUBLIC, for Prometheus scrapers that cannot sign in
SIGN_IN_PATHS = frozenset({"/login", "/logout"})  # reachable without credentials, to get some
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Only this origin's scripts, styles, images and connections; no inline script or style, no plugins, no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Cross-Origin-Opener-Policy": "same-origin",
}


BASIC_CHALLENGE = 'Basic realm="importdash", charset="UTF-8"'
BEARER_CHALLENGE = 'Bearer realm="importdash"'


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: a user (by session or API key), the Basic user, or anyone when the app is open."""

    name: str
    role: Role
    via: str  # "session", "api_key", "basic" or "open"
    user_id: int | None = None

    def to_dict(self):
        return {"name": self.name, "role": self.role.value, "via": self.via, "user_id": self.user_id}


# With no users and no Basic auth configured the app is open, as before accounts existed: anyone is an admin.
OPEN_PRINCIPAL = Principal(ANONYMOUS_USER, Role.ADMIN, "open")


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message=None, *, basic=True):
        super().__init__(
            message or "Sign in: this server needs a user name and password (HTTP Basic auth) or an API key.",
            headers={"WWW-Authenticate": BASIC_CHALLENGE if basic else BEARER_CHALLENGE},
        )


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class CrossSiteRequest(ApiError):
    status_code = 403
    code = "cross_site_request"


class UnknownHost(ApiError):
    code = "unknown_host"


class Request(flask.Request):
    """Flask's request, closing every upload stream it opened.

    Werkzeug closes the files of a parsed form, but when parsing stops at a limit (MAX_FORM_PARTS) the files
    begun before it would stay open, spooled to disk, until garbage collection.
    """

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        stream = super()._get_file_stream(total_content_length, content_type, filename, content_length)
        self.__dict__.setdefault("_upload_streams", []).append(stream)
        return stream

    def close(self):
        super().close()
        for stream in self.__dict__.get("_upload_streams", ()):
            stream.close()


def init_app(app):
    """Trust the configured proxies; check the Host, who is asking and the request's origin before every view; add
    the security headers after it."""
    app.request_class = Request
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        # The client's address and scheme come from the X-Forwarded-For and -Proto that this many proxies added;
        # without proxies (0) those headers are anyone's to forge, so they are ignored.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    _configure_sessions(app)
    allowed_hosts = allowed_host_names(app.config)
    credentials = _credentials(app)
    public_paths = PUBLIC_PATHS | ({METRICS_PATH} if app.config["METRICS_PUBLIC"] else set())
    trusted_origins = {
        origin.strip().rstrip("/").lower() for origin in app.config["TRUSTED_ORIGINS"].split(",") if origin.strip()
    }

    @app.before_request
    def check_host():
        # A page on another site that rebinds its DNS name to this machine sends its own name as the Host.
        if request.path not in public_paths and not _host_allowed(request.host, allowed_hosts):
            raise UnknownHost(
                "This server does not answer to that host name; list it in IMPORTDASH_ALLOWED_HOSTS "
                "if it is one of this server's names."
            )

    @app.before_request
    def authenticate():
        g.principal = None
        if request.path in public_paths:
            return None
        g.principal = _identify(app, credentials)
        if g.principal is not None or request.path in SIGN_IN_PATHS:
            return None
        users_exist = accounts.any_user(db.session)
        if credentials is None and not users_exist:
            g.principal = OPEN_PRINCIPAL
            return None
        if users_exist:
            # Users sign in on the sign-in page, which needs its stylesheet; scripts send an API key.
            if request.path.startswith(app.static_url_path + "/"):
                return None
            if request.method in SAFE_METHODS and not wants_json_response():
                return redirect(url_for("accounts.sign_in_page", next=request.full_path.rstrip("?")))
        raise Unauthorized(basic=credentials is not None)

    @app.context_processor
    def principal_in_templates():
        return {"principal": current_principal(), "can": can, "Permission": Permission}

    @app.before_request
    def refuse_cross_site_writes():
        if request.method not in SAFE_METHODS and not _same_origin(request, trusted_origins):
            raise CrossSiteRequest("Cross-site requests may not change anything here; use the dashboard or the API.")

    @app.after_request
    def add_security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def allowed_host_names(config):
    """The Host names requests may name: IMPORTDASH_ALLOWED_HOSTS, or the loopback names and the bound one."""
    if config["ALLOWED_HOSTS"]:
        names = config["ALLOWED_HOSTS"].split(",")
    else:
        names = [*LOOPBACK_NAMES, config["BIND"]]
    return frozenset(name for name in (_host_name(name) for name in names) if name)


def require(permission):
    """Refuse the view (401 without credentials, 403 for a role below the matrix's) unless the caller may act."""

    def decorator(view):
        @functools.wraps(view)
        def checked(*args, **kwargs):
            check(permission)
            return view(*args, **kwargs)

        checked.permission = permission
        return checked

    return decorator


def check(permission):
    """Raise Unauthorized or Forbidden unless the current caller's role allows the action."""
    principal = current_principal()
    if principal is None:
        raise Unauthorized()
    if not principal.role.allows(permission):
        needed = ROLE_MATRIX[permission].value
        raise Forbidden(f"Your role ({principal.role.value}) may not do this ({permission.value}); it needs {needed}.")


def can(permission):
    """Whether the current caller may take the action (for templates: hide what they may not use)."""
    principal = current_principal()
    return principal is not None and principal.role.allows(permission)


def current_principal():
    """Who the request acts for, or None (a public path, or no credentials yet)."""
    return g.get("principal")


def auth_required(app):
    """Whether the Basic user is configured (both IMPORTDASH_AUTH_USERNAME and IMPORTDASH_AUTH_PASSWORD are set); the
    app also asks for credentials once any user exists (accounts.any_user)."""
    return _credentials(app) is not None


def current_user():
    """The caller's name: the user's, the Basic user's, or "anonymous" when authentication is off."""
    principal = current_principal()
    return principal.name if principal is not None else ANONYMOUS_USER


def sign_in(user=None, *, basic_name=None):
    """Start a fresh browser session for a user, or for the Basic user (remembered by a digest of its credentials,
    so changing them signs such sessions out)."""
    session.clear()
    session.permanent = True
    if user is not None:
        session["user_id"] = user.id
        g.principal = Principal(user.name, Role(user.role), "session", user.id)
    else:
        session["basic"] = _basic_digest(flask.current_app)
        session["name"] = basic_name
        g.principal = Principal(basic_name, Role.ADMIN, "session")


def sign_out():
    session.clear()


def basic_credentials_match(app, name, password):
    """Whether a name and password are the configured Basic user's (both compared in constant time)."""
    credentials = _credentials(app)
    if credentials is None:
        return False
    name_matches = hmac.compare_digest(name.encode(), credentials[0])
    password_matches = hmac.compare_digest(password.encode(), credentials[1])
    return bool(name_matches & password_matches)


def _identify(app, credentials):
    """The principal the request's API key, Basic credentials or session names; None if it names none.

    Credentials that are sent but wrong are refused outright (401), never treated as none at all.
    """
    authorization = request.authorization
    if authorization is not None and authorization.type == "bearer":
        user = accounts.authenticate_key(
            db.session, secret=authorization.token or "", touch_after_seconds=app.config["API_KEY_TOUCH_SECONDS"]
        )
        if user is None:
            raise Unauthorized("That API key is unknown or revoked, or its user is disabled.", basic=False)
        return Principal(user.name, Role(user.role), "api_key", user.id)
    if authorization is not None and credentials is not None:
        return Principal(_check_credentials(authorization, *credentials), Role.ADMIN, "basic")
    if "user_id" in session:
        user = accounts.active_user(db.session, session["user_id"])
        if user is not None:
            return Principal(user.name, Role(user.role), "session", user.id)
        session.clear()  # the user was disabled or deleted: the session ends with them
    elif "basic" in session:
        if credentials is not None and hmac.compare_digest(session["basic"], _basic_digest(app)):
            return Principal(session["name"], Role.ADMIN, "session")
        session.clear()
    return None


def _basic_digest(app):
    username, password = _credentials(app)
    return hashlib.sha256(username + b"\0" + password).hexdigest()


def _configure_sessions(app):
    """Sign session cookies with SECRET_KEY; without one, with a random key of this process's own."""
    config = app.config
    secret = _text_setting(app, "SECRET_KEY")
    if not secret:
        # Fine for one process; every process must share one key, or a browser signed in on one is refused by
        # the others (README, Configure).
        secret = secrets.token_hex(32)
        if config["WORKERS"] > 1:
            log.warning(
                "IMPORTDASH_SECRET_KEY is not set: each of the %d workers signs sessions with its own key, "
                "so browsers are signed out at random; set one key for every process",
                config["WORKERS"],
            )
    config["SECRET_KEY"] = secret
    config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=config["SESSION_HOURS"])


def _credentials(app):
    """Return the configured (user name, password) as bytes, or None when authentication is off."""
    username, password = _text_setting(app, "AUTH_USERNAME"), _text_setting(app, "AUTH_PASSWORD")
    if not username and not password:
        return None
    if not username or not password:
        raise ValueError("Set both IMPORTDASH_AUTH_USERNAME and IMPORTDASH_AUTH_PASSWORD, or neither.")
    if ":" in username:
        raise ValueError(
            "IMPORTDASH_AUTH_USERNAME cannot contain ':' (HTTP Basic auth splits user and password there)."
        )
    return username.encode(), password.encode()


def _text_setting(app, name):
    value = app.config[name]
    if isinstance(value, str):
        return value
    # from_prefixed_env reads values as JSON, so a password such as 1234 or null arrives as a number or None;
    # the text as written in the environment is what was meant.
    raw = os.environ.get(f"IMPORTDASH_{name}")
    if raw is not None:
        return raw
    return None if value is None else str(value)


def _check_credentials(authorization, username, password):
    """Return the user name if the Basic credentials match; both parts are always compared, in constant time."""
    if authorization is None or authorization.type != "basic":
        raise Unauthorized()
    given_username = (authorization.username or "").encode()
    given_password = (authorization.password or "").encode()
    username_matches = hmac.compare_digest(given_username, username)
    password_matches = hmac.compare_digest(given_password, password)
    if not (username_matches & password_matches):
        raise Unauthorized()
    return authorization.username


def _host_name(host):
    """The name in a Host header or a host[:port] setting, lower-cased, without its port or IPv6 brackets.

    Werkzeug's own trusted-hosts check cuts a name at its first colon, which would refuse every IPv6 address.
    """
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, _port = host[1:].partition("]")
        return name if bracket else ""
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def _host_allowed(host, allowed):
    """Whether the Host header names an allowed host; ".example.com" allows every name under example.com."""
    name = _host_name(host or "")
    if not name:
        return False
    return name in allowed or any(
        suffix.startswith(".") and (name.endswith(suffix) or name == suffix[1:]) for suffix in allowed
    )


def _same_origin(request, trusted_origins):
    """Whether a state-changing request may go ahead: a same-origin page, a trusted origin, or no browser at all.

    Browsers say where a request comes from in Sec-Fetch-Site (trustworthy origins, recent browsers) or at least
    in Origin; clients such as curl send neither and are not exposed to cross-site request forgery. This is the
    algorithm of Go's net/http CrossOriginProtection.
    """
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/").lower() in trusted_origins:
        return True
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    if origin is None:
        return True
    try:
        return urlsplit(origin).netloc.lower() == request.host.lower()
    except ValueError:
        return False
