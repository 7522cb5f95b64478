"""Who may do what: the three roles, every action a person can take, and the one matrix between them.

The README's "Roles" table is this matrix; tests/test_roles.py holds the two to each other. A view asks with
security.require(Permission.X); a template with can(Permission.X).
"""

from enum import Enum


class Role(str, Enum):
    """A user's role; each may do everything the one before it may."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, permission: "Permission") -> bool:
        """Whether this role may take the action."""
        return self.rank >= ROLE_MATRIX[permission].rank


class Permission(str, Enum):
    """Every action the dashboard, the API or the CLI offers, by the name the audit trail and README use."""

    VIEW = "view"  # read imports, their errors, records and live progress
    START = "start"
    CANCEL = "cancel"
    RESUME = "resume"
    RETRY = "retry"
    DELETE = "delete"  # delete one import (issue #14)
    PAUSE = "pause"  # pause or resume a running import (issue #16)
    PRIORITY = "priority"  # change an import's place in the queue (issue #16)
    PREVIEW = "preview"  # upload a file to preview how it reads (issue #13)
    DOWNSTREAM_CHECK = "downstream_check"  # ask which of an import's records the downstream has (issue #14)
    TEMPLATES = "templates"  # create, change and delete import templates (issue #13)
    CLEAR = "clear"  # delete every record, error and import
    PURGE = "purge"  # delete imports older than an age
    SCHEDULES = "schedules"  # create, change, pause and delete schedules (issue #15 part 2)
    USERS = "users"  # create, disable and change the role of users
    API_KEYS = "api_keys"  # create, list and revoke one's own API keys
    ALL_API_KEYS = "all_api_keys"  # list and revoke any user's API keys, create keys for others
    AUDIT = "audit"  # read and export the audit trail


# The least role that may take each action. Templates are the operators': they say how the files operators import
# are read, and every change to one is in the audit trail. Clearing and purging delete other people's imports, so
# they are the admins'.
ROLE_MATRIX: dict[Permission, Role] = {
    Permission.VIEW: Role.VIEWER,
    Permission.API_KEYS: Role.VIEWER,
    Permission.START: Role.OPERATOR,
    Permission.CANCEL: Role.OPERATOR,
    Permission.RESUME: Role.OPERATOR,
    Permission.RETRY: Role.OPERATOR,
    Permission.DELETE: Role.OPERATOR,
    Permission.PAUSE: Role.OPERATOR,
    Permission.PRIORITY: Role.OPERATOR,
    Permission.PREVIEW: Role.OPERATOR,
    Permission.DOWNSTREAM_CHECK: Role.OPERATOR,
    Permission.TEMPLATES: Role.OPERATOR,
    Permission.CLEAR: Role.ADMIN,
    Permission.PURGE: Role.ADMIN,
    Permission.SCHEDULES: Role.ADMIN,
    Permission.USERS: Role.ADMIN,
    Permission.ALL_API_KEYS: Role.ADMIN,
    Permission.AUDIT: Role.ADMIN,
}


def permissions_of(role: Role) -> list[str]:
    """The actions the role may take, in the matrix's order."""
    return [permission.value for permission in Permission if role.allows(permission)]
