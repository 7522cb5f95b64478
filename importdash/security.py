"""Web security: the Host check, optional HTTP Basic auth, refusal of cross-site writes, security headers on every
response, and requests that close their uploads even when a form limit cuts parsing short."""

import hmac
import os
from urllib.parse import urlsplit

import flask
from flask import g, request

from .errors import ApiError
from .models import ANONYMOUS_USER

PUBLIC_PATHS = frozenset({"/health"})  # answered without credentials or a known Host, for load balancers and monitors
METRICS_PATH = "/metrics"  # public too with METRICS_PUBLIC, for Prometheus scrapers that cannot sign in
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


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"

    def __init__(self):
        super().__init__(
            "Sign in: this server needs a user name and password (HTTP Basic auth).",
            headers={"WWW-Authenticate": 'Basic realm="importdash", charset="UTF-8"'},
        )


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
    """Check credentials and the request's origin before every view; add the security headers after it."""
    app.request_class = Request
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
        g.user = ANONYMOUS_USER
        if credentials is not None and request.path not in public_paths:
            g.user = _check_credentials(request.authorization, *credentials)

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


def auth_required(app):
    """Whether the app asks for credentials (both IMPORTDASH_AUTH_USERNAME and IMPORTDASH_AUTH_PASSWORD are set)."""
    return _credentials(app) is not None


def current_user():
    """The signed-in user's name, or "anonymous" when authentication is off."""
    return g.get("user", ANONYMOUS_USER)


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
