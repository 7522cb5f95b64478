"""API keys and passwords: what is stored, how a key is found, and what refuses it."""

import hashlib
import re
from datetime import timedelta

import pytest

from importdash.errors import ApiError, Conflict
from importdash.extensions import db
from importdash.models import ApiKey
from importdash.roles import Role
from importdash.services import accounts


def test_a_key_is_the_prefix_and_32_random_bytes_and_is_stored_as_its_sha256():
    secrets = {accounts.new_key_secret() for _ in range(100)}

    assert len(secrets) == 100
    for secret in secrets:
        assert re.fullmatch(r"idk_[A-Za-z0-9_-]{43}", secret)
        assert accounts.hash_key(secret) == hashlib.sha256(secret.encode()).hexdigest()


def test_issued_keys_keep_only_the_hash_and_a_short_prefix(app):
    with app.app_context():
        user = accounts.create_user(db.session, name="ada", role=Role.VIEWER, password=None)
        issued = accounts.issue_key(db.session, user=user, name="cron")
        stored = db.session.get(ApiKey, issued.key.id)

        assert stored.secret_hash == accounts.hash_key(issued.secret)
        assert stored.prefix == issued.secret[:12] and len(stored.prefix) < len(issued.secret) // 3
        assert issued.secret not in (stored.name, stored.prefix, stored.secret_hash)


def test_a_key_finds_its_user_until_revoked_or_the_user_is_disabled(app):
    with app.app_context():
        user = accounts.create_user(db.session, name="ada", role=Role.OPERATOR, password=None)
        issued = accounts.issue_key(db.session, user=user, name="cron")
        find = lambda: accounts.authenticate_key(db.session, secret=issued.secret, touch_after_seconds=60)  # noqa: E731

        assert find().name == "ada"
        assert accounts.authenticate_key(db.session, secret=issued.secret + "x", touch_after_seconds=60) is None
        accounts.update_user(db.session, user, disabled=True)
        assert find() is None
        accounts.update_user(db.session, user, disabled=False)
        assert find() is not None
        assert accounts.revoke_key(db.session, issued.key) is True
        assert accounts.revoke_key(db.session, issued.key) is False
        assert find() is None


def test_a_keys_last_use_is_written_at_most_every_touch_interval(app):
    with app.app_context():
        user = accounts.create_user(db.session, name="ada", role=Role.VIEWER, password=None)
        issued = accounts.issue_key(db.session, user=user, name="cron")
        accounts.authenticate_key(db.session, secret=issued.secret, touch_after_seconds=60)
        first = issued.key.last_used_at
        accounts.authenticate_key(db.session, secret=issued.secret, touch_after_seconds=60)
        assert issued.key.last_used_at == first
        issued.key.last_used_at = first - timedelta(seconds=61)
        db.session.commit()
        accounts.authenticate_key(db.session, secret=issued.secret, touch_after_seconds=60)
        assert issued.key.last_used_at > first - timedelta(seconds=61)


def test_passwords_check_against_the_stored_hash_and_a_user_without_one_cannot_sign_in(app):
    with app.app_context():
        accounts.create_user(db.session, name="ada", role=Role.VIEWER, password="pw")
        accounts.create_user(db.session, name="bot", role=Role.VIEWER, password=None)

        assert accounts.authenticate_password(db.session, name="ada", password="pw").name == "ada"
        assert accounts.authenticate_password(db.session, name="ada", password="PW") is None
        assert accounts.authenticate_password(db.session, name="bot", password="") is None
        assert accounts.authenticate_password(db.session, name="nobody", password="pw") is None


@pytest.mark.parametrize("name", ["", "   ", "a" * 101, "tab\there", None])
def test_bad_names_are_refused(app, name):
    with app.app_context(), pytest.raises(ApiError, match="name must"):
        accounts.create_user(db.session, name=name, role=Role.VIEWER, password=None)


def test_a_taken_name_is_a_conflict(app):
    with app.app_context():
        accounts.create_user(db.session, name="ada", role=Role.VIEWER, password=None)
        with pytest.raises(Conflict):
            accounts.create_user(db.session, name="ada", role=Role.ADMIN, password=None)


def test_the_last_enabled_admin_can_be_neither_demoted_nor_disabled(app):
    with app.app_context():
        ada = accounts.create_user(db.session, name="ada", role=Role.ADMIN, password=None)
        with pytest.raises(Conflict, match="last enabled admin"):
            accounts.update_user(db.session, ada, role=Role.OPERATOR)
        with pytest.raises(Conflict, match="last enabled admin"):
            accounts.update_user(db.session, ada, disabled=True)
        bob = accounts.create_user(db.session, name="bob", role=Role.ADMIN, password=None)

        assert accounts.update_user(db.session, ada, disabled=True) == {"disabled": True}
        with pytest.raises(Conflict):
            accounts.update_user(db.session, bob, role=Role.VIEWER)
        assert accounts.update_user(db.session, bob, role=Role.ADMIN) == {}  # staying an admin is no change
