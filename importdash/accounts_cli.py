"""Command-line commands for users, API keys and the audit trail: `importdash users|api-keys|audit ...`.

Like the API, each command calls services/accounts.py or services/audit_log.py, and every change is written to
the audit trail (its actor is "cli:<login name>").
"""

import json
import sys

import click
from flask import current_app

from . import audit
from .cli import _echo_json, _local_time, _page_size, _refusals
from .extensions import db
from .roles import Role
from .services import accounts, audit_log

ROLE_CHOICE = click.Choice([role.value for role in Role])


@click.group("users")
def users_group():
    """Create, list and disable users, and change their role."""


@users_group.command("create")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, default=Role.VIEWER.value, show_default=True, help="What they may do.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--no-password", is_flag=True, help="No password: the user cannot sign in, only have API keys.")
def create_user_command(name, role, password_stdin, no_password):
    """Create a user; asks for the password twice unless --password-stdin or --no-password."""
    if no_password:
        password = None
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin read an empty password.")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _refusals():
        user = accounts.create_user(db.session, name=name, role=Role(role), password=password)
    audit.record(db.session, action="user.create", target=("user", user.name), details={"role": user.role})
    click.echo(f"User {user.name} ({user.role}) created.")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help='Print the API\'s JSON: {"users": [...]}.')
def list_users_command(as_json):
    """List every user with their role and whether they are disabled."""
    users = [user.to_dict() for user in accounts.list_users(db.session)]
    if as_json:
        _echo_json({"users": users})
        return
    if not users:
        click.echo("No users: the app is open to anyone unless IMPORTDASH_AUTH_USERNAME is set.")
        return
    click.echo(f"{'ID':>5}  {'NAME':<24}  {'ROLE':<8}  {'STATE':<8}  CREATED")
    for user in users:
        state = "disabled" if user["disabled"] else "enabled"
        click.echo(
            f"{user['id']:>5}  {user['name']:<24}  {user['role']:<8}  {state:<8}  {_local_time(user['created_at'])}"
        )


@users_group.command("disable")
@click.argument("name")
def disable_user_command(name):
    """Disable a user: they can no longer sign in, their sessions end and their API keys stop working."""
    _update_user(name, disabled=True)


@users_group.command("enable")
@click.argument("name")
def enable_user_command(name):
    """Enable a disabled user again."""
    _update_user(name, disabled=False)


@users_group.command("set-role")
@click.argument("name")
@click.argument("role", type=ROLE_CHOICE)
def set_role_command(name, role):
    """Change a user's role."""
    _update_user(name, role=Role(role))


@users_group.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def set_password_command(name, password_stdin):
    """Set a user's password; asks for it twice unless --password-stdin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin read an empty password.")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _update_user(name, password=password)


def _update_user(name, **changes):
    with _refusals():
        user = accounts.find_user(db.session, name)
        changed = accounts.update_user(db.session, user, **changes)
    if changed:
        audit.record(db.session, action="user.update", target=("user", user.name), details=changed)
    state = "disabled" if user.disabled_at is not None else "enabled"
    click.echo(f"User {user.name}: {user.role}, {state}." + ("" if changed else " (Nothing changed.)"))


@click.group("api-keys")
def api_keys_group():
    """Create, list and revoke API keys."""


@api_keys_group.command("create")
@click.argument("user")
@click.option("--name", default="API key", show_default=True, help="What the key is for.")
def create_key_command(user, name):
    """Make an API key for a user and print it, this once: only its hash is kept."""
    with _refusals():
        owner = accounts.find_user(db.session, user)
        issued = accounts.issue_key(db.session, user=owner, name=name)
    audit.record(
        db.session,
        action="api_key.create",
        target=("api_key", issued.key.id),
        details={"user": owner.name, "name": issued.key.name, "prefix": issued.key.prefix},
    )
    click.echo(f"API key #{issued.key.id} for {owner.name} ({issued.key.name}); it is shown this once:", err=True)
    click.echo(issued.secret)


@api_keys_group.command("list")
@click.option("--user", help="Only this user's keys.")
@click.option("--json", "as_json", is_flag=True, help='Print the API\'s JSON: {"api_keys": [...]}.')
def list_keys_command(user, as_json):
    """List API keys, newest first: their id, owner, name, prefix and last use."""
    with _refusals():
        user_id = accounts.find_user(db.session, user).id if user else None
    keys = accounts.list_keys(db.session, user_id=user_id)
    if as_json:
        _echo_json({"api_keys": keys})
        return
    if not keys:
        click.echo("No API keys.")
        return
    click.echo(f"{'ID':>5}  {'USER':<16}  {'PREFIX':<12}  {'STATE':<7}  {'LAST USED':<19}  NAME")
    for key in keys:
        state = "revoked" if key["revoked"] else "active"
        used = _local_time(key["last_used_at"]) or "never"
        click.echo(f"{key['id']:>5}  {key['user']:<16}  {key['prefix']:<12}  {state:<7}  {used:<19}  {key['name']}")


@api_keys_group.command("revoke")
@click.argument("key_id", type=click.IntRange(min=1))
def revoke_key_command(key_id):
    """Revoke an API key: requests that send it get 401 from now on."""
    with _refusals():
        key = accounts.get_key(db.session, key_id)
        owner = accounts.get_user(db.session, key.user_id)
    if accounts.revoke_key(db.session, key):
        audit.record(db.session, action="api_key.revoke", target=("api_key", key.id), details={"user": owner.name})
        click.echo(f"API key #{key.id} ({key.prefix}…) of {owner.name} revoked.")
    else:
        click.echo(f"API key #{key.id} was revoked already.")


@click.group("audit")
def audit_group():
    """Read the audit trail: who did what, when and from where."""


def _filter_options(command):
    for option in reversed(
        [
            click.option("--actor", help="Only this actor's entries (a user name, or cli:<login>)."),
            click.option("--action", help="Only this action (import.start), or a family of them (import)."),
            click.option("--target", help="Only entries about this: a type (import) or type:id (import:42)."),
            click.option("--since", type=click.DateTime(), help="Only entries at or after this UTC time."),
            click.option("--until", type=click.DateTime(), help="Only entries before this UTC time."),
        ]
    ):
        command = option(command)
    return command


def _audit_filter(actor, action, target, since, until):
    return audit_log.AuditFilter(actor=actor, action=action, target=target, since=since, until=until)


@audit_group.command("list")
@_filter_options
@click.option("--limit", type=click.IntRange(min=1), help="Entries to show (default: DEFAULT_PAGE_SIZE).")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="How many of the newest entries to skip.")
@click.option("--json", "as_json", is_flag=True, help='Print the API\'s JSON: {"events": [...], "total": n}.')
def audit_list_command(actor, action, target, since, until, limit, offset, as_json):
    """List audit entries, newest first."""
    where = _audit_filter(actor, action, target, since, until)
    events, total = audit_log.event_page(db.session, where=where, limit=_page_size(limit), offset=offset)
    if as_json:
        _echo_json({"events": events, "total": total})
        return
    if not events:
        click.echo("No audit entries match.")
        return
    for event in events:
        target_text = f"{event['target_type']}:{event['target_id']}" if event["target_type"] else "-"
        details = json.dumps(event["details"], ensure_ascii=False) if event["details"] else ""
        click.echo(
            f"{_local_time(event['at'])}  {event['actor']:<16}  {event['action']:<22}  {target_text:<16}  "
            f"{event['ip'] or '-':<15}  {details}"
        )
    if offset or offset + len(events) < total:
        click.echo(f"Entries {offset + 1:,} to {offset + len(events):,} of {total:,}.", err=True)


@audit_group.command("export")
@_filter_options
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV, as GET /api/audit.csv does (the one format).")
@click.option("--output", "-o", type=click.File("wb"), default="-", help="The file to write (default: stdout).")
def audit_export_command(actor, action, target, since, until, as_csv, output):
    """Write the matching audit entries as CSV, oldest first."""
    if not as_csv:
        raise click.UsageError("Say the format: --csv (the one there is).")
    where = _audit_filter(actor, action, target, since, until)
    batch_size = current_app.config["EXPORT_BATCH_SIZE"]
    for chunk in audit_log.export_csv(db.session, where=where, batch_size=batch_size):
        output.write(chunk.encode("utf-8"))


COMMANDS = (users_group, api_keys_group, audit_group)


def init_app(app):
    for command in COMMANDS:
        app.cli.add_command(command)
