"""The web side: optional Basic auth, cross-site request refusal, security headers, and limits with clear JSON."""

import base64
import gc
import hmac
import io
import threading
import warnings

import pytest

from importdash import create_app
from importdash.runtime import get_runtime
from importdash.security import CONTENT_SECURITY_POLICY

AUTH = {"AUTH_USERNAME": "ada", "AUTH_PASSWORD": "correct horse"}
CSV = b"name,email\nAda,ada@example.com\n"


def basic(username, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def state_changing_routes(app):
    """Every (method, URL) that can change something, with 1 for each id in the path."""
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"GET", "HEAD", "OPTIONS"}):
            routes.append((method, rule.rule.replace("<id:job_id>", "1")))
    return routes


# Authentication ---------------------------------------------------------------------------------------------


def test_without_auth_configured_everything_is_open_and_jobs_say_anonymous(client):
    response = client.post("/api/import")
    assert response.status_code == 202
    assert response.get_json()["job"]["started_by"] == "anonymous"


@pytest.mark.parametrize("app_config", [AUTH])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/import"),
        ("GET", "/api/records"),
        ("POST", "/api/import"),
        ("GET", "/api/openapi.json"),
        ("DELETE", "/api/records?confirm=true"),
        ("GET", "/"),
        ("GET", "/imports/1"),
        ("GET", "/static/app.js"),
    ],
)
def test_with_auth_every_page_and_api_route_needs_credentials(client, method, path):
    response = client.open(path, method=method)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="importdash", charset="UTF-8"'
    if path.startswith("/api/"):
        assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("app_config", [AUTH])
def test_with_auth_health_stays_open(client):
    assert client.get("/health").get_json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize("app_config", [AUTH])
@pytest.mark.parametrize(
    "headers",
    [
        basic("ada", "wrong"),
        basic("eve", "correct horse"),
        basic("ada", "correct horse "),
        basic("", ""),
        {"Authorization": "Bearer correct horse"},
        {"Authorization": "Basic not-base64!"},
    ],
    ids=["wrong password", "wrong user", "password prefix", "empty", "other scheme", "garbage"],
)
def test_with_auth_wrong_credentials_get_401(client, headers):
    assert client.get("/api/import", headers=headers).status_code == 401


@pytest.mark.parametrize("app_config", [AUTH])
def test_with_auth_the_job_records_who_started_it(client):
    credentials = basic("ada", "correct horse")
    response = client.post("/api/import/batch", data={"file": (io.BytesIO(CSV), "a.csv")}, headers=credentials)

    assert response.status_code == 202
    assert response.get_json()["job"]["started_by"] == "ada"
    assert client.get("/api/import", headers=credentials).get_json()["jobs"][0]["started_by"] == "ada"


@pytest.mark.parametrize("app_config", [AUTH])
def test_credentials_are_compared_in_constant_time_both_parts_always(client, monkeypatch):
    compared = []
    compare_digest = hmac.compare_digest

    def recording_compare_digest(given, expected):
        compared.append((given, expected))
        return compare_digest(given, expected)

    monkeypatch.setattr("importdash.security.hmac.compare_digest", recording_compare_digest)
    client.get("/api/import", headers=basic("mallory", "guess"))

    assert compared == [(b"mallory", b"ada"), (b"guess", b"correct horse")]


@pytest.mark.parametrize(
    "settings", [{"AUTH_USERNAME": "ada"}, {"AUTH_PASSWORD": "secret"}, {"AUTH_USERNAME": "a:b", "AUTH_PASSWORD": "x"}]
)
def test_half_configured_or_unusable_auth_refuses_to_start(tmp_path, settings):
    with pytest.raises(ValueError, match="IMPORTDASH_AUTH_"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "UPLOAD_FOLDER": str(tmp_path), **settings})


def test_a_password_that_looks_like_json_is_taken_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("IMPORTDASH_AUTH_USERNAME", "ops")
    monkeypatch.setenv("IMPORTDASH_AUTH_PASSWORD", "1234")  # from_prefixed_env reads this as the number 1234
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "UPLOAD_FOLDER": str(tmp_path)})
    try:
        client = app.test_client()
        assert client.get("/api/import", headers=basic("ops", "1234")).status_code == 200
        assert client.get("/api/import", headers=basic("ops", "1234.0")).status_code == 401
    finally:
        get_runtime(app).runner.shutdown()


# Cross-site request forgery ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://[not-a-host"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
    ],
    ids=["cross-site", "same-site", "foreign origin", "null origin", "malformed origin", "fetch metadata wins"],
)
def test_cross_site_browser_writes_are_refused_with_403_json(client, headers):
    response = client.post("/api/import", headers=headers)

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "cross_site_request"
    assert client.get("/api/import").get_json()["total"] == 0


def test_every_state_changing_route_refuses_cross_site_requests(app, client):
    routes = state_changing_routes(app)
    assert ("DELETE", "/api/records") in routes and ("POST", "/api/import/batch") in routes

    for method, path in routes:
        response = client.open(path, method=method, headers={"Sec-Fetch-Site": "cross-site"})
        assert response.status_code == 403, (method, path)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {"Origin": "http://localhost"}],
    ids=["curl (no browser headers)", "same-origin page", "typed by the user", "matching origin"],
)
def test_same_origin_pages_and_non_browser_clients_may_write(client, headers):
    assert client.post("/api/import", headers=headers).status_code == 202


def test_cross_site_reads_are_not_refused(client):
    assert client.get("/api/import", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


@pytest.mark.parametrize(
    "app_config", [dict(TRUSTED_ORIGINS="https://imports.example.com, https://other.example.com/")]
)
def test_trusted_origins_may_write_from_behind_a_proxy(client):
    headers = {"Origin": "https://imports.example.com", "Sec-Fetch-Site": "cross-site"}
    assert client.post("/api/import", headers=headers).status_code == 202
    assert client.post("/api/import", headers={"Origin": "https://other.example.com"}).status_code == 202
    assert client.post("/api/import", headers={"Origin": "https://third.example.com"}).status_code == 403


# Security headers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/import"),
        ("GET", "/health"),
        ("GET", "/api/import/999"),
        ("GET", "/nowhere"),
        ("POST", "/api/import/batch"),
        ("GET", "/api/openapi.json"),
    ],
)
def test_every_response_carries_the_security_headers(client, method, path):
    response = client.open(path, method=method, headers={"Accept": "text/html"})

    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_content_security_policy_allows_only_this_origin_and_no_inline_script():
    directives = dict(directive.split(" ", 1) for directive in CONTENT_SECURITY_POLICY.split("; "))

    assert directives["default-src"] == directives["script-src"] == directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "unsafe-eval" not in CONTENT_SECURITY_POLICY


def test_error_pages_for_browsers_show_values_as_text(app, client):
    @app.get("/echo-error")
    def echo_error():
        from importdash.errors import InvalidFile

        raise InvalidFile('Columns found: "<img src=x onerror=alert(1)>".')

    response = client.get("/echo-error", headers={"Accept": "text/html"})

    assert b"<img" not in response.data
    assert b"&lt;img src=x onerror=alert(1)&gt;" in response.data


# Limits -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("app_config", [dict(MAX_UPLOAD_MB=0.25)])
def test_an_upload_over_the_size_cap_gets_413_json_naming_the_cap(client):
    # (Kept under the test client's 500 KB spooling threshold: it leaves its temporary file open on a 413.)
    response = client.post("/api/import/batch", data={"file": (io.BytesIO(CSV + b"x" * 300_000), "big.csv")})

    assert response.status_code == 413
    assert response.get_json()["error"] == {
        "code": "request_entity_too_large",
        "message": "The upload is larger than 262,144 bytes, the most this server accepts.",
    }


def test_a_form_with_too_many_parts_gets_413_json(client):
    fields = {f"field{number}": "x" for number in range(20)}
    response = client.post("/api/import/batch", data={"file": (io.BytesIO(CSV), "a.csv"), **fields})

    assert response.status_code == 413
    assert "at most 10 parts" in response.get_json()["error"]["message"]


# Lowered so the request stays under the test client's 500 KB spooling size (it leaves that file open on 413).
@pytest.mark.parametrize("app_config", [dict(MAX_FORM_MEMORY_SIZE=100_000)])
def test_a_form_field_over_the_size_cap_gets_413_json(client):
    response = client.post("/api/import/batch", data={"file": (io.BytesIO(CSV), "a.csv"), "encoding": "x" * 150_000})

    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_a_form_cut_short_at_the_part_limit_leaves_no_upload_file_open(client):
    boundary = "limit"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n{CSV.decode()}\r\n']
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n' for n in range(20)]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = client.post("/api/import/batch", data=body, content_type=f"multipart/form-data; boundary={boundary}")
        gc.collect()

    assert response.status_code == 413
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.parametrize("path", ["/api/import", "/api/records", "/api/import/{job_id}/errors"])
def test_page_sizes_are_capped_with_a_clear_400(client, make_job, path):
    response = client.get(path.format(job_id=make_job().id) + "?limit=1001")

    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_parameter",
        "message": "limit must be between 1 and 1000, got 1001",
    }


@pytest.mark.parametrize("query", ["offset=99999999999999999999", "job=99999999999999999999", "job=²"])
def test_numbers_too_large_for_the_database_are_a_400_not_a_500(client, query):
    response = client.get(f"/api/records?{query}")
    assert response.status_code == 400


def test_an_id_too_large_for_the_database_is_a_404(client):
    assert client.get("/api/import/99999999999999999999").status_code == 404


class GatedDownstream:
    """The simulated downstream, held shut until the test opens the gate; counts the jobs waiting at it."""

    def __init__(self, inner):
        self.inner = inner
        self.gate = threading.Event()
        self.arrived = threading.Semaphore(0)

    def send(self, payload):
        self.arrived.release()
        self.gate.wait(timeout=30)
        return self.inner.send(payload)


@pytest.mark.parametrize("app_config", [dict(MAX_JOBS=2)])
def test_imports_beyond_max_jobs_are_queued_not_refused(app, client, wait_for_job):
    deliverer = get_runtime(app).deliverer
    downstream = GatedDownstream(deliverer.downstream)
    deliverer.downstream = downstream

    files = [f"name,email\nP{n},p{n}@example.com\n".encode() for n in range(4)]
    responses = [client.post("/api/import/stream", data={"file": (io.BytesIO(file), "a.csv")}) for file in files]
    assert [response.status_code for response in responses] == [202] * 4
    job_ids = [response.get_json()["job"]["id"] for response in responses]
    assert downstream.arrived.acquire(timeout=10) and downstream.arrived.acquire(timeout=10)

    statuses = [client.get(f"/api/import/{job_id}").get_json()["job"]["status"] for job_id in job_ids]
    assert sorted(statuses) == ["pending", "pending", "processing", "processing"]
    downstream.gate.set()
    assert [wait_for_job(job_id)["status"] for job_id in job_ids] == ["completed"] * 4


# The Host check (DNS rebinding) ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"])
def test_the_loopback_names_are_answered_by_default(client, host):
    assert client.get("/api/import", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "[::2]:80", ""])
def test_any_other_host_name_gets_a_json_400_and_reaches_no_view(client, host):
    response = client.post("/api/import", headers={"Host": host})

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "unknown_host"
    assert "IMPORTDASH_ALLOWED_HOSTS" in response.get_json()["error"]["message"]
    assert client.get("/api/import").get_json()["total"] == 0  # nothing was started


def test_health_answers_whatever_host_a_load_balancer_names(client):
    assert client.get("/health", headers={"Host": "10.1.2.3:8000"}).status_code == 200


@pytest.mark.parametrize(
    "app_config", [{"BIND": "0.0.0.0:8000", "ALLOWED_HOSTS": "imports.example.com, .corp.example"}]
)
def test_allowed_hosts_replace_the_defaults_and_a_leading_dot_allows_subdomains(client):
    for host, status in [
        ("imports.example.com", 200),
        ("a.corp.example:443", 200),
        ("corp.example", 200),
        ("xcorp.example", 400),
        ("localhost", 400),
    ]:
        assert client.get("/api/import", headers={"Host": host}).status_code == status, host


@pytest.mark.parametrize("app_config", [{"BIND": "importdash.internal:9000"}])
def test_the_bound_name_is_allowed_beside_the_loopback_names(client):
    assert client.get("/api/import", headers={"Host": "importdash.internal:9000"}).status_code == 200
    assert client.get("/api/import", headers={"Host": "localhost"}).status_code == 200


@pytest.mark.parametrize("job_id", [0, 2**31, 2**63, 10**30])
def test_an_id_beyond_the_id_column_is_a_json_404_on_every_route_with_an_id(app, client, job_id):
    for rule in app.url_map.iter_rules():
        if "<id:job_id>" not in rule.rule:
            continue
        url = rule.rule.replace("<id:job_id>", str(job_id))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method, headers={"Accept": "application/json"})
            assert response.status_code == 404, (method, url)
            assert response.get_json()["error"]["code"] == "not_found", (method, url)
