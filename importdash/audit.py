"""The one call that writes the audit trail: audit.record(session, action=..., target=..., details=...).

Views and CLI commands call it after an action succeeded; it fills in who and from where: in a request, the
caller (security.current_principal), request.remote_addr (after ProxyFix, TRUSTED_PROXIES) and the User-Agent;
on the command line, "cli:<login name>". Services stay free of requests: services/audit_log.py writes the row.
"""

import getpass

import click
from flask import has_request_context, request
from sqlalchemy.orm import Session

from .models import ANONYMOUS_USER
from .services import audit_log

CLI_USER_AGENT = "importdash-cli"


def record(
    session: Session, *, action: str, target: tuple[str, object] | None = None, details: dict | None = None
) -> None:
    """Append who did the action (e.g. "import.cancel"), to what (e.g. ("import", 42)), and how (details)."""
    from .security import current_principal

    # A command's click context says it is the command line (a test's app may have a request context around it).
    if has_request_context() and click.get_current_context(silent=True) is None:
        principal = current_principal()
        actor = principal.name if principal is not None else ANONYMOUS_USER
        role = principal.role.value if principal is not None else None
        ip, user_agent = request.remote_addr, request.user_agent.string or None
    else:
        actor, role, ip, user_agent = f"cli:{_login_name()}", None, None, CLI_USER_AGENT
    target_type, target_id = target if target is not None else (None, None)
    audit_log.add_event(
        session,
        actor=actor,
        role=role,
        ip=ip,
        user_agent=user_agent,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details,
    )


def _login_name():
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database (a bare container)
        return "unknown"
