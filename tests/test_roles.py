"""The role matrix: three ordered roles, every action in it once, and the README's table is the same matrix."""

import re

import pytest

from importdash.config import PROJECT_ROOT
from importdash.roles import ROLE_MATRIX, Permission, Role, permissions_of

pytestmark = pytest.mark.unit

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_action_has_a_least_role():
    assert set(ROLE_MATRIX) == set(Permission)


def test_the_roles_are_ordered_viewer_operator_admin_and_each_may_do_what_the_one_before_may():
    assert [role.value for role in Role] == ["viewer", "operator", "admin"]
    for permission in Permission:
        allowed = [role.allows(permission) for role in Role]
        assert allowed == sorted(allowed), permission  # once allowed, allowed for every higher role


@pytest.mark.parametrize(
    "permission", ["start", "cancel", "resume", "retry", "delete", "pause", "priority", "clear", "purge", "preview"]
)
def test_viewers_may_not_change_imports(permission):
    assert not Role.VIEWER.allows(Permission(permission))


@pytest.mark.parametrize("permission", ["start", "cancel", "resume", "retry", "delete", "pause", "templates"])
def test_operators_run_imports(permission):
    assert Role.OPERATOR.allows(Permission(permission))


@pytest.mark.parametrize("permission", ["users", "all_api_keys", "audit", "schedules", "clear", "purge"])
def test_only_admins_manage_users_keys_schedules_the_audit_trail_and_bulk_deletes(permission):
    assert [role for role in Role if role.allows(Permission(permission))] == [Role.ADMIN]


def test_a_viewer_may_read_and_keep_keys_of_its_own():
    assert permissions_of(Role.VIEWER) == ["view", "api_keys"]
    assert permissions_of(Role.ADMIN) == [permission.value for permission in Permission]


def test_the_readme_table_is_the_matrix():
    section = README.partition("\n### Users, roles and the audit trail\n")[2]
    rows = re.findall(r"^\| `([a-z_]+)` \| (viewer|operator|admin) \|", section, flags=re.MULTILINE)

    assert dict(rows) == {permission.value: role.value for permission, role in ROLE_MATRIX.items()}
    assert len(rows) == len(ROLE_MATRIX)
