"""Users, API keys and roles through the API: who gets 401 and 403 for each action, Bearer keys, revoked keys,
disabled users, sessions, the Basic user, and the open app when no one is configured."""

import base64
import io

import pytest

from importdash.extensions import db
from importdash.roles import ROLE_MATRIX, Permission, Role
from importdash.services import accounts

PASSWORD = "correct horse battery"
CSV = b"name,email\nAda,ada@example.com\nBob,bob@rejected.example\n"


@pytest.fixture
def people(app):
    """One user of each role, each with an API key: {role: (user, Authorization headers)}."""
    found = {}
    with app.app_context():
        for role in Role:
            user = accounts.create_user(db.session, name=f"{role.value}-user", role=role, password=PASSWORD)
            secret = accounts.issue_key(db.session, user=user, name="tests").secret
            found[role] = (user.id, {"Authorization": f"Bearer {secret}"})
    return found


def basic(username, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


# Each action, and the request that takes it. Ids name no row: a role allowed to act gets past the check to a 404.
ACTIONS = [
    (Permission.START, "POST", "/api/import", None),
    (Permission.START, "POST", "/api/import/batch", None),
    (Permission.START, "POST", "/api/import/stream", None),
    (Permission.CANCEL, "POST", "/api/import/999/cancel", None),
    (Permission.RETRY, "POST", "/api/import/999/retry", None),
    (Permission.RESUME, "POST", "/api/import/999/resume", None),
    (Permission.CLEAR, "DELETE", "/api/records?confirm=true", None),
    (Permission.USERS, "GET", "/api/users", None),
    (Permission.USERS, "POST", "/api/users", {"name": "new", "role": "viewer", "password": "x"}),
    (Permission.USERS, "PATCH", "/api/users/999", {"role": "viewer"}),
    (Permission.AUDIT, "GET", "/api/audit", None),
    (Permission.AUDIT, "GET", "/api/audit.csv", None),
    (Permission.API_KEYS, "GET", "/api/api-keys", None),
    (Permission.API_KEYS, "POST", "/api/api-keys", {"name": "script"}),
    (Permission.VIEW, "GET", "/api/import", None),
    (Permission.VIEW, "GET", "/api/records", None),
    (Permission.VIEW, "GET", "/api/me", None),
]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("permission", "method", "path", "body"), ACTIONS, ids=[f"{a[1]} {a[2]}" for a in ACTIONS])
def test_each_role_gets_403_exactly_for_the_actions_the_matrix_denies_it(
    client, people, role, permission, method, path, body
):
    _user_id, headers = people[role]

    response = client.open(path, method=method, json=body, headers=headers)

    if role.allows(permission):
        assert response.status_code not in (401, 403), response.get_json()
    else:
        assert response.status_code == 403
        error = response.get_json()["error"]
        assert error["code"] == "forbidden"
        assert ROLE_MATRIX[permission].value in error["message"]


@pytest.mark.parametrize(("permission", "method", "path", "body"), ACTIONS, ids=[f"{a[1]} {a[2]}" for a in ACTIONS])
def test_once_a_user_exists_every_action_needs_credentials(client, people, permission, method, path, body):
    response = client.open(path, method=method, json=body)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_viewers_cannot_start_cancel_retry_resume_or_clear():
    denied = {permission for permission in Permission if not Role.VIEWER.allows(permission)}
    assert {Permission.START, Permission.CANCEL, Permission.RETRY, Permission.RESUME, Permission.CLEAR} <= denied


def test_an_api_key_acts_as_its_user_with_their_role(client, people):
    _user_id, headers = people[Role.OPERATOR]

    me = client.get("/api/me", headers=headers).get_json()
    started = client.post("/api/import", headers=headers)

    assert me["user"] == {
        "name": "operator-user",
        "role": "operator",
        "via": "api_key",
        "user_id": me["user"]["user_id"],
    }
    assert "start" in me["permissions"] and "clear" not in me["permissions"]
    assert started.status_code == 202
    assert started.get_json()["job"]["started_by"] == "operator-user"


@pytest.mark.parametrize(
    "authorization", ["Bearer idk_not-a-key", "Bearer ", "Bearer " + "x" * 5000], ids=["unknown", "empty", "long"]
)
def test_an_unknown_key_gets_401(client, people, authorization):
    response = client.get("/api/import", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_gets_401_from_then_on(client, people):
    user_id, headers = people[Role.ADMIN]
    key_id = client.get("/api/api-keys", headers=headers).get_json()["api_keys"]
    own = next(key for key in key_id if key["user"] == "admin-user")
    _other_user, other_headers = people[Role.VIEWER]
    assert client.get("/api/import", headers=other_headers).status_code == 200

    viewer_key = next(
        key
        for key in client.get("/api/api-keys", headers=headers).get_json()["api_keys"]
        if key["user"] == "viewer-user"
    )
    revoked = client.delete(f"/api/api-keys/{viewer_key['id']}", headers=headers)

    assert revoked.status_code == 200 and revoked.get_json()["api_key"]["revoked"] is True
    assert client.get("/api/import", headers=other_headers).status_code == 401
    assert client.get("/api/import", headers=headers).status_code == 200  # the admin's own key still works
    assert own["revoked"] is False


def test_a_key_is_shown_once_and_only_its_hash_is_kept(client, people):
    _user_id, headers = people[Role.VIEWER]

    created = client.post("/api/api-keys", json={"name": "nightly report"}, headers=headers)

    assert created.status_code == 201
    secret = created.get_json()["key"]
    listed = client.get("/api/api-keys", headers=headers).get_json()["api_keys"]
    assert [key["name"] for key in listed] == ["nightly report", "tests"]  # own keys only, newest first
    assert secret not in str(listed)
    assert listed[0]["prefix"] == secret[: len(listed[0]["prefix"])]
    assert client.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_a_viewer_cannot_see_revoke_or_make_keys_of_others(client, people):
    _admin_id, admin_headers = people[Role.ADMIN]
    operator_id, _operator_headers = people[Role.OPERATOR]
    _viewer_id, viewer_headers = people[Role.VIEWER]
    operator_key = client.get(f"/api/api-keys?user={operator_id}", headers=admin_headers).get_json()["api_keys"][0]

    assert client.delete(f"/api/api-keys/{operator_key['id']}", headers=viewer_headers).status_code == 404
    made = client.post("/api/api-keys", json={"name": "x", "user": operator_id}, headers=viewer_headers)
    assert made.status_code == 403
    made_by_admin = client.post("/api/api-keys", json={"name": "x", "user": operator_id}, headers=admin_headers)
    assert made_by_admin.status_code == 201 and made_by_admin.get_json()["api_key"]["user"] == "operator-user"


def test_a_disabled_user_is_refused_by_key_and_by_session(client, people):
    viewer_id, viewer_headers = people[Role.VIEWER]
    _admin_id, admin_headers = people[Role.ADMIN]
    signed_in = client.post("/login", data={"name": "viewer-user", "password": PASSWORD})
    assert signed_in.status_code == 302
    assert client.get("/api/me").get_json()["user"]["via"] == "session"

    disabled = client.patch(f"/api/users/{viewer_id}", json={"disabled": True}, headers=admin_headers)

    assert disabled.status_code == 200 and disabled.get_json()["user"]["disabled"] is True
    assert client.get("/api/me").status_code == 401  # the session ended with the user
    assert client.get("/api/me", headers=viewer_headers).status_code == 401
    assert client.post("/login", data={"name": "viewer-user", "password": PASSWORD}).status_code == 401


def test_a_role_change_takes_effect_on_the_next_request(client, people):
    viewer_id, viewer_headers = people[Role.VIEWER]
    _admin_id, admin_headers = people[Role.ADMIN]
    assert client.post("/api/import", headers=viewer_headers).status_code == 403

    client.patch(f"/api/users/{viewer_id}", json={"role": "operator"}, headers=admin_headers)

    assert client.post("/api/import", headers=viewer_headers).status_code == 202


# Sessions ---------------------------------------------------------------------------------------------------


def test_browsers_without_a_session_are_sent_to_sign_in_and_come_back(client, people):
    page = client.get("/imports/3?x=1", headers={"Accept": "text/html"})

    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login?next=")
    signed_in = client.post("/login", data={"name": "admin-user", "password": PASSWORD, "next": "/imports/3?x=1"})
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/imports/3?x=1"
    assert client.get("/", headers={"Accept": "text/html"}).status_code == 200


def test_the_sign_in_page_and_its_stylesheet_need_no_session(client, people):
    assert client.get("/login").status_code == 200
    with client.get("/static/css/app.css") as stylesheet:
        assert stylesheet.status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"])
def test_sign_in_never_sends_the_browser_to_another_site(client, people, target):
    response = client.post("/login", data={"name": "viewer-user", "password": PASSWORD, "next": target})

    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("name", "password"),
    [("viewer-user", "wrong"), ("nobody", PASSWORD), ("viewer-user", ""), ("", ""), ("a\x00b", "x")],
)
def test_a_wrong_sign_in_gets_401_and_no_session(client, people, name, password):
    response = client.post("/login", data={"name": name, "password": password})

    assert response.status_code == 401
    assert b"do not match" in response.data
    assert client.get("/api/me").status_code == 401


def test_sign_out_ends_the_session(client, people):
    client.post("/login", data={"name": "viewer-user", "password": PASSWORD})

    response = client.post("/logout")

    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/api/me").status_code == 401


def test_a_session_signed_with_another_key_is_not_accepted(app, people):
    signed_elsewhere = app.test_client()
    signed_elsewhere.post("/login", data={"name": "admin-user", "password": PASSWORD})
    cookie = signed_elsewhere.get_cookie("session").value
    app.config["SECRET_KEY"] = "another key"  # e.g. another process without the shared IMPORTDASH_SECRET_KEY

    client = app.test_client()
    client.set_cookie("session", cookie)

    assert client.get("/api/me").status_code == 401


def test_a_cross_site_sign_in_is_refused(client, people):
    response = client.post(
        "/login", data={"name": "viewer-user", "password": PASSWORD}, headers={"Sec-Fetch-Site": "cross-site"}
    )

    assert response.status_code == 403


# The Basic user and the open app ---------------------------------------------------------------------------


@pytest.mark.parametrize("app_config", [{"AUTH_USERNAME": "ada", "AUTH_PASSWORD": "s3cret"}])
def test_the_basic_user_keeps_working_as_an_admin_beside_users(client, people):
    me = client.get("/api/me", headers=basic("ada", "s3cret")).get_json()

    assert me["user"] == {"name": "ada", "role": "admin", "via": "basic", "user_id": None}
    assert client.get("/api/users", headers=basic("ada", "s3cret")).status_code == 200
    assert client.get("/api/users", headers=basic("ada", "wrong")).status_code == 401
    # The Basic user may also sign in on the sign-in page.
    assert client.post("/login", data={"name": "ada", "password": "s3cret"}).status_code == 302
    assert client.get("/api/me").get_json()["user"]["role"] == "admin"


@pytest.mark.parametrize("app_config", [{"AUTH_USERNAME": "ada", "AUTH_PASSWORD": "s3cret"}])
def test_the_basic_user_has_no_keys_of_its_own(client):
    response = client.post("/api/api-keys", json={"name": "x"}, headers=basic("ada", "s3cret"))

    assert response.status_code == 400 and response.get_json()["error"]["code"] == "not_a_user"


def test_with_no_users_and_no_basic_auth_the_app_is_open_to_an_anonymous_admin(client):
    me = client.get("/api/me").get_json()

    assert me["user"] == {"name": "anonymous", "role": "admin", "via": "open", "user_id": None}
    assert client.get("/api/audit").status_code == 200
    assert client.get("/", headers={"Accept": "text/html"}).status_code == 200


def test_the_first_user_closes_the_open_app(client):
    created = client.post("/api/users", json={"name": "root", "role": "admin", "password": PASSWORD})

    assert created.status_code == 201
    assert client.get("/api/import").status_code == 401


# Users ------------------------------------------------------------------------------------------------------


def test_admins_create_list_and_change_users(client, people):
    _admin_id, headers = people[Role.ADMIN]

    created = client.post("/api/users", json={"name": "grace", "role": "operator", "password": "pw"}, headers=headers)
    again = client.post("/api/users", json={"name": "grace", "role": "viewer", "password": "pw"}, headers=headers)
    bad_role = client.post("/api/users", json={"name": "linus", "role": "root"}, headers=headers)
    listed = client.get("/api/users", headers=headers).get_json()["users"]

    assert created.status_code == 201 and created.get_json()["user"]["role"] == "operator"
    assert again.status_code == 409
    assert bad_role.status_code == 400 and "viewer, operator, admin" in bad_role.get_json()["error"]["message"]
    assert "grace" in [user["name"] for user in listed]
    assert "password" not in str(listed) and "hash" not in str(listed)


def test_passwords_are_stored_as_a_salted_kdf_hash(app, people):
    with app.app_context():
        stored = accounts.find_user(db.session, "viewer-user").password_hash

    assert PASSWORD not in stored
    assert stored.split("$")[0].startswith(("scrypt", "pbkdf2"))


def test_uploads_by_a_user_record_who_started_them(client, people):
    _operator_id, headers = people[Role.OPERATOR]

    response = client.post("/api/import/batch", data={"file": (io.BytesIO(CSV), "a.csv")}, headers=headers)

    assert response.status_code == 202
    assert response.get_json()["job"]["started_by"] == "operator-user"


def test_once_users_exist_the_api_document_names_keys_and_sessions(client, people):
    _user_id, headers = people[Role.VIEWER]

    document = client.get("/api/openapi.json", headers=headers).get_json()

    assert document["security"] == [{"bearer": []}, {"session": []}]  # no Basic user is configured
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "401" in document["paths"]["/api/import"]["post"]["responses"]
